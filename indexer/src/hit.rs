//! A retrieved chunk as every stage sees it. Its own module so that retrieval (which runs the
//! reranker) and the reranker (which reorders hits) both depend on it and not on each other.

/// A hit's position and score in one stage, rank counted from 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageScore {
    pub rank: usize,
    pub score: f32,
}

/// One retrieved chunk with every stage's view of it.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievedHit {
    pub chunk_id: String,
    pub bm25: Option<StageScore>,
    pub dense: Option<StageScore>,
    /// The fused score for hybrid, else the stage's own score; the order is by it unless the
    /// reranker ran.
    pub fused: f32,
    /// The cross-encoder's rank and score, for hits the reranker stage scored.
    pub rerank: Option<StageScore>,
}
