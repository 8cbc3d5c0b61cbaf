"""Fine-tunes all-MiniLM-L6-v2 into lexgate's embedding model for regulatory text.

Data: ObliQA dev questions of the locked train split only (`common.split_of`, the rule the
reranker and `indexer::eval::Split` share; the validation side is never read here). Each relevant
passage of a train question is a positive. Hard negatives come from lexgate's own hybrid first
stage (`lexgate eval obliqa --candidates-out`): its top candidates that are neither relevant nor
a near-duplicate of a relevant passage (ObliQA repeats passages across documents).

Loss: in-batch softmax cross-entropy (InfoNCE). Each question is scored against every positive and
hard negative of the batch by cosine similarity times --scale; its own positive is the target.
Passages that are relevant to the question, or near-duplicates of one, are masked out wherever they
appear in the batch, so another question's positive is never a false negative.

Checkpoints every --checkpoint-every steps; rerunning the same command resumes from the last one.

Usage (see training/embedder/README.md):
    python train.py --obliqa DIR --candidates candidates.jsonl --out run/
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

# The locked split, passage loading and ranking metrics are the reranker's; one copy of each rule.
sys.path.append(str(Path(__file__).resolve().parent.parent / "reranker"))
import common  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--obliqa", type=Path, required=True, help="folder holding StructuredRegulatoryDocuments")
    p.add_argument("--candidates", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=32, help="questions per step (each brings a positive and a hard negative)")
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--warmup", type=float, default=0.1, help="share of the steps spent warming up")
    p.add_argument("--scale", type=float, default=20.0, help="cosine similarities are multiplied by this")
    p.add_argument("--hard-depth", type=int, default=30, help="hard negatives are drawn from this many top candidates")
    p.add_argument("--query-length", type=int, default=64)
    p.add_argument("--passage-length", type=int, default=256, help="lexgate embeds with the same window")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--eval-every", type=int, default=60)
    p.add_argument("--eval-questions", type=int, default=60)
    p.add_argument("--checkpoint-every", type=int, default=20)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast on the CPU")
    p.add_argument("--overfit", action="store_true", help="sanity check: train on one fixed batch")
    p.add_argument("--steps", type=int, help="stop after this many steps (default: --epochs worth)")
    p.add_argument(
        "--init", type=Path,
        help="start from this embedder state dict (a second round: ../reranker/dequantize.py --kind embedder rebuilds the shipped one)",
    )
    return p.parse_args()


def normalised(text: str) -> str:
    return " ".join(text.lower().split())


class NearDuplicates:
    """Passages that are the same text, or nearly (word-set Jaccard >= 0.9)."""

    def __init__(self, passages: dict[str, str]):
        self.key = {pid: normalised(t) for pid, t in passages.items()}
        self.words = {pid: frozenset(k.split()) for pid, k in self.key.items()}

    def same(self, a: str, b: str) -> bool:
        if a == b or self.key[a] == self.key[b]:
            return True
        wa, wb = self.words[a], self.words[b]
        union = len(wa | wb)
        return union > 0 and len(wa & wb) / union >= 0.9

    def any(self, pid: str, among) -> bool:
        return any(self.same(pid, other) for other in among)


def training_pairs(rows, passages, dups, hard_depth):
    """(question, its relevant ids, positive, hard-negative pool) per relevant passage."""
    pairs = []
    for r in rows:
        relevant = [pid for pid in r["relevant"] if pid in passages]
        if not relevant:
            continue
        pool = [c for c in r["candidates"][:hard_depth] if c in passages and not dups.any(c, relevant)]
        for pid in relevant:
            pairs.append((r["question"], tuple(relevant), pid, pool))
    return pairs


class Embedder(torch.nn.Module):
    """The encoder with mean pooling and L2 normalisation: what lexgate computes from the exported
    graph's last hidden state (fastembed's mean pooling, then a unit vector)."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids, attention_mask, token_type_ids):
        states = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled.float(), dim=-1)


def new_model() -> Embedder:
    from transformers import AutoModel

    return Embedder(AutoModel.from_pretrained(str(common.base_model_dir())))


def encode_sorted(model, tok, texts, max_length, batch=16):
    """Embeds `texts` in batches of similar length, each padded to its own longest, and returns the
    vectors in the order given. Most ObliQA passages are far shorter than the window (median 51
    word pieces, 90th percentile 141), so padding a whole batch to its longest wastes most of it."""
    lengths = [len(ids) for ids in tok(texts, truncation=True, max_length=max_length)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    parts, placed = [], []
    for at in range(0, len(order), batch):
        idx = order[at : at + batch]
        enc = tok([texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        parts.append(model(**enc))
        placed.extend(idx)
    out = torch.cat(parts)
    inverse = torch.empty(len(placed), dtype=torch.long)
    inverse[torch.tensor(placed)] = torch.arange(len(placed))
    return out[inverse]


def embed(model, tok, texts, max_length):
    model.eval()
    with torch.no_grad():
        return encode_sorted(model, tok, texts, max_length) if texts else torch.zeros(0, 384)


def validate(model, tok, rows, passages, args, depth=30):
    """Ranks each question's first-stage top `depth` by the embedder alone: Recall@10 and MAP@10
    within those candidates (a cheap proxy; the full figures come from `lexgate eval obliqa`)."""
    rec = ap = 0.0
    for r in rows:
        head = [c for c in r["candidates"][:depth] if c in passages]
        q = embed(model, tok, [r["question"]], args.query_length)
        d = embed(model, tok, [passages[c] for c in head], args.passage_length)
        order = (d @ q[0]).argsort(descending=True).tolist()
        a, b = common.ranking_metrics([head[i] for i in order], set(r["relevant"]))
        rec, ap = rec + a, ap + b
    n = max(len(rows), 1)
    return {"dense_in_top30_recall10": rec / n, "dense_in_top30_map10": ap / n}


def main():
    args = parse_args()
    common.set_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)

    passages = common.load_passages(args.obliqa / "StructuredRegulatoryDocuments")
    dups = NearDuplicates(passages)
    rows = common.load_candidates(args.candidates)
    train_rows = [r for r in rows if common.split_of(r["id"]) == "train"]
    val_rows = [r for r in rows if common.split_of(r["id"]) == "validation"][: args.eval_questions]
    pairs = training_pairs(train_rows, passages, dups, args.hard_depth)
    per_epoch = len(pairs) // args.batch
    total = args.steps or max(1, int(per_epoch * args.epochs))
    warmup = max(1, int(total * args.warmup))
    print(
        f"train questions {len(train_rows)}, pairs {len(pairs)}, {per_epoch} steps per epoch, "
        f"{total} steps, validation sample {len(val_rows)}",
        flush=True,
    )

    tok = common.tokenizer()
    model = new_model()
    if args.init:
        model.load_state_dict(torch.load(args.init))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    checkpoint = args.out / "checkpoint.pt"
    step, order = 0, list(range(len(pairs)))
    rng.shuffle(order)
    resumed = common.resume(checkpoint, model, optimizer, scheduler, rng)
    if resumed:
        step, order = resumed
    else:
        (args.out / "hyperparameters.json").write_text(
            json.dumps({**vars(args), "steps_total": total, "pairs": len(pairs)}, default=str, indent=2)
        )
    log = (args.out / "train-log.jsonl").open("a")
    if not resumed:
        common.log_entry(log, {"step": 0, "validation": validate(model, tok, val_rows, passages, args)})
    losses, started = [], time.time()
    while step < total:
        if args.overfit:
            batch = [pairs[i] for i in order[: args.batch]]
        else:
            if step % per_epoch == 0 and step > 0:
                rng.shuffle(order)
            at = (step % per_epoch) * args.batch
            batch = [pairs[i] for i in order[at : at + args.batch]]
        questions = [q for q, _, _, _ in batch]
        docs = [pos for _, _, pos, _ in batch] + [rng.choice(pool) if pool else pos for _, _, pos, pool in batch]
        # A passage in the batch that is relevant to question i (or nearly the same text) is not a
        # negative for it, whichever question brought it.
        mask = torch.zeros(len(batch), len(docs), dtype=torch.bool)
        for i, (_, relevant, pos, _) in enumerate(batch):
            for j, d in enumerate(docs):
                if j != i and dups.any(d, relevant):
                    mask[i, j] = True
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            q = encode_sorted(model, tok, questions, args.query_length)
            d = encode_sorted(model, tok, [passages[d] for d in docs], args.passage_length)
        sims = (q @ d.T) * args.scale
        sims = sims.masked_fill(mask, float("-inf"))
        loss = F.cross_entropy(sims, torch.arange(len(batch)))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        losses.append(loss.item())
        if step % 5 == 0:
            recent = losses[-20:]
            entry = {
                "step": step,
                "loss": sum(recent) / len(recent),
                "chance": math.log(len(docs)),
                "lr": scheduler.get_last_lr()[0],
                "seconds": round(time.time() - started, 1),
                "epoch": round(step / per_epoch, 3),
            }
            common.log_entry(log, entry)
        if step % args.eval_every == 0 or step == total:
            entry = {"step": step, "validation": validate(model, tok, val_rows, passages, args)}
            common.log_entry(log, entry)
        if step % args.checkpoint_every == 0 or step == total:
            common.save_checkpoint(checkpoint, model, optimizer, scheduler, step, order, rng)
    torch.save(model.state_dict(), args.out / "model.pt")
    print(f"done: {step} steps in {time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
