"""Times a shipped cross-encoder graph alone in Python's ONNX Runtime, as a reference for the
rerank stage lexgate reports: the same graph, the same token window, no lexgate code around it.
Run it right before or after the lexgate measurement it is compared with; on a shared host only
figures measured together compare.

Each trial scores 15 random ObliQA passages against a random dev question through
`common.OrtScorer` (sorted by length, batches of 4, 8 and 16; lexgate batches by 8) and prints
p50 and p95 ms per batch size.

Usage: python time_graph.py --model .lexgate/models/rerank-l3 --obliqa ../shared/data/obliqa
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import common
from export import latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="folder with model.onnx (and reranker.json)")
    parser.add_argument("--obliqa", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--passages", type=int, default=15)
    args = parser.parse_args()

    settings_file = args.model / "reranker.json"
    max_length = json.loads(settings_file.read_text()).get("max_length", 128) if settings_file.exists() else 128
    tok = common.tokenizer()
    scorers = {batch: common.OrtScorer(args.model / "model.onnx", tok, max_length, batch) for batch in (4, 8, 16)}

    passages = [t for t in common.load_passages(args.obliqa / "StructuredRegulatoryDocuments").values() if t.strip()]
    questions = [q["Question"] for q in json.loads((args.obliqa / "ObliQA_dev.json").read_text())]
    rng = random.Random(7)
    trials = [(rng.choice(questions), rng.sample(passages, args.passages)) for _ in range(args.trials)]
    times: dict[int, list[float]] = {batch: [] for batch in scorers}
    for question, sample in trials:
        for batch, scorer in scorers.items():
            started = time.perf_counter()
            scorer(question, sample)
            times[batch].append((time.perf_counter() - started) * 1000)
    for batch, spent in times.items():
        figures = latency(spent)
        print(f"batch {batch:>2}: p50 {figures['latency_ms_p50']:.1f} ms, p95 {figures['latency_ms_p95']:.1f} ms")


if __name__ == "__main__":
    main()
