"""Token permutations used by the sparse patterns, each with an exact inverse.

A permutation ``perm`` is a 1-D int64 tensor with ``permuted[i] = original[perm[i]]``; ``perm`` itself is therefore
the *original position* of every permuted token, which is what the kernel needs for causality (``q_pos``/``k_pos``).
"""
from __future__ import annotations

import torch


def invert_permutation(perm: torch.Tensor) -> torch.Tensor:
    """inv with ``inv[perm[i]] = i`` (so ``x[perm][inv] == x``)."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel(), device=perm.device, dtype=perm.dtype)
    return inv


def permute_tokens(x: torch.Tensor, perm: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Gather tokens along ``dim`` (default: the N axis of [B, H, N, D])."""
    return x.index_select(dim, perm.to(x.device))


def unpermute_tokens(x: torch.Tensor, perm: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Inverse of :func:`permute_tokens`."""
    return x.index_select(dim, invert_permutation(perm).to(x.device))


def grid_permutation(n: int, stride: int, start: int = 0, end: int | None = None, device=None) -> torch.Tensor:
    """Phase-major permutation for the grid pattern.

    Tokens before ``start`` keep their order and come first; the video span ``[start, end)`` is reordered by
    ``phase = (pos - start) % stride`` and then by position (all tokens of phase 0, then phase 1, ...), so that a
    grid line (one phase in every frame) becomes a contiguous run; tokens from ``end`` on follow in order.
    """
    end = n if end is None else end
    if not (0 <= start <= end <= n):
        raise ValueError(f"need 0 <= start <= end <= n, got start={start}, end={end}, n={n}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    pos = torch.arange(start, end, device=device)
    phase = (pos - start) % stride
    # stable ordering by (phase, pos): phase * L + (pos - start) is unique and sortable
    key = phase * (end - start + 1) + (pos - start)
    mid = pos[torch.argsort(key)]
    return torch.cat([torch.arange(0, start, device=device), mid, torch.arange(end, n, device=device)])


def grid_phase_ranges(n: int, stride: int, start: int = 0, end: int | None = None) -> torch.Tensor:
    """[stride, 2] (begin, end) of each phase's run in the permuted order of :func:`grid_permutation`."""
    end = n if end is None else end
    length = end - start
    counts = torch.tensor([(length - p + stride - 1) // stride if p < length else 0 for p in range(stride)])
    ends = torch.cumsum(counts, 0) + start
    begins = ends - counts
    return torch.stack([begins, ends], 1)


def modality_permutation(modality: torch.Tensor) -> torch.Tensor:
    """Stable permutation grouping tokens by modality id (ascending), order kept inside each group.

    modality: [N] int (e.g. 0 = text, 1 = image/video).  Used by the Q-boundary (rows only) and 2D-boundary (rows
    and columns) layouts; causality is then enforced on the original positions (= the permutation itself)."""
    modality = modality.long()
    n = modality.numel()
    key = modality * (n + 1) + torch.arange(n, device=modality.device)
    return torch.argsort(key)


def modality_ranges(modality: torch.Tensor) -> dict[int, tuple[int, int]]:
    """{modality id: (begin, end)} of each group in the order of :func:`modality_permutation`."""
    vals, counts = torch.unique(modality.long(), sorted=True, return_counts=True)
    out, b = {}, 0
    for v, c in zip(vals.tolist(), counts.tolist()):
        out[v] = (b, b + c)
        b += c
    return out
