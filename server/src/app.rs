//! Wiring: open storage and indexes from [`Settings`] and serve the web application.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::cookie::Key;
use actix_web::{App, HttpServer, dev::Server, middleware, web};
use indexer::Bm25Index;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ingest::Ingestor;
use crate::settings::Settings;
use crate::storage::Storage;
use crate::web::{AppState, app_state, routes};

/// Storage and indexes opened from settings; shared by the server and the command-line tools.
#[derive(Debug, Clone)]
pub struct Platform {
    pub storage: Storage,
    pub bm25: Arc<Bm25Index>,
    pub settings: Arc<Settings>,
}

impl Platform {
    pub async fn open(settings: Settings) -> Result<Self> {
        settings.validate()?;
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
            Error::user(format!(
                "cannot create data directory {}: {e}",
                settings.data_dir.display()
            ))
        })?;
        let storage = Storage::connect(&settings.database_url()).await?;
        let bm25 = Arc::new(Bm25Index::open_or_create(&settings.bm25_dir()).map_err(|e| match e {
            indexer::Error::Internal(msg) if msg.contains("LockBusy") || msg.contains("lock") => Error::user(
                "the index is in use by another lexgate process (stop `lexgate serve` before running `lexgate ingest`)",
            ),
            other => Error::from(other),
        })?);
        Ok(Self {
            storage,
            bm25,
            settings: Arc::new(settings),
        })
    }

    pub fn ingestor(&self) -> Ingestor {
        Ingestor {
            storage: self.storage.clone(),
            bm25: Arc::clone(&self.bm25),
            files_dir: self.settings.files_dir(),
        }
    }

    /// The state handed to every web worker.
    pub fn app_state(&self) -> Result<AppState> {
        let (key, audit_key) = match &self.settings.session_key {
            Some(secret) => {
                let key = Key::try_from(secret.expose().as_bytes())
                    .map_err(|_| Error::user("session_key must be at least 64 bytes"))?;
                let audit: Arc<[u8]> =
                    Sha256::digest([b"audit:".as_slice(), secret.expose().as_bytes()].concat())
                        .to_vec()
                        .into();
                (key, audit)
            }
            None => {
                tracing::warn!(
                    "no session_key configured: using a random one, sessions end when the server stops"
                );
                let audit: Arc<[u8]> = crate::session::random_hex(32)?.into_bytes().into();
                (Key::generate(), audit)
            }
        };
        Ok(app_state(
            self.storage.clone(),
            Arc::clone(&self.bm25),
            key,
            audit_key,
            &self.settings,
        ))
    }
}

/// A bound, not yet running web server.
pub struct Application {
    port: u16,
    server: Server,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(platform: &Platform) -> Result<Self> {
        let state = web::Data::new(platform.app_state()?);
        let listener = TcpListener::bind(&platform.settings.bind).map_err(|e| {
            Error::user(format!("cannot listen on {}: {e}", platform.settings.bind))
        })?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(
                    middleware::DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("Referrer-Policy", "same-origin")),
                )
                .app_data(state.clone())
                .app_data(web::FormConfig::default().limit(64 * 1024))
                .configure(routes)
        })
        .workers(2)
        .listen(listener)?
        .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> Result<()> {
        self.server.await.map_err(Error::from)
    }
}
