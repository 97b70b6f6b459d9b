"""Per-head modality-aware sparse prefill attention (MMInference, arXiv 2504.16083).

``sparse_prefill_attention(q, k, v, patterns, ctx)`` runs every head with its own pattern:

* ``{"type": "dense"}`` -- causal SDPA;
* ``{"type": "a_shape", "sink": S, "window": W}`` -- sink columns + local window (token exact);
* ``{"type": "vertical_slash", "n_vertical": V, "n_slash": S, "last_q": 64}`` -- indices estimated online from the
  last ``last_q`` queries;
* ``{"type": "grid", "n_phases": P, "sink": S, "window": W, "stride": None|int, "horizontal": True}`` -- grid lines
  over the video span (stride = ``ctx.tokens_per_frame`` or detected), two passes merged by log-sum-exp; heads
  fall back to A-shape when the input has no video span;
* ``{"type": "boundary", "rules": {"q,k": rule}, "permute_cols": True}`` -- 2D-/Q-boundary layout (rules as in
  :func:`.patterns.boundary_2d_block_mask`, keys "mq,mk" strings so that the config is JSON).

``backend``: "triton" (the Triton kernel: CUDA, or CPU under TRITON_INTERPRET=1), "torch" (reference: builds the
N x N mask, for tests and short CPU inputs) or "auto" (triton on CUDA, torch otherwise).
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import reference as ref
from .patterns import (build_a_shape, build_boundary, build_grid, build_vertical_slash, estimate_grid,
                       estimate_vertical_slash)
from .permute import invert_permutation

PATTERN_TYPES = ("dense", "a_shape", "vertical_slash", "grid", "boundary")


@dataclass
class MultimodalContext:
    """Where the modalities are, for one sequence.

    modality: [N] int (0 = text, 1 = image/video, ... as the processor's token types); video_start / video_end:
    the span holding the video tokens (grid pattern; None = no video); tokens_per_frame: known grid stride."""
    modality: torch.Tensor | None = None
    video_start: int | None = None
    video_end: int | None = None
    tokens_per_frame: int | None = None

    @classmethod
    def from_modality(cls, modality: torch.Tensor, video_id: int = 1, tokens_per_frame: int | None = None):
        idx = torch.nonzero(modality.long() == video_id).flatten()
        if idx.numel() == 0:
            return cls(modality, None, None, tokens_per_frame)
        return cls(modality, int(idx[0]), int(idx[-1]) + 1, tokens_per_frame)


def _kernel():
    from .block_sparse_attn import block_sparse_attention
    return block_sparse_attention


def _run_index(q, k, v, index, kvh, backend, sm_scale, return_lse=False, q_pos=None, k_pos=None,
               launch: dict | None = None, **mask):
    """q: [B, h, N, D] (subset of heads), kvh: [h] kv head of each; index lists for the h heads; launch: kernel
    launch options (num_warps, num_stages) for the Triton backend."""
    if backend == "triton":
        return _kernel()(q, k, v, index.block_idx.to(q.device), index.block_cnt.to(q.device),
                         None if index.col_idx is None else index.col_idx.to(q.device),
                         None if index.col_cnt is None else index.col_cnt.to(q.device),
                         q_pos=q_pos, k_pos=k_pos, sm_scale=sm_scale, block_m=index.block_m, block_n=index.block_n,
                         return_lse=return_lse, kv_head_idx=kvh, **(launch or {}), **mask)
    kk = k.index_select(1, kvh.to(k.device))
    vv = v.index_select(1, kvh.to(v.device))
    return ref.block_sparse_attention_ref(q, kk, vv, index.block_idx, index.block_cnt, index.col_idx,
                                          index.col_cnt, q_pos=q_pos, k_pos=k_pos, sm_scale=sm_scale,
                                          block_m=index.block_m, block_n=index.block_n, return_lse=return_lse,
                                          **mask)


def _dense(q, k, v, kvh, sm_scale):
    kk = k.index_select(1, kvh.to(k.device))
    vv = v.index_select(1, kvh.to(v.device))
    return F.scaled_dot_product_attention(q, kk, vv, is_causal=True, scale=sm_scale)


def run_head_group(q, k, v, pattern: dict, kvh: torch.Tensor, ctx: MultimodalContext | None, backend: str,
                   sm_scale: float, block: int | tuple[int, int] = 64, launch: dict | None = None) -> torch.Tensor:
    """One sequence (B = 1), heads sharing one pattern config.  q: [1, h, N, D], k/v: [1, Hkv, N, D];
    block: tile size, or (query rows, keys) per tile."""
    bm, bn = (block, block) if isinstance(block, int) else block
    run = functools.partial(_run_index, backend=backend, sm_scale=sm_scale, launch=launch)
    n = q.shape[2]
    h = q.shape[1]
    kind = pattern["type"]
    if kind == "dense":
        return _dense(q, k, v, kvh, sm_scale)
    if kind == "a_shape":
        idx = build_a_shape(n, n, h, pattern["sink"], pattern["window"], None, bm, bn, q.device)
        return run(q, k, v, idx, kvh, mask_mode=1, sink=pattern["sink"], window=pattern["window"])
    if kind == "vertical_slash":
        kk = k[0].index_select(0, kvh)                                # [h, N, D] (only the last queries scored)
        v_idx, s_off = estimate_vertical_slash(q[0], kk, pattern["n_vertical"], pattern["n_slash"],
                                               pattern.get("last_q", 64), pattern.get("sink", 4),
                                               pattern.get("local", bn))
        idx = build_vertical_slash(n, n, v_idx, s_off, bm, bn)
        return run(q, k, v, idx, kvh)
    if kind == "grid":
        sink, window = pattern.get("sink", 64), pattern.get("window", 256)
        if ctx is None or ctx.video_start is None or ctx.video_end - ctx.video_start < 2:
            return run_head_group(q, k, v, {"type": "a_shape", "sink": sink, "window": window}, kvh, ctx, backend,
                                  sm_scale, block, launch)
        start, end = ctx.video_start, ctx.video_end
        kk = k[0].index_select(0, kvh)
        stride = pattern.get("stride") or ctx.tokens_per_frame
        stride, phases = estimate_grid(q[0], kk, start, end, pattern.get("n_phases", 4), stride,
                                       pattern.get("last_q", 64))
        g = build_grid(n, stride, phases, start, end, sink, window, pattern.get("horizontal", True), bm, bn)
        amask = dict(sink=sink, window=window, dense_from=end)
        o1, l1 = run(q, k, v, g.local, kvh, return_lse=True, mask_mode=1, **amask)
        perm = g.perm.to(q.device)
        kv_u, kv_local = torch.unique(kvh, return_inverse=True)      # permute only the kv heads in use
        qp = q.index_select(2, perm)
        kp, vp = (x.index_select(1, kv_u).index_select(2, perm) for x in (k, v))
        o2, l2 = run(qp, kp, vp, g.grid, kv_local, return_lse=True, q_pos=perm, k_pos=perm, mask_mode=2, **amask)
        inv = invert_permutation(perm)
        o2, l2 = o2.index_select(2, inv), l2.index_select(2, inv)
        return ref.merge_lse(o1, l1, o2, l2)[0]
    if kind == "boundary":
        if ctx is None or ctx.modality is None:
            raise ValueError("boundary pattern needs ctx.modality")
        rules = {tuple(int(x) for x in key.split(",")): (r if isinstance(r, str) else tuple(r))
                 for key, r in pattern["rules"].items()}
        idx, qperm, kperm = build_boundary(ctx.modality.to(q.device), [rules] * h, bm, bn,
                                           pattern.get("permute_cols", True))
        kv_u, kv_local = torch.unique(kvh, return_inverse=True)
        qp = q.index_select(2, qperm)
        kp, vp = (x.index_select(1, kv_u).index_select(2, kperm) for x in (k, v))
        o = run(qp, kp, vp, idx, kv_local, q_pos=qperm, k_pos=kperm)
        return o.index_select(2, invert_permutation(qperm))
    raise ValueError(f"unknown pattern type {kind!r}; expected one of {PATTERN_TYPES}")


def sparse_prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, patterns: list[dict],
                             ctx: MultimodalContext | list[MultimodalContext] | None = None, backend: str = "auto",
                             sm_scale: float | None = None, block: int | tuple[int, int] = 64,
                             head_chunk: int | None = None, launch: dict | None = None) -> torch.Tensor:
    """Causal prefill attention with a sparse pattern per head.

    q: [B, H, N, D]; k, v: [B, Hkv, N, D]; patterns: H dicts (see module doc); ctx: one context (shared) or one
    per batch element; block: tile size, or (query rows, keys) per tile; head_chunk: heads per kernel launch
    (default: as many as keep the padded index lists under ~2^28 entries, 1 GiB of int32, e.g. 4 heads at 512K
    tokens); launch: Triton launch options (num_warps, num_stages).  Returns [B, H, N, D] in q.dtype."""
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape:
        raise ValueError(f"expected q [B,H,N,D], k/v [B,Hkv,N,D]; got {tuple(q.shape)}, {tuple(k.shape)}")
    B, H, N, D = q.shape
    if k.shape[2] != N:
        raise ValueError("sparse prefill needs as many queries as keys (no KV cache prefix)")
    if len(patterns) != H:
        raise ValueError(f"need one pattern per query head ({H}), got {len(patterns)}")
    if H % k.shape[1]:
        raise ValueError(f"query heads ({H}) must be a multiple of kv heads ({k.shape[1]})")
    if backend == "auto":
        backend = "triton" if q.is_cuda else "torch"
    if backend not in ("triton", "torch"):
        raise ValueError(f"backend must be 'auto', 'triton' or 'torch', got {backend!r}")
    sm_scale = 1.0 / math.sqrt(D) if sm_scale is None else sm_scale
    group = H // k.shape[1]
    groups: dict[str, list[int]] = {}
    for h, p in enumerate(patterns):
        groups.setdefault(json.dumps(p, sort_keys=True), []).append(h)
    if head_chunk is None:        # bound the padded [h, M, K] index lists to ~2^28 entries per launch
        bm, bn = (block, block) if isinstance(block, int) else block
        tiles = (-(-N // bm)) * (-(-N // bn))
        head_chunk = max(1, (1 << 28) // max(1, tiles))
    out = torch.empty_like(q)
    for b in range(B):
        c = ctx[b] if isinstance(ctx, (list, tuple)) else ctx
        for key, heads in groups.items():
            pattern = json.loads(key)
            step = len(heads) if pattern["type"] == "dense" else head_chunk
            for i in range(0, len(heads), step):
                ht = torch.tensor(heads[i:i + step], device=q.device)
                o = run_head_group(q[b:b + 1].index_select(1, ht), k[b:b + 1], v[b:b + 1], pattern,
                                   ht // group, c, backend, sm_scale, block, launch)
                out[b:b + 1].index_copy_(1, ht, o.to(q.dtype))
    return out
