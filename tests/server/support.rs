//! Test harness: fresh databases on both backends, a platform on a temporary data folder, and
//! the shipped corpus manifest.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use indexer::{Embedder, EmbedderConfig};

use sea_orm::{ConnectionTrait, Database};
use server::service::Platform;
use server::service::manifest::Manifest;
use server::settings::{EmbeddingModel, Secret, Settings};
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
        Backend::Postgres => create_postgres_database("").await,
    }
}

/// The test PostgreSQL server's base URL (`scripts/test.sh` starts one).
fn postgres_base() -> String {
    std::env::var("LEXGATE_TEST_POSTGRES").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
        panic!(
            "LEXGATE_TEST_POSTGRES is not set. Run the suite with scripts/test.sh, which installs PostgreSQL \
             (Debian package postgresql) and starts a throwaway server, or point it at a server you started: \
             LEXGATE_TEST_POSTGRES=postgres://USER@127.0.0.1:PORT"
        )
    })
}

/// Creates a database under a fresh name (with `TEMPLATE x` in `template_clause`, a copy of x) and
/// returns its URL. Cloning fails while another clone of the same template is being made, so a
/// failed creation is retried.
async fn create_postgres_database(template_clause: &str) -> String {
    let base = postgres_base();
    let admin = Database::connect(format!("{base}/postgres")).await.expect("connect to the test PostgreSQL server");
    let name = format!("lexgate_test_{}", random_suffix());
    let mut attempt = 0;
    while let Err(e) = admin.execute_unprepared(&format!("CREATE DATABASE {name}{template_clause}")).await {
        attempt += 1;
        assert!(attempt < 200, "creating test database {name}: {e}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    admin.close().await.ok();
    format!("{base}/{name}")
}

/// Settings for a platform on a temporary data folder.
pub async fn settings(backend: Backend, dir: &TempDir) -> Settings {
    settings_on(dir, fresh_database_url(backend, dir).await)
}

/// Settings for a platform on a temporary data folder and the database at `url`.
fn settings_on(dir: &TempDir, url: String) -> Settings {
    Settings {
        data_dir: dir.path().join("data"),
        database_url: Some(Secret::new(url)),
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
        dir.join(EmbeddingModel::default().folder()).join("model.onnx").is_file(),
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
        let config =
            EmbedderConfig::new(dir.join("lib/libonnxruntime.so.1.32.0"), dir.join(EmbeddingModel::default().folder()));
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

/// The shipped corpus ingested once per backend and test binary: its folder (data folder and,
/// on SQLite, the database file) and, on PostgreSQL, the database to clone.
#[derive(Debug)]
struct CorpusTemplate {
    dir: TempDir,
    postgres_database: Option<String>,
}

/// Ingests the corpus into a template, on a runtime of its own (each test has its own runtime,
/// and the template outlives all of them). The template's storage is closed before it is used.
fn corpus_template(backend: Backend) -> &'static CorpusTemplate {
    static SQLITE: OnceLock<CorpusTemplate> = OnceLock::new();
    static POSTGRES: OnceLock<CorpusTemplate> = OnceLock::new();
    let cell = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    cell.get_or_init(|| {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let dir = tempfile::tempdir().expect("tempdir");
                let settings = settings(backend, &dir).await;
                let url = settings.database_url.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default();
                let platform = Platform::open_with(settings, Some(shared_embedder())).await.expect("open platform");
                platform.ingestor().ingest_manifest(&corpus_manifest(), "test", &mut |_| {}).await.expect("ingest");
                platform.storage.close().await.expect("close the template's database");
                drop(platform);
                let postgres_database = match backend {
                    Backend::Sqlite => None,
                    Backend::Postgres => url.rsplit_once('/').map(|(_, name)| name.to_owned()),
                };
                CorpusTemplate { dir, postgres_database }
            })
        })
        .join()
        .expect("the corpus template was built")
    })
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// A platform with the shipped corpus ingested: a copy of the corpus template, so every test
/// starts from exactly what an ingestion of the corpus gives, without ingesting it again.
pub async fn corpus_platform(backend: Backend) -> (TempDir, Platform) {
    corpus_platform_with(backend, |_| {}).await
}

/// [`corpus_platform`] with settings changed by `configure` before the platform opens.
pub async fn corpus_platform_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> (TempDir, Platform) {
    let template = corpus_template(backend);
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(template.dir.path(), dir.path());
    let url = match &template.postgres_database {
        None => format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
        Some(name) => create_postgres_database(&format!(" TEMPLATE {name}")).await,
    };
    let mut settings = settings_on(&dir, url);
    configure(&mut settings);
    let platform = Platform::open_with(settings, Some(shared_embedder())).await.expect("open platform");
    (dir, platform)
}
