//! A cross-encoder-shaped ONNX graph written by hand, shared by the test binaries (included with
//! `#[path]`). No cross-encoder weights ship in any registry package; this graph has the real
//! interface (inputs `input_ids`, `attention_mask`, `token_type_ids`; output `logits` of shape
//! `[batch, 1]`) and scores a pair by the number of passage tokens in it,
//! `sum(token_type_ids * attention_mask)`, so results are predictable.

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
pub fn passage_length_model(output: &str) -> Vec<u8> {
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

/// Writes a reranker folder: the graph (its output named `output`) and the tokenizer files of the
/// embedding model installed in `models_dir`.
pub fn write_model_folder(dir: &std::path::Path, output: &str, models_dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("create the model folder");
    std::fs::write(dir.join("model.onnx"), passage_length_model(output)).expect("write the graph");
    for name in ["tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json"] {
        std::fs::copy(models_dir.join("embed").join(name), dir.join(name)).expect("copy a tokenizer file");
    }
}
