//! lexgate's server: storage, ingestion, the ask flow and the web application. `main` only loads
//! settings, installs tracing and calls [`app::Application`]; tests start the very same app.

pub mod answer;
pub mod api;
pub mod app;
pub mod ask;
pub mod audit;
pub mod bench;
pub mod documents;
pub mod domain;
pub mod entities;
pub mod error;
pub mod governance;
pub mod ingest;
pub mod limits;
pub mod manifest;
pub mod oidc;
pub mod packet;
pub mod release_gate;
pub mod session;
pub mod sessions;
pub mod settings;
pub mod storage;
pub mod tokens;
pub mod web;
pub mod web_documents;
