//! Governance records: the model inventory with its change records, and the data cards of the
//! document sets.

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};

use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::store::Storage;
use crate::store::entities::{deletion_receipt, model_change_record, model_inventory};

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
        let txn = self.begin_write().await?;
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
        self.data_cards_of(None).await
    }

    /// The card of one document set (a tenant's collection), or every card, with their measured
    /// fields; only the cards asked for are measured.
    pub async fn data_cards_of(&self, set: Option<&str>) -> Result<Vec<CardView>> {
        use crate::store::entities::data_card;
        let mut query = data_card::Entity::find().order_by_asc(data_card::Column::SetId);
        if let Some(set) = set {
            query = query.filter(data_card::Column::SetId.eq(set));
        }
        let mut out = Vec::new();
        for row in query.all(self.connection()).await? {
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

impl Storage {
    /// Deletion receipts recorded (of one tenant, or of all), and how many of them have a failed
    /// post-check.
    pub async fn deletion_receipt_counts(&self, tenant: Option<&TenantId>) -> Result<(u64, u64)> {
        let of_tenant = |q: sea_orm::Select<deletion_receipt::Entity>| match tenant {
            Some(t) => q.filter(deletion_receipt::Column::TenantId.eq(t.as_str())),
            None => q,
        };
        let total = of_tenant(deletion_receipt::Entity::find()).count(self.connection()).await?;
        let failed = of_tenant(deletion_receipt::Entity::find())
            .filter(deletion_receipt::Column::PostCheckPassed.eq(false))
            .count(self.connection())
            .await?;
        Ok((total, failed))
    }

    /// The deletion receipts of one tenant, or of all, oldest first.
    pub async fn deletion_receipts(&self, tenant: Option<&TenantId>) -> Result<Vec<deletion_receipt::Model>> {
        let mut query = deletion_receipt::Entity::find().order_by_asc(deletion_receipt::Column::DeletedAt);
        if let Some(t) = tenant {
            query = query.filter(deletion_receipt::Column::TenantId.eq(t.as_str()));
        }
        Ok(query.all(self.connection()).await?)
    }
}

/// Whether `s` is a sha256 in hex.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
