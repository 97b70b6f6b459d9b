"""Offline per-(layer, head) pattern search (MMInference, section "pattern search").

For every head, try the candidate patterns from cheapest to most expensive and keep the first whose attention
*recall* -- the softmax mass that falls inside the pattern's mask, averaged over sampled query rows -- reaches the
threshold on the calibration input; heads that no candidate satisfies stay dense, and so do heads whose cheapest
satisfying candidate still computes more than ``max_density`` of the causal tiles (there the dense flash kernel,
which is tuned harder than a block-sparse one, is faster).  Cost = fraction of the (row-block, key-block) tiles
the kernel computes for that input.

Nothing here builds an N x N tensor: recall is estimated on ``n_rows`` sampled query rows (the last ``last_q``
queries, which the online estimators also use, plus rows spread evenly over the sequence), with the keys scored in
chunks, so calibration works well past 25K tokens.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from . import reference as ref
from .mminference import MultimodalContext, boundary_plan, grid_span
from .patterns import (build_a_shape, build_grid, build_vertical_slash, estimate_grid, estimate_vertical_slash)
from .permute import invert_permutation

CONFIG_VERSION = 1


def default_candidates(n: int, has_video: bool, modalities: tuple[int, ...] = ()) -> list[dict]:
    """A small ladder of patterns sized for an n-token input (dense is the implicit fallback).

    Local windows come in several widths (256 to 4096 tokens, below n) because the window dominates the cost of
    A-shape and grid heads and heads differ in how far back they look; the widths are absolute, not fractions of
    n, because locality comes from relative positions (RoPE) and does not grow with the input.  Grid heads are
    tried without and with horizontal lines: the horizontal lines (grid-position queries attending to every key)
    are a third of a grid head's tiles at 512K tokens, and only heads whose grid-position queries really look
    everywhere need them.  With two or more ``modalities`` (interleaved text and vision) 2D-boundary candidates
    join: an A shape inside each modality, on ranks within it (so a text query's window skips the frames between
    it and the text before), plus the first tokens of every other modality."""
    windows = [w for w in (256, 512, 1024, 2048, 4096) if w < n] or [max(16, n // 4)]
    w = windows[-1]
    c = [{"type": "a_shape", "sink": 128, "window": x} for x in windows]
    if has_video:
        c += [{"type": "grid", "n_phases": 4, "sink": 128, "window": x, "horizontal": hz}
              for x in windows for hz in (False, True)]
        c += [{"type": "grid", "n_phases": 16, "sink": 128, "window": 2 * w, "horizontal": True}]
    if len(modalities) >= 2:
        c += [{"type": "boundary", "permute_cols": True,
               "rules": {f"{a},{b}": ["sink_local", 128, x if a == b else 0] for a in modalities for b in modalities}}
              for x in windows]
    c += [{"type": "vertical_slash", "n_vertical": max(64, n // 64), "n_slash": max(256, n // 32)},
          {"type": "vertical_slash", "n_vertical": max(256, n // 16), "n_slash": max(1024, n // 8)}]
    return c


def sample_rows(n: int, n_rows: int, last_q: int = 64, device=None) -> torch.Tensor:
    last = torch.arange(max(0, n - last_q), n, device=device)
    rest = max(0, n_rows - last.numel())
    spread = torch.linspace(0, max(0, n - last_q - 1), rest, device=device).round().long() if rest else last[:0]
    return torch.unique(torch.cat([spread, last]))


def sampled_probs(q: torch.Tensor, k: torch.Tensor, rows: torch.Tensor, key_chunk: int = 32768) -> torch.Tensor:
    """Causal softmax of query rows ``rows`` over all keys. q: [h, N, D], k: [h, N, D] (already per head).
    Returns [h, R, N] fp32; scores are computed with keys in chunks (memory h * R * N, never N x N)."""
    h, n, d = q.shape
    qs = q[:, rows].float() / math.sqrt(d)
    s_all = []
    for c0 in range(0, n, key_chunk):
        s = torch.bmm(qs, k[:, c0:c0 + key_chunk].float().transpose(1, 2))
        kpos = torch.arange(c0, c0 + s.shape[-1], device=q.device)
        s.masked_fill_(kpos[None, None, :] > rows[None, :, None], float("-inf"))
        s_all.append(s)
    s = torch.cat(s_all, -1)
    return torch.softmax(s, -1)


def pattern_row_mask(pattern: dict, q: torch.Tensor, k: torch.Tensor, rows: torch.Tensor,
                     ctx: MultimodalContext | None, block: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The mask the sparse path would use for ``pattern`` on this input, restricted to ``rows``.

    q, k: [h, N, D] (k already gathered per query head).  Returns (mask [h, R, N] bool, density [h])."""
    h, n, _ = q.shape
    kind = pattern["type"]
    nb = -(-n // block)
    causal_tiles = nb * (nb + 1) / 2
    if kind == "dense":
        pos = torch.arange(n, device=q.device)
        return ref.causal_mask(rows, pos)[None].expand(h, -1, -1), torch.ones(h)
    if kind == "a_shape":
        idx = build_a_shape(n, n, h, pattern["sink"], pattern["window"], None, block, block, q.device)
        mask = ref.index_row_mask(idx.block_idx, idx.block_cnt, rows, n, block, block, mask_mode=1,
                                  sink=pattern["sink"], window=pattern["window"])
        return mask, idx.block_cnt.double().sum(-1).cpu() / causal_tiles
    if kind == "vertical_slash":
        v_idx, s_off = estimate_vertical_slash(q, k, pattern["n_vertical"], pattern["n_slash"],
                                               pattern.get("last_q", 64), pattern.get("sink", 4),
                                               pattern.get("local", block))
        idx = build_vertical_slash(n, n, v_idx, s_off, block, block)
        mask = ref.index_row_mask(idx.block_idx, idx.block_cnt, rows, n, block, block, idx.col_idx, idx.col_cnt)
        tiles = idx.block_cnt.double().sum(-1) + idx.col_cnt.double().sum(-1) / block
        return mask, tiles.cpu() / causal_tiles
    if kind == "grid":
        sink, window = pattern.get("sink", 64), pattern.get("window", 256)
        span = grid_span(ctx)
        if span is None:                                      # as the sparse path runs it: an A-shape head
            return pattern_row_mask({"type": "a_shape", "sink": sink, "window": window}, q, k, rows, ctx, block)
        start, end = span
        stride = pattern.get("stride") or ctx.tokens_per_frame
        stride, phases = estimate_grid(q, k, start, end, pattern.get("n_phases", 4), stride,
                                       pattern.get("last_q", 64))
        g = build_grid(n, stride, phases, start, end, sink, window, pattern.get("horizontal", True), block, block)
        am = dict(sink=sink, window=window, dense_from=end)
        m1 = ref.index_row_mask(g.local.block_idx, g.local.block_cnt, rows, n, block, block, mask_mode=1, **am)
        inv = invert_permutation(g.perm)
        m2p = ref.index_row_mask(g.grid.block_idx, g.grid.block_cnt, inv[rows], n, block, block, q_pos=rows,
                                 k_pos=g.perm, mask_mode=2, **am)
        m2 = m2p[..., inv]
        tiles = g.local.block_cnt.double().sum(-1) + g.grid.block_cnt.double().sum(-1)
        return m1 | m2, tiles.cpu() / causal_tiles
    if kind == "boundary":
        idx, qperm, kperm = boundary_plan(pattern, ctx, block, block, q.device)
        mask = ref.index_row_mask(idx.block_idx, idx.block_cnt, invert_permutation(qperm)[rows], n, block, block,
                                  q_pos=rows, k_pos=kperm)                    # keys in the permuted layout
        return mask[..., invert_permutation(kperm)].expand(h, -1, -1), \
            (idx.block_cnt.double().sum(-1).cpu() / causal_tiles).expand(h)
    raise ValueError(f"pattern type {kind!r} is not searchable")


def search_layer(q: torch.Tensor, k: torch.Tensor, ctx: MultimodalContext | None = None,
                 candidates: list[dict] | None = None, threshold: float = 0.95, n_rows: int = 256,
                 block: int = 64, key_chunk: int = 32768, max_density: float = 0.5) -> list[dict]:
    """Choose a pattern per head for one layer.

    q: [H, N, D], k: [Hkv, N, D] (one calibration sequence, post-RoPE).  Returns H dicts
    ``{"pattern": {...}, "recall": r, "density": c}``; the pattern is ``{"type": "dense"}`` when no candidate
    reaches ``threshold`` with a density of at most ``max_density``."""
    H, n, _ = q.shape
    group = H // k.shape[0]
    has_video = ctx is not None and ctx.video_start is not None
    mods = tuple(torch.unique(ctx.modality).tolist()) if ctx is not None and ctx.modality is not None else ()
    candidates = default_candidates(n, has_video, mods) if candidates is None else candidates
    rows = sample_rows(n, n_rows, device=q.device)
    out = []
    for h in range(H):
        qh, kh = q[h:h + 1], k[h // group:h // group + 1]
        p = sampled_probs(qh, kh, rows, key_chunk)                   # [1, R, N]
        options = []
        for cand in candidates:
            mask, dens = pattern_row_mask(cand, qh, kh, rows, ctx, block)
            recall = float((p * mask).sum(-1).mean())
            options.append((float(dens[0]), recall, cand))
        best = None
        for dens, recall, cand in sorted(options, key=lambda t: t[0]):
            if recall >= threshold and dens <= max_density:
                best = {"pattern": cand, "recall": recall, "density": dens}
                break
        out.append(best or {"pattern": {"type": "dense"}, "recall": 1.0, "density": 1.0})
    return out


def search_model(layer_qk: list[tuple[torch.Tensor, torch.Tensor]], ctx: MultimodalContext | None = None,
                 threshold: float = 0.95, model: str = "", **kw) -> dict:
    """Run :func:`search_layer` on every layer's captured (q, k) and return the JSON-ready config."""
    return config_from_layers([search_layer(q, k, ctx, threshold=threshold, **kw) for q, k in layer_qk],
                              threshold, model)


def config_from_layers(layers: list[list[dict]], threshold: float, model: str = "") -> dict:
    """The JSON-ready config of per-layer :func:`search_layer` results."""
    return {"version": CONFIG_VERSION, "model": model, "threshold": threshold,
            "layers": [[h["pattern"] for h in lay] for lay in layers],
            "recall": [[round(h["recall"], 5) for h in lay] for lay in layers],
            "density": [[round(h["density"], 5) for h in lay] for lay in layers]}


def dense_config(n_layers: int, n_heads: int, model: str = "") -> dict:
    return {"version": CONFIG_VERSION, "model": model, "threshold": 1.0,
            "layers": [[{"type": "dense"}] * n_heads for _ in range(n_layers)]}


def uniform_config(n_layers: int, n_heads: int, pattern: dict, model: str = "") -> dict:
    return {"version": CONFIG_VERSION, "model": model, "threshold": None,
            "layers": [[dict(pattern) for _ in range(n_heads)] for _ in range(n_layers)]}


def save_config(config: dict, path: str | Path) -> None:
    """Write ``config`` as JSON, after :func:`check_config` (a file that load_config would refuse is not written)."""
    check_config(config, str(path))
    Path(path).write_text(json.dumps(config, indent=1))


def load_config(path: str | Path) -> dict:
    """Read and check a config written by :func:`save_config`.  Raises ValueError naming the file and the layer,
    head and key at fault (OSError when the file cannot be read)."""
    text = Path(path).read_text()
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from e
    check_config(cfg, str(path))
    return cfg


# per pattern type: its keys and what each must be ("nat": int >= 0, "pos": int >= 1, "pos?": that or null)
_PATTERN_KEYS = {
    "dense": {},
    "a_shape": {"sink": "nat", "window": "nat"},
    "vertical_slash": {"n_vertical": "nat", "n_slash": "nat", "last_q": "pos", "sink": "nat", "local": "nat"},
    "grid": {"n_phases": "pos", "sink": "nat", "window": "nat", "stride": "pos?", "horizontal": "bool",
             "last_q": "pos"},
    "boundary": {"rules": "rules", "permute_cols": "bool"},
}
_REQUIRED = {"a_shape": ("sink", "window"), "vertical_slash": ("n_vertical", "n_slash"), "boundary": ("rules",)}


def _is_int(x, lo: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= lo


def _check_rules(rules, where: str) -> None:
    if not isinstance(rules, dict):
        raise ValueError(f"{where}: 'rules' must be an object {{\"mq,mk\": rule}}, got {rules!r}")
    for key, rule in rules.items():
        parts = key.split(",") if isinstance(key, str) else []
        if len(parts) != 2 or not all(x.strip().lstrip("-").isdigit() for x in parts):
            raise ValueError(f"{where}: rule key {key!r} is not \"query modality,key modality\" (e.g. \"0,2\")")
        ok = rule in ("dense", "none") or (isinstance(rule, (list, tuple)) and len(rule) == 3
                                           and rule[0] == "sink_local" and _is_int(rule[1], 0) and _is_int(rule[2], 0))
        if not ok:
            raise ValueError(f"{where}: rule {key!r} must be \"dense\", \"none\" or [\"sink_local\", sink, window] "
                             f"with integers >= 0, got {rule!r}")


def check_pattern(p, where: str = "pattern") -> None:
    """Raise ValueError (naming ``where`` and the key) unless ``p`` is a pattern the sparse path can run: a known
    type, its required keys, no unknown key (a misspelt one would silently run the default), values in range."""
    if not isinstance(p, dict) or p.get("type") not in _PATTERN_KEYS:
        raise ValueError(f"{where}: not a pattern {{\"type\": one of {list(_PATTERN_KEYS)}, ...}}, got {p!r}")
    kind, spec = p["type"], _PATTERN_KEYS[p["type"]]
    for key in _REQUIRED.get(kind, ()):
        if key not in p:
            raise ValueError(f"{where}: {kind} patterns need {key!r}, got {p!r}")
    for key, val in p.items():
        if key == "type":
            continue
        if key not in spec:
            raise ValueError(f"{where}: unknown key {key!r} for a {kind} pattern (known: {sorted(spec)})")
        want = spec[key]
        if want == "rules":
            _check_rules(val, where)
        elif want == "bool" and not isinstance(val, bool):
            raise ValueError(f"{where}: {key!r} must be true or false, got {val!r}")
        elif want in ("nat", "pos", "pos?") and not (_is_int(val, 0 if want == "nat" else 1)
                                                     or (want == "pos?" and val is None)):
            raise ValueError(f"{where}: {key!r} must be an integer >= {0 if want == 'nat' else 1}"
                             f"{' or null' if want == 'pos?' else ''}, got {val!r}")


def check_config(cfg, where: str = "config") -> None:
    """Raise ValueError naming ``where``, the layer and the head unless ``cfg`` is a config of this version:
    ``{"version": 1, "layers": [[pattern per head] per layer], ...}`` with every pattern valid."""
    if not isinstance(cfg, dict) or cfg.get("version") != CONFIG_VERSION:
        got = cfg.get("version") if isinstance(cfg, dict) else type(cfg).__name__
        raise ValueError(f"{where}: not a sparse-attention config of version {CONFIG_VERSION} (version: {got!r})")
    layers = cfg.get("layers")
    if not isinstance(layers, list):
        raise ValueError(f"{where}: 'layers' must be a list of layers (one list of patterns each), got {layers!r}")
    for i, lay in enumerate(layers):
        if not isinstance(lay, list):
            raise ValueError(f"{where}: layer {i} must be a list of patterns (one per head), got {lay!r}")
        for h, p in enumerate(lay):
            check_pattern(p, f"{where}: layer {i}, head {h}")
