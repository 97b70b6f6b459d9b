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
  :func:`.boundary.boundary_2d_block_mask`, keys "mq,mk" strings so that the config is JSON).

``backend``: "triton" (the Triton kernel: CUDA, or CPU under TRITON_INTERPRET=1), "torch" (reference: builds the
N x N mask, for tests and short CPU inputs) or "auto" (triton on CUDA, torch otherwise).
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import reference as ref
from .boundary import build_boundary
from .patterns import (BlockSparseIndex, build_a_shape, build_grid, build_vertical_slash, estimate_grid,
                       estimate_vertical_slash, index_tensor)

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
    # index lists that depend on the modality layout only (boundary heads), built at the first layer and reused by
    # the others: a context describes one input and is not changed after it is made
    plans: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_modality(cls, modality: torch.Tensor, video_id: int = 1, tokens_per_frame: int | None = None):
        idx = torch.nonzero(modality.long() == video_id).flatten()
        if idx.numel() == 0:
            return cls(modality, None, None, tokens_per_frame)
        return cls(modality, int(idx[0]), int(idx[-1]) + 1, tokens_per_frame)


@dataclass
class KernelPass:
    """One launch of the block-sparse kernel: the lists and the kernel's keyword arguments (mask mode, A-term,
    positions of a permuted layout, gather); ``continues``: carry on the softmax of the pass before it."""
    index: BlockSparseIndex
    args: dict = field(default_factory=dict)
    continues: bool = False

    def tensors(self) -> list[torch.Tensor]:
        ix = self.index
        return [t for t in (ix.block_idx, ix.block_cnt, ix.col_idx, ix.col_cnt, *self.args.values())
                if isinstance(t, torch.Tensor)]


def plan_head_group(q, k, pattern: dict, heads: list[int], ctx: MultimodalContext | None,
                    block: int | tuple[int, int] = 64) -> list[KernelPass]:
    """Estimate the online indices and build the block lists for the query heads ``heads`` (sharing ``pattern``)
    of one sequence.  q: [1, H, N, D]; k: [1, Hkv, N, D].  Returns the kernel passes (empty for dense)."""
    bm, bn = (block, block) if isinstance(block, int) else block
    n, group = q.shape[2], q.shape[1] // k.shape[1]
    kvh = torch.tensor([x // group for x in heads])                       # on the host: no device round trip
    h = len(heads)
    kind = pattern["type"]
    last_q = pattern.get("last_q", 64)
    if kind == "dense":
        return []
    # the estimators read the last queries only
    q_last = q[0, :, max(0, n - last_q):].index_select(0, index_tensor(tuple(heads), q.device))
    if kind == "a_shape":
        idx = build_a_shape(n, n, h, pattern["sink"], pattern["window"], None, bm, bn, q.device)
        return [KernelPass(idx, dict(mask_mode=1, sink=pattern["sink"], window=pattern["window"]))]
    if kind == "vertical_slash":
        v_idx, s_off = estimate_vertical_slash(q_last, k[0], pattern["n_vertical"], pattern["n_slash"], last_q,
                                               pattern.get("sink", 4), pattern.get("local", bn), kv_head_idx=kvh)
        return [KernelPass(build_vertical_slash(n, n, v_idx, s_off, bm, bn))]
    if kind == "grid":
        sink, window = pattern.get("sink", 64), pattern.get("window", 256)
        span = grid_span(ctx)
        if span is None:
            return plan_head_group(q, k, {"type": "a_shape", "sink": sink, "window": window}, heads, ctx, block)
        start, end = span
        stride, phases = estimate_grid(q_last, k[0], start, end, pattern.get("n_phases", 4),
                                       pattern.get("stride") or ctx.tokens_per_frame, last_q, kv_head_idx=kvh)
        g = build_grid(n, stride, phases, start, end, sink, window, pattern.get("horizontal", True), bm, bn)
        amask = dict(sink=sink, window=window, dense_from=end)
        perm = g.perm.to(q.device)
        # grid lines first (phase-major tile order, rows gathered through their positions), then the sink/local/
        # trailing-text tiles in the original order, continuing the same softmax (the log-sum-exp merge)
        return [KernelPass(g.grid, dict(q_pos=perm, k_pos=perm, gather=True, mask_mode=2, **amask)),
                KernelPass(g.local, dict(mask_mode=1, **amask), continues=True)]
    if kind == "boundary":
        idx, qperm, kperm = boundary_plan(pattern, ctx, bm, bn, q.device)
        idx = BlockSparseIndex(idx.block_idx.expand(h, *idx.block_idx.shape[1:]),
                               idx.block_cnt.expand(h, *idx.block_cnt.shape[1:]), bm, bn)
        return [KernelPass(idx, dict(q_pos=qperm, k_pos=kperm, gather=True))]
    raise ValueError(f"unknown pattern type {kind!r}; expected one of {PATTERN_TYPES}")


def grid_span(ctx: MultimodalContext | None) -> tuple[int, int] | None:
    """The video span ``[start, end)`` a grid head covers on ``ctx``, or None (no video, or under two tokens of
    it): grid heads then run as A-shape heads.  The search scores a grid candidate under the same rule."""
    if ctx is None or ctx.video_start is None or ctx.video_end - ctx.video_start < 2:
        return None
    return ctx.video_start, ctx.video_end


def boundary_rules(pattern: dict) -> dict:
    """The JSON rules of a boundary pattern (``{"mq,mk": "dense" | "none" | ["sink_local", s, w]}``) as
    :func:`.boundary.boundary_2d_block_mask` takes them (``{(mq, mk): rule}``)."""
    return {tuple(int(x) for x in key.split(",")): (r if isinstance(r, str) else tuple(r))
            for key, r in pattern["rules"].items()}


def boundary_plan(pattern: dict, ctx: MultimodalContext | None, block_m: int, block_n: int, device):
    """(index for one head, q_perm, k_perm) of a boundary pattern on ``ctx``'s modality layout.  It depends on the
    layout only, so it is built once per context (building it reads counts back from the GPU) and every layer
    after the first reuses it from ``ctx.plans``."""
    if ctx is None or ctx.modality is None:
        raise ValueError("boundary pattern needs ctx.modality")
    key = ("boundary", json.dumps(pattern, sort_keys=True), block_m, block_n, str(device))
    if key not in ctx.plans:
        ctx.plans[key] = build_boundary(ctx.modality.to(device), [boundary_rules(pattern)], block_m, block_n,
                                        pattern.get("permute_cols", True))
    return ctx.plans[key]


def run_passes(q, k, v, out, passes: list[KernelPass], heads: torch.Tensor, backend: str, sm_scale: float,
               launch: dict | None = None) -> None:
    """Launch the passes of one head group, writing ``out[:, heads]``; both backends take the same arguments
    (triton: the kernel; torch: the fp32 reference)."""
    if backend == "triton":
        from .block_sparse_attn import block_sparse_attention as fn
        extra = dict(launch or {})
    else:
        fn, extra = ref.block_sparse_attention_ref, {}
    kvh = heads // (q.shape[1] // k.shape[1])
    lse = None
    for i, p in enumerate(passes):
        ix = p.index
        kw = dict(p.args, **extra)
        if p.continues:
            kw["lse_in"] = lse
        kw["return_lse"] = i + 1 < len(passes) and passes[i + 1].continues
        res = fn(q, k, v, ix.block_idx, ix.block_cnt, ix.col_idx, ix.col_cnt, sm_scale=sm_scale,
                 block_m=ix.block_m, block_n=ix.block_n, q_head_idx=heads, kv_head_idx=kvh, out=out, **kw)
        lse = res[1] if kw["return_lse"] else None


def head_chunks(patterns: list[dict], n: int, block: int | tuple[int, int] = 64,
                head_chunk: int | None = None) -> list[tuple[dict, list[int]]]:
    """The sparse heads grouped by identical pattern (one plan and one set of launches per group), split into
    chunks of at most ``head_chunk`` heads; default: as many as keep the padded ``[h, M, K]`` index lists under
    ~2^28 entries (1 GiB of int32), e.g. 4 heads at 512K tokens.  A-shape groups come first: their lists depend
    on the sizes only (built once), so their kernels can start at once and cover the next group's planning.
    Dense heads are left out (SDPA runs them)."""
    groups: dict[str, list[int]] = {}
    for h, p in enumerate(patterns):
        if p["type"] != "dense":
            groups.setdefault(json.dumps(p, sort_keys=True), []).append(h)
    if head_chunk is None:
        bm, bn = (block, block) if isinstance(block, int) else block
        head_chunk = max(1, (1 << 28) // max(1, (-(-n // bm)) * (-(-n // bn))))
    keys = sorted(groups, key=lambda key: json.loads(key)["type"] != "a_shape")
    return [(json.loads(key), groups[key][i:i + head_chunk]) for key in keys
            for i in range(0, len(groups[key]), head_chunk)]


def _check_context(c: MultimodalContext | None, n: int) -> None:
    """A context made for another input fails here with its sizes, not inside an index builder."""
    if c is None:
        return
    if c.modality is not None and c.modality.numel() != n:
        raise ValueError(f"ctx.modality describes {c.modality.numel()} tokens, the input has {n}: make a context "
                         f"per input (MultimodalContext.from_modality)")
    if c.video_start is not None and not 0 <= c.video_start <= (c.video_end if c.video_end is not None else -1) <= n:
        raise ValueError(f"ctx's video span [{c.video_start}, {c.video_end}) is not inside the input's {n} tokens")
    if c.tokens_per_frame is not None and not (isinstance(c.tokens_per_frame, int) and c.tokens_per_frame >= 1):
        raise ValueError(f"ctx.tokens_per_frame must be a positive int or None (detect the stride), got "
                         f"{c.tokens_per_frame!r}")  # 0 divided inside the grid estimator, a float sliced


@functools.lru_cache(maxsize=None)
def _side_stream(device_index: int):
    """High priority: its small index-building kernels get SMs as soon as programs of the sparse kernel on the
    main stream retire, instead of queueing behind all of them."""
    return torch.cuda.Stream(device=device_index, priority=-1)


def sparse_prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, patterns: list[dict],
                             ctx: MultimodalContext | list[MultimodalContext] | None = None, backend: str = "auto",
                             sm_scale: float | None = None, block: int | tuple[int, int] = 64,
                             head_chunk: int | None = None, launch: dict | None = None) -> torch.Tensor:
    """Causal prefill attention with a sparse pattern per head.

    q: [B, H, N, D]; k, v: [B, Hkv, N, D]; patterns: H dicts (see module doc); ctx: one context (shared) or one
    per batch element; block: tile size, or (query rows, keys) per tile; head_chunk: heads per kernel launch
    (see :func:`head_chunks`); launch: Triton launch options (num_warps, num_stages).  Returns [B, H, N, D] in
    q.dtype."""
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape:
        raise ValueError(f"expected q [B,H,N,D], k/v [B,Hkv,N,D]; got {tuple(q.shape)}, {tuple(k.shape)}")
    B, H, N, D = q.shape
    if k.shape[2] != N:
        raise ValueError("sparse prefill needs as many queries as keys (no KV cache prefix)")
    if len(patterns) != H:
        raise ValueError(f"need one pattern per query head ({H}), got {len(patterns)}")
    if H % k.shape[1]:
        raise ValueError(f"query heads ({H}) must be a multiple of kv heads ({k.shape[1]})")
    ctxs = list(ctx) if isinstance(ctx, (list, tuple)) else [ctx] * B
    if len(ctxs) != B:
        raise ValueError(f"ctx: {len(ctxs)} contexts for a batch of {B}")
    for c in ctxs:
        _check_context(c, N)
    if backend == "auto":
        backend = "triton" if q.is_cuda else "torch"
    if backend not in ("triton", "torch"):
        raise ValueError(f"backend must be 'auto', 'triton' or 'torch', got {backend!r}")
    sm_scale = 1.0 / math.sqrt(D) if sm_scale is None else sm_scale
    group = H // k.shape[1]
    dense = [h for h, p in enumerate(patterns) if p["type"] == "dense"]
    chunks = head_chunks(patterns, N, block, head_chunk)
    dense_t = index_tensor(tuple(dense), q.device)
    heads_t = [index_tensor(tuple(hs), q.device) for _, hs in chunks]
    # On a GPU each chunk's lists are built on a side stream while the kernel of the chunk before runs (no host
    # read-backs: the host queues the whole layer).  The dense heads' SDPA goes last: its kernel holds every SM
    # until it ends, so index building queued behind it would wait for all of it.
    main = torch.cuda.current_stream(q.device) if q.is_cuda else None
    side = _side_stream(q.device.index if q.device.index is not None else torch.cuda.current_device()) \
        if q.is_cuda else None
    on_side = (lambda: torch.cuda.stream(side)) if side is not None else contextlib.nullcontext
    out = torch.empty_like(q)
    for b in range(B):
        c = ctxs[b]
        qb, kb, vb, ob = q[b:b + 1], k[b:b + 1], v[b:b + 1], out[b:b + 1]
        if side is not None:
            side.wait_stream(main)                   # q, k, v were made on the main stream
        with on_side():
            plan = plan_head_group(qb, kb, *chunks[0], c, block) if chunks else None
        for i in range(len(chunks)):
            if side is not None:
                main.wait_stream(side)
                for t in (t for p in plan for t in p.tensors()):
                    t.record_stream(main)            # made on the side stream, read by kernels on the main one
            run_passes(qb, kb, vb, ob, plan, heads_t[i], backend, sm_scale, launch)
            with on_side():
                plan = plan_head_group(qb, kb, *chunks[i + 1], c, block) if i + 1 < len(chunks) else None
        if dense:
            kvd = dense_t // group
            res = F.scaled_dot_product_attention(qb.index_select(1, dense_t), kb.index_select(1, kvd),
                                                 vb.index_select(1, kvd), is_causal=True, scale=sm_scale)
            for j, h in enumerate(dense):            # head by head: contiguous copies (index_copy_ is ~8x slower)
                ob[:, h].copy_(res[:, j])
    return out
