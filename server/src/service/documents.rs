//! Document life cycle after ingestion: retiring (withdrawn documents stay stored but are never
//! retrieved) and deletion across every store, with a receipt that says what each store removed
//! and proves by searching that nothing of the document is retrievable any more.
//!
//! Deletion hides first and erases second: the vectors are tombstoned and the BM25 entries
//! removed before the database rows and the stored file go. If a step fails, the document may be
//! hidden without being erased — never the other way round — and repeating the deletion finishes it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use indexer::{Bm25Index, ChunkAcl, Classification, DenseIndex, IndexedChunk, Method, Reader, Retriever, SourceStatus};
use serde::Serialize;

use crate::domain::{Actor, Permission};
use crate::error::{Error, Result};
use crate::store::{AuditRecord, DatabaseRemoval, Storage};

/// Chunks whose text is searched again after a deletion to prove it is gone.
const PROBES_PER_VERSION: usize = 3;

/// Administration of stored documents: status changes and deletion.
#[derive(Debug, Clone)]
pub struct DocumentAdmin {
    pub storage: Storage,
    pub bm25: Arc<Bm25Index>,
    pub dense: Option<Arc<DenseIndex>>,
    /// Used for the post-deletion searches (BM25, dense and fused).
    pub retriever: Retriever,
    pub files_dir: PathBuf,
    /// The vector graph snapshot; a deletion removes it, so nothing derived from the deleted
    /// vectors outlives the deletion on disk (the next start rebuilds the graph and saves it).
    pub dense_snapshot: PathBuf,
    /// Everything the platform keeps on disk (SQLite file, BM25 segments, snapshot, file
    /// store): after a deletion its bytes are searched for the deleted text.
    pub data_dir: PathBuf,
}

/// What a deletion removed from each store and how the removal was checked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeletionReceipt {
    pub id: String,
    pub tenant: String,
    pub document_id: String,
    pub title: String,
    pub versions: Vec<u32>,
    pub requested_by: String,
    pub reason: String,
    pub deleted_at: DateTime<Utc>,
    pub removed: Removed,
    /// What was done so the removal holds at the level of bytes on disk, and what stays.
    pub erasure: Erasure,
    pub post_check: PostCheck,
}

/// The physical side of a deletion.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Erasure {
    /// Deleted chunks purged from the BM25 segment files by rewriting the segments that held them.
    pub bm25_chunks_purged: u64,
    /// What the database did (or could not do), in words.
    pub database: Vec<String>,
    /// Copies that outlive the receipt, and until when; empty when none is known.
    pub remains: Vec<String>,
    /// The search of every file under the data folder for text of the deleted document.
    pub byte_scan: ByteScan,
    /// Time from the start of the deletion to the end of the byte scan.
    pub millis: u64,
}

/// A search of the raw bytes of every file under the data folder for distinctive strings of the
/// deleted text (strings that occur in no remaining passage).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ByteScan {
    /// Windows of the deleted text considered.
    pub windows: usize,
    /// Those of them that no remaining chunk contains, searched for in the bytes.
    pub probes: usize,
    pub files_scanned: usize,
    pub bytes_scanned: u64,
    /// Files, relative to the data folder, in which a probe was found (must be empty).
    pub found_in: Vec<String>,
}

/// Counts removed, per store.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Removed {
    pub database: DatabaseRemoval,
    pub bm25_chunks: usize,
    /// Vectors tombstoned at once; they leave memory when the index is rebuilt at start-up or by
    /// `lexgate reindex`.
    pub vectors_tombstoned: usize,
    /// Cached embeddings are stored per chunk, so they are counted in `database.embeddings`.
    pub stored_files: usize,
    pub stored_bytes: u64,
}

/// The check run after the removal: nothing left in any store, and searches with the document's
/// own text, by a reader allowed everything the document allowed, return none of its chunks.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct PostCheck {
    pub passed: bool,
    pub database_chunks_left: u64,
    pub bm25_chunks_left: usize,
    pub vectors_left: usize,
    pub files_left: usize,
    pub probe_searches: usize,
    /// Hits on deleted chunks across all probe searches (must be 0).
    pub probe_hits: usize,
    /// Files under the data folder that still hold deleted text (must be 0).
    pub files_with_deleted_text: usize,
}

/// Distinctive strings of deleted text searched for in the bytes on disk, at most.
const MAX_BYTE_PROBES: usize = 24;
/// Windows of deleted text checked against the remaining chunks, at most (one pass over them).
const MAX_PROBE_CANDIDATES: usize = 256;
/// Length of a probe string, in characters.
const PROBE_CHARS: usize = 40;

/// A window of a chunk's text unlikely to occur by chance anywhere else: the middle of its
/// longest line, when that line is long enough.
fn distinctive_window(text: &str) -> Option<String> {
    let line = text.lines().max_by_key(|l| l.chars().count())?.trim();
    let n = line.chars().count();
    if n < PROBE_CHARS {
        return None;
    }
    let start = (n - PROBE_CHARS) / 2;
    Some(line.chars().skip(start).take(PROBE_CHARS).collect())
}

/// Searches the bytes of every file under `dir` for any of `probes`.
fn scan_bytes(dir: &std::path::Path, probes: &[String]) -> Result<ByteScan> {
    let mut scan = ByteScan { probes: probes.len(), ..ByteScan::default() };
    if probes.is_empty() {
        return Ok(scan);
    }
    let pattern = probes.iter().map(|p| regex::escape(p)).collect::<Vec<_>>().join("|");
    let matcher = regex::bytes::Regex::new(&pattern).map_err(|e| Error::internal("byte scan pattern", e))?;
    let overlap = probes.iter().map(String::len).max().unwrap_or(0);
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                folders.push(path);
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let (found, bytes) = file_contains(&path, &matcher, overlap)?;
            scan.files_scanned += 1;
            scan.bytes_scanned += bytes;
            if found {
                let shown = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
                scan.found_in.push(shown);
            }
        }
    }
    scan.found_in.sort();
    Ok(scan)
}

/// Whether the file holds a match, read in blocks that overlap by the longest probe.
fn file_contains(path: &std::path::Path, matcher: &regex::bytes::Regex, overlap: usize) -> Result<(bool, u64)> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        // A file removed while scanning (a finished merge's leftovers) holds nothing any more.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((false, 0)),
        Err(e) => return Err(Error::internal("byte scan", e)),
    };
    let mut buf = vec![0u8; 8 << 20];
    let mut kept = 0usize;
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf[kept..]).map_err(|e| Error::internal("byte scan", e))?;
        if n == 0 {
            return Ok((false, total));
        }
        total += n as u64;
        let end = kept + n;
        if matcher.is_match(&buf[..end]) {
            return Ok((true, total));
        }
        kept = overlap.min(end);
        buf.copy_within(end - kept..end, 0);
    }
}

/// What a deletion would remove.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeletionPreview {
    pub title: String,
    pub versions: Vec<PreviewVersion>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreviewVersion {
    pub version: u32,
    pub status: String,
    pub chunks: usize,
    pub pages: i32,
    pub bytes: u64,
}

/// A document as its detail page and the API show it.
#[derive(Debug, Clone)]
pub struct DocumentDetail {
    /// The stored id (`TENANT.name`).
    pub id: String,
    pub preview: DeletionPreview,
    /// Every version's row, oldest first.
    pub versions: Vec<crate::store::DocumentVersionRow>,
    /// Every version's access metadata, by version number.
    pub acls: Vec<(u32, Option<ChunkAcl>)>,
    pub latest: u32,
    /// The latest version's passages.
    pub chunks: Vec<crate::store::StoredChunk>,
}

/// The result of a status change.
#[derive(Debug, Clone, Serialize)]
pub struct StatusChange {
    pub document_id: String,
    pub versions: Vec<u32>,
    pub status: SourceStatus,
    pub chunks: u64,
}

/// Access metadata as the audit log records it.
pub fn acl_json(acl: &indexer::ChunkAcl) -> serde_json::Value {
    serde_json::json!({
        "owner": acl.owner,
        "classification": acl.classification.as_str(),
        "groups": acl.allowed_groups.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "status": acl.status.as_str(),
        "effective_from": acl.effective_from.to_string(),
        "expires_at": acl.expires_at.map(|d| d.to_string()),
        "retention": acl.retention_class,
    })
}

fn version_number(v: &crate::store::DocumentVersionRow) -> u32 {
    u32::try_from(v.version).unwrap_or(0)
}

impl DocumentAdmin {
    /// Loads the document's versions (one, or all) after checking the actor may manage it. A
    /// document of another tenant is reported as not found, so its existence does not leak.
    async fn authorize(
        &self,
        actor: &Actor,
        action: &str,
        document_id: &str,
        version: Option<u32>,
    ) -> Result<(String, Vec<crate::store::DocumentVersionRow>)> {
        if !actor.may(Permission::ManageDocuments) {
            self.audit(actor, action, "denied", serde_json::json!({ "document": document_id, "role": actor.role }))
                .await?;
            return Err(Error::Forbidden);
        }
        let doc = match self.storage.document(document_id).await? {
            Some(d) if d.tenant_id == actor.tenant.as_str() => d,
            Some(_) => {
                let detail = serde_json::json!({ "document": document_id, "reason": "tenant" });
                self.storage.append_audit(AuditRecord::cross_tenant(actor, action, detail)).await?;
                return Err(Error::NotFound);
            }
            None => return Err(Error::NotFound),
        };
        let mut versions = self.storage.versions(document_id).await?;
        if let Some(v) = version {
            versions.retain(|row| version_number(row) == v);
            if versions.is_empty() {
                return Err(Error::user(format!("document '{document_id}' has no version {v}")));
            }
        }
        Ok((doc.title, versions))
    }

    /// Deletes a document (every version, or one) from the database, BM25, the vector index and
    /// the file store, stores the receipt and audits it.
    #[tracing::instrument(skip_all, fields(document = document_id, version))]
    pub async fn delete(
        &self,
        actor: &Actor,
        document_id: &str,
        version: Option<u32>,
        reason: &str,
    ) -> Result<DeletionReceipt> {
        let document_id = &self.resolve_id(actor, document_id).await?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::user("Give a reason for the deletion; it is kept on the receipt."));
        }
        let started = std::time::Instant::now();
        let (title, versions) = self.authorize(actor, "delete_document", document_id, version).await?;
        let title = match version {
            // One version's deletion names that version.
            Some(_) => versions.first().map(|v| v.title.clone()).unwrap_or(title),
            None => title,
        };
        let numbers: Vec<u32> = versions.iter().map(version_number).collect();

        // Probes and the all-seeing reader are taken before anything is removed.
        let mut probes = Vec::new();
        let mut byte_probes = Vec::new();
        let mut chunk_ids = BTreeSet::new();
        for v in &numbers {
            let chunks = self.storage.indexable_chunks(Some((document_id, *v))).await?;
            probes.extend(chunks.iter().take(PROBES_PER_VERSION).map(|c| (c.acl.clone(), c.chunk.text.clone())));
            byte_probes.extend(chunks.iter().filter_map(|c| distinctive_window(&c.chunk.text)));
            chunk_ids.extend(chunks.into_iter().map(|c| c.chunk.id));
        }

        let mut removed = Removed::default();
        // 1. Hide: tombstone vectors, then remove BM25 entries.
        if let Some(dense) = &self.dense {
            removed.vectors_tombstoned = dense.delete(document_id, version)?;
        }
        match std::fs::remove_file(&self.dense_snapshot) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::internal("removing the vector graph snapshot (repeat the deletion)", e)),
        }
        for v in &numbers {
            removed.bm25_chunks += self.bm25.count_version(document_id, *v, false)?;
            self.bm25.delete_version(document_id, *v)?;
        }
        tracing::info!(ms = started.elapsed().as_millis() as u64, "deletion: hidden from the indexes");
        // 2. Erase: database rows (chunks, cached embeddings, versions), then stored files.
        removed.database = self.storage.delete_versions(document_id, &numbers).await?;
        tracing::info!(ms = started.elapsed().as_millis() as u64, "deletion: database rows erased");
        let doc_dir = self.files_dir.join(document_id);
        for v in &numbers {
            let path = doc_dir.join(format!("v{v}.pdf"));
            if let Ok(meta) = std::fs::metadata(&path) {
                std::fs::remove_file(&path)
                    .map_err(|e| Error::internal("removing the stored file (repeat the deletion)", e))?;
                removed.stored_files += 1;
                removed.stored_bytes += meta.len();
            }
        }
        if removed.database.document_removed {
            // Only an empty folder is removed: anything else in it is not ours to delete.
            let _ = std::fs::remove_dir(&doc_dir);
        }

        // 3. Make it physical: rewrite the BM25 segments that still hold the deleted chunks,
        // fold the database's log, then search the bytes of every file for the deleted text.
        let mut erasure = Erasure { bm25_chunks_purged: self.bm25.purge_deleted()?, ..Erasure::default() };
        tracing::info!(ms = started.elapsed().as_millis() as u64, "deletion: BM25 segments rewritten");
        match self.storage.compact_after_deletion().await {
            Ok(compaction) => (erasure.database, erasure.remains) = (compaction.done, compaction.remains),
            Err(e) => {
                tracing::error!(error = %e, "compacting the database after a deletion failed");
                erasure.database.push("the database could not be compacted; repeat the deletion".to_owned());
            }
        }
        // Windows spread over the deleted text; those no remaining chunk contains are what the
        // bytes on disk are searched for (text that remains elsewhere is not evidence of a
        // leftover).
        byte_probes.sort();
        byte_probes.dedup();
        let step = byte_probes.len().div_ceil(MAX_PROBE_CANDIDATES).max(1);
        let candidates: Vec<String> = byte_probes.into_iter().step_by(step).collect();
        tracing::info!(ms = started.elapsed().as_millis() as u64, "deletion: database compacted");
        let occur = self.storage.which_occur(&candidates).await?;
        let distinctive: Vec<String> = candidates
            .iter()
            .zip(occur)
            .filter(|(_, elsewhere)| !elsewhere)
            .map(|(probe, _)| probe.clone())
            .take(MAX_BYTE_PROBES)
            .collect();
        let data_dir = self.data_dir.clone();
        let windows = candidates.len();
        erasure.byte_scan = tokio::task::spawn_blocking(move || scan_bytes(&data_dir, &distinctive))
            .await
            .map_err(|e| Error::internal("byte scan", e))??;
        erasure.byte_scan.windows = windows;
        tracing::info!(ms = started.elapsed().as_millis() as u64, "deletion: bytes on disk searched");
        erasure.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

        let mut post_check = self.post_check(document_id, &numbers, &chunk_ids, &probes).await?;
        post_check.files_with_deleted_text = erasure.byte_scan.found_in.len();
        post_check.passed &= post_check.files_with_deleted_text == 0;
        let receipt = DeletionReceipt {
            id: format!("del-{}-{}", Utc::now().format("%Y%m%dT%H%M%S%.6fZ"), crate::domain::random_hex(4)?),
            tenant: actor.tenant.to_string(),
            document_id: document_id.to_owned(),
            title,
            versions: numbers.clone(),
            requested_by: actor.principal_id.clone(),
            reason: reason.to_owned(),
            deleted_at: Utc::now(),
            removed,
            erasure,
            post_check,
        };
        let json = serde_json::to_string(&receipt).map_err(|e| Error::internal("serialising the receipt", e))?;
        self.storage
            .insert_receipt(crate::store::DeletionReceiptRow {
                id: receipt.id.clone(),
                tenant_id: receipt.tenant.clone(),
                document_id: receipt.document_id.clone(),
                versions: numbers.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                requested_by: receipt.requested_by.clone(),
                reason: receipt.reason.clone(),
                deleted_at: receipt.deleted_at,
                post_check_passed: receipt.post_check.passed,
                receipt: json,
            })
            .await?;
        self.audit(
            actor,
            "delete_document",
            if receipt.post_check.passed { "succeeded" } else { "post_check_failed" },
            serde_json::json!({ "document": document_id, "versions": numbers, "receipt": receipt.id }),
        )
        .await?;
        if !receipt.post_check.passed {
            tracing::error!(receipt = %receipt.id, "deleted document is still retrievable");
        }
        Ok(receipt)
    }

    async fn post_check(
        &self,
        document_id: &str,
        versions: &[u32],
        chunk_ids: &BTreeSet<String>,
        probes: &[(indexer::ChunkAcl, String)],
    ) -> Result<PostCheck> {
        let mut check = PostCheck::default();
        for v in versions {
            check.database_chunks_left += self.storage.count_version_chunks(document_id, *v).await?;
            check.bm25_chunks_left += self.bm25.count_version(document_id, *v, false)?;
            if let Some(dense) = &self.dense {
                check.vectors_left += dense.count_document(document_id, Some(*v))?;
            }
            if self.files_dir.join(document_id).join(format!("v{v}.pdf")).exists() {
                check.files_left += 1;
            }
        }
        let methods: &[Method] =
            if self.retriever.has_dense() { &[Method::Bm25, Method::Dense, Method::Hybrid] } else { &[Method::Bm25] };
        for (acl, text) in probes {
            // A reader allowed everything the document allowed, on its first day in force. Counts
            // above cover chunks that were not approved, which no reader's search can reach.
            let reader = Reader {
                tenant: acl.tenant.clone(),
                groups: acl.allowed_groups.clone(),
                clearance: Classification::Restricted,
                as_of: acl.effective_from,
                documents: None,
            };
            let query: String = text.chars().take(500).collect();
            for method in methods {
                let retriever = self.retriever.clone();
                let (reader, query, method) = (reader.clone(), query.clone(), *method);
                let hits = tokio::task::spawn_blocking(move || retriever.search(&reader, &query, method, 50))
                    .await
                    .map_err(|e| Error::internal("probe search", e))??;
                check.probe_searches += 1;
                check.probe_hits += hits.hits.iter().filter(|h| chunk_ids.contains(&h.chunk_id)).count();
            }
        }
        check.passed = check.database_chunks_left == 0
            && check.bm25_chunks_left == 0
            && check.vectors_left == 0
            && check.files_left == 0
            && check.probe_hits == 0;
        Ok(check)
    }

    /// Sets the status of a document's versions (one, or all): `withdrawn` retires them from
    /// retrieval without deleting anything, `approved` brings them back.
    #[tracing::instrument(skip_all, fields(document = document_id, version, status = %status))]
    pub async fn set_status(
        &self,
        actor: &Actor,
        document_id: &str,
        version: Option<u32>,
        status: SourceStatus,
    ) -> Result<StatusChange> {
        let document_id = &self.resolve_id(actor, document_id).await?;
        let (_, versions) = self.authorize(actor, "set_document_status", document_id, version).await?;
        let numbers: Vec<u32> = versions.iter().map(version_number).collect();
        let mut chunks = 0;
        for v in &numbers {
            // The database first: the ask flow re-checks it, so a retirement holds even if an
            // index update below fails. The start-up check repairs such an index.
            chunks += self.storage.set_version_status(document_id, *v, status).await?;
            if let Some(dense) = &self.dense {
                dense.set_status(document_id, Some(*v), status)?;
            }
            self.reindex_bm25(document_id, *v).await?;
        }
        self.audit(
            actor,
            "set_document_status",
            "succeeded",
            serde_json::json!({ "document": document_id, "versions": numbers, "status": status.as_str() }),
        )
        .await?;
        Ok(StatusChange { document_id: document_id.to_owned(), versions: numbers, status, chunks })
    }

    /// Replaces the access metadata of one version (owner, classification, groups, status,
    /// dates, retention): the database first, then the vector metadata and the version's BM25
    /// entries. The tenant cannot change.
    #[tracing::instrument(skip_all, fields(document = document_id, version))]
    pub async fn update_acl(
        &self,
        actor: &Actor,
        document_id: &str,
        version: u32,
        acl: indexer::ChunkAcl,
    ) -> Result<u64> {
        let document_id = &self.resolve_id(actor, document_id).await?;
        let (_, _) = self.authorize(actor, "edit_document_metadata", document_id, Some(version)).await?;
        if acl.tenant != actor.tenant {
            return Err(Error::user("A document stays in its tenant."));
        }
        if acl.expires_at.is_some_and(|e| e <= acl.effective_from) {
            return Err(Error::user("The expiry date must come after the effective date."));
        }
        let before = self.storage.version_acl(document_id, version).await?;
        let chunks = self.storage.set_version_acl(document_id, version, &acl).await?;
        if let Some(dense) = &self.dense {
            dense.set_acl(document_id, version, &acl)?;
        }
        self.reindex_bm25(document_id, version).await?;
        self.audit(
            actor,
            "edit_document_metadata",
            "succeeded",
            serde_json::json!({
                "document": document_id, "version": version, "chunks": chunks,
                "before": before.as_ref().map(acl_json), "after": acl_json(&acl),
            }),
        )
        .await?;
        Ok(chunks)
    }

    /// What deleting the document (every version) would remove, for the confirmation page.
    pub async fn deletion_preview(&self, actor: &Actor, document_id: &str) -> Result<DeletionPreview> {
        let document_id = &self.resolve_id(actor, document_id).await?;
        let (title, versions) = self.authorize(actor, "delete_document", document_id, None).await?;
        let mut preview = DeletionPreview { title, ..Default::default() };
        for v in &versions {
            let n = version_number(v);
            let chunks = self.storage.version_chunks(document_id, n).await?.len();
            let file = self.files_dir.join(document_id).join(format!("v{n}.pdf"));
            let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            preview.versions.push(PreviewVersion {
                version: n,
                status: v.status.clone(),
                chunks,
                pages: v.page_count,
                bytes,
            });
        }
        Ok(preview)
    }

    /// The latest version of each document of the actor's tenant (admins).
    pub async fn list(&self, actor: &Actor) -> Result<Vec<crate::store::DocumentSummary>> {
        self.authorize_upload(actor).await?;
        self.storage.list_documents(&actor.tenant).await
    }

    /// A document of the actor's tenant by the id a request names (see [`Self::resolve_id`]):
    /// its versions with their access metadata and the latest version's passages (admins).
    pub async fn detail(&self, actor: &Actor, id: &str) -> Result<DocumentDetail> {
        let id = self.resolve_id(actor, id).await?;
        self.authorize_upload(actor).await?;
        let preview = self.deletion_preview(actor, &id).await?;
        let versions = self.storage.versions(&id).await?;
        let latest = preview.versions.iter().map(|v| v.version).max().ok_or(Error::NotFound)?;
        let mut acls = Vec::new();
        for v in &preview.versions {
            acls.push((v.version, self.storage.version_acl(&id, v.version).await?));
        }
        let chunks = self.storage.version_chunks(&id, latest).await?;
        Ok(DocumentDetail { id, preview, versions, acls, latest, chunks })
    }

    /// Checks that `actor` may upload into their tenant: admins only, audited when refused.
    /// The stored id a document id in a request names for `actor`: ids with a tenant part and
    /// ids of the actor's own tenant as given, otherwise the actor's namespaced id
    /// (`TENANT.name`), so an uploader can name their document by the name they chose. Another
    /// tenant's plain id resolves into the actor's own namespace and tells nothing about it.
    pub async fn resolve_id(&self, actor: &Actor, id: &str) -> Result<String> {
        if crate::service::manifest::document_id_tenant(id).is_some() {
            return Ok(id.to_owned());
        }
        match self.storage.document(id).await? {
            Some(d) if d.tenant_id == actor.tenant.as_str() => Ok(id.to_owned()),
            Some(_) => {
                // Another tenant's id: the caller gets their own namespace's answer, and the
                // attempt is recorded like any other cross-tenant access.
                let detail = serde_json::json!({ "document": id, "reason": "tenant" });
                self.storage.append_audit(AuditRecord::cross_tenant(actor, "open_document", detail)).await?;
                Ok(format!("{}.{id}", actor.tenant))
            }
            None => Ok(format!("{}.{id}", actor.tenant)),
        }
    }

    pub async fn authorize_upload(&self, actor: &Actor) -> Result<()> {
        if actor.may(Permission::ManageDocuments) {
            return Ok(());
        }
        self.audit(actor, "upload_document", "denied", serde_json::json!({ "role": actor.role })).await?;
        Err(Error::Forbidden)
    }

    /// The next version number of an existing document of the actor's tenant, its title and the
    /// access metadata of its latest version.
    pub async fn next_version(&self, actor: &Actor, document_id: &str) -> Result<(u32, String, indexer::ChunkAcl)> {
        let (title, versions) = self.authorize(actor, "upload_document", document_id, None).await?;
        let latest = versions.iter().map(version_number).max().ok_or(Error::NotFound)?;
        let acl = self.storage.version_acl(document_id, latest).await?.ok_or(Error::NotFound)?;
        Ok((latest + 1, title, acl))
    }

    /// After a new version is stored, the versions before it stop applying on its effective date.
    pub async fn supersede(&self, actor: &Actor, document_id: &str, new_version: u32) -> Result<Vec<u32>> {
        let new_acl = self.storage.version_acl(document_id, new_version).await?.ok_or(Error::NotFound)?;
        let (_, versions) = self.authorize(actor, "upload_document", document_id, None).await?;
        let mut superseded = Vec::new();
        for v in versions.iter().map(version_number).filter(|v| *v < new_version) {
            let Some(mut acl) = self.storage.version_acl(document_id, v).await? else { continue };
            if acl.expires_at.is_none_or(|e| e > new_acl.effective_from) && acl.effective_from < new_acl.effective_from
            {
                acl.expires_at = Some(new_acl.effective_from);
                self.update_acl(actor, document_id, v, acl).await?;
                superseded.push(v);
            }
        }
        Ok(superseded)
    }

    /// Rewrites a version's BM25 entries from the database, after its access metadata changed.
    async fn reindex_bm25(&self, document_id: &str, version: u32) -> Result<()> {
        let rows = self.storage.indexable_chunks(Some((document_id, version))).await?;
        let indexed: Vec<IndexedChunk<'_>> = rows.iter().map(crate::store::IndexableChunk::indexed).collect();
        self.bm25.replace_version(document_id, version, &indexed)?;
        Ok(())
    }

    async fn audit(&self, actor: &Actor, action: &str, outcome: &str, detail: serde_json::Value) -> Result<()> {
        self.storage.append_audit(AuditRecord::by(actor, action, outcome, detail)).await
    }
}
