//! The real embedding model, loaded offline from the files scripts/setup-models.sh installs.

use indexer::embed::dot;
use indexer::{Embedder, EmbedderConfig, Error, UserError};

use crate::support::models_dir;

fn config() -> EmbedderConfig {
    let dir = models_dir();
    EmbedderConfig::new(dir.join("lib/libonnxruntime.so.1.32.0"), dir.join("embed"))
}

#[test]
fn the_erasure_passage_ranks_first_for_a_question_about_deleting_customer_data() {
    let embedder = Embedder::load(&config()).expect("load the real model");
    assert_eq!(embedder.dimension(), 384);
    let passages = [
        "Major ICT-related incidents are reported to the competent authority within four hours of classification.",
        "A customer may ask the bank to erase the personal data it holds about them, and the bank must delete it without undue delay.",
        "Privileged accounts such as database administrators are reviewed every month.",
    ];
    let vectors = embedder.embed(&passages).expect("embed passages");
    let query = embedder.embed(&["rules about deleting customer data"]).expect("embed query");
    let scores: Vec<f32> = vectors.iter().map(|v| dot(&query[0], v)).collect();
    let best = scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
    assert_eq!(best, Some(1), "scores {scores:?}");
    for v in &vectors {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "vectors are unit length");
    }
    // Same text, same vector: embeddings are deterministic.
    let again = embedder.embed(&passages[1..2]).expect("embed again");
    assert!(dot(&again[0], &vectors[1]) > 0.9999);
}

#[test]
fn a_missing_model_file_is_a_clear_error() {
    let mut cfg = config();
    let empty = tempfile::tempdir().expect("tempdir");
    cfg.model_dir = empty.path().to_owned();
    let err = Embedder::load(&cfg).expect_err("no model");
    assert!(matches!(err, Error::User(UserError::MissingModelFile { .. })), "{err:?}");
    assert!(err.to_string().contains("model.onnx") && err.to_string().contains("setup-models"), "{err}");
}

#[test]
fn a_missing_runtime_library_is_a_clear_error() {
    let mut cfg = config();
    cfg.onnx_runtime_library = "/nonexistent/libonnxruntime.so.1.32.0".into();
    let err = Embedder::load(&cfg).expect_err("no runtime");
    assert!(matches!(err, Error::User(UserError::MissingModelFile { .. })), "{err:?}");
    assert!(err.to_string().contains("libonnxruntime"), "{err}");
}

#[test]
fn a_file_that_is_not_a_runtime_library_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("libonnxruntime.so.1.32.0");
    std::fs::write(&fake, b"not a shared library").expect("write");
    let err = indexer::embed::init_onnx_runtime(&fake).expect_err("bad library");
    assert!(matches!(err, Error::User(UserError::OnnxRuntime(_))), "{err:?}");
}

#[test]
fn sessions_side_by_side_embed_exactly_what_one_session_does_in_the_same_order() {
    let texts: Vec<String> = (0..37)
        .map(|i| format!("Passage {i}: {}", "the financial entity reports major incidents ".repeat(1 + i % 7)))
        .collect();
    let one = Embedder::load(&EmbedderConfig { threads: Some(1), ..config() }).expect("one session");
    let two = Embedder::load(&EmbedderConfig { threads: Some(1), sessions: 2, ..config() }).expect("two sessions");
    let mut reported = Vec::new();
    let a = one.embed_many(&texts, 4, &mut |_| {}).expect("one session embeds");
    let b = two.embed_many(&texts, 4, &mut |done| reported.push(done)).expect("two sessions embed");
    assert_eq!(a.len(), texts.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(dot(x, y) > 0.9999, "every text keeps its own vector");
    }
    assert_eq!(reported.last(), Some(&texts.len()), "progress reaches every text");
    assert!(reported.windows(2).all(|w| w[0] < w[1]), "progress only grows: {reported:?}");
}
