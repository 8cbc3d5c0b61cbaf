"""Rebuilds a PyTorch model from a shipped int8 graph lexgate trained (a reranker, or with --kind
embedder the embedding model), so that training can start from the shipped model's own weights: a
smaller student of the reranker, or a second round of the embedder (only the int8 graphs ship;
their fp32 weights were not kept).

Dynamic int8 quantisation stores each weight matrix as int8 values with one scale and zero point per
tensor; `(q - zero_point) * scale` gives back the weight to within half a step. Biases and layer
norms are stored in fp32 and are copied as they are. The graph names the embeddings, biases, norms
and head, but not the transformer's weight matrices (`onnx::MatMul_N`): each of those is matched to
the base model's matrix of the same shape it is closest to (the reranker was fine-tuned from that
base, so its matrices stay near the base's), and a match below --min-cosine stops the script.

Usage: python dequantize.py --model models/reranker/model.onnx --out run/teacher.pt [--check DIR]
       python dequantize.py --kind embedder --model models/embedder/model.onnx --out run/start.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import common


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="an int8 graph (model.onnx)")
    p.add_argument("--kind", choices=["reranker", "embedder"], default="reranker")
    p.add_argument("--out", type=Path, required=True, help="where the PyTorch state dict is written")
    p.add_argument("--min-cosine", type=float, default=0.9)
    p.add_argument("--check", type=Path, help="an ObliQA folder: compare the rebuilt reranker's scores with the graph's")
    p.add_argument("--max-length", type=int, default=128)
    return p.parse_args()


def dequantized(graph) -> dict[str, np.ndarray]:
    """Every initializer of the graph as float32, the quantized ones dequantized, under the name
    the weight had before quantisation."""
    from onnx import numpy_helper

    raw = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    out = {}
    for name, value in raw.items():
        if name.endswith("_quantized"):
            base = name[: -len("_quantized")]
            scale = raw[base + "_scale"].astype(np.float32)
            zero = raw[base + "_zero_point"].astype(np.float32)
            out[base] = (value.astype(np.float32) - zero) * scale
        elif not (name.endswith("_scale") or name.endswith("_zero_point")) and value.dtype == np.float32:
            out[name] = value
    return out


def rebuild(path: Path, model: torch.nn.Module, min_cosine: float) -> float:
    """Loads the weights of the graph at `path` into `model` (the same architecture, holding the
    base model's weights, which the graph's unnamed matrices are matched against); returns the
    lowest cosine of a matched matrix."""
    import onnx

    weights = dequantized(onnx.load(str(path)).graph)
    state = model.state_dict()
    for name in list(state):
        for key in (name, name + "_Transposed"):
            if key in weights:
                value = torch.from_numpy(weights.pop(key).copy())
                state[name] = value.T.reshape(state[name].shape) if key.endswith("_Transposed") else value
    # The transformer's matrices: ONNX stores them transposed ([in, out]) under anonymous names.
    linear = [n for n in state if n.endswith(".weight") and state[n].dim() == 2 and ".layer." in n]
    unmatched = set(linear)
    lowest = 1.0
    for key in sorted(k for k in weights if k.startswith("onnx::MatMul")):
        candidate = torch.from_numpy(weights.pop(key).copy()).T.contiguous()
        flat = candidate.flatten()
        best, best_cos = None, -1.0
        for name in unmatched:
            if state[name].shape != candidate.shape:
                continue
            cos = torch.nn.functional.cosine_similarity(flat, state[name].flatten(), dim=0).item()
            if cos > best_cos:
                best, best_cos = name, cos
        if best is None or best_cos < min_cosine:
            raise SystemExit(f"{key}: no base matrix within cosine {min_cosine} (best {best_cos:.3f})")
        state[best] = candidate
        unmatched.discard(best)
        lowest = min(lowest, best_cos)
    if unmatched or weights:
        raise SystemExit(f"not rebuilt: {sorted(unmatched)}; left over in the graph: {sorted(weights)}")
    model.load_state_dict(state)
    return lowest


def main():
    args = parse_args()
    common.set_threads()
    if args.kind == "embedder":
        import importlib.util

        # The embedder's trainer, loaded by path: its module name is the same as this folder's.
        path = Path(__file__).resolve().parent.parent / "embedder" / "train.py"
        spec = importlib.util.spec_from_file_location("embedder_train", path)
        embedder = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(embedder)
        model = embedder.new_model()
    else:
        model = common.new_model()
    lowest = rebuild(args.model, model, args.min_cosine)
    print(f"rebuilt every weight; lowest cosine of a matched matrix to the base: {lowest:.4f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    if args.check and args.kind == "reranker":
        tok = common.tokenizer()
        passages = list(common.load_passages(args.check / "StructuredRegulatoryDocuments").values())[:48]
        question = "What must a firm notify the regulator of before it changes its auditor?"
        torch_scores = common.score(model, tok, question, passages, args.max_length)
        graph_scores = common.OrtScorer(args.model, tok, args.max_length, 8)(question, passages)
        worst = max(abs(a - b) for a, b in zip(torch_scores, graph_scores))
        corr = float(np.corrcoef(torch_scores, graph_scores)[0, 1])
        print(f"check over {len(passages)} passages: largest |torch - int8 graph| {worst:.3f}, correlation {corr:.4f}")


if __name__ == "__main__":
    main()
