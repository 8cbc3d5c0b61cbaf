//! One entry point for retrieval: BM25, dense, or both fused by reciprocal rank fusion. Every hit
//! carries its rank and score from each stage so the UI and the audit log can explain the ranking.
//! Both first stages filter inside their own search; fusion only ever sees visible chunks.

use std::collections::HashMap;
use std::sync::Arc;

use crate::acl::Reader;
use crate::bm25::Bm25Index;
use crate::dense::{DenseIndex, DensePlan};
use crate::embed::Embedder;
use crate::error::{Error, Result, UserError};
use crate::hit::{RetrievedHit, StageScore};
use crate::rerank::Reranker;

/// Which first stage(s) to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Bm25,
    Dense,
    Hybrid,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Bm25 => "bm25",
            Method::Dense => "dense",
            Method::Hybrid => "hybrid",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bm25" => Ok(Method::Bm25),
            "dense" => Ok(Method::Dense),
            "hybrid" => Ok(Method::Hybrid),
            other => Err(UserError::InvalidValue {
                field: "method",
                reason: format!("'{other}' (expected bm25, dense or hybrid)"),
            }
            .into()),
        }
    }
}

/// How the BM25 and dense lists are combined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusionKind {
    /// Weighted reciprocal rank fusion: sum of `weight / (rrf_k + rank)` (Cormack et al. 2009).
    Rrf,
    /// Convex combination of min-max normalised scores: `bm25_weight * bm25 + dense_weight * dense`,
    /// each stage's scores scaled to [0, 1] over its own candidate list.
    Convex,
}

/// Fusion settings; see [`FusionConfig::default`] for the platform's choice and how it was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionConfig {
    pub kind: FusionKind,
    /// Candidates taken from each first stage before fusion.
    pub candidates: usize,
    pub rrf_k: f32,
    pub bm25_weight: f32,
    pub dense_weight: f32,
}

impl FusionConfig {
    /// Reciprocal rank fusion with k = 60, equal weights, 100 candidates per stage.
    pub const fn rrf() -> Self {
        Self { kind: FusionKind::Rrf, candidates: 100, rrf_k: 60.0, bm25_weight: 1.0, dense_weight: 1.0 }
    }

    /// Convex combination with the given weights, 100 candidates per stage.
    pub const fn convex(bm25_weight: f32, dense_weight: f32) -> Self {
        Self { kind: FusionKind::Convex, candidates: 100, rrf_k: 60.0, bm25_weight, dense_weight }
    }
}

impl Default for FusionConfig {
    /// The platform's fusion, chosen on the train side of ObliQA dev's locked split with lexgate's
    /// tuned embedding model (`lexgate eval obliqa --split train --fusion ...`, 2,236 questions):
    /// convex 0.4 BM25 / 0.6 dense over 200 candidates per stage measured Recall@10 0.8296 and
    /// MAP@10 0.6859, against 0.8208 / 0.6744 for 0.6 / 0.4 (the choice with the registry model,
    /// whose dense side was weaker) and 0.8211 / 0.6734 for RRF k = 60.
    fn default() -> Self {
        Self { candidates: 200, ..Self::convex(0.4, 0.6) }
    }
}

impl std::fmt::Display for FusionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            FusionKind::Rrf => write!(
                f,
                "rrf:k={}:bm25={}:dense={}:candidates={}",
                self.rrf_k, self.bm25_weight, self.dense_weight, self.candidates
            ),
            FusionKind::Convex => {
                write!(f, "convex:bm25={}:dense={}:candidates={}", self.bm25_weight, self.dense_weight, self.candidates)
            }
        }
    }
}

impl std::str::FromStr for FusionConfig {
    type Err = Error;

    /// Parses `rrf` or `convex` followed by `:name=value` settings (k, bm25, dense, candidates),
    /// the form [`Display`](std::fmt::Display) writes.
    fn from_str(s: &str) -> Result<Self> {
        let invalid = |reason: String| Error::from(UserError::InvalidValue { field: "fusion", reason });
        let mut parts = s.trim().split(':');
        let mut config = match parts.next() {
            Some("rrf") => FusionConfig::rrf(),
            Some("convex") => FusionConfig::convex(0.5, 0.5),
            _ => return Err(invalid(format!("'{s}' (expected rrf or convex, then :name=value settings)"))),
        };
        for part in parts {
            let (name, value) = part.split_once('=').ok_or_else(|| invalid(format!("'{part}' is not name=value")))?;
            let number: f32 = value.parse().map_err(|_| invalid(format!("'{value}' is not a number")))?;
            if !number.is_finite() || number < 0.0 {
                return Err(invalid(format!("{name} must be a non-negative number")));
            }
            match name {
                "k" => config.rrf_k = number,
                "bm25" => config.bm25_weight = number,
                "dense" => config.dense_weight = number,
                "candidates" if number >= 1.0 => config.candidates = number as usize,
                _ => return Err(invalid(format!("unknown setting '{name}' (k, bm25, dense, candidates)"))),
            }
        }
        Ok(config)
    }
}

/// BM25 and dense indexes plus the embedder that turns questions into vectors, and the optional
/// reranker the caller applies once it holds the permitted passages' text.
#[derive(Debug, Clone)]
pub struct Retriever {
    pub bm25: Arc<Bm25Index>,
    pub dense: Option<Arc<DenseIndex>>,
    pub embedder: Option<Arc<Embedder>>,
    pub fusion: FusionConfig,
    pub reranker: Option<Arc<dyn Reranker>>,
    /// How many fused hits the reranker scores.
    pub rerank_top: usize,
}

/// Default number of fused hits the reranker scores. Chosen for the three-layer reranker on 400
/// questions of ObliQA dev's train side (`lexgate eval obliqa --split train --limit 400`,
/// `rerank_top` 10/15/20): Recall@10 / MAP@10 0.8357 / 0.7139, 0.8465 / 0.7150 and 0.8490 /
/// 0.7112, the stage taking 94, 128 and 163 ms at the 95th percentile on 2 cores. 15 keeps nearly
/// all of 20's recall, the best MAP, at three quarters of the cost.
pub const DEFAULT_RERANK_TOP: usize = 15;

/// Timings of one search, per stage, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimings {
    pub bm25_us: u64,
    pub embed_us: u64,
    pub dense_us: u64,
    pub fusion_us: u64,
    /// Set by the caller that runs the reranker stage.
    pub rerank_us: u64,
    /// Set by the caller that re-checks the hits' access against its database.
    pub recheck_us: u64,
}

/// The result of a search.
#[derive(Debug, Clone, Default)]
pub struct Retrieval {
    pub hits: Vec<RetrievedHit>,
    pub dense_plan: Option<DensePlan>,
    pub timings: StageTimings,
}

fn micros(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl Retriever {
    /// BM25 alone, the rest off; the dense index, embedder and reranker can be set after.
    pub fn bm25_only(bm25: Arc<Bm25Index>) -> Self {
        Self {
            bm25,
            dense: None,
            embedder: None,
            fusion: FusionConfig::default(),
            reranker: None,
            rerank_top: DEFAULT_RERANK_TOP,
        }
    }

    /// What the reranker stage does, in words for pages, logs and records.
    pub fn reranker_status(&self) -> String {
        match &self.reranker {
            Some(r) => format!(
                "on: cross-encoder {} over the top {}",
                &r.model_id()[..12.min(r.model_id().len())],
                self.rerank_top
            ),
            None => "off: turned off, or no reranker model is set up".to_owned(),
        }
    }

    /// How many hits to ask the first stages for when `k` are wanted: the reranker needs its
    /// whole window.
    pub fn depth_for(&self, k: usize) -> usize {
        if self.reranker.is_some() { k.max(self.rerank_top) } else { k }
    }

    /// Runs the reranker stage (when configured) over `hits`, whose text `text` gives. Returns
    /// the time it took in microseconds (0 when off).
    pub fn rerank<'a>(
        &self,
        query: &str,
        hits: &mut Vec<RetrievedHit>,
        text: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<u64> {
        let Some(reranker) = &self.reranker else { return Ok(0) };
        let t = std::time::Instant::now();
        crate::rerank::rerank_hits(reranker.as_ref(), query, hits, text, self.rerank_top)?;
        Ok(micros(t))
    }

    /// Whether dense retrieval is available (index and embedder both loaded).
    pub fn has_dense(&self) -> bool {
        self.dense.is_some() && self.embedder.is_some()
    }

    /// The best `k` chunks for `query` among those `reader` may see.
    pub fn search(&self, reader: &Reader, query: &str, method: Method, k: usize) -> Result<Retrieval> {
        self.search_inner(reader, query, method, k, None)
    }

    /// Hybrid retrieval with the query's vector already computed (benchmarks measure the index
    /// work apart from the embedding model).
    pub fn search_with_vector(&self, reader: &Reader, query: &str, vector: &[f32], k: usize) -> Result<Retrieval> {
        self.search_inner(reader, query, Method::Hybrid, k, Some(vector))
    }

    /// A search with the query's vector already computed, by any method (evaluations embed each
    /// question once and reuse its vector across methods).
    pub fn search_with_query_vector(
        &self,
        reader: &Reader,
        query: &str,
        method: Method,
        vector: &[f32],
        k: usize,
    ) -> Result<Retrieval> {
        self.search_inner(reader, query, method, k, Some(vector))
    }

    /// The dense side of a search: the query's vector (`given`, or embedded) and the filtered
    /// graph search, with their timings and plan recorded in `out`.
    fn dense_side(
        &self,
        reader: &Reader,
        query: &str,
        depth: usize,
        given: Option<&[f32]>,
        out: &mut Retrieval,
    ) -> Result<Vec<crate::DenseHit>> {
        let (Some(index), Some(embedder)) = (&self.dense, &self.embedder) else {
            return Err(UserError::InvalidValue {
                field: "method",
                reason: "dense retrieval is not available: the embedding model is not loaded".into(),
            }
            .into());
        };
        if query.trim().is_empty() {
            return Err(UserError::EmptyQuery.into());
        }
        let t = std::time::Instant::now();
        let vector = match given {
            Some(v) => v.to_vec(),
            None => embedder.embed(&[query])?.into_iter().next().unwrap_or_default(),
        };
        out.timings.embed_us = micros(t);
        let t = std::time::Instant::now();
        let (hits, plan) = index.search(reader, &vector, depth)?;
        out.timings.dense_us = micros(t);
        out.dense_plan = Some(plan);
        Ok(hits)
    }

    fn search_inner(
        &self,
        reader: &Reader,
        query: &str,
        method: Method,
        k: usize,
        given: Option<&[f32]>,
    ) -> Result<Retrieval> {
        let mut out = Retrieval::default();
        let depth = match method {
            Method::Hybrid => self.fusion.candidates.max(k),
            _ => k,
        };
        let lexical = || -> Result<(Vec<crate::Bm25Hit>, u64)> {
            let t = std::time::Instant::now();
            Ok((self.bm25.search(reader, query, depth)?, micros(t)))
        };
        let (bm25, bm25_us, dense) = match method {
            Method::Bm25 => {
                let (hits, us) = lexical()?;
                (hits, us, Vec::new())
            }
            Method::Dense => (Vec::new(), 0, self.dense_side(reader, query, depth, given, &mut out)?),
            // BM25 runs on its own thread while the query is embedded and the graph searched:
            // the two sides take the time of the slower one, not of both.
            Method::Hybrid => std::thread::scope(|scope| {
                let lexical = scope.spawn(lexical);
                let dense = self.dense_side(reader, query, depth, given, &mut out);
                let (hits, us) = lexical.join().map_err(|_| Error::Internal("the BM25 search panicked".into()))??;
                Ok::<_, Error>((hits, us, dense?))
            })?,
        };
        out.timings.bm25_us = bm25_us;

        let t = std::time::Instant::now();
        let mut by_id: HashMap<String, RetrievedHit> = HashMap::new();
        for (i, h) in bm25.into_iter().enumerate() {
            by_id.entry(h.chunk_id.clone()).or_insert_with(|| empty_hit(&h.chunk_id)).bm25 =
                Some(StageScore { rank: i + 1, score: h.score });
        }
        for (i, h) in dense.into_iter().enumerate() {
            by_id.entry(h.chunk_id.clone()).or_insert_with(|| empty_hit(&h.chunk_id)).dense =
                Some(StageScore { rank: i + 1, score: h.score });
        }
        let f = self.fusion;
        let range = |scores: &mut dyn Iterator<Item = f32>| {
            scores.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| (lo.min(s), hi.max(s)))
        };
        let bm25_range = range(&mut by_id.values().filter_map(|h| h.bm25.map(|s| s.score)));
        let dense_range = range(&mut by_id.values().filter_map(|h| h.dense.map(|s| s.score)));
        // Min-max normalisation; a list whose scores are all equal maps them to 1.
        let normalise = |s: Option<StageScore>, (lo, hi): (f32, f32)| {
            s.map_or(0.0, |s| if hi > lo { (s.score - lo) / (hi - lo) } else { 1.0 })
        };
        let mut hits: Vec<RetrievedHit> = by_id
            .into_values()
            .map(|mut h| {
                h.fused = match (method, f.kind) {
                    (Method::Bm25, _) => h.bm25.map_or(0.0, |s| s.score),
                    (Method::Dense, _) => h.dense.map_or(0.0, |s| s.score),
                    (Method::Hybrid, FusionKind::Rrf) => {
                        let rrf = |s: Option<StageScore>, w: f32| s.map_or(0.0, |s| w / (f.rrf_k + s.rank as f32));
                        rrf(h.bm25, f.bm25_weight) + rrf(h.dense, f.dense_weight)
                    }
                    (Method::Hybrid, FusionKind::Convex) => {
                        f.bm25_weight * normalise(h.bm25, bm25_range) + f.dense_weight * normalise(h.dense, dense_range)
                    }
                };
                h
            })
            .collect();
        // Ties break on chunk id so the order is deterministic.
        hits.sort_by(|a, b| b.fused.total_cmp(&a.fused).then_with(|| a.chunk_id.cmp(&b.chunk_id)));
        hits.truncate(k);
        out.timings.fusion_us = micros(t);
        out.hits = hits;
        Ok(out)
    }
}

fn empty_hit(chunk_id: &str) -> RetrievedHit {
    RetrievedHit { chunk_id: chunk_id.to_owned(), bm25: None, dense: None, fused: 0.0, rerank: None }
}
