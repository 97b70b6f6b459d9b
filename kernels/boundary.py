"""Index builders for modality boundaries (MMInference's Q-boundary and 2D-boundary), beside the single-pattern
builders of :mod:`videomind.kernels.patterns`: rows (and, for 2D, columns) permuted so each modality is contiguous,
a pattern per (query modality, key modality) pair, and causality enforced on the original positions. The dense
masks they must reproduce are in :mod:`videomind.kernels.reference`.
"""
from __future__ import annotations

import torch

from .patterns import BlockSparseIndex, lists_from_block_mask
from .permute import modality_permutation


def _group_rel(modality: torch.Tensor):
    """rank of every token inside its modality group (original order)."""
    perm = modality_permutation(modality)
    m_sorted = modality[perm].long()
    first = torch.zeros_like(m_sorted)
    change = torch.ones_like(m_sorted, dtype=torch.bool)
    change[1:] = m_sorted[1:] != m_sorted[:-1]
    starts = torch.where(change, torch.arange(m_sorted.numel(), device=modality.device), 0)
    first = torch.cummax(starts, 0).values
    rel_sorted = torch.arange(m_sorted.numel(), device=modality.device) - first
    rel = torch.empty_like(rel_sorted)
    rel[perm] = rel_sorted
    return perm, rel


def boundary_2d_block_mask(modality: torch.Tensor, rules: dict, block_m: int = 64, block_n: int = 64,
                           permute_rows: bool = True, permute_cols: bool = True) -> torch.Tensor:
    """Block mask [M, NB] for the boundary layouts (rows and/or columns grouped by modality).

    ``rules[(mq, mk)]`` (modality ids of query row / key column) is "dense", "none" or ("sink_local", s, w): key
    rank-in-modality < s, or (only for mq == mk) q_rank - k_rank < w -- i.e. an A shape in the sequence of that
    modality alone, skipping interleaved tokens of the other one.  Missing pairs count as "none".
    Q-boundary = ``permute_cols=False`` (then only "dense"/"none" rules and ("sink_local", s, w) with ranks taken
    as original positions are meaningful).  Tiles entirely non-causal on original positions are dropped."""
    device = modality.device
    n = modality.numel()
    perm, rel = _group_rel(modality)
    ident = torch.arange(n, device=device)
    rperm = perm if permute_rows else ident
    cperm = perm if permute_cols else ident
    M, NB = -(-n // block_m), -(-n // block_n)
    mod = modality.long()
    out = torch.zeros(M, NB, dtype=torch.bool, device=device)

    rank = rel if permute_cols else ident          # 2D: rank inside the modality; Q-boundary: position

    def seg_stats(order, bs, nblk, sel):
        """per block: any selected token, min / max rank among the selected tokens."""
        pad = nblk * bs
        s = torch.zeros(pad, dtype=torch.bool, device=device)
        s[:n] = sel[order]
        r = torch.zeros(pad, dtype=torch.long, device=device)
        r[:n] = rank[order]
        big = torch.iinfo(torch.long).max
        rmin = torch.where(s, r, big).view(nblk, bs).min(-1).values
        rmax = torch.where(s, r, -1).view(nblk, bs).max(-1).values
        return s.view(nblk, bs).any(-1), rmin, rmax

    for (a, b), rule in rules.items():
        if rule == "none":
            continue
        ra, ia0, ia1 = seg_stats(rperm, block_m, M, mod == a)
        cb, jb0, jb1 = seg_stats(cperm, block_n, NB, mod == b)
        ok = ra[:, None] & cb[None, :]
        if rule != "dense":
            kind, s, w = rule
            if kind != "sink_local":
                raise ValueError(f"unknown rule {rule!r}")
            t = jb0[None, :] < s
            if a == b or not permute_cols:
                t = t | ((ia0[:, None] - jb1[None, :]) < w)
            ok = ok & t
        out |= ok
    # causal pruning
    qmax = torch.full((M * block_m,), -1, dtype=torch.long, device=device)
    qmax[:n] = rperm
    kmin = torch.full((NB * block_n,), n + 1, dtype=torch.long, device=device)
    kmin[:n] = cperm
    return out & (kmin.view(NB, block_n).min(-1).values[None, :] <= qmax.view(M, block_m).max(-1).values[:, None])


def build_boundary(modality: torch.Tensor, rules_per_head: list[dict], block_m: int = 64, block_n: int = 64,
                   permute_cols: bool = True) -> tuple[BlockSparseIndex, torch.Tensor, torch.Tensor]:
    """2D-boundary (``permute_cols=True``) or Q-boundary index for H heads.

    Returns (index, q_perm, k_perm): run the kernel on ``q[..., q_perm, :]``, ``k/v[..., k_perm, :]`` with
    ``q_pos=q_perm, k_pos=k_perm`` and un-permute the output rows with :func:`invert_permutation`."""
    perm = modality_permutation(modality)
    bm = torch.stack([boundary_2d_block_mask(modality, r, block_m, block_n, True, permute_cols)
                      for r in rules_per_head])
    idx, cnt = lists_from_block_mask(bm)
    kperm = perm if permute_cols else torch.arange(modality.numel(), device=modality.device)
    return BlockSparseIndex(idx, cnt, block_m, block_n), perm, kperm
