//! `lexgate` commands: Reading documents into the platform and keeping its indexes and schema in shape.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::service::Platform;
use crate::service::manifest::Manifest;
use crate::settings::Settings;

/// Reading documents into the platform and keeping its indexes and schema in shape.
#[derive(Debug, Subcommand)]
pub enum CorpusCommand {
    /// Ingest the documents, tenants and demo users of a manifest.
    Ingest { manifest: PathBuf },
    /// Regenerate the corpus PDFs from their plain-text sources.
    BuildCorpus { manifest: PathBuf },
    /// Load the ONNX Runtime and the embedding model and embed a probe sentence.
    CheckModels,
    /// Bring the database schema up to date.
    Migrate,
    /// Rebuild the indexes from the database alone (embedding chunks that lack a vector of the
    /// loaded model). Stop `lexgate serve` first.
    Reindex,
    /// Extract and chunk PDFs without storing anything; fails if any cannot be ingested.
    InspectPdf {
        files: Vec<PathBuf>,
        /// Print the first N chunks of each file with their page, offsets and heading path.
        #[arg(long, default_value_t = 0)]
        show: usize,
    },
}

/// Extracts and chunks each file, printing one summary line per file.
pub fn inspect_pdfs(files: &[PathBuf], show: usize, extractor: &indexer::Extractor) -> anyhow::Result<()> {
    anyhow::ensure!(!files.is_empty(), "name at least one PDF file");
    let mut failures = 0usize;
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let started = std::time::Instant::now();
        let result = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read: {e}"))
            .and_then(|bytes| extractor.extract(&name, &bytes).map_err(anyhow::Error::from));
        let pages = match result {
            Ok(pages) => pages,
            Err(e) => {
                failures += 1;
                println!("FAIL {name}: {e}");
                continue;
            }
        };
        let chunks = indexer::chunk_pages(&name, 1, &pages);
        let empty_pages = pages.iter().filter(|p| p.text.trim().is_empty()).count();
        let chars: usize = pages.iter().map(|p| p.text.chars().count()).sum();
        let with_heading = chunks.iter().filter(|c| !c.heading_path.is_empty()).count();
        let mut sizes: Vec<usize> = chunks.iter().map(|c| c.text.chars().count()).collect();
        sizes.sort_unstable();
        let size_at = |q: f64| sizes.get(((sizes.len().max(1) - 1) as f64 * q) as usize).copied().unwrap_or(0);
        // Garbage: fewer than half of the non-space characters are letters (broken encodings,
        // glyph soup). Tables of figures can trip it, so it is reported, not refused.
        let garbage = chunks
            .iter()
            .filter(|c| {
                let visible = c.text.chars().filter(|ch| !ch.is_whitespace()).count();
                let letters = c.text.chars().filter(|ch| ch.is_alphabetic()).count();
                letters * 2 < visible
            })
            .count();
        println!(
            "ok   {name}: {} pages ({empty_pages} without text), {chars} characters, {} chunks ({with_heading} with a heading path; characters min {} / median {} / max {}; {garbage} mostly non-letters), {:.2}s",
            pages.len(),
            chunks.len(),
            size_at(0.0),
            size_at(0.5),
            size_at(1.0),
            started.elapsed().as_secs_f64()
        );
        if chunks.is_empty() {
            failures += 1;
            println!("FAIL {name}: no chunks");
        }
        for c in chunks.iter().take(show) {
            let preview: String = c.text.chars().take(90).collect::<String>().replace('\n', " ");
            println!("     p{} [{}..{}] {} | {preview}", c.page, c.char_start, c.char_end, c.heading_path);
        }
    }
    anyhow::ensure!(failures == 0, "{failures} of {} files could not be ingested", files.len());
    Ok(())
}

pub async fn run(command: &CorpusCommand, settings: Settings) -> anyhow::Result<()> {
    match command {
        CorpusCommand::Ingest { manifest } => {
            let manifest = Manifest::load(manifest)?;
            let platform = Platform::open(settings).await?;
            let started = std::time::Instant::now();
            let report = platform
                .ingestor()
                .ingest_manifest(&manifest, "cli", &mut |p| {
                    let what = match p.outcome {
                        crate::service::ingest::Outcome::Ingested { chunks } => {
                            format!("{chunks} passages")
                        }
                        crate::service::ingest::Outcome::Unchanged => "unchanged".to_owned(),
                    };
                    eprintln!("[{}/{}] {} v{}: {what}", p.done, p.total, p.document_id, p.version);
                })
                .await?;
            println!(
                "ingested {} document versions ({} unchanged), {} passages in {:.1}s (job {})",
                report.ingested,
                report.unchanged,
                report.chunks,
                started.elapsed().as_secs_f64(),
                report.job_id
            );
        }
        CorpusCommand::BuildCorpus { manifest } => {
            let manifest = Manifest::load(manifest)?;
            let written = crate::service::ingest::build_corpus_pdfs(&manifest)?;
            println!("wrote {} PDFs", written.len());
        }
        CorpusCommand::CheckModels => {
            let config = settings.embedder_config();
            let embedder = indexer::Embedder::load(&config).context("loading the embedding model")?;
            let v = embedder.embed(&["lexgate model check"])?;
            println!(
                "embedding model ok: {} dimensions, runtime {}",
                v.first().map_or(0, Vec::len),
                config.onnx_runtime_library.display()
            );
            match settings.reranker_config() {
                Some(config) => {
                    let reranker = indexer::CrossEncoder::load(&config).context("loading the reranker")?;
                    use indexer::Reranker;
                    println!("reranker ok: cross-encoder {} in {}", reranker.model_id(), config.model_dir.display());
                }
                None => {
                    println!("reranker stage off: turned off, or no model under the models folder or --reranker-dir")
                }
            }
        }
        CorpusCommand::InspectPdf { files, show } => inspect_pdfs(files, *show, &settings.extractor())?,
        CorpusCommand::Reindex => {
            let platform = Platform::open(settings).await?;
            let report =
                platform.reindex(&mut |done, total| eprintln!("reindex: embedded {done}/{total} passages")).await?;
            println!(
                "reindexed in {:.1}s: {} passages in BM25, {} vectors ({} embedded now); index agrees with the database: {}",
                report.seconds, report.bm25_chunks, report.vectors, report.embedded, report.consistent
            );
            anyhow::ensure!(report.consistent, "the rebuilt index does not agree with the database");
        }
        CorpusCommand::Migrate => {
            let platform = Platform::open(settings).await?;
            println!("database schema is up to date ({})", platform.backend_name());
        }
    }
    Ok(())
}
