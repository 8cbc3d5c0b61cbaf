//! The audit log as stored: appending to the hash chain under a lock on its head, sealing, walking and paging it.

use super::*;

impl Storage {
    /// Appends an event to the hash-chained audit log. The head row is locked first (an UPDATE
    /// takes the row lock on PostgreSQL and the write lock on SQLite), so concurrent appends from
    /// any number of processes form one chain.
    pub async fn append_audit(&self, e: AuditRecord) -> Result<()> {
        let txn = self.begin_write().await?;
        append_audit_in(&txn, e).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Chains events that have no hash yet because they were written before the chain existed,
    /// in id order. This happens once, while the chain is still empty: a row added outside
    /// lexgate later is never sealed, and `verify_audit` reports it. Returns how many were sealed.
    pub async fn seal_audit(&self) -> Result<u64> {
        let txn = self.begin_write().await?;
        let head = lock_audit_head(&txn).await?;
        if head.last_id != 0 {
            return Ok(0);
        }
        let unsealed = audit_event::Entity::find()
            .filter(audit_event::Column::Hash.is_null())
            .filter(audit_event::Column::Id.gt(head.last_id))
            .order_by_asc(audit_event::Column::Id)
            .all(&txn)
            .await?;
        let mut last = (head.last_id, head.last_hash);
        let count = unsealed.len() as u64;
        for e in unsealed {
            let at = chrono::SubsecRound::trunc_subsecs(e.at, 6);
            let hash = crate::store::audit::event_hash(
                &at,
                &e.actor,
                e.tenant_id.as_deref(),
                &e.action,
                &e.outcome,
                &e.detail,
                &last.1,
            );
            audit_event::Entity::update(audit_event::ActiveModel {
                id: Set(e.id),
                at: Set(at),
                prev_hash: Set(Some(last.1.clone())),
                hash: Set(Some(hash.clone())),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
            last = (e.id, hash);
        }
        if count > 0 {
            set_audit_head(&txn, last.0, last.1).await?;
        }
        txn.commit().await?;
        Ok(count)
    }

    /// Walks the whole audit chain; the result names the first edited, removed or moved event.
    pub async fn verify_audit(&self) -> Result<crate::store::audit::Verification> {
        use sea_orm::PaginatorTrait;
        let head = audit_head::Entity::find_by_id(1)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::Internal("the audit chain head is missing".into()))?;
        let mut events = Vec::new();
        let mut pages = audit_event::Entity::find().order_by_asc(audit_event::Column::Id).paginate(&self.db, 1000);
        while let Some(page) = pages.fetch_and_next().await? {
            events.extend(page);
        }
        Ok(crate::store::audit::verify(&events, head.last_id, &head.last_hash))
    }

    /// One page (from 0) of audit events, newest first, optionally filtered by tenant, action and
    /// outcome, and how many match in all. A tenant's events are those recorded with its id;
    /// events of no tenant (the command line's, refused requests, cross-tenant attempts) are
    /// nobody's tenant's.
    pub async fn audit_page(
        &self,
        tenant: Option<&TenantId>,
        page: u64,
        per_page: u64,
        action: Option<&str>,
        outcome: Option<&str>,
    ) -> Result<(Vec<audit_event::Model>, u64)> {
        use sea_orm::PaginatorTrait;
        let mut query = audit_event::Entity::find().order_by_desc(audit_event::Column::Id);
        if let Some(t) = tenant {
            query = query.filter(audit_event::Column::TenantId.eq(t.as_str()));
        }
        if let Some(a) = action {
            query = query.filter(audit_event::Column::Action.eq(a.to_owned()));
        }
        if let Some(o) = outcome {
            query = query.filter(audit_event::Column::Outcome.eq(o.to_owned()));
        }
        let pages = query.paginate(&self.db, per_page.max(1));
        let total = pages.num_items().await?;
        Ok((pages.fetch_page(page).await?, total))
    }

    /// Audit events (of one tenant, or of all) counted by action and outcome.
    pub async fn audit_counts(&self, tenant: Option<&TenantId>) -> Result<Vec<(String, String, i64)>> {
        use sea_orm::QuerySelect;
        let mut query = audit_event::Entity::find();
        if let Some(t) = tenant {
            query = query.filter(audit_event::Column::TenantId.eq(t.as_str()));
        }
        Ok(query
            .select_only()
            .column(audit_event::Column::Action)
            .column(audit_event::Column::Outcome)
            .column_as(audit_event::Column::Id.count(), "n")
            .group_by(audit_event::Column::Action)
            .group_by(audit_event::Column::Outcome)
            .order_by_asc(audit_event::Column::Action)
            .order_by_asc(audit_event::Column::Outcome)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// The most recent audit events, newest first.
    pub async fn recent_audit(&self, limit: u64) -> Result<Vec<audit_event::Model>> {
        use sea_orm::QuerySelect;
        Ok(audit_event::Entity::find().order_by_desc(audit_event::Column::Id).limit(limit).all(&self.db).await?)
    }
}

/// Locks the audit head row for the rest of the transaction and reads it.
async fn lock_audit_head(txn: &sea_orm::DatabaseTransaction) -> Result<audit_head::Model> {
    use sea_orm::sea_query::Expr;
    audit_head::Entity::update_many()
        .col_expr(audit_head::Column::LastId, Expr::col(audit_head::Column::LastId))
        .filter(audit_head::Column::Id.eq(1))
        .exec(txn)
        .await?;
    audit_head::Entity::find_by_id(1)
        .one(txn)
        .await?
        .ok_or_else(|| Error::Internal("the audit chain head is missing".into()))
}

async fn set_audit_head(txn: &sea_orm::DatabaseTransaction, last_id: i64, last_hash: String) -> Result<()> {
    audit_head::Entity::update(audit_head::ActiveModel {
        id: Set(1),
        last_id: Set(last_id),
        last_hash: Set(last_hash),
    })
    .exec(txn)
    .await?;
    Ok(())
}

/// Appends an event to the audit chain inside `txn`: it is written with the change it records,
/// or not at all.
pub(super) async fn append_audit_in(txn: &sea_orm::DatabaseTransaction, e: AuditRecord) -> Result<()> {
    let head = lock_audit_head(txn).await?;
    // Microseconds: what PostgreSQL keeps, so the hash of the stored value is the one computed.
    let at = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let detail = e.detail.to_string();
    let hash = crate::store::audit::event_hash(
        &at,
        &e.actor,
        e.tenant.as_deref(),
        &e.action,
        &e.outcome,
        &detail,
        &head.last_hash,
    );
    let inserted = audit_event::Entity::insert(audit_event::ActiveModel {
        at: Set(at),
        actor: Set(e.actor),
        tenant_id: Set(e.tenant),
        action: Set(e.action),
        outcome: Set(e.outcome),
        detail: Set(detail),
        prev_hash: Set(Some(head.last_hash)),
        hash: Set(Some(hash.clone())),
        ..Default::default()
    })
    .exec(txn)
    .await?;
    set_audit_head(txn, inserted.last_insert_id, hash).await
}
