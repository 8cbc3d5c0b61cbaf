//! The `lexgate` command: loads settings, installs tracing, and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use server::app::{Application, Platform};
use server::manifest::Manifest;
use server::settings::{Secret, Settings, SettingsFile};

#[derive(Debug, Parser)]
#[command(name = "lexgate", version, about = "Governed retrieval over the regulatory documents you may read")]
struct Cli {
    /// TOML settings file (values there are overridden by environment variables and flags).
    #[arg(long, env = "LEXGATE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Folder for the embedded database, indexes and stored files.
    #[arg(long, env = "LEXGATE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// sqlite://... or postgres://...; defaults to a SQLite file in the data folder.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Folder prepared by scripts/setup-models.sh.
    #[arg(long, env = "LEXGATE_MODELS_DIR", global = true)]
    models_dir: Option<PathBuf>,
    /// Folder of the platform's governance records (model inventory); default ./governance.
    #[arg(long, env = "LEXGATE_GOVERNANCE_DIR", global = true)]
    governance_dir: Option<PathBuf>,
    /// Folder of a cross-encoder reranker; default: the one set up under the models folder
    /// (`rerank/`), when present.
    #[arg(long, env = "LEXGATE_RERANKER_DIR", global = true)]
    reranker_dir: Option<PathBuf>,
    /// Turn the reranker stage off (the rollback of the trained reranker).
    #[arg(long, global = true)]
    no_reranker: bool,
    /// How BM25 and dense results are fused, e.g. `rrf:k=60` or `convex:bm25=0.5:dense=0.5`.
    #[arg(long = "fusion-setting", env = "LEXGATE_FUSION", global = true)]
    fusion_setting: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web application.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long, env = "LEXGATE_BIND")]
        bind: Option<String>,
        /// Key (64+ characters) that signs session cookies.
        #[arg(long, env = "LEXGATE_SESSION_KEY", hide_env_values = true)]
        session_key: Option<String>,
        /// Issuer of the OpenID provider; disables the development sign-in. Needs the client id,
        /// secret and redirect URL too (or an `[oidc]` table in the settings file).
        #[arg(long, env = "LEXGATE_OIDC_ISSUER")]
        oidc_issuer: Option<String>,
        #[arg(long, env = "LEXGATE_OIDC_CLIENT_ID", requires = "oidc_issuer")]
        oidc_client_id: Option<String>,
        #[arg(long, env = "LEXGATE_OIDC_CLIENT_SECRET", hide_env_values = true, requires = "oidc_issuer")]
        oidc_client_secret: Option<String>,
        /// e.g. https://lexgate.example/signin/callback
        #[arg(long, env = "LEXGATE_OIDC_REDIRECT_URL", requires = "oidc_issuer")]
        oidc_redirect_url: Option<String>,
    },
    /// Ingest the documents, tenants and demo users of a manifest.
    Ingest { manifest: PathBuf },
    /// Regenerate the corpus PDFs from their plain-text sources.
    BuildCorpus { manifest: PathBuf },
    /// Load the ONNX Runtime and the embedding model and embed a probe sentence.
    CheckModels,
    /// Bring the database schema up to date.
    Migrate,
    /// Evaluate retrieval on a benchmark.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The reviewer's governance packet.
    #[command(subcommand)]
    Packet(PacketCommand),
    /// The deployment's risk tier and the controls it requires, met or not from the platform's state.
    Risk {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Data cards of the document sets and the governance gate.
    #[command(subcommand)]
    DataCards(DataCardsCommand),
    /// Work with the hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The model inventory and its change records.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Search as a given reader: the same ranked, filtered and database-checked passages the web
    /// app would use. Administrators use it to check what a user can see.
    Search {
        #[arg(long)]
        tenant: String,
        /// Comma-separated groups of the reader.
        #[arg(long, value_delimiter = ',', required = true)]
        groups: Vec<String>,
        /// public, internal, confidential or restricted.
        #[arg(long)]
        clearance: String,
        /// Answer from documents in force on this date (YYYY-MM-DD); today when absent.
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// bm25, dense or hybrid.
        #[arg(long, default_value = "hybrid")]
        method: String,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Print JSON (stable field names) instead of a table.
        #[arg(long)]
        json: bool,
        question: String,
    },
    /// Delete a document (or one version) from the database, every index and the file store,
    /// and print the deletion receipt.
    Delete {
        document: String,
        #[arg(long)]
        version: Option<u32>,
        /// The administrator on whose authority this runs (a principal id).
        #[arg(long = "as")]
        principal: String,
        /// Why; kept on the receipt.
        #[arg(long)]
        reason: String,
    },
    /// Set a document's status: `withdrawn` retires it from retrieval without deleting it,
    /// `approved` brings it back.
    SetStatus {
        document: String,
        /// approved, withdrawn or draft.
        status: String,
        #[arg(long)]
        version: Option<u32>,
        /// The administrator on whose authority this runs (a principal id).
        #[arg(long = "as")]
        principal: String,
    },
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

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Print the inventory (seeded from the governance folder) and its change records as JSON.
    List,
    /// Change fields of one entry; writes a change record in the same transaction.
    Change {
        /// embedding, reranker or answer-composer.
        role: String,
        /// field=value (repeatable); list fields take comma-separated values.
        #[arg(long = "set", required = true)]
        set: Vec<String>,
        #[arg(long)]
        why: String,
        #[arg(long)]
        risk: String,
        #[arg(long, default_value = "")]
        eval_before: String,
        #[arg(long, default_value = "")]
        eval_after: String,
        #[arg(long)]
        rollback: String,
        #[arg(long)]
        approver: String,
    },
}

#[derive(Debug, Subcommand)]
enum PacketCommand {
    /// Write the packet (README, then Markdown and JSON per section) as a ZIP file.
    Export {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DataCardsCommand {
    /// Print every card with what the platform measured (PII counts, pages without text) as JSON.
    List,
    /// Approve, return to draft or reject a set's card; audited.
    SetStatus {
        /// The document set (a tenant id).
        set: String,
        /// approved, draft or rejected.
        status: String,
        /// Who decides (the card's approval owner or a reviewer).
        #[arg(long)]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the whole chain; fails naming the first edited, removed or moved event.
    Verify,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
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

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Run the evaluation cases through the ask path as each case's principal, judge them against
    /// the thresholds, store the release-gate report and write it as Markdown and JSON. Exits
    /// with an error when the decision is "block".
    Run {
        #[arg(long, default_value = "governance/eval/cases.toml")]
        cases: PathBuf,
        #[arg(long, default_value = "governance/eval/thresholds.toml")]
        thresholds: PathBuf,
        /// Folder for release-gate.md and release-gate.json.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Skip the BM25-only comparison run.
        #[arg(long)]
        no_baseline: bool,
    },
    /// Filtered dense-search recall@k against exact search at selectivities 50%, 10%, 1% and 0.1%
    /// of the ObliQA passage vectors, with the default planner and with graph search forced.
    Filtered {
        /// Folder of passage files (StructuredRegulatoryDocuments).
        #[arg(long)]
        corpus: PathBuf,
        /// Questions file; the first `--queries` questions are the query vectors.
        #[arg(long)]
        questions: PathBuf,
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// File caching the passage vectors between runs (shared with `eval obliqa`).
        #[arg(long)]
        vector_cache: Option<PathBuf>,
        /// Fail when the default planner's recall falls below this at any selectivity.
        #[arg(long)]
        min_recall: Option<f64>,
    },
    /// Ingest ObliQA passages into in-memory indexes and report Recall, MAP, nDCG and MRR at k
    /// for BM25, dense and hybrid retrieval.
    Obliqa {
        /// Folder of passage files (StructuredRegulatoryDocuments).
        #[arg(long)]
        corpus: PathBuf,
        /// Questions file (ObliQA JSON).
        #[arg(long)]
        questions: PathBuf,
        /// TREC qrels giving the relevant passage uuids (multi-passage variant).
        #[arg(long)]
        qrels: Option<PathBuf>,
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Evaluate only the first N questions (a fixed sample).
        #[arg(long)]
        limit: Option<usize>,
        /// Which of the reranker's locked question splits to evaluate: all, train or validation
        /// (a fixed hash of the question id; see `indexer::eval::Split`).
        #[arg(long, default_value = "all")]
        split: indexer::eval::Split,
        /// Write each question's first-stage hybrid candidates (no reranking) as JSON lines here:
        /// the hard negatives the reranker's training script mines.
        #[arg(long)]
        candidates_out: Option<PathBuf>,
        /// How many candidates per question `--candidates-out` writes.
        #[arg(long, default_value_t = 50)]
        candidates_depth: usize,
        /// Comma-separated methods.
        #[arg(long, default_value = "bm25,dense,hybrid")]
        methods: String,
        /// Fusion settings to evaluate hybrid with, each a row of its own: `rrf` or `convex`
        /// followed by `:name=value` settings (k, bm25, dense, candidates), e.g.
        /// `rrf:k=60:bm25=1:dense=0.5`. Separate several with spaces. Default: the platform's.
        #[arg(long, value_delimiter = ' ')]
        fusion: Vec<String>,
        /// File caching the passage vectors between runs (keyed by model and passage texts).
        #[arg(long)]
        vector_cache: Option<PathBuf>,
        /// Fail when a method's Recall@k falls below a floor, e.g. `hybrid=0.77` (repeatable):
        /// CI uses it to catch retrieval regressions.
        #[arg(long)]
        min_recall: Vec<String>,
        /// Write the figures as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn settings_from(cli: &Cli) -> anyhow::Result<Settings> {
    let mut settings = Settings::default();
    if let Some(path) = &cli.config {
        settings = settings.overlay(SettingsFile::read(path)?)?;
    }
    if let Some(v) = &cli.data_dir {
        settings.data_dir = v.clone();
    }
    if let Some(v) = &cli.database_url {
        settings.database_url = Some(Secret::new(v.clone()));
    }
    if let Some(v) = &cli.models_dir {
        settings.models_dir = v.clone();
    }
    if let Some(v) = &cli.governance_dir {
        settings.governance_dir = v.clone();
    }
    if let Some(v) = &cli.reranker_dir {
        settings.reranker_dir = Some(v.clone());
    }
    if cli.no_reranker {
        settings.reranker = false;
    }
    if let Some(v) = &cli.fusion_setting {
        settings.fusion = v.parse()?;
    }
    if let Command::Serve { bind, session_key, oidc_issuer, oidc_client_id, oidc_client_secret, oidc_redirect_url } =
        &cli.command
    {
        if let Some(v) = bind {
            settings.bind = v.clone();
        }
        if let Some(v) = session_key {
            settings.session_key = Some(Secret::new(v.clone()));
        }
        if let Some(issuer) = oidc_issuer {
            let missing = |flag: &str| anyhow::anyhow!("--oidc-issuer needs {flag} as well");
            settings.oidc = Some(server::oidc::OidcSettings {
                issuer: issuer.clone(),
                client_id: oidc_client_id.clone().ok_or_else(|| missing("--oidc-client-id"))?,
                client_secret: Secret::new(oidc_client_secret.clone().ok_or_else(|| missing("--oidc-client-secret"))?),
                redirect_url: oidc_redirect_url.clone().ok_or_else(|| missing("--oidc-redirect-url"))?,
                scopes: server::oidc::default_scopes(),
                claims: Default::default(),
            });
        }
    }
    settings.validate()?;
    Ok(settings)
}

/// A fresh scratch folder under the system's temporary directory.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("lexgate-bench-{}", server::session::random_hex(6)?));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = settings_from(&cli)?;
    // Every PDF this process reads is read by a child of this same binary, under limits.
    settings.pdf_worker = Some(std::env::current_exe().context("locating the lexgate binary")?);
    match &cli.command {
        Command::Serve { .. } => {
            let platform = Platform::open(settings).await?;
            let app = Application::build(&platform).await?;
            let host = platform.settings.bind.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h).to_owned();
            tracing::info!(port = app.port(), database = platform.storage.backend_name(), "serving");
            println!("lexgate is serving at http://{host}:{}/", app.port());
            app.run_until_stopped().await?;
        }
        Command::Ingest { manifest } => {
            let manifest = Manifest::load(manifest)?;
            let platform = Platform::open(settings).await?;
            let started = std::time::Instant::now();
            let report = platform
                .ingestor()
                .ingest_manifest(&manifest, "cli", &mut |p| {
                    let what = match p.outcome {
                        server::ingest::Outcome::Ingested { chunks } => {
                            format!("{chunks} passages")
                        }
                        server::ingest::Outcome::Unchanged => "unchanged".to_owned(),
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
        Command::BuildCorpus { manifest } => {
            let manifest = Manifest::load(manifest)?;
            let written = server::ingest::build_corpus_pdfs(&manifest)?;
            println!("wrote {} PDFs", written.len());
        }
        Command::CheckModels => {
            let config = indexer::EmbedderConfig::new(settings.onnx_runtime_library(), settings.embedding_model_dir());
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
        Command::InspectPdf { files, show } => inspect_pdfs(files, *show, &settings.extractor())?,
        Command::Bench(BenchCommand::Ingest { pdfs, json }) => {
            anyhow::ensure!(!pdfs.is_empty(), "name at least one PDF");
            let dir = tempfile_dir()?;
            let report = server::bench::ingest(&settings, pdfs, &dir).await?;
            println!("{}", server::bench::ingest_markdown(&report));
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        Command::Bench(BenchCommand::Scale { corpus, questions, vector_cache, sizes, queries, json }) => {
            let config = indexer::EmbedderConfig::new(settings.onnx_runtime_library(), settings.embedding_model_dir());
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
                println!("All sizes:\n\n{}", server::bench::scale_markdown(&rows));
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
                println!("{}", server::bench::scale_markdown(std::slice::from_ref(&row)));
                rows.push(row);
            }
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        Command::Bench(BenchCommand::Ask { principal, concurrency, requests, cases, json }) => {
            let cases = server::release_gate::Cases::load(cases)?;
            let mut questions: Vec<String> = cases.cases.iter().map(|c| c.question.clone()).collect();
            questions.dedup();
            let platform = Platform::open(settings).await?;
            let report = server::bench::ask(&platform, principal, questions, concurrency, *requests).await?;
            println!("{}", server::bench::markdown(&report));
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
            }
        }
        Command::Eval(EvalCommand::Run { cases, thresholds, out, no_baseline }) => {
            let cases = server::release_gate::Cases::load(cases)?;
            let thresholds = server::release_gate::Thresholds::load(thresholds)?;
            let platform = Platform::open(settings).await?;
            let options = server::release_gate::RunOptions {
                baseline: !no_baseline,
                answer: server::answer::AnswerConfig {
                    min_coverage: platform.settings.answer_min_coverage,
                    ..Default::default()
                },
            };
            let report = server::release_gate::run(&platform, &cases, &thresholds, &options).await?;
            let md = server::release_gate::markdown(&report);
            println!("{md}");
            if let Some(dir) = out {
                std::fs::create_dir_all(dir)?;
                std::fs::write(dir.join("release-gate.md"), &md)?;
                std::fs::write(dir.join("release-gate.json"), serde_json::to_string_pretty(&report)?)?;
            }
            anyhow::ensure!(
                report.decision != server::release_gate::Decision::Block,
                "the release gate blocks: {}",
                report.reasons.join("; ")
            );
        }
        Command::Eval(EvalCommand::Filtered { corpus, questions, queries, k, vector_cache, min_recall }) => {
            let config = indexer::EmbedderConfig::new(settings.onnx_runtime_library(), settings.embedding_model_dir());
            let embedder = indexer::Embedder::load(&config).context("loading the embedding model")?;
            let passages = indexer::eval::load_passages(corpus)?;
            let qs = indexer::eval::load_questions(questions, &passages, None)?;
            let texts: Vec<&str> = qs.iter().take(*queries).map(|q| q.question.as_str()).collect();
            let query_vectors = embedder.embed_many(&texts, 32, &mut |_| {})?;
            let vectors = indexer::eval::obliqa_vectors(&passages, &embedder, vector_cache.as_deref(), &mut |_| {})?;
            // The passages as they are, then with as many near-duplicate filler vectors added.
            let mut with_filler = vectors.clone();
            with_filler.extend(indexer::scale::near_duplicates(&vectors, vectors.len()));
            for (label, vectors) in [("", &vectors), (" with as many near-duplicates of 16 passages", &with_filler)] {
                let rows = indexer::eval::filtered_recall(vectors, &query_vectors, &[500, 100, 10, 1], *k)?;
                println!(
                    "Filtered dense search, {} vectors{label}, {} queries, k = {k}",
                    vectors.len(),
                    query_vectors.len()
                );
                println!(
                    "| selectivity | visible | plan | Recall@{k} | p50 ms | graph-only Recall@{k} | graph-only p50 ms |"
                );
                println!("|---|---|---|---|---|---|---|");
                for r in &rows {
                    println!(
                        "| {:.1}% | {} | {} | {:.4} | {:.2} | {:.4} | {:.2} |",
                        r.selectivity * 100.0,
                        r.visible,
                        r.plan,
                        r.recall,
                        r.p50_ms,
                        r.graph_recall,
                        r.graph_p50_ms
                    );
                }
                if let Some(floor) = min_recall {
                    for r in &rows {
                        anyhow::ensure!(
                            r.recall >= *floor,
                            "filtered Recall@{k} {:.4} at selectivity {:.1}%{label} is below the floor {floor}",
                            r.recall,
                            r.selectivity * 100.0
                        );
                    }
                }
            }
        }
        Command::Eval(EvalCommand::Obliqa {
            corpus,
            questions,
            qrels,
            k,
            limit,
            split,
            candidates_out,
            candidates_depth,
            methods,
            fusion,
            vector_cache,
            min_recall,
            out,
        }) => {
            let methods: Vec<indexer::Method> =
                methods.split(',').map(|m| m.trim().parse()).collect::<Result<_, _>>()?;
            let embedder = if methods.iter().any(|m| *m != indexer::Method::Bm25) {
                let config =
                    indexer::EmbedderConfig::new(settings.onnx_runtime_library(), settings.embedding_model_dir());
                Some(std::sync::Arc::new(indexer::Embedder::load(&config).context("loading the embedding model")?))
            } else {
                None
            };
            let fusions = if fusion.is_empty() {
                vec![settings.fusion]
            } else {
                fusion.iter().filter(|f| !f.is_empty()).map(|f| f.parse()).collect::<Result<_, _>>()?
            };
            let floors = min_recall
                .iter()
                .map(|f| {
                    let (method, value) = f
                        .split_once('=')
                        .ok_or_else(|| anyhow::anyhow!("--min-recall takes METHOD=VALUE, not '{f}'"))?;
                    let method: indexer::Method = method.parse()?;
                    let value: f64 = value.parse().map_err(|_| anyhow::anyhow!("'{value}' is not a number"))?;
                    Ok((method, value))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let options = EvalOptions {
                k: *k,
                limit: *limit,
                split: *split,
                candidates: candidates_out.as_deref().map(|p| (p, *candidates_depth)),
                methods,
                fusions,
                vector_cache: vector_cache.as_deref(),
                floors,
                reranker: settings.reranker_config(),
                rerank_top: settings.rerank_top,
            };
            eval_obliqa(corpus, questions, qrels.as_deref(), &options, embedder, out.as_deref())?;
        }
        Command::Search { tenant, groups, clearance, as_of, method, limit, json, question } => {
            let reader = indexer::Reader {
                tenant: indexer::TenantId::parse(tenant)?,
                groups: groups.iter().map(|g| indexer::GroupName::parse(g.trim())).collect::<Result<_, _>>()?,
                clearance: clearance.parse()?,
                as_of: as_of.unwrap_or_else(server::storage::Storage::today),
            };
            let method: indexer::Method = method.parse()?;
            anyhow::ensure!((1..=100).contains(limit), "--limit must be between 1 and 100");
            if method == indexer::Method::Bm25 {
                settings.dense_retrieval = false;
            }
            let platform = Platform::open(settings).await?;
            let checked = server::ask::retrieve_checked(
                &platform.storage,
                &platform.retriever(),
                &reader,
                question,
                method,
                *limit,
                platform.settings.data_card_gate,
            )
            .await?;
            print_search(&reader, method, &checked, *json)?;
        }
        Command::Delete { document, version, principal, reason } => {
            let platform = Platform::open(settings).await?;
            let actor = cli_actor(&platform, principal).await?;
            let receipt = platform.documents().delete(&actor, document, *version, reason).await?;
            println!("{}", serde_json::to_string_pretty(&receipt)?);
            anyhow::ensure!(
                receipt.post_check.passed,
                "the post-deletion check failed (receipt {}): see the counts above",
                receipt.id
            );
        }
        Command::SetStatus { document, status, version, principal } => {
            let status: indexer::SourceStatus = status.parse()?;
            let platform = Platform::open(settings).await?;
            let actor = cli_actor(&platform, principal).await?;
            let change = platform.documents().set_status(&actor, document, *version, status).await?;
            println!(
                "{} versions {:?}: {} ({} passages)",
                change.document_id, change.versions, change.status, change.chunks
            );
        }
        Command::Reindex => {
            let platform = Platform::open(settings).await?;
            let report =
                platform.reindex(&mut |done, total| eprintln!("reindex: embedded {done}/{total} passages")).await?;
            println!(
                "reindexed in {:.1}s: {} passages in BM25, {} vectors ({} embedded now); index agrees with the database: {}",
                report.seconds, report.bm25_chunks, report.vectors, report.embedded, report.consistent
            );
            anyhow::ensure!(report.consistent, "the rebuilt index does not agree with the database");
        }
        Command::Models(ModelsCommand::List) => {
            let storage = server::storage::Storage::connect(&settings.database_url()).await?;
            storage.seed_inventory(&server::governance::read_inventory_file(&settings.governance_dir)?).await?;
            let records: Vec<serde_json::Value> =
                storage.change_records().await?.iter().map(server::governance::change_record_json).collect();
            let value = serde_json::json!({ "models": storage.inventory().await?, "change_records": records });
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Command::Models(ModelsCommand::Change {
            role,
            set,
            why,
            risk,
            eval_before,
            eval_after,
            rollback,
            approver,
        }) => {
            let storage = server::storage::Storage::connect(&settings.database_url()).await?;
            storage.seed_inventory(&server::governance::read_inventory_file(&settings.governance_dir)?).await?;
            let set = set
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                        .ok_or_else(|| anyhow::anyhow!("--set takes field=value, not '{kv}'"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let record = storage
                .change_inventory(&server::governance::ChangeRequest {
                    role: role.clone(),
                    set,
                    why: why.clone(),
                    risk: risk.clone(),
                    eval_before: eval_before.clone(),
                    eval_after: eval_after.clone(),
                    rollback: rollback.clone(),
                    approver: approver.clone(),
                    recorded_by: "cli".to_owned(),
                })
                .await?;
            println!("change record {} written for the {role} entry: {}", record.id, record.changes);
        }
        Command::Packet(PacketCommand::Export { out }) => {
            let storage = server::storage::Storage::connect(&settings.database_url()).await?;
            let files = server::packet::build(&storage, &settings).await?;
            let bytes = server::packet::zip(&files);
            let tmp = out.with_extension("partial");
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, out))
                .with_context(|| format!("writing {}", out.display()))?;
            server::packet::record_export(&storage, "cli", None, files.len(), bytes.len()).await?;
            println!("wrote {} ({} files, {} bytes)", out.display(), files.len(), bytes.len());
        }
        Command::Risk { json } => {
            let storage = server::storage::Storage::connect(&settings.database_url()).await?;
            server::governance::seed_inventory_and_cards(&storage, &settings.governance_dir).await?;
            let risk = server::governance::risk_classification(&storage, &settings).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&risk)?);
            } else {
                println!("Risk tier {} ({})", risk.tier, risk.answers.use_case);
                for (question, tier) in &risk.question_tiers {
                    println!("  {question}: tier {tier}");
                }
                println!("| control | from tier | met | evidence |\n|---|---|---|---|");
                for c in &risk.controls {
                    println!(
                        "| {} | {} | {} | {} |",
                        c.control,
                        c.from_tier,
                        if c.met { "met" } else { "NOT MET" },
                        c.evidence
                    );
                }
            }
        }
        Command::DataCards(command) => {
            let storage = server::storage::Storage::connect(&settings.database_url()).await?;
            server::governance::seed_data_cards(&storage, &settings.governance_dir).await?;
            match command {
                DataCardsCommand::List => println!("{}", serde_json::to_string_pretty(&storage.data_cards().await?)?),
                DataCardsCommand::SetStatus { set, status, by } => {
                    storage.set_data_card_status(set, status, by).await?;
                    println!("data card of '{set}' is now {status}");
                }
            }
        }
        Command::Audit(AuditCommand::Verify) => {
            let storage = server::storage::Storage::connect(&settings.database_url()).await?;
            let v = storage.verify_audit().await?;
            match &v.problem {
                None => println!("audit chain intact: {} events, head {}", v.events, v.head),
                Some(problem) => anyhow::bail!("audit chain broken: {problem} ({} events checked)", v.events),
            }
        }
        Command::Migrate => {
            let platform = Platform::open(settings).await?;
            println!("database schema is up to date ({})", platform.storage.backend_name());
        }
    }
    Ok(())
}

/// What `eval obliqa` runs.
struct EvalOptions<'a> {
    k: usize,
    limit: Option<usize>,
    split: indexer::eval::Split,
    /// Where to write first-stage candidates, and how many per question.
    candidates: Option<(&'a std::path::Path, usize)>,
    methods: Vec<indexer::Method>,
    /// Hybrid is evaluated once per fusion setting.
    fusions: Vec<indexer::FusionConfig>,
    vector_cache: Option<&'a std::path::Path>,
    /// Recall@k floors per method.
    floors: Vec<(indexer::Method, f64)>,
    /// When set, hybrid is evaluated once more with the reranker stage, for the first fusion
    /// setting.
    reranker: Option<indexer::RerankerConfig>,
    rerank_top: usize,
}

fn eval_obliqa(
    corpus: &std::path::Path,
    questions: &std::path::Path,
    qrels: Option<&std::path::Path>,
    options: &EvalOptions<'_>,
    embedder: Option<std::sync::Arc<indexer::Embedder>>,
    out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use indexer::eval;
    let k = options.k;
    let started = std::time::Instant::now();
    let passages = eval::load_passages(corpus)?;
    let mut qs = eval::load_questions(questions, &passages, qrels)?;
    qs.retain(|q| options.split.contains(&q.id));
    if let Some(n) = options.limit {
        qs.truncate(n);
    }
    eprintln!("eval: {} passages, {} questions with relevant passages", passages.len(), qs.len());
    let mut last_report = std::time::Instant::now();
    let reranker: Option<std::sync::Arc<dyn indexer::Reranker>> = match &options.reranker {
        Some(config) => Some(std::sync::Arc::new(indexer::CrossEncoder::load(config).context("loading the reranker")?)),
        None => None,
    };
    let mut retriever =
        eval::build_obliqa_retriever(&passages, embedder, options.vector_cache, &mut |stage, done, total| {
            if done == total || last_report.elapsed().as_secs() >= 10 {
                eprintln!("eval: {stage} {done}/{total} ({:.0}s)", started.elapsed().as_secs_f64());
                last_report = std::time::Instant::now();
            }
        })?;
    retriever.rerank_top = options.rerank_top;
    let ingest_seconds = started.elapsed().as_secs_f64();
    if let Some((path, depth)) = options.candidates {
        let first_stage = indexer::Retriever {
            fusion: options.fusions.first().copied().unwrap_or(retriever.fusion),
            reranker: None,
            ..retriever.clone()
        };
        let lines = eval::first_stage_candidates(&first_stage, &qs, indexer::Method::Hybrid, depth)?;
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("eval: wrote {depth} hybrid candidates for each of {} questions to {}", qs.len(), path.display());
    }
    let mut reports = Vec::new();
    for m in &options.methods {
        if *m == indexer::Method::Hybrid {
            for (i, fusion) in options.fusions.iter().enumerate() {
                let variant = indexer::Retriever { fusion: *fusion, reranker: None, ..retriever.clone() };
                reports.push(eval::evaluate(&variant, &passages, &qs, *m, k)?);
                // The reranker runs over the first fusion setting (the platform's by default).
                if let Some(reranker) = reranker.as_ref().filter(|_| i == 0) {
                    let reranked = indexer::Retriever { reranker: Some(std::sync::Arc::clone(reranker)), ..variant };
                    reports.push(eval::evaluate(&reranked, &passages, &qs, *m, k)?);
                }
            }
        } else {
            reports.push(eval::evaluate(&retriever, &passages, &qs, *m, k)?);
        }
    }
    println!(
        "ObliQA retrieval, {} questions, {} passages, k = {k} (index build {ingest_seconds:.1}s)",
        qs.len(),
        passages.len()
    );
    println!("| method | Recall@{k} | MAP@{k} | nDCG@{k} | MRR@{k} | p50 ms | p95 ms |");
    println!("|---|---|---|---|---|---|---|");
    for r in &reports {
        println!(
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.1} | {:.1} |",
            r.method,
            r.mean.recall,
            r.mean.average_precision,
            r.mean.ndcg,
            r.mean.reciprocal_rank,
            r.latency_p50_ms,
            r.latency_p95_ms
        );
    }
    if let Some(path) = out {
        let json = serde_json::json!({
            "benchmark": "obliqa",
            "questions_file": questions.display().to_string(),
            "questions": qs.len(),
            "passages": passages.len(),
            "k": k,
            "index_build_seconds": ingest_seconds,
            "methods": reports,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    for (method, floor) in &options.floors {
        for r in reports.iter().filter(|r| r.method.split(' ').next() == Some(method.as_str())) {
            anyhow::ensure!(
                r.mean.recall >= *floor,
                "{}: Recall@{k} {:.4} is below the floor {floor}",
                r.method,
                r.mean.recall
            );
        }
    }
    Ok(())
}

/// The principal a command-line action runs as; it must exist.
async fn cli_actor(platform: &Platform, principal: &str) -> anyhow::Result<server::domain::Actor> {
    platform
        .storage
        .actor(principal)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no principal '{principal}' (ids look like adam@acme-bank)"))
}

fn print_search(
    reader: &indexer::Reader,
    method: indexer::Method,
    checked: &server::ask::CheckedRetrieval,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let value = serde_json::json!({
            "reader": {
                "tenant": reader.tenant.as_str(),
                "groups": reader.groups.iter().map(indexer::GroupName::as_str).collect::<Vec<_>>(),
                "clearance": reader.clearance.as_str(),
                "as_of": reader.as_of.to_string(),
            },
            "method": method.as_str(),
            "withheld": checked.withheld,
            "passages": checked.passages.iter().map(server::ask::Passage::to_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "{} passages for tenant {} as of {} ({})",
        checked.passages.len(),
        reader.tenant.as_str(),
        reader.as_of,
        method.as_str()
    );
    for p in &checked.passages {
        let stage =
            |s: Option<indexer::StageScore>| s.map_or("-".to_owned(), |s| format!("#{} {:.3}", s.rank, s.score));
        println!(
            "{:>2}. {} v{} p{} {} [bm25 {} | dense {} | fused {:.4}]",
            p.rank,
            p.chunk.document_id,
            p.chunk.version,
            p.chunk.page,
            p.chunk.heading_path,
            stage(p.scores.bm25),
            stage(p.scores.dense),
            p.scores.fused
        );
        println!("    {}", p.chunk.text.chars().take(120).collect::<String>().replace('\n', " "));
    }
    if checked.withheld > 0 {
        println!("({} hits withheld: the database no longer holds or permits them)", checked.withheld);
    }
    Ok(())
}

/// Extracts and chunks each file, printing one summary line per file.
fn inspect_pdfs(files: &[PathBuf], show: usize, extractor: &indexer::Extractor) -> anyhow::Result<()> {
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

fn main() -> ExitCode {
    // A PDF worker (see indexer::pdf_worker) does nothing else: no logging, no runtime.
    let mut args = std::env::args();
    if args.nth(1).as_deref() == Some(indexer::pdf_worker::WORKER_ARG) {
        let code = indexer::pdf_worker::worker_main(&args.next().unwrap_or_default());
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEXGATE_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm_migration=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
