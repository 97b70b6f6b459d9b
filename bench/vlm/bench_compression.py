"""Streaming visual token compression: prefill length, time and memory of the local VLM engine vs span length.

    python bench/vlm/bench_compression.py [--frames 32 128 512] [--budget 4096] [--json OUT]

Side by side in one run, on the same frames (1 fps from a generated video of moving scenes, the hard case for
the redundancy step), through ``TransformersVLM.chat``:

* ``compressed``: the engine's defaults (``vlm.token_budget``, ``vlm.redundancy``);
* ``all tokens``: no compression (every token of every frame in the prompt), up to ``--max-uncompressed`` tokens.

The model is a Qwen2.5-VL-shaped transformer with RANDOM weights (8 text layers of width 512, a 4-block vision
tower; no VLM weights can be downloaded here), so the times show how prefill cost scales with the prompt, not a
real model's speed. Also timed: the compressor alone at Qwen2.5-VL-7B's width (3584) with a full buffer, per
temporal patch. Peak memory is the process's RSS high-water mark after each row (rows run smallest first).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _model():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from tests.tiny_qwen_vl import IM_END, IMAGE_TOKEN, VEND, VIDEO_TOKEN, VSTART

    torch.manual_seed(0)
    cfg = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                         num_key_value_heads=2, vocab_size=300, max_position_embeddings=1 << 20,
                         eos_token_id=IM_END, bos_token_id=None, pad_token_id=None,
                         rope_parameters={"rope_type": "default", "mrope_section": [8, 12, 12], "rope_theta": 1e6}),
        vision_config=dict(depth=4, hidden_size=256, intermediate_size=1024, num_heads=4, out_hidden_size=512,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[3], tokens_per_second=2),
        image_token_id=IMAGE_TOKEN, video_token_id=VIDEO_TOKEN, vision_start_token_id=VSTART,
        vision_end_token_id=VEND, eos_token_id=IM_END, bos_token_id=None, pad_token_id=None)
    cfg._attn_implementation = "sdpa"
    return Qwen2_5_VLForConditionalGeneration(cfg).eval()


def _frames(n: int) -> list[np.ndarray]:
    from bench.ingest.make_video import make
    from videomind.ingest.decode import open_frames

    video = Path(tempfile.gettempdir()) / f"vm-bench-vlm-{n}.mp4"
    if not video.exists():
        make(video, minutes=n / 60 + 0.1, speech=0.0, scene=30.0)
    return [img for _, img in open_frames(str(video), 0.0, float(n), fps=1.0)][:n]


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _row(vlm, frames) -> dict:
    t = time.perf_counter()
    c = vlm.chat([{"role": "user", "content": "w5 w6 w7"}], images=iter(frames), max_new_tokens=1)
    return {"prompt_tokens": c.prompt_tokens, "visual_tokens": c.meta["visual_tokens"],
            "visual_tokens_seen": c.meta["visual_tokens_seen"], "seconds": round(time.perf_counter() - t, 2),
            "peak_rss_gb": round(_peak_gb(), 2)}


def compressor_alone(width: int = 3584, budget: int = 4096, patches: int = 200) -> dict:
    """Seconds per temporal patch (144 tokens) once the buffer is full, at a 7B model's width."""
    from videomind.backends.token_compression import StreamingTokenCompressor

    g = torch.Generator().manual_seed(0)
    comp = StreamingTokenCompressor(budget, redundancy=0.95)
    for t in range(budget // 144 + 1):
        comp.add(torch.randn(144, width, generator=g), t, (9, 16))
    t0 = time.perf_counter()
    for t in range(patches):
        comp.add(torch.randn(144, width, generator=g), 1000 + t, (9, 16))
    return {"width": width, "budget": budget, "ms_per_patch": round(1000 * (time.perf_counter() - t0) / patches, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--budget", type=int, default=4096)
    ap.add_argument("--max-uncompressed", type=int, default=20000, help="skip 'all tokens' rows above this")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from tests.tiny_qwen_vl import tiny_tokenizer
    from videomind.backends.hf_vlm import TransformersVLM
    from videomind.config import VLMConfig

    model, tok = _model(), tiny_tokenizer()
    engines = {"compressed": TransformersVLM(model, tok, "bench-random", VLMConfig(token_budget=args.budget)),
               "all tokens": TransformersVLM(model, tok, "bench-random",
                                             VLMConfig(token_budget=1 << 20, redundancy=2.0))}
    rows = []
    for n in sorted(args.frames):
        frames = _frames(n)
        for name, vlm in engines.items():
            if name == "all tokens" and n * 56 > args.max_uncompressed:  # 112 tokens per 2 frames of 384x216
                rows.append({"frames": n, "mode": name, "skipped": f"> {args.max_uncompressed} tokens"})
                continue
            rows.append({"frames": n, "mode": name, **_row(vlm, frames)})
            print(json.dumps(rows[-1]), flush=True)
    out = {"rows": rows, "compressor_alone": compressor_alone(budget=args.budget),
           "torch_threads": torch.get_num_threads()}
    print(json.dumps(out["compressor_alone"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
