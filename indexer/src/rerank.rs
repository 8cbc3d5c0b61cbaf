//! The reranker stage: a cross-encoder reads the question and each of the fused top passages
//! together and scores how well the passage answers it. It runs only on passages the reader may
//! see (the caller passes their text after the access re-check), and reorders just those top
//! passages; the rest keep their fused order behind them.
//!
//! The ONNX implementation takes a cross-encoder with inputs `input_ids`, `attention_mask` (and
//! `token_type_ids` when the graph declares it) and a `logits` output of shape `[batch, 1]`,
//! through fastembed's `TextRerank` on the same ONNX Runtime library as the embedder. No
//! registry package ships such weights: lexgate trains its own (training/reranker/, model card in
//! governance/models/), and the stage runs when that model is set up.

use std::path::PathBuf;
use std::sync::Mutex;

use fastembed::{RerankInitOptionsUserDefined, TextRerank, UserDefinedRerankingModel};

use crate::embed::{ModelFolder, init_onnx_runtime, read_model_folder};
use crate::error::{Error, Result, UserError};
use crate::hit::{RetrievedHit, StageScore};

/// Scores (question, passage) pairs; higher means more relevant.
pub trait Reranker: Send + Sync + std::fmt::Debug {
    /// One score per passage, in the order given.
    fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>>;

    /// Identifies the model in audit records and the model inventory (the ONNX file's sha256).
    fn model_id(&self) -> &str;

    /// How much the cross-encoder's score counts against the fused score when the top hits are
    /// reordered: 1 orders by the cross-encoder alone (see [`rerank_hits`]).
    fn blend_weight(&self) -> f32 {
        1.0
    }
}

/// What a model folder's optional `reranker.json` says about running the model: written by the
/// training pipeline's export step, so the settings travel with the weights they were tuned for.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderSettings {
    /// The token window to run it with (question and passage together).
    max_length: Option<usize>,
    /// See [`Reranker::blend_weight`]; chosen on training questions.
    blend_weight: Option<f32>,
}

/// The token window the shipped reranker was trained with (training/reranker/train.py).
pub const DEFAULT_MAX_LENGTH: usize = 192;

/// Where a cross-encoder lives and how to run it.
#[derive(Debug, Clone)]
pub struct RerankerConfig {
    /// Path of `libonnxruntime.so.<version>` (the embedder's: a process loads one).
    pub onnx_runtime_library: PathBuf,
    /// Folder holding `model.onnx` and the tokenizer files, as for the embedder.
    pub model_dir: PathBuf,
    /// Token window for question and passage together.
    pub max_length: usize,
    /// Pairs per ONNX run.
    pub batch_size: usize,
    /// Intra-op threads; `None` lets ONNX Runtime use every core.
    pub threads: Option<usize>,
}

impl RerankerConfig {
    pub fn new(onnx_runtime_library: impl Into<PathBuf>, model_dir: impl Into<PathBuf>) -> Self {
        Self {
            onnx_runtime_library: onnx_runtime_library.into(),
            model_dir: model_dir.into(),
            max_length: DEFAULT_MAX_LENGTH,
            // Measured on 2 cores: 8 pairs per run is faster than 4, 16 or 32 at this window.
            batch_size: 8,
            threads: None,
        }
    }
}

/// A cross-encoder run in-process on ONNX Runtime.
pub struct CrossEncoder {
    model: Mutex<TextRerank>,
    model_sha256: String,
    batch_size: usize,
    blend_weight: f32,
}

impl std::fmt::Debug for CrossEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossEncoder").field("model_sha256", &self.model_sha256).finish_non_exhaustive()
    }
}

impl CrossEncoder {
    /// Loads the runtime and the model; every missing file is named in the error, and a graph
    /// without a `logits` output is refused here rather than at the first question.
    pub fn load(config: &RerankerConfig) -> Result<Self> {
        let ModelFolder { onnx, sha256: model_sha256, tokenizer_files } =
            read_model_folder(&config.model_dir, "configure a cross-encoder folder")?;
        let folder = read_folder_settings(&config.model_dir)?;
        let blend_weight = folder.blend_weight.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&blend_weight) {
            return Err(UserError::InvalidValue {
                field: "reranker.json",
                reason: format!("blend_weight must be between 0 and 1, not {blend_weight}"),
            }
            .into());
        }
        init_onnx_runtime(&config.onnx_runtime_library)?;
        let max_length = folder.max_length.unwrap_or(config.max_length);
        let mut options = RerankInitOptionsUserDefined::new().with_max_length(max_length);
        if let Some(threads) = config.threads {
            options = options.with_intra_threads(threads);
        }
        #[cfg(feature = "cuda")]
        {
            options = options.with_execution_providers(crate::embed::gpu_execution_providers());
        }
        let model =
            TextRerank::try_new_from_user_defined(UserDefinedRerankingModel::new(onnx, tokenizer_files), options)
                .map_err(|e| Error::from(UserError::OnnxRuntime(format!("loading the reranker: {e}"))))?;
        let encoder =
            Self { model: Mutex::new(model), model_sha256, batch_size: config.batch_size.max(1), blend_weight };
        encoder.score("probe question", &["probe passage"]).map_err(|e| {
            Error::from(UserError::OnnxRuntime(format!("the reranker model does not run as a cross-encoder: {e}")))
        })?;
        Ok(encoder)
    }
}

impl Reranker for CrossEncoder {
    fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>> {
        if passages.is_empty() {
            return Ok(Vec::new());
        }
        // A batch is padded to its longest pair, so passages of like length are batched together.
        let mut order: Vec<usize> = (0..passages.len()).collect();
        order.sort_by_key(|&i| passages[i].len());
        let sorted: Vec<&str> = order.iter().map(|&i| passages[i]).collect();
        let mut model = self.model.lock().map_err(|_| Error::Internal("reranker lock poisoned".into()))?;
        let ranked =
            model.rerank(query, &sorted, false, Some(self.batch_size)).map_err(|e| Error::internal("reranking", e))?;
        let mut scores = vec![f32::NEG_INFINITY; passages.len()];
        for r in ranked {
            if let Some(slot) = order.get(r.index).and_then(|&i| scores.get_mut(i)) {
                *slot = r.score;
            }
        }
        Ok(scores)
    }

    fn model_id(&self) -> &str {
        &self.model_sha256
    }

    fn blend_weight(&self) -> f32 {
        self.blend_weight
    }
}

fn read_folder_settings(dir: &std::path::Path) -> Result<FolderSettings> {
    let path = dir.join("reranker.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            UserError::InvalidValue { field: "reranker.json", reason: format!("{}: {e}", path.display()) }.into()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FolderSettings::default()),
        Err(e) => Err(Error::internal("reading reranker.json", e)),
    }
}

/// Min-max normalisation within one question's top hits (all equal: all zero).
fn normalised(xs: &[f32]) -> Vec<f32> {
    let lo = xs.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    xs.iter().map(|x| if hi > lo { (x - lo) / (hi - lo) } else { 0.0 }).collect()
}

/// Reorders the first `top_n` hits by the reranker's score of their text, blended with their
/// fused score by the reranker's [`Reranker::blend_weight`] `w`: `w * s + (1 - w) * f`, where `s`
/// and `f` are the cross-encoder and fused scores min-max normalised over the hits scored.
/// Records each one's rerank rank and raw cross-encoder score; hits after them keep their order.
/// `text` gives a hit's passage text (`None` leaves the hit unscored, after the scored ones).
pub fn rerank_hits<'a>(
    reranker: &dyn Reranker,
    query: &str,
    hits: &mut Vec<RetrievedHit>,
    text: impl Fn(&str) -> Option<&'a str>,
    top_n: usize,
) -> Result<()> {
    let n = top_n.min(hits.len());
    let head: Vec<RetrievedHit> = hits.drain(..n).collect();
    let (with_text, without): (Vec<_>, Vec<_>) = head.into_iter().partition(|h| text(&h.chunk_id).is_some());
    let texts: Vec<&str> = with_text.iter().filter_map(|h| text(&h.chunk_id)).collect();
    let scores = reranker.score(query, &texts)?;
    let w = reranker.blend_weight();
    let fused: Vec<f32> = with_text.iter().map(|h| h.fused).collect();
    let blended: Vec<f32> =
        normalised(&scores).iter().zip(normalised(&fused)).map(|(s, f)| w * s + (1.0 - w) * f).collect();
    let mut scored: Vec<(f32, f32, RetrievedHit)> =
        blended.into_iter().zip(scores).zip(with_text).map(|((b, s), h)| (b, s, h)).collect();
    // Ties keep the fused order (the sort is stable).
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut head: Vec<RetrievedHit> = scored
        .into_iter()
        .enumerate()
        .map(|(i, (_, score, mut h))| {
            h.rerank = Some(StageScore { rank: i + 1, score });
            h
        })
        .collect();
    head.extend(without);
    head.append(hits);
    *hits = head;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores a passage by its length in bytes, with a fixed blend weight.
    #[derive(Debug)]
    struct ByLength(f32);

    impl Reranker for ByLength {
        fn score(&self, _query: &str, passages: &[&str]) -> Result<Vec<f32>> {
            Ok(passages.iter().map(|p| p.len() as f32).collect())
        }
        fn model_id(&self) -> &str {
            "by-length"
        }
        fn blend_weight(&self) -> f32 {
            self.0
        }
    }

    fn hits(fused: &[(&str, f32)]) -> Vec<RetrievedHit> {
        fused
            .iter()
            .map(|(id, f)| RetrievedHit { chunk_id: (*id).into(), bm25: None, dense: None, fused: *f, rerank: None })
            .collect()
    }

    fn order(weight: f32) -> Result<Vec<String>> {
        // The cross-encoder prefers c > b > a; the first stage prefers a > b > c.
        let mut h = hits(&[("a", 1.0), ("b", 0.9), ("c", 0.1)]);
        let text = |id: &str| {
            Some(match id {
                "a" => "x",
                "b" => "xxxxxxxx",
                _ => "xxxxxxxxxx",
            })
        };
        rerank_hits(&ByLength(weight), "q", &mut h, text, 3)?;
        Ok(h.into_iter().map(|h| h.chunk_id).collect())
    }

    #[test]
    fn the_blend_weight_moves_the_order_between_the_two_scores() -> Result<()> {
        assert_eq!(order(1.0)?, ["c", "b", "a"], "the cross-encoder alone");
        assert_eq!(order(0.0)?, ["a", "b", "c"], "the fused order alone");
        // Normalised: a = (0, 1), b = (7/9, 8/9), c = (1, 0); at w = 0.5 b leads, then a and c tie
        // and keep the fused order.
        assert_eq!(order(0.5)?, ["b", "a", "c"]);
        Ok(())
    }
}
