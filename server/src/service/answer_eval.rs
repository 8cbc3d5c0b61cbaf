//! Answer quality on questions with a known answering provision (`lexgate eval answers`): for each
//! question, whether retrieval ranks an answering passage, and whether the extractive answer and,
//! when a generator is configured, the generated answer cite one. The operator's evaluation of a
//! document set: it reads as the reader given on the command line, without the data-card gate.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::service::Platform;
use crate::service::answer::{AnswerConfig, Citation, Passage};
use crate::service::generate::Generator;

/// A question and the provision that answers it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub id: String,
    pub document: String,
    /// "Article 19": a passage whose heading path starts with it answers.
    pub article: String,
    pub question: String,
    /// A phrase of the answering text: a passage of `document` containing it answers.
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Questions {
    pub version: u32,
    pub questions: Vec<Question>,
}

impl Questions {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::user(format!("cannot read the questions {}: {e}", path.display())))?;
        let questions: Self =
            toml::from_str(&text).map_err(|e| Error::user(format!("questions {}: {e}", path.display())))?;
        if questions.questions.is_empty() {
            return Err(Error::user(format!("questions {}: no questions", path.display())));
        }
        Ok(questions)
    }
}

/// Lower case, ligatures spelled out, white space collapsed: PDF text and a typed phrase compare.
fn normalise(s: &str) -> String {
    let spelled = s
        .replace('\u{FB00}', "ff")
        .replace('\u{FB01}', "fi")
        .replace('\u{FB02}', "fl")
        .replace('\u{FB03}', "ffi")
        .replace('\u{FB04}', "ffl")
        .to_lowercase();
    spelled.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Question {
    /// Whether a passage of `document` with this heading path and text answers the question.
    fn answered_by(&self, document: &str, heading_path: &str, text: &str) -> bool {
        if document != self.document {
            return false;
        }
        let first = heading_path.split(" > ").next().unwrap_or_default().trim();
        first.eq_ignore_ascii_case(self.article.trim())
            || self.text.as_ref().is_some_and(|t| normalise(text).contains(&normalise(t)))
    }
}

/// One question's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct QuestionResult {
    pub id: String,
    /// 1-based rank of the first answering passage.
    pub rank: Option<usize>,
    pub extractive: ModeResult,
    pub generated: Option<ModeResult>,
}

/// What one mode's answer did for a question.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModeResult {
    /// An answer was shown (for generation: a generated one).
    pub answered: bool,
    pub citations: usize,
    /// Citations of an answering passage.
    pub right_citations: usize,
    /// Why generation fell back, if it did.
    pub fallback: Option<String>,
    pub sentences_removed: usize,
    pub latency_ms: u64,
    pub tokens_out: u32,
}

/// One mode's figures over all questions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModeFigures {
    pub answered: usize,
    /// Questions whose answer cites an answering passage, over all questions.
    pub answer_coverage: f64,
    /// Citations of an answering passage, over all citations.
    pub citation_precision: f64,
    pub sentences_removed: usize,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
}

/// One ask as the abstention curve counts it: a question asked as is (`negative` false), or with
/// its document and the act's other texts out of the reader's reach (`negative` true: nothing the
/// reader may read answers it, so any answer is wrong).
#[derive(Debug, Clone, Serialize)]
pub struct Ask {
    pub id: String,
    pub negative: bool,
    /// The composer quoted sentences (before the key-term rule).
    pub quoted: bool,
    /// They cite an answering passage.
    pub right: bool,
    pub coverage: f32,
    pub key_coverage: f32,
    /// The answer-sentence selector's probability for the best sentence.
    pub selector: Option<f32>,
}

impl Ask {
    /// The ask of question `id` whose answer, composed without the key-term rule, is `raw`;
    /// `right` when it cites an answering passage.
    fn of(id: &str, negative: bool, right: bool, raw: &crate::service::answer::Answer) -> Self {
        Ask {
            id: id.to_owned(),
            negative,
            quoted: !raw.citations.is_empty(),
            right,
            coverage: raw.coverage,
            key_coverage: raw.key_coverage,
            selector: raw.selector_probability,
        }
    }
}

/// The answer rule at one key-coverage threshold: an ask answers when it quoted and its key
/// coverage reaches the threshold, and is otherwise a weak match or "not found" (an abstention).
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    pub threshold: f32,
    /// Questions asked as is whose answer cites an answering passage, over all of them.
    pub answer_coverage: f64,
    /// Answers (of either kind of ask) that cite an answering passage, over all answers.
    pub answer_precision: f64,
    /// Abstentions that were right (a negative, or a question whose answer would have cited no
    /// answering passage), over all abstentions.
    pub abstention_precision: f64,
    /// Asks that should abstain and did, over all that should.
    pub abstention_recall: f64,
    pub answered: usize,
    pub negatives_answered: usize,
}

/// Precision and coverage of the answer rule over key-coverage thresholds 0, 0.05, ..., 1, with
/// the selector's exception at `selector_floor` (above 1: none).
pub fn curve(asks: &[Ask], selector_floor: f32) -> Vec<CurvePoint> {
    (0..=20).map(|i| point(asks, i as f32 / 20.0, selector_floor)).collect()
}

/// The answer rule's figures at one key-coverage threshold: an ask answers when it quoted and
/// its key coverage reaches the threshold or the selector's probability reaches `selector_floor`.
pub fn point(asks: &[Ask], threshold: f32, selector_floor: f32) -> CurvePoint {
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let rule =
        AnswerConfig { min_key_coverage: threshold, min_selector_probability: selector_floor, ..Default::default() };
    let answers = |a: &&Ask| a.quoted && rule.answers(a.key_coverage, a.selector);
    let answered: Vec<&Ask> = asks.iter().filter(answers).collect();
    let should_abstain = |a: &Ask| a.negative || !a.right;
    let abstained: Vec<&Ask> = asks.iter().filter(|a| !answers(a)).collect();
    let positives = asks.iter().filter(|a| !a.negative).count();
    CurvePoint {
        threshold,
        answer_coverage: ratio(answered.iter().filter(|a| !a.negative && a.right).count(), positives),
        answer_precision: ratio(answered.iter().filter(|a| a.right).count(), answered.len()),
        abstention_precision: ratio(abstained.iter().filter(|a| should_abstain(a)).count(), abstained.len()),
        abstention_recall: ratio(
            abstained.iter().filter(|a| should_abstain(a)).count(),
            asks.iter().filter(|a| should_abstain(a)).count(),
        ),
        answered: answered.len(),
        negatives_answered: answered.iter().filter(|a| a.negative).count(),
    }
}

/// The abstention curve's asks on ObliQA: each question answered by the extractive composer over
/// the retrieved passages as is, and once more with the documents of its relevant passages out of
/// reach (ObliQA repeats some rules across documents, so a few of those may be answerable). An
/// answer is right when it cites a relevant passage. Composed without the key-term rule, which
/// [`curve`] applies per threshold.
pub fn obliqa_asks(
    retriever: &indexer::Retriever,
    passages: &[indexer::eval::ObliqaPassage],
    questions: &[indexer::eval::ObliqaQuestion],
    method: indexer::Method,
    answer: &AnswerConfig,
    selector: Option<&dyn indexer::Reranker>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Ask>> {
    use std::collections::{BTreeSet, HashMap};
    let by_id: HashMap<&str, &indexer::eval::ObliqaPassage> = passages.iter().map(|p| (p.id.as_str(), p)).collect();
    let documents: BTreeSet<String> = passages.iter().map(|p| p.document_id.to_string()).collect();
    let reader = indexer::eval::obliqa_reader()?;
    let acl = indexer::ChunkAcl {
        tenant: reader.tenant.clone(),
        owner: "ADGM".into(),
        classification: indexer::Classification::Public,
        allowed_groups: reader.groups.clone(),
        status: indexer::SourceStatus::Approved,
        effective_from: reader.as_of,
        expires_at: None,
        retention_class: "benchmark".into(),
    };
    let measuring = AnswerConfig { min_key_coverage: 0.0, ..*answer };
    let scorer = |question: &str, texts: &[String]| {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        selector.and_then(|s| s.score(question, &texts).ok())
    };
    let mut asks = Vec::with_capacity(questions.len() * 2);
    for (i, q) in questions.iter().enumerate() {
        for negative in [false, true] {
            let asked = if negative {
                let gold: BTreeSet<String> = q
                    .relevant
                    .iter()
                    .filter_map(|id| by_id.get(id.as_str()))
                    .map(|p| p.document_id.to_string())
                    .collect();
                indexer::Reader { documents: Some(documents.difference(&gold).cloned().collect()), ..reader.clone() }
            } else {
                reader.clone()
            };
            let mut hits = match retriever.search(&asked, &q.question, method, retriever.depth_for(10)) {
                Ok(r) => r.hits,
                Err(indexer::Error::User(_)) => Vec::new(),
                Err(e) => return Err(Error::internal("ObliQA retrieval", e)),
            };
            retriever
                .rerank(&q.question, &mut hits, |id| by_id.get(id).map(|p| p.text.as_str()))
                .map_err(|e| Error::internal("ObliQA rerank", e))?;
            let passages: Vec<Passage> = hits
                .into_iter()
                .take(10)
                .enumerate()
                .filter_map(|(rank, hit)| {
                    let p = by_id.get(hit.chunk_id.as_str())?;
                    let chunk = crate::service::answer::StoredChunk {
                        id: p.id.clone(),
                        document_id: p.document_id.to_string(),
                        title: p.title.clone(),
                        version: 1,
                        page: 1,
                        char_start: 0,
                        char_end: u32::try_from(p.text.chars().count()).unwrap_or(u32::MAX),
                        heading_path: p.heading_path.clone(),
                        text: p.text.clone(),
                        acl: acl.clone(),
                    };
                    Some(Passage { rank: rank + 1, scores: hit, chunk })
                })
                .collect();
            let raw = crate::service::answer::compose_with(
                &q.question,
                &passages,
                &measuring,
                selector.is_some().then_some(&scorer as crate::service::answer::SentenceScorer<'_>),
            );
            let right = raw.citations.iter().any(|c| q.relevant.contains(&c.chunk_id));
            asks.push(Ask::of(&q.id, negative, right, &raw));
        }
        progress(i + 1, questions.len());
    }
    Ok(asks)
}

/// The curve as a Markdown table, the threshold `set` marked.
pub fn curve_markdown(points: &[CurvePoint], set: f32) -> String {
    use std::fmt::Write;
    let mut md = String::from(
        "| key coverage threshold | answer coverage | answer precision | abstention precision | abstention recall | answered | of them, out-of-reach asks |\n|---|---|---|---|---|---|---|\n",
    );
    for p in points {
        let _ = writeln!(
            md,
            "| {:.2}{} | {:.4} | {:.4} | {:.4} | {:.4} | {} | {} |",
            p.threshold,
            if (p.threshold - set).abs() < 1e-6 { " (set)" } else { "" },
            p.answer_coverage,
            p.answer_precision,
            p.abstention_precision,
            p.abstention_recall,
            p.answered,
            p.negatives_answered
        );
    }
    md
}

/// The family of a document id, its first word: the act's other texts (the Official Journal and
/// the Council text of one regulation) share it, and a negative ask excludes them all.
fn family(document_id: &str) -> &str {
    document_id.split(['-', '.']).next().unwrap_or(document_id)
}

#[derive(Debug, Clone, Serialize)]
pub struct AnswerReport {
    pub questions_version: u32,
    pub questions: usize,
    pub configuration: String,
    pub recall_at_3: f64,
    pub recall_at_10: f64,
    pub extractive: ModeFigures,
    pub generated: Option<ModeFigures>,
    /// The generator's model, when one answered.
    pub generator: Option<String>,
    pub results: Vec<QuestionResult>,
    /// The key-coverage threshold the extractive figures use (`answer_min_key_coverage`).
    pub min_key_coverage: f32,
    /// Every ask for the abstention curve: each question as is, and with `--negatives` once more
    /// with its act out of reach.
    pub asks: Vec<Ask>,
    pub curve: Vec<CurvePoint>,
}

fn mode_result(question: &Question, passages: &[Passage], citations: &[Citation]) -> ModeResult {
    let right = citations
        .iter()
        .filter(|c| {
            passages
                .iter()
                .find(|p| p.chunk.id == c.chunk_id)
                .is_some_and(|p| question.answered_by(&p.chunk.document_id, &p.chunk.heading_path, &p.chunk.text))
        })
        .count();
    ModeResult {
        answered: !citations.is_empty(),
        citations: citations.len(),
        right_citations: right,
        ..Default::default()
    }
}

fn figures(results: &[&ModeResult]) -> ModeFigures {
    let n = results.len().max(1) as f64;
    let citations: usize = results.iter().map(|r| r.citations).sum();
    let right: usize = results.iter().map(|r| r.right_citations).sum();
    let latency = indexer::scale::Latency::of(results.iter().map(|r| r.latency_ms as f64).collect());
    ModeFigures {
        answered: results.iter().filter(|r| r.answered).count(),
        answer_coverage: results.iter().filter(|r| r.right_citations > 0).count() as f64 / n,
        citation_precision: if citations == 0 { 0.0 } else { right as f64 / citations as f64 },
        sentences_removed: results.iter().map(|r| r.sentences_removed).sum(),
        latency_ms_p50: latency.p50,
        latency_ms_p95: latency.p95,
    }
}

/// Asks every question as `reader` and judges the answers. Fails when a question names a
/// document the reader cannot find, or a phrase no passage of its document contains (the
/// question file, not the system, would be wrong).
pub async fn run(
    platform: &Platform,
    questions: &Questions,
    reader: &indexer::Reader,
    answer: &AnswerConfig,
    generator: Option<Arc<Generator>>,
    selector: Option<Arc<dyn indexer::Reranker>>,
    negatives: bool,
) -> Result<AnswerReport> {
    // The labels are checked first: every question's document is stored, and its phrase is in it.
    for q in &questions.questions {
        let chunks = platform.storage.version_chunks(&q.document, 1).await?;
        if chunks.is_empty() {
            return Err(Error::user(format!("question {}: document {} is not stored", q.id, q.document)));
        }
        let whole = normalise(&chunks.iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join(" "));
        if let Some(text) = &q.text
            && !chunks.iter().any(|c| normalise(&c.text).contains(&normalise(text)))
        {
            let hint = if whole.contains(&normalise(text)) { " (it spans two passages: shorten it)" } else { "" };
            return Err(Error::user(format!(
                "question {}: no passage of {} contains {text:?}{hint}",
                q.id, q.document
            )));
        }
    }
    let retriever = platform.retriever();
    let method = if retriever.has_dense() { indexer::Method::Hybrid } else { indexer::Method::Bm25 };
    // Composed without the key-term rule, which is then applied per threshold (it only decides
    // whether the quotes are shown as the answer).
    let measuring = AnswerConfig { min_key_coverage: 0.0, ..*answer };
    let documents: Vec<String> =
        platform.storage.list_documents(&reader.tenant).await?.into_iter().map(|d| d.id).collect();
    let mut asks = Vec::new();
    let mut results = Vec::new();
    for q in &questions.questions {
        if negatives {
            let others = documents.iter().filter(|d| family(d) != family(&q.document)).cloned().collect();
            let outside = indexer::Reader { documents: Some(others), ..reader.clone() };
            let checked = crate::service::ask::retrieve_checked(
                &platform.storage,
                &retriever,
                &outside,
                &q.question,
                method,
                10,
                false,
            )
            .await?;
            let raw = crate::service::ask::compose_answer(selector.as_ref(), &q.question, &checked.passages, measuring)
                .await?;
            let right = mode_result(q, &checked.passages, &raw.citations).right_citations > 0;
            asks.push(Ask::of(&q.id, true, right, &raw));
        }
        let started = Instant::now();
        let checked = crate::service::ask::retrieve_checked(
            &platform.storage,
            &retriever,
            reader,
            &q.question,
            method,
            10,
            false,
        )
        .await?;
        let retrieval_ms = started.elapsed().as_millis() as u64;
        let passages = checked.passages;
        let rank = passages
            .iter()
            .position(|p| q.answered_by(&p.chunk.document_id, &p.chunk.heading_path, &p.chunk.text))
            .map(|i| i + 1);
        let raw = crate::service::ask::compose_answer(selector.as_ref(), &q.question, &passages, measuring).await?;
        let right = mode_result(q, &passages, &raw.citations).right_citations > 0;
        asks.push(Ask::of(&q.id, false, right, &raw));
        // The answer as shown under the configured rule: a weak match shows no citations.
        let shown: &[Citation] =
            if answer.answers(raw.key_coverage, raw.selector_probability) { &raw.citations } else { &[] };
        let mut extractive = mode_result(q, &passages, shown);
        extractive.latency_ms = retrieval_ms;
        let generated = match &generator {
            Some(g) if !shown.is_empty() => {
                let top: Vec<Passage> = passages.iter().take(g.passages()).cloned().collect();
                let question = q.question.clone();
                let generator_started = Instant::now();
                let worker = Arc::clone(g);
                let outcome = tokio::task::spawn_blocking(move || worker.generate(&question, &top, &mut |_| {}))
                    .await
                    .map_err(|e| Error::internal("generation task", e))?;
                let latency_ms = generator_started.elapsed().as_millis() as u64;
                Some(match outcome {
                    Ok(generation) => ModeResult {
                        sentences_removed: generation.removed.len(),
                        latency_ms,
                        tokens_out: generation.tokens_out,
                        ..mode_result(q, &passages, &generation.citations)
                    },
                    Err(failure) => ModeResult {
                        fallback: Some(failure.fallback.as_str().to_owned()),
                        sentences_removed: failure.removed.len(),
                        latency_ms,
                        // The extractive answer is shown instead.
                        ..mode_result(q, &passages, shown)
                    },
                })
            }
            Some(_) => Some(ModeResult { fallback: Some("abstained".to_owned()), ..Default::default() }),
            None => None,
        };
        results.push(QuestionResult { id: q.id.clone(), rank, extractive, generated });
    }
    let n = results.len().max(1) as f64;
    let within = |k: usize| results.iter().filter(|r| r.rank.is_some_and(|x| x <= k)).count() as f64 / n;
    let generated_results: Vec<&ModeResult> = results.iter().filter_map(|r| r.generated.as_ref()).collect();
    Ok(AnswerReport {
        questions_version: questions.version,
        questions: results.len(),
        configuration: format!(
            "{} retrieval, reranker {}, answer_min_coverage {}, sentences ordered by {}",
            method.as_str(),
            retriever.reranker_status(),
            answer.min_coverage,
            selector
                .as_ref()
                .map_or_else(|| "their words".to_owned(), |m| format!("the cross-encoder {}", m.model_id()))
        ),
        recall_at_3: within(3),
        recall_at_10: within(10),
        extractive: figures(&results.iter().map(|r| &r.extractive).collect::<Vec<_>>()),
        generated: generator.as_ref().map(|_| figures(&generated_results)),
        generator: generator.as_ref().map(|g| g.model().to_owned()),
        results,
        min_key_coverage: answer.min_key_coverage,
        curve: curve(&asks, answer.min_selector_probability),
        asks,
    })
}

/// The report as a Markdown table.
pub fn markdown(r: &AnswerReport) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Answers on {} questions (version {}), {}\n\nRetrieval: an answering passage in the top 3 for {:.4}, in the top 10 for {:.4}.\n",
        r.questions, r.questions_version, r.configuration, r.recall_at_3, r.recall_at_10
    );
    let _ = writeln!(
        md,
        "| answer | answered | answer coverage | citation precision | sentences removed | latency p50 / p95 ms |\n|---|---|---|---|---|---|"
    );
    let row = |md: &mut String, name: &str, f: &ModeFigures| {
        let _ = writeln!(
            md,
            "| {name} | {} | {:.4} | {:.4} | {} | {:.0} / {:.0} |",
            f.answered,
            f.answer_coverage,
            f.citation_precision,
            f.sentences_removed,
            f.latency_ms_p50,
            f.latency_ms_p95
        );
    };
    row(&mut md, "extractive (latency: retrieval and rerank)", &r.extractive);
    if let (Some(g), Some(model)) = (&r.generated, &r.generator) {
        row(&mut md, &format!("generated by {model}, verified (latency: generation)"), g);
    }
    let negatives = r.asks.iter().filter(|a| a.negative).count();
    let _ = writeln!(
        md,
        "\n## Abstention curve\n\nThe extractive answer answers when a sentence covers `answer_min_coverage` of the question's words and its key coverage reaches the threshold; otherwise it abstains (a weak match or not found). {} questions as asked, {negatives} asked again with their act out of reach (any answer to those is wrong). Operating point: {:.2}.\n",
        r.asks.len() - negatives,
        r.min_key_coverage
    );
    md.push_str(&curve_markdown(&r.curve, r.min_key_coverage));
    let _ =
        writeln!(md, "\n| question | rank | extractive cites the provision | generated cites it |\n|---|---|---|---|");
    for q in &r.results {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            q.id,
            q.rank.map_or("-".to_owned(), |r| r.to_string()),
            if q.extractive.right_citations > 0 { "yes" } else { "no" },
            q.generated.as_ref().map_or("-".to_owned(), |g| match &g.fallback {
                Some(f) => format!("fallback ({f})"),
                None if g.right_citations > 0 => "yes".to_owned(),
                None => "no".to_owned(),
            })
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(negative: bool, quoted: bool, right: bool, key_coverage: f32) -> Ask {
        Ask { id: String::new(), negative, quoted, right, coverage: 1.0, key_coverage, selector: None }
    }

    #[test]
    fn the_curve_counts_answers_and_abstentions_per_threshold() {
        let asks = [
            ask(false, true, true, 0.9),  // a right answer
            ask(false, true, false, 0.3), // a wrong answer: abstaining is right
            ask(false, false, false, 0.0),
            ask(true, true, false, 0.4), // an out-of-reach ask answered
            ask(true, false, false, 0.0),
        ];
        let off = point(&asks, 0.0, 2.0);
        assert_eq!((off.answered, off.negatives_answered), (3, 1));
        assert!((off.answer_coverage - 1.0 / 3.0).abs() < 1e-9);
        assert!((off.answer_precision - 1.0 / 3.0).abs() < 1e-9);
        assert!((off.abstention_recall - 2.0 / 4.0).abs() < 1e-9);
        assert_eq!(off.abstention_precision, 1.0);
        let on = point(&asks, 0.5, 2.0);
        assert_eq!((on.answered, on.negatives_answered), (1, 0));
        assert_eq!((on.answer_precision, on.abstention_recall, on.abstention_precision), (1.0, 1.0, 1.0));
        assert_eq!(curve(&asks, 2.0).len(), 21);
        // The selector's exception answers what it vouches for.
        let vouched = [Ask { selector: Some(0.9), ..ask(false, true, true, 0.1) }];
        assert_eq!((point(&vouched, 0.5, 0.2).answered, point(&vouched, 0.5, 2.0).answered), (1, 0));
        assert_eq!(family("gdpr-2016-679-oj-l119"), family("gdpr-council-first-reading-5419-16"));
    }
}
