//! Integration tests of the indexer crate: one binary, one module per area.

mod bm25;
mod embed;
mod pdf;
mod support;
