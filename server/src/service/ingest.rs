//! Ingestion: PDFs in, chunks with access metadata stored and indexed out. Everything is read,
//! extracted and chunked before anything is written, so a bad file changes nothing; each document
//! version is then stored in one transaction and indexed, and undone if indexing fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexer::{Bm25Index, Chunk, DenseIndex, DenseItem, Embedder, IndexedChunk};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::service::manifest::{DocumentEntry, Manifest};
use crate::store::{AuditRecord, NewVersion, Storage, text_sha256};

/// A document version that has been read and chunked but not yet stored.
#[derive(Debug)]
struct Prepared<'m> {
    entry: &'m DocumentEntry,
    bytes: Vec<u8>,
    sha256: String,
    page_count: u32,
    chunks: Vec<Chunk>,
    /// Already stored with the same content: nothing to do.
    unchanged: bool,
    scan: crate::store::VersionScan,
    embeddings: Vec<Vec<f32>>,
}

/// What happened to one document version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ingested {
        chunks: usize,
    },
    /// The same version with the same content was already stored.
    Unchanged,
}

/// Progress of an ingestion run, reported after each document.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub document_id: &'a str,
    pub version: u32,
    pub outcome: &'a Outcome,
}

/// Totals of an ingestion run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub job_id: String,
    pub ingested: usize,
    pub unchanged: usize,
    pub chunks: usize,
}

/// Writes documents into storage, the BM25 index and the file store.
#[derive(Debug, Clone)]
pub struct Ingestor {
    pub storage: Storage,
    pub bm25: Arc<Bm25Index>,
    /// Where original PDFs are kept, one folder per document.
    pub files_dir: PathBuf,
    /// Dense retrieval, when the embedding model is loaded.
    pub dense: Option<(Arc<Embedder>, Arc<DenseIndex>)>,
    /// How PDFs are read: in a worker process under limits, in the server.
    pub extractor: indexer::Extractor,
    /// Finds the obligations of a document ingested as a regulation.
    pub obligations: Arc<dyn indexer::ObligationDetector>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn prepare<'m>(entry: &'m DocumentEntry, extractor: &indexer::Extractor) -> Result<Prepared<'m>> {
    let bytes = std::fs::read(&entry.file)
        .map_err(|e| Error::user(format!("document '{}': cannot read {}: {e}", entry.id, entry.file.display())))?;
    prepare_bytes(entry, bytes, extractor)
}

/// Extracts and chunks a PDF held in memory. The extractor's limits (pages first) are checked
/// before any page is drawn.
fn prepare_bytes<'m>(entry: &'m DocumentEntry, bytes: Vec<u8>, extractor: &indexer::Extractor) -> Result<Prepared<'m>> {
    let name = entry.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let pages = extractor
        .extract(&name, &bytes)
        .map_err(|e| Error::user(format!("document '{}': {}", entry.id, Error::from(e))))?;
    let chunks = indexer::chunk_pages(&entry.id, entry.version, &pages);
    if chunks.is_empty() {
        return Err(Error::user(format!("document '{}': no passages could be formed from its text", entry.id)));
    }
    let mut scan = crate::store::VersionScan::default();
    for page in &pages {
        scan.pii.add(&indexer::pii::scan(&page.text));
        if page.text.trim().is_empty() {
            scan.pages_without_text += 1;
        }
    }
    Ok(Prepared {
        scan,
        sha256: sha256_hex(&bytes),
        page_count: u32::try_from(pages.len()).unwrap_or(u32::MAX),
        entry,
        bytes,
        chunks,
        unchanged: false,
        embeddings: Vec::new(),
    })
}

/// Ends the name of a stored file that is not yet owned by a committed version.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// What the start-up sweep of the file store did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Staged files whose version was committed, moved into place.
    pub finished: Vec<String>,
    /// Staged files of versions never committed, and files of no stored version, removed.
    pub removed: Vec<String>,
}

/// Makes the file store agree with the database after a crash: a staged file whose version was
/// committed takes its place, any other staged file goes, and a stored file no version owns
/// goes. Run at start-up, while this process holds the index lock, so no ingestion is running.
pub async fn sweep_file_store(storage: &Storage, files_dir: &Path) -> Result<SweepReport> {
    let mut report = SweepReport::default();
    let Ok(documents) = std::fs::read_dir(files_dir) else { return Ok(report) };
    for document in documents.flatten() {
        if !document.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let document_id = document.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(document.path()) else { continue };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let shown = format!("{document_id}/{name}");
            let version = name
                .strip_prefix('v')
                .and_then(|rest| rest.split_once(".pdf"))
                .and_then(|(n, _)| n.parse::<u32>().ok());
            let committed = match version {
                Some(v) => storage.version_checksum(&document_id, v).await?.is_some(),
                None => false,
            };
            let final_path = version.map(|v| document.path().join(format!("v{v}.pdf")));
            if name.ends_with(PARTIAL_SUFFIX) {
                match final_path {
                    Some(target) if committed && !target.exists() => {
                        std::fs::rename(file.path(), &target)?;
                        report.finished.push(shown);
                    }
                    _ => {
                        std::fs::remove_file(file.path())?;
                        report.removed.push(shown);
                    }
                }
            } else if version.is_some() && name.ends_with(".pdf") && !committed {
                std::fs::remove_file(file.path())?;
                report.removed.push(shown);
            }
        }
        // Only an empty folder goes.
        let _ = std::fs::remove_dir(document.path());
    }
    Ok(report)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

impl Ingestor {
    /// Ingests every document of a manifest, after seeding its tenants and principals.
    #[tracing::instrument(skip_all, fields(documents = manifest.documents.len()))]
    pub async fn ingest_manifest(
        &self,
        manifest: &Manifest,
        requested_by: &str,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Report> {
        // Read, chunk, check and embed everything first: any bad file stops the run before a
        // single write.
        let mut prepared =
            manifest.documents.iter().map(|d| prepare(d, &self.extractor)).collect::<Result<Vec<_>>>()?;
        for p in &mut prepared {
            let e = p.entry;
            if let Some(existing) = self.storage.document_tenant(&e.id).await?
                && existing != e.acl.tenant.as_str()
            {
                return Err(Error::user(format!(
                    "document '{}' already belongs to another tenant; choose another id",
                    e.id
                )));
            }
            match self.storage.version_checksum(&e.id, e.version).await? {
                Some(sha) if sha == p.sha256 => p.unchanged = true,
                Some(_) => {
                    return Err(Error::user(format!(
                        "document '{}' version {} is already stored with different content; give the new file a new version",
                        e.id, e.version
                    )));
                }
                None => {}
            }
        }
        if let Some((embedder, _)) = &self.dense {
            self.embed_prepared(embedder, &mut prepared).await?;
        }

        for t in &manifest.tenants {
            self.storage.ensure_tenant(&t.id, &t.name).await?;
        }
        for p in &manifest.principals {
            self.storage.upsert_principal(p).await?;
        }

        let job_id = format!("ingest-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"));
        let total = prepared.len();
        self.storage.start_job(&job_id, "*", requested_by, u32::try_from(total).unwrap_or(u32::MAX)).await?;
        let mut report = Report { job_id: job_id.clone(), ..Report::default() };
        for (i, p) in prepared.iter().enumerate() {
            let outcome = match self.store_one(p).await {
                Ok(o) => o,
                Err(e) => {
                    self.storage
                        .update_job(&job_id, to_u32(i), to_u32(report.chunks), Some(Err(e.to_string())))
                        .await?;
                    return Err(e);
                }
            };
            match outcome {
                Outcome::Ingested { chunks } => {
                    report.ingested += 1;
                    report.chunks += chunks;
                }
                Outcome::Unchanged => report.unchanged += 1,
            }
            self.storage.update_job(&job_id, to_u32(i + 1), to_u32(report.chunks), None).await?;
            progress(Progress {
                done: i + 1,
                total,
                document_id: &p.entry.id,
                version: p.entry.version,
                outcome: &outcome,
            });
        }
        self.storage.update_job(&job_id, to_u32(total), to_u32(report.chunks), Some(Ok(()))).await?;
        self.storage
            .append_audit(AuditRecord {
                actor: requested_by.to_owned(),
                tenant: None,
                action: "ingest_manifest".to_owned(),
                outcome: "succeeded".to_owned(),
                detail: serde_json::json!({
                    "job": job_id, "ingested": report.ingested, "unchanged": report.unchanged, "chunks": report.chunks,
                }),
            })
            .await?;
        Ok(report)
    }

    /// Embeds the chunks of every version to be stored, reusing stored vectors of identical text.
    async fn embed_prepared(&self, embedder: &Arc<Embedder>, prepared: &mut [Prepared<'_>]) -> Result<()> {
        self.embed_prepared_with(
            embedder,
            prepared,
            Arc::new(|done, total| tracing::info!(done, total, "embedding passages")),
        )
        .await
    }

    /// Embeds as [`Self::embed_prepared`], reporting `(embedded, to embed)` as batches finish.
    async fn embed_prepared_with(
        &self,
        embedder: &Arc<Embedder>,
        prepared: &mut [Prepared<'_>],
        on_progress: Arc<dyn Fn(usize, usize) + Send + Sync>,
    ) -> Result<()> {
        let model = embedder.model_sha256().to_owned();
        let hashes: Vec<String> = prepared
            .iter()
            .filter(|p| !p.unchanged)
            .flat_map(|p| p.chunks.iter().map(|c| text_sha256(&c.text)))
            .collect();
        let mut known = self.storage.cached_embeddings(&model, &hashes).await?;
        let mut missing: Vec<(String, String)> = Vec::new();
        let mut queued = std::collections::HashSet::new();
        for p in prepared.iter().filter(|p| !p.unchanged) {
            for c in &p.chunks {
                let h = text_sha256(&c.text);
                if !known.contains_key(&h) && queued.insert(h.clone()) {
                    missing.push((h, c.text.clone()));
                }
            }
        }
        if !missing.is_empty() {
            let embedder = Arc::clone(embedder);
            let texts: Vec<String> = missing.iter().map(|(_, t)| t.clone()).collect();
            let total = texts.len();
            let vectors = tokio::task::spawn_blocking(move || {
                embedder.embed_many(&texts, 32, &mut |done| on_progress(done, total))
            })
            .await
            .map_err(|e| Error::internal("embedding task", e))??;
            for ((h, _), v) in missing.into_iter().zip(vectors) {
                known.insert(h, v);
            }
        }
        for p in prepared.iter_mut().filter(|p| !p.unchanged) {
            p.embeddings = p
                .chunks
                .iter()
                .map(|c| {
                    known.get(&text_sha256(&c.text)).cloned().ok_or_else(|| Error::Internal("embedding missing".into()))
                })
                .collect::<Result<_>>()?;
        }
        Ok(())
    }

    async fn store_one(&self, p: &Prepared<'_>) -> Result<Outcome> {
        if p.unchanged {
            return Ok(Outcome::Unchanged);
        }
        let e = p.entry;
        let file_path = self.files_dir.join(&e.id).join(format!("v{}.pdf", e.version));
        // The file goes in under a name of this job's own and takes its place only once the
        // version row is committed: a job that loses a race for the same version, or fails, never
        // touches a file that a committed version owns. A crash in between leaves a `.partial`
        // file that the start-up sweep finishes or removes.
        let staged = self.files_dir.join(&e.id).join(format!(
            "v{}.pdf.{}{PARTIAL_SUFFIX}",
            e.version,
            crate::domain::random_hex(6)?
        ));
        let obligations = self.find_obligations(p).await?;
        write_atomically(&staged, &p.bytes)?;
        let version = NewVersion {
            document_id: e.id.clone(),
            title: e.title.clone(),
            version: e.version,
            acl: e.acl.clone(),
            file_name: e.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            file_sha256: p.sha256.clone(),
            page_count: p.page_count,
            chunks: p.chunks.clone(),
            embeddings: p.embeddings.clone(),
            embedding_model: self.dense.as_ref().map(|(m, _)| m.model_sha256().to_owned()).unwrap_or_default(),
            scan: p.scan,
            kind: e.kind,
            obligations,
        };
        if let Err(err) = self.storage.insert_version(&version).await {
            let _ = std::fs::remove_file(&staged);
            return Err(err);
        }
        if let Err(err) = std::fs::rename(&staged, &file_path) {
            let _ = std::fs::remove_file(&staged);
            self.storage.delete_version(&e.id, e.version).await?;
            return Err(Error::internal("moving the stored file into place", err));
        }
        if let Err(err) = self.index_version(p) {
            // Undo the stored rows and any index entries so the database and the indexes agree.
            let _ = self.bm25.delete_version(&e.id, e.version);
            if let Some((_, dense)) = &self.dense {
                let _ = dense.delete(&e.id, Some(e.version));
            }
            self.storage.delete_version(&e.id, e.version).await?;
            let _ = std::fs::remove_file(&file_path);
            return Err(err);
        }
        Ok(Outcome::Ingested { chunks: p.chunks.len() })
    }

    /// The obligations of a version ingested as a regulation (none for other documents),
    /// compared with those of the latest earlier version.
    async fn find_obligations(&self, p: &Prepared<'_>) -> Result<Vec<crate::store::NewObligation>> {
        if p.entry.kind != crate::domain::DocumentKind::Regulation {
            return Ok(Vec::new());
        }
        crate::service::obligations::extract_version(
            &self.storage,
            &self.obligations,
            &p.entry.id,
            p.entry.version,
            p.chunks.clone(),
        )
        .await
    }

    fn index_version(&self, p: &Prepared<'_>) -> Result<()> {
        let e = p.entry;
        let indexed: Vec<IndexedChunk<'_>> = p
            .chunks
            .iter()
            .map(|c| IndexedChunk { chunk: c, document_id: &e.id, title: &e.title, version: e.version, acl: &e.acl })
            .collect();
        self.bm25.add(&indexed)?;
        if let Some((_, dense)) = &self.dense {
            let items: Vec<DenseItem<'_>> = p
                .chunks
                .iter()
                .zip(&p.embeddings)
                .map(|(c, v)| DenseItem {
                    chunk_id: &c.id,
                    document_id: &e.id,
                    version: e.version,
                    acl: &e.acl,
                    vector: v,
                })
                .collect();
            dense.add(&items)?;
        }
        Ok(())
    }
}

/// A PDF uploaded by an administrator, with the metadata from the form.
#[derive(Debug, Clone)]
pub struct Upload {
    pub document_id: String,
    pub title: String,
    pub version: u32,
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub acl: indexer::ChunkAcl,
    pub max_pages: usize,
    pub kind: crate::domain::DocumentKind,
}

/// Receives updates of an upload's status as ingestion goes.
pub type StatusReporter = Arc<dyn Fn(&dyn Fn(&mut UploadStatus)) + Send + Sync>;

/// Where an upload's ingestion stands; shown live on the job page.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct UploadStatus {
    pub stage: &'static str,
    pub pages: usize,
    pub chunks: usize,
    pub embedded: usize,
    pub to_embed: usize,
    pub indexed: usize,
    pub error: Option<String>,
    pub finished: bool,
}

impl Ingestor {
    /// Ingests one uploaded PDF: extract, chunk, embed, store and index, reporting each stage to
    /// `report`. Nothing is written until the file has been read, chunked and embedded; a
    /// failure while storing or indexing is undone.
    pub async fn ingest_upload(&self, upload: Upload, requested_by: &str, report: StatusReporter) -> Result<Outcome> {
        // Refusals that need no parsing come first.
        if let Some(existing) = self.storage.document_tenant(&upload.document_id).await?
            && existing != upload.acl.tenant.as_str()
        {
            return Err(Error::user(format!("document id '{}' is taken; choose another id", upload.document_id)));
        }
        if crate::service::manifest::document_id_tenant(&upload.document_id)
            .is_some_and(|t| t != upload.acl.tenant.as_str())
        {
            return Err(Error::user(format!("document id '{}' names another tenant", upload.document_id)));
        }
        if self.storage.version_checksum(&upload.document_id, upload.version).await?.is_some() {
            return Err(Error::user(format!(
                "document '{}' already has a version {}; upload it as a new version",
                upload.document_id, upload.version
            )));
        }
        report(&|s| s.stage = "extracting");
        let entry = DocumentEntry {
            id: upload.document_id.clone(),
            title: upload.title.clone(),
            version: upload.version,
            file: PathBuf::from(&upload.file_name),
            source: None,
            acl: upload.acl.clone(),
            kind: upload.kind,
        };
        let extractor = self.extractor.with_max_pages(upload.max_pages);
        let (entry, prepared) = tokio::task::spawn_blocking(move || {
            let prepared = prepare_bytes(&entry, upload.bytes, &extractor).map(|p| Owned {
                bytes: p.bytes,
                sha256: p.sha256,
                page_count: p.page_count,
                chunks: p.chunks,
                scan: p.scan,
            });
            (entry, prepared)
        })
        .await
        .map_err(|e| Error::internal("extraction task", e))?;
        let owned = prepared?;
        let mut prepared = vec![Prepared {
            entry: &entry,
            bytes: owned.bytes,
            sha256: owned.sha256,
            page_count: owned.page_count,
            chunks: owned.chunks,
            unchanged: false,
            scan: owned.scan,
            embeddings: Vec::new(),
        }];
        let (pages, chunks) = (prepared[0].page_count as usize, prepared[0].chunks.len());
        report(&|s| {
            s.pages = pages;
            s.chunks = chunks;
            s.to_embed = chunks;
            s.stage = "embedding";
        });
        if let Some((embedder, _)) = &self.dense {
            let progress = Arc::clone(&report);
            self.embed_prepared_with(
                embedder,
                &mut prepared,
                Arc::new(move |done, _| progress(&|s: &mut UploadStatus| s.embedded = done)),
            )
            .await?;
        }
        report(&|s| {
            s.embedded = chunks;
            s.stage = "indexing";
        });
        let outcome = self.store_one(&prepared[0]).await?;
        report(&|s| s.indexed = chunks);
        self.storage
            .append_audit(AuditRecord {
                actor: requested_by.to_owned(),
                tenant: Some(entry.acl.tenant.to_string()),
                action: "upload_document".to_owned(),
                outcome: "succeeded".to_owned(),
                detail: serde_json::json!({
                    "document": entry.id, "version": entry.version, "pages": pages, "chunks": chunks,
                    "sha256": prepared[0].sha256,
                }),
            })
            .await?;
        Ok(outcome)
    }
}

/// The owned parts of a prepared upload, carried back from the extraction task.
struct Owned {
    bytes: Vec<u8>,
    sha256: String,
    page_count: u32,
    chunks: Vec<Chunk>,
    scan: crate::store::VersionScan,
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Builds the corpus PDFs from their plain-text sources. A line holding only `<<<page>>>` starts a
/// new page. Returns the files written.
pub fn build_corpus_pdfs(manifest: &Manifest) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for d in &manifest.documents {
        let Some(source) = &d.source else { continue };
        let text = std::fs::read_to_string(source)
            .map_err(|e| Error::user(format!("document '{}': cannot read {}: {e}", d.id, source.display())))?;
        let pages: Vec<Vec<String>> =
            text.split("<<<page>>>\n").map(|page| page.lines().map(str::to_owned).collect()).collect();
        let pdf = indexer::write_text_pdf(&d.title, &pages)
            .map_err(|e| Error::user(format!("document '{}': {}", d.id, Error::from(e))))?;
        write_atomically(&d.file, &pdf)?;
        written.push(d.file.clone());
    }
    Ok(written)
}
