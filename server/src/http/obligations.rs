//! The obligation register: its pages (list with filters, detail, the reviewers' queue), the
//! exports, and `/api/v1/obligations`. Every decision is the register service's.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::{ErrorBody, WebResult, web_err};
use crate::http::session::{self, Authenticated};
use crate::http::{AppState, UserView, html, redirect, user_view};
use crate::service::obligations::{DiffPart, Filter, ObligationDetail, ObligationView, Summary, Transition};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/obligations", web::get().to(register_get))
        .route("/obligations/export.csv", web::get().to(export_csv_get))
        .route("/obligations/export.json", web::get().to(export_json_get))
        .route("/obligations/{id}", web::get().to(detail_get))
        .route("/obligations/{id}/status", web::post().to(status_post))
        .route("/obligations/{id}/controls", web::post().to(control_post))
        .route("/api/v1/obligations", web::get().to(api_list_get))
        .route("/api/v1/obligations/{id}", web::get().to(api_detail_get))
        .route("/api/v1/obligations/{id}/status", web::post().to(api_status_post))
        .route("/api/v1/obligations/{id}/controls", web::post().to(api_control_post));
}

/// The filter as the page's form sends it: empty fields mean "any".
#[derive(Debug, Default, Deserialize)]
struct FilterForm {
    #[serde(default)]
    regulation: String,
    #[serde(default)]
    article: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    gap: String,
    #[serde(default)]
    change: String,
}

impl FilterForm {
    fn filter(&self) -> Filter {
        let some = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        Filter {
            regulation: some(&self.regulation),
            article: some(&self.article),
            status: some(&self.status),
            owner: some(&self.owner),
            gap: match self.gap.as_str() {
                "yes" | "true" => Some(true),
                "no" | "false" => Some(false),
                _ => None,
            },
            change: some(&self.change),
        }
    }
}

#[derive(Template)]
#[template(path = "obligations.html")]
struct RegisterView {
    user: UserView,
    rows: Vec<ObligationView>,
    summary: Summary,
    form: FilterForm,
    regulations: Vec<(String, String)>,
    queue: bool,
}

async fn register_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, query): Authenticated<web::Query<FilterForm>>,
) -> WebResult {
    let err = web_err(&req);
    let form = query.into_inner();
    let (rows, summary, regulations) = state.register.page(&actor, &form.filter()).await.map_err(&err)?;
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let queue = form.status == "accepted";
    let view = RegisterView { user: user_view(&actor, csrf.token), rows, summary, form, regulations, queue };
    html(view.render(), csrf.new_cookie)
}

#[derive(Template)]
#[template(path = "obligation.html")]
struct DetailView {
    user: UserView,
    csrf: String,
    d: ObligationDetail,
    role: &'static str,
}

impl DetailView {
    fn diff(&self) -> &[DiffPart] {
        &self.d.diff
    }
}

async fn detail_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, id): Authenticated<web::Path<String>>,
) -> WebResult {
    let err = web_err(&req);
    let d = state.register.detail(&actor, &id).await.map_err(&err)?;
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let view =
        DetailView { user: user_view(&actor, csrf.token.clone()), csrf: csrf.token, d, role: actor.role.as_str() };
    html(view.render(), csrf.new_cookie)
}

#[derive(Debug, Deserialize)]
struct StatusForm {
    csrf: String,
    to: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    due_date: String,
}

async fn status_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, (id, form)): Authenticated<(web::Path<String>, web::Form<StatusForm>)>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_csrf(&req, &state, &form.csrf).await.map_err(&err)?;
    let due_date = match form.due_date.trim() {
        "" => None,
        d => Some(
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| err(crate::error::Error::user("The due date must be a date (YYYY-MM-DD).")))?,
        ),
    };
    let some = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let t = Transition { to: form.to.clone(), reason: some(&form.reason), owner: some(&form.owner), due_date };
    state.register.transition(&actor, &id, &t).await.map_err(&err)?;
    Ok(redirect(&format!("/obligations/{id}")))
}

#[derive(Debug, Deserialize)]
struct ControlForm {
    csrf: String,
    chunk_id: String,
    /// confirm or reject.
    decision: String,
}

async fn control_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, (id, form)): Authenticated<(web::Path<String>, web::Form<ControlForm>)>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_csrf(&req, &state, &form.csrf).await.map_err(&err)?;
    state.register.decide_control(&actor, &id, &form.chunk_id, form.decision == "confirm").await.map_err(&err)?;
    Ok(redirect(&format!("/obligations/{id}")))
}

async fn export_csv_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, query): Authenticated<web::Query<FilterForm>>,
) -> WebResult {
    let csv = state.register.export_csv(&actor, &query.filter()).await.map_err(web_err(&req))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"obligation-register.csv\""))
        .body(csv))
}

async fn export_json_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, query): Authenticated<web::Query<FilterForm>>,
) -> WebResult {
    let json = state.register.export_json(&actor, &query.filter()).await.map_err(web_err(&req))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"obligation-register.json\""))
        .json(json))
}

// ---------------------------------------------------------------------------------------------
// JSON API

/// The register as the caller sees it, with counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObligationList {
    pub summary: Summary,
    pub obligations: Vec<ObligationView>,
}

/// A control decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlBody {
    /// The policy passage.
    pub chunk_id: String,
    /// Confirm it as a control (true) or reject it (false).
    pub confirm: bool,
}

/// The current register of the caller's tenant: the obligations of the regulations the caller
/// may read (analysts and reviewers), filtered.
#[utoipa::path(get, path = "/api/v1/obligations", tag = "obligations", params(Filter),
    responses(
        (status = 200, description = "The obligations and their counts", body = ObligationList),
        (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody)))]
pub(crate) async fn api_list_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, query): Authenticated<web::Query<Filter>>,
) -> WebResult {
    let (obligations, summary) = state.register.list(&actor, &query).await.map_err(web_err(&req))?;
    Ok(HttpResponse::Ok().json(ObligationList { summary, obligations }))
}

/// One obligation with the regulation text around it, the diff against the previous version,
/// its decided controls and suggested policy passages.
#[utoipa::path(get, path = "/api/v1/obligations/{id}", tag = "obligations",
    params(("id" = String, Path, description = "The obligation's id")),
    responses(
        (status = 200, description = "The obligation", body = ObligationDetail),
        (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody),
        (status = 404, description = "No such thing among what the caller may see", body = ErrorBody)))]
pub(crate) async fn api_detail_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, id): Authenticated<web::Path<String>>,
) -> WebResult {
    let detail = state.register.detail(&actor, &id).await.map_err(web_err(&req))?;
    Ok(HttpResponse::Ok().json(detail))
}

/// Moves an obligation to another review state: analysts accept or set aside, reviewers approve
/// (with an owner and a due date: a tracked action) or send back. CSRF header with a session.
#[utoipa::path(post, path = "/api/v1/obligations/{id}/status", tag = "obligations",
    params(("id" = String, Path, description = "The obligation's id")), request_body = Transition,
    responses(
        (status = 200, description = "The obligation after the change", body = ObligationView),
        (status = 400, description = "Invalid input; the message says what to change", body = ErrorBody), (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody),
        (status = 404, description = "No such thing among what the caller may see", body = ErrorBody)))]
pub(crate) async fn api_status_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, (id, body)): Authenticated<(web::Path<String>, web::Json<Transition>)>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_api_csrf(&req, &state).await.map_err(&err)?;
    let view = state.register.transition(&actor, &id, &body).await.map_err(&err)?;
    Ok(HttpResponse::Ok().json(view))
}

/// Confirms or rejects a policy passage as a control of an obligation (analysts). CSRF header
/// with a session.
#[utoipa::path(post, path = "/api/v1/obligations/{id}/controls", tag = "obligations",
    params(("id" = String, Path, description = "The obligation's id")), request_body = ControlBody,
    responses(
        (status = 204, description = "Recorded"),
        (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody),
        (status = 404, description = "No such thing among what the caller may see", body = ErrorBody)))]
pub(crate) async fn api_control_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, (id, body)): Authenticated<(web::Path<String>, web::Json<ControlBody>)>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_api_csrf(&req, &state).await.map_err(&err)?;
    state.register.decide_control(&actor, &id, &body.chunk_id, body.confirm).await.map_err(&err)?;
    Ok(HttpResponse::NoContent().finish())
}
