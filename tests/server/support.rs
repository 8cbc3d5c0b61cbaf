//! Test harness: fresh databases on both backends, a platform on a temporary data folder, and
//! the shipped corpus manifest.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use indexer::{Embedder, EmbedderConfig};

use sea_orm::{ConnectionTrait, Database};
use server::service::Platform;
use server::service::manifest::Manifest;
use server::settings::{Secret, Settings};
use tempfile::TempDir;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares `sqlite` and `postgres` tests that run the async function of the same name.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() { super::$name($crate::support::Backend::Sqlite).await }
            #[tokio::test]
            async fn postgres() { super::$name($crate::support::Backend::Postgres).await }
        }
    )+};
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn corpus_manifest() -> Manifest {
    Manifest::load(&repo_root().join("corpus/manifest.toml")).expect("the shipped manifest loads")
}

fn random_suffix() -> String {
    server::domain::random_hex(6).expect("random")
}

/// A database URL for a fresh, empty database on `backend`.
pub async fn fresh_database_url(backend: Backend, dir: &TempDir) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
        Backend::Postgres => {
            let base = std::env::var("LEXGATE_TEST_POSTGRES").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
                panic!(
                    "LEXGATE_TEST_POSTGRES is not set. Run the suite with scripts/test.sh, which installs PostgreSQL \
                     (Debian package postgresql) and starts a throwaway server, or point it at a server you started: \
                     LEXGATE_TEST_POSTGRES=postgres://USER@127.0.0.1:PORT"
                )
            });
            let admin =
                Database::connect(format!("{base}/postgres")).await.expect("connect to the test PostgreSQL server");
            let name = format!("lexgate_test_{}", random_suffix());
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
            admin.close().await.ok();
            format!("{base}/{name}")
        }
    }
}

/// Settings for a platform on a temporary data folder.
pub async fn settings(backend: Backend, dir: &TempDir) -> Settings {
    Settings {
        data_dir: dir.path().join("data"),
        database_url: Some(Secret::new(fresh_database_url(backend, dir).await)),
        bind: "127.0.0.1:0".into(),
        session_key: Some(Secret::new("k".repeat(64))),
        models_dir: models_dir(),
        governance_dir: repo_root().join("governance"),
        // PDFs are read as the server reads them: by the lexgate binary as a worker process.
        pdf_worker: Some(PathBuf::from(env!("CARGO_BIN_EXE_lexgate"))),
        ..Settings::default()
    }
}

/// The folder scripts/setup-models.sh installs into. Tests that need it fail, never skip.
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("LEXGATE_MODELS_DIR")
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| repo_root().join(".lexgate/models"));
    assert!(
        dir.join("embed/model.onnx").is_file(),
        "model files missing in {}: run scripts/setup-models.sh (scripts/test.sh runs it)",
        dir.display()
    );
    dir
}

/// One embedding model for the whole test binary: loading it once keeps the suite fast.
pub fn shared_embedder() -> Arc<Embedder> {
    static EMBEDDER: OnceLock<Arc<Embedder>> = OnceLock::new();
    Arc::clone(EMBEDDER.get_or_init(|| {
        let dir = models_dir();
        let config = EmbedderConfig::new(dir.join("lib/libonnxruntime.so.1.32.0"), dir.join("embed"));
        Arc::new(Embedder::load(&config).expect("load the embedding model"))
    }))
}

/// A platform with BM25 and dense retrieval on a fresh database and data folder.
pub async fn platform(backend: Backend) -> (TempDir, Platform) {
    let dir = tempfile::tempdir().expect("tempdir");
    let platform =
        Platform::open_with(settings(backend, &dir).await, Some(shared_embedder())).await.expect("open platform");
    (dir, platform)
}

/// A platform with the shipped corpus ingested.
pub async fn corpus_platform(backend: Backend) -> (TempDir, Platform) {
    let (dir, platform) = platform(backend).await;
    platform.ingestor().ingest_manifest(&corpus_manifest(), "test", &mut |_| {}).await.expect("ingest the corpus");
    (dir, platform)
}
