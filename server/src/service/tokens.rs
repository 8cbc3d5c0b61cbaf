//! Bearer tokens for service principals (other systems calling the JSON API). An admin issues a
//! token for their own tenant with the scopes it needs; the token is shown once and only its
//! SHA-256 is stored. Every request with a token is checked against the database, so a revoked
//! token stops working at once.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use indexer::{Classification, GroupName};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::PrincipalSeed;
use crate::domain::{Actor, Permission, Role};
use crate::error::{Error, Result};
use crate::store::{AuditRecord, Storage};

pub use crate::domain::SERVICE_PREFIX;

/// Tokens start with this, so a leaked one is easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "lxg_";

/// What a new token may do and read.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// A short name, unique in the tenant: letters, digits and dashes.
    pub name: String,
    pub scopes: Vec<Permission>,
    pub groups: BTreeSet<GroupName>,
    pub clearance: Classification,
    pub valid_days: i64,
}

/// A token as listed: never the secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub principal_id: String,
    pub scopes: Vec<String>,
    pub issued_by: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<crate::store::ServiceTokenRow> for TokenInfo {
    fn from(t: crate::store::ServiceTokenRow) -> Self {
        Self {
            scopes: t.scopes.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            id: t.id,
            name: t.name,
            principal_id: t.principal_id,
            issued_by: t.issued_by,
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

async fn audit(
    storage: &Storage,
    actor: &str,
    tenant: &str,
    action: &str,
    outcome: &str,
    detail: serde_json::Value,
) -> Result<()> {
    storage
        .append_audit(AuditRecord {
            actor: actor.to_owned(),
            tenant: Some(tenant.to_owned()),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            detail,
        })
        .await
}

/// Issues a token for a service principal of the admin's tenant. Returns the token (shown
/// once) and its record. Admins may grant `ask` and `documents`, not `governance`.
pub async fn issue(storage: &Storage, admin: &Actor, request: &TokenRequest) -> Result<(String, TokenInfo)> {
    let tenant = admin.tenant.to_string();
    if !admin.may(Permission::ManageDocuments) || admin.token_scopes.is_some() {
        audit(
            storage,
            &admin.principal_id,
            &tenant,
            "issue_token",
            "denied",
            serde_json::json!({ "role": admin.role }),
        )
        .await?;
        return Err(Error::Forbidden);
    }
    let name = request.name.trim();
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::user("A token name is 1-64 letters, digits or dashes."));
    }
    if request.scopes.is_empty() {
        return Err(Error::user("Give the token at least one scope: ask or documents."));
    }
    if request.scopes.contains(&Permission::ReadGovernance) {
        return Err(Error::user("Admins cannot grant the governance scope."));
    }
    if request.groups.is_empty() {
        return Err(Error::user("Name at least one group whose documents the token may read."));
    }
    if !(1..=366).contains(&request.valid_days) {
        return Err(Error::user("A token is valid for 1 to 366 days."));
    }
    let principal_id = format!("{SERVICE_PREFIX}{tenant}:{name}");
    let role = if request.scopes.contains(&Permission::ManageDocuments) { Role::Admin } else { Role::Analyst };
    storage
        .upsert_principal(&PrincipalSeed {
            id: principal_id.clone(),
            display_name: format!("service {name}"),
            tenant: admin.tenant.clone(),
            role,
            groups: request.groups.clone(),
            clearance: request.clearance,
        })
        .await?;
    let token = format!("{TOKEN_PREFIX}{}", crate::domain::random_hex(32)?);
    let now = Utc::now();
    let row = crate::store::ServiceTokenRow {
        id: crate::domain::random_hex(8)?,
        token_sha256: token_hash(&token),
        principal_id: principal_id.clone(),
        tenant_id: tenant.clone(),
        name: name.to_owned(),
        scopes: request.scopes.iter().map(|p| p.scope()).collect::<Vec<_>>().join(","),
        issued_by: admin.principal_id.clone(),
        issued_at: now,
        expires_at: Some(now + Duration::days(request.valid_days)),
        revoked_at: None,
    };
    storage.insert_token(row.clone()).await?;
    audit(
        storage,
        &admin.principal_id,
        &tenant,
        "issue_token",
        "succeeded",
        serde_json::json!({ "token": row.id, "principal": principal_id, "scopes": row.scopes }),
    )
    .await?;
    Ok((token, row.into()))
}

/// Revokes one of the admin's tenant's tokens.
pub async fn revoke(storage: &Storage, admin: &Actor, id: &str) -> Result<()> {
    let tenant = admin.tenant.to_string();
    if !admin.may(Permission::ManageDocuments) || admin.token_scopes.is_some() {
        audit(storage, &admin.principal_id, &tenant, "revoke_token", "denied", serde_json::json!({ "token": id }))
            .await?;
        return Err(Error::Forbidden);
    }
    if !storage.revoke_token(id, &admin.tenant).await? {
        return Err(Error::NotFound);
    }
    audit(storage, &admin.principal_id, &tenant, "revoke_token", "succeeded", serde_json::json!({ "token": id })).await
}

/// The tokens of the admin's tenant.
pub async fn list(storage: &Storage, admin: &Actor) -> Result<Vec<TokenInfo>> {
    if !admin.may(Permission::ManageDocuments) {
        return Err(Error::Forbidden);
    }
    Ok(storage.tokens(&admin.tenant).await?.into_iter().map(TokenInfo::from).collect())
}

/// The actor a bearer token stands for, or why it is refused. Refusals are audited.
pub async fn authenticate(storage: &Storage, token: &str) -> Result<Actor> {
    let refuse = |why: &'static str| Error::Token(why.to_owned());
    let row = match storage.token_by_hash(&token_hash(token.trim())).await? {
        Some(row) => row,
        None => {
            audit(storage, "anonymous", "-", "api_token", "rejected", serde_json::json!({ "reason": "unknown" }))
                .await?;
            return Err(refuse("This token is not valid."));
        }
    };
    let reason = if row.revoked_at.is_some() {
        Some(("revoked", "This token has been revoked."))
    } else if row.expires_at.is_some_and(|e| e <= Utc::now()) {
        Some(("expired", "This token has expired."))
    } else {
        None
    };
    if let Some((code, message)) = reason {
        audit(
            storage,
            &row.principal_id,
            &row.tenant_id,
            "api_token",
            "rejected",
            serde_json::json!({ "token": row.id, "reason": code }),
        )
        .await?;
        return Err(refuse(message));
    }
    let mut actor = storage.actor(&row.principal_id).await?.ok_or_else(|| refuse("This token is not valid."))?;
    actor.token_scopes = Some(row.scopes.split(',').filter_map(|s| Permission::from_scope(s).ok()).collect());
    Ok(actor)
}

/// Service tokens of a tenant, for its admins.
#[derive(Debug, Clone)]
pub struct Tokens {
    storage: Storage,
}

impl Tokens {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    /// See [`list`].
    pub async fn list(&self, admin: &Actor) -> Result<Vec<TokenInfo>> {
        list(&self.storage, admin).await
    }

    /// See [`issue`].
    pub async fn issue(&self, admin: &Actor, request: &TokenRequest) -> Result<(String, TokenInfo)> {
        issue(&self.storage, admin, request).await
    }

    /// See [`revoke`].
    pub async fn revoke(&self, admin: &Actor, id: &str) -> Result<()> {
        revoke(&self.storage, admin, id).await
    }
}
