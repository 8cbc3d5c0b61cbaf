//! One typed settings struct. Loaded only by `main`: built-in defaults, then a TOML file (unknown
//! keys rejected), then environment variables and command-line flags (clap resolves those two,
//! flag over variable). Secrets are wrapped so they never print.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The share of a question's content words an answer sentence must cover.
pub const DEFAULT_ANSWER_MIN_COVERAGE: f32 = 0.5;
/// Share of the question's key terms the best quoted sentence must hold to be an answer rather
/// than a weak match (`answer_min_key_coverage`); see the release gate's change record.
pub const DEFAULT_ANSWER_MIN_KEY_COVERAGE: f32 = 0.45;
/// The answer-sentence selector's probability that answers despite a low key coverage
/// (`answer_min_selector_probability`); see the same change record.
pub const DEFAULT_ANSWER_MIN_SELECTOR_PROBABILITY: f32 = 0.2;

/// A value that must not appear in logs or debug output.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The embedding models lexgate can run. Each has its own folder under `models_dir` (set up by
/// scripts/setup-models.sh) and its own model inventory entry, so switching between them is one
/// setting and the inventory still approves whatever is loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
pub enum EmbeddingModel {
    /// lexgate's own, all-MiniLM-L6-v2 fine-tuned on regulatory questions (training/embedder/).
    #[default]
    #[value(name = "lexgate-regulatory")]
    #[serde(rename = "lexgate-regulatory")]
    LexgateRegulatory,
    /// all-MiniLM-L6-v2 as the registry ships it: the rollback.
    #[value(name = "all-minilm-l6-v2")]
    #[serde(rename = "all-minilm-l6-v2")]
    AllMinilmL6V2,
}

impl EmbeddingModel {
    /// Its folder under `models_dir`.
    pub fn folder(self) -> &'static str {
        match self {
            Self::LexgateRegulatory => "embed-regulatory",
            Self::AllMinilmL6V2 => "embed",
        }
    }

    /// Its role in the model inventory.
    pub fn inventory_role(self) -> &'static str {
        match self {
            Self::LexgateRegulatory => "embedding",
            Self::AllMinilmL6V2 => "embedding-rollback",
        }
    }
}

/// The cross-encoder rerankers lexgate ships. Each has its own folder under `models_dir` (set up by
/// scripts/setup-models.sh) and its own model inventory entry, so switching between them is one
/// setting and the inventory still approves whatever is loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
pub enum RerankerModel {
    /// A three-layer student of the six-layer model, trained on the tuned first stage's
    /// candidates (training/reranker/, run 2): the default.
    #[default]
    #[value(name = "lexgate-minilm-l3")]
    #[serde(rename = "lexgate-minilm-l3")]
    LexgateMinilmL3,
    /// The six-layer reranker it replaced (training run 1): the rollback.
    #[value(name = "lexgate-minilm-l6")]
    #[serde(rename = "lexgate-minilm-l6")]
    LexgateMinilmL6,
}

impl RerankerModel {
    /// Its folder under `models_dir`.
    pub fn folder(self) -> &'static str {
        match self {
            Self::LexgateMinilmL3 => "rerank-l3",
            Self::LexgateMinilmL6 => "rerank",
        }
    }

    /// Its role in the model inventory.
    pub fn inventory_role(self) -> &'static str {
        match self {
            Self::LexgateMinilmL3 => "reranker",
            Self::LexgateMinilmL6 => "reranker-rollback",
        }
    }
}

/// Everything the platform can be configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the web server listens on; port 0 picks a free port.
    pub bind: String,
    /// Holds the SQLite database (by default), the indexes and stored files.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; defaults to a SQLite file in `data_dir`.
    pub database_url: Option<Secret>,
    /// Folder with `lib/` (ONNX Runtime) and `embed/` (embedding model), as set up by
    /// scripts/setup-models.sh.
    pub models_dir: PathBuf,
    /// Signs session and CSRF cookies; at least 64 bytes. Random per start when absent, which
    /// signs everyone out on restart.
    pub session_key: Option<Secret>,
    /// A session's absolute lifetime in minutes, from sign-in.
    pub session_minutes: i64,
    /// A session ends after this many minutes without a request.
    pub session_idle_minutes: i64,
    /// The OpenID provider users sign in with. When set, the development sign-in is refused.
    pub oidc: Option<OidcSettings>,
    /// Passages shown per question.
    pub passages_per_answer: usize,
    /// Mark cookies `Secure` (serve behind HTTPS).
    pub secure_cookies: bool,
    /// Load the embedding model and search the dense index beside BM25.
    pub dense_retrieval: bool,
    /// Which embedding model: lexgate's own, tuned on regulatory text (the default), or the
    /// registry model it was tuned from (the rollback). Changing it needs `lexgate reindex`.
    pub embedding_model: EmbeddingModel,
    /// How BM25 and dense results are fused (`rrf:...` or `convex:...`, see `FusionConfig`).
    pub fusion: indexer::FusionConfig,
    /// Run the reranker stage when its model is present (turning it off is the rollback of the
    /// trained reranker; see governance/models/reranker-minilm-obliqa.md).
    pub reranker: bool,
    /// Which shipped reranker: the three-layer student (the default) or the six-layer model it
    /// replaced (the rollback).
    pub reranker_model: RerankerModel,
    /// Folder of a cross-encoder (model.onnx with a `logits` output, and tokenizer files), for
    /// experiments. Default: `reranker_model`'s folder under `models_dir`, used when it holds a model.
    pub reranker_dir: Option<PathBuf>,
    /// How many fused passages the reranker scores.
    pub rerank_top: usize,
    /// Detect obligations with the trained classifier under `models_dir/obligations` when it is
    /// set up; `false` uses the cue-word rules (the rollback, see
    /// governance/models/obligation-classifier-minilm.md).
    pub obligation_model: bool,
    /// Order the extractive answer's candidate sentences with the trained answer-sentence
    /// selector under `models_dir/select` when it is set up; `false` orders them by their words
    /// (the rollback, see governance/models/answer-selector-minilm.md).
    pub answer_selector: bool,
    /// Threads each ONNX Runtime session (embedding model, reranker) computes with; every core
    /// when absent.
    pub onnx_threads: Option<usize>,
    /// Folder with the platform's governance records (model inventory, data cards).
    pub governance_dir: PathBuf,
    /// Documents of a set whose data card is not approved are not retrievable.
    pub data_card_gate: bool,
    /// Share of the question's content words the best passage must contain, or the answer is
    /// "not found" (0 to 1).
    pub answer_min_coverage: f32,
    /// Share of the question's key terms (weighted by rarity among the reader's passages) the
    /// best quoted sentence must hold; below it the quotes are shown as a weak match, not as the
    /// answer (0 to 1; 0 turns the rule off).
    pub answer_min_key_coverage: f32,
    /// The answer-sentence selector's probability for the best sentence that makes it an answer
    /// despite a key coverage under `answer_min_key_coverage` (above 1: never).
    pub answer_min_selector_probability: f32,
    /// Largest upload accepted, in bytes (all files of one upload together).
    pub upload_max_bytes: u64,
    /// Most pages an uploaded PDF may have.
    pub upload_max_pages: usize,
    /// The program that reads PDFs in a child process under memory, time and output limits (the
    /// `lexgate` binary sets itself). `None` reads them in this process, with the structural
    /// checks but without the process wall; only tools and tests of the extractor do that.
    pub pdf_worker: Option<PathBuf>,
    /// Asks answered at once; more wait in a queue.
    pub ask_concurrency: usize,
    /// Asks that may wait for a free slot; one more is refused with 429 and Retry-After.
    pub ask_queue: usize,
    /// Asks one principal may make a minute (0: no limit), after a burst of `ask_burst`.
    pub ask_per_minute: u32,
    pub ask_burst: u32,
    /// Upload jobs that may run or wait at once; one more upload is refused with 429.
    pub upload_jobs_max: usize,
    /// An OpenAI-compatible chat-completions endpoint that writes answers from the permitted
    /// passages (grounded generation); `None` gives the extractive answer only.
    pub generator: Option<GeneratorSettings>,
    /// Principal ids (`oidc:SUBJECT` for provider users) whose reviewer role reads every
    /// tenant's governance records, for the operator of the whole installation. Only this
    /// setting grants it: no identity-provider claim does, and anyone else's governance reads
    /// cover their own tenant.
    pub platform_reviewers: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from(".lexgate/data"),
            database_url: None,
            models_dir: PathBuf::from(".lexgate/models"),
            session_key: None,
            session_minutes: 8 * 60,
            session_idle_minutes: 30,
            oidc: None,
            passages_per_answer: 5,
            secure_cookies: false,
            dense_retrieval: true,
            embedding_model: EmbeddingModel::default(),
            fusion: indexer::FusionConfig::default(),
            reranker: true,
            reranker_model: RerankerModel::default(),
            reranker_dir: None,
            rerank_top: indexer::retrieve::DEFAULT_RERANK_TOP,
            obligation_model: true,
            answer_selector: true,
            onnx_threads: None,
            governance_dir: PathBuf::from("governance"),
            data_card_gate: true,
            answer_min_coverage: DEFAULT_ANSWER_MIN_COVERAGE,
            answer_min_key_coverage: DEFAULT_ANSWER_MIN_KEY_COVERAGE,
            answer_min_selector_probability: DEFAULT_ANSWER_MIN_SELECTOR_PROBABILITY,
            upload_max_bytes: 25 * 1024 * 1024,
            upload_max_pages: 2000,
            pdf_worker: None,
            ask_concurrency: std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            ask_queue: 32,
            ask_per_minute: 120,
            ask_burst: 30,
            upload_jobs_max: 16,
            generator: None,
            platform_reviewers: Vec::new(),
        }
    }
}

/// The settings file: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<Secret>,
    pub models_dir: Option<PathBuf>,
    pub session_key: Option<Secret>,
    pub session_minutes: Option<i64>,
    pub session_idle_minutes: Option<i64>,
    pub oidc: Option<OidcSettings>,
    pub passages_per_answer: Option<usize>,
    pub secure_cookies: Option<bool>,
    pub dense_retrieval: Option<bool>,
    pub embedding_model: Option<EmbeddingModel>,
    pub fusion: Option<String>,
    pub reranker: Option<bool>,
    pub reranker_model: Option<RerankerModel>,
    pub reranker_dir: Option<PathBuf>,
    pub rerank_top: Option<usize>,
    pub obligation_model: Option<bool>,
    pub answer_selector: Option<bool>,
    pub onnx_threads: Option<usize>,
    pub governance_dir: Option<PathBuf>,
    pub data_card_gate: Option<bool>,
    pub answer_min_coverage: Option<f32>,
    pub answer_min_key_coverage: Option<f32>,
    pub answer_min_selector_probability: Option<f32>,
    pub upload_max_bytes: Option<u64>,
    pub upload_max_pages: Option<usize>,
    pub ask_concurrency: Option<usize>,
    pub ask_queue: Option<usize>,
    pub ask_per_minute: Option<u32>,
    pub ask_burst: Option<u32>,
    pub upload_jobs_max: Option<usize>,
    pub generator: Option<GeneratorSettings>,
    pub platform_reviewers: Option<Vec<String>>,
}

impl SettingsFile {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::user(format!("cannot read settings file {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| Error::user(format!("settings file {}: {e}", path.display())))
    }
}

impl Settings {
    /// Applies the values present in `file` over `self`.
    pub fn overlay(mut self, file: SettingsFile) -> Result<Self> {
        macro_rules! take {
            ($($field:ident),*) => { $( if let Some(v) = file.$field { self.$field = v; } )* };
        }
        take!(
            bind,
            data_dir,
            models_dir,
            session_minutes,
            session_idle_minutes,
            passages_per_answer,
            secure_cookies,
            dense_retrieval,
            embedding_model,
            reranker,
            reranker_model,
            rerank_top,
            obligation_model,
            answer_selector,
            governance_dir,
            data_card_gate,
            answer_min_coverage,
            answer_min_key_coverage,
            answer_min_selector_probability,
            upload_max_bytes,
            upload_max_pages,
            ask_concurrency,
            ask_queue,
            ask_per_minute,
            ask_burst,
            upload_jobs_max,
            platform_reviewers
        );
        if file.onnx_threads.is_some() {
            self.onnx_threads = file.onnx_threads;
        }
        if let Some(fusion) = &file.fusion {
            self.fusion = fusion.parse().map_err(|e| Error::user(format!("settings: {}", Error::from(e))))?;
        }
        if file.reranker_dir.is_some() {
            self.reranker_dir = file.reranker_dir;
        }
        if file.database_url.is_some() {
            self.database_url = file.database_url;
        }
        if file.session_key.is_some() {
            self.session_key = file.session_key;
        }
        if file.oidc.is_some() {
            self.oidc = file.oidc;
        }
        if file.generator.is_some() {
            self.generator = file.generator;
        }
        Ok(self)
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("lexgate.db").display()),
        }
    }

    pub fn bm25_dir(&self) -> PathBuf {
        self.data_dir.join("bm25")
    }

    /// The saved vector graph a start restores instead of rebuilding (links and id hashes only).
    pub fn dense_snapshot(&self) -> PathBuf {
        self.data_dir.join("vector-graph.snapshot")
    }

    /// How PDFs are read: in a worker process when one is set, with `upload_max_pages` as the
    /// page limit of every PDF (uploads, manifests and `inspect-pdf` alike).
    pub fn extractor(&self) -> indexer::Extractor {
        let mut limits = indexer::WorkerLimits::default();
        limits.pdf.max_pages = self.upload_max_pages;
        match &self.pdf_worker {
            Some(program) => indexer::Extractor::Worker { program: program.clone(), limits },
            None => indexer::Extractor::InProcess(limits.pdf),
        }
    }

    pub fn files_dir(&self) -> PathBuf {
        self.data_dir.join("files")
    }

    pub fn onnx_runtime_library(&self) -> PathBuf {
        self.models_dir.join("lib").join("libonnxruntime.so.1.32.0")
    }

    pub fn embedding_model_dir(&self) -> PathBuf {
        self.models_dir.join(self.embedding_model.folder())
    }

    /// The cross-encoder folder the reranker stage runs, or `None` when the stage is off: turned
    /// off, or no folder configured and no model set up under `models_dir`. A configured folder
    /// is returned even when it is missing, so loading it fails loudly.
    pub fn reranker_model_dir(&self) -> Option<PathBuf> {
        if !self.reranker {
            return None;
        }
        match &self.reranker_dir {
            Some(dir) => Some(dir.clone()),
            None => {
                let dir = self.models_dir.join(self.reranker_model.folder());
                dir.join("model.onnx").is_file().then_some(dir)
            }
        }
    }

    /// How to load the reranker stage's model, or `None` when the stage is off.
    pub fn reranker_config(&self) -> Option<indexer::RerankerConfig> {
        self.reranker_model_dir().map(|dir| self.cross_encoder_config(dir))
    }

    /// How to load the cross-encoder in `dir` (the reranker, the answer-sentence selector or a
    /// folder named for an experiment), with these settings' runtime library and threads.
    pub fn cross_encoder_config(&self, dir: impl Into<PathBuf>) -> indexer::RerankerConfig {
        indexer::RerankerConfig {
            threads: self.onnx_threads,
            ..indexer::RerankerConfig::new(self.onnx_runtime_library(), dir)
        }
    }

    /// How to load the answer-sentence selector, or `None` when sentences are ordered by their
    /// words: turned off, or not set up under `models_dir`.
    pub fn answer_selector_config(&self) -> Option<indexer::RerankerConfig> {
        let dir = self.models_dir.join("select");
        (self.answer_selector && dir.join("model.onnx").is_file()).then(|| self.cross_encoder_config(dir))
    }

    /// The obligation classifier's folder, or `None` for the cue-word rules: turned off, or not
    /// set up under `models_dir`.
    pub fn obligation_model_dir(&self) -> Option<PathBuf> {
        let dir = self.models_dir.join("obligations");
        (self.obligation_model && dir.join("model.onnx").is_file()).then_some(dir)
    }

    /// The obligation detector the settings choose: the trained classifier, or the rules.
    pub fn obligation_detector(&self) -> Result<std::sync::Arc<dyn indexer::ObligationDetector>> {
        Ok(match self.obligation_model_dir() {
            Some(dir) => std::sync::Arc::new(indexer::obligation::CueThenModel(indexer::ObligationModel::load(
                &self.onnx_runtime_library(),
                &dir,
                self.onnx_threads,
            )?)),
            None => {
                if self.obligation_model {
                    tracing::warn!(
                        folder = %self.models_dir.join("obligations").display(),
                        "no obligation classifier is set up (run scripts/setup-models.sh): obligations are detected by the cue-word rules"
                    );
                }
                std::sync::Arc::new(indexer::RuleDetector)
            }
        })
    }

    /// The embedding model's settings.
    /// With `onnx_threads` set, as many sessions as fit the cores at that many threads each.
    pub fn embedder_config(&self) -> indexer::EmbedderConfig {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        indexer::EmbedderConfig {
            threads: self.onnx_threads,
            sessions: self.onnx_threads.map_or(1, |t| (cores / t.max(1)).max(1)),
            ..indexer::EmbedderConfig::new(self.onnx_runtime_library(), self.embedding_model_dir())
        }
    }

    /// Rejects settings that cannot work together.
    pub fn validate(&self) -> Result<()> {
        if let Some(key) = &self.session_key
            && key.expose().len() < 64
        {
            return Err(Error::user("session_key must be at least 64 characters"));
        }
        if self.session_minutes <= 0 {
            return Err(Error::user("session_minutes must be positive"));
        }
        if self.session_idle_minutes <= 0 || self.session_idle_minutes > self.session_minutes {
            return Err(Error::user("session_idle_minutes must be positive and at most session_minutes"));
        }
        if self.passages_per_answer == 0 || self.passages_per_answer > 50 {
            return Err(Error::user("passages_per_answer must be between 1 and 50"));
        }
        if self.ask_burst == 0 {
            return Err(Error::user("ask_burst must be positive"));
        }
        if self.upload_jobs_max == 0 {
            return Err(Error::user("upload_jobs_max must be positive"));
        }
        if self.ask_concurrency == 0 {
            return Err(Error::user("ask_concurrency must be positive"));
        }
        if self.upload_max_bytes == 0 || self.upload_max_pages == 0 {
            return Err(Error::user("upload_max_bytes and upload_max_pages must be positive"));
        }
        if !(0.0..=1.0).contains(&self.answer_min_coverage) {
            return Err(Error::user("answer_min_coverage must be between 0 and 1"));
        }
        if !(0.0..=2.0).contains(&self.answer_min_selector_probability) {
            return Err(Error::user("answer_min_selector_probability must be between 0 and 2 (above 1: never)"));
        }
        if !(0.0..=1.0).contains(&self.answer_min_key_coverage) {
            return Err(Error::user("answer_min_key_coverage must be between 0 and 1"));
        }
        if self.onnx_threads.is_some_and(|t| t == 0 || t > 256) {
            return Err(Error::user("onnx_threads must be between 1 and 256"));
        }
        if self.rerank_top == 0 || self.rerank_top > 200 {
            return Err(Error::user("rerank_top must be between 1 and 200"));
        }
        if let Some(generator) = &self.generator {
            generator.validate()?;
        }
        Ok(())
    }
}

/// The `[generator]` table: where answers are written from the permitted passages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSettings {
    /// Base URL of an OpenAI-compatible server (llama.cpp's server, vLLM, Ollama); requests go to
    /// `{url}/v1/chat/completions`.
    pub url: String,
    /// The model name sent to the server, shown on the page ("generated by MODEL").
    pub model: String,
    /// sha256 of the model file the server runs; it must match the model inventory's `generator`
    /// entry, or the platform does not start.
    pub artifact_sha256: String,
    /// Sent as `Authorization: Bearer ...` when set.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// The whole request, from connecting to the last token.
    #[serde(default = "default_generator_timeout_ms")]
    pub timeout_ms: u64,
    /// Hosts the URL may name; anything else is refused at start.
    #[serde(default = "default_generator_hosts")]
    pub allowed_hosts: Vec<String>,
    /// Most tokens the model may write for one answer.
    #[serde(default = "default_generator_max_tokens")]
    pub max_tokens: u32,
    /// How many of the top passages the model reads.
    #[serde(default = "default_generator_passages")]
    pub passages: usize,
}

fn default_generator_timeout_ms() -> u64 {
    60_000
}
fn default_generator_hosts() -> Vec<String> {
    vec!["127.0.0.1".to_owned(), "localhost".to_owned(), "[::1]".to_owned()]
}
fn default_generator_max_tokens() -> u32 {
    256
}
fn default_generator_passages() -> usize {
    3
}

impl GeneratorSettings {
    /// The settings with their defaults for a server at `url` running `model`.
    pub fn new(url: &str, model: &str, artifact_sha256: &str) -> Self {
        Self {
            url: url.to_owned(),
            model: model.to_owned(),
            artifact_sha256: artifact_sha256.to_owned(),
            api_key: None,
            timeout_ms: default_generator_timeout_ms(),
            allowed_hosts: default_generator_hosts(),
            max_tokens: default_generator_max_tokens(),
            passages: default_generator_passages(),
        }
    }

    /// Checks the URL (http or https, a host in `allowed_hosts`, no credentials, query or
    /// fragment) and the limits.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: &str| Err(Error::user(format!("generator.url {:?}: {why}", self.url)));
        let Ok(uri) = self.url.parse::<ureq::http::Uri>() else {
            return bad("not a URL");
        };
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return bad("the scheme must be http or https");
        }
        let Some(authority) = uri.authority() else {
            return bad("no host");
        };
        if authority.as_str().contains('@') || uri.query().is_some() {
            return bad("credentials and query strings are not allowed (use api_key)");
        }
        let host = authority.host();
        if !self.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return bad(&format!("host {host} is not in generator.allowed_hosts"));
        }
        if self.model.trim().is_empty() {
            return Err(Error::user("generator.model must name the model"));
        }
        if self.artifact_sha256.len() != 64 || !self.artifact_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::user("generator.artifact_sha256 must be the model file's sha256 (64 hex digits)"));
        }
        if self.timeout_ms == 0 || self.max_tokens == 0 || !(1..=10).contains(&self.passages) {
            return Err(Error::user("generator.timeout_ms and max_tokens must be positive, passages between 1 and 10"));
        }
        Ok(())
    }
}

/// The provider and how its claims map to lexgate's access attributes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The issuer URL; its discovery document is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Where the provider sends the browser back: `https://lexgate.example/signin/callback`.
    pub redirect_url: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub claims: ClaimNames,
}

pub fn default_scopes() -> Vec<String> {
    vec!["profile".to_owned()]
}

/// Names of the ID-token claims that carry lexgate's access attributes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimNames {
    pub tenant: String,
    /// A list of group names (a single string is accepted as one group).
    pub groups: String,
    /// public, internal, confidential or restricted; `public` when absent.
    pub clearance: String,
    /// analyst, admin or reviewer; `analyst` when absent.
    pub role: String,
    pub name: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            tenant: "tenant".to_owned(),
            groups: "groups".to_owned(),
            clearance: "clearance".to_owned(),
            role: "lexgate_role".to_owned(),
            name: "name".to_owned(),
        }
    }
}
