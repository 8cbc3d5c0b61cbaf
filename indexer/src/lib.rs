//! lexgate's retrieval engine: text per PDF page, structure-aware chunks, access metadata, BM25
//! with the access filter inside the query, and dense embeddings from an in-process ONNX model.
//!
//! Invariant: no search in this crate returns a chunk the calling [`Reader`] may not read. Filters
//! are part of each index's query, never applied to results afterwards.

pub mod acl;
pub mod bm25;
pub mod chunk;
pub mod embed;
pub mod error;
pub mod pdf;

pub use acl::{ChunkAcl, Classification, GroupName, Reader, SourceStatus, TenantId};
pub use bm25::{Bm25Hit, Bm25Index, IndexedChunk};
pub use chunk::{Chunk, chunk_pages};
pub use embed::{Embedder, EmbedderConfig};
pub use error::{Error, Result, UserError};
pub use pdf::{PageText, extract_pages, write_text_pdf};
