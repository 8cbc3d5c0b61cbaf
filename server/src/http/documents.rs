//! Document administration pages (admins, own tenant only): list with filters, upload with live
//! ingestion progress, detail with chunks, metadata edits, retirement, new versions and deletion
//! with a confirmation and the receipt. The checks live in [`DocumentAdmin`]; handlers parse,
//! call and render.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, web};
use askama::Template;
use chrono::NaiveDate;
use futures_util::StreamExt;
use indexer::{ChunkAcl, Classification, GroupName, SourceStatus};
use serde::Deserialize;

use crate::service::documents::{DeletionPreview, DeletionReceipt};
use crate::domain::Actor;
use crate::error::Error;
use crate::service::ingest::{Upload, UploadStatus};
use crate::http::session::{self, SignedIn};
use crate::store::AuditRecord;
use crate::http::{AppState, UserView, WebResult, html, is_htmx, redirect, user_view, web_err};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/documents", web::get().to(list_get))
        .route("/documents/upload", web::post().to(upload_post))
        .route("/documents/jobs/{job}", web::get().to(job_get))
        .route("/documents/{id}", web::get().to(detail_get))
        .route("/documents/{id}/metadata", web::post().to(metadata_post))
        .route("/documents/{id}/status", web::post().to(status_post))
        .route("/documents/{id}/delete", web::get().to(delete_get))
        .route("/documents/{id}/delete", web::post().to(delete_post));
}

// ---------------------------------------------------------------------------------------------
// Upload jobs

/// One upload being ingested.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub tenant: String,
    pub document_id: String,
    pub version: u32,
    pub file_name: String,
    pub status: UploadStatus,
}

/// Upload jobs of this process, for the progress pages. The outcome also goes to the audit log.
/// One job ingests at a time (embedding already uses every core); the others wait, queued.
#[derive(Debug, Clone)]
pub struct Jobs {
    jobs: Arc<Mutex<HashMap<String, Job>>>,
    /// One permit: the job holding it ingests.
    running: Arc<tokio::sync::Semaphore>,
}

impl Default for Jobs {
    fn default() -> Self {
        Self { jobs: Arc::default(), running: Arc::new(tokio::sync::Semaphore::new(1)) }
    }
}

impl Jobs {
    /// Jobs queued or running.
    fn unfinished(&self) -> usize {
        self.jobs.lock().map_or(0, |jobs| jobs.values().filter(|j| !j.status.finished).count())
    }

    fn insert(&self, job: Job) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.insert(job.id.clone(), job);
        }
    }

    fn update(&self, id: &str, f: &dyn Fn(&mut UploadStatus)) {
        if let Ok(mut jobs) = self.jobs.lock()
            && let Some(job) = jobs.get_mut(id)
        {
            f(&mut job.status);
        }
    }

    pub fn get(&self, id: &str) -> Option<Job> {
        self.jobs.lock().ok().and_then(|jobs| jobs.get(id).cloned())
    }
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

pub(crate) async fn require_admin(state: &AppState, actor: &Actor) -> Result<(), Error> {
    state.documents.authorize_upload(actor).await
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
    SignedIn(actor): SignedIn,
    query: web::Query<ListQuery>,
) -> WebResult {
    let err = web_err(&req);
    require_admin(&state, &actor).await.map_err(&err)?;
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let needle = query.q.trim().to_lowercase();
    let rows = state
        .storage
        .list_documents(&actor.tenant)
        .await
        .map_err(&err)?
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
        today: crate::store::Storage::today().to_string(),
        max_mb: state.settings.upload_max_bytes / (1024 * 1024),
        max_pages: state.settings.upload_max_pages,
    };
    html(view.render(), csrf.new_cookie)
}

/// A file part of the upload form.
pub(crate) struct UploadedFile {
    name: String,
    bytes: Vec<u8>,
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

/// A document id from a file name: "DORA final (2022).pdf" -> "dora-final-2022".
fn id_from_file_name(name: &str) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let mut id = String::new();
    for c in stem.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('-') && !id.is_empty() {
            id.push('-');
        }
    }
    id.trim_end_matches('-').chars().take(100).collect()
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
    let effective_from =
        parse_date("The effective date", &get("effective_from"))?.unwrap_or_else(crate::store::Storage::today);
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

/// Checks every file, then starts one ingestion job per file; returns the job ids. Shared by the
/// upload form and the JSON API.
pub(crate) async fn start_uploads(
    state: &web::Data<AppState>,
    actor: &Actor,
    fields: &HashMap<String, String>,
    files: Vec<UploadedFile>,
) -> Result<Vec<String>, Error> {
    if files.is_empty() {
        return Err(Error::user("Choose at least one PDF file to upload."));
    }
    // Every file is checked before any ingestion starts.
    for f in &files {
        if !f.bytes.starts_with(b"%PDF-") {
            return Err(Error::user(format!("'{}' is not a PDF file.", f.name)));
        }
    }
    let version_of = fields.get("version_of").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let title_field = fields.get("title").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let id_field = fields.get("document_id").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let acl = acl_from_form(actor, fields)?;
    if version_of.is_some() && files.len() > 1 {
        return Err(Error::user("Upload one file at a time as a new version."));
    }
    let mut uploads: Vec<Upload> = Vec::new();
    for f in files {
        let (document_id, version, title) = match &version_of {
            Some(id) => {
                let id = state.documents.resolve_id(actor, id).await?;
                let (next, title, _) = state.documents.next_version(actor, &id).await?;
                (id, next, title_field.clone().unwrap_or(title))
            }
            None => {
                let requested = match (&id_field, uploads.is_empty()) {
                    (Some(id), true) => id.clone(),
                    _ => id_from_file_name(&f.name),
                };
                // Uploaded ids live in the tenant's own namespace: another tenant's ids are
                // never reachable from here, so this check cannot reveal them.
                let id = crate::service::manifest::tenant_document_id(&actor.tenant, &requested)?;
                if state.storage.document(&id).await?.is_some() {
                    return Err(Error::user(format!(
                        "A document with id '{id}' exists already; upload the file as a new version of it."
                    )));
                }
                let title = match &title_field {
                    Some(t) if uploads.is_empty() => t.clone(),
                    _ => f.name.rsplit_once('.').map_or(f.name.as_str(), |(s, _)| s).to_owned(),
                };
                (id, 1, title)
            }
        };
        if uploads.iter().any(|u| u.document_id == document_id) {
            return Err(Error::user(format!(
                "Two files of this upload would both become document '{document_id}'; rename one or upload it separately."
            )));
        }
        uploads.push(Upload {
            document_id,
            title,
            version,
            file_name: f.name,
            bytes: f.bytes,
            acl: acl.clone(),
            max_pages: state.settings.upload_max_pages,
        });
    }
    let unfinished = state.jobs.unfinished();
    if unfinished + uploads.len() > state.settings.upload_jobs_max {
        let detail = serde_json::json!({ "files": uploads.len(), "unfinished_jobs": unfinished });
        state.storage.append_audit(AuditRecord::by(actor, "upload_document", "shed", detail)).await?;
        return Err(Error::Overloaded);
    }
    let mut job_ids = Vec::new();
    for upload in uploads {
        let job_id = crate::domain::random_hex(8)?;
        state.jobs.insert(Job {
            id: job_id.clone(),
            tenant: actor.tenant.to_string(),
            document_id: upload.document_id.clone(),
            version: upload.version,
            file_name: upload.file_name.clone(),
            status: UploadStatus { stage: "queued", ..Default::default() },
        });
        let (jobs, id, st, who) = (state.jobs.clone(), job_id.clone(), state.clone(), actor.clone());
        actix_web::rt::spawn(async move {
            let report_jobs = jobs.clone();
            let report_id = id.clone();
            let report: crate::service::ingest::StatusReporter = Arc::new(move |f| report_jobs.update(&report_id, f));
            let (document_id, version, superseding) = (upload.document_id.clone(), upload.version, upload.version > 1);
            let turn = Arc::clone(&jobs.running).acquire_owned().await;
            let result = match turn {
                Ok(_running) => st.ingestor.ingest_upload(upload, &who.principal_id, report).await,
                Err(e) => Err(Error::internal("upload queue", e)),
            };
            let result = match result {
                Ok(_) if superseding => st.documents.supersede(&who, &document_id, version).await.map(|_| ()),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            let message = match &result {
                Ok(()) => None,
                Err(Error::User(m)) => Some(m.clone()),
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "upload failed");
                    Some("The document could not be ingested; nothing was kept. Try again or contact support.".into())
                }
            };
            if let Some(m) = &message {
                let detail = serde_json::json!({ "document": document_id, "version": version, "reason": m });
                let _ = st.storage.append_audit(AuditRecord::by(&who, "upload_document", "failed", detail)).await;
            }
            jobs.update(&id, &|s| {
                s.finished = true;
                s.stage = if message.is_some() { "failed" } else { "done" };
                s.error = message.clone();
            });
        });
        job_ids.push(job_id);
    }
    Ok(job_ids)
}

async fn upload_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    form: Multipart,
) -> WebResult {
    let err = web_err(&req);
    require_admin(&state, &actor).await.map_err(&err)?;
    let (fields, files) = read_form(form, state.settings.upload_max_bytes).await.map_err(&err)?;
    session::verify_csrf(&req, &state, fields.get("csrf").map_or("", String::as_str)).await.map_err(&err)?;
    let job_ids = start_uploads(&state, &actor, &fields, files).await.map_err(&err)?;
    // One file: its progress page. Several: the first, which links back to the list.
    Ok(redirect(&format!("/documents/jobs/{}", job_ids[0])))
}

async fn job_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    job: web::Path<String>,
) -> WebResult {
    let err = web_err(&req);
    require_admin(&state, &actor).await.map_err(&err)?;
    let job = state.jobs.get(&job).filter(|j| j.tenant == actor.tenant.as_str()).ok_or_else(|| err(Error::NotFound))?;
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
    SignedIn(actor): SignedIn,
    id: web::Path<String>,
) -> WebResult {
    let err = web_err(&req);
    let id = state.documents.resolve_id(&actor, &id).await.map_err(&err)?;
    require_admin(&state, &actor).await.map_err(&err)?;
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let preview = state.documents.deletion_preview(&actor, &id).await.map_err(&err)?;
    let versions_rows = state.storage.versions(&id).await.map_err(&err)?;
    let latest = preview.versions.iter().map(|v| v.version).max().ok_or_else(|| err(Error::NotFound))?;
    let acl = state.storage.version_acl(&id, latest).await.map_err(&err)?.ok_or_else(|| err(Error::NotFound))?;
    let chunks = state.storage.version_chunks(&id, latest).await.map_err(&err)?;
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

async fn metadata_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    id: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> WebResult {
    let err = web_err(&req);
    let id = state.documents.resolve_id(&actor, &id).await.map_err(&err)?;
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
    SignedIn(actor): SignedIn,
    id: web::Path<String>,
    form: web::Form<StatusForm>,
) -> WebResult {
    let err = web_err(&req);
    let id = state.documents.resolve_id(&actor, &id).await.map_err(&err)?;
    session::verify_csrf(&req, &state, &form.csrf).await.map_err(&err)?;
    let status: SourceStatus =
        form.status.parse().map_err(|_| err(Error::user("Choose a status: draft, approved or withdrawn.")))?;
    state.documents.set_status(&actor, &id, None, status).await.map_err(&err)?;
    Ok(redirect(&format!("/documents/{id}")))
}

async fn delete_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(actor): SignedIn,
    id: web::Path<String>,
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
    SignedIn(actor): SignedIn,
    id: web::Path<String>,
    form: web::Form<DeleteForm>,
) -> WebResult {
    let err = web_err(&req);
    let id = state.documents.resolve_id(&actor, &id).await.map_err(&err)?;
    session::verify_csrf(&req, &state, &form.csrf).await.map_err(&err)?;
    let receipt = state.documents.delete(&actor, &id, None, &form.reason).await.map_err(&err)?;
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let json = serde_json::to_string_pretty(&receipt).map_err(|e| err(Error::internal("receipt", e)))?;
    let view = ReceiptView { user: user_view(&actor, csrf.token), receipt, json };
    html(view.render(), csrf.new_cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_come_from_file_names() {
        assert_eq!(id_from_file_name("DORA final (2022).pdf"), "dora-final-2022");
        assert_eq!(id_from_file_name("--x.PDF"), "x");
    }
}
