"""Trains lexgate's answer-sentence selector: all-MiniLM-L6-v2 with a single-logit head reading
(question, "heading: sentence") pairs, the reranker's graph shape, so lexgate runs it through the
same cross-encoder code. It orders the candidate sentences of the extractive answer.

Data: ObliQA questions on the *train* side of the reranker's locked split only
(`common.split_of`, by question id). Positives are the complete sentences of a question's gold
passages; negatives are complete sentences of the passages BM25 ranks highest for the question
that are not gold (nor the same text as a gold passage: ObliQA repeats passages), and one
sentence from elsewhere in the gold passage's document. Loss: softmax cross-entropy over groups
of one positive and `--negatives` negatives (listwise; a pointwise loss stayed at its chance level
here, as it did for the reranker).

Validation (questions on the validation side, never trained on): for each question the candidate
sentences are those of the gold passages and of the top 5 BM25 passages, as the answer composer
sees the top passages of a search; the figure is how often the top-scored sentence is a gold
sentence (precision@1), for the model and for the word-overlap order lexgate used before.

Then exports to ONNX, checks the graph against PyTorch, quantizes to int8 (kept only if its
validation precision@1 is within 0.005 of fp32's) and writes model.onnx into --out, the run log
and report into --run.

Usage (see training/selector/README.md):
    python train.py --corpus StructuredRegulatoryDocuments --questions ObliQA_dev.json \
        --run runs/run1 --out models/selector
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "reranker"))
import common  # noqa: E402  (the reranker's model, tokenizer, split and export code)

WORD = re.compile(r"[a-z0-9]+")
STOP = set(
    "a an the of to in on for by with and or is are be been was were that this these those it its as at from "
    "which what who whom whose when where how why does do did can could should would may might must shall will "
    "if any all not no there their they them than then such other under into about".split()
)


def words(text: str) -> list[str]:
    return [w for w in WORD.findall(text.lower()) if w not in STOP and len(w) > 1]


def sentences(text: str) -> list[str]:
    """Complete sentences, as the answer composer takes them: split at line breaks and sentence
    ends; kept when it ends with a full stop, starts with no lower-case letter and has four words."""
    out = []
    for line in text.split("\n"):
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(\"'])", line.strip()):
            s = s.strip()
            if s.endswith((".", "!")) and not s[:1].islower() and len(words(s)) >= 4:
                out.append(s)
    return out


class Bm25:
    """Plain BM25 (k1 1.2, b 0.75) over passages, for mining negatives and validation candidates."""

    def __init__(self, docs: dict[str, str]):
        self.ids = list(docs)
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.lengths = []
        for i, pid in enumerate(self.ids):
            counts = Counter(words(docs[pid]))
            self.lengths.append(sum(counts.values()))
            for w, c in counts.items():
                self.postings[w].append((i, c))
        self.avg = sum(self.lengths) / max(len(self.lengths), 1)

    def search(self, query: str, k: int) -> list[str]:
        n = len(self.ids)
        scores: dict[int, float] = defaultdict(float)
        for w in set(words(query)):
            plist = self.postings.get(w)
            if not plist:
                continue
            idf = math.log(1 + (n - len(plist) + 0.5) / (len(plist) + 0.5))
            for i, c in plist:
                scores[i] += idf * c * 2.2 / (c + 1.2 * (0.25 + 0.75 * self.lengths[i] / self.avg))
        best = sorted(scores.items(), key=lambda x: -x[1])[:k]
        return [self.ids[i] for i, _ in best]


def pair_text(heading: str, sentence: str) -> str:
    """What lexgate gives the model: "heading path: sentence"."""
    return f"{heading}: {sentence}"


def overlap_order(question: str, texts: list[str], df: Counter, n: int) -> list[float]:
    """The word-overlap score the composer used before: rarer question words weigh more, divided
    by the square root of the sentence length."""
    wanted = set(words(question))
    out = []
    for t in texts:
        ws = words(t)
        matched = wanted.intersection(ws)
        weight = sum(math.log(1 + n / max(df[w], 1)) for w in matched)
        out.append(weight / math.sqrt(max(len(ws), 8)))
    return out


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--questions", type=Path, required=True)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--groups", type=int, default=4, help="groups per step")
    p.add_argument("--lr", type=float, default=4e-5)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--negatives", type=int, default=5, help="negatives per group: BM25's, then one from the document")
    p.add_argument("--questions-used", type=int, default=1800, help="train questions used, at most")
    p.add_argument("--validation-questions", type=int, default=200)
    p.add_argument("--seed", type=int, default=17)
    return p.parse_args()


def main():
    args = parse_args()
    common.set_threads()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    args.run.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    passages: dict[str, str] = {}
    heading: dict[str, str] = {}
    by_key: dict[tuple[int, str], list[str]] = defaultdict(list)
    by_document: dict[int, list[str]] = defaultdict(list)
    for f in sorted(args.corpus.glob("*.json")):
        for p in json.loads(f.read_text()):
            if p["Passage"].strip():
                passages[p["ID"]] = p["Passage"]
                heading[p["ID"]] = str(p["PassageID"])
                by_key[(p["DocumentID"], str(p["PassageID"]))].append(p["ID"])
                by_document[p["DocumentID"]].append(p["ID"])
    rows = json.loads(args.questions.read_text())
    data_sha = hashlib.sha256(args.questions.read_bytes()).hexdigest()
    bm25 = Bm25(passages)
    df: Counter = Counter()
    for text in passages.values():
        for s in sentences(text):
            df.update(set(words(s)))
    n_sentences = sum(df.values()) or 1

    def gold_of(row) -> list[str]:
        ids = []
        for g in row["Passages"]:
            ids.extend(pid for pid in by_key.get((g["DocumentID"], str(g["PassageID"])), []) if pid not in ids)
        return ids

    train, validation = [], []
    started = time.time()
    for row in rows:
        side = common.split_of(row["QuestionID"])
        gold = gold_of(row)
        if not gold:
            continue
        gold_texts = {passages[g].strip() for g in gold}
        ranked = [pid for pid in bm25.search(row["Question"], 20) if passages[pid].strip() not in gold_texts]
        if side == "train":
            pos = [(heading[g], s) for g in gold for s in sentences(passages[g])]
            rng.shuffle(pos)
            neg_pool = [(heading[pid], s) for pid in ranked[:10] for s in sentences(passages[pid])]
            rng.shuffle(neg_pool)
            document = int(row["Passages"][0]["DocumentID"])
            same_doc = [
                (heading[pid], s)
                for pid in rng.sample(by_document[document], min(5, len(by_document[document])))
                if pid not in gold and passages[pid].strip() not in gold_texts
                for s in sentences(passages[pid])
            ]
            negatives = neg_pool[: args.negatives - 1] + same_doc[:1]
            negatives += neg_pool[args.negatives - 1 : args.negatives - len(negatives)]
            if pos and len(negatives) == args.negatives:
                group = [pair_text(*pos[0])] + [pair_text(h, s) for h, s in negatives]
                train.append((row["Question"], group))
        else:
            candidates = [(pid, s) for pid in gold + ranked[:5] for s in sentences(passages[pid])]
            if any(pid in gold for pid, _ in candidates):
                validation.append(
                    (row["Question"], [pair_text(heading[pid], s) for pid, s in candidates], [pid in gold for pid, _ in candidates])
                )
    rng.shuffle(validation)
    validation = validation[: args.validation_questions]
    rng.shuffle(train)
    train = train[: args.questions_used]
    print(f"{len(train)} training groups, {len(validation)} validation questions ({time.time() - started:.0f}s)", flush=True)

    tok = common.tokenizer()
    model = common.new_model()
    steps = args.epochs * math.ceil(len(train) / args.groups)
    optimizer, scheduler = common.optimizer_and_schedule(model, args.lr, steps)
    loss_fn = torch.nn.CrossEntropyLoss()

    def precision_at_1(scorer) -> float:
        hits = 0
        for question, texts, labels in validation:
            scores = scorer(question, texts)
            hits += labels[max(range(len(texts)), key=lambda i: scores[i])]
        return hits / max(len(validation), 1)

    baseline = precision_at_1(lambda q, texts: overlap_order(q, texts, df, n_sentences))
    print(f"word overlap precision@1 {baseline:.4f}", flush=True)

    checkpoint = args.run / "checkpoint.pt"
    order = list(range(len(train)))
    rng.shuffle(order)
    step = 0
    resumed = common.resume(checkpoint, model, optimizer, scheduler, rng)
    if resumed:
        step, order = resumed
    started = time.time()
    with (args.run / "train-log.jsonl").open("a") as log:
        model.train()
        while step < steps:
            at = (step * args.groups) % len(order)
            batch = [train[i] for i in order[at : at + args.groups]]
            questions = [q for q, group in batch for _ in group]
            texts = [t for _, group in batch for t in group]
            enc = tok(questions, texts, truncation="only_second", max_length=args.max_length, padding=True, return_tensors="pt")
            logits = model(**enc).view(len(batch), -1)
            # The positive is first in every group.
            loss = loss_fn(logits, torch.zeros(len(batch), dtype=torch.long))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if step % 20 == 0:
                common.log_entry(log, {"step": step, "of": steps, "loss": round(loss.item(), 4), "seconds": round(time.time() - started)})
            if step % 100 == 0:
                common.save_checkpoint(checkpoint, model, optimizer, scheduler, step, order, rng)
        train_seconds = time.time() - started

    sample = common.encode(tok, "What must a firm disclose?", ["1.2: A firm must disclose its fees.", "Short."], 64)
    question, texts, _ = validation[0]
    fp32, int8, worst = common.export_checked(model, tok, sample, args.run, question, texts, args.max_length)
    report = {
        "data_sha256": data_sha,
        "split": {"salt": common.SPLIT_SALT, "training_groups": len(train), "validation_questions": len(validation)},
        "hyperparameters": {k: str(v) for k, v in vars(args).items()},
        "steps": step,
        "train_seconds": round(train_seconds),
        "parity_max_abs_diff": worst,
        "validation_precision_at_1": {"word_overlap": baseline},
    }
    for name, path in (("fp32", fp32), ("int8", int8)):
        scorer = common.OrtScorer(path, tok, args.max_length, 16)
        t = time.perf_counter()
        report["validation_precision_at_1"][name] = precision_at_1(scorer)
        pairs = sum(len(texts) for _, texts, _ in validation)
        report[f"{name}_ms_per_sentence"] = (time.perf_counter() - t) * 1000 / max(pairs, 1)
        print(name, report["validation_precision_at_1"][name], flush=True)
    p1 = report["validation_precision_at_1"]
    shipped = int8 if p1["int8"] >= p1["fp32"] - 0.005 else fp32
    report["shipped"] = "int8" if shipped == int8 else "fp32"
    (args.out / "model.onnx").write_bytes(shipped.read_bytes())
    report["sha256"] = {"model.onnx": hashlib.sha256((args.out / "model.onnx").read_bytes()).hexdigest()}
    fp32.unlink()
    int8.unlink()
    torch.save(model.state_dict(), args.run / "model.pt")  # not committed (87 MB); the ONNX graph ships
    checkpoint.unlink(missing_ok=True)
    (args.run / "export-report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
