"""Fine-tunes all-MiniLM-L6-v2 into lexgate's cross-encoder reranker.

Data: ObliQA dev questions of the locked train split (see common.split_of), each relevant passage
a positive, and hard negatives from lexgate's own hybrid first stage (`lexgate eval obliqa
--candidates-out`). Loss: softmax cross-entropy over one positive and N negatives per group (a
listwise loss: the model learns to put the positive first among passages that the first stage
already found close). Checkpoints every --checkpoint-every steps and resumes from the last one.

Usage (see training/reranker/README.md):
    python train.py --obliqa DIR --candidates candidates.jsonl --out run/
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch

import common


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--obliqa", type=Path, required=True, help="folder holding StructuredRegulatoryDocuments")
    p.add_argument("--candidates", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--lr", type=float, default=4e-5)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--groups-per-step", type=int, default=2)
    p.add_argument("--negatives", type=int, default=7)
    p.add_argument("--hard-depth", type=int, default=30, help="negatives are drawn from this many top candidates")
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--eval-questions", type=int, default=120)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--no-bf16", action="store_true", help="compute in fp32 (bf16 autocast is slower on CPUs without bf16 units)")
    p.add_argument(
        "--layers",
        help='a faster student: "N" keeps the first N transformer layers, "0,2,5" keeps those layers',
    )
    p.add_argument(
        "--init", type=Path,
        help="start from this cross-encoder state dict (dequantize.py rebuilds one from a shipped graph) instead of the base",
    )
    p.add_argument(
        "--teacher", type=Path,
        help="a shipped reranker folder (model.onnx, reranker.json): the student also learns its score distribution",
    )
    p.add_argument("--distill", type=float, default=0.5, help="weight of the teacher's loss against the labels' (with --teacher)")
    p.add_argument("--overfit", action="store_true", help="sanity check: train on one fixed batch")
    return p.parse_args()


def training_groups(rows, passages, negatives, hard_depth, rng):
    """(question, positive, negative pool) for every relevant passage of every train question."""
    groups = []
    for r in rows:
        relevant = set(r["relevant"])
        pool = [c for c in r["candidates"][:hard_depth] if c not in relevant and c in passages]
        if len(pool) < negatives:
            pool += [c for c in r["candidates"][hard_depth:] if c not in relevant and c in passages]
        if len(pool) < negatives:
            continue
        for pid in sorted(relevant):
            if pid in passages:
                groups.append((r["question"], pid, pool))
    rng.shuffle(groups)
    return groups


def validate(model, tok, rows, passages, max_length, depth=30):
    """Reranks each question's first-stage top `depth`; returns first-stage and reranked
    Recall@10 and MAP@10."""
    base_r = base_ap = rr_r = rr_ap = 0.0
    for r in rows:
        relevant = set(r["relevant"])
        head = [c for c in r["candidates"][:depth] if c in passages]
        scores = common.score(model, tok, r["question"], [passages[c] for c in head], max_length)
        reranked = [c for _, c in sorted(zip(scores, head), key=lambda x: -x[0])] + r["candidates"][depth:]
        a, b = common.ranking_metrics(r["candidates"], relevant)
        c, d = common.ranking_metrics(reranked, relevant)
        base_r, base_ap, rr_r, rr_ap = base_r + a, base_ap + b, rr_r + c, rr_ap + d
    n = max(len(rows), 1)
    return {"hybrid_recall10": base_r / n, "hybrid_map10": base_ap / n, "rerank_recall10": rr_r / n, "rerank_map10": rr_ap / n}


def main():
    args = parse_args()
    common.set_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)

    passages = common.load_passages(args.obliqa / "StructuredRegulatoryDocuments")
    rows = common.load_candidates(args.candidates)
    train_rows = [r for r in rows if common.split_of(r["id"]) == "train"]
    val_rows = [r for r in rows if common.split_of(r["id"]) == "validation"][: args.eval_questions]
    groups = training_groups(train_rows, passages, args.negatives, args.hard_depth, rng)
    print(f"train questions {len(train_rows)}, groups {len(groups)}, validation sample {len(val_rows)}", flush=True)

    tok = common.tokenizer()
    model = common.new_model(common.parse_layers(args.layers), args.init)
    teacher = None
    if args.teacher:
        # The window lexgate runs the teacher with: its folder's reranker.json, else lexgate's
        # default (indexer::rerank::DEFAULT_MAX_LENGTH).
        folder = args.teacher / "reranker.json"
        settings = json.loads(folder.read_text()) if folder.exists() else {}
        teacher = common.OrtScorer(args.teacher / "model.onnx", tok, settings.get("max_length", 192), 8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)

    def lr_at(step):
        if step < args.warmup:
            return (step + 1) / args.warmup
        return max(0.0, (args.steps - step) / max(1, args.steps - args.warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    checkpoint = args.out / "checkpoint.pt"
    step, order = 0, list(range(len(groups)))
    resumed = common.resume(checkpoint, model, optimizer, scheduler, rng)
    if resumed:
        step, order = resumed
    else:
        (args.out / "hyperparameters.json").write_text(json.dumps(vars(args), default=str, indent=2))

    log = (args.out / "train-log.jsonl").open("a")
    per_epoch = len(groups) // args.groups_per_step
    fixed = [groups[i] for i in order[: args.groups_per_step]]
    losses, started = [], time.time()
    model.train()
    while step < args.steps:
        if args.overfit:
            batch = fixed
        else:
            if step % per_epoch == 0 and step > 0:
                rng.shuffle(order)
            at = (step % per_epoch) * args.groups_per_step
            batch = [groups[i] for i in order[at : at + args.groups_per_step]]
        questions, texts = [], []
        for question, pos, pool in batch:
            picked = rng.sample(pool, args.negatives)
            for pid in [pos] + picked:
                questions.append(question)
                texts.append(passages[pid])
        enc = tok(questions, texts, truncation="only_second", max_length=args.max_length, padding=True, return_tensors="pt")
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.no_bf16):
            logits = model(**enc).squeeze(-1).float()
        logits = logits.view(len(batch), args.negatives + 1)
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))
        losses.append(loss.item())
        if teacher is not None:
            # Listwise distillation: the student's softmax over each group is pulled toward the
            # teacher's (which ranks the negatives too, not only the positive first).
            group = args.negatives + 1
            targets = torch.tensor(
                [teacher(questions[i], texts[i : i + group]) for i in range(0, len(texts), group)]
            ).softmax(-1)
            kl = torch.nn.functional.kl_div(logits.log_softmax(-1), targets, reduction="batchmean")
            loss = (1 - args.distill) * loss + args.distill * kl
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        if step % 10 == 0:
            recent = losses[-50:]
            entry = {
                "step": step,
                "loss": sum(recent) / len(recent),  # the labels' cross-entropy alone
                "chance": math.log(args.negatives + 1),
                "lr": scheduler.get_last_lr()[0],
                "seconds": round(time.time() - started, 1),
                "epoch": round(step / per_epoch, 3),
            }
            common.log_entry(log, entry)
        if step % args.eval_every == 0 or step == args.steps:
            metrics = validate(model, tok, val_rows, passages, args.max_length)
            entry = {"step": step, "validation": metrics}
            common.log_entry(log, entry)
        if step % args.checkpoint_every == 0 or step == args.steps:
            common.save_checkpoint(checkpoint, model, optimizer, scheduler, step, order, rng)
    torch.save(model.state_dict(), args.out / "model.pt")
    print(f"done: {step} steps in {time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
