//! The JSON API under `/api/v1`: ask, documents, upload jobs and service tokens, described by the
//! OpenAPI document at `/api/v1/openapi.json`. Callers authenticate with a browser session (and
//! send the CSRF token in `X-CSRF-Token` when changing anything) or a service token
//! (`Authorization: Bearer lxg_...`). The same domain checks as the pages apply.

use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use crate::domain::{ChunkAcl, Classification, SourceStatus};
use serde::Deserialize;

use crate::domain::Permission;
use crate::error::Error;
use crate::http::session::{self, SignedIn};
use crate::http::{AppState, WebResult, web_err};
use crate::http::documents::{parse_groups, require_admin};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/openapi.json", web::get().to(openapi_get))
        .route("/api/v1/documents", web::get().to(documents_get))
        .route("/api/v1/documents", web::post().to(documents_post))
        .route("/api/v1/documents/{id}", web::get().to(document_get))
        .route("/api/v1/documents/{id}", web::delete().to(document_delete))
        .route("/api/v1/documents/{id}/versions/{version}/access", web::put().to(access_put))
        .route("/api/v1/jobs/{id}", web::get().to(job_get))
        .route("/api/v1/tokens", web::get().to(tokens_get))
        .route("/api/v1/tokens", web::post().to(tokens_post))
        .route("/api/v1/tokens/{id}", web::delete().to(token_delete));
}

async fn documents_get(req: HttpRequest, state: web::Data<AppState>, SignedIn(actor): SignedIn) -> WebResult {
    let err = web_err(&req);
    let docs = state.documents.list(&actor).await.map_err(&err)?;
    let docs: Vec<_> = docs
        .into_iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id, "title": d.title, "latest_version": d.version, "status": d.status,
                "classification": d.classification, "chunks": d.chunk_count,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "documents": docs })))
}

async fn document_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    id: web::Path<String>,
) -> WebResult {
    let err = web_err(&req);
    let detail = state.documents.detail(&actor, &id).await.map_err(&err)?;
    let (id, preview) = (detail.id, detail.preview);
    let mut versions = Vec::new();
    for (v, (_, acl)) in preview.versions.iter().zip(detail.acls) {
        versions.push(serde_json::json!({
            "version": v.version, "pages": v.pages, "chunks": v.chunks, "file_bytes": v.bytes,
            "access": acl.as_ref().map(crate::service::documents::acl_json),
        }));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": id.as_str(), "title": preview.title, "versions": versions })))
}

/// Access metadata as the API takes it; the tenant is always the caller's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessBody {
    owner: String,
    classification: Classification,
    groups: Vec<String>,
    status: SourceStatus,
    effective_from: NaiveDate,
    #[serde(default)]
    expires_at: Option<NaiveDate>,
    #[serde(default = "standard")]
    retention: String,
}

fn standard() -> String {
    "standard".to_owned()
}

async fn access_put(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    path: web::Path<(String, u32)>,
    body: web::Json<AccessBody>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_api_csrf(&req, &state).await.map_err(&err)?;
    let (id, version) = path.into_inner();
    let id = state.documents.resolve_id(&actor, &id).await.map_err(&err)?;
    let groups = parse_groups(body.groups.iter().map(String::as_str)).map_err(&err)?;
    if groups.is_empty() {
        return Err(err(Error::user("Name at least one group that may read the document.")));
    }
    let acl = ChunkAcl {
        tenant: actor.tenant.clone(),
        owner: body.owner.trim().to_owned(),
        classification: body.classification,
        allowed_groups: groups,
        status: body.status,
        effective_from: body.effective_from,
        expires_at: body.expires_at,
        retention_class: body.retention.clone(),
    };
    let chunks = state.documents.update_acl(&actor, &id, version, acl).await.map_err(&err)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": id, "version": version, "chunks_reindexed": chunks })))
}

#[derive(Debug, Deserialize)]
struct DeleteBody {
    reason: String,
}

async fn document_delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    id: web::Path<String>,
    body: web::Json<DeleteBody>,
) -> WebResult {
    let err = web_err(&req);
    let id = state.documents.resolve_id(&actor, &id).await.map_err(&err)?;
    session::verify_api_csrf(&req, &state).await.map_err(&err)?;
    let receipt = state.documents.delete(&actor, &id, None, &body.reason).await.map_err(&err)?;
    Ok(HttpResponse::Ok().json(receipt))
}

/// Upload: the same multipart form as the page (fields and `files`); answers 202 with the jobs.
async fn documents_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    form: Multipart,
) -> WebResult {
    let err = web_err(&req);
    require_admin(&state, &actor).await.map_err(&err)?;
    session::verify_api_csrf(&req, &state).await.map_err(&err)?;
    let (fields, files) = crate::http::documents::read_form(form, state.settings.upload_max_bytes).await.map_err(&err)?;
    let request = crate::http::documents::upload_request(&actor, &fields, files).map_err(&err)?;
    let jobs = state.uploads.start(&actor, request).await.map_err(&err)?;
    let links: Vec<String> = jobs.iter().map(|j| format!("/api/v1/jobs/{j}")).collect();
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "jobs": jobs, "links": links })))
}

async fn job_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    id: web::Path<String>,
) -> WebResult {
    let err = web_err(&req);
    let job = state.uploads.job(&actor, &id).await.map_err(&err)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": job.id, "document_id": job.document_id, "version": job.version, "file_name": job.file_name,
        "status": job.status,
    })))
}

async fn tokens_get(req: HttpRequest, state: web::Data<AppState>, SignedIn(actor): SignedIn) -> WebResult {
    let err = web_err(&req);
    let tokens = state.tokens.list(&actor).await.map_err(&err)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "tokens": tokens })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    scopes: Vec<String>,
    groups: Vec<String>,
    clearance: Classification,
    #[serde(default = "ninety")]
    valid_days: i64,
}

fn ninety() -> i64 {
    90
}

async fn tokens_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    body: web::Json<TokenBody>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_api_csrf(&req, &state).await.map_err(&err)?;
    let request = crate::service::tokens::TokenRequest {
        name: body.name.clone(),
        scopes: body.scopes.iter().map(|s| Permission::from_scope(s)).collect::<Result<_, _>>().map_err(&err)?,
        groups: parse_groups(body.groups.iter().map(String::as_str)).map_err(&err)?,
        clearance: body.clearance,
        valid_days: body.valid_days,
    };
    let (token, info) = state.tokens.issue(&actor, &request).await.map_err(&err)?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "token": token,
        "note": "Store this token now: lexgate keeps only its hash and cannot show it again.",
        "record": info,
    })))
}

async fn token_delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    id: web::Path<String>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_api_csrf(&req, &state).await.map_err(&err)?;
    state.tokens.revoke(&actor, &id).await.map_err(&err)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn openapi_get() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

/// The OpenAPI 3.1 description of this API, written by hand next to the handlers it describes.
const OPENAPI: &str = include_str!("openapi.json");
