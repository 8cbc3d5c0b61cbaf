//! `lexgate` commands: Benchmarks.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::service::Platform;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ingestion throughput on real PDFs: extraction, chunking, the embedding model alone and the
    /// whole pipeline on a fresh database.
    Ingest {
        pdfs: Vec<PathBuf>,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// BM25, HNSW and hybrid latency, filtered recall, index size, memory and start-up time at
    /// each size, from ObliQA passages and chunks generated from them (see `indexer::scale`).
    Scale {
        /// Folder of ObliQA passage files (StructuredRegulatoryDocuments).
        #[arg(long)]
        corpus: PathBuf,
        /// ObliQA questions file: the first `--queries` questions are the queries.
        #[arg(long)]
        questions: PathBuf,
        /// File caching the passage vectors between runs (shared with `eval obliqa`).
        #[arg(long)]
        vector_cache: Option<PathBuf>,
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
        sizes: Vec<usize>,
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Concurrent askers against the app served on a loopback port (`/api/v1/ask` with a
    /// temporary service token): latency percentiles, throughput and per-stage times.
    Ask {
        /// Admin whose tenant, groups and clearance the temporary token gets.
        #[arg(long = "as", default_value = "adam@acme-bank")]
        principal: String,
        /// Comma-separated numbers of concurrent askers.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        concurrency: Vec<usize>,
        /// Asks per concurrency level.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Questions to cycle through: the evaluation cases file (its questions are used).
        #[arg(long, default_value = "governance/eval/cases.toml")]
        cases: PathBuf,
        /// Also write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// A fresh scratch folder under the system's temporary directory.
pub fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("lexgate-bench-{}", crate::domain::random_hex(6)?));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub async fn run(command: &BenchCommand, settings: Settings) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest { pdfs, json } => {
            anyhow::ensure!(!pdfs.is_empty(), "name at least one PDF");
            let dir = tempfile_dir()?;
            let report = ingest(&settings, pdfs, &dir).await?;
            println!("{}", ingest_markdown(&report));
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        BenchCommand::Scale { corpus, questions, vector_cache, sizes, queries, json } => {
            let config = settings.embedder_config();
            let embedder =
                std::sync::Arc::new(indexer::Embedder::load(&config).context("loading the embedding model")?);
            let passages = indexer::eval::load_passages(corpus)?;
            let vectors = indexer::eval::obliqa_vectors(&passages, &embedder, vector_cache.as_deref(), &mut |done| {
                eprintln!("bench: embedded {done} passages")
            })?;
            let texts = passages.iter().filter(|p| !p.text.trim().is_empty()).map(|p| p.text.clone());
            let seeds: Vec<indexer::scale::Seed> =
                texts.zip(vectors).map(|(text, vector)| indexer::scale::Seed { text, vector }).collect();
            let qs = indexer::eval::load_questions(questions, &passages, None)?;
            let q_texts: Vec<String> = qs.iter().take(*queries).map(|q| q.question.clone()).collect();
            let q_vectors = embedder.embed_many(&q_texts, 32, &mut |_| {})?;
            let pairs: Vec<(String, Vec<f32>)> = q_texts.into_iter().zip(q_vectors).collect();
            let dir = tempfile_dir()?;
            let mut rows = Vec::new();
            if sizes.len() > 1 {
                // One process per size, so each size's memory figure starts from a clean heap.
                for n in sizes {
                    let part = dir.join(format!("rows-{n}.json"));
                    let mut child = std::process::Command::new(std::env::current_exe()?);
                    child.args(std::env::args_os().skip(1).take_while(|a| a != "scale")).arg("scale");
                    child.arg("--corpus").arg(corpus).arg("--questions").arg(questions);
                    if let Some(cache) = vector_cache {
                        child.arg("--vector-cache").arg(cache);
                    }
                    child.arg("--sizes").arg(n.to_string()).arg("--queries").arg(queries.to_string());
                    child.arg("--json").arg(&part);
                    anyhow::ensure!(child.status()?.success(), "the benchmark at {n} chunks failed");
                    let mut part_rows: Vec<indexer::scale::ScaleRow> = serde_json::from_slice(&std::fs::read(&part)?)?;
                    rows.append(&mut part_rows);
                }
                println!("All sizes:\n\n{}", scale_markdown(&rows));
                if let Some(path) = json {
                    std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
                }
                let _ = std::fs::remove_dir_all(&dir);
                return Ok(());
            }
            let reranker: Option<std::sync::Arc<dyn indexer::Reranker>> = match settings.reranker_config() {
                Some(config) => {
                    Some(std::sync::Arc::new(indexer::CrossEncoder::load(&config).context("loading the reranker")?))
                }
                None => None,
            };
            for n in sizes {
                let row = indexer::scale::measure(
                    &seeds,
                    *n,
                    &pairs,
                    std::sync::Arc::clone(&embedder),
                    reranker.clone(),
                    &dir,
                    &mut |m| eprintln!("bench: {m}"),
                )?;
                println!("{}", scale_markdown(std::slice::from_ref(&row)));
                rows.push(row);
            }
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        BenchCommand::Ask { .. } => anyhow::bail!("`bench ask` is run by the binary"),
    }
    Ok(())
}

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
pub async fn ingest(settings: &Settings, pdfs: &[std::path::PathBuf], dir: &std::path::Path) -> Result<IngestReport> {
    use crate::service::manifest::{DocumentEntry, Manifest, TenantEntry};
    let config = settings.embedder_config();
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
                kind: crate::domain::DocumentKind::Other,
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
        "| chunks | queries | BM25 | query embedding | HNSW | retrieval only (BM25 + HNSW + fusion) | hybrid (with embedding) | hybrid + rerank top {} |\n|---|---|---|---|---|---|---|---|",
        indexer::retrieve::DEFAULT_RERANK_TOP
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
