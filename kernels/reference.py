"""Plain-PyTorch fp32 ground truth for the block-sparse attention kernels.

Everything here materialises an ``Nq x Nk`` boolean mask, so it is meant for tests, for CPU fallbacks on short
inputs and for documentation of the exact semantics the Triton kernel implements.  Nothing here is fast.

Conventions shared with :mod:`videomind.kernels.block_sparse_attn`:

* tensors are ``[B, H, N, D]`` (queries) and ``[B, Hkv, N, D]`` (keys / values), ``H % Hkv == 0`` and query head
  ``h`` reads key/value head ``h // (H // Hkv)`` (grouped-query attention);
* a *block list* for row block ``m`` of head ``h`` is ``block_idx[h, m, :block_cnt[h, m]]`` (key-block indices in the
  layout of ``k``); key block ``j`` covers key rows ``[j * block_n, (j + 1) * block_n)``;
* a *column list* ``col_idx[h, m, :col_cnt[h, m]]`` adds single key rows ("vertical lines");
* causality is decided on *original positions* ``q_pos`` / ``k_pos`` (key allowed iff ``k_pos <= q_pos``) so that
  permuted layouts stay causal;
* the optional element-wise "A-shape" term (``mask_mode``): a key is *in A* iff ``k_pos < sink`` or
  ``q_pos - k_pos < window`` or ``q_pos >= dense_from``.  ``mask_mode=1`` keeps only keys in A, ``mask_mode=2`` keeps
  only keys not in A (used by the grid pass so that the two passes are disjoint), ``0`` ignores A;
* a row with no allowed key has output 0 and log-sum-exp ``-inf``.
"""
from __future__ import annotations

import math

import torch

from .permute import invert_permutation

NEG_INF = float("-inf")


# ----------------------------------------------------------------------------------------------------------------
# dense attention
# ----------------------------------------------------------------------------------------------------------------
def _expand_kv(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, Hkv, N, D] -> [B, H, N, D] by repeating each kv head ``H // Hkv`` times (reference only)."""
    hkv = x.shape[1]
    if n_heads % hkv:
        raise ValueError(f"query heads ({n_heads}) must be a multiple of key/value heads ({hkv})")
    return x.repeat_interleave(n_heads // hkv, dim=1)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                     sm_scale: float | None = None, return_lse: bool = False):
    """Dense attention in fp32 under a boolean mask.

    q: [B, H, Nq, D]; k, v: [B, Hkv, Nk, D]; mask: broadcastable to [B, H, Nq, Nk] (True = attend).
    Returns o [B, H, Nq, D] in q.dtype (zeros on rows without any allowed key) and, if ``return_lse``,
    lse [B, H, Nq] fp32 (natural log of the sum of exp(scaled scores); -inf on empty rows).
    """
    B, H, Nq, D = q.shape
    sm_scale = 1.0 / math.sqrt(D) if sm_scale is None else sm_scale
    kf = _expand_kv(k.float(), H)
    vf = _expand_kv(v.float(), H)
    s = torch.matmul(q.float(), kf.transpose(-1, -2)) * sm_scale
    s = s.masked_fill(~mask.bool(), NEG_INF)
    lse = torch.logsumexp(s, dim=-1)
    empty = torch.isneginf(lse)
    p = torch.exp(s - torch.where(empty, torch.zeros_like(lse), lse)[..., None])
    o = torch.matmul(p, vf)
    o = o.masked_fill(empty[..., None], 0.0).to(q.dtype)
    return (o, lse) if return_lse else o


def merge_lse(o1: torch.Tensor, lse1: torch.Tensor, o2: torch.Tensor, lse2: torch.Tensor):
    """Merge two attention results over *disjoint* key sets.

    o_i: [..., N, D], lse_i: [..., N] (natural log).  Returns (o, lse) with
    ``lse = log(exp(lse1) + exp(lse2))`` and ``o = o1 * exp(lse1 - lse) + o2 * exp(lse2 - lse)``; rows where both
    parts are empty stay 0 / -inf.
    """
    lse = torch.logaddexp(lse1.float(), lse2.float())
    safe = torch.where(torch.isneginf(lse), torch.zeros_like(lse), lse)
    w1 = torch.exp(lse1.float() - safe)[..., None]
    w2 = torch.exp(lse2.float() - safe)[..., None]
    o = o1.float() * w1 + o2.float() * w2
    return o.to(o1.dtype), lse


# ----------------------------------------------------------------------------------------------------------------
# masks
# ----------------------------------------------------------------------------------------------------------------
def default_positions(nq: int, nk: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Original positions when queries are the last ``nq`` of ``nk`` keys (prefill: nq == nk)."""
    if nq > nk:
        raise ValueError(f"the queries are the last nq of the nk keys, so nq <= nk; got nq={nq}, nk={nk}")
    k_pos = torch.arange(nk, device=device)
    return k_pos[nk - nq:].clone(), k_pos


def causal_mask(q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    """[..., Nq, Nk] boolean ``k_pos <= q_pos`` on original positions (q_pos [..., Nq], k_pos [..., Nk])."""
    return k_pos[..., None, :] <= q_pos[..., :, None]


def a_shape_term(q_pos: torch.Tensor, k_pos: torch.Tensor, sink: int, window: int,
                 dense_from: int | None = None) -> torch.Tensor:
    """Element-wise A term: ``k_pos < sink | q_pos - k_pos < window | q_pos >= dense_from`` ([..., Nq, Nk])."""
    a = (k_pos[..., None, :] < sink) | ((q_pos[..., :, None] - k_pos[..., None, :]) < window)
    if dense_from is not None:
        a = a | (q_pos[..., :, None] >= dense_from)
    return a


def a_shape_mask(n: int, sink: int, window: int, dense_from: int | None = None) -> torch.Tensor:
    """A-shape pattern (causal): sink columns + a local window of ``window`` keys (the diagonal included), plus
    dense rows from ``dense_from`` on (trailing text).  Returns [n, n] bool."""
    pos = torch.arange(n)
    return causal_mask(pos, pos) & a_shape_term(pos, pos, sink, window, dense_from)


def blocks_to_dense(block_idx: torch.Tensor, block_cnt: torch.Tensor, nq: int, nk: int, block_m: int,
                    block_n: int, col_idx: torch.Tensor | None = None,
                    col_cnt: torch.Tensor | None = None) -> torch.Tensor:
    """Expand block/column lists ([..., M, K] / [..., M]) to a token mask [..., nq, nk] (no causality)."""
    lead = block_idx.shape[:-2]
    m_blocks = block_idx.shape[-2]
    n_blocks = -(-nk // block_n)
    bm = torch.zeros(*lead, m_blocks, n_blocks + 1, dtype=torch.bool)
    kmax = block_idx.shape[-1]
    valid = torch.arange(kmax) < block_cnt[..., None]
    idx = torch.where(valid, block_idx.long(), torch.full_like(block_idx.long(), n_blocks))
    bm.scatter_(-1, idx, True)
    bm = bm[..., :n_blocks]
    dense = bm.repeat_interleave(block_m, dim=-2)[..., :nq, :].repeat_interleave(block_n, dim=-1)[..., :nk]
    if col_idx is not None and col_idx.shape[-1] > 0:
        cm = torch.zeros(*lead, m_blocks, nk + 1, dtype=torch.bool)
        cvalid = torch.arange(col_idx.shape[-1]) < col_cnt[..., None]
        cidx = torch.where(cvalid, col_idx.long(), torch.full_like(col_idx.long(), nk))
        cm.scatter_(-1, cidx, True)
        dense = dense | cm[..., :nk].repeat_interleave(block_m, dim=-2)[..., :nq, :]
    return dense


def kernel_mask(block_idx, block_cnt, nq, nk, block_m, block_n, col_idx=None, col_cnt=None, q_pos=None,
                k_pos=None, causal=True, mask_mode=0, sink=0, window=0, dense_from=None) -> torch.Tensor:
    """The exact [..., nq, nk] mask the Triton kernel applies for these arguments."""
    if q_pos is None or k_pos is None:
        dq, dk = default_positions(nq, nk)
        q_pos = dq if q_pos is None else q_pos
        k_pos = dk if k_pos is None else k_pos
    m = blocks_to_dense(block_idx.cpu(), block_cnt.cpu(), nq, nk, block_m, block_n,
                        None if col_idx is None else col_idx.cpu(), None if col_cnt is None else col_cnt.cpu())
    q_pos = q_pos.cpu().long()
    k_pos = k_pos.cpu().long()
    if causal:
        cm = causal_mask(q_pos, k_pos)
        if cm.dim() == 3:      # batched positions [B, N] -> [B, 1, nq, nk]
            cm = cm[:, None]
        m = m & cm
    if mask_mode:
        a = a_shape_term(q_pos, k_pos, sink, window, dense_from)
        if a.dim() == 3:
            a = a[:, None]
        m = m & (a if mask_mode == 1 else ~a)
    return m


def block_sparse_attention_ref(q, k, v, block_idx, block_cnt, col_idx=None, col_cnt=None, q_pos=None, k_pos=None,
                               causal=True, sm_scale=None, block_m=64, block_n=64, mask_mode=0, sink=0, window=0,
                               dense_from=None, return_lse=False, kv_head_idx=None, q_head_idx=None, gather=False,
                               lse_in=None, out=None):
    """Reference for :func:`videomind.kernels.block_sparse_attn.block_sparse_attention` (same arguments).

    Head subsets, ``gather`` and ``lse_in`` are done the plain way: select the heads, permute the rows, attend,
    un-permute, merge with :func:`merge_lse` and write the heads into ``out``."""
    hq, nq, nk = q.shape[1], q.shape[2], k.shape[2]
    qh = torch.arange(hq, device=q.device) if q_head_idx is None else q_head_idx.to(q.device).long()
    kvh = qh // (hq // k.shape[1]) if kv_head_idx is None else kv_head_idx.to(q.device).long()
    qs, ks, vs = q.index_select(1, qh), k.index_select(1, kvh), v.index_select(1, kvh)
    if gather:
        if q_pos is None or k_pos is None or q_pos.dim() != 1 or k_pos.dim() != 1:
            raise ValueError("the reference gathers through 1-D q_pos / k_pos only")
        qrow = q_pos.to(q.device).long() - (nk - nq)
        qs = qs.index_select(2, qrow)
        ks, vs = (x.index_select(2, k_pos.to(q.device).long()) for x in (ks, vs))
    if block_idx.dim() == 3:
        block_idx, block_cnt = block_idx[None], block_cnt[None]
        if col_idx is not None:
            col_idx, col_cnt = col_idx[None], col_cnt[None]
    mask = kernel_mask(block_idx, block_cnt, nq, nk, block_m, block_n, col_idx, col_cnt, q_pos, k_pos, causal,
                       mask_mode, sink, window, dense_from).to(q.device)
    o, lse = masked_attention(qs, ks, vs, mask, sm_scale, return_lse=True)
    if gather:
        back = invert_permutation(qrow)
        o, lse = o.index_select(2, back), lse.index_select(2, back)
    if lse_in is not None:
        o, lse = merge_lse(out.index_select(1, qh), lse_in, o, lse)
    if out is not None or q_head_idx is not None:
        full = torch.zeros_like(q) if out is None else out
        full.index_copy_(1, qh, o.to(q.dtype))
        o = full
    return (o, lse) if return_lse else o


def blockify(mask: torch.Tensor, block_m: int, block_n: int) -> torch.Tensor:
    """Token mask [..., nq, nk] -> block mask [..., ceil(nq/bm), ceil(nk/bn)]: True where any element is set."""
    nq, nk = mask.shape[-2:]
    mb, nb = -(-nq // block_m), -(-nk // block_n)
    pad = torch.zeros(*mask.shape[:-2], mb * block_m, nb * block_n, dtype=torch.bool)
    pad[..., :nq, :nk] = mask
    return pad.reshape(*mask.shape[:-2], mb, block_m, nb, block_n).any(-1).any(-2)


def unblockify(bmask: torch.Tensor, nq: int, nk: int, block_m: int, block_n: int) -> torch.Tensor:
    return bmask.repeat_interleave(block_m, -2)[..., :nq, :].repeat_interleave(block_n, -1)[..., :nk]


def vertical_slash_mask(n: int, v_idx: torch.Tensor, s_off: torch.Tensor, block_m: int = 64,
                        block_n: int = 64) -> torch.Tensor:
    """Vertical-slash pattern as executed by the kernel: exact vertical columns ``v_idx`` plus every key block that
    contains an element of a slash line (``q - k = s`` for ``s`` in ``s_off``) within the row block; causal.
    v_idx / s_off: 1-D index tensors (one head); negative entries (and columns outside the n keys) are padding and
    mark nothing, as in :func:`.patterns.build_vertical_slash`.  Returns [n, n] bool."""
    pos = torch.arange(n)
    diff = pos[:, None] - pos[None, :]
    smask = torch.zeros(n, n, dtype=torch.bool)
    for s in s_off.tolist():
        if s >= 0:
            smask |= diff == int(s)
    slash_blocks = unblockify(blockify(smask, block_m, block_n), n, n, block_m, block_n)
    vert = torch.zeros(n, dtype=torch.bool)
    v_idx = v_idx.long()
    vert[v_idx[(v_idx >= 0) & (v_idx < n)]] = True      # a plain index would wrap -1 round to column n - 1
    return (slash_blocks | vert[None, :]) & causal_mask(pos, pos)


def grid_ideal_mask(n: int, stride: int, phases, start: int = 0, end: int | None = None,
                    horizontal: bool = True) -> torch.Tensor:
    """Token-level grid lines inside the video span [start, end): columns (and, if ``horizontal``, rows) whose
    offset ``(pos - start) % stride`` is one of ``phases``.  Not causal, no sink/local."""
    end = n if end is None else end
    pos = torch.arange(n)
    inside = (pos >= start) & (pos < end)
    ph = torch.zeros(stride, dtype=torch.bool)
    ph[torch.as_tensor(list(phases), dtype=torch.long)] = True
    on = inside & ph[(pos - start).clamp(min=0) % stride]
    m = on[None, :].expand(n, n).clone()
    m &= inside[:, None]
    if horizontal:
        m |= on[:, None] & (pos[None, :] >= 0)
    return m


def grid_mask(n: int, stride: int, phases, sink: int, window: int, start: int = 0, end: int | None = None,
              horizontal: bool = True, block_m: int = 64, block_n: int = 64) -> torch.Tensor:
    """Grid pattern exactly as the two-pass kernel path computes it (causal on original positions):

    pass 1 (original order): A-shape term (sink, local window, dense rows from ``end`` = trailing text);
    pass 2 (phase-major permuted order): every permuted key block that contains a grid element of the permuted
    row block, minus the A term.  Returns [n, n] bool in original order."""
    from .permute import grid_permutation  # local import: reference stays importable alone
    end = n if end is None else end
    pos = torch.arange(n)
    causal = causal_mask(pos, pos)
    a = a_shape_term(pos, pos, sink, window, end)
    ideal = grid_ideal_mask(n, stride, phases, start, end, horizontal)
    perm = grid_permutation(n, stride, start, end)
    ideal_p = ideal[perm][:, perm]
    cov_p = unblockify(blockify(ideal_p, block_m, block_n), n, n, block_m, block_n)
    inv = torch.argsort(perm)
    cov = cov_p[inv][:, inv]
    return causal & (a | cov)


def boundary_mask(modality: torch.Tensor, rules: dict, block_m: int = 64, block_n: int = 64,
                  permute_cols: bool = True) -> torch.Tensor:
    """Boundary pattern (see boundary.boundary_2d_block_mask) as the kernel computes it, in original order:
    token-level rules evaluated in the modality-permuted layout, blockified there, un-permuted, & causal."""
    from .permute import modality_permutation
    n = modality.numel()
    mod = modality.long()
    pos = torch.arange(n)
    perm = modality_permutation(mod)
    rank = torch.zeros(n, dtype=torch.long)
    for v in torch.unique(mod).tolist():
        sel = mod == v
        rank[sel] = torch.arange(int(sel.sum()))
    if not permute_cols:
        rank = pos.clone()
    ideal = torch.zeros(n, n, dtype=torch.bool)
    for (a, b), rule in rules.items():
        if rule == "none":
            continue
        pair = (mod[:, None] == a) & (mod[None, :] == b)
        if rule != "dense":
            _, s, w = rule
            t = rank[None, :] < s
            if a == b or not permute_cols:
                t = t | ((rank[:, None] - rank[None, :]) < w)
            pair = pair & t
        ideal |= pair
    cperm = perm if permute_cols else pos
    ideal_p = ideal[perm][:, cperm]
    cov_p = unblockify(blockify(ideal_p, block_m, block_n), n, n, block_m, block_n)
    cov = torch.zeros(n, n, dtype=torch.bool)
    cov[perm[:, None], cperm[None, :]] = cov_p
    return cov & causal_mask(pos, pos)


def index_row_mask(block_idx: torch.Tensor, block_cnt: torch.Tensor, rows: torch.Tensor, nk: int, block_m: int,
                   block_n: int, col_idx: torch.Tensor | None = None, col_cnt: torch.Tensor | None = None,
                   q_pos: torch.Tensor | None = None, k_pos: torch.Tensor | None = None, mask_mode: int = 0,
                   sink: int = 0, window: int = 0, dense_from: int | None = None) -> torch.Tensor:
    """The kernel's mask restricted to some query rows, without an N x N tensor.

    block_idx [H, M, KB] ...; rows: [R] row indices in the layout of the lists; q_pos: [R] original positions of
    those rows (default: rows, i.e. nq == nk); k_pos: [nk] original positions of the key layout (default arange).
    Returns [H, R, nk] bool in the key layout (causal on original positions)."""
    device = block_idx.device
    H = block_idx.shape[0]
    nb = -(-nk // block_n)
    m = rows // block_m
    bi, bc = block_idx[:, m].long(), block_cnt[:, m]                                  # [H, R, KB], [H, R]
    valid = torch.arange(bi.shape[-1], device=device) < bc[..., None]
    bm = torch.zeros(H, rows.numel(), nb + 1, dtype=torch.bool, device=device)
    bm.scatter_(-1, torch.where(valid, bi, nb), True)
    mask = bm[..., :nb].repeat_interleave(block_n, -1)[..., :nk]
    if col_idx is not None and col_idx.shape[-1]:
        ci, cc = col_idx[:, m].long(), col_cnt[:, m]
        cvalid = torch.arange(ci.shape[-1], device=device) < cc[..., None]
        cm = torch.zeros(H, rows.numel(), nk + 1, dtype=torch.bool, device=device)
        cm.scatter_(-1, torch.where(cvalid, ci, nk), True)
        mask = mask | cm[..., :nk]
    q_pos = rows if q_pos is None else q_pos
    k_pos = torch.arange(nk, device=device) if k_pos is None else k_pos
    mask = mask & causal_mask(q_pos.to(device), k_pos.to(device))[None]
    if mask_mode:
        a = a_shape_term(q_pos.to(device), k_pos.to(device), sink, window, dense_from)[None]
        mask = mask & (a if mask_mode == 1 else ~a)
    return mask
