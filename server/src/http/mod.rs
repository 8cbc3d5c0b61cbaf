//! HTTP: routes, thin handlers, views and the one place errors become responses. Handlers parse
//! input, make one service call and render; authorization happens in the services.

pub mod api;
pub mod app;
pub mod bench;
pub mod documents;
pub mod oidc;
pub mod session;

use std::sync::Arc;

use actix_web::cookie::Key;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::service::ask::{AskOutcome, AskRequest, AskService};
use crate::domain::{Actor, Permission};
use crate::error::Error;
use crate::http::session::SignedIn;

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

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index_get))
        .route("/healthz", web::get().to(health_get))
        .route("/readyz", web::get().to(ready_get))
        .route("/signin", web::get().to(signin_get))
        .route("/signin/dev", web::post().to(signin_dev_post))
        .route("/signin/oidc", web::get().to(signin_oidc_get))
        .route("/signin/callback", web::get().to(signin_callback_get))
        .route("/signout", web::post().to(signout_post))
        .route("/sessions", web::get().to(sessions_get))
        .route("/sessions/{id}/end", web::post().to(session_end_post))
        .route("/ask", web::get().to(ask_get))
        .route("/api/ask", web::get().to(api_ask_get))
        .route("/api/v1/ask", web::get().to(api_ask_get))
        .route("/passages/{chunk_id}", web::get().to(passage_get))
        .route("/governance", web::get().to(governance_get))
        .route("/governance/audit", web::get().to(governance_audit_get))
        .route("/governance/packet.zip", web::get().to(governance_packet_get))
        .route("/api/governance/models", web::get().to(api_models_get))
        .route("/api/governance/data-cards", web::get().to(api_data_cards_get))
        .route("/api/governance/risk", web::get().to(api_risk_get))
        .route("/static/{name}", web::get().to(static_get))
        .configure(crate::http::documents::routes)
        .configure(crate::http::api::routes);
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An error on its way to the browser or API client. Knows whether the caller wants HTML, an htmx
/// fragment or JSON, and never shows internals: internal errors are logged under a request id.
#[derive(Debug)]
pub struct WebError {
    error: Error,
    html: bool,
    htmx: bool,
    request_id: String,
}

impl WebError {
    pub fn new(error: Error, html: bool, htmx: bool) -> Self {
        let request_id = crate::domain::random_hex(8).unwrap_or_else(|_| "unknown".to_owned());
        Self { error, html, htmx, request_id }
    }

    fn public_message(&self) -> String {
        match &self.error {
            Error::User(msg) => msg.clone(),
            Error::Forbidden => "You are not allowed to do that. The attempt has been recorded.".to_owned(),
            Error::Unauthenticated => "Please sign in.".to_owned(),
            Error::Token(msg) => msg.clone(),
            Error::NotFound => "Not found.".to_owned(),
            Error::Overloaded => "lexgate is busy with many requests right now; try again in a few seconds.".to_owned(),
            Error::RateLimited(secs) => {
                format!("You are asking faster than lexgate allows; try again in {secs} seconds.")
            }
            Error::Storage(_) => {
                "The document store cannot be reached, so no answer was given. Try again shortly.".to_owned()
            }
            Error::Internal(_) => "Something went wrong on our side.".to_owned(),
        }
    }
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (request {})", self.error, self.request_id)
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self.error {
            Error::User(_) => StatusCode::BAD_REQUEST,
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::Unauthenticated | Error::Token(_) => StatusCode::UNAUTHORIZED,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::Overloaded | Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if matches!(self.error, Error::Storage(_) | Error::Internal(_)) {
            tracing::error!(request_id = %self.request_id, error = %self.error, "request failed");
        }
        let status = self.status_code();
        if matches!(self.error, Error::Unauthenticated) && self.html {
            if self.htmx {
                return HttpResponse::Unauthorized().insert_header(("HX-Redirect", "/signin")).finish();
            }
            return HttpResponse::SeeOther().insert_header((header::LOCATION, "/signin")).finish();
        }
        let message = self.public_message();
        let mut resp = HttpResponse::build(status);
        match self.error {
            Error::Overloaded => {
                resp.insert_header((header::RETRY_AFTER, "2"));
            }
            Error::RateLimited(secs) => {
                resp.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            _ => {}
        }
        if !self.html {
            return resp.json(serde_json::json!({ "error": message, "request_id": self.request_id }));
        }
        let view = ErrorView { status: status.as_u16(), message: &message, request_id: &self.request_id };
        let body = if self.htmx { view.render_partial() } else { view.render() };
        resp.content_type("text/html; charset=utf-8");
        if self.htmx {
            // htmx ignores error responses unless told where to put them.
            resp.insert_header(("HX-Retarget", "#flash")).insert_header(("HX-Reswap", "innerHTML"));
        }
        resp.body(body.unwrap_or_else(|_| message.clone()))
    }
}

pub fn is_htmx(req: &HttpRequest) -> bool {
    req.headers().contains_key("HX-Request")
}

/// API routes answer JSON; everything else answers HTML.
pub fn wants_html(req: &HttpRequest) -> bool {
    !req.path().starts_with("/api/")
}

pub(crate) fn web_err(req: &HttpRequest) -> impl Fn(Error) -> WebError + '_ {
    move |e| WebError::new(e, wants_html(req), is_htmx(req))
}

pub(crate) type WebResult = Result<HttpResponse, WebError>;

// ---------------------------------------------------------------------------------------------
// Views

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorView<'a> {
    status: u16,
    message: &'a str,
    request_id: &'a str,
}

impl ErrorView<'_> {
    fn render_partial(&self) -> askama::Result<String> {
        Ok(format!(
            "<div class=\"flash error\" role=\"alert\">{} <small>(request {})</small></div>",
            askama::filters::escape(self.message, askama::filters::Html)?,
            askama::filters::escape(self.request_id, askama::filters::Html)?
        ))
    }
}

/// The signed-in user as the header shows them.
pub(crate) struct UserView {
    pub(crate) name: String,
    pub(crate) tenant: String,
    pub(crate) role: &'static str,
    pub(crate) csrf: String,
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

struct PassageView {
    rank: usize,
    chunk_id: String,
    title: String,
    document_id: String,
    version: u32,
    page: u32,
    heading_path: String,
    text: String,
    score: String,
}

#[derive(Template)]
#[template(path = "ask.html")]
struct AskView {
    user: UserView,
    question: String,
    as_of: String,
    /// The results fragment, already rendered (and escaped) by its own template.
    results_html: String,
}

struct CitationView {
    marker: usize,
    quote: String,
    href: String,
    title: String,
    version: u32,
    page: u32,
    heading_path: String,
}

#[derive(Template)]
#[template(path = "ask_results.html")]
struct ResultsView {
    as_of: String,
    not_found: String,
    citations: Vec<CitationView>,
    passages: Vec<PassageView>,
    /// "on: ..." or "off: ..." so the ranking explanation says whether a reranker ran.
    reranker: String,
}

pub(crate) fn user_view(actor: &Actor, csrf: String) -> UserView {
    UserView { name: actor.display_name.clone(), tenant: actor.tenant.to_string(), role: actor.role.as_str(), csrf }
}

fn results_view(outcome: &AskOutcome, reranker: String) -> ResultsView {
    let as_of = outcome.as_of.to_string();
    ResultsView {
        reranker,
        not_found: outcome.answer.abstained.clone().unwrap_or_default(),
        citations: outcome
            .answer
            .citations
            .iter()
            .map(|c| CitationView {
                marker: c.marker,
                quote: c.quote.clone(),
                href: format!("/passages/{}?start={}&end={}&as_of={as_of}#cited", c.chunk_id, c.start, c.end),
                title: c.title.clone(),
                version: c.version,
                page: c.page,
                heading_path: c.heading_path.clone(),
            })
            .collect(),
        as_of,
        passages: outcome
            .passages
            .iter()
            .map(|p| PassageView {
                rank: p.rank,
                chunk_id: p.chunk.id.clone(),
                title: p.chunk.title.clone(),
                document_id: p.chunk.document_id.clone(),
                version: p.chunk.version,
                page: p.chunk.page,
                heading_path: p.chunk.heading_path.clone(),
                text: p.chunk.text.clone(),
                score: score_text(&p.scores),
            })
            .collect(),
    }
}

/// "BM25 #2 (13.92) · dense #1 (0.71) · fused 0.0325": each stage's rank and score.
fn score_text(h: &crate::domain::RetrievedHit) -> String {
    let mut parts = Vec::new();
    if let Some(s) = h.bm25 {
        parts.push(format!("BM25 #{} ({:.2})", s.rank, s.score));
    }
    if let Some(s) = h.dense {
        parts.push(format!("dense #{} ({:.2})", s.rank, s.score));
    }
    parts.push(format!("fused {:.4}", h.fused));
    if let Some(s) = h.rerank {
        parts.push(format!("rerank #{} ({:.2})", s.rank, s.score));
    }
    parts.join(" · ")
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
        Some(token) => state.sessions.authenticate(&token)
            .await
            .map(|a| a.session_id)
            .unwrap_or_default(),
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
    SignedIn(actor): SignedIn,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_csrf(&req, &state, &form.csrf).await.map_err(&err)?;
    state.sessions.end(&actor, &path.into_inner()).await.map_err(&err)?;
    Ok(redirect("/sessions"))
}

#[derive(Deserialize)]
struct AskQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    as_of: String,
}

impl AskQuery {
    fn parse_as_of(&self) -> Result<Option<NaiveDate>, Error> {
        let s = self.as_of.trim();
        if s.is_empty() {
            return Ok(None);
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| Error::user("The 'as of' date must be written YYYY-MM-DD."))
    }

    fn request(&self, limit: usize) -> Result<AskRequest, Error> {
        Ok(AskRequest { question: self.q.clone(), as_of: self.parse_as_of()?, limit })
    }
}

async fn ask_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    query: web::Query<AskQuery>,
) -> WebResult {
    let err = web_err(&req);
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let results = if query.q.trim().is_empty() {
        None
    } else {
        let request = query.request(state.passages_per_answer).map_err(&err)?;
        Some(results_view(&state.ask.ask(&actor, &request).await.map_err(&err)?, state.ask.retriever.reranker_status()))
    };
    if is_htmx(&req) {
        let body = match &results {
            Some(r) => r.render(),
            None => Ok(String::new()),
        };
        return html(body, csrf.new_cookie);
    }
    let results_html = match &results {
        Some(r) => r.render().map_err(|e| err(Error::internal("rendering", e)))?,
        None => String::new(),
    };
    let view = AskView {
        user: user_view(&actor, csrf.token),
        question: query.q.clone(),
        as_of: query.as_of.clone(),
        results_html,
    };
    html(view.render(), csrf.new_cookie)
}

async fn api_ask_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    query: web::Query<AskQuery>,
) -> WebResult {
    let err = web_err(&req);
    let request = query.request(state.passages_per_answer).map_err(&err)?;
    let outcome = state.ask.ask(&actor, &request).await.map_err(&err)?;
    let passages: Vec<_> = outcome.passages.iter().map(crate::service::answer::Passage::to_json).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "as_of": outcome.as_of.to_string(),
        "method": outcome.method.as_str(),
        "answer": outcome.answer,
        "timings_us": {
            "bm25": outcome.timings.bm25_us, "embed": outcome.timings.embed_us, "dense": outcome.timings.dense_us,
            "fusion": outcome.timings.fusion_us, "recheck": outcome.timings.recheck_us,
            "rerank": outcome.timings.rerank_us, "compose": outcome.compose_us,
        },
        "reranker": state.ask.retriever.reranker_status(),
        "passages": passages,
    })))
}

#[derive(Deserialize)]
struct PassageQuery {
    #[serde(default)]
    start: Option<usize>,
    #[serde(default)]
    end: Option<usize>,
    #[serde(default)]
    as_of: String,
}

#[derive(Template)]
#[template(path = "passage.html")]
struct PassageContextView {
    user: UserView,
    chunk_id: String,
    document_id: String,
    title: String,
    version: u32,
    page: u32,
    heading_path: String,
    verified: bool,
    before: String,
    cited: String,
    after: String,
    context_before: Vec<String>,
    context_after: Vec<String>,
}

/// A cited passage in context, the cited span highlighted. The reader must be allowed to read
/// it (as of the answer's date); otherwise it is "not found", so its existence does not leak.
async fn passage_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    chunk_id: web::Path<String>,
    query: web::Query<PassageQuery>,
) -> WebResult {
    let err = web_err(&req);
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let as_of = AskQuery { q: String::new(), as_of: query.as_of.clone() }
        .parse_as_of()
        .map_err(&err)?
        .unwrap_or_else(crate::domain::today);
    let crate::service::ask::PassageInContext { before, passage: chunk, after } =
        state.ask.open_passage(&actor, &chunk_id, as_of).await.map_err(&err)?;
    let text = chunk.text.as_str();
    let span = match (query.start, query.end) {
        (Some(s), Some(e)) if s < e && text.get(s..e).is_some() => Some((s, e)),
        (None, None) => None,
        _ => None,
    };
    let verified = span.is_some() || (query.start.is_none() && query.end.is_none());
    let (s, e) = span.unwrap_or((0, 0));
    let readable = |cs: Vec<crate::service::answer::StoredChunk>| cs.into_iter().map(|c| c.text).collect::<Vec<_>>();
    let view = PassageContextView {
        user: user_view(&actor, csrf.token),
        chunk_id: chunk.id.clone(),
        document_id: chunk.document_id.clone(),
        title: chunk.title.clone(),
        version: chunk.version,
        page: chunk.page,
        heading_path: chunk.heading_path.clone(),
        verified,
        before: text[..s].to_owned(),
        cited: text[s..e].to_owned(),
        after: text[e..].to_owned(),
        context_before: readable(before),
        context_after: readable(after),
    };
    html(view.render(), csrf.new_cookie)
}

// ---------------------------------------------------------------------------------------------
// Governance (reviewers)

struct ControlView {
    control: String,
    met: bool,
    evidence: String,
}

#[derive(Template)]
#[template(path = "governance.html")]
struct GovernanceView {
    user: UserView,
    tier: u8,
    use_case: String,
    controls: Vec<ControlView>,
    audit_status: String,
    audit_events: u64,
    cards: Vec<(String, String, u32)>,
    models: Vec<(String, String, String)>,
}

async fn governance_get(req: HttpRequest, state: web::Data<AppState>, SignedIn(actor): SignedIn) -> WebResult {
    let err = web_err(&req);
    let crate::service::governance::Overview { risk, cards, models } =
        state.governance.overview(&actor).await.map_err(&err)?;
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let audit = &risk.audit;
    let view = GovernanceView {
        user: user_view(&actor, csrf.token),
        tier: risk.tier,
        use_case: risk.answers.use_case.clone(),
        controls: risk
            .controls
            .iter()
            .map(|c| ControlView { control: c.control.to_owned(), met: c.met, evidence: c.evidence.clone() })
            .collect(),
        audit_status: audit.problem.clone().unwrap_or_else(|| "intact".to_owned()),
        audit_events: audit.events,
        cards: cards.iter().map(|c| (c.card.set.clone(), c.card.status.clone(), c.pii_total.total())).collect(),
        models: models
            .iter()
            .map(|m| (m.role.clone(), m.name.clone(), m.artifact_sha256.chars().take(12).collect()))
            .collect(),
    };
    html(view.render(), csrf.new_cookie)
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    page: Option<u64>,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
}

struct AuditRow {
    id: i64,
    at: String,
    actor: String,
    tenant: String,
    action: String,
    outcome: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "governance_audit.html")]
struct AuditView {
    user: UserView,
    rows: Vec<AuditRow>,
    page: u64,
    pages: u64,
    total: u64,
    action: String,
    outcome: String,
    previous: Option<String>,
    next: Option<String>,
}

const AUDIT_PAGE_SIZE: u64 = 50;

async fn governance_audit_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    query: web::Query<AuditQuery>,
) -> WebResult {
    let err = web_err(&req);
    let page = query.page.unwrap_or(1).max(1);
    let filter = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let (action, outcome) = (filter(&query.action), filter(&query.outcome));
    let crate::service::governance::AuditPage { events: rows, total } = state
        .governance
        .audit_page(&actor, page - 1, AUDIT_PAGE_SIZE, action.as_deref(), outcome.as_deref())
        .await
        .map_err(&err)?;
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let pages = total.div_ceil(AUDIT_PAGE_SIZE).max(1);
    let link = |p: u64| {
        format!(
            "/governance/audit?page={p}&action={}&outcome={}",
            urlencoding_lite(action.as_deref().unwrap_or("")),
            urlencoding_lite(outcome.as_deref().unwrap_or(""))
        )
    };
    let view = AuditView {
        user: user_view(&actor, csrf.token),
        rows: rows
            .into_iter()
            .map(|e| AuditRow {
                id: e.id,
                at: e.at.to_rfc3339(),
                actor: e.actor,
                tenant: e.tenant_id.unwrap_or_default(),
                action: e.action,
                outcome: e.outcome,
                detail: e.detail,
            })
            .collect(),
        page,
        pages,
        total,
        action: action.clone().unwrap_or_default(),
        outcome: outcome.clone().unwrap_or_default(),
        previous: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
    };
    html(view.render(), csrf.new_cookie)
}

async fn api_models_get(req: HttpRequest, state: web::Data<AppState>, SignedIn(actor): SignedIn) -> WebResult {
    let err = web_err(&req);
    let inventory = state.governance.inventory(&actor).await.map_err(&err)?;
    let records: Vec<serde_json::Value> =
        inventory.change_records.iter().map(crate::service::governance::change_record_json).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "models": inventory.models, "change_records": records })))
}

async fn api_data_cards_get(req: HttpRequest, state: web::Data<AppState>, SignedIn(actor): SignedIn) -> WebResult {
    let err = web_err(&req);
    let cards = state.governance.data_cards(&actor).await.map_err(&err)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data_cards": cards })))
}

async fn api_risk_get(req: HttpRequest, state: web::Data<AppState>, SignedIn(actor): SignedIn) -> WebResult {
    let err = web_err(&req);
    let risk = state.governance.risk(&actor).await.map_err(&err)?;
    Ok(HttpResponse::Ok().json(risk))
}

/// Percent-encodes a query value (letters, digits and `-_.` pass).
fn urlencoding_lite(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn governance_packet_get(req: HttpRequest, state: web::Data<AppState>, SignedIn(actor): SignedIn) -> WebResult {
    let err = web_err(&req);
    let bytes = state.governance.packet(&actor).await.map_err(&err)?;
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"lexgate-governance-packet.zip\""))
        .body(bytes))
}

/// Static assets are compiled into the binary so the server has no runtime file dependencies.
const STATIC_FILES: [(&str, &str, &[u8]); 2] = [
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
        settings: Arc::clone(settings),
        key,
        secure_cookies: settings.secure_cookies,
        oidc,
        passages_per_answer: settings.passages_per_answer,
    }
}
