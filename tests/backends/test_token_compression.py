"""Streaming visual token compression: a constant budget, the redundancy rule, and what merging preserves."""
import pytest
import torch

from videomind.backends.token_compression import StreamingTokenCompressor

H, W, D = 3, 4, 16


def _stream(comp, patches):
    for t, x in enumerate(patches):
        comp.add(x, t, (H, W))
    return comp.result()


def test_nothing_to_compress_is_the_identity():
    g = torch.Generator().manual_seed(0)
    patches = [torch.randn(H * W, D, generator=g) for _ in range(5)]
    out = _stream(StreamingTokenCompressor(budget=1000, redundancy=2.0), patches)
    assert torch.equal(out.embeds, torch.cat(patches))
    t, h, w = out.coords.T
    assert t.tolist() == [i for i in range(5) for _ in range(H * W)]
    assert h.tolist() == [i // W for i in range(H * W)] * 5 and w.tolist() == [i % W for i in range(H * W)] * 5
    assert torch.equal(out.sizes, torch.ones(5 * H * W)) and out.seen == 5 * H * W


@pytest.mark.parametrize("budget", [16, 50, 128])
def test_budget_is_never_exceeded_and_merging_conserves_mass(budget):
    """However long the stream, the buffer stays <= budget after every patch; sizes count every token that went
    in, and the size-weighted sum of the kept embeddings equals the sum of all inputs (merges are weighted means)."""
    g = torch.Generator().manual_seed(1)
    comp = StreamingTokenCompressor(budget=budget, redundancy=2.0)
    total = torch.zeros(D, dtype=torch.float64)
    for t in range(300):
        x = torch.randn(H * W, D, generator=g)
        total += x.double().sum(0)
        comp.add(x, t, (H, W))
        assert len(comp) <= budget
    out = comp.result()
    assert out.sizes.sum() == out.seen == 300 * H * W
    assert torch.allclose((out.embeds.double() * out.sizes[:, None].double()).sum(0), total, atol=1e-3)
    assert (out.coords[1:, 0] >= out.coords[:-1, 0]).all()  # still in time order


def test_a_static_shot_costs_one_frame():
    g = torch.Generator().manual_seed(2)
    base = torch.randn(H * W, D, generator=g)
    patches = [base + 0.01 * torch.randn(H * W, D, generator=g) for _ in range(50)]
    out = _stream(StreamingTokenCompressor(budget=1000, redundancy=0.95), patches)
    assert len(out) == H * W and out.coords[:, 0].eq(0).all()
    assert out.sizes.tolist() == [50.0] * (H * W)


def test_a_changed_position_is_kept():
    """Only the positions that changed enter the buffer: a token that moved is new information."""
    g = torch.Generator().manual_seed(3)
    base = torch.randn(H * W, D, generator=g)
    moved = base.clone()
    moved[5] = torch.randn(D, generator=g)
    out = _stream(StreamingTokenCompressor(budget=1000, redundancy=0.95), [base, base, moved, moved])
    assert len(out) == H * W + 1
    assert out.coords[-1].tolist() == [2, 5 // W, 5 % W]


def test_the_needle_survives_merging():
    """A small budget over a long, repetitive stream: the one token unlike the rest is kept intact."""
    g = torch.Generator().manual_seed(4)
    background = torch.randn(4, D, generator=g)
    needle = torch.zeros(D)
    needle[0] = 10.0
    comp = StreamingTokenCompressor(budget=24, redundancy=2.0)
    for t in range(200):
        x = background[torch.randint(0, 4, (H * W,), generator=g)] + 0.05 * torch.randn(H * W, D, generator=g)
        if t == 137:
            x[7] = needle
        comp.add(x, t, (H, W))
    out = comp.result()
    hit = (out.coords[:, 0] == 137) & (out.coords[:, 1] == 7 // W) & (out.coords[:, 2] == 7 % W)
    assert hit.sum() == 1
    assert torch.nn.functional.cosine_similarity(out.embeds[hit][0], needle, dim=0) > 0.99


def test_bad_inputs():
    with pytest.raises(ValueError, match="budget"):
        StreamingTokenCompressor(budget=1)
    comp = StreamingTokenCompressor(budget=8)
    with pytest.raises(ValueError, match="3x4 grid"):
        comp.add(torch.zeros(5, D), 0, (H, W))
    with pytest.raises(ValueError, match="no visual tokens"):
        comp.result()


def test_redundancy_one_drops_exact_repeats():
    """redundancy=1.0 means "drop only exact repeats": a token's cosine with itself rounds to just under 1 in
    float32 for about a third of vectors, and that must not keep them."""
    x = torch.randn(H * W, D, generator=torch.Generator().manual_seed(5))
    out = _stream(StreamingTokenCompressor(budget=1000, redundancy=1.0), [x.clone() for _ in range(10)])
    assert len(out) == H * W and out.sizes.tolist() == [10.0] * (H * W)


@pytest.mark.parametrize("redundancy", [0.95, 2.0])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_tokens_are_refused(redundancy, bad):
    """A NaN/inf token would be dropped as a "repeat" or merged into its neighbours, poisoning them."""
    g = torch.Generator().manual_seed(6)
    comp = StreamingTokenCompressor(budget=16, redundancy=redundancy)
    comp.add(torch.randn(H * W, D, generator=g), 0, (H, W))
    x = torch.randn(H * W, D, generator=g)
    x[5, 0] = bad
    with pytest.raises(ValueError, match="NaN/inf"):
        comp.add(x, 1, (H, W))


def test_matching_in_row_blocks_equals_the_whole_matrix():
    """The bipartite matching takes its [n_src, n_dst] cosines a block of rows at a time (the whole matrix is
    4 GB at a 64K-token budget); every row's best match is the same."""
    from videomind.backends.token_compression import _most_similar

    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(37, 16, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(29, 16, generator=g), dim=-1)
    want_v, want_i = (a @ b.T).max(dim=-1)
    for rows in (1, 5, 36, 37, 4096):
        v, i = _most_similar(a, b, rows=rows)
        assert torch.equal(i, want_i), rows                      # a GEMM of other shape may round differently
        torch.testing.assert_close(v, want_v, rtol=0, atol=1e-6)
