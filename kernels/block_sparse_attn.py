"""Block-sparse flash-attention forward (Triton) over per-(head, row-block) block lists and gathered columns.

See :func:`block_sparse_attention` for the contract and :mod:`videomind.kernels.reference` for the plain-PyTorch
equivalent (``block_sparse_attention_ref``) that the tests compare against.

On a machine without CUDA set ``TRITON_INTERPRET=1`` *before* importing this module to run the kernel in Triton's
interpreter (fp32/fp16 only; slow).
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .device import launch_device

LOG2E = 1.4426950408889634


@triton.jit
def _attend(q, m_i, l_i, acc, k_base, v_base, kv_pos_base, idx, n_valid, offs_d, d_valid, qpos, m_valid,
            stride_kn, stride_kd, stride_vn, stride_vd, stride_kpn, sm_scale_log2, sink, window, dense_from,
            need_mask, CAUSAL: tl.constexpr, MASK_MODE: tl.constexpr, IEEE: tl.constexpr,
            POS_IS_INDEX: tl.constexpr, GATHER: tl.constexpr):
    """One online-softmax step over the keys at token indices ``idx`` [BN] (a block or gathered columns).

    ``need_mask`` False: the caller proved every element of the tile allowed, so the element-wise mask (about as
    many integer operations per tile as the two matrix products have cycles) is skipped."""
    if POS_IS_INDEX:  # original order: a key's position is its index (no position load per tile)
        kpos = idx
    else:
        kpos = tl.load(kv_pos_base + idx * stride_kpn, mask=n_valid, other=0)
    # GATHER: K/V stay in the original order and the permuted layout is only the order of the tiles
    krow = kpos.to(tl.int64) if GATHER else idx
    # K is loaded row-major ([BN, BD], contiguous along d) and transposed in registers/shared memory, which is the
    # layout the tensor-core dot wants; a pointer-transposed [BD, BN] load is strided and much slower on GPUs.
    k = tl.load(k_base + krow[:, None] * stride_kn + offs_d[None, :] * stride_kd,
                mask=n_valid[:, None] & d_valid[None, :], other=0.0)  # [BN, BD]
    if IEEE:
        s = tl.dot(q, tl.trans(k), input_precision="ieee")
    else:
        s = tl.dot(q, tl.trans(k))
    s = s * sm_scale_log2  # [BM, BN]
    if need_mask:
        allowed = m_valid[:, None] & n_valid[None, :]
        if CAUSAL:
            allowed = allowed & (kpos[None, :] <= qpos[:, None])
        if MASK_MODE != 0:  # 1: only the sink/window/dense-row region; 2: everything but it (grid's second pass)
            in_a = (kpos[None, :] < sink) | ((qpos[:, None] - kpos[None, :]) < window) | (qpos[:, None] >= dense_from)
            if MASK_MODE == 1:
                allowed = allowed & in_a
            else:
                allowed = allowed & (~in_a)
        s = tl.where(allowed, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with nothing allowed yet stay at zero
    alpha = tl.exp2(m_i - m_safe)
    p = tl.exp2(s - m_safe[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    vv = tl.load(v_base + krow[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                 mask=n_valid[:, None] & d_valid[None, :], other=0.0)  # [BN, BD]
    if IEEE:
        acc = acc * alpha[:, None] + tl.dot(p.to(vv.dtype), vv, input_precision="ieee")
    else:
        acc = acc * alpha[:, None] + tl.dot(p.to(vv.dtype), vv)
    return m_new, l_i, acc


@triton.jit
def _bsa_fwd_kernel(
    Q, K, V, O, LSE, LSE_IN, BLOCK_IDX, BLOCK_CNT, COL_IDX, COL_CNT, QPOS, KPOS, KMIN, KMAX, QH, KVH, ORDER,
    sm_scale_log2,
    stride_qb, stride_qh, stride_qn, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_on, stride_od,
    stride_lb, stride_lh, stride_ln,
    stride_bib, stride_bih, stride_bim, stride_bik,
    stride_bcb, stride_bch, stride_bcm,
    stride_cib, stride_cih, stride_cim, stride_cik,
    stride_ccb, stride_cch, stride_ccm,
    stride_qpb, stride_qpn, stride_kpb, stride_kpn, stride_kmb,
    H, M, NQ, NK, D, sink, window, dense_from,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr, MASK_MODE: tl.constexpr, HAS_COLS: tl.constexpr, RETURN_LSE: tl.constexpr,
    IEEE: tl.constexpr, POS_IS_INDEX: tl.constexpr, GATHER: tl.constexpr, ACCUMULATE: tl.constexpr,
    TILE_CHECK: tl.constexpr,
):
    # one program per (batch, head, row block); ORDER lists them heaviest first (longest-processing-time
    # scheduling: the few row blocks with thousands of tiles must not start last and run alone at the end)
    task = tl.load(ORDER + tl.program_id(0))
    pid_m = task % M
    pid_bh = task // M
    # 64-bit offsets: at 1M tokens x 28 heads x 128 the element offsets pass 2^31
    b = (pid_bh // H).to(tl.int64)
    h = pid_bh % H
    kvh = tl.load(KVH + h).to(tl.int64)
    qh = tl.load(QH + h).to(tl.int64)
    h = h.to(tl.int64)

    offs_m = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_n0 = tl.arange(0, BLOCK_N)
    m_valid = offs_m < NQ
    d_valid = offs_d < D

    if POS_IS_INDEX:  # the queries are the last NQ of the NK keys
        qpos = offs_m + (NK - NQ)
    else:
        qpos = tl.load(QPOS + b * stride_qpb + offs_m * stride_qpn, mask=m_valid, other=-1)
    # position range of the row block's valid queries, for the per-tile "is every element allowed?" test
    q_lo = tl.min(tl.where(m_valid, qpos, NK + 1), 0)
    q_hi = tl.max(tl.where(m_valid, qpos, -1), 0)
    # GATHER: q, o and lse rows stay in the original order (row of a query = its position - (NK - NQ))
    qrow = (qpos - (NK - NQ)).to(tl.int64) if GATHER else offs_m
    q_ptrs = Q + b * stride_qb + qh * stride_qh + qrow[:, None] * stride_qn + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=m_valid[:, None] & d_valid[None, :], other=0.0)
    o_ptrs = O + b * stride_ob + qh * stride_oh + qrow[:, None] * stride_on + offs_d[None, :] * stride_od
    lse_ptrs = b * stride_lb + h * stride_lh + qrow * stride_ln

    k_base = K + b * stride_kb + kvh * stride_kh
    v_base = V + b * stride_vb + kvh * stride_vh
    kv_pos_base = KPOS + b * stride_kpb

    if ACCUMULATE:  # continue a partial result over other keys: (o, lse) is softmax state m = lse, l = 1, acc = o
        lse0 = tl.load(LSE_IN + lse_ptrs, mask=m_valid, other=float("-inf")) * 1.4426950408889634
        m_i = lse0
        l_i = tl.where(lse0 == float("-inf"), 0.0, 1.0)
        acc = tl.load(o_ptrs, mask=m_valid[:, None] & d_valid[None, :], other=0.0).to(tl.float32)
    else:
        m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    cnt = tl.load(BLOCK_CNT + b * stride_bcb + h * stride_bch + pid_m * stride_bcm)
    bi_base = BLOCK_IDX + b * stride_bib + h * stride_bih + pid_m * stride_bim
    for i in range(0, cnt):
        kb = tl.load(bi_base + i * stride_bik).to(tl.int64)
        offs_n = kb * BLOCK_N + offs_n0
        n_valid = offs_n < NK
        need_mask = True
        if TILE_CHECK:  # skip the element-wise mask on tiles that lie entirely inside it (most of them)
            if POS_IS_INDEX:
                k_lo = kb * BLOCK_N
                k_hi = k_lo + BLOCK_N - 1
            else:
                k_lo = tl.load(KMIN + b * stride_kmb + kb)
                k_hi = tl.load(KMAX + b * stride_kmb + kb)
            full = (kb + 1) * BLOCK_N <= NK
            if CAUSAL:
                full = full & (k_hi <= q_lo)
            if MASK_MODE == 1:
                full = full & ((k_hi < sink) | (q_hi - k_lo < window) | (q_lo >= dense_from))
            if MASK_MODE == 2:
                full = full & (k_lo >= sink) & (q_lo - k_hi >= window) & (q_hi < dense_from)
            need_mask = not full
        m_i, l_i, acc = _attend(q, m_i, l_i, acc, k_base, v_base, kv_pos_base, offs_n, n_valid, offs_d, d_valid,
                                qpos, m_valid, stride_kn, stride_kd, stride_vn, stride_vd, stride_kpn,
                                sm_scale_log2, sink, window, dense_from, need_mask, CAUSAL, MASK_MODE, IEEE,
                                POS_IS_INDEX, GATHER)

    if HAS_COLS:
        ccnt = tl.load(COL_CNT + b * stride_ccb + h * stride_cch + pid_m * stride_ccm)
        ci_base = COL_IDX + b * stride_cib + h * stride_cih + pid_m * stride_cim
        for j in range(0, ccnt, BLOCK_N):
            offs_c = j + offs_n0
            c_valid = offs_c < ccnt
            cols = tl.load(ci_base + offs_c * stride_cik, mask=c_valid, other=0).to(tl.int64)
            n_valid = c_valid & (cols < NK)
            m_i, l_i, acc = _attend(q, m_i, l_i, acc, k_base, v_base, kv_pos_base, cols, n_valid, offs_d,
                                    d_valid, qpos, m_valid, stride_kn, stride_kd, stride_vn, stride_vd, stride_kpn,
                                    sm_scale_log2, sink, window, dense_from, True, CAUSAL, MASK_MODE, IEEE,
                                    POS_IS_INDEX, GATHER)

    empty = l_i == 0.0
    l_safe = tl.where(empty, 1.0, l_i)
    out = acc / l_safe[:, None]
    tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=m_valid[:, None] & d_valid[None, :])
    if RETURN_LSE:
        # natural-log LSE of the *scaled* scores: (m + log2 l) / log2(e)
        lse = tl.where(empty, float("-inf"), (m_i + tl.log2(l_safe)) * 0.6931471805599453)
        tl.store(LSE + lse_ptrs, lse, mask=m_valid)


def _as_4d(x: torch.Tensor | None, name: str, ndim_small: int, B: int) -> torch.Tensor | None:
    """Accept [H, M, K] (shared over the batch, stride 0) or [B, H, M, K] (and likewise one rank lower)."""
    if x is None:
        return None
    if x.dim() == ndim_small:
        return x.unsqueeze(0).expand(B, *x.shape)
    if x.dim() == ndim_small + 1:
        if x.shape[0] not in (1, B):
            raise ValueError(f"{name} has batch {x.shape[0]}, expected 1 or {B}")
        return x.expand(B, *x.shape[1:])
    raise ValueError(f"{name} must have {ndim_small} or {ndim_small + 1} dims, got shape {tuple(x.shape)}")


def _positions(pos: torch.Tensor | None, n: int, B: int, default: torch.Tensor, name: str) -> torch.Tensor:
    if pos is None:
        pos = default
    if pos.dim() == 1:
        pos = pos.unsqueeze(0)
    if pos.dim() != 2 or pos.shape[-1] != n or pos.shape[0] not in (1, B):
        raise ValueError(f"{name} must be [N] or [B, N] with N={n}, got {tuple(pos.shape)}")
    return pos.to(torch.int32).expand(B, n)


def block_sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_idx: torch.Tensor,
                           block_cnt: torch.Tensor, col_idx: torch.Tensor | None = None,
                           col_cnt: torch.Tensor | None = None, q_pos: torch.Tensor | None = None,
                           k_pos: torch.Tensor | None = None, causal: bool = True, sm_scale: float | None = None,
                           block_m: int = 64, block_n: int = 64, mask_mode: int = 0, sink: int = 0,
                           window: int = 0, dense_from: int | None = None, return_lse: bool = False,
                           kv_head_idx: torch.Tensor | None = None, q_head_idx: torch.Tensor | None = None,
                           gather: bool = False, lse_in: torch.Tensor | None = None, out: torch.Tensor | None = None,
                           lse_out: torch.Tensor | None = None, num_warps: int | None = None,
                           num_stages: int | None = None, tile_check: bool = True):
    """Block-sparse attention forward.

    Shapes (B batch, H query heads computed, Hkv key/value heads with H % Hkv == 0, Nq / Nk tokens, D <= 256 head
    dim, M = ceil(Nq / block_m) row blocks, KB / KC = list capacities):

    * q: [B, Hq, Nq, D] (Hq = H, or more with ``q_head_idx``); k, v: [B, Hkv, Nk, D] (any strides; fp16, bf16 or
      fp32; same dtype).
    * block_idx: int [H, M, KB] or [B, H, M, KB] -- key-block indices (block ``j`` = key rows
      ``[j*block_n, (j+1)*block_n)``) in the layout of ``k``; only the first ``block_cnt[..., m]`` entries are read,
      each must lie in ``[0, ceil(Nk / block_n))`` and the list must not repeat a block.
    * block_cnt: int [H, M] or [B, H, M].
    * col_idx / col_cnt: optional int [H, M, KC] / [H, M] (or with batch) -- extra single key rows ("vertical lines")
      for each row block; they must not fall inside that row block's listed key blocks (no double counting).
    * q_pos: [Nq] or [B, Nq] and k_pos: [Nk] or [B, Nk] original positions (for permuted layouts; default: the
      queries are the last Nq of the Nk keys).  With ``causal`` a key is allowed iff ``k_pos <= q_pos``.
    * mask_mode 0: no extra term; 1: keep only keys with ``k_pos < sink or q_pos - k_pos < window or
      q_pos >= dense_from``; 2: keep only keys *not* matching that term (see :mod:`.reference`).
    * q_head_idx: optional int [H] -- the heads of q (and of ``out``) that this launch computes, in the order of
      the block lists (default: all); kv_head_idx: optional int [H] -- key/value head read by each of them (default
      ``q_head_idx // (Hq // Hkv)``).  A launch covers a subset of heads without copying q, k or v.
    * gather: the block lists and ``q_pos`` / ``k_pos`` describe a permuted layout, but q, k, v, ``out`` and the
      LSE stay in the original order: rows are read and written through the positions (row = position -
      (Nk - Nq)), so no permuted copy of the inputs or the output is ever made.
    * lse_in: optional contiguous [B, H, Nq] fp32 -- ``out`` already holds attention over *other* keys with this
      log-sum-exp; the launch continues that softmax (the merge of two disjoint key sets, done in the prologue).
    * out / lse_out: optional preallocated [B, Hq, Nq, D] (q.dtype) / contiguous [B, H, Nq] fp32 outputs (lse_out
      may be lse_in); every valid element of the computed heads is written (the tests poison them with NaN
      first), the other heads of ``out`` are left alone (without ``out`` they are zeros).
    * tile_check: skip the element-wise mask on tiles that lie entirely inside it (decided per tile from the
      position ranges of its rows and keys); False masks every tile (same result, for comparison).

    Programs are launched heaviest row block first (by the length of its lists), which keeps the few rows with
    thousands of tiles (grid lines, trailing text) from running alone at the end of the launch.

    Returns o: [B, Hq, Nq, D] in q.dtype and, if ``return_lse``, lse: [B, H, Nq] fp32 (natural log of the softmax
    denominator over the scaled scores).  A row without any allowed key gets o = 0 and lse = -inf.
    Raises ValueError on inconsistent shapes/dtypes/devices.
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be 4-D [B, H, N, D]; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    B, HQ, NQ, D = q.shape
    Bk, HKV, NK, Dk = k.shape
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    if Bk != B or Dk != D:
        raise ValueError(f"k/v batch and head dim must match q: q {tuple(q.shape)}, k {tuple(k.shape)}")
    if kv_head_idx is None and (HKV == 0 or HQ % HKV):
        raise ValueError(f"query heads ({HQ}) must be a multiple of key/value heads ({HKV})")
    dev = q.device
    head_subset = q_head_idx is not None
    q_head_idx = torch.arange(HQ, device=dev) if q_head_idx is None else q_head_idx.to(dev)
    H = q_head_idx.numel()
    if q_head_idx.dim() != 1:
        raise ValueError(f"q_head_idx must be a 1-D list of heads of q, got shape {tuple(q_head_idx.shape)}")
    if D > 256 or D < 1:
        raise ValueError(f"head dim must be in [1, 256], got {D}")
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32) or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"q, k, v must share one of fp16/bf16/fp32, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device == block_idx.device == block_cnt.device):
        raise ValueError("q, k, v and the block lists must be on one device")
    for bs, nm in ((block_m, "block_m"), (block_n, "block_n")):
        if bs < 16 or bs & (bs - 1):
            raise ValueError(f"{nm} must be a power of two >= 16, got {bs}")
    if mask_mode not in (0, 1, 2):
        raise ValueError(f"mask_mode must be 0, 1 or 2, got {mask_mode}")
    M = triton.cdiv(NQ, block_m)
    block_idx = _as_4d(block_idx, "block_idx", 3, B)
    block_cnt = _as_4d(block_cnt, "block_cnt", 2, B)
    if block_idx.shape[1:3] != (H, M) or block_cnt.shape[1:] != (H, M):
        raise ValueError(f"block_idx must be [.., H={H}, M={M}, KB] and block_cnt [.., {H}, {M}]; got "
                         f"{tuple(block_idx.shape)} and {tuple(block_cnt.shape)}")
    if block_idx.dtype not in (torch.int32, torch.int64) or block_cnt.dtype not in (torch.int32, torch.int64):
        raise ValueError("block_idx and block_cnt must be integer tensors")
    has_cols = col_idx is not None
    if has_cols != (col_cnt is not None):
        raise ValueError("col_idx and col_cnt go together")
    if has_cols:
        col_idx = _as_4d(col_idx, "col_idx", 3, B)
        col_cnt = _as_4d(col_cnt, "col_cnt", 2, B)
        if col_idx.shape[1:3] != (H, M) or col_cnt.shape[1:] != (H, M):
            raise ValueError(f"col_idx must be [.., {H}, {M}, KC] and col_cnt [.., {H}, {M}]")
        if col_idx.device != q.device or col_cnt.device != q.device:
            raise ValueError("col_idx/col_cnt must be on q's device")
    if q_pos is None and NQ > NK:
        raise ValueError(f"without q_pos the queries are the last Nq of the Nk keys, so Nq <= Nk; got Nq={NQ}, "
                         f"Nk={NK} (pass q_pos for other layouts)")
    pos_is_index = q_pos is None and k_pos is None
    if gather and pos_is_index:
        raise ValueError("gather=True needs q_pos and k_pos (the positions of the permuted layout)")
    dq, dk = torch.arange(NK - NQ, NK, device=dev), torch.arange(NK, device=dev)
    q_pos = _positions(None if q_pos is None else q_pos.to(dev), NQ, B, dq, "q_pos")
    k_pos = _positions(None if k_pos is None else k_pos.to(dev), NK, B, dk, "k_pos")
    if kv_head_idx is None:
        kv_head_idx = q_head_idx // (HQ // HKV)
    kv_head_idx = kv_head_idx.to(device=dev, dtype=torch.int32)
    if kv_head_idx.shape != (H,):
        raise ValueError(f"kv_head_idx must be [H={H}], got {tuple(kv_head_idx.shape)}")

    block_idx = block_idx.to(torch.int32)
    block_cnt = block_cnt.to(torch.int32)
    if out is not None and (out.shape != q.shape or out.dtype != q.dtype or out.device != dev):
        raise ValueError(f"out must be {tuple(q.shape)} {q.dtype} on {dev}")
    for t, nm in ((lse_out, "lse_out"), (lse_in, "lse_in")):
        if t is not None and (t.shape != (B, H, NQ) or t.dtype != torch.float32 or not t.is_contiguous()):
            raise ValueError(f"{nm} must be a contiguous [{B}, {H}, {NQ}] float32 tensor")
    if lse_in is not None and out is None:
        raise ValueError("lse_in continues the partial result held in out: pass out as well")
    if out is None:  # heads outside a subset are zeros, as in the reference (empty_like left stale memory there)
        o = torch.zeros_like(q) if head_subset else torch.empty_like(q)
    else:
        o = out
    if return_lse:
        lse = torch.empty((B, H, NQ), device=dev, dtype=torch.float32) if lse_out is None else lse_out
    else:
        lse = lse_in if lse_in is not None else o
    if has_cols:
        col_idx = col_idx.to(torch.int32)
        col_cnt = col_cnt.to(torch.int32)
        cstr = (col_idx.stride(0), col_idx.stride(1), col_idx.stride(2), col_idx.stride(3))
        ccstr = (col_cnt.stride(0), col_cnt.stride(1), col_cnt.stride(2))
    else:
        col_idx, col_cnt = block_idx, block_cnt     # dummies, never read
        cstr, ccstr = (0, 0, 0, 0), (0, 0, 0)
    lstr = (lse.stride(0), lse.stride(1), lse.stride(2)) if (return_lse or lse_in is not None) else (0, 0, 0)
    # heaviest (batch, head, row block) first; the kernel decodes task = (b * H + h) * M + m
    work = block_cnt.reshape(-1).to(torch.float32) * block_n
    if has_cols:
        work = work + col_cnt.reshape(-1).to(torch.float32)
    order = torch.argsort(work, descending=True).to(torch.int32)
    if pos_is_index:
        kmin = kmax = k_pos                              # dummies, never read
    else:                                                # position range of every key block of the layout
        nb = triton.cdiv(NK, block_n)
        kp = torch.nn.functional.pad(k_pos, (0, nb * block_n - NK), value=-1).view(B, nb, block_n)
        kmax = kp.amax(-1).to(torch.int32).contiguous()
        kmin = torch.where(kp < 0, NK + 1, kp).amin(-1).to(torch.int32).contiguous()
    sm_scale = 1.0 / math.sqrt(D) if sm_scale is None else float(sm_scale)
    BLOCK_D = max(16, triton.next_power_of_2(D))
    interp = _interpreting()
    kw = {}
    if not interp:
        kw["num_warps"] = num_warps or default_num_warps(block_m, BLOCK_D)
        kw["num_stages"] = num_stages or default_num_stages(q.dtype, BLOCK_D)
    grid = (B * H * M,)
    if NQ == 0 or H == 0:
        return (o, lse) if return_lse else o
    with launch_device(q):
        _bsa_fwd_kernel[grid](
            q, k, v, o, lse, lse_in if lse_in is not None else lse, block_idx, block_cnt, col_idx, col_cnt, q_pos,
            k_pos, kmin, kmax, q_head_idx.to(torch.int32), kv_head_idx, order,
            sm_scale * LOG2E,
            *q.stride(), *k.stride(), *v.stride(), *o.stride(), *lstr,
            *block_idx.stride(), *block_cnt.stride(), *cstr, *ccstr,
            q_pos.stride(0), q_pos.stride(1), k_pos.stride(0), k_pos.stride(1), kmin.stride(0),
            H, M, NQ, NK, D, int(sink), int(window), int(dense_from if dense_from is not None else 2 ** 31 - 1),
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=BLOCK_D, CAUSAL=bool(causal), MASK_MODE=int(mask_mode),
            HAS_COLS=has_cols, RETURN_LSE=bool(return_lse), IEEE=(q.dtype == torch.float32),
            POS_IS_INDEX=pos_is_index, GATHER=bool(gather), ACCUMULATE=lse_in is not None, TILE_CHECK=bool(tile_check),
            **kw,
        )
    return (o, lse) if return_lse else o


def default_num_warps(block_m: int, block_d: int) -> int:
    """4 warps for 64-row tiles up to d = 128 (fastest of the variants timed on an H100, bench/RESULTS.md), 8 for
    larger tiles, whose accumulators would not fit in the registers of 4 warps."""
    return 4 if block_m <= 64 and block_d <= 128 else 8


def default_num_stages(dtype: torch.dtype, block_d: int) -> int:
    """Pipelining depth that keeps shared memory under sm_80's 163 KiB (fp32 tiles are twice as large)."""
    if dtype == torch.float32:
        return 1 if block_d > 64 else 2
    return 3 if block_d <= 128 else 2


def _interpreting() -> bool:
    import os
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
