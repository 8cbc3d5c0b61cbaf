//! The model inventory: one entry per model role the platform can use, seeded from
//! `governance/model-inventory.toml` and kept in the database. At every start the sha256 of each
//! artifact the platform loads must equal its entry's, or the start stops; every edit of an entry
//! writes a change record (what, why, risk, evaluation before and after, rollback, approver).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::domain::{Actor, Permission, Role, TenantId};
use crate::error::{Error, Result};
pub use crate::store::governance::{CARD_STATUSES, CardView, ChangeRequest, DataCard, ModelEntry};
use crate::store::{ChangeRecord, Storage};

/// The inventory file in the governance folder.
pub const INVENTORY_FILE: &str = "model-inventory.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    models: Vec<ModelEntry>,
}

/// A change record as the CLI, the JSON API and the packet give it.
pub fn change_record_json(r: &ChangeRecord) -> serde_json::Value {
    serde_json::json!({
        "id": r.id, "role": r.role, "at": r.at.to_rfc3339(),
        "changes": serde_json::from_str::<serde_json::Value>(&r.changes).unwrap_or(serde_json::Value::Null),
        "why": r.why, "risk": r.risk, "eval_before": r.eval_before, "eval_after": r.eval_after,
        "rollback": r.rollback, "approver": r.approver, "recorded_by": r.recorded_by,
    })
}

/// Reads the inventory file of a governance folder.
pub fn read_inventory_file(governance_dir: &Path) -> Result<Vec<ModelEntry>> {
    let path = governance_dir.join(INVENTORY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::user(format!(
            "cannot read the model inventory {}: {e} (set governance_dir to the repository's governance folder)",
            path.display()
        ))
    })?;
    let file: InventoryFile =
        toml::from_str(&text).map_err(|e| Error::user(format!("model inventory {}: {e}", path.display())))?;
    let mut roles = std::collections::BTreeSet::new();
    for m in &file.models {
        if !roles.insert(m.role.clone()) {
            return Err(Error::user(format!("model inventory {}: role '{}' appears twice", path.display(), m.role)));
        }
        if !m.artifact_sha256.is_empty() && !crate::store::governance::is_sha256(&m.artifact_sha256) {
            return Err(Error::user(format!(
                "model inventory {}: '{}' has an artifact_sha256 that is not 64 hex digits",
                path.display(),
                m.role
            )));
        }
    }
    Ok(file.models)
}

/// Seeds the inventory from the governance folder, then checks that every artifact the platform
/// loaded (role, sha256) is the one its entry names. A mismatch stops the start.
pub async fn check_inventory(storage: &Storage, governance_dir: &Path, loaded: &[(&str, &str)]) -> Result<()> {
    let added = storage.seed_inventory(&read_inventory_file(governance_dir)?).await?;
    if added > 0 {
        tracing::info!(added, "model inventory entries created from the governance folder");
    }
    let inventory = storage.inventory().await?;
    for (role, sha) in loaded {
        let Some(entry) = inventory.iter().find(|e| e.role == *role) else {
            return Err(Error::user(format!(
                "the {role} model (sha256 {sha}) has no model inventory entry; add one to {}",
                governance_dir.join(INVENTORY_FILE).display()
            )));
        };
        if entry.artifact_sha256 != *sha {
            return Err(Error::user(format!(
                "the {role} model loaded has sha256 {sha}, but the model inventory approves {}; \
                 refusing to start. Install the approved artifact, or record the change with \
                 `lexgate models change {role} --set artifact_sha256={sha} --why ... --risk ... --rollback ... --approver ...`",
                if entry.artifact_sha256.is_empty() { "no artifact" } else { &entry.artifact_sha256 }
            )));
        }
    }
    Ok(())
}

/// The data-card file in the governance folder.
pub const DATA_CARDS_FILE: &str = "data-cards.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataCardFile {
    cards: Vec<DataCard>,
}

/// Reads the data cards of a governance folder.
pub fn read_data_cards_file(governance_dir: &Path) -> Result<Vec<DataCard>> {
    let path = governance_dir.join(DATA_CARDS_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::user(format!("cannot read the data cards {}: {e}", path.display())))?;
    let file: DataCardFile =
        toml::from_str(&text).map_err(|e| Error::user(format!("data cards {}: {e}", path.display())))?;
    for card in &file.cards {
        if !CARD_STATUSES.contains(&card.status.as_str()) {
            return Err(Error::user(format!(
                "data cards {}: set '{}' has status '{}' (expected approved, draft or rejected)",
                path.display(),
                card.set,
                card.status
            )));
        }
    }
    Ok(file.cards)
}

/// Seeds both the model inventory and the data cards (commands that run without the platform).
pub async fn seed_inventory_and_cards(storage: &Storage, governance_dir: &Path) -> Result<()> {
    storage.seed_inventory(&read_inventory_file(governance_dir)?).await?;
    seed_data_cards(storage, governance_dir).await
}

/// Seeds the data cards from the governance folder (first start, or a new set).
pub async fn seed_data_cards(storage: &Storage, governance_dir: &Path) -> Result<()> {
    let added = storage.seed_data_cards(&read_data_cards_file(governance_dir)?).await?;
    if added > 0 {
        tracing::info!(added, "data cards created from the governance folder");
    }
    Ok(())
}

/// The risk questionnaire file in the governance folder.
pub const RISK_FILE: &str = "risk-classification.toml";

/// The answers of the tier questionnaire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskAnswers {
    pub use_case: String,
    pub data_processed: String,
    pub output_users: String,
    pub action_follows: String,
    pub human_override: String,
    pub failure_visibility: String,
    pub exposure: String,
}

/// Each question with its options, option `i` reaching tier `i + 1`.
const QUESTIONS: [(&str, [&str; 4]); 6] = [
    ("data_processed", ["public", "internal", "confidential", "special-category personal data"]),
    ("output_users", ["internal experts", "internal staff", "customers", "automated systems"]),
    ("action_follows", ["information only", "internal decision", "decision about a customer", "automatic action"]),
    ("human_override", ["always reviewed", "reviewable", "rarely reviewed", "none"]),
    ("failure_visibility", ["visible at once", "visible on review", "hidden", "hidden and lasting"]),
    ("exposure", ["one team", "one organisation", "several organisations", "public"]),
];

/// A control a tier requires, and whether the platform's state shows it met.
#[derive(Debug, Clone, Serialize)]
pub struct ControlStatus {
    pub control: &'static str,
    /// The lowest tier that requires it.
    pub from_tier: u8,
    pub met: bool,
    /// What in the platform's state shows it.
    pub evidence: String,
}

/// The classification: per-question tiers, the resulting tier and its controls.
#[derive(Debug, Clone, Serialize)]
pub struct RiskClassification {
    pub answers: RiskAnswers,
    pub question_tiers: Vec<(&'static str, u8)>,
    pub tier: u8,
    pub controls: Vec<ControlStatus>,
    /// The audit-chain verification the controls were checked against (pages and the packet
    /// show it rather than walking the chain again).
    pub audit: crate::store::audit::Verification,
}

/// Reads the questionnaire and scores it. An answer that is not one of its question's options is
/// an error naming the options.
pub fn classify(governance_dir: &Path) -> Result<Scored> {
    let path = governance_dir.join(RISK_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::user(format!("cannot read the risk classification {}: {e}", path.display())))?;
    let answers: RiskAnswers =
        toml::from_str(&text).map_err(|e| Error::user(format!("risk classification {}: {e}", path.display())))?;
    let value = serde_json::to_value(&answers).map_err(|e| Error::internal("reading answers", e))?;
    let mut tiers = Vec::new();
    for (question, options) in QUESTIONS {
        let answer = value[question].as_str().unwrap_or_default();
        let Some(i) = options.iter().position(|o| *o == answer) else {
            return Err(Error::user(format!(
                "risk classification {}: {question} = '{answer}' is not one of: {}",
                path.display(),
                options.join(", ")
            )));
        };
        tiers.push((question, u8::try_from(i + 1).unwrap_or(4)));
    }
    let tier = tiers.iter().map(|(_, t)| *t).max().unwrap_or(1);
    Ok(Scored { answers, question_tiers: tiers, tier })
}

/// The questionnaire scored: each question's tier and the resulting tier.
#[derive(Debug, Clone)]
pub struct Scored {
    pub answers: RiskAnswers,
    pub question_tiers: Vec<(&'static str, u8)>,
    pub tier: u8,
}

/// Whose governance records a read covers. The platform's own records (the model inventory and
/// its change records, the risk questionnaire, the release gate, the audit chain's verification)
/// are shared by every scope; a tenant's records (its data card, its audit events, its deletion
/// receipts, its obligation register) are only in its own scope and the platform's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One tenant's records: its reviewers' and admins' reads.
    Tenant(TenantId),
    /// Every tenant's: a reviewer named in `platform_reviewers`, or the operator at the command line.
    Platform,
}

impl Scope {
    /// The tenant a read is limited to; `None` for the whole installation.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Scope::Tenant(t) => Some(t),
            Scope::Platform => None,
        }
    }

    /// How pages and the packet name the scope.
    pub fn label(&self) -> String {
        match self {
            Scope::Tenant(t) => format!("tenant {t}"),
            Scope::Platform => "the whole installation (every tenant)".to_owned(),
        }
    }
}

/// The data cards of the document sets in `scope` (a set is a tenant's collection).
pub async fn scoped_data_cards(storage: &Storage, scope: &Scope) -> Result<Vec<CardView>> {
    storage.data_cards_of(scope.tenant().map(TenantId::as_str)).await
}

/// Classifies the deployment and checks the controls its tier requires against the platform's
/// state: settings, the audit chain, the model inventory, the release gate, and, within `scope`,
/// data cards and deletion receipts (a tenant's reviewer sees the controls over its own records).
pub async fn risk_classification(
    storage: &Storage,
    settings: &crate::settings::Settings,
    scope: &Scope,
) -> Result<RiskClassification> {
    let Scored { answers, question_tiers, tier } = classify(&settings.governance_dir)?;
    let audit = storage.verify_audit().await?;
    let cards = scoped_data_cards(storage, scope).await?;
    let unapproved: Vec<&str> =
        cards.iter().filter(|c| c.card.status != "approved").map(|c| c.card.set.as_str()).collect();
    let (receipts, failed_receipts) = storage.deletion_receipt_counts(scope.tenant()).await?;
    let inventory = storage.inventory().await?;
    let loaded_checked = inventory.iter().any(|e| e.role == "embedding" && !e.artifact_sha256.is_empty());
    let oversight = settings.governance_dir.join("oversight-plan.md").is_file();
    let gate = storage.latest_release_gate().await?;
    let mut controls = vec![
        ControlStatus {
            control: "access filter inside every index query, re-checked against the database",
            from_tier: 1,
            met: true,
            evidence: "built into every search path (indexer invariant); tests compare index filters with the ACL rule"
                .into(),
        },
        ControlStatus {
            control: "append-only, hash-chained audit log, intact",
            from_tier: 1,
            met: audit.intact(),
            evidence: match &audit.problem {
                None => format!("audit verify: {} events intact, head {}", audit.events, &audit.head[..12]),
                Some(p) => format!("audit verify failed: {p}"),
            },
        },
        ControlStatus {
            control: "model inventory entry with a pinned artifact for every loaded model",
            from_tier: 2,
            met: loaded_checked,
            evidence: format!(
                "{} inventory entries; loaded artifacts are checked against them at every start",
                inventory.len()
            ),
        },
        ControlStatus {
            control: "approved data card for every document set, and the governance gate on",
            from_tier: 2,
            met: settings.data_card_gate && unapproved.is_empty() && !cards.is_empty(),
            evidence: if unapproved.is_empty() {
                format!("{} cards approved; gate {}", cards.len(), if settings.data_card_gate { "on" } else { "off" })
            } else {
                format!("not approved: {}", unapproved.join(", "))
            },
        },
        ControlStatus {
            control: "deletion across every store with receipts whose post-check passed",
            from_tier: 2,
            met: failed_receipts == 0,
            evidence: format!("{receipts} receipts, {failed_receipts} with a failed post-check"),
        },
        ControlStatus {
            control: "evaluation release gate approved for this configuration",
            from_tier: 3,
            met: gate.as_ref().is_some_and(|g| g.decision != "block"),
            evidence: match &gate {
                None => "no release-gate report recorded yet".into(),
                Some(g) => format!(
                    "latest report {} ({}): {}, thresholds version {}",
                    g.id,
                    g.created_at.format("%Y-%m-%d %H:%M UTC"),
                    g.decision,
                    g.thresholds_version
                ),
            },
        },
        ControlStatus {
            control: "human-oversight plan and incident runbook",
            from_tier: 3,
            met: oversight,
            evidence: if oversight {
                "governance/oversight-plan.md".into()
            } else {
                "no oversight plan in the governance folder".into()
            },
        },
        ControlStatus {
            control: "independent review before each release",
            from_tier: 4,
            met: false,
            evidence: "not recorded by the platform".into(),
        },
    ];
    controls.retain(|c| c.from_tier <= tier);
    Ok(RiskClassification { answers, question_tiers, tier, controls, audit })
}

/// The inventory entries and their change records.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub models: Vec<ModelEntry>,
    pub change_records: Vec<ChangeRecord>,
}

/// What the governance overview page shows.
#[derive(Debug, Clone)]
pub struct Overview {
    pub scope: Scope,
    pub risk: RiskClassification,
    pub cards: Vec<CardView>,
    pub models: Vec<ModelEntry>,
}

/// One page of the audit log, with the number of events that match the filter, and the whole
/// chain's verification (the chain is one for all tenants; only the scope's events are listed).
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub scope: Scope,
    pub events: Vec<crate::store::AuditEventRow>,
    pub total: u64,
    pub verification: crate::store::audit::Verification,
}

/// The governance records as people read and change them. A tenant's reviewers read the
/// platform's records and their own tenant's; a reviewer named in `platform_reviewers` reads
/// every tenant's; an admin reads the inventory and their own tenant's data card; every refusal
/// is audited. The `operator_*` methods are for the operator at the command line, who holds the
/// database.
#[derive(Debug, Clone)]
pub struct Governance {
    storage: Storage,
    settings: std::sync::Arc<crate::settings::Settings>,
}

impl Governance {
    pub fn new(storage: Storage, settings: std::sync::Arc<crate::settings::Settings>) -> Self {
        Self { storage, settings }
    }

    /// Connects to the database of `settings` alone (no indexes, no models) and seeds the
    /// inventory and data cards from the governance folder, for the governance commands.
    pub async fn connect(settings: crate::settings::Settings) -> Result<Self> {
        let storage = Storage::connect(&settings.database_url()).await?;
        seed_inventory_and_cards(&storage, &settings.governance_dir).await?;
        Ok(Self { storage, settings: std::sync::Arc::new(settings) })
    }

    /// Lets reviewers through, and admins when `admins_too`; refuses and audits anyone else.
    async fn require(&self, actor: &Actor, admins_too: bool) -> Result<()> {
        if actor.may(Permission::ReadGovernance) || (admins_too && actor.may(Permission::ManageDocuments)) {
            return Ok(());
        }
        self.storage
            .append_audit(crate::store::AuditRecord::by(
                actor,
                Permission::ReadGovernance.as_str(),
                "denied",
                serde_json::json!({ "role": actor.role.as_str() }),
            ))
            .await?;
        Err(Error::Forbidden)
    }

    /// Whose records `actor`'s governance reads cover: every tenant's only for a reviewer the
    /// settings name, their own tenant's for everyone else.
    pub fn scope_of(&self, actor: &Actor) -> Scope {
        let platform = actor.role == Role::Reviewer && self.settings.platform_reviewers.contains(&actor.principal_id);
        if platform { Scope::Platform } else { Scope::Tenant(actor.tenant.clone()) }
    }

    /// Risk tier and controls, data cards and models (reviewers), within the actor's scope.
    pub async fn overview(&self, actor: &Actor) -> Result<Overview> {
        self.require(actor, false).await?;
        let scope = self.scope_of(actor);
        Ok(Overview {
            risk: risk_classification(&self.storage, &self.settings, &scope).await?,
            cards: scoped_data_cards(&self.storage, &scope).await?,
            models: self.storage.inventory().await?,
            scope,
        })
    }

    /// The risk classification (reviewers), its controls checked within the actor's scope.
    pub async fn risk(&self, actor: &Actor) -> Result<RiskClassification> {
        self.require(actor, false).await?;
        risk_classification(&self.storage, &self.settings, &self.scope_of(actor)).await
    }

    /// A page (from 0) of the audit log within the actor's scope, filtered by action and outcome
    /// (reviewers).
    pub async fn audit_page(
        &self,
        actor: &Actor,
        page: u64,
        per_page: u64,
        action: Option<&str>,
        outcome: Option<&str>,
    ) -> Result<AuditPage> {
        self.require(actor, false).await?;
        let scope = self.scope_of(actor);
        let (events, total) = self.storage.audit_page(scope.tenant(), page, per_page, action, outcome).await?;
        let verification = self.storage.verify_audit().await?;
        Ok(AuditPage { scope, events, total, verification })
    }

    /// The model inventory and its change records (reviewers and admins).
    pub async fn inventory(&self, actor: &Actor) -> Result<Inventory> {
        self.require(actor, true).await?;
        self.operator_inventory().await
    }

    /// The data cards within a reviewer's scope; an admin's own tenant's card only.
    pub async fn data_cards(&self, actor: &Actor) -> Result<Vec<CardView>> {
        self.require(actor, true).await?;
        let scope = if actor.may(Permission::ReadGovernance) {
            self.scope_of(actor)
        } else {
            Scope::Tenant(actor.tenant.clone())
        };
        scoped_data_cards(&self.storage, &scope).await
    }

    /// The governance packet of the actor's scope as a zip file, its export audited (reviewers).
    pub async fn packet(&self, actor: &Actor) -> Result<Vec<u8>> {
        self.require(actor, false).await?;
        let scope = self.scope_of(actor);
        let files = crate::service::packet::build(&self.storage, &self.settings, &scope).await?;
        let bytes = crate::service::packet::zip(&files);
        crate::service::packet::record_export(
            &self.storage,
            &actor.principal_id,
            Some(actor.tenant.to_string()),
            &scope,
            files.len(),
            bytes.len(),
        )
        .await?;
        Ok(bytes)
    }

    /// The inventory and change records, for the operator.
    pub async fn operator_inventory(&self) -> Result<Inventory> {
        Ok(Inventory { models: self.storage.inventory().await?, change_records: self.storage.change_records().await? })
    }

    /// Edits an inventory entry and writes its change record, for the operator.
    pub async fn operator_change_inventory(&self, request: &ChangeRequest) -> Result<ChangeRecord> {
        self.storage.change_inventory(request).await
    }

    /// The packet's files and the zip, the export audited as the command line's, for the operator.
    pub async fn operator_packet(&self) -> Result<(usize, Vec<u8>)> {
        let files = crate::service::packet::build(&self.storage, &self.settings, &Scope::Platform).await?;
        let bytes = crate::service::packet::zip(&files);
        crate::service::packet::record_export(&self.storage, "cli", None, &Scope::Platform, files.len(), bytes.len())
            .await?;
        Ok((files.len(), bytes))
    }

    /// The risk classification, for the operator.
    pub async fn operator_risk(&self) -> Result<RiskClassification> {
        risk_classification(&self.storage, &self.settings, &Scope::Platform).await
    }

    /// Every data card, for the operator.
    pub async fn operator_data_cards(&self) -> Result<Vec<CardView>> {
        self.storage.data_cards().await
    }

    /// Sets a data card's status (audited), for the operator.
    pub async fn operator_set_data_card_status(&self, set: &str, status: &str, by: &str) -> Result<()> {
        self.storage.set_data_card_status(set, status, by).await
    }

    /// Walks the audit chain, for the operator.
    pub async fn operator_verify_audit(&self) -> Result<crate::store::audit::Verification> {
        self.storage.verify_audit().await
    }
}
