"""Streaming visual token compression: any number of frames in, at most ``budget`` visual tokens out.

A VLM given an hour of frames at 1 fps would see ~250K visual tokens (Qwen2.5-VL, 448x252 frames), more than its
window and far more than it needs: consecutive frames of a video repeat most of their content. The compressor
consumes the vision tower's merged tokens one temporal patch at a time and keeps a buffer that never holds more
than ``budget`` tokens, so memory and the prefill length stay constant however long the span is. Two steps:

1. **Temporal redundancy** (DyCoke / LongVU-style pruning): a token whose cosine similarity to the last kept token
   at the same spatial position is >= ``redundancy`` adds nothing and is dropped; the kept token it repeats counts
   one more member. A static shot costs the tokens of its first frame.
2. **Budget merging** (ToMe's bipartite soft matching, Bolya et al. 2023): when the buffer overflows, its tokens
   are split alternately into two sets, each token of the first finds its most similar token in the second, and
   the most similar pairs are averaged (weighted by how many original tokens each stands for) until the buffer is
   back under ``budget - slack``. The slack amortises the matching over several temporal patches. What is
   redundant anywhere in the span merges first; a token unlike everything else (the needle) survives longest.

Every kept token keeps the (t, h, w) grid position of the token it started as (a merged pair keeps the
destination's), so the model's multimodal RoPE still tells it when and where each token was seen, and ``size``
says how many original tokens each one stands for. Buffers are in arrival order, which is the order the model
reads them in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# A token's cosine with an exact copy of itself rounds to up to a few 1e-6 below 1 in float32 (more with larger D);
# without this margin redundancy=1.0 would keep exact repeats.
_COS_ROUNDING = 1e-5


def _most_similar(a: torch.Tensor, b: torch.Tensor, rows: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``a`` [n, D] its best cosine with a row of ``b`` [m, D] (unit rows) and that row's index,
    ``rows`` rows of ``a`` at a time: the whole [n, m] matrix would be 4 GB at a 64K-token budget."""
    best = [(a[i:i + rows] @ b.T).max(dim=-1) for i in range(0, len(a), rows)]
    return torch.cat([v for v, _ in best]), torch.cat([j for _, j in best])


@dataclass
class CompressedTokens:
    """The compressor's output, in arrival (time-major) order.

    Attributes:
        embeds: [M, D] token embeddings, M <= budget.
        coords: [M, 3] int64 (t, h, w): temporal patch index and merged-grid row/column.
        sizes: [M] float32: original tokens each one stands for (sums to every token seen).
        seen: tokens that went in.
    """

    embeds: torch.Tensor
    coords: torch.Tensor
    sizes: torch.Tensor
    seen: int

    def __len__(self) -> int:
        return int(self.embeds.shape[0])


class StreamingTokenCompressor:
    """Keeps at most ``budget`` visual tokens of a stream of temporal patches; see the module doc.

    Args:
        budget: the most tokens kept (>= 2).
        redundancy: cosine similarity at or above which a token repeating its position's last kept token is
            dropped; > 1 disables the step.
        slack: a full buffer is merged down to ``budget - slack`` tokens (default budget // 8).
    """

    def __init__(self, budget: int, redundancy: float = 0.95, slack: int | None = None):
        if budget < 2:
            raise ValueError(f"budget must be >= 2 tokens, got {budget}")
        self.budget, self.redundancy = int(budget), float(redundancy)
        self.slack = max(0, min(self.budget - 1, budget // 8 if slack is None else int(slack)))
        self._embeds: torch.Tensor | None = None  # [M, D], on the device the tokens come from
        self._coords: torch.Tensor | None = None  # [M, 3] int64
        self._sizes: torch.Tensor | None = None  # [M] float32
        self._ref: torch.Tensor | None = None  # [h * w, D] unit vectors: last kept token per position
        self._ref_row: torch.Tensor | None = None  # [h * w] buffer row that token now lives in
        self._grid: tuple[int, int] | None = None
        self.seen = 0

    def __len__(self) -> int:
        return 0 if self._embeds is None else int(self._embeds.shape[0])

    def add(self, embeds: torch.Tensor, t: int, grid_hw: tuple[int, int]) -> None:
        """One temporal patch: ``embeds`` [h * w, D] in row-major (h, w) order, at temporal index ``t``."""
        h, w = grid_hw
        if embeds.ndim != 2 or embeds.shape[0] != h * w:
            raise ValueError(f"expected [{h * w}, D] tokens for a {h}x{w} grid, got {tuple(embeds.shape)}")
        if not bool(torch.isfinite(embeds).all()):  # NaN would pass as a "repeat" or poison whatever it merges into
            raise ValueError(f"the tokens of temporal patch {t} hold NaN/inf: the encoder that made them overflowed "
                             f"or has broken weights (float16 overflows; run it in bfloat16 or float32)")
        self.seen += h * w
        dev = embeds.device
        if self._embeds is None:
            self._embeds = embeds.new_empty(0, embeds.shape[1])
            self._coords = torch.empty(0, 3, dtype=torch.long, device=dev)
            self._sizes = torch.empty(0, device=dev)
        pos = torch.arange(h * w, device=dev)
        coords = torch.stack([torch.full_like(pos, int(t)), pos // w, pos % w], 1)
        unit = torch.nn.functional.normalize(embeds.float(), dim=-1)
        if self._grid != (h, w):  # the first patch, or frames of another size: nothing to compare with
            self._grid, self._ref, self._ref_row = (h, w), None, None
        keep = torch.ones(h * w, dtype=torch.bool, device=dev)
        if self._ref is not None and self.redundancy <= 1.0:
            keep = (unit * self._ref).sum(-1) < self.redundancy - _COS_ROUNDING
            repeats = ~keep & (self._ref_row >= 0)
            rows = self._ref_row[repeats]
            self._sizes.index_add_(0, rows, torch.ones(rows.shape[0], device=dev))
        n0, n_keep = len(self), int(keep.sum())
        new_rows = torch.full_like(pos, -1)
        new_rows[keep] = torch.arange(n0, n0 + n_keep, device=dev)
        self._embeds = torch.cat([self._embeds, embeds[keep].to(self._embeds.dtype)])
        self._coords = torch.cat([self._coords, coords[keep]])
        self._sizes = torch.cat([self._sizes, torch.ones(n_keep, device=dev)])
        if self._ref is None:
            self._ref, self._ref_row = unit.clone(), new_rows
        else:
            self._ref[keep], self._ref_row[keep] = unit[keep], new_rows[keep]
        if len(self) > self.budget:
            self._merge_to(self.budget - self.slack)

    def result(self) -> CompressedTokens:
        """The kept tokens (the compressor can go on receiving patches after this)."""
        if not self.seen:
            raise ValueError("no visual tokens were added")
        return CompressedTokens(self._embeds, self._coords, self._sizes.clone(), self.seen)

    def _merge_to(self, target: int) -> None:
        while len(self) > target:
            self._merge_round(len(self) - target)

    def _merge_round(self, r: int) -> None:
        """Merge up to ``r`` tokens of the even rows into their most similar odd row (one bipartite round)."""
        x, n = self._embeds, len(self)
        dev = x.device
        src, dst = torch.arange(0, n, 2, device=dev), torch.arange(1, n, 2, device=dev)
        r = min(r, len(src))
        unit = torch.nn.functional.normalize(x.float(), dim=-1)
        score, match = _most_similar(unit[src], unit[dst])  # [n_src]
        merged = score.topk(r).indices  # the r most redundant sources
        s, d = src[merged], dst[match[merged]]
        w = self._sizes
        acc = x.float() * w[:, None]
        acc.index_add_(0, d, acc[s])  # size-weighted sums of each destination and its sources
        w = w.clone().index_add_(0, d, w[s])
        alive = torch.ones(n, dtype=torch.bool, device=dev)
        alive[s] = False
        self._embeds = (acc / w[:, None]).to(x.dtype)[alive]
        self._coords, self._sizes = self._coords[alive], w[alive]
        # Positions whose last kept token merged away compare with its destination's row from now on.
        remap = torch.arange(n, device=dev)
        remap[s] = d
        new_index = torch.cumsum(alive.long(), 0) - 1
        if self._ref_row is not None:
            valid = self._ref_row >= 0
            self._ref_row[valid] = new_index[remap[self._ref_row[valid]]]
