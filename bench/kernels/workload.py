"""The benchmark's workload: video-like attention inputs, and the masks its report compares.

Kept apart from bench_prefill.py (the timing harness) so the inputs can be read, and reused, on their own: the
generator plants the structures seen in video VLMs' attention (sinks, RoPE locality, grid lines at one spatial
position per frame) plus one head kind in seven whose attention is diffuse, i.e. needs dense attention.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from videomind.kernels.mminference import MultimodalContext, grid_span
from videomind.kernels.patterns import (a_shape_block_mask, build_vertical_slash, estimate_grid,
                                        estimate_vertical_slash, grid_block_mask)
from videomind.kernels.search import pattern_row_mask, sample_rows, sampled_probs


def rope(x: torch.Tensor, pos: torch.Tensor, theta: float = 1e6) -> torch.Tensor:
    d = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    ang = pos.float()[:, None] * inv[None, :]
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def video_like_qkv(n, h, hkv, d, tpf, prefix, suffix, seed=0, device="cpu", dtype=torch.float32):
    """Queries/keys whose attention has the structures seen in video VLMs: sink tokens, locality (RoPE), grid
    lines (same spatial position in every frame), and per-head mixtures of them; one sequence (B = 1)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    start, end = prefix, n - suffix
    pos = torch.arange(n, device=device)
    spatial = torch.where((pos >= start) & (pos < end), (pos - start) % tpf, -1)
    table = torch.randn(tpf + 1, d, generator=g).to(device)
    table[-1] = 0
    q = torch.empty(1, h, n, d, device=device, dtype=dtype)
    k = torch.empty(1, hkv, n, d, device=device, dtype=dtype)
    v = torch.randn(1, hkv, n, d, generator=g).to(device, dtype)
    grp = h // hkv
    for j in range(hkv):
        base = torch.randn(d, generator=g).to(device)
        kk = rope(base.expand(n, d), pos) * 2.0 + 0.5 * torch.randn(n, d, generator=g).to(device)
        hot = torch.randperm(tpf, generator=g)[:3].to(device)
        on = (spatial[:, None] == hot[None, :]).any(-1)
        kk = kk + on[:, None].float() * table[spatial.clamp(min=0)] * 3.0
        kk[:4] += 4.0 * base                                  # attention sinks
        k[0, j] = kk.to(dtype)
        for i in range(grp):
            kind = (0, 0, 1, 1, 2, 2, 3)[(j * grp + i) % 7]      # local, grid+local, grid, diffuse (1 in 7)
            qq = rope(base.expand(n, d), pos) * (3.0 if kind in (0, 1) else 0.6)
            if kind in (1, 2):
                qq = qq + table[hot[0]] * 1.5                  # grid heads look at one spatial position
            if kind == 3:
                qq = qq + 0.8 * torch.randn(n, d, generator=g).to(device)   # diffuse head
            q[0, j * grp + i] = qq.to(dtype)
    ctx = MultimodalContext(None, start, end, tpf)
    return q, k, v, ctx


# recall and the block mask FlexAttention gets
def recall_and_density(q, k, patterns, ctx, n_rows=128):
    h, n = q.shape[1], q.shape[2]
    grp = h // k.shape[1]
    rows = sample_rows(n, n_rows, device=q.device)
    recs, dens = [], []
    for i in range(h):
        qh, kh = q[0, i:i + 1], k[0, i // grp:i // grp + 1]
        p = sampled_probs(qh, kh, rows)
        m, d = pattern_row_mask(patterns[i], qh, kh, rows, ctx)
        recs.append(float((p * m).sum(-1).mean()))
        dens.append(float(d[0]))
    return recs, dens


def original_order_block_mask(q, k, patterns, ctx, block=64):
    """[H, M, NB] tiles (original token order) that contain an element of each head's pattern."""
    h, n = q.shape[1], q.shape[2]
    grp = h // k.shape[1]
    out = []
    for i in range(h):
        p = patterns[i]
        qh, kh = q[0, i:i + 1], k[0, i // grp:i // grp + 1]
        if p["type"] == "dense":
            nb = -(-n // block)
            out.append(torch.tril(torch.ones(nb, nb, dtype=torch.bool, device=q.device)))
        elif p["type"] == "a_shape" or (p["type"] == "grid" and grid_span(ctx) is None):
            out.append(a_shape_block_mask(n, n, p["sink"], p["window"], None, block, block, q.device))
        elif p["type"] == "vertical_slash":
            vi, so = estimate_vertical_slash(qh, kh, p["n_vertical"], p["n_slash"])
            idx = build_vertical_slash(n, n, vi, so, block, block)
            bm = torch.zeros(idx.block_cnt.shape[1], -(-n // block) + 1, dtype=torch.bool, device=q.device)
            ar = torch.arange(idx.block_idx.shape[-1], device=q.device)
            bm.scatter_(1, torch.where(ar < idx.block_cnt[0, :, None], idx.block_idx[0].long(), bm.shape[1] - 1), True)
            car = torch.arange(idx.col_idx.shape[-1], device=q.device)
            cb = torch.where(car < idx.col_cnt[0, :, None], idx.col_idx[0].long() // block, bm.shape[1] - 1)
            bm.scatter_(1, cb, True)
            out.append(bm[:, :-1])
        elif p["type"] == "grid":
            stride, ph = estimate_grid(qh, kh, ctx.video_start, ctx.video_end, p["n_phases"],
                                       p.get("stride") or ctx.tokens_per_frame)
            ident = torch.arange(n, device=q.device)
            gm = grid_block_mask(n, stride, ph[0], ctx.video_start, ctx.video_end, block, block,
                                 p.get("horizontal", True), perm=ident)
            am = a_shape_block_mask(n, n, p["sink"], p["window"], ctx.video_end, block, block, q.device)
            out.append(gm | am)
        else:
            raise ValueError(p)
    return torch.stack(out)


def flex_runner(q, k, v, bmask64):
    from torch.nn.attention.flex_attention import BlockMask, flex_attention
    h, m64, nb64 = bmask64.shape
    n = q.shape[2]
    # flex tiles are 128 x 128: OR the 64-blocks in 2x2 groups
    pm, pn = (-m64) % 2, (-nb64) % 2
    bm = F.pad(bmask64, (0, pn, 0, pm))
    bm = bm.view(h, bm.shape[1] // 2, 2, bm.shape[2] // 2, 2).any(-1).any(-2)
    cnt = bm.sum(-1).int()
    ar = torch.arange(bm.shape[-1], device=bm.device)
    idx = torch.sort(torch.where(bm, ar, ar + bm.shape[-1]), -1).values
    idx = torch.where(idx < bm.shape[-1], idx, 0).int()

    def causal(b, hh, qi, ki):
        return ki <= qi

    block_mask = BlockMask.from_kv_blocks(cnt[None], idx[None], BLOCK_SIZE=128, mask_mod=causal, seq_lengths=(n, n))
    fn = torch.compile(flex_attention) if q.is_cuda else flex_attention
    tiles = float(cnt.double().sum()) * 4        # in 64x64 tile units
    return (lambda: fn(q, k, v, block_mask=block_mask, enable_gqa=True)), tiles
