//! Which sentences of a regulation state an obligation. Two detectors answer the same question:
//! [`RuleDetector`], deontic cue words (the baseline and the rollback), and [`ObligationModel`],
//! the classifier lexgate trains (training/obligations/, model card in governance/models/). The
//! model is a cross-encoder of the reranker's shape reading a fixed prompt and the sentence, so it
//! runs through [`CrossEncoder`] unchanged; its folder's `obligations.json` names the prompt, the
//! token window and the decision threshold it was trained with.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use crate::error::{Error, Result, UserError};
use crate::rerank::{CrossEncoder, Reranker, RerankerConfig};

/// Decides, for each sentence, whether it states an obligation.
pub trait ObligationDetector: Send + Sync + std::fmt::Debug {
    fn detect(&self, sentences: &[&str]) -> Result<Vec<bool>>;

    /// Identifies the detector in records and the inventory: `rules-v1`, or the model file's sha256.
    fn model_id(&self) -> &str;
}

/// Cue words of a duty or a prohibition. Permissions ("may"), encouragement ("is encouraged to")
/// and recommendations alone are not obligations.
static CUES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(shall|must|(is|are|be|been) (required|obliged|obligated|expected) to|(has|have) to|may not|(is|are) (prohibited|not permitted) from|(is|are) prohibited|(is|are) responsible for ensuring)\b",
    )
    .unwrap_or_else(|_| unreachable!("the cue pattern is a valid regex"))
});

/// A wider net than [`CUES`]: words near which obligations are written ("expects", "mandates",
/// "is responsible", "only", ...). Sentences without any go to no detector: on the labelled
/// sentences this keeps nearly every obligation and drops most of the text a classifier would
/// otherwise read (see training/obligations/README.md for the figures).
static CANDIDATE_CUES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(shall|must|requires?|required|requirements?|obliged?|obliges|obligat\w*|responsib\w*|ensure|prohibit\w*|permit\w*|may not|should|has to|have to|needs? to|expects?|expected|is to|are to|will|mandat\w*|restricted|limited|only|payable|liable|subject to)\b",
    )
    .unwrap_or_else(|_| unreachable!("the candidate pattern is a valid regex"))
});

/// Whether a sentence is worth a detector's time: it holds a word near which obligations are
/// written. Extraction asks the detector only about these.
pub fn is_candidate(sentence: &str) -> bool {
    CANDIDATE_CUES.is_match(sentence)
}

/// The baseline: a sentence states an obligation when it holds a deontic cue.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleDetector;

impl RuleDetector {
    pub const ID: &'static str = "rules-v1";

    pub fn is_obligation(sentence: &str) -> bool {
        CUES.is_match(sentence)
    }
}

impl ObligationDetector for RuleDetector {
    fn detect(&self, sentences: &[&str]) -> Result<Vec<bool>> {
        Ok(sentences.iter().map(|s| Self::is_obligation(s)).collect())
    }

    fn model_id(&self) -> &str {
        Self::ID
    }
}

/// What `obligations.json` in the model folder says; written by training/obligations/train.py.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderSettings {
    prompt: String,
    max_length: usize,
    threshold: f32,
}

/// The trained classifier, run in-process on ONNX Runtime.
#[derive(Debug)]
pub struct ObligationModel {
    encoder: CrossEncoder,
    prompt: String,
    threshold: f32,
}

impl ObligationModel {
    /// Loads the model from `model_dir` (model.onnx, tokenizer files, obligations.json) on the
    /// process's ONNX Runtime library; every missing file is named in the error.
    pub fn load(onnx_runtime_library: &Path, model_dir: &Path, threads: Option<usize>) -> Result<Self> {
        let path = model_dir.join("obligations.json");
        let text = std::fs::read_to_string(&path).map_err(|_| UserError::MissingModelFile {
            path: path.clone(),
            hint: "run scripts/setup-models.sh".to_owned(),
        })?;
        let settings: FolderSettings = serde_json::from_str(&text).map_err(|e| UserError::InvalidValue {
            field: "obligations.json",
            reason: format!("{}: {e}", path.display()),
        })?;
        let config = RerankerConfig {
            max_length: settings.max_length,
            batch_size: 16,
            threads,
            ..RerankerConfig::new(PathBuf::from(onnx_runtime_library), model_dir)
        };
        let encoder = CrossEncoder::load(&config)?;
        Ok(Self { encoder, prompt: settings.prompt, threshold: settings.threshold })
    }

    /// The classifier's logit for each sentence (above the threshold: an obligation).
    pub fn scores(&self, sentences: &[&str]) -> Result<Vec<f32>> {
        self.encoder.score(&self.prompt, sentences)
    }
}

impl ObligationDetector for ObligationModel {
    fn detect(&self, sentences: &[&str]) -> Result<Vec<bool>> {
        let scores = self.scores(sentences)?;
        if scores.iter().any(|s| !s.is_finite()) {
            return Err(Error::Internal("the obligation model returned a score that is not a number".into()));
        }
        Ok(scores.into_iter().map(|s| s > self.threshold).collect())
    }

    fn model_id(&self) -> &str {
        self.encoder.model_id()
    }
}

/// The classifier behind the cue words: a sentence with a deontic cue is an obligation as the
/// rules say, and the classifier decides only the others (those the rules would miss). On the
/// labelled sentences this measures like the classifier alone at a fraction of its work
/// (`lexgate eval obligations` prints all three); it is what extraction runs.
#[derive(Debug)]
pub struct CueThenModel(pub ObligationModel);

impl ObligationDetector for CueThenModel {
    fn detect(&self, sentences: &[&str]) -> Result<Vec<bool>> {
        let mut verdicts: Vec<bool> = sentences.iter().map(|s| RuleDetector::is_obligation(s)).collect();
        let open: Vec<usize> = (0..sentences.len()).filter(|&i| !verdicts[i]).collect();
        let texts: Vec<&str> = open.iter().map(|&i| sentences[i]).collect();
        for (i, yes) in open.into_iter().zip(self.0.detect(&texts)?) {
            verdicts[i] = yes;
        }
        Ok(verdicts)
    }

    fn model_id(&self) -> &str {
        self.0.model_id()
    }
}

/// The validation side of the labelled sentences, fixed by a hash of the text: the first eight
/// bytes of sha256("lexgate-obligations-split-v1:" + text), big-endian, are 0 modulo 5. The
/// training script (training/obligations/train.py) applies the same rule.
pub fn in_validation_split(text: &str) -> bool {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("lexgate-obligations-split-v1:{text}").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8])) % 5 == 0
}

/// Precision, recall, F1 and accuracy of one detector against labels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Classification {
    pub sentences: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub accuracy: f64,
}

impl Classification {
    pub fn of(predicted: &[bool], gold: &[bool]) -> Self {
        let count = |f: &dyn Fn(bool, bool) -> bool| predicted.iter().zip(gold).filter(|&(&p, &g)| f(p, g)).count();
        let (tp, fp, fn_) = (count(&|p, g| p && g), count(&|p, g| p && !g), count(&|p, g| !p && g));
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        let accuracy = ratio(count(&|p, g| p == g), gold.len());
        Self { sentences: gold.len(), precision, recall, f1, accuracy }
    }
}

/// One labelled sentence of the evaluation file (`[{"Text": ..., "Obligation": true}]`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LabelledSentence {
    #[serde(rename = "Text")]
    pub text: String,
    #[serde(rename = "Obligation")]
    pub obligation: bool,
}

/// Reads a labelled-sentence file; a malformed file is a clear error naming it.
pub fn read_labelled(path: &Path) -> Result<Vec<LabelledSentence>> {
    let text = std::fs::read_to_string(path).map_err(|e| UserError::InvalidValue {
        field: "sentences",
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    serde_json::from_str(&text).map_err(|e| {
        UserError::InvalidValue {
            field: "sentences",
            reason: format!("{} is not a list of {{Text, Obligation}} objects: {e}", path.display()),
        }
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_take_duties_and_prohibitions_but_not_permissions() {
        for s in [
            "Financial entities shall report major incidents.",
            "A firm must not accept cash.",
            "The controller is required to keep records.",
            "Staff may not share passwords.",
        ] {
            assert!(RuleDetector::is_obligation(s), "{s}");
        }
        for s in ["The FSRA may issue guidance.", "Firms are encouraged to plan.", "Marshall the data."] {
            assert!(!RuleDetector::is_obligation(s), "{s}");
        }
    }

    #[test]
    fn measures_count_each_kind_of_error() {
        let m = Classification::of(&[true, true, false, false], &[true, false, true, false]);
        assert_eq!((m.precision, m.recall, m.f1, m.accuracy), (0.5, 0.5, 0.5, 0.5));
    }
}
