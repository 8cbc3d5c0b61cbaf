//! Governance for reviewers: the overview, the audit log, the packet, and the governance JSON.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::http::error::{WebResult, web_err};
use crate::http::session::{self, Authenticated, SignedIn};
use crate::http::{AppState, UserView, html, user_view};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/governance", web::get().to(governance_get))
        .route("/governance/audit", web::get().to(governance_audit_get))
        .route("/governance/packet.zip", web::get().to(governance_packet_get))
        .route("/api/governance/models", web::get().to(api_models_get))
        .route("/api/governance/data-cards", web::get().to(api_data_cards_get))
        .route("/api/governance/risk", web::get().to(api_risk_get));
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
    scope: String,
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
    let crate::service::governance::Overview { scope, risk, cards, models } =
        state.governance.overview(&actor).await.map_err(&err)?;
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let audit = &risk.audit;
    let view = GovernanceView {
        user: user_view(&actor, csrf.token),
        scope: scope.label(),
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
    scope: String,
    audit_status: String,
    audit_events: u64,
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
    Authenticated(actor, query): Authenticated<web::Query<AuditQuery>>,
) -> WebResult {
    let err = web_err(&req);
    let page = query.page.unwrap_or(1).max(1);
    let filter = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let (action, outcome) = (filter(&query.action), filter(&query.outcome));
    let crate::service::governance::AuditPage { scope, events: rows, total, verification } = state
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
        scope: scope.label(),
        audit_status: verification.problem.clone().unwrap_or_else(|| "intact".to_owned()),
        audit_events: verification.events,
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
