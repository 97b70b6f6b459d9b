"""Column mass of the last queries' attention (Triton): what the grid estimator ranks its phases by.

The online estimators score the last ``L`` (64) queries against every key and sum each key column's softmax
probability over those rows.  The torch way (:func:`.patterns._last_q_probs` then ``.sum(1)``) materialises the
probabilities as an fp32 ``[H, L, N]`` tensor (0.9 GB at 128K tokens and 28 heads, 3.7 GB at 512K), writes and
reads it several times, and scores in fp32 without tensor cores: about 4 ms of device time per layer at 128K on an
H100, which the planning stream cannot hide.  Here two passes over the keys in tiles of ``[L, BLOCK_N]``, each one
tensor-core product per tile, and no ``[H, L, N]`` tensor:

1. each tile's row log-sum-exp, ``[H, tiles, L]``; torch folds them into the rows' normalisers ``[H, L]``;
2. each tile's probabilities ``exp(s - lse)`` summed over its rows: the mass of its columns.

Rows are independent, so queries beyond 64 rows go through in chunks whose masses add up.  The plain-torch
equivalent, which the tests compare with, is ``patterns.column_mass(..., backend="torch")``.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .device import launch_device

LOG2E = 1.4426950408889634
MAX_ROWS = 64          # query rows per launch: keeps the [rows, BLOCK_N] score tile in registers


@triton.jit
def _column_mass_kernel(Q, K, KVH, TILE_LSE, ROW_LSE, MASS, L, NK, COL0, COL1, D, sm_scale_log2,
                        stride_qh, stride_ql, stride_kh, stride_kn, stride_th, stride_tt, stride_mh,
                        BLOCK_L: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                        SECOND_PASS: tl.constexpr, IEEE: tl.constexpr):
    h = tl.program_id(0)
    t = tl.program_id(1)
    kvh = tl.load(KVH + h).to(tl.int64)
    rows = tl.arange(0, BLOCK_L)
    cols = COL0 + t * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    row_ok = rows < L
    col_ok = cols < COL1
    q = tl.load(Q + h.to(tl.int64) * stride_qh + rows[:, None] * stride_ql + offs_d[None, :],
                mask=row_ok[:, None] & (offs_d[None, :] < D), other=0.0)
    # K row-major ([BN, BD], contiguous along d), transposed in registers: the layout the tensor-core dot wants
    k = tl.load(K + kvh * stride_kh + cols[:, None].to(tl.int64) * stride_kn + offs_d[None, :],
                mask=col_ok[:, None] & (offs_d[None, :] < D), other=0.0)
    if IEEE:
        s = tl.dot(q, tl.trans(k), input_precision="ieee")
    else:
        s = tl.dot(q, tl.trans(k))
    qpos = NK - L + rows                                  # the last L queries sit at the end of the sequence
    allowed = row_ok[:, None] & col_ok[None, :] & (cols[None, :] <= qpos[:, None])
    s = tl.where(allowed, s * sm_scale_log2, float("-inf"))
    if SECOND_PASS:
        lse = tl.load(ROW_LSE + h * BLOCK_L + rows, mask=row_ok, other=float("inf"))
        p = tl.where(allowed, tl.exp2(s - lse[:, None]), 0.0)
        # one program per (head, tile) and launches in stream order: a plain read-add-write, no atomics
        m_ptr = MASS + h.to(tl.int64) * stride_mh + (cols - COL0)
        tl.store(m_ptr, tl.load(m_ptr, mask=col_ok, other=0.0) + tl.sum(p, 0), mask=col_ok)
    else:
        m = tl.max(s, 1)
        m_safe = tl.where(m == float("-inf"), 0.0, m)
        l_sum = tl.sum(tl.exp2(s - m_safe[:, None]), 1)                  # >= 1 where the row has an allowed key
        lse = tl.where(m == float("-inf"), float("-inf"), m_safe + tl.log2(tl.maximum(l_sum, 1.0)))
        tl.store(TILE_LSE + h * stride_th + t * stride_tt + rows, lse)


def last_q_column_mass(q_last: torch.Tensor, k: torch.Tensor, kv_head_idx: torch.Tensor, start: int = 0,
                       end: int | None = None, block_n: int = 128, num_warps: int = 4) -> torch.Tensor:
    """Summed causal attention of the last queries on each key column in ``[start, end)``.

    q_last: [H, L, D], the queries at positions ``Nk - L .. Nk - 1``; k: [Hkv, Nk, D]; kv_head_idx: [H] key head
    of each query head.  Softmax over all ``Nk`` keys with scale ``1/sqrt(D)``.  Returns [H, end - start] fp32."""
    H, L, D = q_last.shape
    hkv, nk, dk = k.shape
    end = nk if end is None else end
    if dk != D:
        raise ValueError(f"q and k head dims differ: {D} vs {dk}")
    if not 0 <= start <= end <= nk:
        raise ValueError(f"column range [{start}, {end}) outside the {nk} keys")
    if L > nk:
        raise ValueError(f"{L} query rows but only {nk} keys")
    q_last = q_last.contiguous()
    k = k if k.stride(-1) == 1 else k.contiguous()
    kvh = kv_head_idx.to(device=q_last.device, dtype=torch.int32).contiguous()
    mass = torch.zeros(H, end - start, device=q_last.device, dtype=torch.float32)
    if H == 0 or end == start or L == 0:
        return mass
    scale = LOG2E / math.sqrt(D)
    block_d = max(16, triton.next_power_of_2(D))
    ieee = q_last.dtype == torch.float32
    with launch_device(q_last):
        for r0 in range(0, L, MAX_ROWS):
            rows = min(MAX_ROWS, L - r0)
            block_l = max(16, triton.next_power_of_2(rows))
            qc = q_last[:, r0:r0 + rows]
            # the kernel puts its rows at the last positions of the keys it is given: these rows sit at
            # nk - L + r0 ..., so it gets the keys up to the last of them (the later ones are masked for them anyway)
            nk_c = nk - (L - r0 - rows)
            n_tiles = triton.cdiv(nk_c, block_n)
            tile_lse = torch.empty(H, n_tiles, block_l, device=q_last.device, dtype=torch.float32)
            args = (qc, k, kvh)
            strides = (qc.stride(0), qc.stride(1), k.stride(0), k.stride(1), tile_lse.stride(0), tile_lse.stride(1),
                       mass.stride(0))
            meta = dict(BLOCK_L=block_l, BLOCK_N=block_n, BLOCK_D=block_d, IEEE=ieee, num_warps=num_warps)
            _column_mass_kernel[(H, n_tiles)](*args, tile_lse, tile_lse, mass, rows, nk_c, 0, nk_c, D, scale, *strides,
                                              SECOND_PASS=False, **meta)
            row_lse = (torch.logsumexp(tile_lse * math.log(2.0), 1) / math.log(2.0)).contiguous()   # [H, BL], base 2
            hi = min(end, nk_c)
            if hi > start:
                _column_mass_kernel[(H, triton.cdiv(hi - start, block_n))](
                    *args, tile_lse, row_lse, mass, rows, nk_c, start, hi, D, scale, *strides, SECOND_PASS=True, **meta)
    return mass
