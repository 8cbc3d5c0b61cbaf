//! Asking: the ask page, `/api/v1/ask`, and a cited passage in its context.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::Error;
use crate::http::error::{ErrorBody, WebResult, web_err};
use crate::http::is_htmx;
use crate::http::session::{self, Authenticated};
use crate::http::{AppState, UserView, html, user_view};
use crate::service::answer::{Answer, Citation, Passage, PassageBody};
use crate::service::ask::{AskOutcome, AskRequest, GeneratedAnswer};
use crate::service::generate::{Fallback, Progress};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ask", web::get().to(ask_get))
        .route("/ask/stream", web::get().to(ask_stream_get))
        .route("/api/ask", web::get().to(api_ask_get))
        .route("/api/v1/ask", web::get().to(api_ask_get))
        .route("/passages/{chunk_id}", web::get().to(passage_get));
}

struct PassageView {
    rank: usize,
    chunk_id: String,
    title: String,
    document_id: String,
    version: u32,
    page: u32,
    heading_path: String,
    text: String,
    score: String,
}

#[derive(Template)]
#[template(path = "ask.html")]
struct AskView {
    user: UserView,
    question: String,
    as_of: String,
    /// The results fragment, already rendered (and escaped) by its own template.
    results_html: String,
}

struct CitationView {
    marker: usize,
    quote: String,
    href: String,
    title: String,
    version: u32,
    page: u32,
    heading_path: String,
}

#[derive(Template)]
#[template(path = "ask_results.html")]
struct ResultsView {
    as_of: String,
    not_found: String,
    citations: Vec<CitationView>,
    /// A weak match's closest sentences, shown under their own label, never as the answer.
    closest: Vec<CitationView>,
    /// Why nothing answers, when a document the reader may read in its time would.
    out_of_force: String,
    passages: Vec<PassageView>,
    /// "on: ..." or "off: ..." so the ranking explanation says whether a reranker ran.
    reranker: String,
    generated: Option<GeneratedView>,
}

/// The generated answer's section: streamed (sentences arrive over `/ask/stream`), or complete.
struct GeneratedView {
    model: String,
    /// Where the page's script reads the sentences from; empty once they are here.
    stream_url: String,
    /// The same answer without script: the page waits for the model.
    wait_url: String,
    sentences: Vec<GeneratedSentenceView>,
    /// The generated answer's sources (verified spans).
    sources: Vec<CitationView>,
    removed: usize,
    /// Why the quoted answer stands alone.
    note: String,
    tokens_out: u32,
    latency_ms: u64,
}

struct GeneratedSentenceView {
    text: String,
    /// (marker, href, label) of each supporting span.
    links: Vec<(usize, String, String)>,
}

fn citation_view(c: &Citation, as_of: &str) -> CitationView {
    CitationView {
        marker: c.marker,
        quote: c.quote.clone(),
        href: citation_href(c, as_of),
        title: c.title.clone(),
        version: c.version,
        page: c.page,
        heading_path: c.heading_path.clone(),
    }
}

/// The passage page with the cited span highlighted.
fn citation_href(c: &Citation, as_of: &str) -> String {
    format!("/passages/{}?start={}&end={}&as_of={as_of}#cited", c.chunk_id, c.start, c.end)
}

/// "Title, version 2, page 3"
fn citation_label(c: &Citation) -> String {
    format!("{}, version {}, page {}", c.title, c.version, c.page)
}

/// A query string value.
fn query_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn generated_view(
    question: &str,
    outcome: &AskOutcome,
    model: &str,
    generated: Option<&GeneratedAnswer>,
) -> GeneratedView {
    let as_of = outcome.as_of.to_string();
    let query = format!("q={}&as_of={as_of}", query_value(question));
    let mut view = GeneratedView {
        model: model.to_owned(),
        stream_url: format!("/ask/stream?{query}"),
        wait_url: format!("/ask?{query}&generate=true"),
        sentences: Vec::new(),
        sources: Vec::new(),
        removed: 0,
        note: String::new(),
        tokens_out: 0,
        latency_ms: 0,
    };
    let Some(generated) = generated else { return view };
    view.stream_url.clear();
    view.note = generated.note.clone().unwrap_or_default();
    if let Some(g) = &generated.generation {
        view.removed = g.removed.len();
        view.tokens_out = g.tokens_out;
        view.latency_ms = g.latency_ms;
        view.sources = g.citations.iter().map(|c| citation_view(c, &as_of)).collect();
        view.sentences = g
            .sentences
            .iter()
            .map(|s| GeneratedSentenceView {
                text: s.text.clone(),
                links: s
                    .citations
                    .iter()
                    .filter_map(|m| g.citations.iter().find(|c| c.marker == *m))
                    .map(|c| (c.marker, citation_href(c, &as_of), citation_label(c)))
                    .collect(),
            })
            .collect();
    }
    view
}

fn results_view(outcome: &AskOutcome, reranker: String, generated: Option<GeneratedView>) -> ResultsView {
    let as_of = outcome.as_of.to_string();
    ResultsView {
        reranker,
        generated,
        not_found: outcome.answer.abstained.clone().unwrap_or_default(),
        citations: outcome.answer.citations.iter().map(|c| citation_view(c, &as_of)).collect(),
        closest: outcome.answer.closest.iter().map(|c| citation_view(c, &as_of)).collect(),
        out_of_force: outcome.answer.out_of_force.clone().unwrap_or_default(),
        as_of,
        passages: outcome
            .passages
            .iter()
            .map(|p| PassageView {
                rank: p.rank,
                chunk_id: p.chunk.id.clone(),
                title: p.chunk.title.clone(),
                document_id: p.chunk.document_id.clone(),
                version: p.chunk.version,
                page: p.chunk.page,
                heading_path: p.chunk.heading_path.clone(),
                text: p.chunk.text.clone(),
                score: score_text(&p.scores),
            })
            .collect(),
    }
}

/// "BM25 #2 (13.92) · dense #1 (0.71) · fused 0.0325": each stage's rank and score.
fn score_text(h: &crate::domain::RetrievedHit) -> String {
    let mut parts = Vec::new();
    if let Some(s) = h.bm25 {
        parts.push(format!("BM25 #{} ({:.2})", s.rank, s.score));
    }
    if let Some(s) = h.dense {
        parts.push(format!("dense #{} ({:.2})", s.rank, s.score));
    }
    parts.push(format!("fused {:.4}", h.fused));
    if let Some(s) = h.rerank {
        parts.push(format!("rerank #{} ({:.2})", s.rank, s.score));
    }
    parts.join(" · ")
}

/// A question, as the ask page and `/api/v1/ask` take it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AskQuery {
    /// The question (up to 2,000 characters).
    #[serde(default)]
    #[param(required = true)]
    q: String,
    /// Answer from documents in force on this date, `YYYY-MM-DD`; today when absent.
    #[serde(default)]
    #[param(required = false, format = Date)]
    as_of: String,
    /// Also write the answer with the configured generator (every sentence verified); the
    /// response waits for it. Ignored when no generator is configured.
    #[serde(default)]
    #[param(required = false)]
    generate: bool,
}

impl AskQuery {
    fn parse_as_of(&self) -> Result<Option<NaiveDate>, Error> {
        let s = self.as_of.trim();
        if s.is_empty() {
            return Ok(None);
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| Error::user("The 'as of' date must be written YYYY-MM-DD."))
    }

    fn request(&self, limit: usize) -> Result<AskRequest, Error> {
        Ok(AskRequest { question: self.q.clone(), as_of: self.parse_as_of()?, limit })
    }
}

async fn ask_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, query): Authenticated<web::Query<AskQuery>>,
) -> WebResult {
    let err = web_err(&req);
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let results = if query.q.trim().is_empty() {
        None
    } else {
        let request = query.request(state.passages_per_answer).map_err(&err)?;
        let outcome = state.ask.ask(&actor, &request).await.map_err(&err)?;
        let generated = match &state.ask.generator {
            // Nothing to write from: the extractive answer found no evidence.
            Some(_) if outcome.answer.abstained.is_some() => None,
            Some(generator) if query.generate => {
                let answer =
                    state.ask.generate(&actor, &request.question, &outcome, Box::new(|_| {})).await.map_err(&err)?;
                Some(generated_view(&request.question, &outcome, generator.model(), answer.as_ref()))
            }
            Some(generator) => Some(generated_view(&request.question, &outcome, generator.model(), None)),
            None => None,
        };
        Some(results_view(&outcome, state.ask.retriever.reranker_status(), generated))
    };
    if is_htmx(&req) {
        let body = match &results {
            Some(r) => r.render(),
            None => Ok(String::new()),
        };
        return html(body, csrf.new_cookie);
    }
    let results_html = match &results {
        Some(r) => r.render().map_err(|e| err(Error::internal("rendering", e)))?,
        None => String::new(),
    };
    let view = AskView {
        user: user_view(&actor, csrf.token),
        question: query.q.clone(),
        as_of: query.as_of.clone(),
        results_html,
    };
    html(view.render(), csrf.new_cookie)
}

/// Time spent in each stage of the ask, in microseconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timings {
    pub bm25: u64,
    pub embed: u64,
    pub dense: u64,
    pub fusion: u64,
    pub recheck: u64,
    pub rerank: u64,
    pub compose: u64,
}

/// An answer with its cited passages.
#[derive(Debug, Serialize, ToSchema)]
pub struct AskResponse {
    /// The date the answer is valid for.
    pub as_of: NaiveDate,
    /// `bm25`, `dense` or `hybrid`.
    pub method: String,
    pub answer: Answer,
    pub timings_us: Timings,
    /// Whether and which reranker ordered the passages.
    pub reranker: String,
    pub passages: Vec<PassageBody>,
    /// The generated answer, when `generate=true` was asked and a generator is configured.
    pub generated: Option<GeneratedAnswer>,
}

/// Asks a question: an extractive answer whose every sentence cites a verified span, and the
/// passages it was built from, all readable by the caller.
#[utoipa::path(get, path = "/api/v1/ask", tag = "ask", params(AskQuery),
    responses(
        (status = 200, description = "The answer and its passages", body = AskResponse),
        (status = 400, description = "Invalid input; the message says what to change", body = ErrorBody), (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 429, description = "Too many requests; retry after the Retry-After seconds", body = ErrorBody),
        (status = 503, description = "The document store cannot be reached; nothing was answered", body = ErrorBody)))]
pub(crate) async fn api_ask_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, query): Authenticated<web::Query<AskQuery>>,
) -> WebResult {
    let err = web_err(&req);
    let request = query.request(state.passages_per_answer).map_err(&err)?;
    let outcome = state.ask.ask(&actor, &request).await.map_err(&err)?;
    let generated = if query.generate {
        state.ask.generate(&actor, &request.question, &outcome, Box::new(|_| {})).await.map_err(&err)?
    } else {
        None
    };
    let t = &outcome.timings;
    Ok(HttpResponse::Ok().json(AskResponse {
        generated,
        as_of: outcome.as_of,
        method: outcome.method.as_str().to_owned(),
        timings_us: Timings {
            bm25: t.bm25_us,
            embed: t.embed_us,
            dense: t.dense_us,
            fusion: t.fusion_us,
            recheck: t.recheck_us,
            rerank: t.rerank_us,
            compose: outcome.compose_us,
        },
        reranker: state.ask.retriever.reranker_status(),
        passages: outcome.passages.iter().map(Passage::body).collect(),
        answer: outcome.answer,
    }))
}

#[derive(Deserialize)]
struct PassageQuery {
    #[serde(default)]
    start: Option<usize>,
    #[serde(default)]
    end: Option<usize>,
    #[serde(default)]
    as_of: String,
}

#[derive(Template)]
#[template(path = "passage.html")]
struct PassageContextView {
    user: UserView,
    chunk_id: String,
    document_id: String,
    title: String,
    version: u32,
    page: u32,
    heading_path: String,
    verified: bool,
    before: String,
    cited: String,
    after: String,
    context_before: Vec<String>,
    context_after: Vec<String>,
}

/// A cited passage in context, the cited span highlighted. The reader must be allowed to read
/// it (as of the answer's date); otherwise it is "not found", so its existence does not leak.
async fn passage_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, (chunk_id, query)): Authenticated<(web::Path<String>, web::Query<PassageQuery>)>,
) -> WebResult {
    let err = web_err(&req);
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let as_of = AskQuery { q: String::new(), as_of: query.as_of.clone(), generate: false }
        .parse_as_of()
        .map_err(&err)?
        .unwrap_or_else(crate::domain::today);
    let crate::service::ask::PassageInContext { before, passage: chunk, after } =
        state.ask.open_passage(&actor, &chunk_id, as_of).await.map_err(&err)?;
    let text = chunk.text.as_str();
    let span = match (query.start, query.end) {
        (Some(s), Some(e)) if s < e && text.get(s..e).is_some() => Some((s, e)),
        (None, None) => None,
        _ => None,
    };
    let verified = span.is_some() || (query.start.is_none() && query.end.is_none());
    let (s, e) = span.unwrap_or((0, 0));
    let readable = |cs: Vec<crate::service::answer::StoredChunk>| cs.into_iter().map(|c| c.text).collect::<Vec<_>>();
    let view = PassageContextView {
        user: user_view(&actor, csrf.token),
        chunk_id: chunk.id.clone(),
        document_id: chunk.document_id.clone(),
        title: chunk.title.clone(),
        version: chunk.version,
        page: chunk.page,
        heading_path: chunk.heading_path.clone(),
        verified,
        before: text[..s].to_owned(),
        cited: text[s..e].to_owned(),
        after: text[e..].to_owned(),
        context_before: readable(before),
        context_after: readable(after),
    };
    html(view.render(), csrf.new_cookie)
}

/// One server-sent event.
fn sse(event: &str, data: &serde_json::Value) -> web::Bytes {
    web::Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The generated answer as server-sent events, for the ask page's script: `tokens` (how many the
/// model has written), `sentence` (one verified sentence with its links, as it completes), then
/// `done` or `fallback`. Nothing unverified is sent. The ask runs again as the signed-in reader, with
/// every check of `/ask`.
async fn ask_stream_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, query): Authenticated<web::Query<AskQuery>>,
) -> WebResult {
    let err = web_err(&req);
    if state.ask.generator.is_none() {
        return Err(err(Error::NotFound));
    }
    let request = query.request(state.passages_per_answer).map_err(&err)?;
    let outcome = state.ask.ask(&actor, &request).await.map_err(&err)?;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<web::Bytes>();
    let as_of = outcome.as_of.to_string();
    let progress_sender = sender.clone();
    let mut last_tokens = 0;
    let progress = Box::new(move |event: Progress<'_>| {
        let bytes = match event {
            Progress::Tokens(n) if n >= last_tokens + 5 => {
                last_tokens = n;
                sse("tokens", &serde_json::json!({ "tokens": n }))
            }
            Progress::Tokens(_) => return,
            Progress::Sentence(sentence, citations) => {
                let links: Vec<serde_json::Value> = sentence
                    .citations
                    .iter()
                    .filter_map(|m| citations.iter().find(|c| c.marker == *m))
                    .map(|c| {
                        serde_json::json!({ "marker": c.marker, "href": citation_href(c, &as_of), "label": citation_label(c) })
                    })
                    .collect();
                sse("sentence", &serde_json::json!({ "text": sentence.text, "links": links }))
            }
        };
        // The reader may have left; the generation finishes and is audited anyway.
        let _ = progress_sender.send(bytes);
    });
    let ask = state.ask.clone();
    let question = request.question.clone();
    tokio::spawn(async move {
        let last = match ask.generate(&actor, &question, &outcome, progress).await {
            Ok(Some(GeneratedAnswer { generation: Some(g), model, .. })) => sse(
                "done",
                &serde_json::json!({ "model": model, "removed": g.removed.len(), "tokens": g.tokens_out, "latency_ms": g.latency_ms }),
            ),
            Ok(Some(GeneratedAnswer { note, .. })) => sse("fallback", &serde_json::json!({ "note": note })),
            Ok(None) => sse(
                "fallback",
                &serde_json::json!({ "note": "Nothing to write from: no passage answers the question." }),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "generated answer stream failed");
                sse("fallback", &serde_json::json!({ "note": Fallback::Unreachable.note() }))
            }
        };
        let _ = sender.send(last);
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|bytes| (Ok::<_, actix_web::Error>(bytes), receiver))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-store"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}
