"""Exports a trained reranker to ONNX, checks the graph against PyTorch, quantizes it to int8 and
measures both on the locked validation split (reranking the hybrid first stage's top 30).

Writes into --out: model-fp32.onnx, model.onnx (int8), the tokenizer files lexgate reads, and
export-report.json with the parity check, the metrics of hybrid / fp32 / int8, and latency.

Usage: python export.py --run run/ --obliqa DIR --candidates candidates.jsonl --out models/reranker
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import common

TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="training output folder holding model.pt")
    p.add_argument("--obliqa", type=Path, required=True)
    p.add_argument("--candidates", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--depth", type=int, default=30)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--limit", type=int, help="measure only the first N validation questions (a quick check)")
    return p.parse_args()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class OrtScorer:
    """Scores pairs through ONNX Runtime the way lexgate does: passages sorted by length, batches
    padded to their longest pair."""

    def __init__(self, path: Path, tok, max_length: int, batch: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tok, self.max_length, self.batch = tok, max_length, batch

    def __call__(self, question: str, passages: list[str]) -> list[float]:
        order = sorted(range(len(passages)), key=lambda i: len(passages[i]))
        scores = [0.0] * len(passages)
        for at in range(0, len(order), self.batch):
            idx = order[at : at + self.batch]
            enc = common.encode(self.tok, question, [passages[i] for i in idx], self.max_length)
            feeds = {k: v.numpy().astype(np.int64) for k, v in enc.items()}
            logits = self.session.run(["logits"], feeds)[0]
            for i, s in zip(idx, logits[:, 0].tolist()):
                scores[i] = s
        return scores


def evaluate(scorer, rows, passages, depth):
    totals = {"hybrid": [0.0, 0.0], "reranked": [0.0, 0.0]}
    latencies = []
    for r in rows:
        relevant = set(r["relevant"])
        head = [c for c in r["candidates"][:depth] if c in passages]
        started = time.perf_counter()
        scores = scorer(r["question"], [passages[c] for c in head])
        latencies.append((time.perf_counter() - started) * 1000)
        reranked = [c for _, c in sorted(zip(scores, head), key=lambda x: -x[0])] + r["candidates"][depth:]
        for name, ranked in (("hybrid", r["candidates"]), ("reranked", reranked)):
            rec, ap = common.ranking_metrics(ranked, relevant)
            totals[name][0] += rec
            totals[name][1] += ap
    n = max(len(rows), 1)
    latencies.sort()
    return {
        "questions": len(rows),
        "hybrid_recall10": totals["hybrid"][0] / n,
        "hybrid_map10": totals["hybrid"][1] / n,
        "recall10": totals["reranked"][0] / n,
        "map10": totals["reranked"][1] / n,
        "latency_ms_p50": statistics.median(latencies),
        "latency_ms_p95": latencies[int(round((len(latencies) - 1) * 0.95))],
    }


def main():
    args = parse_args()
    common.set_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    tok = common.tokenizer()
    model = common.new_model()
    if (args.run / "model.pt").exists():
        model.load_state_dict(torch.load(args.run / "model.pt"))
    else:  # a run still in progress: its last checkpoint
        model.load_state_dict(torch.load(args.run / "checkpoint.pt", weights_only=False)["model"])
    model.eval()

    fp32 = args.out / "model-fp32.onnx"
    sample = common.encode(tok, "What must a firm disclose?", ["A firm must disclose its fees.", "Short."], 64)
    torch.onnx.export(
        model,
        (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
        str(fp32),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "token_type_ids": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )

    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = args.out / "model.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    for name in TOKENIZER_FILES:
        shutil.copyfile(common.base_model_dir() / name, args.out / name)

    passages = common.load_passages(args.obliqa / "StructuredRegulatoryDocuments")
    rows = common.load_candidates(args.candidates)
    validation = [r for r in rows if common.split_of(r["id"]) == "validation"][: args.limit]

    # Parity: the ONNX graph must score like PyTorch on real pairs.
    probe = validation[:8]
    onnx_fp32 = OrtScorer(fp32, tok, args.max_length, args.batch)
    worst = 0.0
    for r in probe:
        texts = [passages[c] for c in r["candidates"][:8] if c in passages]
        reference = common.score(model, tok, r["question"], texts, args.max_length)
        got = onnx_fp32(r["question"], texts)
        worst = max(worst, max(abs(a - b) for a, b in zip(reference, got)))
    print(f"parity: largest |onnx - torch| over {8 * len(probe)} pairs = {worst:.2e}", flush=True)
    if worst > 1e-3:
        raise SystemExit("the ONNX graph does not score like the trained model")

    report = {
        "parity_max_abs_diff": worst,
        "max_length": args.max_length,
        "depth": args.depth,
        "batch": args.batch,
        "threads": 2,
        "fp32": evaluate(onnx_fp32, validation, passages, args.depth),
        "int8": evaluate(OrtScorer(int8, tok, args.max_length, args.batch), validation, passages, args.depth),
        "sha256": {name: sha256(args.out / name) for name in ["model.onnx", *TOKENIZER_FILES]},
    }
    fp32.unlink()  # only the int8 graph ships; the fp32 one is rebuilt by this script
    (args.out / "export-report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
