//! Sign-in with OpenID Connect: the authorization code flow with PKCE, `state` and `nonce`.
//!
//! At start-up the provider's discovery document and signing keys (JWKS) are fetched. A sign-in
//! sends the browser to the provider with a fresh `state`, `nonce` and PKCE challenge, kept in an
//! encrypted short-lived cookie. On return, the `state` must match, the code is exchanged (with the
//! PKCE verifier) for an ID token, and the token is verified here: signature against the
//! provider's keys (asymmetric algorithms only), issuer, audience, authorized party, expiry,
//! issue time and nonce. The verified claims become a principal: tenant, groups, clearance and
//! role come from claims whose names are configurable.

use std::collections::BTreeSet;
use std::sync::RwLock;
use std::time::Duration;

use crate::domain::{Classification, GroupName, TenantId};
use chrono::Utc;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardRevocableToken, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::PrincipalSeed;
use crate::domain::Role;
use crate::error::{Error, Result};
use crate::settings::OidcSettings;

/// Tolerated clock difference between lexgate and the provider, in seconds.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// How long a sign-in may take at the provider before it has to start again, in seconds.
pub const PENDING_LOGIN_SECS: i64 = 10 * 60;

/// The token response's `id_token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    pub id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type TokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;
type Client = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

/// A sign-in in progress, kept in an encrypted cookie between the redirect and the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Unix time after which the callback is refused.
    pub expires: i64,
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub name: String,
    pub tenant: TenantId,
    pub groups: BTreeSet<GroupName>,
    pub clearance: Classification,
    pub role: Role,
}

impl Identity {
    /// Principal ids of provider users are namespaced so they cannot collide with local ones.
    pub fn principal_id(&self) -> String {
        format!("oidc:{}", self.subject)
    }

    pub fn principal_seed(&self) -> PrincipalSeed {
        PrincipalSeed {
            id: self.principal_id(),
            display_name: self.name.clone(),
            tenant: self.tenant.clone(),
            role: self.role,
            groups: self.groups.clone(),
            clearance: self.clearance,
        }
    }
}

/// The relying party: lexgate's client of one OpenID provider.
pub struct OidcClient {
    settings: OidcSettings,
    client: Client,
    jwks_uri: String,
    jwks: RwLock<JwkSet>,
    http: ureq::Agent,
    pub end_session_endpoint: Option<String>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient").field("issuer", &self.settings.issuer).finish_non_exhaustive()
    }
}

fn config_error(msg: impl Into<String>) -> Error {
    Error::user(format!("OpenID Connect: {}", msg.into()))
}

/// Plain HTTP is accepted only for a provider on this machine (tests, development).
fn check_scheme(url: &str, what: &str) -> Result<()> {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| url.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/'])));
    if url.starts_with("https://") || loopback {
        Ok(())
    } else {
        Err(config_error(format!("{what} must be an https:// URL (plain http only on a loopback address): {url}")))
    }
}

impl OidcClient {
    /// Fetches the provider's discovery document and keys. Blocking: call it off the async runtime.
    pub fn discover(settings: OidcSettings) -> Result<Self> {
        check_scheme(&settings.issuer, "the issuer")?;
        check_scheme(&settings.redirect_url, "redirect_url")?;
        let http: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            // Never follow redirects: a token request must go exactly where discovery said.
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into();
        let issuer = settings.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let discovery: Discovery = get_json(&http, &url)?;
        // OpenID Connect Discovery 1.0, section 4.3: the issuer must be exactly the one configured.
        if discovery.issuer != settings.issuer {
            return Err(config_error(format!(
                "the provider says its issuer is {}, not the configured {}",
                discovery.issuer, settings.issuer
            )));
        }
        for (what, url) in [
            ("authorization_endpoint", &discovery.authorization_endpoint),
            ("token_endpoint", &discovery.token_endpoint),
            ("jwks_uri", &discovery.jwks_uri),
        ] {
            check_scheme(url, what)?;
        }
        let jwks: JwkSet = get_json(&http, &discovery.jwks_uri)?;
        let invalid = |what: &str, e: &dyn std::fmt::Display| config_error(format!("invalid {what}: {e}"));
        let client = oauth2::Client::new(ClientId::new(settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(settings.client_secret.expose().to_owned()))
            .set_auth_uri(
                AuthUrl::new(discovery.authorization_endpoint.clone()).map_err(|e| invalid("authorization URL", &e))?,
            )
            .set_token_uri(TokenUrl::new(discovery.token_endpoint.clone()).map_err(|e| invalid("token URL", &e))?)
            .set_redirect_uri(
                RedirectUrl::new(settings.redirect_url.clone()).map_err(|e| invalid("redirect_url", &e))?,
            );
        Ok(Self {
            client,
            jwks_uri: discovery.jwks_uri,
            jwks: RwLock::new(jwks),
            http,
            end_session_endpoint: discovery.end_session_endpoint,
            settings,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// The provider URL to send the browser to, and what the callback must check.
    pub fn begin(&self) -> (String, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random();
        let mut request = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("openid".to_owned()))
            .add_extra_param("nonce", nonce.secret())
            .set_pkce_challenge(challenge);
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state) = request.url();
        let pending = PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            expires: Utc::now().timestamp() + PENDING_LOGIN_SECS,
        };
        (url.to_string(), pending)
    }

    /// Completes a sign-in: checks `state`, exchanges the code and verifies the ID token.
    /// Blocking: call it off the async runtime.
    pub fn complete(&self, pending: &PendingLogin, state: &str, code: &str) -> Result<Identity> {
        if Utc::now().timestamp() > pending.expires {
            return Err(Error::user("The sign-in took too long. Please sign in again."));
        }
        if state.is_empty() || !constant_time_eq(state.as_bytes(), pending.state.as_bytes()) {
            return Err(Error::user(
                "The sign-in response does not belong to this browser's sign-in. Please sign in again.",
            ));
        }
        let id_token = self.exchange(pending, code)?;
        self.verify_id_token(&id_token, &pending.nonce, Utc::now().timestamp())
    }

    /// Exchanges an authorization code (with the PKCE verifier) for the raw ID token.
    pub fn exchange(&self, pending: &PendingLogin, code: &str) -> Result<String> {
        let http = |request: oauth2::HttpRequest| -> std::result::Result<oauth2::HttpResponse, ureq::Error> {
            let response = self.http.run(request)?;
            let (parts, mut body) = response.into_parts();
            let bytes = body.with_config().limit(1024 * 1024).read_to_vec()?;
            Ok(oauth2::HttpResponse::from_parts(parts, bytes))
        };
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request(&http)
            .map_err(|e| {
                tracing::warn!(error = %e, "OpenID token exchange failed");
                Error::user("The identity provider did not accept the sign-in. Please sign in again.")
            })?;
        response.extra_fields().id_token.clone().ok_or_else(|| Error::user("The identity provider sent no ID token."))
    }

    /// Verifies an ID token as of unix time `now` and maps its claims to an identity.
    pub fn verify_id_token(&self, raw: &str, expected_nonce: &str, now: i64) -> Result<Identity> {
        let rejected = |why: &str| {
            tracing::warn!(reason = why, "ID token rejected");
            Error::user(format!("The sign-in was rejected: {why}. Please sign in again."))
        };
        let header = jsonwebtoken::decode_header(raw).map_err(|_| rejected("the ID token is malformed"))?;
        // Asymmetric signatures only: "none" cannot be decoded and HMAC would use the client secret.
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err(rejected("the ID token uses an unaccepted signature algorithm"));
        }
        let key = match self.key_for(header.kid.as_deref(), header.alg)? {
            Some(key) => key,
            None => {
                // The provider may have rotated its keys since start-up.
                self.refresh_keys()?;
                self.key_for(header.kid.as_deref(), header.alg)?
                    .ok_or_else(|| rejected("the ID token is signed with an unknown key"))?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.settings.issuer.as_str()]);
        validation.set_audience(&[self.settings.client_id.as_str()]);
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp", "iat"]);
        // Time is checked below against `now`, so that tests can check expiry exactly.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(raw, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => rejected("the ID token's signature is invalid"),
                ErrorKind::InvalidIssuer => rejected("the ID token comes from another issuer"),
                ErrorKind::InvalidAudience => rejected("the ID token was issued to another client"),
                _ => rejected("the ID token is invalid"),
            }
        })?;
        let claims = data.claims;
        let number = |name: &str| claims.get(name).and_then(Value::as_i64);
        let exp = number("exp").ok_or_else(|| rejected("the ID token has no expiry"))?;
        if now > exp + CLOCK_SKEW_SECS {
            return Err(rejected("the ID token has expired"));
        }
        let iat = number("iat").ok_or_else(|| rejected("the ID token has no issue time"))?;
        if iat > now + CLOCK_SKEW_SECS {
            return Err(rejected("the ID token is issued in the future"));
        }
        // With several audiences the token must name lexgate as its authorized party.
        if claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1)
            && claims.get("azp").and_then(Value::as_str) != Some(self.settings.client_id.as_str())
        {
            return Err(rejected("the ID token was issued to another client"));
        }
        let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
        if expected_nonce.is_empty() || !constant_time_eq(nonce.as_bytes(), expected_nonce.as_bytes()) {
            return Err(rejected("the ID token does not belong to this sign-in"));
        }
        self.identity(&claims)
    }

    /// Maps verified claims to lexgate's access attributes. Missing role and clearance fall back to
    /// the least privilege (analyst, public); a missing or malformed tenant refuses the sign-in.
    pub fn identity(&self, claims: &serde_json::Map<String, Value>) -> Result<Identity> {
        let names = &self.settings.claims;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let subject = text("sub").ok_or_else(|| Error::user("The identity provider sent no subject."))?.to_owned();
        let tenant = text(&names.tenant).ok_or_else(|| {
            Error::user("Your account at the identity provider names no organisation, so lexgate cannot sign you in.")
        })?;
        let tenant = TenantId::parse(tenant)
            .map_err(|_| Error::user("Your account's organisation is not a valid lexgate tenant."))?;
        let groups = match claims.get(&names.groups) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(_) => return Err(Error::user("Your account's groups claim is not a list of names.")),
        };
        let groups = groups
            .iter()
            .map(|g| GroupName::parse(g).map_err(|_| Error::user(format!("Your account's group '{g}' is not valid."))))
            .collect::<Result<BTreeSet<_>>>()?;
        let clearance = match text(&names.clearance) {
            None => Classification::Public,
            Some(c) => c.parse().map_err(|_| Error::user(format!("Your account's clearance '{c}' is not known.")))?,
        };
        let role = match text(&names.role) {
            None => Role::Analyst,
            Some(r) => r.parse()?,
        };
        let name = text(&names.name).unwrap_or(&subject).to_owned();
        Ok(Identity { subject, name, tenant, groups, clearance, role })
    }

    fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Option<DecodingKey>> {
        let jwks = self.jwks.read().map_err(|_| Error::Internal("JWKS lock poisoned".into()))?;
        let jwk = match kid {
            Some(kid) => jwks.find(kid),
            // Without a key id, only an unambiguous key set is usable.
            None if jwks.keys.len() == 1 => jwks.keys.first(),
            None => None,
        };
        let Some(jwk) = jwk else { return Ok(None) };
        if let Some(key_alg) = jwk.common.key_algorithm
            && format!("{key_alg:?}") != format!("{alg:?}")
        {
            return Ok(None);
        }
        DecodingKey::from_jwk(jwk).map(Some).map_err(|e| config_error(format!("unusable signing key: {e}")))
    }

    fn refresh_keys(&self) -> Result<()> {
        let fresh: JwkSet = get_json(&self.http, &self.jwks_uri)?;
        *self.jwks.write().map_err(|_| Error::Internal("JWKS lock poisoned".into()))? = fresh;
        Ok(())
    }
}

fn get_json<T: serde::de::DeserializeOwned>(http: &ureq::Agent, url: &str) -> Result<T> {
    let unreachable = |e: &dyn std::fmt::Display| config_error(format!("cannot read {url}: {e}"));
    let mut response = http.get(url).call().map_err(|e| unreachable(&e))?;
    if !response.status().is_success() {
        return Err(unreachable(&response.status()));
    }
    let body = response.body_mut().with_config().limit(1024 * 1024).read_to_vec().map_err(|e| unreachable(&e))?;
    serde_json::from_slice(&body).map_err(|e| unreachable(&e))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_only_accepted_on_loopback() {
        assert!(check_scheme("https://id.example.com", "issuer").is_ok());
        assert!(check_scheme("http://127.0.0.1:9000/oidc", "issuer").is_ok());
        assert!(check_scheme("http://localhost", "issuer").is_ok());
        assert!(check_scheme("http://localhost.evil.example", "issuer").is_err());
        assert!(check_scheme("http://id.example.com", "issuer").is_err());
    }
}
