//! The domain: asking and answering, documents and their lifecycle, ingestion, governance, service
//! tokens and sessions. Every entry point takes the acting [`crate::domain::Actor`]; every
//! permission decision and every audit event happens in this layer.

pub mod answer;
pub mod answer_eval;
pub mod ask;
pub mod documents;
pub mod generate;
pub mod governance;
pub mod ingest;
pub mod limits;
pub mod manifest;
pub mod obligations;
pub mod packet;
pub mod platform;
pub mod release_gate;
pub mod sessions;
pub mod tokens;
pub mod uploads;

/// Latency percentiles, for the benchmarks.
pub use indexer::scale::Latency;
pub use platform::Platform;
