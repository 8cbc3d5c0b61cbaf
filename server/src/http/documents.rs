//! Document administration pages (admins, own tenant only): list with filters, upload with live
//! ingestion progress, detail with chunks, metadata edits, retirement, new versions and deletion
//! with a confirmation and the receipt. The checks live in [`DocumentAdmin`]; handlers parse,
//! call and render.

use std::collections::{BTreeSet, HashMap};

use crate::domain::{ChunkAcl, Classification, GroupName, SourceStatus};
use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::Actor;
use crate::error::Error;
use crate::http::error::ErrorBody;
use crate::http::session::{self, Authenticated, SignedIn};
use crate::http::{AppState, UserView, WebResult, html, is_htmx, redirect, user_view, web_err};
use crate::service::documents::{DeletionPreview, DeletionReceipt};
use crate::service::ingest::UploadStatus;
use crate::service::uploads::{UploadRequest, UploadedFile};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/documents", web::get().to(list_get))
        .route("/documents/upload", web::post().to(upload_post))
        .route("/documents/jobs/{job}", web::get().to(job_get))
        .route("/documents/{id}", web::get().to(detail_get))
        .route("/documents/{id}/metadata", web::post().to(metadata_post))
        .route("/documents/{id}/status", web::post().to(status_post))
        .route("/documents/{id}/delete", web::get().to(delete_get))
        .route("/documents/{id}/delete", web::post().to(delete_post))
        .route("/api/v1/documents", web::get().to(api_documents_get))
        .route("/api/v1/documents", web::post().to(api_documents_post))
        .route("/api/v1/documents/{id}", web::get().to(api_document_get))
        .route("/api/v1/documents/{id}", web::delete().to(api_document_delete))
        .route("/api/v1/documents/{id}/versions/{version}/access", web::put().to(api_access_put))
        .route("/api/v1/jobs/{id}", web::get().to(api_job_get));
}

// ---------------------------------------------------------------------------------------------
// Views

struct DocumentRow {
    id: String,
    title: String,
    version: u32,
    status: String,
    classification: String,
    chunks: usize,
}

#[derive(Template)]
#[template(path = "documents.html")]
struct ListView {
    user: UserView,
    csrf: String,
    rows: Vec<DocumentRow>,
    q: String,
    status: String,
    classification: String,
    today: String,
    max_mb: u64,
    max_pages: usize,
}

#[derive(Template)]
#[template(path = "document_job.html")]
struct JobView {
    user: UserView,
    job: JobFragment,
}

#[derive(Template)]
#[template(path = "document_job_status.html")]
struct JobFragment {
    id: String,
    document_id: String,
    version: u32,
    file_name: String,
    status: UploadStatus,
}

struct VersionRow {
    version: u32,
    status: String,
    classification: String,
    groups: String,
    effective_from: String,
    expires_at: String,
    pages: i32,
}

struct ChunkRow {
    ordinal: usize,
    page: u32,
    heading_path: String,
    text: String,
}

#[derive(Template)]
#[template(path = "document.html")]
struct DetailView {
    user: UserView,
    csrf: String,
    id: String,
    title: String,
    versions: Vec<VersionRow>,
    latest: u32,
    acl: AclForm,
    chunks: Vec<ChunkRow>,
}

/// The metadata form's current values.
struct AclForm {
    owner: String,
    classification: String,
    groups: String,
    status: String,
    effective_from: String,
    expires_at: String,
    retention: String,
}

#[derive(Template)]
#[template(path = "document_delete.html")]
struct DeleteView {
    user: UserView,
    csrf: String,
    id: String,
    preview: DeletionPreview,
}

#[derive(Template)]
#[template(path = "document_receipt.html")]
struct ReceiptView {
    user: UserView,
    receipt: DeletionReceipt,
    json: String,
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Admins only; checked before an upload is read at all (see [`crate::service::uploads::Uploads::authorize`]).
pub(crate) async fn require_admin(state: &AppState, actor: &Actor) -> Result<(), Error> {
    state.uploads.authorize(actor).await
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    classification: String,
}

async fn list_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, query): Authenticated<web::Query<ListQuery>>,
) -> WebResult {
    let err = web_err(&req);
    let documents = state.documents.list(&actor).await.map_err(&err)?;
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let needle = query.q.trim().to_lowercase();
    let rows = documents
        .into_iter()
        .filter(|d| needle.is_empty() || d.title.to_lowercase().contains(&needle) || d.id.contains(&needle))
        .filter(|d| query.status.is_empty() || d.status == query.status)
        .filter(|d| query.classification.is_empty() || d.classification == query.classification)
        .map(|d| DocumentRow {
            id: d.id,
            title: d.title,
            version: d.version,
            status: d.status,
            classification: d.classification,
            chunks: d.chunk_count,
        })
        .collect();
    let view = ListView {
        user: user_view(&actor, csrf.token.clone()),
        csrf: csrf.token,
        rows,
        q: query.q.clone(),
        status: query.status.clone(),
        classification: query.classification.clone(),
        today: crate::domain::today().to_string(),
        max_mb: state.settings.upload_max_bytes / (1024 * 1024),
        max_pages: state.settings.upload_max_pages,
    };
    html(view.render(), csrf.new_cookie)
}

/// Reads the multipart form: text fields (small) and PDF files, refusing anything over the
/// size limit while it streams in.
pub(crate) async fn read_form(
    mut form: Multipart,
    max_bytes: u64,
) -> Result<(HashMap<String, String>, Vec<UploadedFile>), Error> {
    let mut fields = HashMap::new();
    let mut files = Vec::new();
    let mut total: u64 = 0;
    while let Some(item) = form.next().await {
        let mut field = item.map_err(|e| Error::user(format!("The upload could not be read: {e}")))?;
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.content_disposition().and_then(|d| d.get_filename()).map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| Error::user(format!("The upload could not be read: {e}")))?;
            total += chunk.len() as u64;
            let limit = if file_name.is_some() { max_bytes } else { 64 * 1024 };
            if total > max_bytes || (file_name.is_none() && bytes.len() as u64 + chunk.len() as u64 > limit) {
                return Err(Error::user(format!(
                    "The upload is larger than the limit of {} MB.",
                    max_bytes / (1024 * 1024)
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        match file_name {
            Some(file) if name == "files" => {
                if !file.is_empty() || !bytes.is_empty() {
                    files.push(UploadedFile { name: file, bytes });
                }
            }
            _ => {
                fields.insert(name, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    Ok((fields, files))
}

fn parse_date(field: &str, value: &str) -> Result<Option<NaiveDate>, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| Error::user(format!("{field} must be a date written YYYY-MM-DD.")))
}

/// Group names as typed by a user, each checked.
pub(crate) fn parse_groups<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<BTreeSet<GroupName>, Error> {
    names
        .into_iter()
        .map(|g| GroupName::parse(g).map_err(|_| Error::user(format!("'{g}' is not a valid group name."))))
        .collect()
}

/// Access metadata from the form; the tenant is always the admin's own.
fn acl_from_form(actor: &Actor, f: &HashMap<String, String>) -> Result<ChunkAcl, Error> {
    let get = |k: &str| f.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let groups = parse_groups(get("groups").split(',').map(str::trim).filter(|g| !g.is_empty()))?;
    if groups.is_empty() {
        return Err(Error::user("Name at least one group that may read the document."));
    }
    let classification: Classification = get("classification")
        .parse()
        .map_err(|_| Error::user("Choose a classification: public, internal, confidential or restricted."))?;
    let status: SourceStatus =
        get("status").parse().map_err(|_| Error::user("Choose a status: draft, approved or withdrawn."))?;
    let effective_from = parse_date("The effective date", &get("effective_from"))?.unwrap_or_else(crate::domain::today);
    let expires_at = parse_date("The expiry date", &get("expires_at"))?;
    if expires_at.is_some_and(|e| e <= effective_from) {
        return Err(Error::user("The expiry date must come after the effective date."));
    }
    let owner = get("owner");
    if owner.is_empty() || owner.len() > 200 {
        return Err(Error::user("Name the owner of the document (up to 200 characters)."));
    }
    let retention = get("retention");
    Ok(ChunkAcl {
        tenant: actor.tenant.clone(),
        owner,
        classification,
        allowed_groups: groups,
        status,
        effective_from,
        expires_at,
        retention_class: if retention.is_empty() { "standard".to_owned() } else { retention },
    })
}

/// The upload form's fields and files as an upload request.
pub(crate) fn upload_request(
    actor: &Actor,
    fields: &HashMap<String, String>,
    files: Vec<UploadedFile>,
) -> Result<UploadRequest, Error> {
    let field = |name: &str| fields.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    Ok(UploadRequest {
        version_of: field("version_of"),
        title: field("title"),
        document_id: field("document_id"),
        acl: acl_from_form(actor, fields)?,
        files,
        kind: field("kind").map(|k| k.parse()).transpose()?,
    })
}

async fn upload_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, form): Authenticated<Multipart>,
) -> WebResult {
    let err = web_err(&req);
    require_admin(&state, &actor).await.map_err(&err)?;
    let (fields, files) = read_form(form, state.settings.upload_max_bytes).await.map_err(&err)?;
    session::verify_csrf(&req, &state, fields.get("csrf").map_or("", String::as_str)).await.map_err(&err)?;
    let request = upload_request(&actor, &fields, files).map_err(&err)?;
    let job_ids = state.uploads.start(&actor, request).await.map_err(&err)?;
    // One file: its progress page. Several: the first, which links back to the list.
    Ok(redirect(&format!("/documents/jobs/{}", job_ids[0])))
}

async fn job_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, job): Authenticated<web::Path<String>>,
) -> WebResult {
    let err = web_err(&req);
    let job = state.uploads.job(&actor, &job).await.map_err(&err)?;
    let fragment = JobFragment {
        id: job.id,
        document_id: job.document_id,
        version: job.version,
        file_name: job.file_name,
        status: job.status,
    };
    if is_htmx(&req) {
        return html(fragment.render(), None);
    }
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let view = JobView { user: user_view(&actor, csrf.token), job: fragment };
    let mut resp = html(view.render(), csrf.new_cookie)?;
    if !view.job.status.finished {
        // Without JavaScript the page refreshes itself until the job ends.
        resp.headers_mut().insert(header::HeaderName::from_static("refresh"), header::HeaderValue::from_static("1"));
    }
    Ok(resp)
}

async fn detail_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, id): Authenticated<web::Path<String>>,
) -> WebResult {
    let err = web_err(&req);
    let detail = state.documents.detail(&actor, &id).await.map_err(&err)?;
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let crate::service::documents::DocumentDetail { id, preview, versions: versions_rows, acls, latest, chunks } =
        detail;
    let acl = acls.into_iter().find(|(v, _)| *v == latest).and_then(|(_, a)| a).ok_or_else(|| err(Error::NotFound))?;
    let view = DetailView {
        user: user_view(&actor, csrf.token.clone()),
        csrf: csrf.token,
        id: id.to_string(),
        title: preview.title.clone(),
        versions: versions_rows
            .iter()
            .map(|v| VersionRow {
                version: u32::try_from(v.version).unwrap_or(0),
                status: v.status.clone(),
                classification: v.classification.clone(),
                groups: v.allowed_groups.replace(',', ", "),
                effective_from: v.effective_from.to_string(),
                expires_at: v.expires_at.map(|d| d.to_string()).unwrap_or_else(|| "—".to_owned()),
                pages: v.page_count,
            })
            .collect(),
        latest,
        acl: AclForm {
            owner: acl.owner.clone(),
            classification: acl.classification.as_str().to_owned(),
            groups: acl.allowed_groups.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", "),
            status: acl.status.as_str().to_owned(),
            effective_from: acl.effective_from.to_string(),
            expires_at: acl.expires_at.map(|d| d.to_string()).unwrap_or_default(),
            retention: acl.retention_class.clone(),
        },
        chunks: chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| ChunkRow { ordinal: i + 1, page: c.page, heading_path: c.heading_path, text: c.text })
            .collect(),
    };
    html(view.render(), csrf.new_cookie)
}

/// The metadata form, every field by name (the upload form's fields).
type MetadataForm = web::Form<HashMap<String, String>>;

/// A document id and a version number in the path.
type VersionPath = web::Path<(String, u32)>;

async fn metadata_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, (id, form)): Authenticated<(web::Path<String>, MetadataForm)>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_csrf(&req, &state, form.get("csrf").map_or("", String::as_str)).await.map_err(&err)?;
    let version: u32 = form
        .get("version")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| err(Error::user("Say which version to change.")))?;
    let acl = acl_from_form(&actor, &form).map_err(&err)?;
    state.documents.update_acl(&actor, &id, version, acl).await.map_err(&err)?;
    Ok(redirect(&format!("/documents/{id}")))
}

#[derive(Deserialize)]
struct StatusForm {
    #[serde(default)]
    csrf: String,
    status: String,
}

/// Retires every version (`withdrawn`) or brings them back (`approved`).
async fn status_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, (id, form)): Authenticated<(web::Path<String>, web::Form<StatusForm>)>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_csrf(&req, &state, &form.csrf).await.map_err(&err)?;
    let status: SourceStatus =
        form.status.parse().map_err(|_| err(Error::user("Choose a status: draft, approved or withdrawn.")))?;
    state.documents.set_status(&actor, &id, None, status).await.map_err(&err)?;
    Ok(redirect(&format!("/documents/{id}")))
}

async fn delete_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, id): Authenticated<web::Path<String>>,
) -> WebResult {
    let err = web_err(&req);
    let id = state.documents.resolve_id(&actor, &id).await.map_err(&err)?;
    require_admin(&state, &actor).await.map_err(&err)?;
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let preview = state.documents.deletion_preview(&actor, &id).await.map_err(&err)?;
    let view =
        DeleteView { user: user_view(&actor, csrf.token.clone()), csrf: csrf.token, id: id.to_string(), preview };
    html(view.render(), csrf.new_cookie)
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn delete_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, (id, form)): Authenticated<(web::Path<String>, web::Form<DeleteForm>)>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_csrf(&req, &state, &form.csrf).await.map_err(&err)?;
    let receipt = state.documents.delete(&actor, &id, None, &form.reason).await.map_err(&err)?;
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let json = serde_json::to_string_pretty(&receipt).map_err(|e| err(Error::internal("receipt", e)))?;
    let view = ReceiptView { user: user_view(&actor, csrf.token), receipt, json };
    html(view.render(), csrf.new_cookie)
}

// ---------------------------------------------------------------------------------------------
// JSON API: /api/v1/documents and /api/v1/jobs

/// A document as the list gives it: its latest version.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentItem {
    pub id: String,
    pub title: String,
    pub latest_version: u32,
    pub status: String,
    pub classification: String,
    pub chunks: usize,
}

/// The documents of the caller's tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    pub documents: Vec<DocumentItem>,
}

/// A version's access metadata. The tenant is always the document's own, so it is not shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessView {
    pub owner: String,
    #[schema(value_type = String, example = "internal")]
    pub classification: Classification,
    pub groups: Vec<String>,
    #[schema(value_type = String, example = "approved")]
    pub status: SourceStatus,
    pub effective_from: NaiveDate,
    pub expires_at: Option<NaiveDate>,
    pub retention: String,
}

impl From<&ChunkAcl> for AccessView {
    fn from(acl: &ChunkAcl) -> Self {
        Self {
            owner: acl.owner.clone(),
            classification: acl.classification,
            groups: acl.allowed_groups.iter().map(|g| g.as_str().to_owned()).collect(),
            status: acl.status,
            effective_from: acl.effective_from,
            expires_at: acl.expires_at,
            retention: acl.retention_class.clone(),
        }
    }
}

/// One version of a document.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub version: u32,
    pub pages: i32,
    pub chunks: usize,
    pub file_bytes: u64,
    pub access: Option<AccessView>,
}

/// A document with its versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: String,
    pub title: String,
    pub versions: Vec<VersionView>,
}

/// Access metadata as the API takes it; the tenant is always the caller's.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessBody {
    pub owner: String,
    #[schema(value_type = String, example = "internal")]
    pub classification: Classification,
    /// Groups that may read the version; at least one.
    pub groups: Vec<String>,
    #[schema(value_type = String, example = "approved")]
    pub status: SourceStatus,
    pub effective_from: NaiveDate,
    #[serde(default)]
    pub expires_at: Option<NaiveDate>,
    /// `standard` when absent.
    #[serde(default = "standard")]
    pub retention: String,
}

fn standard() -> String {
    "standard".to_owned()
}

/// What changing a version's access did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessUpdated {
    pub id: String,
    pub version: u32,
    pub chunks_reindexed: u64,
}

/// Why a document is deleted; kept on the receipt.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteBody {
    pub reason: String,
}

/// Upload jobs started, with where to follow them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadAccepted {
    pub jobs: Vec<String>,
    pub links: Vec<String>,
}

/// An upload job and where its ingestion stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobBody {
    pub id: String,
    pub document_id: String,
    pub version: u32,
    pub file_name: String,
    pub status: UploadStatus,
}

/// A document id as the caller names it: its plain name in the caller's tenant, or `TENANT.name`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct DocumentPath {
    /// The document's id.
    id: String,
}

/// The documents of the caller's tenant, latest version each (admins).
#[utoipa::path(get, path = "/api/v1/documents", tag = "documents",
    responses(
        (status = 200, description = "The documents", body = DocumentList),
        (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody)))]
pub(crate) async fn api_documents_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
) -> WebResult {
    let documents = state.documents.list(&actor).await.map_err(web_err(&req))?;
    let documents = documents
        .into_iter()
        .map(|d| DocumentItem {
            id: d.id,
            title: d.title,
            latest_version: d.version,
            status: d.status,
            classification: d.classification,
            chunks: d.chunk_count,
        })
        .collect();
    Ok(HttpResponse::Ok().json(DocumentList { documents }))
}

/// A document of the caller's tenant with every version and its access metadata (admins).
#[utoipa::path(get, path = "/api/v1/documents/{id}", tag = "documents", params(DocumentPath),
    responses(
        (status = 200, description = "The document and its versions", body = DocumentView),
        (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody), (status = 404, description = "No such thing among what the caller may see", body = ErrorBody)))]
pub(crate) async fn api_document_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, path): Authenticated<web::Path<DocumentPath>>,
) -> WebResult {
    let detail = state.documents.detail(&actor, &path.id).await.map_err(web_err(&req))?;
    let versions = detail
        .preview
        .versions
        .iter()
        .zip(&detail.acls)
        .map(|(v, (_, acl))| VersionView {
            version: v.version,
            pages: v.pages,
            chunks: v.chunks,
            file_bytes: v.bytes,
            access: acl.as_ref().map(AccessView::from),
        })
        .collect();
    Ok(HttpResponse::Ok().json(DocumentView { id: detail.id, title: detail.preview.title, versions }))
}

/// Sets the access metadata of one version and re-indexes its passages (admins; CSRF header
/// with a session).
#[utoipa::path(put, path = "/api/v1/documents/{id}/versions/{version}/access", tag = "documents",
    params(("id" = String, Path, description = "The document's id"), ("version" = u32, Path, description = "The version")),
    request_body = AccessBody,
    responses(
        (status = 200, description = "Access changed and the passages re-indexed", body = AccessUpdated),
        (status = 400, description = "Invalid input; the message says what to change", body = ErrorBody), (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody),
        (status = 404, description = "No such thing among what the caller may see", body = ErrorBody)))]
pub(crate) async fn api_access_put(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, (path, body)): Authenticated<(VersionPath, web::Json<AccessBody>)>,
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
    Ok(HttpResponse::Ok().json(AccessUpdated { id, version, chunks_reindexed: chunks }))
}

/// Deletes a document (every version) from every store and answers the deletion receipt
/// (admins; CSRF header with a session).
#[utoipa::path(delete, path = "/api/v1/documents/{id}", tag = "documents", params(DocumentPath),
    request_body = DeleteBody,
    responses(
        (status = 200, description = "The deletion receipt", body = DeletionReceipt),
        (status = 400, description = "Invalid input; the message says what to change", body = ErrorBody), (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody),
        (status = 404, description = "No such thing among what the caller may see", body = ErrorBody)))]
pub(crate) async fn api_document_delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, (path, body)): Authenticated<(web::Path<DocumentPath>, web::Json<DeleteBody>)>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_api_csrf(&req, &state).await.map_err(&err)?;
    let receipt = state.documents.delete(&actor, &path.id, None, &body.reason).await.map_err(&err)?;
    Ok(HttpResponse::Ok().json(receipt))
}

/// Uploads PDFs: the same multipart form as the page (fields and `files`). Answers 202 with the
/// jobs (admins; CSRF header with a session).
#[utoipa::path(post, path = "/api/v1/documents", tag = "documents",
    request_body(content_type = "multipart/form-data", description = "`files` (PDFs), `classification`, `groups`, `owner`, `effective_from`, and optionally `title`, `document_id`, `version_of`, `expires_at`, `retention`, `kind` (regulation, policy or other)"),
    responses(
        (status = 202, description = "The upload jobs started", body = UploadAccepted),
        (status = 400, description = "Invalid input; the message says what to change", body = ErrorBody), (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody),
        (status = 429, description = "Too many requests; retry after the Retry-After seconds", body = ErrorBody)))]
pub(crate) async fn api_documents_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, form): Authenticated<Multipart>,
) -> WebResult {
    let err = web_err(&req);
    require_admin(&state, &actor).await.map_err(&err)?;
    session::verify_api_csrf(&req, &state).await.map_err(&err)?;
    let (fields, files) = read_form(form, state.settings.upload_max_bytes).await.map_err(&err)?;
    let request = upload_request(&actor, &fields, files).map_err(&err)?;
    let jobs = state.uploads.start(&actor, request).await.map_err(&err)?;
    let links = jobs.iter().map(|j| format!("/api/v1/jobs/{j}")).collect();
    Ok(HttpResponse::Accepted().json(UploadAccepted { jobs, links }))
}

/// An upload job of the caller's tenant (admins).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "documents",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = JobBody),
        (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody), (status = 404, description = "No such thing among what the caller may see", body = ErrorBody)))]
pub(crate) async fn api_job_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, id): Authenticated<web::Path<String>>,
) -> WebResult {
    let job = state.uploads.job(&actor, &id).await.map_err(web_err(&req))?;
    Ok(HttpResponse::Ok().json(JobBody {
        id: job.id,
        document_id: job.document_id,
        version: job.version,
        file_name: job.file_name,
        status: job.status,
    }))
}
