//! `lexgate bench ask`: N concurrent askers against the running app over HTTP (`/api/v1/ask`
//! with a temporary service token), reporting the asks shed with 429, end-to-end latency
//! percentiles and throughput of the answered ones and the time of each stage of the ask path,
//! with the corpus size beside every figure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::domain::Permission;
use crate::error::{Error, Result};
use crate::http::app::Application;
use crate::service::Platform;
use crate::service::tokens::TokenRequest;

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
    let l = crate::service::Latency::of(v);
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
    let admin =
        platform.actor(admin_id).await?.ok_or_else(|| Error::user(format!("unknown principal '{admin_id}'")))?;
    let name = format!("bench-{}", crate::domain::random_hex(4)?);
    let request = TokenRequest {
        name,
        scopes: vec![Permission::Ask],
        groups: admin.groups.clone(),
        clearance: admin.clearance,
        valid_days: 1,
    };
    let (token, info) = platform.tokens().issue(&admin, &request).await?;
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
    platform.tokens().revoke(&admin, &info.id).await?;
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

/// `lexgate bench ask`: the ask-path benchmark with the questions of an evaluation case file.
pub async fn ask_command(
    settings: crate::settings::Settings,
    principal: &str,
    cases: &std::path::Path,
    concurrency: &[usize],
    requests: usize,
    json: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let cases = crate::service::release_gate::Cases::load(cases)?;
    let mut questions: Vec<String> = cases.cases.iter().map(|c| c.question.clone()).collect();
    questions.dedup();
    let platform = Platform::open(settings).await?;
    let report = ask(&platform, principal, questions, concurrency, requests).await?;
    println!("{}", markdown(&report));
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
