//! Dense retrieval: an HNSW graph ([`crate::hnsw`]) over unit-length embeddings, searched *with* the
//! access filter inside graph traversal. When a reader may see only a small part of the index, the
//! graph is skipped and the allowed vectors are scored exactly, so a restrictive filter never costs
//! recall (the approach of Qdrant's query planner and Lucene's filtered kNN).
//!
//! The graph does not delete: deletions are tombstones checked by the same filter, and a rebuild
//! (from the stored vectors) removes them physically.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use sha2::Digest;

use crate::hnsw::Graph;

use chrono::NaiveDate;

use crate::acl::{ChunkAcl, Reader, SourceStatus};
use crate::error::{Error, Result, UserError};

/// Graph parameters: 32 links per node on upper layers (64 on layer 0) and a construction beam
/// of 200. With 16, `lexgate eval filtered` measured Recall@10 0.9930 at 50% selectivity on
/// ObliQA's 13,012 passages and 0.9830 with as many near-duplicates added: a few passages whose
/// nearest neighbours are all far away kept too few ways in, and were missed query after query,
/// even where exact search ranked them first. With 32: 0.9975 and 0.9955, for 128 more bytes per
/// vector (about 7%).
const MAX_CONNECTIONS: usize = 32;
const EF_CONSTRUCTION: usize = 200;

/// Below this share of visible vectors, exact search over the visible set is both faster and
/// exact; above it the filtered graph search keeps recall (see the filtered-recall tests).
const EXACT_SEARCH_SHARE: f64 = 0.10;
/// Exact search is always used for at most this many visible vectors.
const EXACT_SEARCH_MIN: usize = 4096;

/// First bytes of a graph snapshot file (format version 2: with near-duplicate aliases). A
/// snapshot of another version is not restored; the graph is rebuilt.
const SNAPSHOT_MAGIC: &[u8] = b"LXGDNS02";

/// What [`DenseIndex::add_with_snapshot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotUse {
    /// Nodes taken from the snapshot as they were.
    pub restored: usize,
    /// Vectors inserted by graph search (all of them when no snapshot fitted).
    pub inserted: usize,
}

fn id_hash(chunk_id: &str) -> [u8; 8] {
    let digest = sha2::Sha256::digest(chunk_id.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Adds one node (its id hash and vector bytes) to a snapshot fingerprint.
fn hash_node(hasher: &mut sha2::Sha256, chunk_id: &str, vector: &[f32]) {
    hasher.update(id_hash(chunk_id));
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    hasher.update(&bytes);
}

/// The search beam (`ef`, counted in visible nodes) for a graph of `n` nodes: 128 up to 100,000,
/// then four times wider for every tenfold growth, 512 at 1,000,000 (capped at 2,048).
///
/// Measured over `lexgate bench scale`'s generated chunks and 200 ObliQA questions: a beam of 128
/// finds 99.30% of the exact top 10 at 100,000 chunks but 96.30% at 1,000,000, where 512 finds
/// 99.10% with every chunk visible, 99.15% with half and 99.25% with a tenth visible. The beam
/// counts visible nodes only, so a filter already makes the search walk further; how many
/// chunks the reader sees barely changed what beam was needed. (Those figures are from graphs
/// with 16 links per node; 32 links per node only raise recall at a given beam.)
fn beam_width(n: usize) -> usize {
    let growth = (n as f64 / 100_000.0).max(1.0).powf(4f64.log10());
    ((128.0 * growth).round() as usize).min(2048)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One dense result: a chunk id and its cosine similarity to the query.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseHit {
    pub chunk_id: String,
    pub score: f32,
}

/// How a search was carried out, for explanations and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DensePlan {
    /// Exact scoring of every visible vector.
    Exact,
    /// HNSW traversal with the filter applied to each visited node.
    FilteredGraph,
}

/// The access metadata of one vector in a form cheap to test inside graph traversal: names are
/// interned, and a chunk's group set is an index into the sets the index has seen.
#[derive(Debug, Clone)]
struct Entry {
    chunk_id: Arc<str>,
    document: u32,
    version: u32,
    tenant: u32,
    group_set: u32,
    classification: u8,
    approved: bool,
    deleted: bool,
    effective_from: i32,
    expires_at: i32,
}

/// A reader compiled against the index's interned names and group sets.
struct CompiledReader {
    tenant: Option<u32>,
    /// For each group set of the index: whether the reader holds one of its groups.
    group_sets: Vec<bool>,
    clearance: u8,
    as_of: i32,
    /// The interned ids of the documents a restricted reader searches; `None`: all.
    documents: Option<std::collections::HashSet<u32>>,
}

impl Entry {
    fn permits(&self, r: &CompiledReader) -> bool {
        !self.deleted
            && r.tenant == Some(self.tenant)
            && self.approved
            && self.classification <= r.clearance
            && self.effective_from <= r.as_of
            && r.as_of < self.expires_at
            && r.group_sets.get(self.group_set as usize).copied().unwrap_or(false)
            && r.documents.as_ref().is_none_or(|d| d.contains(&self.document))
    }

    fn is(&self, document: Option<u32>, version: Option<u32>) -> bool {
        Some(self.document) == document && version.is_none_or(|v| v == self.version)
    }
}

fn day_number(date: NaiveDate) -> i32 {
    i32::try_from(date.signed_duration_since(NaiveDate::default()).num_days()).unwrap_or(i32::MAX - 1)
}

fn rank(c: crate::acl::Classification) -> u8 {
    u8::try_from(c.rank()).unwrap_or(u8::MAX)
}

struct Meta {
    entries: Vec<Entry>,
    /// Node `i` of the graph is entry `i`; the graph holds each vector once and exact search
    /// reads it there.
    graph: Graph,
    by_chunk: HashMap<Arc<str>, usize>,
    names: HashMap<String, u32>,
    group_sets: Vec<Vec<u32>>,
    group_set_ids: HashMap<Vec<u32>, u32>,
    live: usize,
}

impl Meta {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.names.get(name) {
            return *id;
        }
        let next = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.insert(name.to_owned(), next);
        next
    }

    fn group_set(&mut self, acl: &ChunkAcl) -> u32 {
        let mut groups: Vec<u32> = acl.allowed_groups.iter().map(|g| self.intern(g.as_str())).collect();
        groups.sort_unstable();
        if let Some(id) = self.group_set_ids.get(&groups) {
            return *id;
        }
        let id = u32::try_from(self.group_sets.len()).unwrap_or(u32::MAX);
        self.group_sets.push(groups.clone());
        self.group_set_ids.insert(groups, id);
        id
    }

    /// Positions of the entries `r` may see, ascending.
    fn visible(&self, r: &CompiledReader) -> Vec<usize> {
        self.entries.iter().enumerate().filter(|(_, e)| e.permits(r)).map(|(i, _)| i).collect()
    }

    /// Share of the entries `r` may see, estimated from an evenly spread sample of at most
    /// `SAMPLE` entries (exact below that), so planning a search does not scan a large index.
    fn visible_share(&self, r: &CompiledReader) -> f64 {
        const SAMPLE: usize = 8192;
        let n = self.entries.len();
        if n == 0 {
            return 0.0;
        }
        let step = n.div_ceil(SAMPLE).max(1);
        let (mut seen, mut visible) = (0usize, 0usize);
        for e in self.entries.iter().step_by(step) {
            seen += 1;
            visible += usize::from(e.permits(r));
        }
        visible as f64 / seen as f64
    }

    fn compile(&self, reader: &Reader) -> CompiledReader {
        let groups: Vec<u32> = reader.groups.iter().filter_map(|g| self.names.get(g.as_str()).copied()).collect();
        CompiledReader {
            tenant: self.names.get(reader.tenant.as_str()).copied(),
            group_sets: self.group_sets.iter().map(|set| set.iter().any(|g| groups.contains(g))).collect(),
            clearance: rank(reader.clearance),
            as_of: day_number(reader.as_of),
            documents: reader
                .documents
                .as_ref()
                .map(|ids| ids.iter().filter_map(|d| self.names.get(d.as_str()).copied()).collect()),
        }
    }

    fn vector(&self, i: usize) -> Option<&[f32]> {
        (i < self.graph.len()).then(|| self.graph.vector(i))
    }
}

/// A vector with the identity and access metadata of its chunk.
#[derive(Debug, Clone)]
pub struct DenseItem<'a> {
    pub chunk_id: &'a str,
    pub document_id: &'a str,
    pub version: u32,
    pub acl: &'a ChunkAcl,
    pub vector: &'a [f32],
}

/// The HNSW index of one deployment.
pub struct DenseIndex {
    dimension: usize,
    exact_min: usize,
    exact_share: f64,
    meta: RwLock<Meta>,
}

impl std::fmt::Debug for DenseIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseIndex").field("dimension", &self.dimension).field("len", &self.len()).finish()
    }
}

impl DenseIndex {
    /// An empty index for vectors of `dimension`, sized for about `capacity` vectors.
    pub fn new(dimension: usize, capacity: usize) -> Self {
        Self {
            dimension,
            exact_min: EXACT_SEARCH_MIN,
            exact_share: EXACT_SEARCH_SHARE,
            meta: RwLock::new(Meta {
                entries: Vec::with_capacity(capacity),
                graph: Graph::new(dimension, MAX_CONNECTIONS, EF_CONSTRUCTION, capacity),
                by_chunk: HashMap::with_capacity(capacity),
                names: HashMap::new(),
                group_sets: Vec::new(),
                group_set_ids: HashMap::new(),
                live: 0,
            }),
        }
    }

    /// Overrides when exact search replaces graph search: at most `min` visible vectors, or a
    /// visible share below `share`. Benchmarks and tests use it to exercise both plans.
    pub fn with_exact_search(mut self, min: usize, share: f64) -> Self {
        self.exact_min = min;
        self.exact_share = share;
        self
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Meta>> {
        self.meta.read().map_err(|_| Error::Internal("dense index lock poisoned".into()))
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, Meta>> {
        self.meta.write().map_err(|_| Error::Internal("dense index lock poisoned".into()))
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Number of live (not deleted) vectors.
    pub fn len(&self) -> usize {
        self.read().map_or(0, |m| m.live)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds vectors. A chunk id already present is replaced (the old vector is tombstoned).
    pub fn add(&self, items: &[DenseItem<'_>]) -> Result<()> {
        self.check_dimensions(items)?;
        let mut meta = self.write()?;
        Self::push_entries(&mut meta, items);
        // Under the write lock, so no search sees a vector whose metadata is missing; node `i`
        // of the graph is entry `i`.
        let vectors: Vec<&[f32]> = items.iter().map(|item| item.vector).collect();
        meta.graph.insert_many(&vectors, threads());
        debug_assert_eq!(meta.graph.len(), meta.entries.len());
        Ok(())
    }

    fn check_dimensions(&self, items: &[DenseItem<'_>]) -> Result<()> {
        for item in items {
            if item.vector.len() != self.dimension {
                return Err(UserError::InvalidValue {
                    field: "embedding",
                    reason: format!("expected {} dimensions, got {}", self.dimension, item.vector.len()),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Appends the items' access metadata, one entry per item, tombstoning replaced chunks.
    fn push_entries(meta: &mut Meta, items: &[DenseItem<'_>]) {
        for item in items {
            if let Some(old) = meta.by_chunk.get(item.chunk_id).copied()
                && let Some(e) = meta.entries.get_mut(old)
                && !e.deleted
            {
                e.deleted = true;
                meta.live -= 1;
            }
            let tenant = meta.intern(item.acl.tenant.as_str());
            let document = meta.intern(item.document_id);
            let group_set = meta.group_set(item.acl);
            let id = meta.entries.len();
            let chunk_id: Arc<str> = Arc::from(item.chunk_id);
            meta.entries.push(Entry {
                chunk_id: Arc::clone(&chunk_id),
                document,
                version: item.version,
                tenant,
                group_set,
                classification: rank(item.acl.classification),
                approved: item.acl.status == SourceStatus::Approved,
                effective_from: day_number(item.acl.effective_from),
                expires_at: item.acl.expires_at.map_or(i32::MAX, day_number),
                deleted: false,
            });
            meta.by_chunk.insert(chunk_id, id);
            meta.live += 1;
        }
    }

    /// Fills an empty index from the stored vectors, as a start does, reusing the graph saved
    /// at `snapshot` when it was built over a subset of exactly these vectors: those nodes are
    /// restored as they were (no graph search), only the vectors added since are inserted, and
    /// the snapshot is rewritten when anything was inserted. Any difference in a saved vector,
    /// a chunk that is gone (a deletion), or a damaged file means a full rebuild, so a snapshot
    /// can make a start faster but never change what it finds.
    ///
    /// The file holds the graph's links, an 8-byte hash per chunk id and a sha256 over ids,
    /// vectors and links: no ids, vectors or text.
    pub fn add_with_snapshot(&self, items: &[DenseItem<'_>], snapshot: &Path) -> Result<SnapshotUse> {
        self.check_dimensions(items)?;
        if !self.read()?.entries.is_empty() {
            return Err(Error::Internal("a snapshot is only restored into an empty index".into()));
        }
        let restored = std::fs::read(snapshot).ok().and_then(|bytes| self.restore(items, &bytes));
        let outcome = match restored {
            Some(outcome) => outcome,
            None => {
                self.add(items)?;
                SnapshotUse { restored: 0, inserted: items.len() }
            }
        };
        if outcome.inserted > 0 {
            self.write_snapshot(snapshot)?;
        }
        Ok(outcome)
    }

    /// Restores from snapshot bytes, or `None` when they do not fit these items.
    fn restore(&self, items: &[DenseItem<'_>], bytes: &[u8]) -> Option<SnapshotUse> {
        let body = bytes.strip_prefix(SNAPSHOT_MAGIC)?;
        let n = usize::try_from(u64::from_le_bytes(body.get(..8)?.try_into().ok()?)).ok()?;
        let ids_end = 8usize.checked_add(n.checked_mul(8)?)?;
        let saved_ids = body.get(8..ids_end)?;
        let fingerprint = body.get(ids_end..ids_end + 32)?;
        let structure = body.get(ids_end + 32..)?;

        let mut position: HashMap<[u8; 8], usize> = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if position.insert(id_hash(item.chunk_id), i).is_some() {
                return None; // a repeated chunk id: let `add` sort it out
            }
        }
        let mut order = Vec::with_capacity(items.len());
        let mut taken = vec![false; items.len()];
        for id in saved_ids.chunks_exact(8) {
            let i = *position.get(id)?;
            if std::mem::replace(&mut taken[i], true) {
                return None;
            }
            order.push(i);
        }
        let mut hasher = sha2::Sha256::new();
        for &i in &order {
            hash_node(&mut hasher, items[i].chunk_id, items[i].vector);
        }
        hasher.update(structure);
        if hasher.finalize().as_slice() != fingerprint {
            return None;
        }
        let vectors: Vec<f32> = order.iter().flat_map(|&i| items[i].vector.iter().copied()).collect();
        let graph = Graph::read_structure(structure, vectors).ok()?;
        order.extend((0..items.len()).filter(|&i| !taken[i]));
        let ordered: Vec<DenseItem<'_>> = order.iter().map(|&i| items[i].clone()).collect();
        let mut meta = self.write().ok()?;
        meta.graph = graph;
        Self::push_entries(&mut meta, &ordered);
        let rest: Vec<&[f32]> = ordered[n..].iter().map(|item| item.vector).collect();
        meta.graph.insert_many(&rest, threads());
        Some(SnapshotUse { restored: n, inserted: rest.len() })
    }

    /// Saves the graph for [`DenseIndex::add_with_snapshot`], atomically (a temporary file
    /// renamed over the old one).
    pub fn write_snapshot(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let meta = self.read()?;
        let mut out = Vec::with_capacity(meta.entries.len() * (8 + 2 * MAX_CONNECTIONS * 4 + 8) + 64);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&(meta.entries.len() as u64).to_le_bytes());
        let mut hasher = sha2::Sha256::new();
        for (i, e) in meta.entries.iter().enumerate() {
            out.extend_from_slice(&id_hash(&e.chunk_id));
            hash_node(&mut hasher, &e.chunk_id, meta.graph.vector(i));
        }
        let mut structure = Vec::new();
        meta.graph.write_structure(&mut structure).map_err(|e| Error::internal("saving the vector graph", e))?;
        drop(meta);
        // The fingerprint covers the links too, so a damaged file is never restored.
        hasher.update(&structure);
        out.extend_from_slice(&hasher.finalize());
        out.extend_from_slice(&structure);
        let partial = path.with_extension("partial");
        std::fs::File::create(&partial)
            .and_then(|mut f| f.write_all(&out).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|e| Error::internal("writing the vector graph snapshot", e))
    }

    /// Tombstones every vector of a document (all versions, or one). Returns how many.
    pub fn delete(&self, document_id: &str, version: Option<u32>) -> Result<usize> {
        let mut meta = self.write()?;
        let document = meta.names.get(document_id).copied();
        let mut removed = 0;
        for e in meta.entries.iter_mut() {
            if !e.deleted && e.is(document, version) {
                e.deleted = true;
                removed += 1;
            }
        }
        meta.live -= removed;
        Ok(removed)
    }

    /// Number of live vectors of a document (all versions, or one).
    pub fn count_document(&self, document_id: &str, version: Option<u32>) -> Result<usize> {
        let meta = self.read()?;
        let document = meta.names.get(document_id).copied();
        Ok(meta.entries.iter().filter(|e| !e.deleted && e.is(document, version)).count())
    }

    /// Marks a document's vectors withdrawn or approved without deleting them.
    pub fn set_status(&self, document_id: &str, version: Option<u32>, status: SourceStatus) -> Result<usize> {
        let mut meta = self.write()?;
        let document = meta.names.get(document_id).copied();
        let mut changed = 0;
        for e in meta.entries.iter_mut().filter(|e| e.is(document, version)) {
            e.approved = status == SourceStatus::Approved;
            changed += 1;
        }
        Ok(changed)
    }

    /// Replaces the access metadata of a document version's vectors (after an edit of its
    /// groups, classification, dates or status); the vectors themselves stay.
    pub fn set_acl(&self, document_id: &str, version: u32, acl: &ChunkAcl) -> Result<usize> {
        let mut meta = self.write()?;
        let tenant = meta.intern(acl.tenant.as_str());
        let group_set = meta.group_set(acl);
        let document = meta.names.get(document_id).copied();
        let mut changed = 0;
        for e in meta.entries.iter_mut().filter(|e| e.is(document, Some(version))) {
            e.tenant = tenant;
            e.group_set = group_set;
            e.classification = rank(acl.classification);
            e.approved = acl.status == SourceStatus::Approved;
            e.effective_from = day_number(acl.effective_from);
            e.expires_at = acl.expires_at.map_or(i32::MAX, day_number);
            changed += 1;
        }
        Ok(changed)
    }

    /// Number of vectors `reader` may see.
    pub fn count_visible(&self, reader: &Reader) -> Result<usize> {
        let meta = self.read()?;
        let r = meta.compile(reader);
        Ok(meta.entries.iter().filter(|e| e.permits(&r)).count())
    }

    /// The `k` nearest visible chunks to `query` (a unit vector), best first, and the plan used.
    pub fn search(&self, reader: &Reader, query: &[f32], k: usize) -> Result<(Vec<DenseHit>, DensePlan)> {
        if query.len() != self.dimension {
            return Err(Error::Internal(format!("query has {} dimensions, index {}", query.len(), self.dimension)));
        }
        let meta = self.read()?;
        let r = meta.compile(reader);
        let k = k.max(1);
        if meta.entries.is_empty() {
            return Ok((Vec::new(), DensePlan::Exact));
        }
        // Plan from an estimate, so a large index is not scanned per query: few visible vectors
        // are scored exactly; otherwise the graph is searched with the filter inside traversal.
        let share = meta.visible_share(&r);
        let estimated = share * meta.entries.len() as f64;
        if estimated <= 2.0 * self.exact_min as f64 || share < self.exact_share {
            let visible = meta.visible(&r);
            if visible.is_empty() {
                return Ok((Vec::new(), DensePlan::Exact));
            }
            if visible.len() <= self.exact_min || (visible.len() as f64 / meta.entries.len() as f64) < self.exact_share
            {
                return Ok((self.exact(&meta, &visible, query, k), DensePlan::Exact));
            }
        }
        let filter = |id: u32| meta.entries.get(id as usize).is_some_and(|e| e.permits(&r));
        let found = meta.graph.search(query, k, beam_width(meta.entries.len()).max(k), Some(&filter));
        let hits = found
            .into_iter()
            .filter_map(|(node, distance)| {
                let e = meta.entries.get(node as usize)?;
                e.permits(&r).then(|| DenseHit { chunk_id: e.chunk_id.to_string(), score: 1.0 - distance })
            })
            .collect();
        Ok((hits, DensePlan::FilteredGraph))
    }

    /// Exact scores of the visible vectors, for small visible sets and as the reference that
    /// filtered-recall measurements compare against.
    pub fn search_exact(&self, reader: &Reader, query: &[f32], k: usize) -> Result<Vec<DenseHit>> {
        let meta = self.read()?;
        let r = meta.compile(reader);
        let visible = meta.visible(&r);
        Ok(self.exact(&meta, &visible, query, k.max(1)))
    }

    fn exact(&self, meta: &Meta, visible: &[usize], query: &[f32], k: usize) -> Vec<DenseHit> {
        let mut scored: Vec<(f32, usize)> =
            visible.iter().filter_map(|&i| meta.vector(i).map(|v| (crate::embed::dot(query, v), i))).collect();
        let k = k.min(scored.len());
        if k < scored.len() {
            scored.select_nth_unstable_by(k, |a, b| b.0.total_cmp(&a.0));
            scored.truncate(k);
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .map(|(score, i)| DenseHit { chunk_id: meta.entries[i].chunk_id.to_string(), score })
            .collect()
    }
}
