//! The web server: the state every worker shares and the bound application.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::cookie::Key;
use actix_web::{App, HttpServer, dev::Server, web};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::http::{AppState, app_state, routes};
use crate::service::Platform;

/// The web application's state. A dense index missing passages (the embedding model changed
/// without a reindex) stops the start. With an OpenID provider configured, its discovery document
/// and keys are fetched first, and a provider that cannot be reached stops the start.
pub async fn shared_state(platform: &Platform) -> Result<AppState> {
    platform.require_complete_vectors().await?;
    let oidc = match &platform.settings.oidc {
        Some(settings) => {
            let settings = settings.clone();
            let client = tokio::task::spawn_blocking(move || crate::http::oidc::OidcClient::discover(settings))
                .await
                .map_err(|e| Error::internal("OpenID discovery task", e))??;
            Some(Arc::new(client))
        }
        None => None,
    };
    let (key, audit_key) = match &platform.settings.session_key {
        Some(secret) => {
            let key = Key::try_from(secret.expose().as_bytes())
                .map_err(|_| Error::user("session_key must be at least 64 bytes"))?;
            let audit: Arc<[u8]> =
                Sha256::digest([b"audit:".as_slice(), secret.expose().as_bytes()].concat()).to_vec().into();
            (key, audit)
        }
        None => {
            tracing::warn!("no session_key configured: using a random one, sessions end when the server stops");
            let audit: Arc<[u8]> = crate::domain::random_hex(32)?.into_bytes().into();
            (Key::generate(), audit)
        }
    };
    Ok(app_state(platform, key, audit_key, oidc))
}

/// A bound, not yet running web server.
pub struct Application {
    port: u16,
    server: Server,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("port", &self.port).finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(platform: &Platform) -> Result<Self> {
        let state = web::Data::new(shared_state(platform).await?);
        let listener = TcpListener::bind(&platform.settings.bind)
            .map_err(|e| Error::user(format!("cannot listen on {}: {e}", platform.settings.bind)))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(routes))
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
