//! Integration tests of the indexer crate: one binary, one module per area.

// Tests state their expectations with expect/panic; that is what a failing test is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bm25;
mod dense;
mod embed;
#[path = "../common/onnx_fixture.rs"]
mod onnx_fixture;
mod pdf;
mod rerank;
mod support;
