//! Integration tests of the server crate: one binary, one module per area. Storage tests run on
//! SQLite and on a real PostgreSQL server (started by scripts/test.sh).

mod corpus;
mod ingest;
mod storage;
mod support;
mod web;
