//! Browser sessions, kept on the server. A sign-in creates a session row and a random token; the
//! cookie carries the token (signed), the database only its SHA-256. Every request looks the
//! session up, so a session ends for good when its user signs out, when an administrator of the
//! tenant ends it, after `idle_minutes` without a request, or at its absolute end. A copied cookie
//! dies with its session.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::{Actor, Permission, PrincipalSeed};
use crate::error::{Error, Result};
use crate::store::{AuditRecord, Storage};

/// How long sessions last.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// From sign-in, whatever the activity.
    pub absolute_minutes: i64,
    /// Without a request.
    pub idle_minutes: i64,
}

/// Activity is written at most this often per session, so that each request is not a write.
const TOUCH_EVERY_SECS: i64 = 60;

/// A session as listed: never its token.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    pub id: String,
    pub principal_id: String,
    pub method: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The session this request came with.
    pub current: bool,
}

/// A signed-in request: who, and through which session.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub actor: Actor,
    pub session_id: String,
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

async fn audit(storage: &Storage, actor: &Actor, action: &str, outcome: &str, detail: serde_json::Value) -> Result<()> {
    storage.append_audit(AuditRecord::by(actor, action, outcome, detail)).await
}

/// Starts a session for `actor`, who has just proven who they are by `method`; returns the
/// token for the cookie. A session the browser still carried (`previous_token`) is ended, so a
/// sign-in never keeps an identifier that existed before it. The sign-in is audited with the new
/// session's public id and `detail`.
pub async fn start(
    storage: &Storage,
    actor: &Actor,
    method: &str,
    previous_token: Option<&str>,
    policy: SessionPolicy,
    mut detail: serde_json::Value,
) -> Result<String> {
    if let Some(previous) = previous_token
        && let Some(old) = storage.session_by_hash(&token_hash(previous)).await?
        && old.ended_at.is_none()
    {
        storage.end_session(&old.id, &old.tenant_id, &actor.principal_id, "replaced_at_sign_in").await?;
    }
    let token = crate::domain::random_hex(32)?;
    let id = crate::domain::random_hex(8)?;
    let now = Utc::now();
    storage
        .insert_session(crate::store::SessionRow {
            id: id.clone(),
            token_sha256: token_hash(&token),
            principal_id: actor.principal_id.clone(),
            tenant_id: actor.tenant.to_string(),
            method: method.to_owned(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + Duration::minutes(policy.absolute_minutes),
            ended_at: None,
            ended_by: None,
            end_reason: None,
        })
        .await?;
    if let serde_json::Value::Object(map) = &mut detail {
        map.insert("method".into(), method.into());
        map.insert("session".into(), id.into());
    }
    audit(storage, actor, "sign_in", "succeeded", detail).await?;
    Ok(token)
}

/// The actor of an open session, or [`Error::Unauthenticated`]. A session idle for longer than
/// the policy allows is ended here.
pub async fn authenticate(storage: &Storage, token: &str, policy: SessionPolicy) -> Result<Authenticated> {
    let Some(row) = storage.session_by_hash(&token_hash(token)).await? else {
        return Err(Error::Unauthenticated);
    };
    let now = Utc::now();
    if row.ended_at.is_some() || now >= row.expires_at {
        return Err(Error::Unauthenticated);
    }
    if now - row.last_seen_at > Duration::minutes(policy.idle_minutes) {
        storage.end_session(&row.id, &row.tenant_id, "lexgate", "idle").await?;
        return Err(Error::Unauthenticated);
    }
    let actor = storage.actor(&row.principal_id).await?.ok_or(Error::Unauthenticated)?;
    if actor.tenant.as_str() != row.tenant_id {
        return Err(Error::Unauthenticated);
    }
    if (now - row.last_seen_at).num_seconds() >= TOUCH_EVERY_SECS {
        storage.touch_session(&row.id, now).await?;
    }
    Ok(Authenticated { actor, session_id: row.id })
}

/// Ends the session of this token (sign-out). Nothing happens for a token with no open session.
pub async fn sign_out(storage: &Storage, token: &str) -> Result<()> {
    let Some(row) = storage.session_by_hash(&token_hash(token)).await? else {
        return Ok(());
    };
    if row.ended_at.is_some() {
        return Ok(());
    }
    storage.end_session(&row.id, &row.tenant_id, &row.principal_id, "signed_out").await?;
    if let Some(actor) = storage.actor(&row.principal_id).await? {
        audit(storage, &actor, "sign_out", "succeeded", serde_json::json!({ "session": row.id })).await?;
    }
    Ok(())
}

/// The open sessions `actor` may see: an administrator sees every open session of the tenant,
/// anyone else their own.
pub async fn list(storage: &Storage, actor: &Actor, current: &str) -> Result<Vec<SessionInfo>> {
    let tenant = actor.tenant.to_string();
    let own = (!actor.may(Permission::ManageDocuments)).then_some(actor.principal_id.as_str());
    let rows = storage.sessions(&tenant, own, Utc::now()).await?;
    Ok(rows
        .into_iter()
        .map(|r| SessionInfo {
            current: r.id == current,
            id: r.id,
            principal_id: r.principal_id,
            method: r.method,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
        })
        .collect())
}

/// Ends one open session: one's own, or, for an administrator, any of the tenant's. A session
/// the actor may not end is "not found", exactly like one that does not exist; refusals and
/// endings are audited.
pub async fn end(storage: &Storage, actor: &Actor, id: &str) -> Result<()> {
    let tenant = actor.tenant.to_string();
    let admin = actor.may(Permission::ManageDocuments);
    let own = (!admin).then_some(actor.principal_id.as_str());
    let visible = storage.sessions(&tenant, own, Utc::now()).await?.into_iter().find(|s| s.id == id);
    let Some(row) = visible else {
        audit(storage, actor, "end_session", "not_found", serde_json::json!({ "session": id })).await?;
        return Err(Error::NotFound);
    };
    let reason = if row.principal_id == actor.principal_id { "signed_out" } else { "ended_by_admin" };
    if !storage.end_session(&row.id, &tenant, &actor.principal_id, reason).await? {
        return Err(Error::NotFound);
    }
    audit(
        storage,
        actor,
        "end_session",
        "succeeded",
        serde_json::json!({ "session": row.id, "principal": row.principal_id, "reason": reason }),
    )
    .await
}

/// Records a refused request (no valid session or token, or a missing or wrong CSRF token) as
/// `request_refused` with the method, the path (never the query, which can hold a question) and
/// the client address. At most `limiter`'s rate per address is recorded, so a flood of refusals
/// cannot flood the audit log; a failure to record is logged and does not change the refusal.
pub async fn audit_refusal(
    storage: &Storage,
    limiter: &crate::service::limits::RateLimiter,
    reason: &str,
    method: &str,
    path: &str,
    client: Option<&str>,
) {
    let client = client.unwrap_or("unknown");
    if limiter.check(client).is_err() {
        return;
    }
    let path: String = path.chars().take(200).collect();
    let record = AuditRecord {
        actor: "anonymous".to_owned(),
        tenant: None,
        action: "request_refused".to_owned(),
        outcome: reason.to_owned(),
        detail: serde_json::json!({ "method": method, "path": path, "client": client }),
    };
    if let Err(e) = storage.append_audit(record).await {
        tracing::warn!(error = %e, "could not record a refused request");
    }
}

/// Signing in and out, and the sessions and service tokens requests carry, for the web layer.
#[derive(Debug, Clone)]
pub struct Sessions {
    storage: Storage,
    pub policy: SessionPolicy,
    /// How many refused requests per client address a minute are audited.
    pub refusals: crate::service::limits::RateLimiter,
}

impl Sessions {
    pub fn new(storage: Storage, policy: SessionPolicy, refusals: crate::service::limits::RateLimiter) -> Self {
        Self { storage, policy, refusals }
    }

    /// The actor of an open session (see [`authenticate`]).
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated> {
        authenticate(&self.storage, token, self.policy).await
    }

    /// The actor a service token stands for (see [`crate::service::tokens::authenticate`]).
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Actor> {
        crate::service::tokens::authenticate(&self.storage, token).await
    }

    /// The development sign-in: any recorded principal, by id. Returns the session token.
    pub async fn sign_in_development(&self, principal_id: &str, previous_token: Option<&str>) -> Result<String> {
        let actor = self.storage.actor(principal_id).await?.ok_or_else(|| Error::user("Unknown user."))?;
        start(&self.storage, &actor, "development", previous_token, self.policy, serde_json::json!({})).await
    }

    /// A sign-in proven by an identity provider: the tenant must be set up on the platform; the
    /// principal is recorded with the provider's access attributes and a session starts. A
    /// refusal is audited. Returns the session token.
    pub async fn sign_in_identity(
        &self,
        seed: &PrincipalSeed,
        previous_token: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<String> {
        if !self.storage.tenant_exists(&seed.tenant).await? {
            let e = Error::user("Your organisation is not set up on lexgate. Contact your administrator.");
            self.sign_in_rejected("oidc", &e).await?;
            return Err(e);
        }
        self.storage.upsert_principal(seed).await?;
        let actor = self
            .storage
            .actor(&seed.id)
            .await?
            .ok_or_else(|| Error::Internal("a principal just recorded is missing".into()))?;
        start(&self.storage, &actor, "oidc", previous_token, self.policy, detail).await
    }

    /// Audits a sign-in the identity provider did not complete.
    pub async fn sign_in_rejected(&self, method: &str, why: &Error) -> Result<()> {
        let reason = match why {
            Error::User(m) => m.clone(),
            other => other.to_string(),
        };
        self.storage
            .append_audit(AuditRecord {
                actor: "anonymous".to_owned(),
                tenant: None,
                action: "sign_in".to_owned(),
                outcome: "rejected".to_owned(),
                detail: serde_json::json!({ "method": method, "reason": reason }),
            })
            .await
    }

    /// See [`sign_out`].
    pub async fn sign_out(&self, token: &str) -> Result<()> {
        sign_out(&self.storage, token).await
    }

    /// See [`list`].
    pub async fn list(&self, actor: &Actor, current: &str) -> Result<Vec<SessionInfo>> {
        list(&self.storage, actor, current).await
    }

    /// See [`end`].
    pub async fn end(&self, actor: &Actor, id: &str) -> Result<()> {
        end(&self.storage, actor, id).await
    }

    /// See [`audit_refusal`].
    pub async fn audit_refusal(&self, reason: &str, method: &str, path: &str, client: Option<&str>) {
        audit_refusal(&self.storage, &self.refusals, reason, method, path, client).await;
    }
}
