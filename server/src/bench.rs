//! `lexgate bench ask`: N concurrent askers against the running app over HTTP (`/api/v1/ask`
//! with a temporary service token), reporting the asks shed with 429, end-to-end latency
//! percentiles and throughput of the answered ones and the time of each stage of the ask path,
//! with the corpus size beside every figure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::app::{Application, Platform};
use crate::domain::Permission;
use crate::error::{Error, Result};
use crate::tokens::TokenRequest;

/// Stages as the API reports them (microseconds).
pub const STAGES: [&str; 7] = ["bm25", "embed", "dense", "fusion", "recheck", "rerank", "compose"];

/// One concurrency level's figures; latencies in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub concurrency: usize,
    /// Asks answered (the latencies are theirs).
    pub requests: usize,
    /// Asks refused with 429 because too many were running and waiting.
    pub shed: usize,
    pub errors: usize,
    pub throughput_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Per stage: (p50, p95, p99).
    pub stages_ms: Vec<(String, f64, f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub corpus_passages: usize,
    pub configuration: String,
    pub questions: usize,
    pub rows: Vec<BenchRow>,
}

fn triple(v: Vec<f64>) -> (f64, f64, f64) {
    let l = indexer::scale::Latency::of(v);
    (l.p50, l.p95, l.p99)
}

/// Serves the platform on a loopback port and runs `requests` asks at each concurrency level, as
/// a service principal with the admin's tenant, groups and clearance. The token is revoked after.
pub async fn ask(
    platform: &Platform,
    admin_id: &str,
    questions: Vec<String>,
    concurrency: &[usize],
    requests: usize,
) -> Result<BenchReport> {
    if questions.is_empty() {
        return Err(Error::user("no questions to ask"));
    }
    let admin = platform
        .storage
        .actor(admin_id)
        .await?
        .ok_or_else(|| Error::user(format!("unknown principal '{admin_id}'")))?;
    let name = format!("bench-{}", crate::session::random_hex(4)?);
    let request = TokenRequest {
        name,
        scopes: vec![Permission::Ask],
        groups: admin.groups.clone(),
        clearance: admin.clearance,
        valid_days: 1,
    };
    let (token, info) = crate::tokens::issue(&platform.storage, &admin, &request).await?;
    let mut settings = (*platform.settings).clone();
    settings.bind = "127.0.0.1:0".to_owned();
    // One token asks for everyone here: the per-principal limit would measure itself.
    settings.ask_per_minute = 0;
    let served = Platform { settings: Arc::new(settings), ..platform.clone() };
    let app = Application::build(&served).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let questions = Arc::new(questions);
    let mut rows = Vec::new();
    for &n in concurrency {
        let (base, token, questions) = (base.clone(), token.clone(), Arc::clone(&questions));
        let row = tokio::task::spawn_blocking(move || level(&base, &token, &questions, n.max(1), requests))
            .await
            .map_err(|e| Error::internal("bench task", e))?;
        rows.push(row);
    }
    server.abort();
    crate::tokens::revoke(&platform.storage, &admin, &info.id).await?;
    let retriever = platform.retriever();
    Ok(BenchReport {
        corpus_passages: platform.bm25.count_all(),
        configuration: format!(
            "{} retrieval, fusion {}, reranker {}, {} passages per answer",
            if retriever.has_dense() { "hybrid" } else { "BM25-only" },
            retriever.fusion,
            retriever.reranker_status(),
            platform.settings.passages_per_answer
        ),
        questions: questions.len(),
        rows,
    })
}

/// One ask: end-to-end milliseconds and each stage's milliseconds, in [`STAGES`] order.
type Sample = (f64, Vec<f64>);

/// `requests` asks spread over `n` threads, each with its own connection.
fn level(base: &str, token: &str, questions: &[String], n: usize, requests: usize) -> BenchRow {
    let next = Arc::new(Mutex::new(0usize));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(0usize));
    let shed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..n {
            let (next, samples, errors) = (Arc::clone(&next), Arc::clone(&samples), Arc::clone(&errors));
            let shed = Arc::clone(&shed);
            scope.spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                loop {
                    let i = {
                        let Ok(mut g) = next.lock() else { return };
                        if *g >= requests {
                            return;
                        }
                        *g += 1;
                        *g - 1
                    };
                    let q = &questions[i % questions.len()];
                    let t = Instant::now();
                    let reply = agent
                        .get(&format!("{base}/api/v1/ask"))
                        .query("q", q)
                        .header("Authorization", &format!("Bearer {token}"))
                        .call();
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    if reply.as_ref().is_ok_and(|r| r.status().as_u16() == 429) {
                        shed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    let parsed = reply.ok().filter(|r| r.status().is_success()).and_then(|mut r| {
                        let text = r.body_mut().read_to_string().ok()?;
                        serde_json::from_str::<serde_json::Value>(&text).ok()
                    });
                    match parsed {
                        Some(v) => {
                            let stages =
                                STAGES.iter().map(|s| v["timings_us"][s].as_f64().unwrap_or(0.0) / 1000.0).collect();
                            if let Ok(mut s) = samples.lock() {
                                s.push((ms, stages));
                            }
                        }
                        None => {
                            if let Ok(mut e) = errors.lock() {
                                *e += 1;
                            }
                        }
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let (p50, p95, p99) = triple(samples.iter().map(|s| s.0).collect());
    let stages_ms = STAGES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (a, b, c) = triple(samples.iter().map(|s| s.1[i]).collect());
            ((*name).to_owned(), a, b, c)
        })
        .collect();
    BenchRow {
        concurrency: n,
        requests: samples.len(),
        shed: shed.load(std::sync::atomic::Ordering::Relaxed),
        errors: errors.lock().map(|e| *e).unwrap_or(0),
        throughput_per_s: samples.len() as f64 / elapsed.max(1e-9),
        p50_ms: p50,
        p95_ms: p95,
        p99_ms: p99,
        stages_ms,
    }
}

/// The report as Markdown tables.
pub fn markdown(r: &BenchReport) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Ask path over HTTP, {} passages in the corpus, {} distinct questions; {}.\n",
        r.corpus_passages, r.questions, r.configuration
    );
    let _ = writeln!(
        md,
        "| askers | answered | shed (429) | errors | req/s | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|---|---|"
    );
    for row in &r.rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} |",
            row.concurrency,
            row.requests,
            row.shed,
            row.errors,
            row.throughput_per_s,
            row.p50_ms,
            row.p95_ms,
            row.p99_ms
        );
    }
    for row in &r.rows {
        let _ = writeln!(md, "\nStages with {} asker(s), ms (p50 / p95 / p99):\n", row.concurrency);
        let _ = writeln!(md, "| stage | p50 | p95 | p99 |\n|---|---|---|---|");
        for (name, a, b, c) in &row.stages_ms {
            let _ = writeln!(md, "| {name} | {a:.3} | {b:.3} | {c:.3} |");
        }
    }
    md
}

// ---------------------------------------------------------------------------------------------
// Ingestion

/// Ingestion throughput on real PDFs, stage by stage, against the model's raw throughput.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub files: usize,
    pub pages: usize,
    pub chunks: usize,
    pub extract_pages_per_s: f64,
    pub chunk_per_s: f64,
    /// The embedding model alone on the same chunk texts, batched as ingestion batches.
    pub raw_embed_per_s: f64,
    /// The whole pipeline (read, extract, chunk, embed, store, index) on a fresh database.
    pub pipeline_per_s: f64,
    pub pipeline_share_of_raw: f64,
    pub pipeline_s: f64,
    pub raw_embed_s: f64,
    pub peak_rss_bytes: u64,
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

/// Measures ingestion of `pdfs` into a fresh platform under `dir` (SQLite), after timing each
/// stage on its own and the embedding model alone on the same texts.
pub async fn ingest(
    settings: &crate::settings::Settings,
    pdfs: &[std::path::PathBuf],
    dir: &std::path::Path,
) -> Result<IngestReport> {
    use crate::manifest::{DocumentEntry, Manifest, TenantEntry};
    let config = indexer::EmbedderConfig::new(settings.onnx_runtime_library(), settings.embedding_model_dir());
    let embedder = Arc::new(indexer::Embedder::load(&config).map_err(Error::from)?);
    let mut bytes = Vec::new();
    for p in pdfs {
        bytes.push(std::fs::read(p).map_err(|e| Error::user(format!("cannot read {}: {e}", p.display())))?);
    }
    let t = Instant::now();
    let mut pages = Vec::new();
    for (p, b) in pdfs.iter().zip(&bytes) {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        pages.push(indexer::extract_pages(&name, b).map_err(Error::from)?);
    }
    let extract_s = t.elapsed().as_secs_f64();
    let page_count: usize = pages.iter().map(Vec::len).sum();
    let t = Instant::now();
    let chunks: Vec<indexer::Chunk> =
        pages.iter().enumerate().flat_map(|(i, p)| indexer::chunk_pages(&format!("bench-{i}"), 1, p)).collect();
    let chunk_s = t.elapsed().as_secs_f64();
    let mut texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    // Ingestion never embeds the same text twice; the raw figure embeds the same unique texts.
    texts.sort_unstable();
    texts.dedup();
    let t = Instant::now();
    let model = Arc::clone(&embedder);
    let owned: Vec<String> = texts.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || model.embed_many(&owned, 32, &mut |_| {}))
        .await
        .map_err(|e| Error::internal("embedding task", e))?
        .map_err(Error::from)?;
    let raw_embed_s = t.elapsed().as_secs_f64();

    let mut fresh = settings.clone();
    fresh.data_dir = dir.join("ingest-bench");
    let _ = std::fs::remove_dir_all(&fresh.data_dir);
    fresh.database_url = None;
    fresh.data_card_gate = false;
    let platform = Platform::open_with(fresh, Some(Arc::clone(&embedder))).await?;
    let tenant = indexer::TenantId::parse("bench").map_err(Error::from)?;
    let acl = indexer::ChunkAcl {
        tenant: tenant.clone(),
        owner: "bench".into(),
        classification: indexer::Classification::Internal,
        allowed_groups: [indexer::GroupName::parse("staff").map_err(Error::from)?].into_iter().collect(),
        status: indexer::SourceStatus::Approved,
        effective_from: chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default(),
        expires_at: None,
        retention_class: "bench".into(),
    };
    let manifest = Manifest {
        tenants: vec![TenantEntry { id: tenant, name: "Benchmark".into() }],
        principals: Vec::new(),
        documents: pdfs
            .iter()
            .enumerate()
            .map(|(i, p)| DocumentEntry {
                id: format!("bench-{i}"),
                title: format!("Benchmark document {i}"),
                version: 1,
                file: p.clone(),
                source: None,
                acl: acl.clone(),
            })
            .collect(),
    };
    let t = Instant::now();
    let report = platform.ingestor().ingest_manifest(&manifest, "bench", &mut |_| {}).await?;
    let pipeline_s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(dir.join("ingest-bench"));
    let raw_embed_per_s = texts.len() as f64 / raw_embed_s;
    let pipeline_per_s = report.chunks as f64 / pipeline_s;
    Ok(IngestReport {
        files: pdfs.len(),
        pages: page_count,
        chunks: report.chunks,
        extract_pages_per_s: page_count as f64 / extract_s,
        chunk_per_s: chunks.len() as f64 / chunk_s.max(1e-9),
        raw_embed_per_s,
        pipeline_per_s,
        pipeline_share_of_raw: pipeline_per_s / raw_embed_per_s,
        pipeline_s,
        raw_embed_s,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

pub fn ingest_markdown(r: &IngestReport) -> String {
    format!(
        "Ingestion of {} PDFs ({} pages, {} chunks), fresh SQLite database, embedding on this CPU.\n\n\
         | stage | rate |\n|---|---|\n\
         | PDF text extraction | {:.1} pages/s |\n\
         | chunking | {:.0} chunks/s |\n\
         | embedding model alone (same unique texts, batches of 32) | {:.1} passages/s ({:.1} s) |\n\
         | whole pipeline (read, extract, chunk, embed, store, index) | {:.1} passages/s ({:.1} s) |\n\
         | pipeline / model | {:.1}% |\n\
         | peak resident memory | {} MB |\n",
        r.files,
        r.pages,
        r.chunks,
        r.extract_pages_per_s,
        r.chunk_per_s,
        r.raw_embed_per_s,
        r.raw_embed_s,
        r.pipeline_per_s,
        r.pipeline_s,
        r.pipeline_share_of_raw * 100.0,
        r.peak_rss_bytes / 1_000_000
    )
}

// ---------------------------------------------------------------------------------------------
// Search at scale

pub fn scale_markdown(rows: &[indexer::scale::ScaleRow]) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| chunks | BM25 index/s | HNSW index/s | BM25 on disk MB | vector index RSS MB | RSS MB per 1M | start-up s (graph rebuilt) | start-up s (graph snapshot) | snapshot MB |\n|---|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} |",
            r.chunks,
            r.bm25_index_per_s,
            r.hnsw_index_per_s,
            r.bm25_disk_bytes as f64 / 1e6,
            r.vector_index_rss_bytes as f64 / 1e6,
            r.vector_index_rss_per_million as f64 / 1e6,
            r.startup_s,
            r.startup_snapshot_s,
            r.snapshot_bytes as f64 / 1e6
        );
    }
    let _ = writeln!(md, "\nLatency in ms (p50 / p95 / p99), reader sees every chunk, k = 10:\n");
    let _ = writeln!(
        md,
        "| chunks | queries | BM25 | query embedding | HNSW | retrieval only (BM25 + HNSW + fusion) | hybrid (with embedding) | hybrid + rerank top 30 |\n|---|---|---|---|---|---|---|---|"
    );
    let l = |x: &indexer::scale::Latency| format!("{:.2} / {:.2} / {:.2}", x.p50, x.p95, x.p99);
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.chunks,
            r.queries,
            l(&r.bm25),
            l(&r.embed),
            l(&r.hnsw),
            l(&r.retrieval_only),
            l(&r.hybrid),
            r.hybrid_rerank.as_ref().map_or_else(|| "off (no reranker)".to_owned(), l)
        );
    }
    let _ = writeln!(md, "\nFiltered dense search, Recall@10 against exact search over the visible chunks:\n");
    filtered_table(&mut md, rows, |r| &r.filtered);
    let _ = writeln!(
        md,
        "\nWith half of the chunks replaced by near-duplicates of 16 chunks (cosine 0.97-0.9995 to them), \
         Recall@10 against exact search:\n"
    );
    filtered_table(&mut md, rows, |r| &r.near_duplicates);
    md
}

/// One filtered-recall table: a row per size and selectivity.
fn filtered_table(
    md: &mut String,
    rows: &[indexer::scale::ScaleRow],
    of: impl Fn(&indexer::scale::ScaleRow) -> &[indexer::scale::FilteredRow],
) {
    use std::fmt::Write;
    let _ = writeln!(md, "| chunks | selectivity | plan | Recall@10 | p50 ms | p95 ms |\n|---|---|---|---|---|---|");
    for r in rows {
        for f in of(r) {
            let _ = writeln!(
                md,
                "| {} | {:.1}% | {} | {:.4} | {:.2} | {:.2} |",
                r.chunks,
                f.selectivity * 100.0,
                f.plan,
                f.recall_at_10,
                f.latency.p50,
                f.latency.p95
            );
        }
    }
}
