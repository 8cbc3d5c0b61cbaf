//! The ONNX cross-encoder path of the reranker stage, on the real ONNX Runtime and the real
//! MiniLM tokenizer. No cross-encoder weights ship in any registry package, so the graph here is a
//! small one written by the test: its `logits` are the number of passage tokens in each pair
//! (`sum(token_type_ids * attention_mask)`), which makes tokenisation, pairing, truncation,
//! batching and the output wiring checkable exactly.

use std::path::Path;

use indexer::{CrossEncoder, Error, Reranker, RerankerConfig, RetrievedHit, StageScore, UserError, rerank_hits};

use crate::support::models_dir;

// --- A minimal protobuf writer for ONNX ModelProto -----------------------------------------

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn int_field(field: u64, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(field << 3, &mut out);
    varint(v, &mut out);
    out
}

fn bytes_field(field: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint((field << 3) | 2, &mut out);
    varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// ValueInfoProto of a 2-d tensor with symbolic dimensions.
fn tensor_info(name: &str, elem_type: u64, dims: [&str; 2]) -> Vec<u8> {
    let shape: Vec<u8> = dims.iter().flat_map(|d| bytes_field(1, &bytes_field(2, d.as_bytes()))).collect();
    let tensor = [int_field(1, elem_type), bytes_field(2, &shape)].concat();
    [bytes_field(1, name.as_bytes()), bytes_field(2, &bytes_field(1, &tensor))].concat()
}

const FLOAT: u64 = 1;
const INT64: u64 = 7;

fn node(op: &str, inputs: &[&str], output: &str, attributes: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = inputs.iter().flat_map(|i| bytes_field(1, i.as_bytes())).collect();
    out.extend(bytes_field(2, output.as_bytes()));
    out.extend(bytes_field(4, op.as_bytes()));
    for a in attributes {
        out.extend(bytes_field(5, a));
    }
    out
}

/// AttributeProto of type INT (2) or INTS (7).
fn attribute(name: &str, ints: &[u64], single: bool) -> Vec<u8> {
    let mut out = bytes_field(1, name.as_bytes());
    if single {
        out.extend(int_field(3, ints[0]));
        out.extend(int_field(20, 2));
    } else {
        for v in ints {
            out.extend(int_field(8, *v));
        }
        out.extend(int_field(20, 7));
    }
    out
}

/// A cross-encoder-shaped graph (opset 11) whose output `output` is the count of second-segment
/// tokens per pair.
fn passage_length_model(output: &str) -> Vec<u8> {
    let nodes = [
        node("Cast", &["token_type_ids"], "segment", &[attribute("to", &[FLOAT], true)]),
        node("Cast", &["attention_mask"], "mask", &[attribute("to", &[FLOAT], true)]),
        node("Mul", &["segment", "mask"], "passage", &[]),
        node("ReduceSum", &["passage"], output, &[attribute("axes", &[1], false), attribute("keepdims", &[1], true)]),
    ];
    let mut graph: Vec<u8> = nodes.iter().flat_map(|n| bytes_field(1, n)).collect();
    graph.extend(bytes_field(2, b"passage_length"));
    for input in ["input_ids", "attention_mask", "token_type_ids"] {
        graph.extend(bytes_field(11, &tensor_info(input, INT64, ["batch", "sequence"])));
    }
    graph.extend(bytes_field(12, &tensor_info(output, FLOAT, ["batch", "one"])));
    let opset = [bytes_field(1, b""), int_field(2, 11)].concat();
    [int_field(1, 7), bytes_field(7, &graph), bytes_field(8, &opset)].concat()
}

/// A model folder: the generated graph and the embedding model's tokenizer files.
fn model_folder(dir: &Path, output: &str) {
    std::fs::write(dir.join("model.onnx"), passage_length_model(output)).unwrap();
    for name in ["tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json"] {
        std::fs::copy(models_dir().join("embed").join(name), dir.join(name)).unwrap();
    }
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
    assert!(scores[0] > 200.0 && scores[0] < 256.0, "{scores:?}");
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
