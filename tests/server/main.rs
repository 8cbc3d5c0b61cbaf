//! Integration tests of the server crate: one binary, one module per area. Storage tests run on
//! SQLite and on a real PostgreSQL server (started by scripts/test.sh).

// Tests state their expectations with expect/panic; that is what a failing test is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod audit;
mod browser;
mod cli;
mod corpus;
mod generate;
mod governance;
mod ingest;
mod issue15;
mod lifecycle;
mod obligations;
mod oidc;
#[path = "../common/onnx_fixture.rs"]
mod onnx_fixture;
mod read_gate;
mod release_gate;
mod sessions;
mod storage;
mod support;
mod web;
