//! Sessions and CSRF protection with signed, HttpOnly, SameSite cookies.
//!
//! The session cookie holds a random token, signed with the server key; the session itself lives
//! on the server ([`crate::service::sessions`]). The CSRF cookie holds a random nonce, also signed; every
//! state-changing form repeats the nonce in a hidden field and the two must match (a signed
//! double-submit token).

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, CookieJar, Key, SameSite, time::Duration as CookieDuration};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::domain::Actor;
use crate::error::Error;
use crate::http::AppState;

pub const SESSION_COOKIE: &str = "lexgate_session";
pub const CSRF_COOKIE: &str = "lexgate_csrf";
/// Holds an OpenID sign-in in progress (state, nonce, PKCE verifier), encrypted.
pub const OIDC_COOKIE: &str = "lexgate_oidc";

/// The platform's cookie attributes: HttpOnly, SameSite=Lax, the path, Secure when served over
/// HTTPS, and an expiry.
fn with_attributes(
    mut cookie: Cookie<'static>,
    path: &'static str,
    max_age: CookieDuration,
    secure: bool,
) -> Cookie<'static> {
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path(path);
    cookie.set_secure(secure);
    cookie.set_max_age(max_age);
    cookie
}

/// Signs `value` into a cookie with the platform's attributes.
fn signed_cookie(key: &Key, name: &'static str, value: String, max_age_minutes: i64, secure: bool) -> Cookie<'static> {
    let mut jar = CookieJar::new();
    jar.signed_mut(key).add(Cookie::new(name, value));
    let cookie = jar.get(name).cloned().unwrap_or_else(|| Cookie::new(name, ""));
    with_attributes(cookie, "/", CookieDuration::minutes(max_age_minutes), secure)
}

/// The verified value of a signed cookie, or `None` if absent or tampered with.
fn read_signed(req: &HttpRequest, key: &Key, name: &str) -> Option<String> {
    let mut jar = CookieJar::new();
    jar.add_original(req.cookie(name)?.into_owned());
    jar.signed(key).get(name).map(|c| c.value().to_owned())
}

/// A cookie that carries a session's token until the session's absolute end.
pub fn session_cookie(state: &AppState, token: &str) -> Cookie<'static> {
    signed_cookie(
        &state.key,
        SESSION_COOKIE,
        token.to_owned(),
        state.sessions.policy.absolute_minutes,
        state.secure_cookies,
    )
}

/// A cookie that ends the session.
pub fn clear_session_cookie() -> Cookie<'static> {
    let mut c = Cookie::new(SESSION_COOKIE, "");
    c.set_path("/");
    c.make_removal();
    c
}

/// An encrypted cookie holding a sign-in in progress. SameSite=Lax so that it comes back with the
/// provider's top-level redirect to the callback.
pub fn pending_login_cookie(
    state: &AppState,
    pending: &crate::http::oidc::PendingLogin,
) -> Result<Cookie<'static>, Error> {
    let value = serde_json::to_string(pending).map_err(|e| Error::internal("pending sign-in", e))?;
    let mut jar = CookieJar::new();
    jar.private_mut(&state.key).add(Cookie::new(OIDC_COOKIE, value));
    let cookie = jar.get(OIDC_COOKIE).cloned().unwrap_or_else(|| Cookie::new(OIDC_COOKIE, ""));
    Ok(with_attributes(
        cookie,
        "/signin",
        CookieDuration::seconds(crate::http::oidc::PENDING_LOGIN_SECS),
        state.secure_cookies,
    ))
}

/// The sign-in in progress, if the cookie is present and was not tampered with.
pub fn pending_login(req: &HttpRequest, state: &AppState) -> Option<crate::http::oidc::PendingLogin> {
    let mut jar = CookieJar::new();
    jar.add_original(req.cookie(OIDC_COOKIE)?.into_owned());
    let value = jar.private(&state.key).get(OIDC_COOKIE)?.value().to_owned();
    serde_json::from_str(&value).ok()
}

/// A cookie that ends a sign-in in progress (each is used once).
pub fn clear_pending_login_cookie() -> Cookie<'static> {
    let mut c = Cookie::new(OIDC_COOKIE, "");
    c.set_path("/signin");
    c.make_removal();
    c
}

/// The session token the browser presents, if its signature holds. Whether the session is still
/// open is for [`crate::service::sessions::authenticate`] to say.
pub fn session_token(req: &HttpRequest, state: &AppState) -> Option<String> {
    read_signed(req, &state.key, SESSION_COOKIE)
}

/// The CSRF token for forms on this page, and the cookie to set when the browser has none yet.
#[derive(Debug)]
pub struct Csrf {
    pub token: String,
    pub new_cookie: Option<Cookie<'static>>,
}

pub fn csrf_for(req: &HttpRequest, state: &AppState) -> Result<Csrf, Error> {
    if let Some(token) = read_signed(req, &state.key, CSRF_COOKIE) {
        return Ok(Csrf { token, new_cookie: None });
    }
    let token = crate::domain::random_hex(24)?;
    let cookie = signed_cookie(&state.key, CSRF_COOKIE, token.clone(), 24 * 60, state.secure_cookies);
    Ok(Csrf { token, new_cookie: Some(cookie) })
}

/// Checks a submitted CSRF token against the signed cookie; a refusal is audited.
pub async fn verify_csrf(req: &HttpRequest, state: &AppState, submitted: &str) -> Result<(), Error> {
    match read_signed(req, &state.key, CSRF_COOKIE) {
        Some(expected) if !submitted.is_empty() && expected == submitted => Ok(()),
        _ => {
            audit_refusal(req, state, "csrf").await;
            Err(Error::user("This form has expired or did not come from lexgate. Reload the page and try again."))
        }
    }
}

/// Audits a refused request through the service, with the client's address.
async fn audit_refusal(req: &HttpRequest, state: &AppState, reason: &str) {
    let client = req.peer_addr().map(|a| a.ip().to_string());
    state.sessions.audit_refusal(reason, req.method().as_str(), req.path(), client.as_deref()).await;
}

/// The bearer token of an API request, if it carries one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    if !req.path().starts_with("/api/") {
        return None;
    }
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty())
}

/// Checks a state-changing API request: a service token needs no CSRF token (no cookies are
/// involved); a browser session must send its CSRF token in the `X-CSRF-Token` header.
pub async fn verify_api_csrf(req: &HttpRequest, state: &AppState) -> Result<(), Error> {
    if bearer_token(req).is_some() {
        return Ok(());
    }
    let submitted = req.headers().get("X-CSRF-Token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    verify_csrf(req, state, submitted).await
}

/// Extracts the signed-in actor, or fails with [`Error::Unauthenticated`].
#[derive(Debug, Clone)]
pub struct SignedIn(pub Actor);

impl FromRequest for SignedIn {
    type Error = crate::http::WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let wants_html = crate::http::wants_html(&req);
            let fail = |e: Error| crate::http::WebError::new(e, wants_html, crate::http::is_htmx(&req));
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| fail(Error::Internal("application state missing".into())))?;
            // API clients may present a service token instead of a session.
            let signed_in = if let Some(token) = bearer_token(&req) {
                state.sessions.authenticate_bearer(token).await
            } else {
                match session_token(&req, &state) {
                    Some(token) => state.sessions.authenticate(&token).await.map(|a| a.actor),
                    None => Err(Error::Unauthenticated),
                }
            };
            match signed_in {
                Ok(actor) => Ok(SignedIn(actor)),
                Err(e @ (Error::Unauthenticated | Error::Token(_))) => {
                    audit_refusal(&req, &state, "unauthenticated").await;
                    Err(fail(e))
                }
                Err(e) => Err(fail(e)),
            }
        })
    }
}

/// The signed-in actor, then `T` (the path, query, form, JSON or multipart body, or a tuple of
/// them), read only once the request is authenticated: a signed-out request is refused as such
/// (401, or the sign-in page) whatever its body holds, and nobody's input is parsed before
/// lexgate knows who sent it.
#[derive(Debug)]
pub struct Authenticated<T>(pub Actor, pub T);

impl<T> FromRequest for Authenticated<T>
where
    T: FromRequest + 'static,
    T::Error: Into<actix_web::Error>,
{
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let SignedIn(actor) = SignedIn::from_request(&req, &mut Payload::None).await?;
            let input = T::from_request(&req, &mut payload).await.map_err(Into::into)?;
            Ok(Authenticated(actor, input))
        })
    }
}
