//! lexgate's retrieval engine: text per PDF page, structure-aware chunks, access metadata, BM25
//! with the access filter inside the query, dense embeddings from an in-process ONNX model in an
//! HNSW index searched with the same filter, and their fusion.
//!
//! Invariant: no search in this crate returns a chunk the calling [`Reader`] may not read. Filters
//! are part of each index's query, never applied to results afterwards.

pub mod acl;
pub mod bm25;
pub mod chunk;
pub mod dense;
pub mod embed;
pub mod error;
pub mod eval;
pub mod hit;
pub mod hnsw;
pub mod obligation;
pub mod pdf;
pub mod pdf_worker;
pub mod pii;
pub mod rerank;
pub mod retrieve;
pub mod scale;

pub use acl::{ChunkAcl, Classification, GroupName, Reader, SourceStatus, TenantId};
pub use bm25::{Bm25Hit, Bm25Index, IndexedChunk};
pub use chunk::{Chunk, chunk_pages};
pub use dense::{DenseHit, DenseIndex, DenseItem, DensePlan, SnapshotUse};
pub use embed::{Embedder, EmbedderConfig};
pub use error::{Error, Result, UserError};
pub use hit::{RetrievedHit, StageScore};
pub use obligation::{ObligationDetector, ObligationModel, RuleDetector};
pub use pdf::{PageText, PdfLimits, extract_pages, extract_pages_with, write_text_pdf};
pub use pdf_worker::{Extractor, WorkerLimits};
pub use pii::PiiCounts;
pub use rerank::{CrossEncoder, Reranker, RerankerConfig, rerank_hits};
pub use retrieve::{FusionConfig, FusionKind, Method, Retrieval, Retriever};
