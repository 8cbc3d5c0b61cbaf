//! The `lexgate` commands, one module per command group, on top of [`crate::service`]. `serve` and
//! `bench ask` start the web server and are dispatched by the binary to [`crate::http`].

pub mod bench;
pub mod corpus;
pub mod documents;
pub mod eval;
pub mod governance;
pub mod obligations;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::settings::{Secret, Settings, SettingsFile};

#[derive(Debug, Parser)]
#[command(name = "lexgate", version, about = "Governed retrieval over the regulatory documents you may read")]
pub struct Cli {
    /// TOML settings file (values there are overridden by environment variables and flags).
    #[arg(long, env = "LEXGATE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Folder for the embedded database, indexes and stored files.
    #[arg(long, env = "LEXGATE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// sqlite://... or postgres://...; defaults to a SQLite file in the data folder.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Folder prepared by scripts/setup-models.sh.
    #[arg(long, env = "LEXGATE_MODELS_DIR", global = true)]
    pub models_dir: Option<PathBuf>,
    /// Folder of the platform's governance records (model inventory); default ./governance.
    #[arg(long, env = "LEXGATE_GOVERNANCE_DIR", global = true)]
    pub governance_dir: Option<PathBuf>,
    /// Which shipped reranker: the three-layer student (default) or the six-layer model it
    /// replaced (the rollback).
    #[arg(long, env = "LEXGATE_RERANKER_MODEL", global = true, value_enum)]
    pub reranker_model: Option<crate::settings::RerankerModel>,
    /// Folder of a cross-encoder reranker, for experiments; default: `--reranker-model`'s folder
    /// under the models folder, when set up.
    #[arg(long, env = "LEXGATE_RERANKER_DIR", global = true)]
    pub reranker_dir: Option<PathBuf>,
    /// Turn the reranker stage off (the rollback of the trained reranker).
    #[arg(long, global = true)]
    pub no_reranker: bool,
    /// The embedding model: lexgate's tuned one (default) or the registry model it was tuned
    /// from (the rollback). Stored vectors of another model are replaced by `lexgate reindex`.
    #[arg(long, env = "LEXGATE_EMBEDDING_MODEL", global = true, value_enum)]
    pub embedding_model: Option<crate::settings::EmbeddingModel>,
    /// How BM25 and dense results are fused, e.g. `rrf:k=60` or `convex:bm25=0.5:dense=0.5`.
    #[arg(long = "fusion-setting", env = "LEXGATE_FUSION", global = true)]
    pub fusion_setting: Option<String>,
    /// Threads each ONNX Runtime session (embedding model, reranker) computes with; every core
    /// when absent.
    #[arg(long, env = "LEXGATE_ONNX_THREADS", global = true)]
    pub onnx_threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    #[command(flatten)]
    Corpus(corpus::CorpusCommand),
    #[command(flatten)]
    Documents(documents::DocumentsCommand),
    #[command(flatten)]
    Governance(governance::GovernanceCommand),
    /// Evaluate retrieval on a benchmark.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The obligation register: extraction from stored regulations, export.
    #[command(subcommand)]
    Obligations(obligations::ObligationsCommand),
}

pub fn settings_from(cli: &Cli) -> anyhow::Result<Settings> {
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
    if let Some(v) = cli.reranker_model {
        settings.reranker_model = v;
    }
    if let Some(v) = &cli.reranker_dir {
        settings.reranker_dir = Some(v.clone());
    }
    if cli.no_reranker {
        settings.reranker = false;
    }
    if let Some(v) = cli.embedding_model {
        settings.embedding_model = v;
    }
    if let Some(v) = cli.onnx_threads {
        settings.onnx_threads = Some(v);
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
            settings.oidc = Some(crate::settings::OidcSettings {
                issuer: issuer.clone(),
                client_id: oidc_client_id.clone().ok_or_else(|| missing("--oidc-client-id"))?,
                client_secret: Secret::new(oidc_client_secret.clone().ok_or_else(|| missing("--oidc-client-secret"))?),
                redirect_url: oidc_redirect_url.clone().ok_or_else(|| missing("--oidc-redirect-url"))?,
                scopes: crate::settings::default_scopes(),
                claims: Default::default(),
            });
        }
    }
    settings.validate()?;
    Ok(settings)
}

/// Runs every command but `serve` and `bench ask`.
pub async fn run(command: &Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => anyhow::bail!("`serve` is run by the binary"),
        Command::Corpus(c) => corpus::run(c, settings).await,
        Command::Documents(c) => documents::run(c, settings).await,
        Command::Governance(c) => governance::run(c, settings).await,
        Command::Eval(c) => eval::run(c, settings).await,
        Command::Bench(c) => bench::run(c, settings).await,
        Command::Obligations(c) => obligations::run(c, settings).await,
    }
}
