//! Uploads: PDFs an admin sends through the page or the API become ingestion jobs, one running at
//! a time, with live progress; each outcome is audited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use indexer::ChunkAcl;

use crate::domain::Actor;
use crate::error::{Error, Result};
use crate::service::documents::DocumentAdmin;
use crate::service::ingest::{Ingestor, Upload, UploadStatus};
use crate::store::{AuditRecord, Storage};

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
    pub fn unfinished(&self) -> usize {
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

/// A file of an upload.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// An upload as the form or the API gives it.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    /// A new version of this document (one file only).
    pub version_of: Option<String>,
    pub title: Option<String>,
    /// The name of the (first) new document; otherwise each file's name.
    pub document_id: Option<String>,
    pub acl: ChunkAcl,
    pub files: Vec<UploadedFile>,
    /// regulation, policy or other; a new version keeps its document's kind when absent.
    pub kind: Option<crate::domain::DocumentKind>,
}

/// Starts and tracks upload jobs.
#[derive(Debug, Clone)]
pub struct Uploads {
    storage: Storage,
    documents: DocumentAdmin,
    ingestor: Ingestor,
    jobs: Jobs,
    max_pages: usize,
    jobs_max: usize,
}

impl Uploads {
    pub fn new(
        storage: Storage,
        documents: DocumentAdmin,
        ingestor: Ingestor,
        max_pages: usize,
        jobs_max: usize,
    ) -> Self {
        Self { storage, documents, ingestor, jobs: Jobs::default(), max_pages, jobs_max }
    }

    /// Whether `actor` may upload (admins only; a refusal is audited).
    pub async fn authorize(&self, actor: &Actor) -> Result<()> {
        self.documents.authorize_upload(actor).await
    }

    /// A job of the actor's tenant, for its progress page; another tenant's is "not found".
    pub async fn job(&self, actor: &Actor, id: &str) -> Result<Job> {
        self.authorize(actor).await?;
        self.jobs.get(id).filter(|j| j.tenant == actor.tenant.as_str()).ok_or(Error::NotFound)
    }

    /// Starts one ingestion job per file and returns the job ids (admins). Every file is checked,
    /// every id resolved in the actor's namespace and the queue bound checked before any job
    /// starts. Shared by the upload form and the JSON API.
    pub async fn start(&self, actor: &Actor, request: UploadRequest) -> Result<Vec<String>> {
        self.authorize(actor).await?;
        let UploadRequest { version_of, title: title_field, document_id: id_field, acl, files, kind } = request;
        if files.is_empty() {
            return Err(Error::user("Choose at least one PDF file to upload."));
        }
        // Every file is checked before any ingestion starts.
        for f in &files {
            if !f.bytes.starts_with(b"%PDF-") {
                return Err(Error::user(format!("'{}' is not a PDF file.", f.name)));
            }
        }
        if version_of.is_some() && files.len() > 1 {
            return Err(Error::user("Upload one file at a time as a new version."));
        }
        let mut uploads: Vec<Upload> = Vec::new();
        for f in files {
            let (document_id, version, title, kind) = match &version_of {
                Some(id) => {
                    let id = self.documents.resolve_id(actor, id).await?;
                    let (next, title, _) = self.documents.next_version(actor, &id).await?;
                    let stored = match kind {
                        Some(k) => k,
                        None => {
                            self.storage.document(&id).await?.map(|d| d.kind.parse()).transpose()?.unwrap_or_default()
                        }
                    };
                    (id, next, title_field.clone().unwrap_or(title), stored)
                }
                None => {
                    let requested = match (&id_field, uploads.is_empty()) {
                        (Some(id), true) => id.clone(),
                        _ => id_from_file_name(&f.name),
                    };
                    // Uploaded ids live in the tenant's own namespace: another tenant's ids are
                    // never reachable from here, so this check cannot reveal them.
                    let id = crate::service::manifest::tenant_document_id(&actor.tenant, &requested)?;
                    if self.storage.document(&id).await?.is_some() {
                        return Err(Error::user(format!(
                            "A document with id '{id}' exists already; upload the file as a new version of it."
                        )));
                    }
                    let title = match &title_field {
                        Some(t) if uploads.is_empty() => t.clone(),
                        _ => f.name.rsplit_once('.').map_or(f.name.as_str(), |(s, _)| s).to_owned(),
                    };
                    (id, 1, title, kind.unwrap_or_default())
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
                max_pages: self.max_pages,
                kind,
            });
        }
        let unfinished = self.jobs.unfinished();
        if unfinished + uploads.len() > self.jobs_max {
            let detail = serde_json::json!({ "files": uploads.len(), "unfinished_jobs": unfinished });
            self.storage.append_audit(AuditRecord::by(actor, "upload_document", "shed", detail)).await?;
            return Err(Error::Overloaded);
        }
        let mut job_ids = Vec::new();
        for upload in uploads {
            let job_id = crate::domain::random_hex(8)?;
            self.jobs.insert(Job {
                id: job_id.clone(),
                tenant: actor.tenant.to_string(),
                document_id: upload.document_id.clone(),
                version: upload.version,
                file_name: upload.file_name.clone(),
                status: UploadStatus { stage: "queued", ..Default::default() },
            });
            let (jobs, id, st, who) = (self.jobs.clone(), job_id.clone(), self.clone(), actor.clone());
            tokio::spawn(async move {
                let report_jobs = jobs.clone();
                let report_id = id.clone();
                let report: crate::service::ingest::StatusReporter =
                    Arc::new(move |f| report_jobs.update(&report_id, f));
                let (document_id, version, superseding) =
                    (upload.document_id.clone(), upload.version, upload.version > 1);
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
                        Some(
                            "The document could not be ingested; nothing was kept. Try again or contact support."
                                .into(),
                        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_come_from_file_names() {
        assert_eq!(id_from_file_name("DORA final (2022).pdf"), "dora-final-2022");
        assert_eq!(id_from_file_name("--x.PDF"), "x");
    }
}
