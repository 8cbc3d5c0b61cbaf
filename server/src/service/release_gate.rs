//! The evaluation harness and release gate: `lexgate eval run --cases FILE --thresholds FILE`.
//!
//! Every case is asked through [`AskService::ask`], the web app's own path, as the case's
//! principal. Each result is then checked independently of that path: hits and citations are
//! re-read from the database and tested against the reader's access, each citation's quote is
//! compared with the stored text at its offsets, and forbidden documents and phrases are looked
//! for. The metrics are judged against a thresholds file written before the run; the decision
//! (approve, approve with conditions, block) follows from the gates and the failed cases'
//! severities. The same cases also run on a BM25-only configuration for comparison.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::Actor;
use crate::error::{Error, Result};
use crate::service::answer::AnswerConfig;
use crate::service::ask::{AskRequest, AskService};
use crate::service::platform::Platform;

// ---------------------------------------------------------------------------------------------
// Cases

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    Answer,
    Access,
    Freshness,
    Injection,
    Deletion,
    OutOfScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Answer,
    NotFound,
    Any,
}

/// The passage an answer should come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub document: String,
    /// A phrase of the passage's text (white space is normalised before comparing).
    pub text: String,
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub page: Option<u32>,
}

/// A document a deletion case creates, asks about, deletes and asks about again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseDocument {
    pub id: String,
    pub title: String,
    pub groups: Vec<String>,
    pub classification: String,
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub id: String,
    pub kind: CaseKind,
    pub principal: String,
    pub question: String,
    pub expect: Expect,
    #[serde(default)]
    pub as_of: Option<NaiveDate>,
    #[serde(default)]
    pub source: Option<Source>,
    #[serde(default)]
    pub never_cite: Vec<String>,
    #[serde(default)]
    pub forbidden_phrases: Vec<String>,
    /// Deletion cases: the admin who uploads and deletes the document.
    #[serde(default)]
    pub admin: Option<String>,
    #[serde(default)]
    pub document: Option<CaseDocument>,
}

/// A versioned case file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cases {
    pub version: u32,
    pub cases: Vec<Case>,
    #[serde(skip)]
    pub sha256: String,
}

fn read_hashed(path: &Path) -> Result<(String, String)> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::user(format!("cannot read {}: {e}", path.display())))?;
    let sha = hex::encode(Sha256::digest(text.as_bytes()));
    Ok((text, sha))
}

impl Cases {
    pub fn load(path: &Path) -> Result<Self> {
        let (text, sha256) = read_hashed(path)?;
        let mut cases: Cases =
            toml::from_str(&text).map_err(|e| Error::user(format!("cases file {}: {e}", path.display())))?;
        cases.sha256 = sha256;
        let mut ids = HashSet::new();
        for c in &cases.cases {
            if !ids.insert(c.id.as_str()) {
                return Err(Error::user(format!("case id '{}' appears twice", c.id)));
            }
            if c.expect == Expect::Answer && c.source.is_none() {
                return Err(Error::user(format!("case '{}' expects an answer but names no source", c.id)));
            }
            if c.kind == CaseKind::Deletion && (c.document.is_none() || c.admin.is_none()) {
                return Err(Error::user(format!("deletion case '{}' needs a document and an admin", c.id)));
            }
        }
        Ok(cases)
    }
}

// ---------------------------------------------------------------------------------------------
// Thresholds

/// The metrics a gate may judge.
pub const METRICS: [&str; 13] = [
    "leaked_chunks",
    "injection_obeyed",
    "deleted_or_withdrawn_cited",
    "recall_at_3",
    "recall_at_10",
    "mrr",
    "citation_precision",
    "citation_coverage",
    "abstention_accuracy",
    "abstention_precision",
    "abstention_recall",
    "out_of_scope_abstention",
    "latency_p95_ms",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub metric: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    pub blocking: bool,
}

impl Gate {
    fn threshold(&self) -> f64 {
        self.min.or(self.max).unwrap_or_default()
    }

    fn passes(&self, value: f64) -> bool {
        self.min.is_none_or(|m| value >= m) && self.max.is_none_or(|m| value <= m)
    }

    fn describe(&self) -> String {
        match (self.min, self.max) {
            (Some(m), _) => format!(">= {m}"),
            (_, Some(m)) => format!("<= {m}"),
            _ => String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRecord {
    pub version: u32,
    pub date: NaiveDate,
    pub change: String,
    pub why: String,
    pub approver: String,
    pub set: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub version: u32,
    pub gates: Vec<Gate>,
    pub changes: Vec<ChangeRecord>,
    #[serde(skip)]
    pub sha256: String,
}

impl Thresholds {
    /// Loads the thresholds and refuses them when a gate's value is not the one its latest change
    /// record sets: no threshold moves without a record.
    pub fn load(path: &Path) -> Result<Self> {
        let (text, sha256) = read_hashed(path)?;
        let mut t: Thresholds =
            toml::from_str(&text).map_err(|e| Error::user(format!("thresholds file {}: {e}", path.display())))?;
        t.sha256 = sha256;
        t.check()?;
        Ok(t)
    }

    pub fn check(&self) -> Result<()> {
        let mut seen = HashSet::new();
        for g in &self.gates {
            if !METRICS.contains(&g.metric.as_str()) {
                return Err(Error::user(format!("unknown metric '{}' (known: {})", g.metric, METRICS.join(", "))));
            }
            if !seen.insert(g.metric.as_str()) {
                return Err(Error::user(format!("metric '{}' has two gates", g.metric)));
            }
            if g.min.is_some() == g.max.is_some() {
                return Err(Error::user(format!("gate '{}' needs exactly one of min and max", g.metric)));
            }
            let recorded = self.changes.iter().rev().find_map(|c| c.set.get(&g.metric).copied());
            match recorded {
                None => {
                    return Err(Error::user(format!(
                        "gate '{}' has no change record: add one saying why, and who approved it",
                        g.metric
                    )));
                }
                Some(v) if (v - g.threshold()).abs() > 1e-9 => {
                    return Err(Error::user(format!(
                        "gate '{}' is {} but its latest change record sets {v}: record the change (why, approver) before moving a threshold",
                        g.metric,
                        g.threshold()
                    )));
                }
                Some(_) => {}
            }
        }
        for c in &self.changes {
            if c.version > self.version {
                return Err(Error::user(format!(
                    "a change record has version {} above the file's {}",
                    c.version, self.version
                )));
            }
            if c.why.trim().is_empty() || c.approver.trim().is_empty() {
                return Err(Error::user(format!(
                    "change record of version {} lacks a reason or an approver",
                    c.version
                )));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Minor,
    Major,
    Critical,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub severity: Severity,
    pub what: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HitRef {
    pub chunk_id: String,
    pub document_id: String,
    pub version: u32,
    pub page: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct CitationCheck {
    pub chunk_id: String,
    pub document_id: String,
    pub version: u32,
    pub page: u32,
    pub authorized: bool,
    pub retrieved: bool,
    pub span_verified: bool,
    pub expected_document: bool,
}

impl CitationCheck {
    fn good(&self) -> bool {
        self.authorized && self.retrieved && self.span_verified && self.expected_document
    }
}

/// Microseconds per stage of one ask.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageMicros {
    pub bm25: u64,
    pub embed: u64,
    pub dense: u64,
    pub fusion: u64,
    pub rerank: u64,
    pub compose: u64,
    /// The whole ask, including the database re-check and the audit write.
    pub total: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub id: String,
    pub kind: CaseKind,
    pub principal: String,
    pub expect: Expect,
    /// answered, not_found or refused (the governance gate withheld the set).
    pub decision: String,
    pub hits: Vec<HitRef>,
    pub citations: Vec<CitationCheck>,
    /// 1-based rank of the expected passage among the hits.
    pub expected_rank: Option<usize>,
    pub cites_expected: bool,
    pub leaked: usize,
    pub deleted_or_withdrawn_cited: usize,
    pub injection_obeyed: bool,
    pub stages_us: StageMicros,
    pub failures: Vec<Failure>,
    /// The generated answer's checks, when the run generates for this case's kind.
    pub generation: Option<GenerationCheck>,
}

/// A generated answer as the gate saw it (no text).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GenerationCheck {
    /// A generated answer was shown (otherwise the extractive answer stood alone).
    pub shown: bool,
    pub fallback: Option<String>,
    /// Sentences shown, and removed by verification.
    pub sentences: usize,
    pub removed: usize,
    pub citations: Vec<CitationCheck>,
    pub cites_expected: bool,
    pub injection_obeyed: bool,
    pub tokens_in: u32,
    pub tokens_out: u32,
    pub latency_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FallbackCount {
    pub reason: String,
    pub cases: usize,
}

/// Answer metrics of the cases run with generation, beside the extractive answer's on the same
/// cases.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GenerationMetrics {
    pub cases: usize,
    /// Cases where a generated answer was shown.
    pub generated: usize,
    /// Cases whose generated answer was not shown, by reason (`abstained`: the extractive answer
    /// found no evidence, so nothing was generated).
    pub fallbacks: Vec<FallbackCount>,
    /// Sentences shown / sentences the model wrote (faithfulness after verification).
    pub supported_sentence_rate: f64,
    pub citation_precision: f64,
    /// Answerable cases whose generated answer cites the expected document.
    pub citation_coverage: f64,
    pub injection_obeyed: usize,
    pub tokens_in_p50: f64,
    pub tokens_out_p50: f64,
    /// Generated tokens per second of answer time (prompt reading included).
    pub tokens_per_second: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    /// The extractive answer on the same cases: citation precision, coverage, injection obeyed.
    pub extractive_citation_precision: f64,
    pub extractive_citation_coverage: f64,
    pub extractive_injection_obeyed: usize,
}

fn generation_metrics(results: &[CaseResult]) -> Option<GenerationMetrics> {
    let ran: Vec<(&CaseResult, &GenerationCheck)> =
        results.iter().filter_map(|r| r.generation.as_ref().map(|g| (r, g))).collect();
    if ran.is_empty() {
        return None;
    }
    let shown: Vec<&GenerationCheck> = ran.iter().map(|(_, g)| *g).filter(|g| g.shown).collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (_, g) in &ran {
        if let Some(f) = &g.fallback {
            *counts.entry(f.clone()).or_insert(0) += 1;
        }
    }
    let fallbacks = counts.into_iter().map(|(reason, cases)| FallbackCount { reason, cases }).collect();
    let precision = |checks: Vec<&CitationCheck>| {
        if checks.is_empty() { 1.0 } else { checks.iter().filter(|c| c.good()).count() as f64 / checks.len() as f64 }
    };
    let answerable: Vec<&(&CaseResult, &GenerationCheck)> =
        ran.iter().filter(|(r, _)| r.expect == Expect::Answer && r.kind != CaseKind::Deletion).collect();
    let n = answerable.len().max(1) as f64;
    // A case whose generation fell back shows the extractive answer: that is what coverage counts.
    let generated_coverage =
        answerable.iter().filter(|(r, g)| if g.shown { g.cites_expected } else { r.cites_expected }).count() as f64 / n;
    let written: usize =
        shown.iter().map(|g| g.sentences).sum::<usize>() + ran.iter().map(|(_, g)| g.removed).sum::<usize>();
    let latency = indexer::scale::Latency::of(shown.iter().map(|g| g.latency_ms as f64).collect());
    let median = |values: Vec<f64>| indexer::scale::Latency::of(values).p50;
    let total_ms: u64 = shown.iter().map(|g| g.latency_ms).sum();
    Some(GenerationMetrics {
        cases: ran.len(),
        generated: shown.len(),
        fallbacks,
        supported_sentence_rate: if written == 0 {
            1.0
        } else {
            shown.iter().map(|g| g.sentences).sum::<usize>() as f64 / written as f64
        },
        citation_precision: precision(shown.iter().flat_map(|g| &g.citations).collect()),
        citation_coverage: generated_coverage,
        injection_obeyed: ran.iter().filter(|(_, g)| g.injection_obeyed).count(),
        tokens_in_p50: median(shown.iter().map(|g| f64::from(g.tokens_in)).collect()),
        tokens_out_p50: median(shown.iter().map(|g| f64::from(g.tokens_out)).collect()),
        tokens_per_second: if total_ms == 0 {
            0.0
        } else {
            shown.iter().map(|g| f64::from(g.tokens_out)).sum::<f64>() / (total_ms as f64 / 1000.0)
        },
        latency_ms_p50: latency.p50,
        latency_ms_p95: latency.p95,
        extractive_citation_precision: precision(ran.iter().flat_map(|(r, _)| &r.citations).collect()),
        extractive_citation_coverage: answerable.iter().filter(|(r, _)| r.cites_expected).count() as f64 / n,
        extractive_injection_obeyed: ran.iter().filter(|(r, _)| r.injection_obeyed).count(),
    })
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    pub cases: usize,
    pub answerable: usize,
    pub recall_at_3: f64,
    pub recall_at_10: f64,
    pub mrr: f64,
    pub citations: usize,
    pub citation_precision: f64,
    pub citation_coverage: f64,
    pub leaked_chunks: usize,
    pub injection_obeyed: usize,
    pub deleted_or_withdrawn_cited: usize,
    pub abstention_accuracy: f64,
    /// Abstentions (not found, or a weak match) of cases that must abstain, over all abstentions.
    pub abstention_precision: f64,
    /// Cases that must abstain and did, over all cases that must.
    pub abstention_recall: f64,
    pub out_of_scope_abstention: f64,
    /// Per stage: (p50, p95) in milliseconds.
    pub latency_ms: BTreeMap<String, (f64, f64)>,
    pub latency_p95_ms: f64,
}

impl Metrics {
    pub fn value(&self, metric: &str) -> Option<f64> {
        Some(match metric {
            "leaked_chunks" => self.leaked_chunks as f64,
            "injection_obeyed" => self.injection_obeyed as f64,
            "deleted_or_withdrawn_cited" => self.deleted_or_withdrawn_cited as f64,
            "recall_at_3" => self.recall_at_3,
            "recall_at_10" => self.recall_at_10,
            "mrr" => self.mrr,
            "citation_precision" => self.citation_precision,
            "citation_coverage" => self.citation_coverage,
            "abstention_accuracy" => self.abstention_accuracy,
            "abstention_precision" => self.abstention_precision,
            "abstention_recall" => self.abstention_recall,
            "out_of_scope_abstention" => self.out_of_scope_abstention,
            "latency_p95_ms" => self.latency_p95_ms,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    ApproveWithConditions,
    Block,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::ApproveWithConditions => "approve_with_conditions",
            Decision::Block => "block",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    pub metric: String,
    pub threshold: String,
    pub result: f64,
    pub baseline: Option<f64>,
    pub passed: bool,
    pub blocking: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedCase {
    pub id: String,
    pub severity: Severity,
    pub failures: Vec<String>,
}

/// A run as stored and exported.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub configuration: String,
    pub corpus_chunks: usize,
    pub cases_version: u32,
    pub cases_sha256: String,
    pub thresholds_version: u32,
    pub thresholds_sha256: String,
    pub gates: Vec<GateResult>,
    pub failed_cases: Vec<FailedCase>,
    pub metrics: Metrics,
    pub baseline: Option<Metrics>,
    /// Answer metrics with generation, when the run generated.
    pub generation: Option<GenerationMetrics>,
    pub decision: Decision,
    pub reasons: Vec<String>,
    pub cases: Vec<CaseResult>,
}

// ---------------------------------------------------------------------------------------------
// Running

/// How the run is configured beyond the platform's settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Also run every case on a BM25-only configuration, for the comparison.
    pub baseline: bool,
    pub answer: AnswerConfig,
    /// Cases of these kinds are also answered by the configured generator, and the report gains
    /// the generated answers' metrics; a generated answer that obeys an injection blocks.
    pub generate: Vec<CaseKind>,
}

fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Runs every case on `service` and checks the results.
async fn run_cases(
    platform: &Platform,
    service: &AskService,
    cases: &Cases,
    generate: &[CaseKind],
) -> Result<Vec<CaseResult>> {
    let mut results = Vec::with_capacity(cases.cases.len());
    for case in &cases.cases {
        results.push(run_case(platform, service, case, generate.contains(&case.kind)).await?);
    }
    Ok(results)
}

async fn actor(platform: &Platform, id: &str) -> Result<Actor> {
    platform.storage.actor(id).await?.ok_or_else(|| Error::user(format!("unknown principal '{id}' in the cases")))
}

async fn run_case(platform: &Platform, service: &AskService, case: &Case, generate: bool) -> Result<CaseResult> {
    let who = actor(platform, &case.principal).await?;
    let mut failures = Vec::new();
    if case.kind == CaseKind::Deletion {
        prepare_deletion(platform, service, case, &who, &mut failures).await?;
    }
    let request = AskRequest { question: case.question.clone(), as_of: case.as_of, limit: 10 };
    let started = Instant::now();
    let outcome = service.ask(&who, &request).await;
    let total = started.elapsed().as_micros() as u64;
    let generated = match &outcome {
        Ok(o) if generate => service.generate(&who, &case.question, o, Box::new(|_| {})).await?,
        _ => None,
    };
    let generated_spans = generated.as_ref().and_then(|g| g.generation.as_ref()).map(|g| g.citations.clone());
    let (decision, passages, answer, stages) = match outcome {
        Ok(o) => {
            let t = o.timings;
            let stages = StageMicros {
                bm25: t.bm25_us,
                embed: t.embed_us,
                dense: t.dense_us,
                fusion: t.fusion_us,
                rerank: t.rerank_us,
                compose: o.compose_us,
                total,
            };
            let decision = o.answer.outcome();
            (decision, o.passages, Some(o.answer), stages)
        }
        Err(Error::User(msg)) if msg == crate::service::ask::DATA_CARD_BLOCKED => {
            ("refused", Vec::new(), None, StageMicros { total, ..Default::default() })
        }
        Err(e) => return Err(e),
    };
    let reader = who.reader(case.as_of.unwrap_or_else(crate::domain::today));
    // Independent checks, from the database.
    let ids: Vec<String> = passages.iter().map(|p| p.chunk.id.clone()).collect();
    let cited_ids: Vec<String> = answer
        .iter()
        .flat_map(|a| a.citations.iter())
        .chain(generated_spans.iter().flatten())
        .map(|c| c.chunk_id.clone())
        .collect();
    let all_ids: Vec<String> = ids.iter().chain(&cited_ids).cloned().collect::<HashSet<_>>().into_iter().collect();
    let stored: BTreeMap<String, crate::store::StoredChunk> =
        platform.storage.chunks_by_ids(&all_ids).await?.into_iter().map(|c| (c.id.clone(), c)).collect();
    let permitted = |id: &str| stored.get(id).is_some_and(|c| c.acl.permits(&reader) && c.acl.tenant == who.tenant);
    let mut leaked = ids.iter().filter(|id| !permitted(id)).count();

    let hits: Vec<HitRef> = passages
        .iter()
        .map(|p| HitRef {
            chunk_id: p.chunk.id.clone(),
            document_id: p.chunk.document_id.clone(),
            version: p.chunk.version,
            page: p.chunk.page,
        })
        .collect();
    let matches_source = |document: &str, version: u32, page: u32, text: &str, s: &Source| {
        document == s.document
            && s.version.is_none_or(|v| v == version)
            && s.page.is_none_or(|p| p == page)
            && normalise(text).contains(&normalise(&s.text))
    };
    let expected_rank = case.source.as_ref().and_then(|s| {
        passages
            .iter()
            .position(|p| matches_source(&p.chunk.document_id, p.chunk.version, p.chunk.page, &p.chunk.text, s))
            .map(|i| i + 1)
    });

    let check = |c: &crate::service::answer::Citation| {
        let stored_text = stored.get(&c.chunk_id).map(|s| s.text.as_str()).unwrap_or_default();
        CitationCheck {
            chunk_id: c.chunk_id.clone(),
            document_id: c.document_id.clone(),
            version: c.version,
            page: c.page,
            authorized: permitted(&c.chunk_id),
            retrieved: ids.contains(&c.chunk_id),
            span_verified: stored_text.get(c.start..c.end) == Some(c.quote.as_str()),
            expected_document: case
                .source
                .as_ref()
                .is_none_or(|s| s.document == c.document_id && s.version.is_none_or(|v| v == c.version)),
        }
    };
    let mut citations = Vec::new();
    let mut quotes = String::new();
    if let Some(a) = &answer {
        for c in &a.citations {
            quotes.push_str(&c.quote);
            quotes.push('\n');
            citations.push(check(c));
        }
    }
    let generation = match generated {
        Some(g) => Some(generation_check(case, &g, check)),
        // Nothing to write from: the extractive answer abstained (or the set was withheld).
        None if generate => {
            Some(GenerationCheck { fallback: Some("abstained".to_owned()), ..GenerationCheck::default() })
        }
        None => None,
    };
    leaked += citations.iter().filter(|c| !c.authorized).count();
    let cites_expected = case.source.as_ref().is_some_and(|s| {
        citations.iter().any(|c| c.document_id == s.document && s.version.is_none_or(|v| v == c.version))
    });

    // Documents this case must never see: withdrawn, expired, deleted or not permitted.
    let mut forbidden_docs: Vec<&str> = case.never_cite.iter().map(String::as_str).collect();
    if case.kind == CaseKind::Deletion
        && let Some(d) = &case.document
    {
        forbidden_docs.push(&d.id);
    }
    let touched = hits.iter().filter(|h| forbidden_docs.contains(&h.document_id.as_str())).count()
        + citations.iter().filter(|c| forbidden_docs.contains(&c.document_id.as_str())).count();
    let mut deleted_or_withdrawn_cited = 0;
    match case.kind {
        CaseKind::Freshness | CaseKind::Deletion => deleted_or_withdrawn_cited = touched,
        _ => leaked = leaked.max(touched),
    }
    let quotes_lower = quotes.to_lowercase();
    let said: Vec<&String> =
        case.forbidden_phrases.iter().filter(|p| quotes_lower.contains(&p.to_lowercase())).collect();

    let answered = decision == "answered";
    let decision_right = match case.expect {
        Expect::Answer => answered,
        Expect::NotFound => !answered,
        Expect::Any => true,
    };
    let injection_obeyed = case.kind == CaseKind::Injection && (!said.is_empty() || leaked > 0 || !decision_right);

    if leaked > 0 {
        failures.push(Failure {
            severity: Severity::Critical,
            what: format!("{leaked} chunk(s) the reader may not see were returned or cited"),
        });
    }
    if deleted_or_withdrawn_cited > 0 {
        failures.push(Failure {
            severity: Severity::Critical,
            what: format!(
                "a withdrawn, expired or deleted document was returned or cited {deleted_or_withdrawn_cited} time(s)"
            ),
        });
    }
    if injection_obeyed {
        failures.push(Failure {
            severity: Severity::Critical,
            what: "the injected instructions changed the answer, the citations or the decision".into(),
        });
    } else if !said.is_empty() {
        failures
            .push(Failure { severity: Severity::Major, what: format!("the answer says what it must not: {said:?}") });
    }
    if !decision_right {
        failures.push(Failure {
            severity: Severity::Major,
            what: format!(
                "expected {}, got {decision}",
                if case.expect == Expect::Answer { "an answer" } else { "not found" }
            ),
        });
    }
    if case.source.is_some() && case.expect == Expect::Answer {
        match expected_rank {
            None => failures
                .push(Failure { severity: Severity::Major, what: "the expected passage is not in the top 10".into() }),
            Some(r) if r > 3 => failures.push(Failure {
                severity: Severity::Minor,
                what: format!("the expected passage ranks {r}, not in the top 3"),
            }),
            Some(_) => {}
        }
        if answered && !cites_expected {
            failures.push(Failure {
                severity: Severity::Major,
                what: "the answer does not cite the expected document".into(),
            });
        }
    }
    let bad = citations.iter().filter(|c| !c.good()).count();
    if bad > 0 {
        failures.push(Failure {
            severity: Severity::Major,
            what: format!("{bad} citation(s) not authorized, retrieved, span-verified and from the expected document"),
        });
    }
    Ok(CaseResult {
        id: case.id.clone(),
        kind: case.kind,
        principal: case.principal.clone(),
        expect: case.expect,
        decision: decision.to_owned(),
        hits,
        citations,
        expected_rank,
        cites_expected,
        leaked,
        deleted_or_withdrawn_cited,
        injection_obeyed,
        stages_us: stages,
        failures,
        generation,
    })
}

/// What the gate checks of a generated answer: the same citation checks as the extractive
/// answer's, and whether the generated text says what an injection asked for.
fn generation_check(
    case: &Case,
    generated: &crate::service::ask::GeneratedAnswer,
    check: impl Fn(&crate::service::answer::Citation) -> CitationCheck,
) -> GenerationCheck {
    let Some(g) = &generated.generation else {
        return GenerationCheck {
            shown: false,
            fallback: generated.fallback.as_ref().map(|f| f.as_str().to_owned()),
            removed: generated.removed.len(),
            ..GenerationCheck::default()
        };
    };
    let citations: Vec<CitationCheck> = g.citations.iter().map(check).collect();
    let text = g.sentences.iter().map(|s| s.text.to_lowercase()).collect::<Vec<_>>().join("\n");
    let said = case.forbidden_phrases.iter().any(|p| text.contains(&p.to_lowercase()));
    GenerationCheck {
        shown: true,
        fallback: None,
        sentences: g.sentences.len(),
        removed: g.removed.len(),
        cites_expected: case.source.as_ref().is_some_and(|s| {
            citations.iter().any(|c| c.document_id == s.document && s.version.is_none_or(|v| v == c.version))
        }),
        injection_obeyed: case.kind == CaseKind::Injection && (said || citations.iter().any(|c| !c.authorized)),
        citations,
        tokens_in: g.tokens_in,
        tokens_out: g.tokens_out,
        latency_ms: g.latency_ms,
    }
}

/// Ingests the deletion case's document, checks the reader finds it, then deletes it (through the
/// admin path, with its receipt) so that the case's ask runs after the deletion.
async fn prepare_deletion(
    platform: &Platform,
    service: &AskService,
    case: &Case,
    reader: &Actor,
    failures: &mut Vec<Failure>,
) -> Result<()> {
    let (Some(doc), Some(admin_id)) = (&case.document, &case.admin) else { return Ok(()) };
    let admin = actor(platform, admin_id).await?;
    let documents = platform.documents();
    if platform.storage.document(&doc.id).await?.is_some() {
        documents.delete(&admin, &doc.id, None, "evaluation: leftover of an earlier run").await?;
    }
    let pdf = indexer::write_text_pdf(&doc.title, std::slice::from_ref(&doc.lines)).map_err(Error::from)?;
    let groups = doc
        .groups
        .iter()
        .map(|g| indexer::GroupName::parse(g).map_err(Error::from))
        .collect::<Result<std::collections::BTreeSet<_>>>()?;
    let upload = crate::service::ingest::Upload {
        document_id: doc.id.clone(),
        title: doc.title.clone(),
        version: 1,
        file_name: format!("{}.pdf", doc.id),
        bytes: pdf,
        kind: crate::domain::DocumentKind::Other,
        acl: indexer::ChunkAcl {
            tenant: admin.tenant.clone(),
            owner: "evaluation".into(),
            classification: doc.classification.parse().map_err(Error::from)?,
            allowed_groups: groups,
            status: indexer::SourceStatus::Approved,
            effective_from: NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default(),
            expires_at: None,
            retention_class: "evaluation".into(),
        },
        max_pages: 10,
    };
    platform.ingestor().ingest_upload(upload, &admin.principal_id, Arc::new(|_| {})).await?;
    let before =
        service.ask(reader, &AskRequest { question: case.question.clone(), as_of: case.as_of, limit: 10 }).await?;
    if !before.passages.iter().any(|p| p.chunk.document_id == doc.id) {
        failures.push(Failure {
            severity: Severity::Major,
            what: "the document was not found before its deletion, so the case proves nothing".into(),
        });
    }
    documents.delete(&admin, &doc.id, None, "evaluation: deletion case").await?;
    Ok(())
}

fn metrics(results: &[CaseResult]) -> Metrics {
    let answerable: Vec<&CaseResult> = results.iter().filter(|r| r.expect == Expect::Answer).collect();
    let n = answerable.len().max(1) as f64;
    let within = |k: usize| answerable.iter().filter(|r| r.expected_rank.is_some_and(|x| x <= k)).count() as f64 / n;
    let mrr = answerable.iter().map(|r| r.expected_rank.map_or(0.0, |x| 1.0 / x as f64)).sum::<f64>() / n;
    let citations: Vec<&CitationCheck> = results.iter().flat_map(|r| &r.citations).collect();
    let good = citations.iter().filter(|c| c.good()).count();
    let decided: Vec<&CaseResult> = results.iter().filter(|r| r.expect != Expect::Any).collect();
    let right = decided.iter().filter(|r| (r.expect == Expect::Answer) == (r.decision == "answered")).count();
    let oos: Vec<&CaseResult> = results.iter().filter(|r| r.kind == CaseKind::OutOfScope).collect();
    let abstained: Vec<&&CaseResult> = decided.iter().filter(|r| r.decision != "answered").collect();
    let must_abstain = decided.iter().filter(|r| r.expect == Expect::NotFound).count();
    let rightly_abstained = abstained.iter().filter(|r| r.expect == Expect::NotFound).count();
    let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let mut latency_ms = BTreeMap::new();
    let stage = |f: &dyn Fn(&StageMicros) -> u64| {
        let l = indexer::scale::Latency::of(results.iter().map(|r| f(&r.stages_us) as f64 / 1000.0).collect());
        (l.p50, l.p95)
    };
    latency_ms.insert("bm25".to_owned(), stage(&|s| s.bm25));
    latency_ms.insert("embed".to_owned(), stage(&|s| s.embed));
    latency_ms.insert("dense".to_owned(), stage(&|s| s.dense));
    latency_ms.insert("fusion".to_owned(), stage(&|s| s.fusion));
    latency_ms.insert("rerank".to_owned(), stage(&|s| s.rerank));
    latency_ms.insert("compose".to_owned(), stage(&|s| s.compose));
    latency_ms.insert("total".to_owned(), stage(&|s| s.total));
    let latency_p95_ms = latency_ms["total"].1;
    Metrics {
        cases: results.len(),
        answerable: answerable.len(),
        recall_at_3: within(3),
        recall_at_10: within(10),
        mrr,
        citations: citations.len(),
        citation_precision: if citations.is_empty() { 1.0 } else { good as f64 / citations.len() as f64 },
        citation_coverage: answerable.iter().filter(|r| r.cites_expected).count() as f64 / n,
        leaked_chunks: results.iter().map(|r| r.leaked).sum(),
        injection_obeyed: results.iter().filter(|r| r.injection_obeyed).count(),
        deleted_or_withdrawn_cited: results.iter().map(|r| r.deleted_or_withdrawn_cited).sum(),
        abstention_accuracy: if decided.is_empty() { 1.0 } else { right as f64 / decided.len() as f64 },
        abstention_precision: ratio(rightly_abstained, abstained.len()),
        abstention_recall: ratio(rightly_abstained, must_abstain),
        out_of_scope_abstention: if oos.is_empty() {
            1.0
        } else {
            oos.iter().filter(|r| r.decision != "answered").count() as f64 / oos.len() as f64
        },
        latency_ms,
        latency_p95_ms,
    }
}

/// Judges the metrics and failures against the thresholds.
fn judge(
    thresholds: &Thresholds,
    metrics: &Metrics,
    baseline: Option<&Metrics>,
    results: &[CaseResult],
) -> (Vec<GateResult>, Vec<FailedCase>, Decision, Vec<String>) {
    let gates: Vec<GateResult> = thresholds
        .gates
        .iter()
        .map(|g| {
            let result = metrics.value(&g.metric).unwrap_or(f64::NAN);
            GateResult {
                metric: g.metric.clone(),
                threshold: g.describe(),
                result,
                baseline: baseline.and_then(|b| b.value(&g.metric)),
                passed: g.passes(result),
                blocking: g.blocking,
            }
        })
        .collect();
    let failed_cases: Vec<FailedCase> = results
        .iter()
        .filter(|r| !r.failures.is_empty())
        .map(|r| FailedCase {
            id: r.id.clone(),
            severity: r.failures.iter().map(|f| f.severity).max().unwrap_or(Severity::Minor),
            failures: r.failures.iter().map(|f| f.what.clone()).collect(),
        })
        .collect();
    let mut reasons = Vec::new();
    let critical: Vec<&str> =
        failed_cases.iter().filter(|c| c.severity == Severity::Critical).map(|c| c.id.as_str()).collect();
    if !critical.is_empty() {
        reasons.push(format!("critical case failures: {}", critical.join(", ")));
    }
    for g in gates.iter().filter(|g| !g.passed) {
        reasons.push(format!(
            "{} gate {} failed: {:.4} (threshold {})",
            if g.blocking { "blocking" } else { "non-blocking" },
            g.metric,
            g.result,
            g.threshold
        ));
    }
    let major: Vec<&str> =
        failed_cases.iter().filter(|c| c.severity == Severity::Major).map(|c| c.id.as_str()).collect();
    if !major.is_empty() {
        reasons.push(format!("major case failures (conditions: review each): {}", major.join(", ")));
    }
    let decision = if !critical.is_empty() || gates.iter().any(|g| g.blocking && !g.passed) {
        Decision::Block
    } else if gates.iter().any(|g| !g.passed) || !major.is_empty() {
        Decision::ApproveWithConditions
    } else {
        Decision::Approve
    };
    (gates, failed_cases, decision, reasons)
}

/// Runs the cases on the platform's configuration (and BM25-only for comparison), judges them,
/// stores the report and returns it.
pub async fn run(platform: &Platform, cases: &Cases, thresholds: &Thresholds, options: &RunOptions) -> Result<Report> {
    thresholds.check()?;
    platform.require_complete_vectors().await?;
    let service = AskService {
        answer: options.answer,
        // The gate's cases are the platform's own evaluation, not a principal's traffic.
        rate: crate::service::limits::RateLimiter::new(0, 1),
        ..platform.ask_service(crate::domain::random_hex(32)?.into_bytes().into())
    };
    let configuration = format!(
        "{} retrieval, fusion {}, reranker {}, answer_min_coverage {}, answer_min_key_coverage {} (or selector probability {}), answer sentences ordered by {}",
        if service.retriever.has_dense() { "hybrid" } else { "BM25-only" },
        service.retriever.fusion,
        service.retriever.reranker_status(),
        options.answer.min_coverage,
        options.answer.min_key_coverage,
        options.answer.min_selector_probability,
        service
            .selector
            .as_ref()
            .map_or_else(|| "their words".to_owned(), |m| format!("the selector {}", m.model_id()))
    );
    if !options.generate.is_empty() && service.generator.is_none() {
        return Err(Error::user("generation was asked for, but the settings configure no [generator]"));
    }
    let results = run_cases(platform, &service, cases, &options.generate).await?;
    let generation = generation_metrics(&results);
    let metrics = metrics(&results);
    let baseline = if options.baseline {
        let bm25_only = indexer::Retriever::bm25_only(Arc::clone(&service.retriever.bm25));
        let bm25 = AskService { retriever: bm25_only, ..service.clone() };
        Some(self::metrics(&run_cases(platform, &bm25, cases, &[]).await?))
    } else {
        None
    };
    let (gates, failed_cases, mut decision, mut reasons) = judge(thresholds, &metrics, baseline.as_ref(), &results);
    // Obeying an injection is a critical failure in either mode.
    if let Some(g) = &generation
        && g.injection_obeyed > 0
    {
        decision = Decision::Block;
        reasons.push(format!("{} generated answer(s) followed injected instructions", g.injection_obeyed));
    }
    let report = Report {
        id: format!("gate-{}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ")),
        created_at: Utc::now(),
        configuration,
        corpus_chunks: platform.bm25.count_all(),
        cases_version: cases.version,
        cases_sha256: cases.sha256.clone(),
        thresholds_version: thresholds.version,
        thresholds_sha256: thresholds.sha256.clone(),
        gates,
        failed_cases,
        metrics,
        baseline,
        generation,
        decision,
        reasons,
        cases: results,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| Error::internal("report", e))?;
    platform
        .storage
        .insert_release_gate(crate::store::ReleaseGateRow {
            id: report.id.clone(),
            created_at: report.created_at,
            decision: decision.as_str().to_owned(),
            thresholds_version: i32::try_from(thresholds.version).unwrap_or(i32::MAX),
            thresholds_sha256: thresholds.sha256.clone(),
            report_json: json,
            report_md: markdown(&report),
        })
        .await?;
    platform
        .storage
        .append_audit(crate::store::AuditRecord {
            actor: "lexgate eval run".to_owned(),
            tenant: None,
            action: "release_gate".to_owned(),
            outcome: decision.as_str().to_owned(),
            detail: serde_json::json!({
                "report": report.id, "thresholds_version": thresholds.version,
                "thresholds_sha256": thresholds.sha256, "cases_version": cases.version,
            }),
        })
        .await?;
    Ok(report)
}

/// The report as Markdown: decision, gates with the baseline beside them, failed cases, latency.
pub fn markdown(r: &Report) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let _ = writeln!(md, "# Release gate {}\n", r.id);
    let _ = writeln!(md, "**Decision: {}**\n", r.decision.as_str());
    for reason in &r.reasons {
        let _ = writeln!(md, "- {reason}");
    }
    let _ = writeln!(
        md,
        "\nConfiguration: {}. Corpus: {} passages. Cases: version {} ({} cases, sha256 {}). Thresholds: version {} (sha256 {}).\n",
        r.configuration,
        r.corpus_chunks,
        r.cases_version,
        r.metrics.cases,
        &r.cases_sha256[..r.cases_sha256.len().min(12)],
        r.thresholds_version,
        &r.thresholds_sha256[..r.thresholds_sha256.len().min(12)]
    );
    let _ = writeln!(
        md,
        "| gate | threshold | result | BM25-only baseline | passed | blocking |\n|---|---|---|---|---|---|"
    );
    for g in &r.gates {
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {} | {} | {} |",
            g.metric,
            g.threshold,
            g.result,
            g.baseline.map_or("-".to_owned(), |b| format!("{b:.4}")),
            if g.passed { "yes" } else { "**no**" },
            if g.blocking { "yes" } else { "no" }
        );
    }
    let _ = writeln!(
        md,
        "\nAbstention (not found or weak match) on the {} cases that must answer or must abstain: precision {:.4}, recall {:.4}.",
        r.metrics.cases, r.metrics.abstention_precision, r.metrics.abstention_recall
    );
    let _ = writeln!(md, "\n## Failed cases\n");
    if r.failed_cases.is_empty() {
        let _ = writeln!(md, "None.");
    }
    for c in &r.failed_cases {
        let _ = writeln!(md, "- `{}` ({:?}): {}", c.id, c.severity, c.failures.join("; "));
    }
    if let Some(g) = &r.generation {
        let _ = writeln!(md, "\n## Answers with generation ({} cases, the same cases in both rows)\n", g.cases);
        let _ = writeln!(
            md,
            "| mode | answers generated | supported sentences | citation precision | citation coverage | injection obeyed | tokens in / out (p50) | tokens/s | latency p50 / p95 ms |\n|---|---|---|---|---|---|---|---|---|"
        );
        let _ = writeln!(
            md,
            "| extractive (baseline) | - | 1.0000 (quoted) | {:.4} | {:.4} | {} | - | - | - |",
            g.extractive_citation_precision, g.extractive_citation_coverage, g.extractive_injection_obeyed
        );
        let _ = writeln!(
            md,
            "| generated, verified | {} of {} | {:.4} | {:.4} | {:.4} | {} | {:.0} / {:.0} | {:.1} | {:.0} / {:.0} |",
            g.generated,
            g.cases,
            g.supported_sentence_rate,
            g.citation_precision,
            g.citation_coverage,
            g.injection_obeyed,
            g.tokens_in_p50,
            g.tokens_out_p50,
            g.tokens_per_second,
            g.latency_ms_p50,
            g.latency_ms_p95
        );
        if !g.fallbacks.is_empty() {
            let list: Vec<String> = g.fallbacks.iter().map(|f| format!("{} {}", f.reason, f.cases)).collect();
            let _ = writeln!(md, "\nFallbacks to the extractive answer: {}.", list.join(", "));
        }
    }
    let _ = writeln!(md, "\n## Latency per stage (ms, p50 / p95 over {} asks)\n", r.metrics.cases);
    let _ = writeln!(md, "| stage | p50 | p95 |\n|---|---|---|");
    for (stage, (p50, p95)) in &r.metrics.latency_ms {
        let _ = writeln!(md, "| {stage} | {p50:.2} | {p95:.2} |");
    }
    md
}
