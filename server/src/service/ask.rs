//! The ask flow: retrieve passages the actor may read, re-check each one's access against the
//! database (an index can lag a permission change), and audit the request without its text.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use indexer::{Method, Retriever};
use sha2::{Digest, Sha256};

use crate::domain::{Actor, Permission};
use crate::error::{Error, Result};
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::answer::{Answer, AnswerConfig, Passage};
use crate::service::generate::{Fallback, Generation, Generator, Progress, Unsupported};
use crate::store::{AuditRecord, Storage, StoredChunk};

/// Shown when the governance gate withholds a document set.
pub const DATA_CARD_BLOCKED: &str = "Answers from your organisation's documents are withheld: their data card is not approved. \
     A reviewer has to approve it first.";

/// Longest question accepted, in characters.
pub const MAX_QUESTION_CHARS: usize = 2000;

/// A question as asked.
#[derive(Debug, Clone)]
pub struct AskRequest {
    pub question: String,
    /// Answer from documents in force on this date; today when absent.
    pub as_of: Option<NaiveDate>,
    pub limit: usize,
}

/// What readiness checks found; `None` for a stage the settings turn off.
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    pub database: bool,
    pub bm25_passages: usize,
    pub dense: Option<bool>,
    pub reranker: Option<bool>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.database && self.dense != Some(false) && self.reranker != Some(false)
    }
}

/// Most out-of-force chunks read to say why nothing answers (the tenant's withdrawn, expired and
/// future versions; beyond it the hint looks at the first ones by id only).
const OUT_OF_FORCE_CHUNKS: u64 = 5_000;

/// The result of an ask.
#[derive(Debug, Clone)]
pub struct AskOutcome {
    pub as_of: NaiveDate,
    pub method: Method,
    pub passages: Vec<Passage>,
    /// The extractive answer, citing spans of `passages`.
    pub answer: Answer,
    /// Time spent in each stage, in microseconds.
    pub timings: indexer::retrieve::StageTimings,
    pub compose_us: u64,
    /// The id the ask's audit event carries.
    pub request_id: String,
}

/// What grounded generation gave for an ask: a verified generated answer, or why the extractive
/// answer stands alone.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GeneratedAnswer {
    /// The model the generator settings name.
    pub model: String,
    /// The generated answer, every sentence verified; absent on a fallback.
    pub generation: Option<Generation>,
    /// Why no generated answer is shown.
    pub fallback: Option<Fallback>,
    /// The note shown with the extractive answer on a fallback.
    pub note: Option<String>,
    /// Sentences the model wrote that verification removed (on a fallback too), by reason.
    pub removed: Vec<Unsupported>,
}

/// Called from the generation task as the model writes.
pub type ProgressFn = Box<dyn for<'a> FnMut(Progress<'a>) + Send>;

/// Passages retrieved for a reader and re-checked against the database.
#[derive(Debug, Clone)]
pub struct CheckedRetrieval {
    pub passages: Vec<Passage>,
    /// Hits the index returned but the database no longer permits (or no longer holds).
    pub withheld: usize,
    pub dense_plan: Option<indexer::DensePlan>,
    pub timings: indexer::retrieve::StageTimings,
}

/// Retrieves the best `limit` passages for `question` among those `reader` may see, then keeps
/// only those the database still holds and permits: the index can lag a permission change, a
/// retirement or a deletion, and the database is the authority. If the database cannot be
/// reached this fails, so nothing is shown unchecked. Shared by the web app and `lexgate search`.
pub async fn retrieve_checked(
    storage: &Storage,
    retriever: &Retriever,
    reader: &indexer::Reader,
    question: &str,
    method: Method,
    limit: usize,
    data_card_gate: bool,
) -> Result<CheckedRetrieval> {
    // The governance gate comes before any search: nothing of a set whose data card is not
    // approved is ranked.
    if data_card_gate && !storage.data_card_approved(reader.tenant.as_str()).await? {
        return Err(Error::user(DATA_CARD_BLOCKED));
    }
    let depth = retriever.depth_for(limit);
    let searcher = retriever.clone();
    let owned_reader = reader.clone();
    let owned_question = question.to_owned();
    let retrieval = tokio::task::spawn_blocking(move || searcher.search(&owned_reader, &owned_question, method, depth))
        .await
        .map_err(|e| Error::internal("search task", e))?
        .map_err(Error::from)?;
    let hits = retrieval.hits;
    let ids: Vec<String> = hits.iter().map(|h| h.chunk_id.clone()).collect();
    let rechecking = std::time::Instant::now();
    let stored = storage.chunks_by_ids(&ids).await?;
    let mut permitted: HashMap<String, StoredChunk> = HashMap::new();
    for chunk in stored {
        if chunk.acl.permits(reader) {
            permitted.insert(chunk.id.clone(), chunk);
        }
    }
    let withheld = hits.len() - permitted.len();
    if withheld > 0 {
        tracing::warn!(withheld, "index returned chunks the database no longer holds or permits");
    }
    // Only permitted text reaches the reranker.
    let mut kept: Vec<indexer::RetrievedHit> =
        hits.into_iter().filter(|h| permitted.contains_key(&h.chunk_id)).collect();
    let mut timings = retrieval.timings;
    timings.recheck_us = rechecking.elapsed().as_micros() as u64;
    if retriever.reranker.is_some() {
        let reranker = retriever.clone();
        let q = question.to_owned();
        // The permitted chunks travel to the blocking task and back, so their text is not copied.
        let (reranked, chunks, micros) = tokio::task::spawn_blocking(move || {
            let micros = reranker.rerank(&q, &mut kept, |id| permitted.get(id).map(|c| c.text.as_str()))?;
            Ok::<_, indexer::Error>((kept, permitted, micros))
        })
        .await
        .map_err(|e| Error::internal("rerank task", e))??;
        kept = reranked;
        permitted = chunks;
        timings.rerank_us = micros;
    }
    let passages: Vec<Passage> = kept
        .into_iter()
        .take(limit)
        .filter_map(|scores| {
            let chunk = permitted.remove(&scores.chunk_id)?;
            Some((scores, chunk))
        })
        .enumerate()
        .map(|(i, (scores, chunk))| Passage { rank: i + 1, scores, chunk })
        .collect();
    Ok(CheckedRetrieval { passages, withheld, dense_plan: retrieval.dense_plan, timings })
}

/// Bounds the work of asking: at most `running` asks run at once, at most `queued` more wait,
/// and an ask beyond both is refused at once with [`Error::Overloaded`] rather than waiting
/// behind every other. Cheap to clone; clones share the bounds.
#[derive(Debug, Clone)]
pub struct Admission {
    waiting_room: Arc<tokio::sync::Semaphore>,
    running: Arc<tokio::sync::Semaphore>,
}

impl Admission {
    pub fn new(running: usize, queued: usize) -> Self {
        let running = running.max(1);
        Self {
            waiting_room: Arc::new(tokio::sync::Semaphore::new(running + queued)),
            running: Arc::new(tokio::sync::Semaphore::new(running)),
        }
    }

    /// Admits one ask, waiting for a free runner when the queue has room.
    pub async fn admit(&self) -> Result<(tokio::sync::OwnedSemaphorePermit, tokio::sync::OwnedSemaphorePermit)> {
        let admitted = Arc::clone(&self.waiting_room).try_acquire_owned().map_err(|_| Error::Overloaded)?;
        let running =
            Arc::clone(&self.running).acquire_owned().await.map_err(|e| Error::internal("ask admission", e))?;
        Ok((admitted, running))
    }
}

/// A passage with the readable passages around it in its version, in reading order.
#[derive(Debug, Clone)]
pub struct PassageInContext {
    pub before: Vec<StoredChunk>,
    pub passage: StoredChunk,
    pub after: Vec<StoredChunk>,
}

/// Everything the ask flow needs.
#[derive(Debug, Clone)]
pub struct AskService {
    pub storage: Storage,
    pub retriever: Retriever,
    /// Key mixed into the audit log's question hashes so they cannot be reversed by guessing.
    pub audit_hash_key: Arc<[u8]>,
    /// Documents of a set whose data card is not approved are not retrievable.
    pub data_card_gate: bool,
    pub answer: AnswerConfig,
    /// How many asks run and wait at once.
    pub admission: Admission,
    /// How fast one principal may ask.
    pub rate: crate::service::limits::RateLimiter,
    /// Whether the settings ask for dense retrieval and a reranker (for readiness).
    pub dense_wanted: bool,
    pub reranker_wanted: bool,
    /// Writes answers from the passages when a generation server is configured.
    pub generator: Option<Arc<Generator>>,
    /// Orders the extractive answer's candidate sentences; by their words when `None`.
    pub selector: Option<Arc<dyn indexer::Reranker>>,
}

/// Composes the extractive answer, its candidate sentences ordered by `selector` (a
/// cross-encoder, run off the async threads) when there is one, else by their words.
pub async fn compose_answer(
    selector: Option<&Arc<dyn indexer::Reranker>>,
    question: &str,
    passages: &[Passage],
    config: AnswerConfig,
) -> Result<Answer> {
    let Some(selector) = selector else {
        return Ok(crate::service::answer::compose(question, passages, &config));
    };
    let (selector, question, passages) = (Arc::clone(selector), question.to_owned(), passages.to_vec());
    tokio::task::spawn_blocking(move || {
        let scorer = |question: &str, texts: &[String]| {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            match selector.score(question, &texts) {
                Ok(scores) => Some(scores),
                Err(e) => {
                    // The answer is still composed, its sentences ordered by their words.
                    tracing::warn!(error = %e, "the answer-sentence selector failed; sentences ordered by their words");
                    None
                }
            }
        };
        crate::service::answer::compose_with(&question, &passages, &config, Some(&scorer))
    })
    .await
    .map_err(|e| Error::internal("composing the answer", e))
}

impl AskService {
    /// Returns the passages that best match the question among those the actor may read.
    #[tracing::instrument(skip_all, fields(principal = %actor.principal_id, tenant = %actor.tenant))]
    pub async fn ask(&self, actor: &Actor, request: &AskRequest) -> Result<AskOutcome> {
        let started = Instant::now();
        if !actor.may(Permission::Ask) {
            self.audit_denial(actor, Permission::Ask).await?;
            return Err(Error::Forbidden);
        }
        let question = request.question.trim();
        if question.is_empty() {
            return Err(Error::user("Type a question first."));
        }
        if question.chars().count() > MAX_QUESTION_CHARS {
            return Err(Error::user(format!("Questions are limited to {MAX_QUESTION_CHARS} characters.")));
        }
        let as_of = request.as_of.unwrap_or_else(crate::domain::today);
        let reader = actor.reader(as_of);
        let limit = request.limit.clamp(1, 50);
        if let Err(wait) = self.rate.check(&actor.principal_id) {
            let secs = wait.as_secs().max(1);
            let detail = serde_json::json!({ "reason": "rate limit", "retry_after_s": secs });
            self.audit_as_asker(actor, "ask", "rate_limited", detail).await?;
            return Err(Error::RateLimited(secs));
        }
        let _admitted = match self.admission.admit().await {
            Ok(permits) => permits,
            Err(Error::Overloaded) => {
                let detail = serde_json::json!({ "reason": "too many asks running and waiting" });
                self.audit_as_asker(actor, "ask", "shed", detail).await?;
                return Err(Error::Overloaded);
            }
            Err(e) => return Err(e),
        };

        let method = if self.retriever.has_dense() { Method::Hybrid } else { Method::Bm25 };
        let request_id = crate::domain::random_hex(8)?;
        let checked = match retrieve_checked(
            &self.storage,
            &self.retriever,
            &reader,
            question,
            method,
            limit,
            self.data_card_gate,
        )
        .await
        {
            Ok(c) => c,
            Err(Error::User(msg)) if msg == DATA_CARD_BLOCKED => {
                let detail = serde_json::json!({
                    "request_id": request_id,
                    "query_hash": self.question_hash(question),
                    "policy": "blocked: the data card of the document set is not approved",
                    "latency_ms": started.elapsed().as_millis(),
                });
                self.audit_as_asker(actor, "ask", "blocked_by_data_card", detail).await?;
                return Err(Error::User(msg));
            }
            Err(e) => return Err(e),
        };
        let (passages, withheld) = (checked.passages, checked.withheld);
        let composing = Instant::now();
        let mut answer = compose_answer(self.selector.as_ref(), question, &passages, self.answer).await?;
        let compose_us = composing.elapsed().as_micros() as u64;
        if answer.abstained.is_some() {
            let chunks = self.storage.out_of_force_chunks(&reader.tenant, as_of, OUT_OF_FORCE_CHUNKS).await?;
            answer.out_of_force = crate::service::answer::out_of_force_reason(question, chunks, &reader, &self.answer);
        }
        if answer.unverified_dropped > 0 {
            tracing::warn!(dropped = answer.unverified_dropped, "citations failed verification and were dropped");
        }

        let t = checked.timings;
        self.storage
            .append_audit(AuditRecord {
                actor: self.principal_ref(actor),
                tenant: Some(actor.tenant.to_string()),
                action: "ask".to_owned(),
                outcome: answer.outcome().to_owned(),
                detail: serde_json::json!({
                    "request_id": request_id,
                    "query_hash": self.question_hash(question),
                    "as_of": as_of.to_string(),
                    "chunk_ids": passages.iter().map(|p| p.chunk.id.as_str()).collect::<Vec<_>>(),
                    "cited": answer.citations.iter().map(|c| c.chunk_id.as_str()).collect::<Vec<_>>(),
                    "coverage": answer.coverage,
                    "key_coverage": answer.key_coverage,
                    "out_of_force_hint": answer.out_of_force.is_some(),
                    "unverified_dropped": answer.unverified_dropped,
                    "suspected_injection": answer.suspected_injection,
                    "withheld": withheld,
                    "method": method.as_str(),
                    "policy": if self.data_card_gate { "allowed: data card approved" } else { "allowed: data-card gate off" },
                    "models": {
                        "embedding": self.retriever.embedder.as_ref().map(|e| e.model_sha256().to_owned()),
                        "reranker": self.retriever.reranker.as_ref().map(|r| r.model_id().to_owned()),
                        "answer_selector": self.selector.as_ref().map(|s| s.model_id().to_owned()),
                        "fusion": self.retriever.fusion.to_string(),
                    },
                    "latency_ms": started.elapsed().as_millis(),
                    "stages_us": {
                        "bm25": t.bm25_us, "embed": t.embed_us, "dense": t.dense_us,
                        "fusion": t.fusion_us, "recheck": t.recheck_us, "rerank": t.rerank_us,
                        "compose": compose_us,
                    },
                }),
            })
            .await?;
        Ok(AskOutcome { as_of, method, passages, answer, timings: t, compose_us, request_id })
    }

    /// Writes an answer to `question` from the passages of `outcome` (already checked for
    /// `actor`) with the configured generator, verifying every sentence. `None` when no generator
    /// is configured or the extractive answer found no evidence (nothing to write from). Never an
    /// error because of the generator: its failures are a [`Fallback`]. Audited without text.
    pub async fn generate(
        &self,
        actor: &Actor,
        question: &str,
        outcome: &AskOutcome,
        progress: ProgressFn,
    ) -> Result<Option<GeneratedAnswer>> {
        let Some(generator) = self.generator.clone() else { return Ok(None) };
        if outcome.answer.abstained.is_some() || outcome.passages.is_empty() {
            return Ok(None);
        }
        let passages: Vec<Passage> = outcome.passages.iter().take(generator.passages()).cloned().collect();
        let question_owned = question.trim().to_owned();
        let mut progress = progress;
        let worker = Arc::clone(&generator);
        let result = tokio::task::spawn_blocking(move || worker.generate(&question_owned, &passages, &mut progress))
            .await
            .map_err(|e| Error::internal("generation task", e))?;
        // What it cost and what verification removed; never the text.
        let (outcome_name, usage, latency_ms, removed, shown, cited, fallback) = match &result {
            Ok(g) => (
                "generated",
                (g.tokens_in, g.tokens_out),
                g.latency_ms,
                &g.removed,
                g.sentences.len(),
                g.citations.iter().map(|c| c.chunk_id.as_str()).collect::<Vec<_>>(),
                None,
            ),
            Err(f) => (
                "fallback",
                (f.usage.tokens_in, f.usage.tokens_out),
                f.latency_ms,
                &f.removed,
                0,
                Vec::new(),
                Some(f.fallback.as_str()),
            ),
        };
        let detail = serde_json::json!({
            "request_id": outcome.request_id,
            "model": generator.model(),
            "model_sha256": generator.artifact_sha256(),
            "fallback": fallback,
            "tokens_in": usage.0,
            "tokens_out": usage.1,
            "latency_ms": latency_ms,
            "sentences_shown": shown,
            "sentences_removed": removed.len(),
            "removed_reasons": removed,
            "cited": cited,
        });
        self.audit_as_asker(actor, "generate", outcome_name, detail).await?;
        Ok(Some(match result {
            Ok(generation) => GeneratedAnswer {
                model: generator.model().to_owned(),
                removed: generation.removed.clone(),
                generation: Some(generation),
                fallback: None,
                note: None,
            },
            Err(failure) => GeneratedAnswer {
                model: generator.model().to_owned(),
                generation: None,
                note: Some(failure.fallback.note().to_owned()),
                fallback: Some(failure.fallback),
                removed: failure.removed,
            },
        }))
    }

    /// Opens one passage by id for `actor` as of a date, with the neighbours in its version that
    /// the actor may read too. The same gate as [`Self::ask`]: the permission to ask, the data card
    /// of the actor's document set, then the passage's tenant, access and dates. A passage the
    /// actor may not read is "not found", exactly like one that does not exist.
    #[tracing::instrument(skip_all, fields(principal = %actor.principal_id, tenant = %actor.tenant))]
    pub async fn open_passage(&self, actor: &Actor, chunk_id: &str, as_of: NaiveDate) -> Result<PassageInContext> {
        if !actor.may(Permission::Ask) {
            self.audit_denial(actor, Permission::Ask).await?;
            return Err(Error::Forbidden);
        }
        if self.data_card_gate && !self.storage.data_card_approved(actor.tenant.as_str()).await? {
            let detail = serde_json::json!({ "policy": "blocked: the data card of the document set is not approved" });
            self.audit_as_asker(actor, "open_passage", "blocked_by_data_card", detail).await?;
            return Err(Error::user(DATA_CARD_BLOCKED));
        }
        let reader = actor.reader(as_of);
        let Some((before, passage, after)) = self.storage.passage_context(chunk_id, 1).await? else {
            return Err(Error::NotFound);
        };
        if !passage.acl.permits(&reader) {
            self.audit_denial(actor, Permission::Ask).await?;
            return Err(Error::NotFound);
        }
        let readable = |chunks: Vec<StoredChunk>| chunks.into_iter().filter(|c| c.acl.permits(&reader)).collect();
        Ok(PassageInContext { before: readable(before), passage, after: readable(after) })
    }

    /// Records that `actor` was refused `permission`.
    /// Whether the platform can answer: the database answers, the BM25 index is loaded, and
    /// the models the settings ask for are loaded.
    pub async fn readiness(&self) -> Readiness {
        let database = match self.storage.check_readable().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "readiness: the database does not answer");
                false
            }
        };
        let r = &self.retriever;
        Readiness {
            database,
            bm25_passages: r.bm25.count_all(),
            dense: self.dense_wanted.then(|| r.has_dense() && r.embedder.is_some()),
            reranker: self.reranker_wanted.then(|| r.reranker.is_some()),
        }
    }

    /// The principals anyone may sign in as with the development sign-in (no identity provider).
    pub async fn development_users(&self) -> Result<Vec<Actor>> {
        self.storage.list_actors().await
    }

    pub async fn audit_denial(&self, actor: &Actor, permission: Permission) -> Result<()> {
        self.storage
            .append_audit(AuditRecord {
                actor: actor.principal_id.clone(),
                tenant: Some(actor.tenant.to_string()),
                action: permission.as_str().to_owned(),
                outcome: "denied".to_owned(),
                detail: serde_json::json!({ "role": actor.role.as_str() }),
            })
            .await
    }

    /// Records an event of the ask flow under the keyed principal reference.
    async fn audit_as_asker(
        &self,
        actor: &Actor,
        action: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        self.storage
            .append_audit(AuditRecord {
                actor: self.principal_ref(actor),
                tenant: Some(actor.tenant.to_string()),
                action: action.to_owned(),
                outcome: outcome.to_owned(),
                detail,
            })
            .await
    }

    /// How ask events name the principal: a keyed hash, so the retrieval log does not list who
    /// asked what in clear, while a reviewer holding the key can still match a known principal.
    fn principal_ref(&self, actor: &Actor) -> String {
        format!("principal:{}", &self.question_hash(&format!("principal\0{}", actor.principal_id))[..16])
    }

    fn question_hash(&self, question: &str) -> String {
        let mut h = Sha256::new();
        h.update(&self.audit_hash_key[..]);
        h.update(question.as_bytes());
        hex::encode(h.finalize())
    }
}
