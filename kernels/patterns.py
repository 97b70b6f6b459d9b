"""Index builders for the sparse patterns (plain torch, no N x N tensors; device-agnostic).

Every builder returns a :class:`BlockSparseIndex` (per-(head, row-block) key-block lists, optionally with gathered
vertical columns) in the token layout the kernel will see (original order, or a permuted order together with the
original positions).  The dense masks they must reproduce are in :mod:`videomind.kernels.reference`.

Memory: builders work on ``[H, M, NB]`` block masks (M, NB = number of row / key blocks), i.e. N^2 / 4096 bits per
head at 64x64 blocks; estimators only ever score the last ``last_q`` queries against all keys, in key chunks.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .permute import grid_permutation, invert_permutation


@dataclass
class BlockSparseIndex:
    """block_idx [H, M, KB] int32, block_cnt [H, M] int32 (key blocks of ``block_n`` rows), optional
    col_idx [H, M, KC] / col_cnt [H, M] (single key rows not inside the listed blocks)."""
    block_idx: torch.Tensor
    block_cnt: torch.Tensor
    block_m: int
    block_n: int
    col_idx: torch.Tensor | None = None
    col_cnt: torch.Tensor | None = None

    def to(self, device) -> "BlockSparseIndex":
        mv = (lambda t: None if t is None else t.to(device))
        return BlockSparseIndex(mv(self.block_idx), mv(self.block_cnt), self.block_m, self.block_n,
                                mv(self.col_idx), mv(self.col_cnt))

    def select_heads(self, heads: torch.Tensor) -> "BlockSparseIndex":
        sel = (lambda t: None if t is None else t[heads.to(t.device)])
        return BlockSparseIndex(sel(self.block_idx), sel(self.block_cnt), self.block_m, self.block_n,
                                sel(self.col_idx), sel(self.col_cnt))

    def density(self, nk: int) -> float:
        """Fraction of (row-block, key-block) tiles computed (columns counted as col/block_n tiles)."""
        nb = -(-nk // self.block_n)
        tiles = self.block_cnt.double().sum()
        if self.col_cnt is not None:
            tiles = tiles + (self.col_cnt.double() / self.block_n).sum()
        return float(tiles / (self.block_cnt.numel() * nb))


def lists_from_block_mask(bmask: torch.Tensor, capacity: int | None = None,
                          values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Block mask [..., M, NB] bool -> (block_idx [..., M, KB] int32 ascending, zero-padded; block_cnt [..., M]).

    ``capacity=None``: KB = the longest row, compacted through ``nonzero`` (row-major, so each row's blocks come
    out ascending): time and memory grow with the number of selected tiles, not with a sort of all M x NB tiles
    (at 512K tokens a head has 67M tiles); both read a number back to the host.  ``capacity=K`` (a bound on every
    row's count that the caller knows): KB = K with no read-back, through the Triton kernel on a GPU
    (:mod:`.compact`); on the CPU the same lists through torch, checked against the bound.  ``values`` [NB]:
    list ``values[column]`` instead of the column (gathered key positions)."""
    *lead, M, nb = bmask.shape
    if capacity is not None and bmask.is_cuda:
        from .compact import compact_rows
        return compact_rows(bmask, capacity, values)
    rows = bmask.reshape(-1, nb)
    cnt = rows.sum(-1)
    kb = max(int(cnt.max()) if cnt.numel() else 0, 1)
    if capacity is not None:
        if kb > capacity:
            raise ValueError(f"a row has {kb} blocks, more than the capacity {capacity}")
        kb = capacity
    idx = torch.zeros(rows.shape[0], kb, dtype=torch.int32, device=bmask.device)
    if nb and rows.shape[0]:
        r, c = torch.nonzero(rows, as_tuple=True)
        first = torch.cumsum(cnt, 0) - cnt                     # where each row's entries start in (r, c)
        slot = torch.arange(r.numel(), device=bmask.device) - first[r]
        idx[r, slot] = (c if values is None else values.to(c.device)[c]).to(torch.int32)
    return idx.view(*lead, M, kb), cnt.view(*lead, M).to(torch.int32)


@functools.lru_cache(maxsize=1024)
def index_tensor(values: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A small constant int64 tensor (head lists and the like) on ``device``, made once and shared (read-only):
    making it from a Python list copies from pageable host memory, which makes the host wait for the stream."""
    return torch.tensor(values, dtype=torch.long, device=device)


def _mark_intervals(m_rows: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, M: int, NB: int) -> torch.Tensor:
    """Bool [M, NB] with [lo, hi] (inclusive block indices) set in row ``m_rows`` (1-D tensors, same length).

    Empty intervals (lo > hi after clipping) are moved onto the spare column NB, where their +1 and -1 cancel:
    filtering them out instead would read their number back from the GPU."""
    lo = lo.clamp(0, NB)
    hi = hi.clamp(-1, NB - 1)
    empty = lo > hi
    lo = lo.masked_fill(empty, NB)
    hi = hi.masked_fill(empty, NB - 1)
    diff = torch.zeros(M, NB + 1, dtype=torch.int32, device=m_rows.device)
    one = torch.ones_like(lo, dtype=torch.int32)
    diff.view(-1).scatter_add_(0, m_rows * (NB + 1) + lo, one)
    diff.view(-1).scatter_add_(0, m_rows * (NB + 1) + hi + 1, -one)
    return diff.cumsum(-1)[:, :NB] > 0


def _row_bounds(nq: int, nk: int, block_m: int, device=None):
    M = -(-nq // block_m)
    off = nk - nq
    r0 = torch.arange(M, device=device) * block_m + off
    r1 = torch.clamp(r0 + block_m, max=nk) - 1
    return M, r0, r1


# ----------------------------------------------------------------------------------------------------------------
# A-shape
# ----------------------------------------------------------------------------------------------------------------
def a_shape_block_mask(nq: int, nk: int, sink: int, window: int, dense_from: int | None, block_m: int,
                       block_n: int, device=None) -> torch.Tensor:
    """[M, NB] key blocks that can hold an element of the A term for queries at positions nk-nq .. nk-1."""
    M, r0, r1 = _row_bounds(nq, nk, block_m, device)
    NB = -(-nk // block_n)
    ms = torch.arange(M, device=device)
    los, his, rows = [], [], []
    if sink > 0:
        rows.append(ms); los.append(torch.zeros_like(ms)); his.append((torch.clamp(r1 + 1, max=sink) - 1) // block_n)
    if window > 0:
        rows.append(ms); los.append(torch.clamp(r0 - window + 1, min=0) // block_n); his.append(r1 // block_n)
    if dense_from is not None:
        d = r1 >= dense_from
        rows.append(ms[d]); los.append(torch.zeros_like(ms[d])); his.append(r1[d] // block_n)
    if not rows:
        return torch.zeros(M, NB, dtype=torch.bool, device=device)
    return _mark_intervals(torch.cat(rows), torch.cat(los), torch.cat(his), M, NB)


def build_a_shape(nq: int, nk: int, n_heads: int, sink: int, window: int, dense_from: int | None = None,
                  block_m: int = 64, block_n: int = 64, device=None) -> BlockSparseIndex:
    """A-shape index in original order; run the kernel with ``mask_mode=1, sink, window, dense_from`` to get the
    token-exact mask ``causal & (k < sink | q - k < window | q >= dense_from)``.

    The lists depend on the sizes only, so they are built once per (sizes, device) and shared by every head, layer
    and call (a stride-0 view over the heads: read-only)."""
    idx, cnt = _a_shape_lists(nq, nk, sink, window, dense_from, block_m, block_n, torch.device(device or "cpu"))
    return BlockSparseIndex(idx[None].expand(n_heads, *idx.shape), cnt[None].expand(n_heads, *cnt.shape),
                            block_m, block_n)


@functools.lru_cache(maxsize=64)
def _a_shape_lists(nq, nk, sink, window, dense_from, block_m, block_n, device):
    return lists_from_block_mask(a_shape_block_mask(nq, nk, sink, window, dense_from, block_m, block_n, device))


# ----------------------------------------------------------------------------------------------------------------
# vertical-slash
# ----------------------------------------------------------------------------------------------------------------
def build_vertical_slash(nq: int, nk: int, v_idx: torch.Tensor, s_off: torch.Tensor, block_m: int = 64,
                         block_n: int = 64) -> BlockSparseIndex:
    """Vertical-slash index in original order.

    v_idx: [H, KV] key positions of vertical lines; s_off: [H, KS] diagonal offsets ``q - k >= 0`` of slash lines
    (negative entries are ignored, repeats are harmless).  Slash lines become the key blocks they cross inside each
    row block; vertical columns that are causal for some row of the block and not inside one of those blocks
    become gathered columns.  Run the kernel with ``causal=True`` (mask_mode 0).

    Nothing is read back from the GPU: both lists are padded to widths known from the sizes (``KV`` columns; key
    blocks: :func:`slash_list_capacity`) and compacted in place (:mod:`.compact` on a GPU)."""
    H, kv = v_idx.shape
    _, _, r1 = _row_bounds(nq, nk, block_m, v_idx.device)
    bmask = torch.stack([slash_block_mask(nq, nk, s_off[h], block_m, block_n) for h in range(H)])   # [H, M, NB]
    idx, cnt = lists_from_block_mask(bmask, slash_list_capacity(nq, nk, s_off.shape[-1], block_m, block_n))
    # vertical columns: ascending, each once, inside the keys; a column is listed for a row block when it is
    # causal for some row of the block and not inside one of the block's key blocks (no double counting)
    v = torch.sort(v_idx.long(), -1).values
    keep = (v >= 0) & (v < nk)
    keep[:, 1:] &= v[:, 1:] != v[:, :-1]
    v = v.clamp(0, max(nk - 1, 0))
    col_idx, col_cnt = [], []
    for h in range(H):                                 # a head at a time: [M, KV] is 1 GiB at 1M tokens
        ok = keep[h] & (v[h][None, :] <= r1[:, None]) & ~bmask[h][:, v[h] // block_n]
        # compacted in place (no [M, KV] int64 sort: 16 GiB of temporaries for 64K columns at 1M tokens)
        ci, cc = lists_from_block_mask(ok, max(kv, 1), values=v[h])
        col_idx.append(ci)
        col_cnt.append(cc)
    return BlockSparseIndex(idx, cnt, block_m, block_n, torch.stack(col_idx), torch.stack(col_cnt))


def slash_list_capacity(nq: int, nk: int, n_slash: int, block_m: int, block_n: int) -> int:
    """A bound on the key blocks of any row block of a vertical-slash head, from the sizes alone: one slash line
    crosses a row block's ``block_m`` rows in a run of ``block_m`` keys, at most ``ceil(block_m / block_n) + 1``
    key blocks."""
    return max(1, min(-(-nk // block_n), n_slash * (-(-block_m // block_n) + 1)))


def _floordiv(a: torch.Tensor, b: int) -> torch.Tensor:
    return torch.div(a, b, rounding_mode="floor")


def slash_block_mask_naive(nq: int, nk: int, s_off: torch.Tensor, block_m: int, block_n: int) -> torch.Tensor:
    """[M, NB] key blocks crossed by the slash lines, one interval per (row block, offset): O(M * S) memory."""
    device = s_off.device
    M, r0, r1 = _row_bounds(nq, nk, block_m, device)
    NB = -(-nk // block_n)
    s = torch.unique(s_off.long()[s_off >= 0])
    ms = torch.arange(M, device=device).repeat_interleave(s.numel())
    lo, hi = _slash_intervals(r0[ms], r1[ms], s.repeat(M), block_n)
    return _mark_intervals(ms, lo, hi, M, NB)


def _slash_intervals(r0: torch.Tensor, r1: torch.Tensor, s: torch.Tensor, block_n: int):
    """Key blocks [lo, hi] that slash offset ``s`` crosses in the rows ``r0 .. r1`` (elementwise); empty (hi = -1)
    for a negative offset or one that passes every row."""
    lo = torch.clamp(r0 - s, min=0) // block_n
    hi_k = r1 - s
    return lo, torch.where((hi_k >= 0) & (s >= 0), hi_k // block_n, torch.full_like(hi_k, -1))


def slash_block_mask(nq: int, nk: int, s_off: torch.Tensor, block_m: int, block_n: int,
                     row_chunk: int = 2048) -> torch.Tensor:
    """Same as :func:`slash_block_mask_naive` in O(M * NB + S) memory, with no read-back from the GPU.

    For a full row block starting at key position r0, offset s crosses the key blocks
    ``[floor((r0 - s) / bn), floor((r0 + bm - 1 - s) / bn)]`` (clipped at 0), i.e. ``r0 // bn + delta`` with delta
    depending only on ``r0 % bn`` and s: the union over s is one boolean vector over delta per residue, shifted per
    row block.  Row block m has residue ``(r0(0) + m * bm) % bn``, so the residues repeat every
    ``P = bn / gcd(bm, bn)`` row blocks (P = 1 when bm is a multiple of bn).  The (at most one) partial last row
    block is done interval by interval."""
    device = s_off.device
    M, r0, r1 = _row_bounds(nq, nk, block_m, device)
    NB = -(-nk // block_n)
    out = torch.zeros(M, NB, dtype=torch.bool, device=device)
    if s_off.numel() == 0 or M == 0:
        return out
    s = s_off.long().reshape(-1)
    valid = s >= 0
    period = block_n // math.gcd(block_m, block_n)
    resid = index_tensor(tuple((nk - nq + j * block_m) % block_n for j in range(period)), device)      # [P]
    base = NB + 2                                     # delta >= -(nk // bn) - 1 > -base
    span = base + block_m // block_n + 3
    lo = _floordiv(resid[:, None] - s[None, :], block_n) + base                                       # [P, S]
    hi = _floordiv(resid[:, None] + block_m - 1 - s[None, :], block_n) + base
    hi = hi.masked_fill(~valid[None, :], -1)                          # negative offsets: empty intervals
    table_row = torch.arange(period, device=device)[:, None].expand_as(lo)
    delta = _mark_intervals(table_row.reshape(-1), lo.reshape(-1), hi.reshape(-1), period, span).view(-1)
    kb = torch.arange(NB, device=device)
    for m0 in range(0, M, row_chunk):                                 # bounds the [rows, NB] int64 offsets
        m = torch.arange(m0, min(M, m0 + row_chunk), device=device)
        rel = kb[None, :] - _floordiv(r0[m], block_n)[:, None] + base
        inside = (rel >= 0) & (rel < span)
        out[m0:m0 + m.numel()] = inside & delta[(m % period)[:, None] * span + rel.clamp(0, span - 1)]
    if nq % block_m:                                                  # the last row block is partial
        lo, hi = _slash_intervals(r0[M - 1], r1[M - 1], s, block_n)
        out[M - 1] = _mark_intervals(torch.zeros_like(s), lo, hi, 1, NB)[0]
    return out


def _kv_heads(H: int, hkv: int, kv_head_idx: torch.Tensor | None) -> list[int]:
    """Key head of each query head, on the host: grouped (``h // (H // Hkv)``) unless given."""
    kvh = (torch.arange(H) // (H // hkv)) if kv_head_idx is None else kv_head_idx
    return [int(x) for x in kvh.tolist()]


def _last_q_probs(q: torch.Tensor, k: torch.Tensor, last_q: int, key_chunk: int = 65536,
                  kv_head_idx: torch.Tensor | None = None):
    """Softmax of the last ``last_q`` queries over all keys (causal), one sequence.

    q: [H, Nq, D] (only its last ``last_q`` rows are read, so passing just those is enough), k: [Hkv, Nk, D];
    kv_head_idx: [H] key head of each query head (default: grouped, ``h // (H // Hkv)``).  Returns probs
    [H, L, Nk] fp32 (L = min(last_q, Nq)), scored chunk-wise per key head (no per-query-head copy of K)."""
    H, nq, D = q.shape
    nk = k.shape[1]
    L = min(last_q, nq)
    kvh = _kv_heads(H, k.shape[0], kv_head_idx)
    ql = q[:, nq - L:].float() / math.sqrt(D)
    qpos = torch.arange(nk - L, nk, device=q.device)
    s = torch.empty(H, L, nk, device=q.device, dtype=torch.float32)
    for u in sorted(set(kvh)):
        rows = index_tensor(tuple(i for i, x in enumerate(kvh) if x == u), q.device)
        qu = ql[rows].reshape(-1, D)                                  # [len(rows) * L, D]
        for c0 in range(0, nk, key_chunk):
            kc = k[u, c0:c0 + key_chunk].float()
            su = (qu @ kc.T).view(rows.numel(), L, -1)
            kpos = torch.arange(c0, c0 + kc.shape[0], device=q.device)
            su.masked_fill_(kpos[None, None, :] > qpos[None, :, None], float("-inf"))
            s[rows, :, c0:c0 + kc.shape[0]] = su
    # softmax in place: a second [H, L, Nk] fp32 tensor is 3.7 GB for 28 heads at 512K (every row sees key 0)
    s -= s.amax(-1, keepdim=True)
    s.exp_()
    return s.div_(s.sum(-1, keepdim=True))


def diagonal_mass(p: torch.Tensor) -> torch.Tensor:
    """The last queries' attention summed along each diagonal: [H, Nk] fp32, ``out[h, o] = sum_r p[h, r, q_r - o]``
    for the offset ``o = query - key`` (query r at position ``q_r = Nk - L + r``), the slash scores.

    p: [H, L, Nk] as :func:`_last_q_probs` returns it.  Read as a skewed view instead of scattering through an
    [H, L * Nk] int64 offset tensor (twice the size of ``p``): for offsets ``o <= Nk - L`` every row has its key
    ``r + (Nk - L - o)``, so the view ``v[h, r, j] = p[h, r, r + j]`` (row stride Nk + 1) summed over r gives them
    in reverse; the larger offsets (keys left of their row's index, ``key < r``) come from the [L, L] corner."""
    H, L, nk = p.shape
    p = p.contiguous()
    out = p.new_zeros(H, nk)
    skew = p.as_strided((H, L, nk - L + 1), (L * nk, nk + 1, 1), p.storage_offset())
    out[:, :nk - L + 1] = skew.sum(1).flip(-1)
    r = torch.arange(L, device=p.device)
    d = r[:, None] - r[None, :]                                           # row - key in the corner; o = Nk - L + d
    below = d > 0
    out.index_add_(1, (nk - L + d[below]), p[:, :, :L][:, below])
    return out


def column_mass(q: torch.Tensor, k: torch.Tensor, last_q: int, start: int, end: int,
                kv_head_idx: torch.Tensor | None = None, backend: str = "auto") -> torch.Tensor:
    """The last queries' attention summed over the rows, on the key columns [start, end): [H, end - start] fp32.

    backend "triton" (:mod:`.estimate`: no [H, L, N] tensor, tensor-core scores), "torch" (through
    :func:`_last_q_probs`; the Triton kernel's reference) or "auto" (triton on CUDA, torch otherwise)."""
    if backend == "auto":
        backend = "triton" if q.is_cuda else "torch"
    if backend == "torch":
        return _last_q_probs(q, k, last_q, kv_head_idx=kv_head_idx).sum(1)[:, start:end]
    if backend != "triton":
        raise ValueError(f"backend must be 'auto', 'triton' or 'torch', got {backend!r}")
    from .estimate import last_q_column_mass
    H, nq = q.shape[:2]
    kvh = index_tensor(tuple(_kv_heads(H, k.shape[0], kv_head_idx)), q.device)   # host list -> cached tensor
    return last_q_column_mass(q[:, nq - min(last_q, nq):], k, kvh, start, end)


def estimate_vertical_slash(q: torch.Tensor, k: torch.Tensor, n_vertical: int, n_slash: int, last_q: int = 64,
                            sink: int = 4, local: int = 64,
                            kv_head_idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimate vertical columns / slash offsets online from the last ``last_q`` queries (MInference style).

    q: [H, N, D] (or just its last ``last_q`` rows), k: [Hkv, N, D] (one sequence), kv_head_idx: see
    :func:`_last_q_probs`.  The first ``sink`` columns and offsets ``0 .. local-1`` are always kept; the rest are
    the top-k by summed attention of the last queries.  Returns v_idx [H, n_vertical], s_off [H, n_slash] (int64)."""
    nk = k.shape[1]
    p = _last_q_probs(q, k, last_q, kv_head_idx=kv_head_idx)              # [H, L, Nk]
    vert, slash = p.sum(1), diagonal_mass(p)
    del p
    vert[:, :min(sink, nk)] = float("inf")
    slash[:, :min(local, nk)] = float("inf")
    nv, ns = min(n_vertical, nk), min(n_slash, nk)
    return torch.topk(vert, nv, -1).indices, torch.topk(slash, ns, -1).indices


# ----------------------------------------------------------------------------------------------------------------
# grid
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class GridIndex:
    """Two-pass grid layout: ``local`` (A-shape, original order, mask_mode=1) and ``grid`` (phase-major permuted
    order given by ``perm``; run with q/k/v permuted, q_pos = k_pos = perm, mask_mode=2) over the same A term
    (sink, window, dense_from=end)."""
    local: BlockSparseIndex
    grid: BlockSparseIndex
    perm: torch.Tensor
    sink: int
    window: int
    dense_from: int


def grid_block_mask(n: int, stride: int, phases: torch.Tensor, start: int, end: int, block_m: int, block_n: int,
                    horizontal: bool = True, perm: torch.Tensor | None = None) -> torch.Tensor:
    """Block mask in the permuted order: blockified grid lines (see reference.grid_ideal_mask), with tiles that are
    entirely non-causal on original positions dropped.

    phases: [P] (one head) -> [M, NB], or [H, P] (a head each) -> [H, M, NB]; all heads in one pass of tensor ops
    (a per-head loop costs ~25 kernel launches per head, which is host time on a GPU)."""
    device = phases.device
    single = phases.dim() == 1
    phases = phases.reshape(1, -1) if single else phases
    H = phases.shape[0]
    perm = grid_permutation(n, stride, start, end, device) if perm is None else perm
    M, NB = -(-n // block_m), -(-n // block_n)
    pos = perm                                                    # original position of each permuted token
    inside = (pos >= start) & (pos < end)
    ph = torch.zeros(H, stride, dtype=torch.bool, device=device)
    ph.scatter_(1, phases.long(), True)
    on = inside[None, :] & ph[:, (pos - start).clamp(min=0) % stride]          # [H, n]
    pad_m = torch.zeros(M * block_m, dtype=torch.bool, device=device)
    pad_m[:n] = inside
    row_inside = pad_m.view(M, block_m).any(-1)
    row_on = F.pad(on, (0, M * block_m - n)).view(H, M, block_m).any(-1)          # [H, M]
    col_on = F.pad(on, (0, NB * block_n - n)).view(H, NB, block_n).any(-1)        # [H, NB]
    bm = row_inside[None, :, None] & col_on[:, None, :]
    if horizontal:
        bm = bm | row_on[:, :, None]
    # causal pruning on original positions: drop tiles whose smallest key position exceeds the largest query one
    big = torch.full((M * block_m,), -1, dtype=torch.long, device=device)
    big[:n] = pos
    qmax = big.view(M, block_m).max(-1).values
    small = torch.full((NB * block_n,), n + 1, dtype=torch.long, device=device)
    small[:n] = pos
    kmin = small.view(NB, block_n).min(-1).values
    bm = bm & (kmin[None, :] <= qmax[:, None])[None]
    return bm[0] if single else bm


def build_grid(n: int, stride: int, phases: torch.Tensor, start: int = 0, end: int | None = None, sink: int = 64,
               window: int = 128, horizontal: bool = True, block_m: int = 64, block_n: int = 64) -> GridIndex:
    """Grid index for H heads with per-head phases [H, P] (all heads share ``stride`` and the permutation)."""
    end = n if end is None else end
    H = phases.shape[0]
    device = phases.device
    local = build_a_shape(n, n, H, sink, window, end, block_m, block_n, device)
    perm = _grid_permutation(n, stride, start, end, torch.device(device))
    bm = grid_block_mask(n, stride, phases, start, end, block_m, block_n, horizontal, perm)
    cap = grid_list_capacity(n, stride, phases.shape[-1], start, end, horizontal, block_n)
    idx, cnt = lists_from_block_mask(bm, cap)
    return GridIndex(local, BlockSparseIndex(idx, cnt, block_m, block_n), perm, sink, window, end)


def grid_list_capacity(n: int, stride: int, n_phases: int, start: int, end: int, horizontal: bool,
                       block_n: int) -> int:
    """A bound on the key blocks of any row of the grid pass, from the sizes alone (so building the lists needs
    no read-back): with horizontal lines a row may see every key block; without, a row sees the runs of its
    ``n_phases`` phases, each ``ceil(L / stride)`` tokens long in the permuted order, so at most that many
    blocks plus one per phase (a run rarely starts on a block edge)."""
    nb = -(-n // block_n)
    if horizontal:
        return max(nb, 1)
    run = -(-(end - start) // stride)
    return max(1, min(nb, n_phases * (-(-run // block_n) + 1)))


@functools.lru_cache(maxsize=16)
def _grid_permutation(n, stride, start, end, device):
    """grid_permutation, once per (sizes, device): shared and read-only."""
    return grid_permutation(n, stride, start, end, device)


def detect_stride(attn: torch.Tensor, min_stride: int = 16, max_stride: int = 4096) -> int:
    """Dominant period of a 1-D attention profile over the video span (autocorrelation via FFT)."""
    x = attn.float() - attn.float().mean()
    n = x.numel()
    if n < 2 * min_stride:
        return max(1, n)
    f = torch.fft.rfft(x, 2 * n)
    ac = torch.fft.irfft(f * f.conj(), 2 * n)[:n]
    hi = min(max_stride, n // 2)
    if hi <= min_stride:
        return min_stride
    lag = int(torch.argmax(ac[min_stride:hi + 1])) + min_stride
    # prefer the fundamental: a divisor of the lag whose autocorrelation is almost as high
    for d in range(2, lag // min_stride + 1):
        if lag % d == 0 and ac[lag // d] >= 0.9 * ac[lag]:
            return lag // d
    return lag


def estimate_grid(q: torch.Tensor, k: torch.Tensor, start: int, end: int, n_phases: int,
                  stride: int | None = None, last_q: int = 64, kv_head_idx: torch.Tensor | None = None,
                  backend: str = "auto") -> tuple[int, torch.Tensor]:
    """Stride (given, e.g. tokens per frame, or detected) and per-head top phases from the last queries' attention
    over the video span [start, end).  q: [H, N, D] (or its last ``last_q`` rows), k: [Hkv, N, D], kv_head_idx:
    see :func:`_last_q_probs`; backend: see :func:`column_mass`.  Returns (stride, phases [H, n_phases])."""
    p = column_mass(q, k, last_q, start, end, kv_head_idx, backend)                       # [H, end - start]
    if stride is None:
        stride = detect_stride(p.mean(0))
    length = end - start
    n_ph = min(n_phases, stride)
    ph = torch.arange(length, device=p.device) % stride
    mass = torch.zeros(p.shape[0], stride, device=p.device).scatter_add_(1, ph.expand(p.shape[0], -1), p)
    return stride, torch.topk(mass, n_ph, -1).indices


__all__ = ["BlockSparseIndex", "GridIndex", "lists_from_block_mask", "build_a_shape", "a_shape_block_mask",
           "build_vertical_slash", "estimate_vertical_slash", "diagonal_mass", "build_grid", "grid_block_mask",
           "estimate_grid", "detect_stride", "grid_list_capacity", "index_tensor", "column_mass", "slash_list_capacity",
           "invert_permutation"]
