//! The model inventory: one entry per model role the platform can use, seeded from
//! `governance/model-inventory.toml` and kept in the database. At every start the sha256 of each
//! artifact the platform loads must equal its entry's, or the start stops; every edit of an entry
//! writes a change record (what, why, risk, evaluation before and after, rollback, approver).

use std::path::Path;

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::{EntityTrait, QueryOrder, TransactionTrait};
use serde::{Deserialize, Serialize};

use crate::store::entities::{model_change_record, model_inventory};
use crate::error::{Error, Result};
use crate::store::Storage;

/// The inventory file in the governance folder.
pub const INVENTORY_FILE: &str = "model-inventory.toml";

/// One model's inventory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// What the platform uses it for: `embedding`, `reranker`, `answer-composer`.
    pub role: String,
    pub name: String,
    pub version: String,
    pub provider: String,
    pub license: String,
    /// sha256 of the file the platform loads; empty when there is none.
    pub artifact_sha256: String,
    pub artifact_source: String,
    pub hosting: String,
    pub approved_environments: Vec<String>,
    pub approved_use_cases: Vec<String>,
    pub disallowed_uses: Vec<String>,
    pub data_sent_to_provider: String,
    pub retention: String,
    pub fallback: String,
    pub evaluation_baseline: String,
    pub known_limitations: String,
    pub owner: String,
    /// YYYY-MM-DD.
    pub next_review: String,
    pub model_card: String,
}

/// Fields `change` may set, and whether each is a list (given comma-separated).
const FIELDS: [(&str, bool); 18] = [
    ("name", false),
    ("version", false),
    ("provider", false),
    ("license", false),
    ("artifact_sha256", false),
    ("artifact_source", false),
    ("hosting", false),
    ("approved_environments", true),
    ("approved_use_cases", true),
    ("disallowed_uses", true),
    ("data_sent_to_provider", false),
    ("retention", false),
    ("fallback", false),
    ("evaluation_baseline", false),
    ("known_limitations", false),
    ("owner", false),
    ("next_review", false),
    ("model_card", false),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    models: Vec<ModelEntry>,
}

/// A change record as the CLI, the JSON API and the packet give it.
pub fn change_record_json(r: &model_change_record::Model) -> serde_json::Value {
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
        if !m.artifact_sha256.is_empty() && !is_sha256(&m.artifact_sha256) {
            return Err(Error::user(format!(
                "model inventory {}: '{}' has an artifact_sha256 that is not 64 hex digits",
                path.display(),
                m.role
            )));
        }
    }
    Ok(file.models)
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A requested edit of an inventory entry and its justification.
#[derive(Debug, Clone, Default)]
pub struct ChangeRequest {
    pub role: String,
    /// (field, new value); list fields take comma-separated values.
    pub set: Vec<(String, String)>,
    pub why: String,
    pub risk: String,
    pub eval_before: String,
    pub eval_after: String,
    pub rollback: String,
    pub approver: String,
    pub recorded_by: String,
}

impl Storage {
    /// Every inventory entry, by role.
    pub async fn inventory(&self) -> Result<Vec<ModelEntry>> {
        model_inventory::Entity::find()
            .order_by_asc(model_inventory::Column::Role)
            .all(self.connection())
            .await?
            .into_iter()
            .map(|row| serde_json::from_str(&row.entry).map_err(|e| Error::internal("reading an inventory entry", e)))
            .collect()
    }

    /// Change records, oldest first.
    pub async fn change_records(&self) -> Result<Vec<model_change_record::Model>> {
        Ok(model_change_record::Entity::find()
            .order_by_asc(model_change_record::Column::Id)
            .all(self.connection())
            .await?)
    }

    /// Adds entries for roles the database does not have yet (first start, or a new role).
    pub async fn seed_inventory(&self, entries: &[ModelEntry]) -> Result<usize> {
        let known: std::collections::BTreeSet<String> = self.inventory().await?.into_iter().map(|e| e.role).collect();
        let mut added = 0;
        for e in entries.iter().filter(|e| !known.contains(&e.role)) {
            model_inventory::Entity::insert(model_inventory::ActiveModel {
                role: Set(e.role.clone()),
                artifact_sha256: Set(e.artifact_sha256.clone()),
                entry: Set(serde_json::to_string(e).map_err(|err| Error::internal("serialising an entry", err))?),
                updated_at: Set(Utc::now()),
            })
            .exec(self.connection())
            .await?;
            added += 1;
        }
        Ok(added)
    }

    /// Applies a change to one entry and writes its change record, in one transaction.
    pub async fn change_inventory(&self, request: &ChangeRequest) -> Result<model_change_record::Model> {
        for (label, value) in [("why", &request.why), ("risk", &request.risk), ("rollback", &request.rollback)] {
            if value.trim().is_empty() {
                return Err(Error::user(format!("a change record needs '{label}'")));
            }
        }
        if request.approver.trim().is_empty() {
            return Err(Error::user("a change record needs an approver"));
        }
        if request.set.is_empty() {
            return Err(Error::user("name at least one field to change (--set field=value)"));
        }
        let txn = self.connection().begin().await?;
        let row = model_inventory::Entity::find_by_id(request.role.clone())
            .one(&txn)
            .await?
            .ok_or_else(|| Error::user(format!("no inventory entry for role '{}'", request.role)))?;
        let mut entry: serde_json::Value =
            serde_json::from_str(&row.entry).map_err(|e| Error::internal("reading an inventory entry", e))?;
        let mut changes = serde_json::Map::new();
        for (field, value) in &request.set {
            let Some((_, list)) = FIELDS.iter().find(|(name, _)| name == field) else {
                let names: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
                return Err(Error::user(format!("unknown field '{field}' (one of: {})", names.join(", "))));
            };
            if *field == "artifact_sha256" && !value.is_empty() && !is_sha256(value) {
                return Err(Error::user("artifact_sha256 must be 64 hex digits"));
            }
            let new = if *list {
                serde_json::Value::from(
                    value.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect::<Vec<_>>(),
                )
            } else {
                serde_json::Value::from(value.clone())
            };
            let old = entry.get(field.as_str()).cloned().unwrap_or(serde_json::Value::Null);
            changes.insert(field.clone(), serde_json::json!({ "from": old, "to": new }));
            entry[field.as_str()] = new;
        }
        let entry: ModelEntry =
            serde_json::from_value(entry).map_err(|e| Error::internal("rebuilding an inventory entry", e))?;
        model_inventory::Entity::update(model_inventory::ActiveModel {
            role: Set(entry.role.clone()),
            artifact_sha256: Set(entry.artifact_sha256.clone()),
            entry: Set(serde_json::to_string(&entry).map_err(|e| Error::internal("serialising an entry", e))?),
            updated_at: Set(Utc::now()),
        })
        .exec(&txn)
        .await?;
        let record = model_change_record::Entity::insert(model_change_record::ActiveModel {
            role: Set(request.role.clone()),
            changes: Set(serde_json::Value::Object(changes).to_string()),
            why: Set(request.why.clone()),
            risk: Set(request.risk.clone()),
            eval_before: Set(request.eval_before.clone()),
            eval_after: Set(request.eval_after.clone()),
            rollback: Set(request.rollback.clone()),
            approver: Set(request.approver.clone()),
            recorded_by: Set(request.recorded_by.clone()),
            at: Set(Utc::now()),
            ..Default::default()
        })
        .exec_with_returning(&txn)
        .await?;
        txn.commit().await?;
        self.append_audit(crate::store::AuditRecord {
            actor: request.recorded_by.clone(),
            tenant: None,
            action: "change_model_inventory".to_owned(),
            outcome: "succeeded".to_owned(),
            detail: serde_json::json!({
                "role": request.role, "change_record": record.id, "approver": request.approver,
            }),
        })
        .await?;
        Ok(record)
    }
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

/// A document set's data card, as written by people. What the platform measures (personal data,
/// pages without text, document counts) is added when the card is shown: see [`CardView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCard {
    /// The document set: a tenant's collection.
    pub set: String,
    pub name: String,
    pub source: String,
    pub license: String,
    pub sensitivity: String,
    pub regulated_data: String,
    pub allowed_uses: Vec<String>,
    pub prohibited_uses: Vec<String>,
    pub retention_period: String,
    pub deletion_process: String,
    pub access_control_model: String,
    pub approval_owner: String,
    /// approved, draft or rejected.
    pub status: String,
    pub known_quality_issues: String,
}

/// Approval states of a data card.
pub const CARD_STATUSES: [&str; 3] = ["approved", "draft", "rejected"];

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

/// A card with what the platform measured for its set.
#[derive(Debug, Clone, Serialize)]
pub struct CardView {
    #[serde(flatten)]
    pub card: DataCard,
    pub status_by: String,
    pub document_versions: usize,
    /// Personal data found at ingestion, per document version (counts only).
    pub pii_by_document: Vec<(String, u32, indexer::PiiCounts)>,
    pub pii_total: indexer::PiiCounts,
    pub pages_without_text: u32,
}

impl Storage {
    /// Adds cards for sets the database does not have yet.
    pub async fn seed_data_cards(&self, cards: &[DataCard]) -> Result<usize> {
        use crate::store::entities::data_card;
        let mut added = 0;
        for c in cards {
            if data_card::Entity::find_by_id(c.set.clone()).one(self.connection()).await?.is_some() {
                continue;
            }
            data_card::Entity::insert(data_card::ActiveModel {
                set_id: Set(c.set.clone()),
                card: Set(serde_json::to_string(c).map_err(|e| Error::internal("serialising a card", e))?),
                status: Set(c.status.clone()),
                status_by: Set(format!("{} (governance file)", c.approval_owner)),
                updated_at: Set(Utc::now()),
            })
            .exec(self.connection())
            .await?;
            added += 1;
        }
        Ok(added)
    }

    /// Whether the set's card is approved (a set without a card is not).
    pub async fn data_card_approved(&self, set: &str) -> Result<bool> {
        use crate::store::entities::data_card;
        Ok(data_card::Entity::find_by_id(set.to_owned())
            .one(self.connection())
            .await?
            .is_some_and(|c| c.status == "approved"))
    }

    /// Sets a card's status and audits it.
    pub async fn set_data_card_status(&self, set: &str, status: &str, by: &str) -> Result<()> {
        use crate::store::entities::data_card;
        if !CARD_STATUSES.contains(&status) {
            return Err(Error::user(format!("unknown status '{status}' (expected approved, draft or rejected)")));
        }
        let row = data_card::Entity::find_by_id(set.to_owned())
            .one(self.connection())
            .await?
            .ok_or_else(|| Error::user(format!("no data card for set '{set}'")))?;
        let mut card: DataCard =
            serde_json::from_str(&row.card).map_err(|e| Error::internal("reading a data card", e))?;
        let from = row.status.clone();
        card.status = status.to_owned();
        data_card::Entity::update(data_card::ActiveModel {
            set_id: Set(set.to_owned()),
            card: Set(serde_json::to_string(&card).map_err(|e| Error::internal("serialising a card", e))?),
            status: Set(status.to_owned()),
            status_by: Set(by.to_owned()),
            updated_at: Set(Utc::now()),
        })
        .exec(self.connection())
        .await?;
        self.append_audit(crate::store::AuditRecord {
            actor: by.to_owned(),
            tenant: Some(set.to_owned()),
            action: "set_data_card_status".to_owned(),
            outcome: "succeeded".to_owned(),
            detail: serde_json::json!({ "set": set, "from": from, "to": status }),
        })
        .await
    }

    /// Every card with its measured fields.
    pub async fn data_cards(&self) -> Result<Vec<CardView>> {
        use crate::store::entities::data_card;
        let mut out = Vec::new();
        for row in data_card::Entity::find().order_by_asc(data_card::Column::SetId).all(self.connection()).await? {
            let card: DataCard =
                serde_json::from_str(&row.card).map_err(|e| Error::internal("reading a data card", e))?;
            let scans = self.version_scans_of_tenant(&row.set_id).await?;
            let mut pii_total = indexer::PiiCounts::default();
            let mut pages_without_text = 0;
            for (_, _, scan) in &scans {
                pii_total.add(&scan.pii);
                pages_without_text += scan.pages_without_text;
            }
            out.push(CardView {
                card,
                status_by: row.status_by,
                document_versions: scans.len(),
                pii_by_document: scans
                    .iter()
                    .filter(|(_, _, s)| s.pii.total() > 0)
                    .map(|(d, v, s)| (d.clone(), *v, s.pii))
                    .collect(),
                pii_total,
                pages_without_text,
            });
        }
        Ok(out)
    }
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

/// Classifies the deployment and checks the controls its tier requires against the platform's
/// state: settings, the audit chain, the model inventory, data cards, deletion receipts and the
/// release gate.
pub async fn risk_classification(
    storage: &Storage,
    settings: &crate::settings::Settings,
) -> Result<RiskClassification> {
    use crate::store::entities::deletion_receipt;
    use sea_orm::{ColumnTrait, PaginatorTrait, QueryFilter};
    let Scored { answers, question_tiers, tier } = classify(&settings.governance_dir)?;
    let audit = storage.verify_audit().await?;
    let cards = storage.data_cards().await?;
    let unapproved: Vec<&str> =
        cards.iter().filter(|c| c.card.status != "approved").map(|c| c.card.set.as_str()).collect();
    let receipts = deletion_receipt::Entity::find().count(storage.connection()).await?;
    let failed_receipts = deletion_receipt::Entity::find()
        .filter(deletion_receipt::Column::PostCheckPassed.eq(false))
        .count(storage.connection())
        .await?;
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
