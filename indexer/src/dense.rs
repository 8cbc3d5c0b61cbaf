//! Dense retrieval: an HNSW graph (hnsw_rs) over unit-length embeddings, searched *with* the
//! access filter inside graph traversal. When a reader may see only a small part of the index, the
//! graph is skipped and the allowed vectors are scored exactly, so a restrictive filter never costs
//! recall (the approach of Qdrant's query planner and Lucene's filtered kNN).
//!
//! hnsw_rs cannot delete: deletions are tombstones checked by the same filter, and a rebuild
//! (from the stored vectors) removes them physically.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::NaiveDate;
use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::prelude::Hnsw;

use crate::acl::{ChunkAcl, Reader, SourceStatus};
use crate::error::{Error, Result, UserError};

/// Graph parameters: 16 links per node and a construction beam of 200 are the usual
/// recall/speed balance for 384-dimensional sentence embeddings.
const MAX_CONNECTIONS: usize = 16;
const EF_CONSTRUCTION: usize = 200;
const MAX_LAYERS: usize = 16;

/// Below this share of visible vectors, exact search over the visible set is both faster and
/// exact; above it the filtered graph search keeps recall (see the filtered-recall tests).
const EXACT_SEARCH_SHARE: f64 = 0.10;
/// Exact search is always used for at most this many visible vectors.
const EXACT_SEARCH_MIN: usize = 4096;

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

/// Cosine distance between unit vectors, `1 - dot`, clamped at zero: rounding can make the dot
/// product of two identical unit vectors exceed one, which hnsw_rs's own `DistDot` rejects with a
/// panic (duplicate passages are common in regulatory text).
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - crate::embed::dot(va, vb)).max(0.0)
    }
}

/// The access metadata of one vector in a form cheap to test inside graph traversal.
#[derive(Debug, Clone)]
struct Entry {
    chunk_id: String,
    document_id: String,
    version: u32,
    tenant: u32,
    groups: Vec<u32>,
    classification: u64,
    approved: bool,
    effective_from: i64,
    expires_at: i64,
    deleted: bool,
}

/// A reader compiled against the index's interned names.
struct CompiledReader {
    tenant: Option<u32>,
    groups: Vec<u32>,
    clearance: u64,
    as_of: i64,
}

impl Entry {
    fn permits(&self, r: &CompiledReader) -> bool {
        !self.deleted
            && r.tenant == Some(self.tenant)
            && self.approved
            && self.classification <= r.clearance
            && self.effective_from <= r.as_of
            && r.as_of < self.expires_at
            && self.groups.iter().any(|g| r.groups.binary_search(g).is_ok())
    }
}

fn day_number(date: NaiveDate) -> i64 {
    date.signed_duration_since(NaiveDate::default()).num_days()
}

#[derive(Default)]
struct Meta {
    entries: Vec<Entry>,
    /// Flat copy of every vector, row `i` for entry `i`: exact search and rebuilds read it.
    vectors: Vec<f32>,
    by_chunk: HashMap<String, usize>,
    names: HashMap<String, u32>,
    live: usize,
}

impl Meta {
    fn intern(&mut self, name: &str) -> u32 {
        let next = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        *self.names.entry(name.to_owned()).or_insert(next)
    }

    /// Positions of the entries `r` may see, ascending.
    fn visible(&self, r: &CompiledReader) -> Vec<usize> {
        self.entries.iter().enumerate().filter(|(_, e)| e.permits(r)).map(|(i, _)| i).collect()
    }

    fn compile(&self, reader: &Reader) -> CompiledReader {
        let mut groups: Vec<u32> = reader.groups.iter().filter_map(|g| self.names.get(g.as_str()).copied()).collect();
        groups.sort_unstable();
        CompiledReader {
            tenant: self.names.get(reader.tenant.as_str()).copied(),
            groups,
            clearance: reader.clearance.rank(),
            as_of: day_number(reader.as_of),
        }
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
    graph: Hnsw<'static, f32, UnitCosine>,
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
            graph: Hnsw::new(MAX_CONNECTIONS, capacity.max(1024), MAX_LAYERS, EF_CONSTRUCTION, UnitCosine),
            meta: RwLock::new(Meta::default()),
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
        for item in items {
            if item.vector.len() != self.dimension {
                return Err(UserError::InvalidValue {
                    field: "embedding",
                    reason: format!("expected {} dimensions, got {}", self.dimension, item.vector.len()),
                }
                .into());
            }
        }
        let mut meta = self.write()?;
        let first = meta.entries.len();
        for item in items {
            if let Some(old) = meta.by_chunk.get(item.chunk_id).copied()
                && let Some(e) = meta.entries.get_mut(old)
                && !e.deleted
            {
                e.deleted = true;
                meta.live -= 1;
            }
            let tenant = meta.intern(item.acl.tenant.as_str());
            let mut groups: Vec<u32> = item.acl.allowed_groups.iter().map(|g| meta.intern(g.as_str())).collect();
            groups.sort_unstable();
            let id = meta.entries.len();
            meta.entries.push(Entry {
                chunk_id: item.chunk_id.to_owned(),
                document_id: item.document_id.to_owned(),
                version: item.version,
                tenant,
                groups,
                classification: item.acl.classification.rank(),
                approved: item.acl.status == SourceStatus::Approved,
                effective_from: day_number(item.acl.effective_from),
                expires_at: item.acl.expires_at.map_or(i64::MAX, day_number),
                deleted: false,
            });
            meta.vectors.extend_from_slice(item.vector);
            meta.by_chunk.insert(item.chunk_id.to_owned(), id);
            meta.live += 1;
        }
        // Insert into the graph while holding the write lock, so no search sees a vector whose
        // metadata is missing. hnsw_rs inserts in parallel internally.
        let rows: Vec<(&[f32], usize)> = (first..meta.entries.len())
            .map(|i| (&meta.vectors[i * self.dimension..(i + 1) * self.dimension], i))
            .collect();
        self.graph.parallel_insert_slice(&rows);
        Ok(())
    }

    /// Tombstones every vector of a document (all versions, or one). Returns how many.
    pub fn delete(&self, document_id: &str, version: Option<u32>) -> Result<usize> {
        let mut meta = self.write()?;
        let mut removed = 0;
        for e in meta.entries.iter_mut() {
            if !e.deleted && e.document_id == document_id && version.is_none_or(|v| v == e.version) {
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
        Ok(meta
            .entries
            .iter()
            .filter(|e| !e.deleted && e.document_id == document_id && version.is_none_or(|v| v == e.version))
            .count())
    }

    /// Marks a document's vectors withdrawn or approved without deleting them.
    pub fn set_status(&self, document_id: &str, version: Option<u32>, status: SourceStatus) -> Result<usize> {
        let mut meta = self.write()?;
        let mut changed = 0;
        for e in meta.entries.iter_mut() {
            if e.document_id == document_id && version.is_none_or(|v| v == e.version) {
                e.approved = status == SourceStatus::Approved;
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Replaces the access metadata of a document version's vectors (after an edit of its
    /// groups, classification, dates or status); the vectors themselves stay.
    pub fn set_acl(&self, document_id: &str, version: u32, acl: &ChunkAcl) -> Result<usize> {
        let mut meta = self.write()?;
        let tenant = meta.intern(acl.tenant.as_str());
        let mut groups: Vec<u32> = acl.allowed_groups.iter().map(|g| meta.intern(g.as_str())).collect();
        groups.sort_unstable();
        let mut changed = 0;
        for e in meta.entries.iter_mut().filter(|e| e.document_id == document_id && e.version == version) {
            e.tenant = tenant;
            e.groups = groups.clone();
            e.classification = acl.classification.rank();
            e.approved = acl.status == SourceStatus::Approved;
            e.effective_from = day_number(acl.effective_from);
            e.expires_at = acl.expires_at.map_or(i64::MAX, day_number);
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
        let visible = meta.visible(&r);
        if visible.is_empty() {
            return Ok((Vec::new(), DensePlan::Exact));
        }
        let share = visible.len() as f64 / meta.entries.len().max(1) as f64;
        if visible.len() <= self.exact_min || share < self.exact_share {
            return Ok((self.exact(&meta, &visible, query, k), DensePlan::Exact));
        }
        // Visible ids are sorted, so membership is a binary search inside traversal. The beam
        // widens as the filter gets more selective so enough visible nodes are reached.
        let filter = |id: &usize| visible.binary_search(id).is_ok();
        let ef = ((k.max(64) as f64 / share.sqrt()) as usize).min(1024);
        let found = self.graph.search_filter(query, k, ef, Some(&filter));
        let hits = found
            .into_iter()
            .filter_map(|n| {
                let e = meta.entries.get(n.d_id)?;
                e.permits(&r).then(|| DenseHit { chunk_id: e.chunk_id.clone(), score: 1.0 - n.distance })
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
        let d = self.dimension;
        let mut scored: Vec<(f32, usize)> =
            visible.iter().map(|&i| (crate::embed::dot(query, &meta.vectors[i * d..(i + 1) * d]), i)).collect();
        let k = k.min(scored.len());
        if k < scored.len() {
            scored.select_nth_unstable_by(k, |a, b| b.0.total_cmp(&a.0));
            scored.truncate(k);
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().map(|(score, i)| DenseHit { chunk_id: meta.entries[i].chunk_id.clone(), score }).collect()
    }
}
