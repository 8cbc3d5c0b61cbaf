"""Times a shipped cross-encoder graph alone in Python's ONNX Runtime, as a reference for the
rerank stage lexgate reports: the same graph, the same token window, no lexgate code around it.
Run it right before or after the lexgate measurement it is compared with; on a shared host only
figures measured together compare.

Each trial scores 15 random ObliQA passages against a random dev question, sorted by length and
cut into batches of 4, 8 and 16 (lexgate batches by 8); prints p50 and p95 ms per batch size.

Usage: python time_graph.py --model .lexgate/models/rerank-l3 --obliqa ../shared/data/obliqa
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from common import load_passages


def score(session, names, tokenizer, question: str, passages: list[str], batch: int) -> None:
    passages = sorted(passages, key=len)
    for start in range(0, len(passages), batch):
        encoded = tokenizer.encode_batch([(question, p) for p in passages[start : start + batch]])
        width = max(len(e.ids) for e in encoded)
        ids = np.zeros((len(encoded), width), np.int64)
        mask, types = np.zeros_like(ids), np.zeros_like(ids)
        for row, e in enumerate(encoded):
            ids[row, : len(e.ids)], mask[row, : len(e.ids)], types[row, : len(e.ids)] = e.ids, 1, e.type_ids
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = types
        session.run(None, feed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="folder with model.onnx and tokenizer.json")
    parser.add_argument("--obliqa", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--passages", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    settings = json.loads((args.model / "reranker.json").read_text()) if (args.model / "reranker.json").exists() else {}
    tokenizer = Tokenizer.from_file(str(args.model / "tokenizer.json"))
    tokenizer.enable_truncation(settings.get("max_length", 128))
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(args.model / "model.onnx"), options)
    names = {i.name for i in session.get_inputs()}

    passages = [t for t in load_passages(args.obliqa / "StructuredRegulatoryDocuments").values() if t.strip()]
    questions = [q["Question"] for q in json.loads((args.obliqa / "ObliQA_dev.json").read_text())]
    rng = random.Random(7)
    trials = [(rng.choice(questions), rng.sample(passages, args.passages)) for _ in range(args.trials)]
    times: dict[int, list[float]] = {4: [], 8: [], 16: []}
    for question, sample in trials:
        for batch, spent in times.items():
            started = time.perf_counter()
            score(session, names, tokenizer, question, sample, batch)
            spent.append((time.perf_counter() - started) * 1000)
    for batch, spent in times.items():
        spent.sort()
        p95 = spent[max(0, -(-95 * len(spent) // 100) - 1)]
        print(f"batch {batch:>2}: p50 {statistics.median(spent):.1f} ms, p95 {p95:.1f} ms")


if __name__ == "__main__":
    main()
