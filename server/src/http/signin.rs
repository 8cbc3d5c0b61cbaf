//! Signing in (development users or an OpenID provider), signing out, and the sessions page.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use serde::Deserialize;

use crate::domain::Permission;
use crate::error::Error;
use crate::http::error::{WebResult, web_err};
use crate::http::session::{self, Authenticated, SignedIn};
use crate::http::{AppState, UserView, html, redirect, user_view};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/signin", web::get().to(signin_get))
        .route("/signin/dev", web::post().to(signin_dev_post))
        .route("/signin/oidc", web::get().to(signin_oidc_get))
        .route("/signin/callback", web::get().to(signin_callback_get))
        .route("/signout", web::post().to(signout_post))
        .route("/sessions", web::get().to(sessions_get))
        .route("/sessions/{id}/end", web::post().to(session_end_post));
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninView {
    dev_enabled: bool,
    users: Vec<DemoUserView>,
    csrf: String,
}

struct DemoUserView {
    id: String,
    name: String,
    tenant: String,
    role: &'static str,
    groups: String,
    clearance: &'static str,
}

async fn signin_get(req: HttpRequest, state: web::Data<AppState>) -> WebResult {
    let err = web_err(&req);
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let users = if state.oidc.is_some() {
        Vec::new()
    } else {
        state
            .ask
            .development_users()
            .await
            .map_err(&err)?
            .into_iter()
            .map(|a| DemoUserView {
                groups: a.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", "),
                clearance: a.clearance.as_str(),
                role: a.role.as_str(),
                tenant: a.tenant.to_string(),
                name: a.display_name,
                id: a.principal_id,
            })
            .collect()
    };
    html(SigninView { dev_enabled: state.oidc.is_none(), users, csrf: csrf.token }.render(), csrf.new_cookie)
}

#[derive(Deserialize)]
struct DevSigninForm {
    principal_id: String,
    csrf: String,
}

async fn signin_dev_post(req: HttpRequest, state: web::Data<AppState>, form: web::Form<DevSigninForm>) -> WebResult {
    let err = web_err(&req);
    if state.oidc.is_some() {
        return Err(err(Error::user("The development sign-in is disabled because an OpenID provider is configured.")));
    }
    session::verify_csrf(&req, &state, &form.csrf).await.map_err(&err)?;
    let previous = session::session_token(&req, &state);
    let token = state.sessions.sign_in_development(&form.principal_id, previous.as_deref()).await.map_err(&err)?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ask"))
        .cookie(session::session_cookie(&state, &token))
        .finish())
}

/// Starts an OpenID sign-in: sends the browser to the provider.
async fn signin_oidc_get(req: HttpRequest, state: web::Data<AppState>) -> WebResult {
    let Some(oidc) = state.oidc.clone() else {
        return Err(web_err(&req)(Error::NotFound));
    };
    let (url, pending) = oidc.begin();
    let cookie = session::pending_login_cookie(&state, &pending).map_err(web_err(&req))?;
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, url)).cookie(cookie).finish())
}

#[derive(Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: String,
}

/// Where the provider sends the browser back. Checks state, exchanges the code, verifies the ID
/// token, records the principal with the token's access attributes and starts a session.
async fn signin_callback_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> WebResult {
    let err = web_err(&req);
    let Some(oidc) = state.oidc.clone() else {
        return Err(err(Error::NotFound));
    };
    let outcome = match session::pending_login(&req, &state) {
        None => Err(Error::user("No sign-in is in progress in this browser (or it expired). Please sign in again.")),
        Some(_) if !query.error.is_empty() => Err(Error::user(
            "The identity provider did not sign you in. Please try again or contact your administrator.",
        )),
        Some(pending) => {
            let (code, returned_state) = (query.code.clone(), query.state.clone());
            tokio::task::spawn_blocking(move || oidc.complete(&pending, &returned_state, &code))
                .await
                .map_err(|e| Error::internal("sign-in task", e))
                .and_then(|r| r)
        }
    };
    let identity = match outcome {
        Ok(identity) => identity,
        Err(e) => {
            state.sessions.sign_in_rejected("oidc", &e).await.map_err(&err)?;
            let mut resp = err(e).error_response();
            let _ = resp.add_removal_cookie(&session::clear_pending_login_cookie());
            return Ok(resp);
        }
    };
    let previous = session::session_token(&req, &state);
    let detail = serde_json::json!({
        "issuer": state.oidc.as_ref().map(|o| o.issuer().to_owned()),
        "role": identity.role.as_str(),
    });
    let token = match state.sessions.sign_in_identity(&identity.principal_seed(), previous.as_deref(), detail).await {
        Ok(token) => token,
        Err(e) => {
            let mut resp = err(e).error_response();
            let _ = resp.add_removal_cookie(&session::clear_pending_login_cookie());
            return Ok(resp);
        }
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ask"))
        .cookie(session::session_cookie(&state, &token))
        .cookie(session::clear_pending_login_cookie())
        .finish())
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn signout_post(req: HttpRequest, state: web::Data<AppState>, form: web::Form<CsrfForm>) -> WebResult {
    session::verify_csrf(&req, &state, &form.csrf).await.map_err(web_err(&req))?;
    if let Some(token) = session::session_token(&req, &state) {
        state.sessions.sign_out(&token).await.map_err(web_err(&req))?;
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/signin"))
        .cookie(session::clear_session_cookie())
        .finish())
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsView {
    user: UserView,
    admin: bool,
    idle_minutes: i64,
    absolute_minutes: i64,
    sessions: Vec<SessionRow>,
}

struct SessionRow {
    id: String,
    principal_id: String,
    method: String,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    current: bool,
}

/// The open sessions the user may end: their own, or every one of the tenant for an admin.
async fn sessions_get(req: HttpRequest, state: web::Data<AppState>, SignedIn(actor): SignedIn) -> WebResult {
    let err = web_err(&req);
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let current = match session::session_token(&req, &state) {
        Some(token) => state.sessions.authenticate(&token).await.map(|a| a.session_id).unwrap_or_default(),
        None => String::new(),
    };
    let sessions = state.sessions.list(&actor, &current).await.map_err(&err)?;
    let minute = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let view = SessionsView {
        user: user_view(&actor, csrf.token),
        admin: actor.may(Permission::ManageDocuments),
        idle_minutes: state.sessions.policy.idle_minutes,
        absolute_minutes: state.sessions.policy.absolute_minutes,
        sessions: sessions
            .into_iter()
            .map(|s| SessionRow {
                created_at: minute(s.created_at),
                last_seen_at: minute(s.last_seen_at),
                expires_at: minute(s.expires_at),
                id: s.id,
                principal_id: s.principal_id,
                method: s.method,
                current: s.current,
            })
            .collect(),
    };
    html(view.render(), csrf.new_cookie)
}

/// Ends one session; ending one's own current session signs this browser out.
async fn session_end_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, (path, form)): Authenticated<(web::Path<String>, web::Form<CsrfForm>)>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_csrf(&req, &state, &form.csrf).await.map_err(&err)?;
    state.sessions.end(&actor, &path.into_inner()).await.map_err(&err)?;
    Ok(redirect("/sessions"))
}
