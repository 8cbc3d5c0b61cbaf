//! Search at scale: BM25, HNSW and hybrid latency, filtered recall, index size, memory and
//! start-up time at a given number of chunks (`lexgate bench scale`).
//!
//! Beyond the real passages given (ObliQA's), chunks are generated deterministically: chunk `i`
//! splices the first part of one real passage with the last part of another (so term statistics
//! stay those of regulatory text), and its vector is the normalised mix of the two passages'
//! vectors (0.6 / 0.4) plus Gaussian noise (sigma 0.02 per dimension), so neighbourhoods look like
//! those of real embeddings rather than uniform noise. Every chunk belongs to one of 1,000 access
//! buckets (groups) and to a group every chunk carries; readers holding that group, or 500, 100,
//! 10 or 1 buckets, see 100%, 50%, 10%, 1% and 0.1% of the index.
//!
//! Memory is measured as the growth of resident memory while the vector index is built, so run
//! one size per process (`lexgate bench scale` does) or freed memory of an earlier size is reused.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::{Bm25Index, Chunk, ChunkAcl, Classification, DenseIndex, DenseItem, GroupName, IndexedChunk, Reader};
use crate::{Embedder, FusionConfig, Method, Result, Retriever, SourceStatus, TenantId};

/// Access buckets: a chunk is readable by the group of its bucket.
pub const BUCKETS: usize = 1000;

/// A real passage to build from: its text and its embedding.
#[derive(Debug, Clone)]
pub struct Seed {
    pub text: String,
    pub vector: Vec<f32>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Latency {
    /// The percentiles of `ms` (nearest rank; zero for no samples).
    pub fn of(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| {
            if ms.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * ms.len() as f64).ceil() as usize;
            ms[rank.clamp(1, ms.len()) - 1]
        };
        Self { p50: at(50.0), p95: at(95.0), p99: at(99.0) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilteredRow {
    pub selectivity: f64,
    pub plan: String,
    pub recall_at_10: f64,
    pub latency: Latency,
}

/// Everything measured at one size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleRow {
    pub chunks: usize,
    pub generate_s: f64,
    pub bm25_index_per_s: f64,
    pub hnsw_index_per_s: f64,
    pub bm25_disk_bytes: u64,
    /// Resident memory added by the vector index (vectors, graph and access metadata).
    pub vector_index_rss_bytes: u64,
    pub vector_index_rss_per_million: u64,
    /// Opening BM25 from disk plus rebuilding the HNSW graph from the vectors: a start without a
    /// usable graph snapshot (the first, or the one after a deletion).
    pub startup_s: f64,
    /// Opening BM25 plus restoring the graph from its snapshot (after checking the snapshot
    /// against every vector): a start after a restart or an ingestion.
    #[serde(default)]
    pub startup_snapshot_s: f64,
    #[serde(default)]
    pub snapshot_bytes: u64,
    pub queries: usize,
    pub bm25: Latency,
    /// Query embedding alone (the model on this CPU).
    pub embed: Latency,
    /// HNSW search alone, with the query vector given.
    pub hnsw: Latency,
    /// BM25 + embedding + HNSW + fusion, as the ask path retrieves.
    pub hybrid: Latency,
    /// BM25 + HNSW + fusion with the query vector given: the retrieval the target is set for.
    pub retrieval_only: Latency,
    /// Hybrid (with embedding), then the cross-encoder over the fused top `rerank_top`; absent
    /// when no reranker was given.
    #[serde(default)]
    pub hybrid_rerank: Option<Latency>,
    pub filtered: Vec<FilteredRow>,
    /// Filtered recall with half the index replaced by near-duplicates of a few chunks
    /// ([`near_duplicates`]), for every reader and for a reader of half.
    #[serde(default)]
    pub near_duplicates: Vec<FilteredRow>,
}

/// A small deterministic generator (xorshift64*), so every run builds the same corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal sample (Box-Muller).
    fn normal(&mut self) -> f32 {
        let (u1, u2) = (self.unit().max(1e-12), self.unit());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// `count` near-copies of 16 of `vectors` (spread evenly over them), as boilerplate pasted into
/// many documents gives: each is a template plus noise that leaves a cosine similarity between
/// about 0.9995 and 0.97 to it. Issue 15's randomized test found graph search missing passages
/// among such filler.
pub fn near_duplicates(vectors: &[Vec<f32>], count: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let templates: Vec<&Vec<f32>> = (0..16).filter_map(|t| vectors.get(t * vectors.len() / 16)).collect();
    let Some(dimension) = templates.first().map(|t| t.len()) else {
        return Vec::new();
    };
    (0..count)
        .map(|i| {
            let template = templates[i % templates.len()];
            // cos = 1 / sqrt(1 + s^2) for noise of norm s: s from 0.03 to 0.25.
            let sigma = (0.03 + 0.22 * (i % 8) as f32 / 7.0) / (dimension as f32).sqrt();
            let mut v: Vec<f32> = template.iter().map(|x| x + sigma * rng.normal()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

/// Recall@10 of dense search against exact search for the readers of `buckets` buckets each.
fn filtered_rows(dense: &DenseIndex, questions: &[Question], buckets: &[usize]) -> Result<Vec<FilteredRow>> {
    let mut rows = Vec::new();
    for &buckets in buckets {
        let r = reader(buckets)?;
        let (mut ms, mut recall, mut plan) = (Vec::new(), 0.0, String::new());
        for (_, v) in questions {
            let t = Instant::now();
            let (hits, p) = dense.search(&r, v, 10)?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            plan = format!("{p:?}");
            let exact = dense.search_exact(&r, v, 10)?;
            let found = exact.iter().filter(|e| hits.iter().any(|h| h.chunk_id == e.chunk_id)).count();
            recall += found as f64 / exact.len().max(1) as f64;
        }
        rows.push(FilteredRow {
            selectivity: buckets as f64 / BUCKETS as f64,
            plan,
            recall_at_10: recall / questions.len().max(1) as f64,
            latency: Latency::of(ms),
        });
    }
    Ok(rows)
}

fn bucket_group(b: usize) -> String {
    format!("b{b:03}")
}

/// Every chunk is also readable by this group, so the unfiltered reader holds one group (as real
/// readers hold a few), not a thousand.
const EVERYONE: &str = "everyone";

fn acl_for(bucket: usize) -> Result<ChunkAcl> {
    Ok(ChunkAcl {
        tenant: TenantId::parse("bench")?,
        owner: "bench".into(),
        classification: Classification::Internal,
        allowed_groups: [GroupName::parse(&bucket_group(bucket))?, GroupName::parse(EVERYONE)?].into_iter().collect(),
        status: SourceStatus::Approved,
        effective_from: chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default(),
        expires_at: None,
        retention_class: "bench".into(),
    })
}

/// A reader holding the first `buckets` access buckets; all of them means the group every chunk
/// carries.
pub fn reader(buckets: usize) -> Result<Reader> {
    let groups = if buckets >= BUCKETS {
        [GroupName::parse(EVERYONE)?].into_iter().collect()
    } else {
        (0..buckets).map(|b| GroupName::parse(&bucket_group(b))).collect::<Result<_>>()?
    };
    Ok(Reader {
        tenant: TenantId::parse("bench")?,
        groups,
        clearance: Classification::Confidential,
        as_of: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
        documents: None,
    })
}

/// The generated corpus: chunks and their vectors, in order.
pub fn generate(seeds: &[Seed], n: usize) -> (Vec<Chunk>, Vec<Vec<f32>>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let dimension = seeds.first().map_or(0, |s| s.vector.len());
    let mut chunks = Vec::with_capacity(n);
    let mut vectors = Vec::with_capacity(n);
    for i in 0..n {
        let (text, vector) = if i < seeds.len() {
            (seeds[i].text.clone(), seeds[i].vector.clone())
        } else {
            let (a, b) = (&seeds[rng.below(seeds.len())], &seeds[rng.below(seeds.len())]);
            let wa: Vec<&str> = a.text.split_whitespace().collect();
            let wb: Vec<&str> = b.text.split_whitespace().collect();
            let text = [&wa[..wa.len() * 3 / 5], &wb[wb.len() * 3 / 5..]].concat().join(" ");
            let mut v: Vec<f32> =
                (0..dimension).map(|d| 0.6 * a.vector[d] + 0.4 * b.vector[d] + 0.02 * rng.normal()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
            (text, v)
        };
        chunks.push(Chunk {
            id: format!("c{i}"),
            ordinal: 0,
            page: 1,
            char_start: 0,
            char_end: u32::try_from(text.chars().count()).unwrap_or(u32::MAX),
            heading_path: String::new(),
            text,
        });
        vectors.push(vector);
    }
    (chunks, vectors)
}

/// Resident set size of this process, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn document_of(i: usize) -> String {
    format!("d{}", i / 50)
}

fn dense_items<'a>(
    chunks: &'a [Chunk],
    vectors: &'a [Vec<f32>],
    docs: &'a [String],
    acls: &'a [ChunkAcl],
) -> Vec<DenseItem<'a>> {
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| DenseItem {
            chunk_id: &c.id,
            document_id: &docs[i],
            version: 1,
            acl: &acls[i % BUCKETS],
            vector: &vectors[i],
        })
        .collect()
}

/// A query: its text and its vector.
pub type Question = (String, Vec<f32>);

/// Builds the indexes at `n` chunks in `dir` and measures them with `questions` (texts and their
/// vectors, from the same model as the seeds).
pub fn measure(
    seeds: &[Seed],
    n: usize,
    questions: &[Question],
    embedder: Arc<Embedder>,
    reranker: Option<Arc<dyn crate::Reranker>>,
    dir: &std::path::Path,
    progress: &mut dyn FnMut(&str),
) -> Result<ScaleRow> {
    let started = Instant::now();
    let (chunks, vectors) = generate(seeds, n);
    let docs: Vec<String> = (0..n).map(document_of).collect();
    let acls: Vec<ChunkAcl> = (0..BUCKETS).map(acl_for).collect::<Result<_>>()?;
    let generate_s = started.elapsed().as_secs_f64();
    progress(&format!("{n}: generated in {generate_s:.1}s"));

    let dimension = vectors.first().map_or(0, Vec::len);
    let before = rss_bytes();
    let t = Instant::now();
    let dense = DenseIndex::new(dimension, n);
    dense.add(&dense_items(&chunks, &vectors, &docs, &acls))?;
    let hnsw_s = t.elapsed().as_secs_f64();
    let hnsw_index_per_s = n as f64 / hnsw_s;
    let vector_index_rss_bytes = rss_bytes().saturating_sub(before);
    progress(&format!("{n}: HNSW {hnsw_index_per_s:.0} chunks/s, {} MB", vector_index_rss_bytes / 1_000_000));

    let bm25_dir = dir.join(format!("bm25-{n}"));
    let _ = std::fs::remove_dir_all(&bm25_dir);
    let bm25 = Bm25Index::open_or_create(&bm25_dir)?;
    let t = Instant::now();
    for (i, batch) in chunks.chunks(50_000).enumerate() {
        let items: Vec<IndexedChunk<'_>> = batch
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let k = i * 50_000 + j;
                IndexedChunk { chunk: c, document_id: &docs[k], title: "", version: 1, acl: &acls[k % BUCKETS] }
            })
            .collect();
        bm25.add(&items)?;
    }
    let bm25_index_per_s = n as f64 / t.elapsed().as_secs_f64();
    progress(&format!("{n}: BM25 {bm25_index_per_s:.0} chunks/s"));
    drop(bm25);
    let bm25_disk_bytes = dir_bytes(&bm25_dir);

    // A start opens BM25 from disk and rebuilds the graph from the stored vectors.
    let t = Instant::now();
    let bm25 = Arc::new(Bm25Index::open_or_create(&bm25_dir)?);
    let open_s = t.elapsed().as_secs_f64();
    let startup_s = open_s + hnsw_s;
    let snapshot = dir.join(format!("graph-{n}.snapshot"));
    dense.write_snapshot(&snapshot)?;
    let snapshot_bytes = std::fs::metadata(&snapshot).map_or(0, |m| m.len());
    let t = Instant::now();
    let restored = DenseIndex::new(dimension, n);
    let used = restored.add_with_snapshot(&dense_items(&chunks, &vectors, &docs, &acls), &snapshot)?;
    let startup_snapshot_s = open_s + t.elapsed().as_secs_f64();
    if used.restored != n {
        return Err(crate::Error::Internal(format!("the snapshot restored {} of {n} vectors", used.restored)));
    }
    drop(restored);
    let _ = std::fs::remove_file(&snapshot);
    progress(&format!(
        "{n}: start-up {startup_s:.1}s rebuilding the graph, {startup_snapshot_s:.1}s from its snapshot"
    ));
    // Only the text stays, for the reranker (chunk `c{i}` is text `i`).
    let texts: Vec<String> = chunks.into_iter().map(|c| c.text).collect();

    let dense = Arc::new(dense);
    let everyone = reader(BUCKETS)?;
    let retriever = Retriever {
        bm25: Arc::clone(&bm25),
        dense: Some(Arc::clone(&dense)),
        embedder: Some(Arc::clone(&embedder)),
        fusion: FusionConfig::default(),
        reranker: None,
        rerank_top: crate::retrieve::DEFAULT_RERANK_TOP,
    };
    let depth = retriever.depth_for(10);
    let timed = |f: &mut dyn FnMut(&Question) -> Result<()>| -> Result<Latency> {
        let mut ms = Vec::with_capacity(questions.len());
        for q in questions {
            let t = Instant::now();
            f(q)?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(Latency::of(ms))
    };
    let bm25_latency = timed(&mut |(q, _)| bm25.search(&everyone, q, depth).map(|_| ()))?;
    let embed = timed(&mut |(q, _)| embedder.embed(&[q.as_str()]).map(|_| ()))?;
    let hnsw = timed(&mut |(_, v)| dense.search(&everyone, v, depth).map(|_| ()))?;
    let hybrid = timed(&mut |(q, _)| retriever.search(&everyone, q, Method::Hybrid, 10).map(|_| ()))?;
    let retrieval_only = timed(&mut |(q, v)| retriever.search_with_vector(&everyone, q, v, 10).map(|_| ()))?;
    progress(&format!("{n}: hybrid p95 {:.1} ms, retrieval-only p95 {:.1} ms", hybrid.p95, retrieval_only.p95));
    let hybrid_rerank = match reranker {
        Some(reranker) => {
            let reranking = Retriever { reranker: Some(reranker), ..retriever.clone() };
            let text = |id: &str| id.strip_prefix('c').and_then(|i| i.parse::<usize>().ok()).and_then(|i| texts.get(i));
            let latency = timed(&mut |(q, _)| {
                let mut r = reranking.search(&everyone, q, Method::Hybrid, reranking.depth_for(10))?;
                reranking.rerank(q, &mut r.hits, |id| text(id).map(String::as_str)).map(|_| ())
            })?;
            progress(&format!("{n}: hybrid + rerank p95 {:.1} ms", latency.p95));
            Some(latency)
        }
        None => None,
    };

    let filtered = filtered_rows(&dense, questions, &[BUCKETS, 500, 100, 10, 1])?;
    drop(dense);
    // The same chunks with their second half replaced by near-duplicate filler.
    let mut with_filler = vectors[..n - n / 2].to_vec();
    with_filler.extend(near_duplicates(&vectors, n / 2));
    let ids: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let items: Vec<DenseItem<'_>> = (0..n)
        .map(|i| DenseItem {
            chunk_id: &ids[i],
            document_id: &docs[i],
            version: 1,
            acl: &acls[i % BUCKETS],
            vector: &with_filler[i],
        })
        .collect();
    let dense = DenseIndex::new(dimension, n);
    dense.add(&items)?;
    let near_duplicates = filtered_rows(&dense, questions, &[BUCKETS, 500])?;
    progress(&format!("{n}: near-duplicate filler, Recall@10 {:.4}", near_duplicates[0].recall_at_10));
    let _ = std::fs::remove_dir_all(&bm25_dir);
    Ok(ScaleRow {
        chunks: n,
        generate_s,
        bm25_index_per_s,
        hnsw_index_per_s,
        bm25_disk_bytes,
        vector_index_rss_bytes,
        vector_index_rss_per_million: (vector_index_rss_bytes as f64 * 1_000_000.0 / n as f64) as u64,
        startup_s,
        startup_snapshot_s,
        snapshot_bytes,
        queries: questions.len(),
        bm25: bm25_latency,
        embed,
        hnsw,
        hybrid,
        retrieval_only,
        hybrid_rerank,
        filtered,
        near_duplicates,
    })
}
