"""Index builders vs their dense masks (exact equality of the mask the kernel will apply)."""
import pytest
import torch

from videomind.kernels import reference as ref
from videomind.kernels.boundary import build_boundary
from videomind.kernels.patterns import (build_a_shape, build_grid, build_vertical_slash, detect_stride,
                                        diagonal_mass, estimate_grid, estimate_vertical_slash, grid_block_mask,
                                        grid_list_capacity, lists_from_block_mask, slash_list_capacity)
from videomind.kernels.permute import invert_permutation


def _no_repeats(index):
    for h in range(index.block_idx.shape[0]):
        for m in range(index.block_idx.shape[1]):
            c = int(index.block_cnt[h, m])
            lst = index.block_idx[h, m, :c]
            assert lst.unique().numel() == c


def test_lists_from_block_mask():
    bm = torch.rand(3, 5, 9) < 0.4
    bm[0, 1] = False
    idx, cnt = lists_from_block_mask(bm)
    back = torch.zeros_like(bm)
    for h in range(3):
        for m in range(5):
            back[h, m, idx[h, m, :cnt[h, m]].long()] = True
            assert torch.all(idx[h, m, :cnt[h, m]].diff() > 0)
    assert torch.equal(back, bm)


def test_lists_with_capacity_are_padded_and_checked():
    bm = torch.rand(4, 6, 11) < 0.5
    bm[1, 2] = True                                   # one full row: the capacity must be at least 11
    tight_idx, tight_cnt = lists_from_block_mask(bm)
    idx, cnt = lists_from_block_mask(bm, capacity=13)
    assert idx.shape == (4, 6, 13) and torch.equal(cnt, tight_cnt)
    assert torch.equal(idx[..., :tight_idx.shape[-1]], tight_idx) and not idx[..., tight_idx.shape[-1]:].any()
    with pytest.raises(ValueError, match="capacity"):
        lists_from_block_mask(bm, capacity=10)


def test_compact_rows_kernel_matches_torch(device):
    """The Triton compaction (the GPU path of lists_from_block_mask with a capacity; the CPU interpreter here) vs
    the torch path: awkward widths, empty and full rows, several column chunks per row (block 16)."""
    from videomind.kernels.compact import compact_rows
    for nb, density in ((1, 0.5), (63, 0.3), (200, 0.05), (1000, 0.6)):
        bm = torch.rand(2, 9, nb) < density
        bm[0, 0] = False
        bm[1, 3] = True
        cap = nb + 2
        want_idx, want_cnt = lists_from_block_mask(bm, capacity=cap)
        for block in (16, 1024):
            idx, cnt = compact_rows(bm.to(device), cap, block=block)
            assert torch.equal(cnt.cpu(), want_cnt) and torch.equal(idx.cpu(), want_idx), (nb, block)
    # values: list values[column] (the gathered key positions of vertical lines)
    bm = torch.rand(5, 300) < 0.3
    vals = torch.randperm(10_000)[:300].sort().values
    want_idx, want_cnt = lists_from_block_mask(bm, capacity=300, values=vals)
    idx, cnt = compact_rows(bm.to(device), 300, vals.to(device), block=64)
    assert torch.equal(cnt.cpu(), want_cnt) and torch.equal(idx.cpu(), want_idx)
    for r in range(5):
        assert torch.equal(want_idx[r, :want_cnt[r]].long(), vals[bm[r]])
    with pytest.raises(ValueError, match="bool"):
        compact_rows(torch.zeros(2, 3, dtype=torch.int32), 3)


def test_a_shape_lists_are_built_once_and_shared():
    a = build_a_shape(1000, 1000, 3, 64, 100, 900, 64, 32)
    b = build_a_shape(1000, 1000, 5, 64, 100, 900, 64, 32)
    assert a.block_idx.data_ptr() == b.block_idx.data_ptr() and b.block_idx.stride(0) == 0
    assert torch.equal(a.block_idx[0], b.block_idx[4]) and torch.equal(a.block_cnt[2], b.block_cnt[0])


@pytest.mark.parametrize("horizontal", [False, True])
def test_grid_list_capacity_bounds_every_row(horizontal):
    """The capacity is derived from the sizes alone; it must bound the longest row for any phases, and without
    horizontal lines stay far below the number of key blocks."""
    g = torch.Generator().manual_seed(1)
    for n, stride, start, end, p, bn in ((4096, 256, 512, 3840, 4, 64), (2049, 37, 100, 2000, 3, 32),
                                         (1000, 1, 10, 990, 1, 64), (777, 500, 0, 777, 5, 16),
                                         (8192, 64, 0, 8192, 8, 64)):
        cap = grid_list_capacity(n, stride, p, start, end, horizontal, bn)
        for _ in range(3):
            phases = torch.stack([torch.randperm(stride, generator=g)[:p] for _ in range(2)])
            bm = grid_block_mask(n, stride, phases, start, end, 64, bn, horizontal)
            assert int(bm.sum(-1).max()) <= cap, (n, stride, p)
        if not horizontal and n == 4096:
            assert cap < (n // bn) // 2


@pytest.mark.parametrize("n,sink,window,dense_from,bm,bn", [
    (63, 4, 16, None, 16, 16), (1000, 64, 100, 900, 64, 32), (2049, 1, 200, None, 64, 64), (130, 0, 1, 129, 32, 64),
    (300, 300, 0, None, 64, 64)])
def test_a_shape_builder_exact(n, sink, window, dense_from, bm, bn):
    idx = build_a_shape(n, n, 2, sink, window, dense_from, bm, bn)
    _no_repeats(idx)
    got = ref.kernel_mask(idx.block_idx, idx.block_cnt, n, n, bm, bn, mask_mode=1, sink=sink, window=window,
                          dense_from=dense_from)
    want = ref.a_shape_mask(n, sink, window, dense_from)
    assert torch.equal(got[0], want) and torch.equal(got[1], want)


def test_a_shape_builder_with_prefix_keys():
    nq, nk, sink, window = 70, 200, 8, 33
    idx = build_a_shape(nq, nk, 1, sink, window, None, 32, 32)
    got = ref.kernel_mask(idx.block_idx, idx.block_cnt, nq, nk, 32, 32, mask_mode=1, sink=sink, window=window)[0]
    qp, kp = torch.arange(nk - nq, nk), torch.arange(nk)
    assert torch.equal(got, ref.causal_mask(qp, kp) & ref.a_shape_term(qp, kp, sink, window))


@pytest.mark.parametrize("n,bm,bn,n_slash", [(63, 16, 16, 3), (1000, 64, 64, 20), (2049, 64, 32, 40),
                                              (2049, 64, 32, 3), (777, 16, 64, 5)])
def test_vertical_slash_builder_exact(n, bm, bn, n_slash):
    """Exact masks; with few slash lines the key-block lists are narrower than all key blocks, and the CPU path of
    the list builder raises if a row exceeds slash_list_capacity."""
    H = 3
    v = torch.stack([torch.randperm(n)[:max(3, n // 20)] for _ in range(H)])
    v[1, :2] = v[1, 2]                                   # repeated vertical columns are listed once
    s = torch.stack([torch.randperm(n)[:n_slash] for _ in range(H)])
    s[0, 0] = 0
    s[2, -1] = -1                                        # padding offsets mark nothing
    idx = build_vertical_slash(n, n, v, s, bm, bn)
    assert idx.block_idx.shape[-1] == slash_list_capacity(n, n, n_slash, bm, bn)
    _no_repeats(idx)
    got = ref.kernel_mask(idx.block_idx, idx.block_cnt, n, n, bm, bn, idx.col_idx, idx.col_cnt)
    for h in range(H):
        assert torch.equal(got[h], ref.vertical_slash_mask(n, v[h], s[h], bm, bn))
    # columns never fall inside the row block's listed key blocks (no double counting in the kernel)
    for h in range(H):
        for m in range(idx.block_cnt.shape[1]):
            blocks = set(idx.block_idx[h, m, :idx.block_cnt[h, m]].tolist())
            cols = idx.col_idx[h, m, :idx.col_cnt[h, m]].tolist()
            assert len(set(cols)) == len(cols)
            assert not any(c // bn in blocks for c in cols)


def test_vertical_slash_padding_columns_mark_nothing():
    """Columns -1 and >= n are padding for the builder and the reference alike (the reference used to index with
    them, so -1 wrapped round and marked column n - 1), and more columns than keys, repeated, are each listed
    once."""
    n = 100
    v = torch.tensor([[-1, 5, 5, 130], [0, 99, 99, -1]])
    s = torch.tensor([[-1, -1, 50], [0, 500, -1]])
    idx = build_vertical_slash(n, n, v, s, 16, 16)
    got = ref.kernel_mask(idx.block_idx, idx.block_cnt, n, n, 16, 16, idx.col_idx, idx.col_cnt)
    for h in range(2):
        assert torch.equal(got[h], ref.vertical_slash_mask(n, v[h], s[h], 16, 16))
    assert not ref.vertical_slash_mask(n, v[0], s[0], 16, 16)[:, n - 1].any()
    every = build_vertical_slash(n, n, torch.arange(2 * n)[None] % n, torch.tensor([[0]]), 16, 16)
    assert torch.equal(ref.kernel_mask(every.block_idx, every.block_cnt, n, n, 16, 16, every.col_idx,
                                       every.col_cnt)[0], torch.tril(torch.ones(n, n, dtype=torch.bool)))


@pytest.mark.parametrize("n,stride,start,end,sink,window,horizontal,bm", [
    (300, 7, 10, 280, 8, 20, True, 16), (1000, 49, 30, 970, 64, 100, True, 64),
    (513, 16, 0, 513, 4, 32, False, 32)])
def test_grid_builder_exact_and_disjoint(n, stride, start, end, sink, window, horizontal, bm):
    phases = torch.stack([torch.randperm(stride)[:3], torch.randperm(stride)[:2].repeat(2)[:3]])
    g = build_grid(n, stride, phases, start, end, sink, window, horizontal, bm, bm)
    _no_repeats(g.grid)
    p1 = ref.kernel_mask(g.local.block_idx, g.local.block_cnt, n, n, bm, bm, mask_mode=1, sink=sink,
                         window=window, dense_from=end)
    p2p = ref.kernel_mask(g.grid.block_idx, g.grid.block_cnt, n, n, bm, bm, q_pos=g.perm, k_pos=g.perm,
                          mask_mode=2, sink=sink, window=window, dense_from=end)
    inv = invert_permutation(g.perm)
    p2 = p2p[:, inv][:, :, inv]
    assert not (p1 & p2).any()
    for h in range(2):
        want = ref.grid_mask(n, stride, phases[h].tolist(), sink, window, start, end, horizontal, bm, bm)
        assert torch.equal(p1[h] | p2[h], want)


@pytest.mark.parametrize("permute_cols", [True, False])
def test_boundary_builder_exact(permute_cols):
    # interleaved text / frames / subtitles, boundaries not aligned with the 32-token blocks
    mod = torch.cat([torch.zeros(20), torch.ones(75), torch.zeros(13), torch.ones(90), torch.zeros(40)]).long()
    n = mod.numel()
    if permute_cols:
        rules = [{(0, 0): "dense", (0, 1): ("sink_local", 10, 0), (1, 1): ("sink_local", 4, 40),
                  (1, 0): ("sink_local", 0, 0)},
                 {(0, 0): ("sink_local", 2, 16), (1, 1): "dense", (0, 1): "none", (1, 0): "dense"}]
    else:
        rules = [{(0, 0): "dense", (0, 1): "dense", (1, 1): ("sink_local", 4, 40), (1, 0): ("sink_local", 4, 40)},
                 {(1, 0): "dense", (1, 1): "dense"}]
    idx, qperm, kperm = build_boundary(mod, rules, 32, 32, permute_cols)
    _no_repeats(idx)
    got_p = ref.kernel_mask(idx.block_idx, idx.block_cnt, n, n, 32, 32, q_pos=qperm, k_pos=kperm)
    for h in range(2):
        got = torch.zeros(n, n, dtype=torch.bool)
        got[qperm[:, None], kperm[None, :]] = got_p[h]
        assert torch.equal(got, ref.boundary_mask(mod, rules[h], 32, 32, permute_cols))


def test_estimators_find_planted_structure():
    n, d = 600, 32
    q = torch.randn(2, n, d) * 0.1
    k = torch.randn(1, n, d) * 0.1
    k[0, 77] = q[0, -64:].mean(0) * 400            # a strong vertical line for head 0
    v_idx, s_off = estimate_vertical_slash(q, k, 8, 70, last_q=64, sink=4, local=64)
    assert 77 in v_idx[0].tolist() and set(range(4)) <= set(v_idx[1].tolist())
    assert set(range(64)) <= set(s_off[0].tolist())
    # grid: keys of phase 5 within stride-25 frames are attractive
    start, end, stride = 50, 550, 25
    k2 = torch.randn(1, n, d) * 0.1
    pos = torch.arange(start, end)
    hot = pos[(pos - start) % stride == 5]
    k2[0, hot] = q[0, -64:].mean(0) * 100
    st, ph = estimate_grid(q[:1], k2, start, end, 1, None)
    assert st == stride and ph[0, 0] == 5
    assert detect_stride(torch.tensor([1.0 if i % 10 == 3 else 0.0 for i in range(400)]), min_stride=4) == 10


@pytest.mark.parametrize("L,nk", [(64, 600), (63, 63), (5, 300), (64, 65), (1, 10)])
def test_diagonal_mass_sums_every_probability_on_its_offset(L, nk):
    """The skewed-view slash sums equal an explicit loop over (query row, key), causal entries only."""
    g = torch.Generator().manual_seed(L * 1000 + nk)
    p = torch.rand(3, L, nk, generator=g)
    qpos = torch.arange(nk - L, nk)
    p.masked_fill_(torch.arange(nk)[None, None, :] > qpos[None, :, None], 0.0)
    want = torch.zeros(3, nk, dtype=torch.float64)
    for r in range(L):
        for c in range(int(qpos[r]) + 1):
            want[:, int(qpos[r]) - c] += p[:, r, c].double()
    got = diagonal_mass(p)
    assert got.shape == (3, nk) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("nq,nk,bm,bn", [(63, 63, 16, 16), (1000, 1000, 64, 32), (70, 200, 32, 64), (130, 517, 64, 16),
                                         (2049, 2049, 32, 64), (5, 300, 16, 16), (300, 1000, 16, 64)])
def test_fast_slash_block_mask_equals_naive(nq, nk, bm, bn):
    from videomind.kernels.patterns import slash_block_mask, slash_block_mask_naive
    for _ in range(3):
        s = torch.cat([torch.randint(0, nk + 5, (max(2, nk // 15),)), torch.tensor([0, nk - 1, -3])])
        assert torch.equal(slash_block_mask(nq, nk, s, bm, bn), slash_block_mask_naive(nq, nk, s, bm, bn))
