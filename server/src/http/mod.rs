//! HTTP: routes, thin handlers, views and the one place errors become responses. Handlers parse
//! input, make one service call and render; authorization happens in the services.

pub mod app;
pub mod ask;
pub mod bench;
pub mod documents;
pub mod error;
pub mod governance;
pub mod obligations;
pub mod oidc;
pub mod openapi;
pub mod session;
pub mod signin;
pub mod tokens;

pub use error::{WebError, is_htmx, wants_html};
pub(crate) use error::{WebResult, web_err};

use std::sync::Arc;

use actix_web::cookie::Key;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::domain::Actor;
use crate::error::Error;
use crate::service::ask::AskService;

/// Refused requests (no session, a wrong CSRF token) audited per client address and minute.
const REFUSALS_AUDITED_PER_MINUTE: u32 = 20;

/// Shared state of the web application: the services, and what only the web layer needs.
#[derive(Clone)]
pub struct AppState {
    pub ask: AskService,
    pub documents: crate::service::documents::DocumentAdmin,
    pub uploads: crate::service::uploads::Uploads,
    pub sessions: crate::service::sessions::Sessions,
    pub tokens: crate::service::tokens::Tokens,
    pub governance: crate::service::governance::Governance,
    pub register: crate::service::obligations::Register,
    pub key: Key,
    pub secure_cookies: bool,
    /// The OpenID provider users sign in with; the development sign-in is refused when set.
    pub oidc: Option<Arc<crate::http::oidc::OidcClient>>,
    pub passages_per_answer: usize,
    /// For the pages (upload limits, gate setting).
    pub settings: Arc<crate::settings::Settings>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("oidc", &self.oidc).finish_non_exhaustive()
    }
}

/// Registers every route, behind the headers every response carries.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // Input the extractors cannot parse answers like any other bad input: a page, or the API's
    // one JSON error shape.
    cfg.app_data(web::JsonConfig::default().limit(64 * 1024).error_handler(bad_input))
        .app_data(web::QueryConfig::default().error_handler(bad_input))
        .app_data(web::PathConfig::default().error_handler(bad_input))
        .app_data(web::FormConfig::default().limit(64 * 1024).error_handler(bad_input));
    cfg.service(web::scope("").wrap(response_headers()).configure(resource_routes));
}

/// Pages load scripts, styles and images from lexgate itself only; nothing inline runs, no
/// plugin loads and no other site may frame a page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Headers added to every response that does not set its own. **Nothing is cached**: pages,
/// fragments, passages, the API, downloads and errors carry `Cache-Control: no-store`, so after
/// signing out neither the Back button nor a shared proxy shows what the last user read; only the
/// static assets, which carry no governed data, set a cache lifetime of their own.
fn response_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "no-store"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
}

fn resource_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index_get))
        .route("/healthz", web::get().to(health_get))
        .route("/readyz", web::get().to(ready_get))
        .route("/static/{name}", web::get().to(static_get))
        .configure(signin::routes)
        .configure(ask::routes)
        .configure(documents::routes)
        .configure(tokens::routes)
        .configure(governance::routes)
        .configure(obligations::routes)
        .configure(openapi::routes);
}

/// The signed-in user as the header shows them.
pub(crate) struct UserView {
    pub(crate) name: String,
    pub(crate) tenant: String,
    pub(crate) role: &'static str,
    pub(crate) csrf: String,
}

pub(crate) fn user_view(actor: &Actor, csrf: String) -> UserView {
    UserView { name: actor.display_name.clone(), tenant: actor.tenant.to_string(), role: actor.role.as_str(), csrf }
}

pub(crate) fn html(body: askama::Result<String>, csrf_cookie: Option<actix_web::cookie::Cookie<'static>>) -> WebResult {
    let body = body.map_err(|e| WebError::new(Error::internal("rendering", e), true, false))?;
    let mut resp = HttpResponse::Ok();
    resp.content_type("text/html; charset=utf-8");
    if let Some(c) = csrf_cookie {
        resp.cookie(c);
    }
    Ok(resp.body(body))
}

pub(crate) fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn index_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let open = match session::session_token(&req, &state) {
        Some(token) => state.sessions.authenticate(&token).await.is_ok(),
        None => false,
    };
    if open { redirect("/ask") } else { redirect("/signin") }
}

/// Liveness: the process answers.
async fn health_get() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the database answers, the indexes are loaded and the models the settings ask for
/// are loaded. 503 with the failing checks otherwise.
async fn ready_get(state: web::Data<AppState>) -> HttpResponse {
    let r = state.ask.readiness().await;
    let check = |v: Option<bool>| v.map_or_else(|| serde_json::json!("off"), |ok| serde_json::json!(ok));
    let body = serde_json::json!({
        "status": if r.ready() { "ready" } else { "not ready" },
        "checks": {
            "database": r.database,
            "bm25_passages": r.bm25_passages,
            "dense_index_and_embedding_model": check(r.dense),
            "reranker": check(r.reranker),
        },
    });
    if r.ready() { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

/// An extractor's refusal (a body that is not the expected JSON or form, a bad query or path) as
/// a user error.
fn bad_input(e: impl std::fmt::Display, req: &HttpRequest) -> actix_web::Error {
    let message = format!("The request could not be read: {e}");
    let message: String = message.chars().take(300).collect();
    WebError::new(Error::user(message), wants_html(req), is_htmx(req)).into()
}

/// Static assets are compiled into the binary so the server has no runtime file dependencies.
const STATIC_FILES: [(&str, &str, &[u8]); 3] = [
    ("generate.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/static/generate.js")),
    ("htmx.min.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/static/htmx.min.js")),
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../../web/static/style.css")),
];

async fn static_get(name: web::Path<String>) -> HttpResponse {
    match STATIC_FILES.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .content_type(*content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(*body),
        None => HttpResponse::NotFound().finish(),
    }
}

/// Builds the state shared by all workers.
pub fn app_state(
    platform: &crate::service::Platform,
    key: Key,
    audit_hash_key: Arc<[u8]>,
    oidc: Option<Arc<crate::http::oidc::OidcClient>>,
) -> AppState {
    let settings = &platform.settings;
    AppState {
        ask: platform.ask_service(audit_hash_key),
        documents: platform.documents(),
        uploads: platform.uploads(),
        sessions: platform.sessions(REFUSALS_AUDITED_PER_MINUTE),
        tokens: platform.tokens(),
        governance: platform.governance(),
        register: platform.register(),
        settings: Arc::clone(settings),
        key,
        secure_cookies: settings.secure_cookies,
        oidc,
        passages_per_answer: settings.passages_per_answer,
    }
}
