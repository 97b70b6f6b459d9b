"""Offline pattern search: row-restricted masks, recall estimates, choice of pattern, JSON round trip."""
import pytest
import torch

from videomind.kernels import reference as ref
from videomind.kernels.mminference import MultimodalContext
from videomind.kernels.search import (check_config, default_candidates, load_config, pattern_row_mask,
                                      sample_rows, sampled_probs, save_config, search_layer, search_model)


CANDIDATES = [{"type": "a_shape", "sink": 16, "window": 64},
              {"type": "grid", "n_phases": 1, "sink": 16, "window": 64},
              {"type": "vertical_slash", "n_vertical": 16, "n_slash": 64}]


def _structured_qk(n=700, d=32, start=40, end=660, stride=31):
    """head 0: local attention; head 1: grid (one phase of every frame) + local; head 2: ~uniform (needs dense)."""
    pos = torch.arange(n).float()
    freqs = 1.5 * (0.01 / 1.5) ** (torch.arange(d // 2).float() / (d // 2 - 1))   # RoPE-like
    rot = torch.cat([torch.cos(pos[:, None] * freqs), torch.sin(pos[:, None] * freqs)], 1)
    q = torch.zeros(3, n, d)
    k = torch.zeros(3, n, d)
    q[0], k[0] = rot * 3, rot * 3                                 # similarity peaks on the diagonal
    hot = torch.zeros(n, dtype=torch.bool)
    hot[start:end] = ((torch.arange(start, end) - start) % stride) == 3
    e = torch.randn(d)
    q[1] = e * 1.0 + rot * 2
    k[1] = rot * 2 + torch.where(hot[:, None], e * 6, torch.zeros(d))
    q[2], k[2] = torch.randn(n, d) * 0.01, torch.randn(n, d) * 0.01
    return q, k, MultimodalContext(video_start=start, video_end=end, tokens_per_frame=stride)


@pytest.mark.parametrize("pattern", [
    {"type": "a_shape", "sink": 16, "window": 50},
    {"type": "vertical_slash", "n_vertical": 20, "n_slash": 30},
    {"type": "grid", "n_phases": 2, "sink": 16, "window": 40, "horizontal": True},
    {"type": "dense"}])
def test_row_mask_equals_full_mask_rows(pattern):
    q, k, ctx = _structured_qk()
    n = q.shape[1]
    rows = torch.arange(n)
    mask, dens = pattern_row_mask(pattern, q, k, rows, ctx, 64)
    sub = sample_rows(n, 50)
    mask_sub, _ = pattern_row_mask(pattern, q, k, sub, ctx, 64)
    assert torch.equal(mask_sub, mask[:, sub])
    assert torch.all(dens > 0)          # may exceed 1 for grid on tiny inputs (tiles relative to causal dense)
    if pattern["type"] == "a_shape":
        assert torch.equal(mask[0], ref.a_shape_mask(n, 16, 50))
    if pattern["type"] == "dense":
        assert torch.equal(mask[0], torch.tril(torch.ones(n, n, dtype=torch.bool)))


def test_grid_on_a_one_token_video_is_scored_as_the_a_shape_it_runs_as():
    """The sparse path runs a grid head as A-shape when the video span has fewer than two tokens; the search must
    score the same mask (it built a grid on the one token, with a dense horizontal row and a higher density)."""
    q, k, _ = _structured_qk(n=200, start=20, end=180)
    mod = torch.zeros(200, dtype=torch.long)
    mod[90] = 1
    ctx = MultimodalContext.from_modality(mod, tokens_per_frame=3)
    rows = torch.arange(200)
    grid = pattern_row_mask({"type": "grid", "n_phases": 2, "sink": 4, "window": 8, "horizontal": True},
                            q[:1], k[:1], rows, ctx, 16)
    a_shape = pattern_row_mask({"type": "a_shape", "sink": 4, "window": 8}, q[:1], k[:1], rows, ctx, 16)
    assert torch.equal(grid[0], a_shape[0]) and torch.equal(grid[1], a_shape[1])


def test_chunked_probs_match_unchunked():
    q, k, _ = _structured_qk(n=300, start=20, end=280)
    rows = sample_rows(300, 40)
    a = sampled_probs(q, k, rows, key_chunk=37)
    b = sampled_probs(q, k, rows, key_chunk=100000)
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(a.sum(-1), torch.ones(3, rows.numel()), atol=1e-5)


def test_search_picks_cheap_patterns_and_dense_fallback(tmp_path):
    q, k, ctx = _structured_qk()
    res = search_layer(q, k, ctx, CANDIDATES, threshold=0.9, n_rows=128)
    kinds = [r["pattern"]["type"] for r in res]
    assert kinds[0] != "dense" and res[0]["recall"] >= 0.9 and res[0]["density"] < 0.8
    assert kinds[1] in ("grid", "vertical_slash") and res[1]["recall"] >= 0.9
    assert kinds[2] == "dense"
    # a head whose cheapest passing pattern computes more tiles than max_density allows runs dense instead
    capped = search_layer(q, k, ctx, CANDIDATES, threshold=0.9, n_rows=128, max_density=res[0]["density"] * 0.99)
    assert capped[0]["pattern"] == {"type": "dense"} and capped[0]["density"] == 1.0
    cfg = search_model([(q, k), (q, k)], ctx, threshold=0.9, model="toy", n_rows=64, candidates=CANDIDATES)
    assert cfg["layers"][0][2] == {"type": "dense"} and len(cfg["layers"]) == 2
    save_config(cfg, tmp_path / "c.json")
    assert load_config(tmp_path / "c.json") == cfg
    (tmp_path / "bad.json").write_text('{"version": 1, "layers": [[{"type": "nope"}]]}')
    with pytest.raises(ValueError):
        load_config(tmp_path / "bad.json")


@pytest.mark.parametrize("text,match", [
    ("{not json", "not JSON"),
    ("", "not JSON"),
    ("[1, 2]", "version 1"),
    ('{"layers": []}', "version 1"),
    ('{"version": 1, "layers": {"0": []}}', "'layers' must be a list"),
    ('{"version": 1, "layers": [{"type": "dense"}]}', "layer 0 must be a list"),
    ('{"version": 1, "layers": [[{"type": "dense"}, "dense"]]}', "layer 0, head 1: not a pattern"),
    ('{"version": 1, "layers": [[{"type": "nope"}]]}', "layer 0, head 0: not a pattern"),
    ('{"version": 1, "layers": [[], [{"type": "a_shape", "window": 8}]]}', "layer 1, head 0: a_shape patterns need"),
    ('{"version": 1, "layers": [[{"type": "a_shape", "sink": "4", "window": 8}]]}', "'sink' must be an integer >= 0"),
    ('{"version": 1, "layers": [[{"type": "a_shape", "sink": 4, "window": -1}]]}', "'window' must be an integer"),
    ('{"version": 1, "layers": [[{"type": "grid", "sink": 4, "windows": 8}]]}', "unknown key 'windows'"),
    ('{"version": 1, "layers": [[{"type": "vertical_slash", "n_vertical": 8}]]}', "need 'n_slash'"),
    ('{"version": 1, "layers": [[{"type": "grid", "n_phases": 0}]]}', "'n_phases' must be an integer >= 1"),
    ('{"version": 1, "layers": [[{"type": "grid", "stride": 0}]]}', "'stride' must be an integer >= 1 or null"),
    ('{"version": 1, "layers": [[{"type": "grid", "horizontal": 1}]]}', "'horizontal' must be true or false"),
    ('{"version": 1, "layers": [[{"type": "boundary"}]]}', "need 'rules'"),
    ('{"version": 1, "layers": [[{"type": "boundary", "rules": {"a,b": "dense"}}]]}', "rule key 'a,b'"),
    ('{"version": 1, "layers": [[{"type": "boundary", "rules": {"0,0": "sparse"}}]]}', "rule '0,0' must be"),
    ('{"version": 1, "layers": [[{"type": "boundary", "rules": {"0,0": ["sink_local", 4]}}]]}', "rule '0,0'"),
])
def test_malformed_configs_are_refused_naming_the_problem(tmp_path, text, match):
    """They loaded (a pattern without 'sink', a misspelt key, a string window, bad boundary rules) and failed at
    the first long prefill with a KeyError/TypeError, or failed to load with an AttributeError."""
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_config_round_trip_keeps_every_pattern_type(tmp_path):
    layer = [{"type": "dense"}, {"type": "a_shape", "sink": 4, "window": 0},
             {"type": "vertical_slash", "n_vertical": 8, "n_slash": 16, "last_q": 32, "local": 16},
             {"type": "grid", "n_phases": 2, "sink": 4, "window": 8, "stride": None, "horizontal": False},
             {"type": "boundary", "permute_cols": True, "rules": {"0,0": "dense", "0,2": ["sink_local", 4, 0],
                                                                  "2,0": "none"}}]
    cfg = {"version": 1, "model": "m", "threshold": 0.9, "layers": [layer, layer[::-1]]}
    save_config(cfg, tmp_path / "c.json")
    assert load_config(tmp_path / "c.json") == cfg
    with pytest.raises(ValueError, match="layer 0, head 1"):          # refused before anything is written
        save_config({"version": 1, "layers": [[{"type": "dense"}, {"type": "a_shape"}]]}, tmp_path / "d.json")
    assert not (tmp_path / "d.json").exists()
    check_config(cfg)


def _interleaved_qk(n=2000, span=48, text_bucket=160, video_bucket=48):
    """Clips of ``span`` video tokens and ``span`` subtitle tokens, alternating.  Head 0 attends within its own
    modality only: a token's key is the one-hot of its (modality, rank-in-modality bucket) and its query matches
    its own and the previous bucket, so a subtitle token looks back up to 2 text buckets (320 subtitle tokens, ~640
    positions) across the frames in between.  Head 1 is the same on plain positions."""
    mod = torch.where(torch.arange(n) % (2 * span) < span, 2, 0)
    rank = torch.empty(n, dtype=torch.long)
    for m in (0, 2):
        sel = mod == m
        rank[sel] = torch.arange(int(sel.sum()))
    bucket = torch.where(mod == 0, rank // text_bucket, rank // video_bucket + n)        # disjoint ids per modality
    pos_bucket = torch.arange(n) // text_bucket + 3 * n
    ids = torch.unique(torch.cat([bucket, bucket - 1, pos_bucket, pos_bucket - 1]))
    onehot = (lambda b: torch.nn.functional.one_hot(torch.searchsorted(ids, b), ids.numel()).float())
    k = torch.stack([onehot(bucket), onehot(pos_bucket)]) * 20          # logits 400 / sqrt(d): sharp
    q = torch.stack([onehot(bucket) + onehot(bucket - 1), onehot(pos_bucket) + onehot(pos_bucket - 1)]) * 20
    return q, k, MultimodalContext.from_modality(mod, video_id=2, tokens_per_frame=span)


def test_boundary_row_mask_equals_full_mask_rows():
    q, k, ctx = _interleaved_qk(n=900)
    n = q.shape[1]
    pat = {"type": "boundary", "permute_cols": True,
           "rules": {"0,0": ["sink_local", 8, 40], "2,2": ["sink_local", 8, 40], "0,2": "dense", "2,0": "none"}}
    full, dens = pattern_row_mask(pat, q[:1], k[:1], torch.arange(n), ctx, 32)
    rules = {(0, 0): ("sink_local", 8, 40), (2, 2): ("sink_local", 8, 40), (0, 2): "dense", (2, 0): "none"}
    assert torch.equal(full[0], ref.boundary_mask(ctx.modality, rules, 32, 32, True))
    sub = sample_rows(n, 50)
    assert torch.equal(pattern_row_mask(pat, q[:1], k[:1], sub, ctx, 32)[0], full[:, sub])
    assert 0 < float(dens[0]) < 1


def test_search_picks_boundary_for_within_modality_heads():
    """A head that attends within its modality gets a 2D-boundary pattern (its rank window skips the other
    modality's tokens; an A shape on positions needs a wider, costlier window), a plainly local head an A shape.
    The default ladder offers boundary candidates only when the input mixes modalities."""
    q, k, ctx = _interleaved_qk()
    n = q.shape[1]
    ladder = default_candidates(n, True, (0, 2))
    boundary = [c for c in ladder if c["type"] == "boundary"]
    assert boundary and not any(c["type"] == "boundary" for c in default_candidates(n, True, (0,)))
    cands = [c for c in ladder if c["type"] == "a_shape"] + boundary
    res = search_layer(q, k, ctx, cands, threshold=0.95, n_rows=256, block=32, max_density=0.9)
    assert res[0]["pattern"]["type"] == "boundary" and res[0]["recall"] >= 0.95
    assert res[1]["pattern"]["type"] == "a_shape" and res[1]["recall"] >= 0.95
    assert ctx.plans                                   # the boundary lists were built once and kept on the context
