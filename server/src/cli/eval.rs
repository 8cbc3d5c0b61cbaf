//! `lexgate` commands: Retrieval and release-gate evaluations.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::service::Platform;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
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
        /// Also answer the cases of these kinds (answer, access, freshness, injection, deletion,
        /// out_of_scope) with the configured generator and report the generated answers' metrics.
        #[arg(long, value_delimiter = ',')]
        generate: Vec<String>,
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
    /// Obligation detection on labelled sentences (`[{"Text": ..., "Obligation": true}]`):
    /// precision, recall, F1 and accuracy of the trained classifier and of the cue-word rules.
    Obligations {
        #[arg(long)]
        sentences: PathBuf,
        /// all, or the classifier's own held-out side of the file (`validation`) or its training
        /// side (`train`), fixed by a hash of the text (see `indexer::obligation`).
        #[arg(long, default_value = "all")]
        split: String,
        /// Write the figures as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Fail when the classifier's F1 falls below this.
        #[arg(long)]
        min_f1: Option<f64>,
    },
    /// Ask questions whose answering provision is known (governance/eval/real-pdf-questions.toml,
    /// over documents already ingested) as one reader, and report retrieval, answer coverage and
    /// citation precision of the extractive answer and, with a `[generator]`, the generated one.
    Answers {
        #[arg(long)]
        questions: PathBuf,
        #[arg(long)]
        tenant: String,
        #[arg(long, value_delimiter = ',', default_value = "staff")]
        groups: Vec<String>,
        #[arg(long, default_value = "restricted")]
        clearance: String,
        /// Also answer with the configured generator.
        #[arg(long)]
        generate: bool,
        /// Write the report as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Fail when the extractive answer's coverage falls below this.
        #[arg(long)]
        min_coverage: Option<f64>,
        /// How answer sentences are ordered, instead of the settings' choice: `words`, `reranker`
        /// (the loaded reranker's cross-encoder) or a model folder (model.onnx and tokenizer
        /// files, such as a selector trained by training/selector).
        #[arg(long, value_name = "words|reranker|FOLDER")]
        sentence_selector: Option<String>,
        /// Ask every question once more with its document (and the act's other texts, the ids
        /// sharing its first word) out of the reader's reach, for the abstention curve.
        #[arg(long)]
        negatives: bool,
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
        /// Fail when a row's Recall@k falls below a floor, e.g. `hybrid=0.77` (repeatable). The
        /// row is `bm25`, `dense`, `hybrid` (every fusion setting, without the reranker) or
        /// `rerank` (hybrid + rerank). CI uses it to catch retrieval regressions.
        #[arg(long)]
        min_recall: Vec<String>,
        /// Fail when a row's MAP@k falls below a floor, e.g. `rerank=0.70` (repeatable).
        #[arg(long)]
        min_map: Vec<String>,
        /// Also compose the extractive answer for each question, as asked and with the documents
        /// of its relevant passages out of reach, and print the abstention curve.
        #[arg(long)]
        answers: bool,
        /// Write the figures as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Which rows a floor applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    Method(indexer::Method),
    Reranked,
}

/// A metric a row must reach.
#[derive(Debug, Clone, Copy)]
struct Floor {
    row: Row,
    map: bool,
    value: f64,
}

impl Floor {
    /// `ROW=VALUE`, ROW one of bm25, dense, hybrid, rerank.
    fn parse(text: &str, map: bool) -> anyhow::Result<Self> {
        let flag = if map { "--min-map" } else { "--min-recall" };
        let (row, value) =
            text.split_once('=').ok_or_else(|| anyhow::anyhow!("{flag} takes ROW=VALUE, not '{text}'"))?;
        let row = match row.trim() {
            "rerank" => Row::Reranked,
            method => Row::Method(method.parse()?),
        };
        let value: f64 = value.trim().parse().map_err(|_| anyhow::anyhow!("{flag}: '{value}' is not a number"))?;
        Ok(Self { row, map, value })
    }

    fn applies_to(&self, label: &str) -> bool {
        let reranked = label.contains("+ rerank");
        match self.row {
            Row::Reranked => reranked,
            Row::Method(m) => !reranked && label.split(' ').next() == Some(m.as_str()),
        }
    }
}

/// What `eval obliqa` runs.
pub struct EvalOptions<'a> {
    k: usize,
    limit: Option<usize>,
    split: indexer::eval::Split,
    /// Where to write first-stage candidates, and how many per question.
    candidates: Option<(&'a std::path::Path, usize)>,
    methods: Vec<indexer::Method>,
    /// Hybrid is evaluated once per fusion setting.
    fusions: Vec<indexer::FusionConfig>,
    vector_cache: Option<&'a std::path::Path>,
    /// Recall@k and MAP@k floors per row.
    floors: Vec<Floor>,
    /// When set, hybrid is evaluated once more with the reranker stage, for the first fusion
    /// setting.
    reranker: Option<indexer::RerankerConfig>,
    rerank_top: usize,
    /// When set, the abstention curve is measured too, with this answer rule and selector.
    answers: Option<(crate::service::answer::AnswerConfig, Option<indexer::RerankerConfig>)>,
}

pub fn eval_obliqa(
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
    let query_vectors = eval::QueryVectors::default();
    for m in &options.methods {
        if *m == indexer::Method::Hybrid {
            for (i, fusion) in options.fusions.iter().enumerate() {
                let variant = indexer::Retriever { fusion: *fusion, reranker: None, ..retriever.clone() };
                reports.push(eval::evaluate(&variant, &passages, &qs, *m, k, &query_vectors)?);
                // The reranker runs over the first fusion setting (the platform's by default).
                if let Some(reranker) = reranker.as_ref().filter(|_| i == 0) {
                    let reranked = indexer::Retriever { reranker: Some(std::sync::Arc::clone(reranker)), ..variant };
                    reports.push(eval::evaluate(&reranked, &passages, &qs, *m, k, &query_vectors)?);
                }
            }
        } else {
            reports.push(eval::evaluate(&retriever, &passages, &qs, *m, k, &query_vectors)?);
        }
    }
    println!(
        "ObliQA retrieval, {} questions, {} passages, k = {k} (index build {ingest_seconds:.1}s)",
        qs.len(),
        passages.len()
    );
    println!("| method | Recall@{k} | MAP@{k} | nDCG@{k} | MRR@{k} | p50 ms | p95 ms | rerank stage p50 / p95 ms |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &reports {
        let stage = match (r.rerank_p50_ms, r.rerank_p95_ms) {
            (Some(p50), Some(p95)) => format!("{p50:.1} / {p95:.1}"),
            _ => "-".to_owned(),
        };
        println!(
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.1} | {:.1} | {stage} |",
            r.method,
            r.mean.recall,
            r.mean.average_precision,
            r.mean.ndcg,
            r.mean.reciprocal_rank,
            r.latency_p50_ms,
            r.latency_p95_ms
        );
    }
    let curve = match &options.answers {
        Some((answer, selector)) => {
            let selector = match selector {
                Some(config) => {
                    Some(indexer::CrossEncoder::load(config).context("loading the answer-sentence selector")?)
                }
                None => None,
            };
            let answering = indexer::Retriever { reranker: reranker.clone(), ..retriever.clone() };
            let method = if answering.has_dense() { indexer::Method::Hybrid } else { indexer::Method::Bm25 };
            let asks = crate::service::answer_eval::obliqa_asks(
                &answering,
                &passages,
                &qs,
                method,
                answer,
                selector.as_ref().map(|s| s as &dyn indexer::Reranker),
                &mut |done, total| {
                    if done == total || last_report.elapsed().as_secs() >= 10 {
                        eprintln!("eval: answers {done}/{total} ({:.0}s)", started.elapsed().as_secs_f64());
                        last_report = std::time::Instant::now();
                    }
                },
            )?;
            let curve = (crate::service::answer_eval::curve(&asks, answer.min_selector_probability), asks);
            println!(
                "\nAbstention curve: {} questions answered by the extractive composer ({} retrieval, reranker {}), as asked and with the documents of their relevant passages out of reach; selector exception at {}\n",
                qs.len(),
                method.as_str(),
                answering.reranker_status(),
                answer.min_selector_probability
            );
            println!("{}", crate::service::answer_eval::curve_markdown(&curve.0, answer.min_key_coverage));
            Some(curve)
        }
        None => None,
    };
    if let Some(path) = out {
        let json = serde_json::json!({
            "abstention_curve": curve.as_ref().map(|c| &c.0),
            "abstention_asks": curve.as_ref().map(|c| &c.1),
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
    for floor in &options.floors {
        let rows: Vec<_> = reports.iter().filter(|r| floor.applies_to(&r.method)).collect();
        anyhow::ensure!(!rows.is_empty(), "a floor names {:?}, which this run did not evaluate", floor.row);
        for r in rows {
            let (name, got) = if floor.map { ("MAP", r.mean.average_precision) } else { ("Recall", r.mean.recall) };
            anyhow::ensure!(got >= floor.value, "{}: {name}@{k} {got:.4} is below the floor {}", r.method, floor.value);
        }
    }
    Ok(())
}

pub async fn run(command: &EvalCommand, settings: Settings) -> anyhow::Result<()> {
    match command {
        EvalCommand::Run { cases, thresholds, out, no_baseline, generate } => {
            let cases = crate::service::release_gate::Cases::load(cases)?;
            let thresholds = crate::service::release_gate::Thresholds::load(thresholds)?;
            let platform = Platform::open(settings).await?;
            let options = crate::service::release_gate::RunOptions {
                baseline: !no_baseline,
                answer: crate::service::answer::AnswerConfig {
                    min_coverage: platform.settings.answer_min_coverage,
                    min_key_coverage: platform.settings.answer_min_key_coverage,
                    min_selector_probability: platform.settings.answer_min_selector_probability,
                    ..Default::default()
                },
                generate: generate
                    .iter()
                    .map(|k| {
                        serde_json::from_value(serde_json::Value::String(k.clone()))
                            .map_err(|_| anyhow::anyhow!("--generate: unknown case kind {k:?}"))
                    })
                    .collect::<anyhow::Result<_>>()?,
            };
            let report = crate::service::release_gate::run(&platform, &cases, &thresholds, &options).await?;
            let md = crate::service::release_gate::markdown(&report);
            println!("{md}");
            if let Some(dir) = out {
                std::fs::create_dir_all(dir)?;
                std::fs::write(dir.join("release-gate.md"), &md)?;
                std::fs::write(dir.join("release-gate.json"), serde_json::to_string_pretty(&report)?)?;
            }
            anyhow::ensure!(
                report.decision != crate::service::release_gate::Decision::Block,
                "the release gate blocks: {}",
                report.reasons.join("; ")
            );
        }
        EvalCommand::Answers {
            questions,
            tenant,
            groups,
            clearance,
            generate,
            out,
            min_coverage,
            sentence_selector,
            negatives,
        } => {
            let questions = crate::service::answer_eval::Questions::load(questions)?;
            let reader = indexer::Reader {
                tenant: indexer::TenantId::parse(tenant)?,
                groups: groups.iter().map(|g| indexer::GroupName::parse(g.trim())).collect::<Result<_, _>>()?,
                clearance: clearance.parse()?,
                as_of: crate::domain::today(),
                documents: None,
            };
            let platform = Platform::open(settings).await?;
            anyhow::ensure!(
                !*generate || platform.generator.is_some(),
                "--generate needs a [generator] table in the settings file"
            );
            let answer = crate::service::answer::AnswerConfig {
                min_coverage: platform.settings.answer_min_coverage,
                min_key_coverage: platform.settings.answer_min_key_coverage,
                min_selector_probability: platform.settings.answer_min_selector_probability,
                ..Default::default()
            };
            let generator = if *generate { platform.generator.clone() } else { None };
            let selector: Option<std::sync::Arc<dyn indexer::Reranker>> = match sentence_selector.as_deref() {
                None => platform.selector.clone(),
                Some("words") => None,
                Some("reranker") => {
                    Some(platform.reranker.clone().context("--sentence-selector reranker needs the reranker on")?)
                }
                Some(folder) => {
                    let config = platform.settings.cross_encoder_config(folder);
                    Some(std::sync::Arc::new(
                        indexer::CrossEncoder::load(&config).context("loading the sentence selector")?,
                    ))
                }
            };
            let report = crate::service::answer_eval::run(
                &platform, &questions, &reader, &answer, generator, selector, *negatives,
            )
            .await?;
            println!("{}", crate::service::answer_eval::markdown(&report));
            if let Some(path) = out {
                std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
            }
            if let Some(floor) = min_coverage {
                let got = report.extractive.answer_coverage;
                anyhow::ensure!(got >= *floor, "extractive answer coverage {got:.4} is below the floor {floor}");
            }
        }
        EvalCommand::Obligations { sentences, split, out, min_f1 } => {
            eval_obligations(&settings, sentences, split, out.as_deref(), *min_f1)?;
        }
        EvalCommand::Filtered { corpus, questions, queries, k, vector_cache, min_recall } => {
            let config = settings.embedder_config();
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
        EvalCommand::Obliqa {
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
            min_map,
            out,
            answers,
        } => {
            let methods: Vec<indexer::Method> =
                methods.split(',').map(|m| m.trim().parse()).collect::<Result<_, _>>()?;
            let embedder = if methods.iter().any(|m| *m != indexer::Method::Bm25) {
                let config = settings.embedder_config();
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
                .map(|f| Floor::parse(f, false))
                .chain(min_map.iter().map(|f| Floor::parse(f, true)))
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
                answers: answers.then(|| {
                    let answer = crate::service::answer::AnswerConfig {
                        min_coverage: settings.answer_min_coverage,
                        min_key_coverage: settings.answer_min_key_coverage,
                        min_selector_probability: settings.answer_min_selector_probability,
                        ..Default::default()
                    };
                    (answer, settings.answer_selector_config())
                }),
            };
            eval_obliqa(corpus, questions, qrels.as_deref(), &options, embedder, out.as_deref())?;
        }
    }
    Ok(())
}

/// `eval obligations`: the classifier against the rules on one labelled file, as a table.
fn eval_obligations(
    settings: &Settings,
    path: &std::path::Path,
    split: &str,
    out: Option<&std::path::Path>,
    min_f1: Option<f64>,
) -> anyhow::Result<()> {
    use indexer::obligation::{Classification, ObligationDetector, RuleDetector, in_validation_split, read_labelled};
    let keep: fn(&str) -> bool = match split {
        "all" => |_| true,
        "validation" => in_validation_split,
        "train" => |t| !in_validation_split(t),
        other => anyhow::bail!("--split '{other}': expected all, train or validation"),
    };
    let rows: Vec<_> = read_labelled(path)?.into_iter().filter(|r| keep(&r.text)).collect();
    anyhow::ensure!(!rows.is_empty(), "{} has no sentences in split '{split}'", path.display());
    let dir = settings
        .obligation_model_dir()
        .context("the obligation classifier is not set up (run scripts/setup-models.sh) or turned off")?;
    let model = indexer::ObligationModel::load(&settings.onnx_runtime_library(), &dir, settings.onnx_threads)
        .context("loading the obligation classifier")?;
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let gold: Vec<bool> = rows.iter().map(|r| r.obligation).collect();
    let started = std::time::Instant::now();
    let by_model = Classification::of(&model.detect(&texts)?, &gold);
    let model_ms = started.elapsed().as_secs_f64() * 1000.0 / texts.len() as f64;
    let by_rules = Classification::of(&RuleDetector.detect(&texts)?, &gold);
    let cascade = indexer::obligation::CueThenModel(model);
    let started = std::time::Instant::now();
    let by_cascade = Classification::of(&cascade.detect(&texts)?, &gold);
    let cascade_ms = started.elapsed().as_secs_f64() * 1000.0 / texts.len() as f64;
    let model = cascade.0;
    println!("Obligation detection, {} sentences of {} (split {split})\n", rows.len(), path.display());
    println!("| detector | precision | recall | F1 | accuracy |");
    println!("|---|---|---|---|---|");
    for (name, m) in [
        (format!("classifier ({model_ms:.1} ms per sentence)"), by_model),
        ("cue-word rules".into(), by_rules),
        (format!("cue words, then the classifier: what extraction runs ({cascade_ms:.1} ms per sentence)"), by_cascade),
    ] {
        println!("| {name} | {:.4} | {:.4} | {:.4} | {:.4} |", m.precision, m.recall, m.f1, m.accuracy);
    }
    if let Some(out) = out {
        let json = serde_json::json!({
            "sentences": rows.len(), "split": split, "model": model.model_id(),
            "classifier": by_model, "rules": by_rules, "classifier_ms_per_sentence": model_ms,
            "cue_then_classifier": by_cascade, "cue_then_classifier_ms_per_sentence": cascade_ms,
        });
        std::fs::write(out, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if let Some(floor) = min_f1 {
        anyhow::ensure!(by_model.f1 >= floor, "the classifier's F1 {:.4} is below the floor {floor}", by_model.f1);
    }
    Ok(())
}
