//! The obligation register as stored: obligations of regulation versions, the review state each
//! carries, and the policy passages an analyst confirmed or rejected as their controls.

use std::collections::HashMap;

use sea_orm::sea_query::SelectStatement;

use super::*;
use crate::store::entities::{obligation, obligation_control};

pub use entities::obligation::Model as ObligationRow;
pub use entities::obligation_control::Model as ControlRow;

/// The state of a control an analyst confirmed.
pub const CONFIRMED: &str = "confirmed";

/// An obligation of the previous version, as far as comparing versions needs it.
#[derive(Debug, Clone)]
pub struct Previous {
    pub id: String,
    pub key: String,
    pub chunk_id: String,
    pub page: u32,
    pub heading_path: String,
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub owner: Option<String>,
    pub due_date: Option<chrono::NaiveDate>,
}

/// The row id of an obligation: its version and its key.
pub fn obligation_id(document_id: &str, version: u32, key: &str) -> String {
    format!("{document_id}~v{version}~{key}")
}

/// Writes the obligations of a version being inserted, carrying over the controls of the
/// previous version's obligations they continue.
pub(super) async fn insert(
    txn: &sea_orm::DatabaseTransaction,
    v: &NewVersion,
    now: chrono::DateTime<Utc>,
) -> Result<()> {
    insert_rows(txn, &v.document_id, v.version, v.acl.tenant.as_str(), &v.obligations, now).await
}

async fn insert_rows(
    txn: &sea_orm::DatabaseTransaction,
    document_id: &str,
    version: u32,
    tenant: &str,
    obligations: &[NewObligation],
    now: chrono::DateTime<Utc>,
) -> Result<()> {
    let version_id = version_row_id(document_id, version);
    for batch in obligations.chunks(100) {
        let rows = batch.iter().map(|o| obligation::ActiveModel {
            id: Set(obligation_id(document_id, version, &o.key)),
            tenant_id: Set(tenant.to_owned()),
            version_id: Set(version_id.clone()),
            document_id: Set(document_id.to_owned()),
            version: Set(to_i32(version)),
            ordinal: Set(to_i32(o.ordinal)),
            obligation_key: Set(o.key.clone()),
            chunk_id: Set(o.chunk_id.clone()),
            page: Set(to_i32(o.page)),
            heading_path: Set(o.heading_path.clone()),
            span_start: Set(i32::try_from(o.start).unwrap_or(i32::MAX)),
            span_end: Set(i32::try_from(o.end).unwrap_or(i32::MAX)),
            text: Set(o.text.clone()),
            addressee: Set(o.addressee.clone()),
            modality: Set(o.modality.clone()),
            action: Set(o.action.clone()),
            timing: Set(o.timing.clone()),
            timing_iso: Set(o.timing_iso.clone()),
            conditions: Set(o.conditions.clone()),
            change: Set(o.change.clone()),
            previous_text: Set(o.previous_text.clone()),
            status: Set(o.status.clone()),
            status_reason: Set(o.status_reason.clone()),
            owner: Set(o.owner.clone()),
            due_date: Set(o.due_date),
            detector: Set(o.detector.clone()),
            created_at: Set(now),
            updated_at: Set(now),
        });
        obligation::Entity::insert_many(rows).exec(txn).await?;
    }
    for o in obligations.iter().filter(|o| o.change != "removed") {
        let Some(previous) = &o.previous_id else { continue };
        let controls = obligation_control::Entity::find()
            .filter(obligation_control::Column::ObligationId.eq(previous))
            .all(txn)
            .await?;
        if controls.is_empty() {
            continue;
        }
        let id = obligation_id(document_id, version, &o.key);
        let rows = controls.into_iter().map(|c| obligation_control::ActiveModel {
            obligation_id: Set(id.clone()),
            chunk_id: Set(c.chunk_id),
            document_id: Set(c.document_id),
            version: Set(c.version),
            score: Set(c.score),
            state: Set(c.state),
            decided_by: Set(c.decided_by),
            decided_at: Set(c.decided_at),
        });
        obligation_control::Entity::insert_many(rows).exec(txn).await?;
    }
    Ok(())
}

/// Deletes, with versions of `document_id` being deleted, every copy of their text in the
/// register: their obligations, the `removed` rows of later versions that point at their
/// passages, the previous-version text later versions keep for their diffs, and every control
/// suggestion or decision on any of these or on their passages.
pub(super) async fn delete_of_versions(
    txn: &sea_orm::DatabaseTransaction,
    document_id: &str,
    version_ids: &[String],
    chunk_ids_of_versions: SelectStatement,
) -> Result<()> {
    use sea_orm::sea_query::{Expr, Query};
    let gone = sea_orm::Condition::any()
        .add(obligation::Column::VersionId.is_in(version_ids.to_vec()))
        .add(obligation::Column::ChunkId.in_subquery(chunk_ids_of_versions.clone()));
    let obligations_gone =
        Query::select().column(obligation::Column::Id).from(obligation::Entity).cond_where(gone.clone()).to_owned();
    obligation_control::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(obligation_control::Column::ObligationId.in_subquery(obligations_gone))
                .add(obligation_control::Column::ChunkId.in_subquery(chunk_ids_of_versions)),
        )
        .exec(txn)
        .await?;
    obligation::Entity::delete_many().filter(gone).exec(txn).await?;
    obligation::Entity::update_many()
        .col_expr(obligation::Column::PreviousText, Expr::value(Option::<String>::None))
        .filter(obligation::Column::DocumentId.eq(document_id))
        .exec(txn)
        .await?;
    Ok(())
}

impl Storage {
    /// The obligations of the latest version before `version` that has any (removed ones
    /// excluded), for comparing a new version with it.
    pub async fn previous_obligations(&self, document_id: &str, version: u32) -> Result<Vec<Previous>> {
        let latest = obligation::Entity::find()
            .filter(obligation::Column::DocumentId.eq(document_id))
            .filter(obligation::Column::Version.lt(to_i32(version)))
            .order_by_desc(obligation::Column::Version)
            .one(&self.db)
            .await?;
        let Some(latest) = latest else { return Ok(Vec::new()) };
        let rows = obligation::Entity::find()
            .filter(obligation::Column::DocumentId.eq(document_id))
            .filter(obligation::Column::Version.eq(latest.version))
            .filter(obligation::Column::Change.ne("removed"))
            .order_by_asc(obligation::Column::Ordinal)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Previous {
                id: r.id,
                key: r.obligation_key,
                chunk_id: r.chunk_id,
                page: u32::try_from(r.page).unwrap_or(0),
                heading_path: r.heading_path,
                start: usize::try_from(r.span_start).unwrap_or(0),
                end: usize::try_from(r.span_end).unwrap_or(0),
                text: r.text,
                status: r.status,
                status_reason: r.status_reason,
                owner: r.owner,
                due_date: r.due_date,
            })
            .collect())
    }

    /// The obligations of the latest version of each regulation that has any: the current
    /// register of one tenant, or of every tenant (`None`, for the governance packet). Access is
    /// decided by the caller, per version.
    pub async fn current_obligations(&self, tenant: Option<&TenantId>) -> Result<Vec<ObligationRow>> {
        let mut query = obligation::Entity::find();
        if let Some(tenant) = tenant {
            query = query.filter(obligation::Column::TenantId.eq(tenant.as_str()));
        }
        let rows = query
            .order_by_asc(obligation::Column::DocumentId)
            .order_by_desc(obligation::Column::Version)
            .order_by_asc(obligation::Column::Ordinal)
            .all(&self.db)
            .await?;
        let mut latest: BTreeMap<String, i32> = BTreeMap::new();
        for r in &rows {
            latest.entry(r.document_id.clone()).or_insert(r.version);
        }
        Ok(rows.into_iter().filter(|r| latest.get(&r.document_id) == Some(&r.version)).collect())
    }

    /// The obligations of one version, in order.
    pub async fn version_obligations(&self, document_id: &str, version: u32) -> Result<Vec<ObligationRow>> {
        Ok(obligation::Entity::find()
            .filter(obligation::Column::DocumentId.eq(document_id))
            .filter(obligation::Column::Version.eq(to_i32(version)))
            .order_by_asc(obligation::Column::Ordinal)
            .all(&self.db)
            .await?)
    }

    pub async fn obligation(&self, id: &str) -> Result<Option<ObligationRow>> {
        Ok(obligation::Entity::find_by_id(id.to_owned()).one(&self.db).await?)
    }

    /// Controls of an obligation, best score first.
    pub async fn obligation_controls(&self, obligation_id: &str) -> Result<Vec<ControlRow>> {
        Ok(obligation_control::Entity::find()
            .filter(obligation_control::Column::ObligationId.eq(obligation_id))
            .order_by_desc(obligation_control::Column::Score)
            .all(&self.db)
            .await?)
    }

    /// How many controls are confirmed for each obligation (of one tenant, or of all), for gaps.
    pub async fn confirmed_controls(&self, tenant: Option<&TenantId>) -> Result<HashMap<String, usize>> {
        use sea_orm::sea_query::Query;
        let mut query = obligation_control::Entity::find().filter(obligation_control::Column::State.eq(CONFIRMED));
        if let Some(tenant) = tenant {
            let of_tenant = Query::select()
                .column(obligation::Column::Id)
                .from(obligation::Entity)
                .and_where(obligation::Column::TenantId.eq(tenant.as_str()))
                .to_owned();
            query = query.filter(obligation_control::Column::ObligationId.in_subquery(of_tenant));
        }
        let mut counts = HashMap::new();
        for c in query.all(&self.db).await? {
            *counts.entry(c.obligation_id).or_default() += 1;
        }
        Ok(counts)
    }

    /// Sets an obligation's review state (and owner and due date when given) with its audit
    /// event, in one transaction; `expected` guards against a concurrent change: when the stored
    /// state is no longer it, nothing is written and `false` is returned.
    pub async fn set_obligation_status(
        &self,
        id: &str,
        expected: &str,
        status: &str,
        reason: Option<String>,
        owner_and_due: Option<(String, chrono::NaiveDate)>,
        audit: AuditRecord,
    ) -> Result<bool> {
        let txn = self.begin_write().await?;
        let mut update = obligation::Entity::update_many()
            .col_expr(obligation::Column::Status, sea_orm::sea_query::Expr::value(status))
            .col_expr(obligation::Column::StatusReason, sea_orm::sea_query::Expr::value(reason))
            .col_expr(obligation::Column::UpdatedAt, sea_orm::sea_query::Expr::value(Utc::now()));
        if let Some((owner, due)) = owner_and_due {
            update = update
                .col_expr(obligation::Column::Owner, sea_orm::sea_query::Expr::value(owner))
                .col_expr(obligation::Column::DueDate, sea_orm::sea_query::Expr::value(due));
        }
        let changed = update
            .filter(obligation::Column::Id.eq(id))
            .filter(obligation::Column::Status.eq(expected))
            .exec(&txn)
            .await?
            .rows_affected;
        if changed == 0 {
            return Ok(false);
        }
        super::audit_log::append_audit_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Confirms or rejects a policy passage as a control of an obligation, with its audit event,
    /// in one transaction; a second decision on the same passage replaces the first.
    #[allow(clippy::too_many_arguments)]
    pub async fn decide_control(
        &self,
        obligation_id: &str,
        chunk_id: &str,
        document_id: &str,
        version: u32,
        score: f64,
        state: &str,
        by: &str,
        audit: AuditRecord,
    ) -> Result<()> {
        let txn = self.begin_write().await?;
        obligation_control::Entity::insert(obligation_control::ActiveModel {
            obligation_id: Set(obligation_id.to_owned()),
            chunk_id: Set(chunk_id.to_owned()),
            document_id: Set(document_id.to_owned()),
            version: Set(to_i32(version)),
            score: Set(score),
            state: Set(state.to_owned()),
            decided_by: Set(Some(by.to_owned())),
            decided_at: Set(Some(Utc::now())),
        })
        .on_conflict(
            OnConflict::columns([obligation_control::Column::ObligationId, obligation_control::Column::ChunkId])
                .update_columns([
                    obligation_control::Column::State,
                    obligation_control::Column::DecidedBy,
                    obligation_control::Column::DecidedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        super::audit_log::append_audit_in(&txn, audit).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Marks a document as a regulation, a policy or other.
    pub async fn set_document_kind(&self, document_id: &str, kind: crate::domain::DocumentKind) -> Result<()> {
        document::Entity::update_many()
            .col_expr(document::Column::Kind, sea_orm::sea_query::Expr::value(kind.as_str()))
            .filter(document::Column::Id.eq(document_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Writes the obligations found in a stored version, all or none.
    pub async fn insert_obligations(
        &self,
        document_id: &str,
        version: u32,
        tenant: &str,
        found: &[NewObligation],
    ) -> Result<()> {
        let txn = self.begin_write().await?;
        insert_rows(&txn, document_id, version, tenant, found, Utc::now()).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Ids of a tenant's documents of a kind.
    pub async fn documents_of_kind(&self, tenant: &TenantId, kind: crate::domain::DocumentKind) -> Result<Vec<String>> {
        Ok(document::Entity::find()
            .filter(document::Column::TenantId.eq(tenant.as_str()))
            .filter(document::Column::Kind.eq(kind.as_str()))
            .order_by_asc(document::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect())
    }
}
