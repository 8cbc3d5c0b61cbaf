//! The ONNX cross-encoder path of the reranker stage, on the real ONNX Runtime and the real
//! MiniLM tokenizer, with the generated graph of `tests/common/onnx_fixture.rs` (its logits are
//! the passage's token count, so tokenisation, pairing, truncation, batching and the output wiring
//! are checkable exactly).

use std::path::Path;

use indexer::{CrossEncoder, Error, Reranker, RerankerConfig, RetrievedHit, StageScore, UserError, rerank_hits};

use crate::onnx_fixture::write_model_folder;
use crate::support::models_dir;

/// A model folder: the generated graph and the embedding model's tokenizer files.
fn model_folder(dir: &Path, output: &str) {
    write_model_folder(dir, output, &models_dir());
}

fn config(dir: &Path) -> RerankerConfig {
    RerankerConfig::new(models_dir().join("lib/libonnxruntime.so.1.32.0"), dir)
}

#[test]
fn the_cross_encoder_scores_each_pair_through_onnx_runtime() {
    let dir = tempfile::tempdir().unwrap();
    model_folder(dir.path(), "logits");
    let mut cfg = config(dir.path());
    cfg.batch_size = 2;
    let encoder = CrossEncoder::load(&cfg).expect("load the cross-encoder");
    assert_eq!(encoder.model_id().len(), 64);

    // Each word below is one word piece; the passage segment adds [SEP].
    let passages = ["risk", "risk risk risk", "risk risk", "risk risk risk risk risk"];
    let scores = encoder.score("what is the risk", &passages).unwrap();
    assert_eq!(scores, vec![2.0, 4.0, 3.0, 6.0], "scores stay in input order across batches");

    // Question and passage together are cut to the token window.
    let long = "risk ".repeat(1000);
    let scores = encoder.score("what is the risk", &[long.as_str()]).unwrap();
    let window = indexer::rerank::DEFAULT_MAX_LENGTH as f32;
    assert!(scores[0] > window - 40.0 && scores[0] < window, "{scores:?}");
    assert!(encoder.score("q", &[]).unwrap().is_empty());
}

#[test]
fn the_reranker_stage_reorders_the_top_hits_by_cross_encoder_score() {
    let dir = tempfile::tempdir().unwrap();
    model_folder(dir.path(), "logits");
    let encoder = CrossEncoder::load(&config(dir.path())).unwrap();
    let texts = [("a", "risk"), ("b", "risk risk risk"), ("c", "risk risk"), ("d", "risk risk risk risk")];
    let mut hits: Vec<RetrievedHit> = texts
        .iter()
        .enumerate()
        .map(|(i, (id, _))| RetrievedHit {
            chunk_id: (*id).to_owned(),
            bm25: Some(StageScore { rank: i + 1, score: 10.0 - i as f32 }),
            dense: None,
            fused: 10.0 - i as f32,
            rerank: None,
        })
        .collect();
    let text = |id: &str| texts.iter().find(|(k, _)| *k == id).map(|(_, t)| *t);
    rerank_hits(&encoder, "risk?", &mut hits, text, 3).unwrap();
    let order: Vec<&str> = hits.iter().map(|h| h.chunk_id.as_str()).collect();
    // The top three are reordered by passage length; "d" was outside the top three and stays last.
    assert_eq!(order, ["b", "c", "a", "d"]);
    assert_eq!(hits[0].rerank, Some(StageScore { rank: 1, score: 4.0 }));
    assert_eq!(hits[3].rerank, None);
    assert_eq!(hits[0].bm25.map(|s| s.rank), Some(2), "earlier stages' scores are kept");
}

#[test]
fn a_missing_or_wrong_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    match CrossEncoder::load(&config(dir.path())) {
        Err(Error::User(UserError::MissingModelFile { path, .. })) => assert!(path.ends_with("model.onnx")),
        other => panic!("expected a missing-file error, got {other:?}"),
    }
    model_folder(dir.path(), "scores");
    let err = CrossEncoder::load(&config(dir.path())).expect_err("no logits output");
    assert!(err.to_string().contains("reranker"), "{err}");
}

/// The reranker lexgate ships (trained by training/reranker/, installed by setup-models.sh), on
/// regulatory passages it has not seen: the passage that answers the question scores highest.
#[test]
fn the_shipped_reranker_scores_the_answering_passage_highest() {
    let dir = models_dir().join("rerank");
    let encoder = CrossEncoder::load(&config(&dir)).expect("the shipped reranker (run scripts/setup-models.sh)");
    // Each case: the question, four passages, and which passage answers it.
    let cases: [(&str, [&str; 4], usize); 3] = [
        (
            "How long must customer identification records be kept after the business relationship ends?",
            [
                "Customer identification records and transaction files shall be retained for at least five years \
                 after the end of the business relationship with the customer.",
                "The board of directors shall approve the firm's risk appetite statement at least once a year.",
                "Firms must report major ICT-related incidents to the competent authority without undue delay.",
                "Customer complaints shall be acknowledged in writing within five business days of receipt.",
            ],
            0,
        ),
        (
            "When must a major ICT-related incident be reported to the competent authority?",
            [
                "The compliance function shall report to the board at least annually on the adequacy of controls.",
                "An initial notification of a major ICT-related incident shall be submitted to the competent \
                 authority within four hours of its classification as major.",
                "Personal data shall be erased without undue delay where it is no longer necessary.",
                "The ICT risk management framework shall be documented and reviewed at least once a year.",
            ],
            1,
        ),
        (
            "Who must approve the firm's remuneration policy?",
            [
                "Client money shall be held in a segregated account with an eligible bank.",
                "An Authorised Person must keep records of every order received from a client.",
                "The remuneration policy shall be approved by the Governing Body, which is responsible for \
                 overseeing its implementation.",
                "Variable remuneration shall be deferred over a period of at least three years.",
            ],
            2,
        ),
    ];
    for (question, passages, answering) in cases {
        let scores = encoder.score(question, &passages).unwrap();
        let best = (0..passages.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
        assert_eq!(best, answering, "{question}: scores {scores:?}");
    }
}
