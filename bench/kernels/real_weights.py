#!/usr/bin/env python
"""Sparse prefill on real weights: what the calibrated patterns cost in prediction quality.

The timing bench (bench_prefill.py) runs on synthetic heads; this one asks the question it cannot: with patterns
found by ``sparse_attention.calibrate`` on one text, how much does a real model's next-token loss change on
*another* text when its prefill goes through the sparse path? The only real weights reachable offline are the
embedded SmolLM2-135M (a Llama-architecture text model, 30 layers x 9 heads, 8K context), so this measures the
text patterns (A-shape, vertical-slash, dense fallback), not grid heads on video, at 8K tokens, not 512K.

    python bench/kernels/real_weights.py --tokens 8192

The texts are licences every Debian machine ships (/usr/share/common-licenses): calibration on GPL-3 + LGPL-3,
evaluation on Apache-2.0 + MPL-2.0 + GFDL-1.3. On the CPU the sparse path is the PyTorch reference (slow:
minutes; a quality check, not a timing); on a GPU it is the Triton kernels.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import torch

LICENCES = Path("/usr/share/common-licenses")
CALIBRATION = ("GPL-3", "LGPL-3")
EVALUATION = ("Apache-2.0", "MPL-2.0", "GFDL-1.3")


def load_model(path: str | None):
    """The embedded SmolLM2 (converted once to safetensors by the offline backend), or a local folder."""
    import transformers

    if path is None:
        from videomind.backends.hf_local import gguf_to_safetensors
        from videomind.config import Config
        from videomind.models.registry import resolve

        path = str(gguf_to_safetensors(Path(resolve(Config().models.llm, "llm", False).path)))
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
    return tok, model.eval(), path


def token_ids(tok, names: tuple[str, ...], n: int) -> torch.Tensor:
    text = "\n\n".join((LICENCES / name).read_text() for name in names)
    ids = tok(text, return_tensors="pt").input_ids[:, :n]
    if ids.shape[1] < n:
        raise SystemExit(f"{names} give {ids.shape[1]} tokens, fewer than --tokens {n}")
    return ids


def losses(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-position next-token loss [N-1], argmax predictions [N-1], and the forward's wall time."""
    t = time.perf_counter()
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    seconds = time.perf_counter() - t
    return torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none"), logits.argmax(-1), seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--threshold", type=float, default=0.95, help="recall threshold of the pattern search")
    ap.add_argument("--model", default=None, help="a local model folder (default: the embedded SmolLM2-135M)")
    ap.add_argument("--save-config", default=None, help="write the calibrated pattern config here")
    ap.add_argument("--config", default=None, help="use this pattern config instead of calibrating")
    args = ap.parse_args(argv)

    from videomind.backends.sparse_attention import calibrate, enable_sparse_prefill

    tok, model, path = load_model(args.model)
    calib, held_out = token_ids(tok, CALIBRATION, args.tokens), token_ids(tok, EVALUATION, args.tokens)
    t = time.perf_counter()
    if args.config:
        config = json.loads(Path(args.config).read_text())
    else:
        config = calibrate(model, {"input_ids": calib}, threshold=args.threshold)
    calib_s = time.perf_counter() - t
    if args.save_config:
        Path(args.save_config).write_text(json.dumps(config))
    census = collections.Counter(p["type"] for layer in config["layers"] for p in layer)
    row = {"model": path, "tokens": args.tokens, "threshold": config["threshold"], "device": str(held_out.device),
           "patterns": dict(census), "dense_per_layer": [sum(p["type"] == "dense" for p in layer)
                                                         for layer in config["layers"]],
           "calibrate_s": None if args.config else round(calib_s, 1)}
    texts = {"held_out": held_out, "calibration_text": calib}
    stock = {name: losses(model, ids) for name, ids in texts.items()}
    enable_sparse_prefill(model, config, min_q_len=min(args.tokens, 1024))
    second = slice(args.tokens // 2, None)  # positions that see more than half the context
    for name, ids in texts.items():
        (stock_loss, stock_top1, stock_s), (sparse_loss, sparse_top1, sparse_s) = stock[name], losses(model, ids)
        row[name] = {"loss_stock": stock_loss.mean().item(), "loss_sparse": sparse_loss.mean().item(),
                     "loss_stock_second_half": stock_loss[second].mean().item(),
                     "loss_sparse_second_half": sparse_loss[second].mean().item(),
                     "top1_agreement": (stock_top1 == sparse_top1).float().mean().item(),
                     "top1_disagreements": int((stock_top1 != sparse_top1).sum()),
                     "stock_s": round(stock_s, 1), "sparse_s": round(sparse_s, 1)}
    print(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
