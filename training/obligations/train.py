"""Trains lexgate's obligation classifier: all-MiniLM-L6-v2 with a single-logit head, reading a
fixed question and one sentence as a pair, the same graph shape as the reranker, so lexgate runs
it through the same cross-encoder code (`indexer::obligation`).

Data: ../shared/data/obligations/obligation-sentences.json ({Text, Obligation}). The validation
split is fixed by a hash of the text before training (`split_of`): a sentence and its duplicates
always fall on the same side. Loss: binary cross-entropy on the logit; the decision threshold is
a logit of 0 (probability 0.5), not tuned.

Then exports to ONNX, checks the graph against PyTorch, quantizes to int8, and ships int8 only if
its validation F1 is within 0.005 of fp32's. Writes model.onnx and obligations.json into --out,
and the run log and report into --run.

Usage (see training/obligations/README.md):
    python train.py --sentences obligation-sentences.json --run runs/run1 --out models/obligations
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "reranker"))
import common  # noqa: E402  (the reranker's model, tokenizer and export code)

SPLIT_SALT = "lexgate-obligations-split-v1:"
# The first segment of every pair. lexgate reads it from obligations.json, so the model and the
# text it was trained with travel together.
PROMPT = "Does this sentence state a regulatory obligation?"


def split_of(text: str) -> str:
    """Validation when the first eight bytes of sha256(salt + text), big-endian, are 0 modulo 5
    (about 20%); the same rule as `indexer::obligation::split_of`."""
    digest = hashlib.sha256((SPLIT_SALT + text).encode()).digest()
    return "validation" if int.from_bytes(digest[:8], "big") % 5 == 0 else "train"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sentences", type=Path, required=True)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=13)
    return p.parse_args()


def classification(predicted: list[bool], gold: list[bool]) -> dict:
    tp = sum(p and g for p, g in zip(predicted, gold))
    fp = sum(p and not g for p, g in zip(predicted, gold))
    fn = sum(g and not p for p, g in zip(predicted, gold))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = sum(p == g for p, g in zip(predicted, gold)) / max(len(gold), 1)
    return {"sentences": len(gold), "precision": precision, "recall": recall, "f1": f1, "accuracy": accuracy}


def main():
    args = parse_args()
    common.set_threads()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    args.run.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = json.loads(args.sentences.read_text())
    train = [(r["Text"], bool(r["Obligation"])) for r in rows if split_of(r["Text"]) == "train"]
    validation = [(r["Text"], bool(r["Obligation"])) for r in rows if split_of(r["Text"]) == "validation"]
    data_sha = hashlib.sha256(args.sentences.read_bytes()).hexdigest()
    print(f"{len(train)} train, {len(validation)} validation sentences", flush=True)

    tok = common.tokenizer()
    model = common.new_model()
    steps = args.epochs * math.ceil(len(train) / args.batch)
    optimizer, scheduler = common.optimizer_and_schedule(model, args.lr, steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def logits(model_or_scorer, texts):
        if isinstance(model_or_scorer, common.OrtScorer):
            return model_or_scorer(PROMPT, texts)
        return common.score(model_or_scorer, tok, PROMPT, texts, args.max_length)

    def measure(scorer, data):
        scores = logits(scorer, [t for t, _ in data])
        return classification([s > 0.0 for s in scores], [g for _, g in data])

    started = time.time()
    step = 0
    with (args.run / "train-log.jsonl").open("w") as log:
        for epoch in range(args.epochs):
            order = list(range(len(train)))
            rng.shuffle(order)
            model.train()
            for at in range(0, len(order), args.batch):
                batch = [train[i] for i in order[at : at + args.batch]]
                enc = common.encode(tok, PROMPT, [t for t, _ in batch], args.max_length)
                target = torch.tensor([[1.0] if g else [0.0] for _, g in batch])
                loss = loss_fn(model(**enc), target)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step += 1
                if step % 20 == 0:
                    common.log_entry(log, {"step": step, "loss": round(loss.item(), 4), "seconds": round(time.time() - started)})
            common.log_entry(log, {"epoch": epoch + 1, "step": step, "validation": measure(model, validation)})
    train_seconds = time.time() - started
    torch.save(model.state_dict(), args.run / "model.pt")  # not committed (87 MB); the ONNX graph ships

    sample = common.encode(tok, PROMPT, ["A firm must disclose its fees.", "Short."], 64)
    texts = [t for t, _ in validation[:64]]
    fp32, int8, worst = common.export_checked(model, tok, sample, args.run, PROMPT, texts, args.max_length)
    report = {
        "data_sha256": data_sha,
        "split": {"salt": SPLIT_SALT, "train": len(train), "validation": len(validation)},
        "hyperparameters": vars(args) | {"sentences": str(args.sentences), "run": str(args.run), "out": str(args.out)},
        "steps": step,
        "train_seconds": round(train_seconds),
        "parity_max_abs_diff": worst,
    }
    for name, path in (("fp32", fp32), ("int8", int8)):
        scorer = common.OrtScorer(path, tok, args.max_length, 16)
        t = time.perf_counter()
        report[name] = measure(scorer, validation)
        report[name]["ms_per_sentence"] = (time.perf_counter() - t) * 1000 / len(validation)
        print(name, json.dumps(report[name]), flush=True)
    shipped = int8 if report["int8"]["f1"] >= report["fp32"]["f1"] - 0.005 else fp32
    report["shipped"] = "int8" if shipped == int8 else "fp32"
    (args.out / "model.onnx").write_bytes(shipped.read_bytes())
    settings = {"prompt": PROMPT, "max_length": args.max_length, "threshold": 0.0}
    (args.out / "obligations.json").write_text(json.dumps(settings) + "\n")
    report["sha256"] = {n: hashlib.sha256((args.out / n).read_bytes()).hexdigest() for n in ["model.onnx", "obligations.json"]}
    fp32.unlink()
    int8.unlink()
    (args.run / "export-report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
