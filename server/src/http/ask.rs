//! Asking: the ask page, `/api/v1/ask`, and a cited passage in its context.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::Error;
use crate::http::error::{ErrorBody, WebResult, web_err};
use crate::http::is_htmx;
use crate::http::session::{self, SignedIn};
use crate::http::{AppState, UserView, html, user_view};
use crate::service::answer::{Answer, Passage, PassageBody};
use crate::service::ask::{AskOutcome, AskRequest};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ask", web::get().to(ask_get))
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
    passages: Vec<PassageView>,
    /// "on: ..." or "off: ..." so the ranking explanation says whether a reranker ran.
    reranker: String,
}

fn results_view(outcome: &AskOutcome, reranker: String) -> ResultsView {
    let as_of = outcome.as_of.to_string();
    ResultsView {
        reranker,
        not_found: outcome.answer.abstained.clone().unwrap_or_default(),
        citations: outcome
            .answer
            .citations
            .iter()
            .map(|c| CitationView {
                marker: c.marker,
                quote: c.quote.clone(),
                href: format!("/passages/{}?start={}&end={}&as_of={as_of}#cited", c.chunk_id, c.start, c.end),
                title: c.title.clone(),
                version: c.version,
                page: c.page,
                heading_path: c.heading_path.clone(),
            })
            .collect(),
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
    SignedIn(actor): SignedIn,
    query: web::Query<AskQuery>,
) -> WebResult {
    let err = web_err(&req);
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let results = if query.q.trim().is_empty() {
        None
    } else {
        let request = query.request(state.passages_per_answer).map_err(&err)?;
        Some(results_view(&state.ask.ask(&actor, &request).await.map_err(&err)?, state.ask.retriever.reranker_status()))
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
    SignedIn(actor): SignedIn,
    query: web::Query<AskQuery>,
) -> WebResult {
    let err = web_err(&req);
    let request = query.request(state.passages_per_answer).map_err(&err)?;
    let outcome = state.ask.ask(&actor, &request).await.map_err(&err)?;
    let t = &outcome.timings;
    Ok(HttpResponse::Ok().json(AskResponse {
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
    SignedIn(actor): SignedIn,
    chunk_id: web::Path<String>,
    query: web::Query<PassageQuery>,
) -> WebResult {
    let err = web_err(&req);
    let csrf = session::csrf_for(&req, &state).map_err(&err)?;
    let as_of = AskQuery { q: String::new(), as_of: query.as_of.clone() }
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
