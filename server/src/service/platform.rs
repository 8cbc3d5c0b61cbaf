//! Wiring: open storage and indexes from [`Settings`] and hand out the services built on them.

use std::sync::Arc;

use indexer::{Bm25Index, CrossEncoder, DenseIndex, DenseItem, Embedder, IndexedChunk, Reranker, Retriever};

use crate::error::{Error, Result};
use crate::service::documents::DocumentAdmin;
use crate::service::ingest::Ingestor;
use crate::settings::Settings;
use crate::store::Storage;

/// Storage and indexes opened from settings; shared by the server and the command-line tools.
#[derive(Debug, Clone)]
pub struct Platform {
    pub storage: Storage,
    pub bm25: Arc<Bm25Index>,
    /// The embedding model and the dense index built from the stored vectors, when dense
    /// retrieval is on.
    pub dense: Option<(Arc<Embedder>, Arc<DenseIndex>)>,
    /// The cross-encoder of the reranker stage, when one is configured.
    pub reranker: Option<Arc<dyn Reranker>>,
    /// Orders the extractive answer's candidate sentences, when set up and turned on.
    pub selector: Option<Arc<dyn Reranker>>,
    /// Finds obligations in regulations: the trained classifier, or the cue-word rules.
    pub obligations: Arc<dyn indexer::ObligationDetector>,
    /// The client of the answer-generation server, one per platform so its breaker is shared.
    pub generator: Option<Arc<crate::service::generate::Generator>>,
    pub settings: Arc<Settings>,
}

impl Platform {
    /// The database backend's name, for logs: `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        self.storage.backend_name()
    }

    /// Opens storage and indexes, loading the embedding model when dense retrieval is on.
    pub async fn open(settings: Settings) -> Result<Self> {
        let embedder = if settings.dense_retrieval {
            let config = settings.embedder_config();
            Some(Arc::new(
                tokio::task::spawn_blocking(move || Embedder::load(&config))
                    .await
                    .map_err(|e| Error::internal("loading the model", e))??,
            ))
        } else {
            None
        };
        Self::open_with(settings, embedder).await
    }

    /// Opens storage and indexes with an already loaded embedder (tests share one).
    pub async fn open_with(settings: Settings, embedder: Option<Arc<Embedder>>) -> Result<Self> {
        settings.validate()?;
        std::fs::create_dir_all(&settings.data_dir)
            .map_err(|e| Error::user(format!("cannot create data directory {}: {e}", settings.data_dir.display())))?;
        let storage = Storage::connect(&settings.database_url()).await?;
        let bm25 = Arc::new(Bm25Index::open_or_create(&settings.bm25_dir()).map_err(|e| match e {
            indexer::Error::Internal(msg) if msg.contains("LockBusy") || msg.contains("lock") => Error::user(
                "the index is in use by another lexgate process (stop `lexgate serve` before running `lexgate ingest`)",
            ),
            other => Error::from(other),
        })?);
        let reranker: Option<Arc<dyn Reranker>> = match settings.reranker_config() {
            Some(config) => {
                let encoder = tokio::task::spawn_blocking(move || CrossEncoder::load(&config))
                    .await
                    .map_err(|e| Error::internal("loading the reranker", e))??;
                tracing::info!(model = encoder.model_id(), "reranker stage on");
                Some(Arc::new(encoder))
            }
            None => {
                tracing::info!(
                    folder = settings.reranker_model.folder(),
                    "reranker stage off: turned off, or no model in its folder under models_dir or in reranker_dir"
                );
                None
            }
        };
        let selector: Option<Arc<dyn Reranker>> = match settings.answer_selector_config() {
            Some(config) => {
                let encoder = tokio::task::spawn_blocking(move || CrossEncoder::load(&config))
                    .await
                    .map_err(|e| Error::internal("loading the answer-sentence selector", e))??;
                Some(Arc::new(encoder))
            }
            None => {
                if settings.answer_selector {
                    tracing::warn!(
                        folder = %settings.models_dir.join("select").display(),
                        "no answer-sentence selector is set up (run scripts/setup-models.sh): answer sentences are ordered by their words"
                    );
                }
                None
            }
        };
        let obligations = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || settings.obligation_detector())
                .await
                .map_err(|e| Error::internal("loading the obligation classifier", e))??
        };
        // The models loaded must be the ones the inventory approves; checked before the dense
        // index is built, so a refused start does no further work.
        let mut loaded: Vec<(&str, &str)> = Vec::new();
        if let Some(embedder) = &embedder {
            loaded.push((settings.embedding_model.inventory_role(), embedder.model_sha256()));
        }
        if let Some(reranker) = &reranker {
            loaded.push((settings.reranker_model.inventory_role(), reranker.model_id()));
        }
        if let Some(selector) = &selector {
            loaded.push(("answer-selector", selector.model_id()));
        }
        if obligations.model_id() != indexer::RuleDetector::ID {
            loaded.push(("obligation-classifier", obligations.model_id()));
        }
        // The generator runs elsewhere; the settings declare the model file it serves, and that
        // must be the one the inventory approves.
        if let Some(generator) = &settings.generator {
            loaded.push(("generator", generator.artifact_sha256.as_str()));
        }
        crate::service::governance::check_inventory(&storage, &settings.governance_dir, &loaded).await?;
        crate::service::governance::seed_data_cards(&storage, &settings.governance_dir).await?;
        let dense = match embedder {
            Some(embedder) => {
                let index = Self::build_dense(&storage, &embedder, &settings.dense_snapshot()).await?;
                Some((embedder, Arc::new(index)))
            }
            None => None,
        };
        let generator = settings.generator.clone().map(|g| Arc::new(crate::service::generate::Generator::new(g)));
        let platform =
            Self { storage, bm25, dense, reranker, selector, obligations, generator, settings: Arc::new(settings) };
        platform.recover_after_crash().await?;
        if let Some(difference) = platform.bm25_difference().await? {
            // A crash between a database write and the index commit that follows it leaves them
            // apart; the database is the truth, so the index is rebuilt from it.
            tracing::warn!(difference = %difference, "BM25 index differs from the database; rebuilding it");
            platform.rebuild_bm25().await?;
        }
        Ok(platform)
    }

    /// Finishes what a process that died left behind. Holding the BM25 index lock means no
    /// other lexgate process is ingesting into this data folder, so a job still "running" is
    /// dead and a staged file is abandoned or waiting to be moved into place. Both are audited.
    async fn recover_after_crash(&self) -> Result<()> {
        let dead = self.storage.fail_running_jobs("the process running this job stopped before it finished").await?;
        for job in &dead {
            tracing::warn!(job = %job, "ingestion job left running by a process that stopped; marked failed");
            self.storage
                .append_audit(crate::store::AuditRecord {
                    actor: "lexgate".to_owned(),
                    tenant: None,
                    action: "ingest_job_abandoned".to_owned(),
                    outcome: "failed".to_owned(),
                    detail: serde_json::json!({ "job": job }),
                })
                .await?;
        }
        let sweep = crate::service::ingest::sweep_file_store(&self.storage, &self.settings.files_dir()).await?;
        if sweep != crate::service::ingest::SweepReport::default() {
            tracing::warn!(finished = sweep.finished.len(), removed = sweep.removed.len(), "file store swept");
            self.storage
                .append_audit(crate::store::AuditRecord {
                    actor: "lexgate".to_owned(),
                    tenant: None,
                    action: "file_store_sweep".to_owned(),
                    outcome: "succeeded".to_owned(),
                    detail: serde_json::to_value(&sweep).map_err(|e| Error::internal("sweep report", e))?,
                })
                .await?;
        }
        Ok(())
    }

    /// Where the BM25 index and the database disagree (chunks per version, approved chunks per
    /// version, total), or `None` when they agree.
    pub async fn bm25_difference(&self) -> Result<Option<String>> {
        let versions = self.storage.version_fingerprints().await?;
        let mut total = 0u64;
        for ((document_id, version), (chunks, approved)) in &versions {
            total += chunks;
            let in_index = self.bm25.count_version(document_id, *version, false)? as u64;
            let approved_in_index = self.bm25.count_version(document_id, *version, true)? as u64;
            if (in_index, approved_in_index) != (*chunks, *approved) {
                return Ok(Some(format!(
                    "{document_id} v{version}: database {chunks} chunks ({approved} approved), index {in_index} ({approved_in_index})"
                )));
            }
        }
        let indexed = self.bm25.count_all() as u64;
        Ok((indexed != total).then(|| format!("database {total} chunks, index {indexed}")))
    }

    /// Replaces the BM25 index with one built from the database, in one commit. Returns the
    /// number of chunks indexed.
    pub async fn rebuild_bm25(&self) -> Result<usize> {
        let rows = self.storage.indexable_chunks(None).await?;
        let bm25 = Arc::clone(&self.bm25);
        tokio::task::spawn_blocking(move || {
            let indexed: Vec<IndexedChunk<'_>> = rows.iter().map(crate::store::IndexableChunk::indexed).collect();
            bm25.replace_all(&indexed).map(|()| indexed.len())
        })
        .await
        .map_err(|e| Error::internal("rebuilding the BM25 index", e))?
        .map_err(Error::from)
    }

    /// Rebuilds every index from the database alone: embeds chunks that have no vector from the
    /// loaded model (a changed model, or vectors lost), adds them to the dense index (which was
    /// itself built from the database when the platform opened, so tombstones are gone), and
    /// rebuilds BM25. Returns what it did.
    pub async fn reindex(&self, progress: &mut (dyn FnMut(usize, usize) + Send)) -> Result<ReindexReport> {
        let started = std::time::Instant::now();
        let mut report = ReindexReport::default();
        if let Some((embedder, dense)) = &self.dense {
            let missing = self.storage.chunks_missing_vectors(embedder.model_sha256()).await?;
            report.embedded = missing.len();
            if !missing.is_empty() {
                let texts: Vec<String> = missing.iter().map(|c| c.chunk.text.clone()).collect();
                let model = Arc::clone(embedder);
                let vectors = {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                    let total = texts.len();
                    let task = tokio::task::spawn_blocking(move || {
                        model.embed_many(&texts, 32, &mut |done| {
                            let _ = tx.send(done);
                        })
                    });
                    while let Some(done) = rx.recv().await {
                        progress(done, total);
                    }
                    task.await.map_err(|e| Error::internal("embedding task", e))??
                };
                let rows: Vec<(&str, &str, &[f32])> = missing
                    .iter()
                    .zip(&vectors)
                    .map(|(c, v)| (c.chunk.id.as_str(), c.chunk.text.as_str(), v.as_slice()))
                    .collect();
                self.storage.replace_vectors(embedder.model_sha256(), &rows).await?;
                // The new vectors join the live index; ids already present are replaced.
                let items: Vec<DenseItem<'_>> = missing
                    .iter()
                    .zip(&vectors)
                    .map(|(c, v)| DenseItem {
                        chunk_id: &c.chunk.id,
                        document_id: &c.document_id,
                        version: c.version,
                        acl: &c.acl,
                        vector: v,
                    })
                    .collect();
                dense.add(&items)?;
            }
            report.vectors = dense.len();
        }
        report.bm25_chunks = self.rebuild_bm25().await?;
        report.consistent = self.bm25_difference().await?.is_none();
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Refuses to answer from a dense index that lacks passages: after the embedding model
    /// changes, the stored vectors are another model's until `lexgate reindex` replaces them, and
    /// vectors of two models are never searched together.
    pub async fn require_complete_vectors(&self) -> Result<()> {
        let Some((embedder, _)) = &self.dense else { return Ok(()) };
        let missing = self.storage.count_chunks_missing_vectors(embedder.model_sha256()).await?;
        if missing > 0 {
            return Err(Error::user(format!(
                "{missing} stored passages have no vector from the embedding model loaded ({}, sha256 {}); \
                 run `lexgate reindex` to embed them with it, or start with the model they were embedded with",
                self.settings.embedding_model.inventory_role(),
                embedder.model_sha256()
            )));
        }
        Ok(())
    }

    /// Builds the dense index from the vectors stored for the loaded model, restoring the graph
    /// from the snapshot of the last start when it still fits them (see
    /// `DenseIndex::add_with_snapshot`).
    async fn build_dense(storage: &Storage, embedder: &Embedder, snapshot: &std::path::Path) -> Result<DenseIndex> {
        let stored = storage.vectors(embedder.model_sha256()).await?;
        let dimension = embedder.dimension();
        let snapshot = snapshot.to_owned();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let index = DenseIndex::new(dimension, stored.len());
            let items: Vec<DenseItem<'_>> = stored.iter().map(crate::store::StoredVector::as_item).collect();
            let used = index.add_with_snapshot(&items, &snapshot)?;
            tracing::info!(
                vectors = stored.len(),
                restored = used.restored,
                inserted = used.inserted,
                seconds = started.elapsed().as_secs_f64(),
                "dense index built"
            );
            Ok(index)
        })
        .await
        .map_err(|e| Error::internal("building the dense index", e))?
    }

    /// The retriever over this platform's indexes.
    pub fn retriever(&self) -> Retriever {
        Retriever {
            bm25: Arc::clone(&self.bm25),
            dense: self.dense.as_ref().map(|(_, d)| Arc::clone(d)),
            embedder: self.dense.as_ref().map(|(e, _)| Arc::clone(e)),
            fusion: self.settings.fusion,
            reranker: self.reranker.clone(),
            rerank_top: self.settings.rerank_top,
        }
    }

    /// Document administration (status changes and deletion) over this platform's stores.
    /// The ask service, with the key that makes audit references to askers.
    pub fn ask_service(&self, audit_hash_key: Arc<[u8]>) -> crate::service::ask::AskService {
        let settings = &self.settings;
        crate::service::ask::AskService {
            storage: self.storage.clone(),
            retriever: self.retriever(),
            audit_hash_key,
            data_card_gate: settings.data_card_gate,
            answer: crate::service::answer::AnswerConfig {
                min_coverage: settings.answer_min_coverage,
                min_key_coverage: settings.answer_min_key_coverage,
                min_selector_probability: settings.answer_min_selector_probability,
                ..Default::default()
            },
            admission: crate::service::ask::Admission::new(settings.ask_concurrency, settings.ask_queue),
            rate: crate::service::limits::RateLimiter::new(settings.ask_per_minute, settings.ask_burst),
            dense_wanted: settings.dense_retrieval,
            reranker_wanted: settings.reranker_model_dir().is_some(),
            generator: self.generator.clone(),
            selector: self.selector.clone(),
        }
    }

    /// Uploads through the page and the API, one ingesting at a time.
    pub fn uploads(&self) -> crate::service::uploads::Uploads {
        crate::service::uploads::Uploads::new(
            self.storage.clone(),
            self.documents(),
            self.ingestor(),
            self.settings.upload_max_pages,
            self.settings.upload_jobs_max,
        )
    }

    /// Sign-in, sessions and bearer tokens; `refusals_per_minute` refused requests per client
    /// address are audited.
    pub fn sessions(&self, refusals_per_minute: u32) -> crate::service::sessions::Sessions {
        crate::service::sessions::Sessions::new(
            self.storage.clone(),
            crate::service::sessions::SessionPolicy {
                absolute_minutes: self.settings.session_minutes,
                idle_minutes: self.settings.session_idle_minutes,
            },
            crate::service::limits::RateLimiter::new(refusals_per_minute, refusals_per_minute),
        )
    }

    /// Service tokens, for admins.
    pub fn tokens(&self) -> crate::service::tokens::Tokens {
        crate::service::tokens::Tokens::new(self.storage.clone())
    }

    /// Governance records, for reviewers and admins.
    pub fn governance(&self) -> crate::service::governance::Governance {
        crate::service::governance::Governance::new(self.storage.clone(), Arc::clone(&self.settings))
    }

    /// The obligation register.
    pub fn register(&self) -> crate::service::obligations::Register {
        crate::service::obligations::Register::new(
            self.storage.clone(),
            self.retriever(),
            Arc::clone(&self.obligations),
            self.settings.data_card_gate,
        )
    }

    /// A principal by id, for commands run by the operator on someone's authority.
    pub async fn actor(&self, principal_id: &str) -> Result<Option<crate::domain::Actor>> {
        self.storage.actor(principal_id).await
    }

    /// Searches as `reader`: ranked, filtered and re-checked against the database, as the ask
    /// flow does (the operator's `lexgate search`).
    pub async fn search(
        &self,
        reader: &indexer::Reader,
        question: &str,
        method: indexer::Method,
        limit: usize,
    ) -> Result<crate::service::ask::CheckedRetrieval> {
        crate::service::ask::retrieve_checked(
            &self.storage,
            &self.retriever(),
            reader,
            question,
            method,
            limit,
            self.settings.data_card_gate,
        )
        .await
    }

    pub fn documents(&self) -> DocumentAdmin {
        DocumentAdmin {
            storage: self.storage.clone(),
            bm25: Arc::clone(&self.bm25),
            dense: self.dense.as_ref().map(|(_, d)| Arc::clone(d)),
            retriever: self.retriever(),
            files_dir: self.settings.files_dir(),
            dense_snapshot: self.settings.dense_snapshot(),
            data_dir: self.settings.data_dir.clone(),
        }
    }

    pub fn ingestor(&self) -> Ingestor {
        Ingestor {
            storage: self.storage.clone(),
            bm25: Arc::clone(&self.bm25),
            files_dir: self.settings.files_dir(),
            dense: self.dense.clone(),
            extractor: self.settings.extractor(),
            obligations: Arc::clone(&self.obligations),
        }
    }
}

/// What `reindex` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReindexReport {
    /// Chunks embedded because no vector of the loaded model was stored for them.
    pub embedded: usize,
    /// Live vectors in the dense index afterwards.
    pub vectors: usize,
    pub bm25_chunks: usize,
    /// The BM25 index agrees with the database afterwards.
    pub consistent: bool,
    pub seconds: f64,
}
