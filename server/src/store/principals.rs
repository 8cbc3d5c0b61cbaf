//! Tenants, principals (people and service principals), service tokens and sessions.

use super::*;

impl Storage {
    pub async fn ensure_tenant(&self, id: &TenantId, name: &str) -> Result<()> {
        let row =
            tenant::ActiveModel { id: Set(id.to_string()), name: Set(name.to_owned()), created_at: Set(Utc::now()) };
        tenant::Entity::insert(row)
            .on_conflict(OnConflict::column(tenant::Column::Id).update_column(tenant::Column::Name).to_owned())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn tenant_exists(&self, id: &TenantId) -> Result<bool> {
        Ok(tenant::Entity::find_by_id(id.to_string()).one(&self.db).await?.is_some())
    }

    /// Creates or updates a principal and replaces its group memberships.
    pub async fn upsert_principal(&self, p: &PrincipalSeed) -> Result<()> {
        let txn = self.begin_write().await?;
        let row = principal::ActiveModel {
            id: Set(p.id.clone()),
            tenant_id: Set(p.tenant.to_string()),
            display_name: Set(p.display_name.clone()),
            role: Set(p.role.to_string()),
            clearance: Set(p.clearance.to_string()),
            created_at: Set(Utc::now()),
        };
        principal::Entity::insert(row)
            .on_conflict(
                OnConflict::column(principal::Column::Id)
                    .update_columns([
                        principal::Column::TenantId,
                        principal::Column::DisplayName,
                        principal::Column::Role,
                        principal::Column::Clearance,
                    ])
                    .to_owned(),
            )
            .exec(&txn)
            .await?;
        principal_group::Entity::delete_many()
            .filter(principal_group::Column::PrincipalId.eq(p.id.clone()))
            .exec(&txn)
            .await?;
        if !p.groups.is_empty() {
            let rows = p.groups.iter().map(|g| principal_group::ActiveModel {
                principal_id: Set(p.id.clone()),
                group_name: Set(g.to_string()),
            });
            principal_group::Entity::insert_many(rows).exec(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Loads a principal as an [`Actor`], or `None` when unknown.
    pub async fn actor(&self, principal_id: &str) -> Result<Option<Actor>> {
        let Some(row) = principal::Entity::find_by_id(principal_id.to_owned()).one(&self.db).await? else {
            return Ok(None);
        };
        let groups = principal_group::Entity::find()
            .filter(principal_group::Column::PrincipalId.eq(principal_id.to_owned()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|g| GroupName::parse(&g.group_name).map_err(Error::from))
            .collect::<Result<BTreeSet<_>>>()?;
        Ok(Some(Actor {
            principal_id: row.id,
            display_name: row.display_name,
            tenant: TenantId::parse(&row.tenant_id)?,
            role: row.role.parse()?,
            groups,
            clearance: row.clearance.parse()?,
            token_scopes: None,
        }))
    }

    /// Every principal except service principals, ordered by tenant then id (the development
    /// sign-in lists them).
    pub async fn list_actors(&self) -> Result<Vec<Actor>> {
        let rows = principal::Entity::find()
            .order_by_asc(principal::Column::TenantId)
            .order_by_asc(principal::Column::Id)
            .all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows.into_iter().filter(|r| !r.id.starts_with(crate::domain::SERVICE_PREFIX)) {
            if let Some(actor) = self.actor(&row.id).await? {
                out.push(actor);
            }
        }
        Ok(out)
    }

    /// Stores a service token (its SHA-256 only) for an existing principal.
    pub async fn insert_token(&self, row: service_token::Model) -> Result<()> {
        service_token::Entity::insert(service_token::ActiveModel::from(row)).exec(&self.db).await?;
        Ok(())
    }

    /// The token row whose hash is `token_sha256`.
    pub async fn token_by_hash(&self, token_sha256: &str) -> Result<Option<service_token::Model>> {
        Ok(service_token::Entity::find()
            .filter(service_token::Column::TokenSha256.eq(token_sha256.to_owned()))
            .one(&self.db)
            .await?)
    }

    /// The tokens of a tenant, newest first.
    pub async fn tokens(&self, tenant: &TenantId) -> Result<Vec<service_token::Model>> {
        Ok(service_token::Entity::find()
            .filter(service_token::Column::TenantId.eq(tenant.to_string()))
            .order_by_desc(service_token::Column::IssuedAt)
            .all(&self.db)
            .await?)
    }

    /// Revokes a token of `tenant`; false when there is no such unrevoked token.
    pub async fn revoke_token(&self, id: &str, tenant: &TenantId) -> Result<bool> {
        use sea_orm::sea_query::Expr;
        let done = service_token::Entity::update_many()
            .col_expr(service_token::Column::RevokedAt, Expr::value(Some(Utc::now())))
            .filter(service_token::Column::Id.eq(id.to_owned()))
            .filter(service_token::Column::TenantId.eq(tenant.to_string()))
            .filter(service_token::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Stores a new browser session (its token's SHA-256 only).
    pub async fn insert_session(&self, row: session::Model) -> Result<()> {
        session::Entity::insert(session::ActiveModel::from(row)).exec(&self.db).await?;
        Ok(())
    }

    /// The session whose token hashes to `token_sha256`, ended or not.
    pub async fn session_by_hash(&self, token_sha256: &str) -> Result<Option<session::Model>> {
        Ok(session::Entity::find()
            .filter(session::Column::TokenSha256.eq(token_sha256.to_owned()))
            .one(&self.db)
            .await?)
    }

    /// Records activity on an open session.
    pub async fn touch_session(&self, id: &str, at: chrono::DateTime<Utc>) -> Result<()> {
        use sea_orm::sea_query::Expr;
        session::Entity::update_many()
            .col_expr(session::Column::LastSeenAt, Expr::value(at))
            .filter(session::Column::Id.eq(id.to_owned()))
            .filter(session::Column::EndedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Ends an open session of `tenant`; false when there is no such open session.
    pub async fn end_session(&self, id: &str, tenant: &str, ended_by: &str, reason: &str) -> Result<bool> {
        use sea_orm::sea_query::Expr;
        let done = session::Entity::update_many()
            .col_expr(session::Column::EndedAt, Expr::value(Some(Utc::now())))
            .col_expr(session::Column::EndedBy, Expr::value(Some(ended_by.to_owned())))
            .col_expr(session::Column::EndReason, Expr::value(Some(reason.to_owned())))
            .filter(session::Column::Id.eq(id.to_owned()))
            .filter(session::Column::TenantId.eq(tenant.to_owned()))
            .filter(session::Column::EndedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// The sessions of a tenant, or of one principal in it, newest first; `open_after` leaves out
    /// sessions that ended or expired before it.
    pub async fn sessions(
        &self,
        tenant: &str,
        principal: Option<&str>,
        open_after: chrono::DateTime<Utc>,
    ) -> Result<Vec<session::Model>> {
        let mut q = session::Entity::find()
            .filter(session::Column::TenantId.eq(tenant.to_owned()))
            .filter(session::Column::EndedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(open_after));
        if let Some(p) = principal {
            q = q.filter(session::Column::PrincipalId.eq(p.to_owned()));
        }
        Ok(q.order_by_desc(session::Column::CreatedAt).all(&self.db).await?)
    }
}
