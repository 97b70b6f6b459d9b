"""Triton block-sparse kernel vs the fp32 reference and vs dense masked SDPA (TRITON_INTERPRET=1 on CPU)."""
import pytest
import torch
import torch.nn.functional as F

from videomind.kernels import reference as ref
from videomind.kernels.block_sparse_attn import block_sparse_attention
from videomind.kernels.boundary import build_boundary
from videomind.kernels.patterns import build_a_shape, build_grid, build_vertical_slash
from videomind.kernels.permute import invert_permutation

from .sparse_attn_testutil import TOL, rel_rms


def _qkv(n, d, h, hkv, dtype, device):
    q = torch.randn(1, h, n, d, dtype=dtype, device=device)
    k = torch.randn(1, hkv, n, d, dtype=dtype, device=device)
    v = torch.randn(1, hkv, n, d, dtype=dtype, device=device)
    return q, k, v


def _random_lists(h, n, bm, bn, p=0.35, empty_row_block=True):
    M, NB = -(-n // bm), -(-n // bn)
    mask = torch.rand(h, M, NB) < p
    if empty_row_block:
        mask[0, min(1, M - 1)] = False        # a row block without any key block
    from videomind.kernels.patterns import lists_from_block_mask
    return lists_from_block_mask(mask)


def _poisoned(q, lse=True):
    o = torch.full_like(q, float("nan"))
    l = torch.full(q.shape[:3], float("nan"), device=q.device) if lse else None
    return o, l


def _check(o, lse, r, rl, dtype, mask=None):
    assert not torch.isnan(o).any(), "output left unwritten (NaN poison survived)"
    assert rel_rms(o.cpu(), r.cpu()) < TOL[dtype]
    if lse is not None:
        assert torch.equal(torch.isneginf(lse.cpu()), torch.isneginf(rl.cpu()))
        fin = torch.isfinite(rl)
        assert torch.allclose(lse.cpu()[fin.cpu()], rl.cpu()[fin.cpu()], atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("n,d,h,hkv,dtype,bm,bn", [
    (63, 80, 4, 1, torch.float32, 16, 16),      # ragged N, padded head dim, GQA 4:1
    (1000, 64, 4, 1, torch.float16, 64, 64),
    (2049, 128, 2, 2, torch.float32, 64, 32),
    (1000, 80, 2, 1, torch.float16, 32, 64),
])
def test_random_blocks_vs_reference_and_sdpa(n, d, h, hkv, dtype, bm, bn, device):
    q, k, v = _qkv(n, d, h, hkv, dtype, device)
    idx, cnt = (t.to(device) for t in _random_lists(h, n, bm, bn, p=0.25 if n > 1500 else 0.35))
    o, lse = _poisoned(q)
    o, lse = block_sparse_attention(q, k, v, idx, cnt, block_m=bm, block_n=bn, return_lse=True, out=o, lse_out=lse)
    r, rl = ref.block_sparse_attention_ref(q, k, v, idx, cnt, block_m=bm, block_n=bn, return_lse=True)
    _check(o, lse, r, rl, dtype)
    # empty rows are exactly zero
    M = cnt.shape[1]
    empty = torch.isneginf(rl[0])
    assert empty[0, min(1, M - 1) * bm:min(n, (min(1, M - 1) + 1) * bm)].all()
    assert torch.all(o[0][empty] == 0)
    # dense masked SDPA on the non-empty rows
    mask = ref.kernel_mask(idx[None], cnt[None], n, n, bm, bn).to(device)
    e = F.scaled_dot_product_attention(q.float(), k.float().repeat_interleave(h // hkv, 1),
                                       v.float().repeat_interleave(h // hkv, 1), attn_mask=mask)
    keep = ~empty.to(device)
    assert rel_rms(o[0][keep].float(), e[0][keep]) < TOL[dtype]


@pytest.mark.parametrize("nq,nk,d,h,hkv,dtype", [
    (1, 1, 32, 7, 1, torch.float32),            # one token, GQA 7:1
    (5, 5, 100, 2, 2, torch.float16),           # N below one block, padded head dim, 1:1
    (65, 65, 256, 2, 1, torch.float16),         # one past a block, largest head dim
    (30, 100, 96, 2, 1, torch.float32),         # fewer queries than keys (the last 30)
    (1, 100, 192, 3, 1, torch.float32),
])
def test_edge_sizes_dense_causal_vs_sdpa(nq, nk, d, h, hkv, dtype, device):
    """Every key block listed, so the kernel must equal causal SDPA with the queries at the end; sm_scale given."""
    q = torch.randn(1, h, nq, d, dtype=dtype, device=device)
    k, v = (torch.randn(1, hkv, nk, d, dtype=dtype, device=device) for _ in range(2))
    M, NB = -(-nq // 64), -(-nk // 64)
    idx = torch.arange(NB, dtype=torch.int32, device=device).expand(h, M, NB).contiguous()
    cnt = torch.full((h, M), NB, dtype=torch.int32, device=device)
    o, _ = _poisoned(q, False)
    o = block_sparse_attention(q, k, v, idx, cnt, out=o, sm_scale=0.7 / d ** 0.5)
    mask = torch.arange(nk, device=device)[None, :] <= torch.arange(nk - nq, nk, device=device)[:, None]
    e = F.scaled_dot_product_attention(q.float(), k.float().repeat_interleave(h // hkv, 1),
                                       v.float().repeat_interleave(h // hkv, 1), attn_mask=mask, scale=0.7 / d ** 0.5)
    assert not torch.isnan(o).any() and rel_rms(o.float(), e) < TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_vertical_slash_with_columns(dtype, device):
    n, d, h, hkv = 1000, 64, 4, 1
    q, k, v = _qkv(n, d, h, hkv, dtype, device)
    vi = torch.stack([torch.randperm(n)[:200] for _ in range(h)])
    so = torch.stack([torch.cat([torch.arange(3), torch.randperm(n)[:5]]) for _ in range(h)])
    index = build_vertical_slash(n, n, vi, so, 64, 64).to(device)
    assert int(index.col_cnt.max()) > 64          # several column chunks per row block
    o, _ = _poisoned(q, False)
    o = block_sparse_attention(q, k, v, index.block_idx, index.block_cnt, index.col_idx, index.col_cnt, out=o)
    mask = torch.stack([ref.vertical_slash_mask(n, vi[i], so[i]) for i in range(h)])[None].to(device)
    r = ref.masked_attention(q, k, v, mask)
    _check(o, None, r, None, dtype)


def test_a_shape_mode_and_gqa(device):
    n, d, h, hkv, dtype = 1000, 128, 4, 1, torch.float16
    q, k, v = _qkv(n, d, h, hkv, dtype, device)
    sink, window, dense_from = 30, 100, 950
    index = build_a_shape(n, n, h, sink, window, dense_from).to(device)
    o, lse = _poisoned(q)
    o, lse = block_sparse_attention(q, k, v, index.block_idx, index.block_cnt, mask_mode=1, sink=sink,
                                    window=window, dense_from=dense_from, return_lse=True, out=o, lse_out=lse)
    r, rl = ref.masked_attention(q, k, v, ref.a_shape_mask(n, sink, window, dense_from).to(device),
                                 return_lse=True)
    _check(o, lse, r, rl, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_grid_two_pass_lse_merge(dtype, device):
    """Video span with frames of 49 tokens (blocks straddle the text/video edges at 30 and 970).  The grid pass
    reads and writes the original layout through the permutation (gather), the local pass continues its softmax
    (lse_in) in place; the same two passes through explicit permuted copies and merge_lse give the same result."""
    n, d, h, hkv = 1000, 64, 4, 1
    stride, start, end, sink, window = 49, 30, 970, 40, 100
    q, k, v = _qkv(n, d, h, hkv, dtype, device)
    phases = torch.stack([torch.randperm(stride)[:2] for _ in range(h)])
    g = build_grid(n, stride, phases, start, end, sink, window, True, 64, 64)
    am = dict(sink=sink, window=window, dense_from=end)
    local, grid = g.local.to(device), g.grid.to(device)
    perm = g.perm.to(device)
    mask = torch.stack([ref.grid_mask(n, stride, phases[i].tolist(), sink, window, start, end) for i in range(h)])
    r, rl = ref.masked_attention(q, k, v, mask[None].to(device), return_lse=True)

    o, lse = _poisoned(q)
    _, l2 = block_sparse_attention(q, k, v, grid.block_idx, grid.block_cnt, q_pos=perm, k_pos=perm, gather=True,
                                   mask_mode=2, return_lse=True, out=o, **am)
    o, lse = block_sparse_attention(q, k, v, local.block_idx, local.block_cnt, mask_mode=1, return_lse=True,
                                    lse_in=l2, out=o, lse_out=lse, **am)
    _check(o, lse, r, rl, dtype)
    # masking every tile (no skipping of the tiles proven to be entirely allowed) gives the same numbers
    om, lm = _poisoned(q)
    _, l2 = block_sparse_attention(q, k, v, grid.block_idx, grid.block_cnt, q_pos=perm, k_pos=perm, gather=True,
                                   mask_mode=2, return_lse=True, out=om, tile_check=False, **am)
    om, lm = block_sparse_attention(q, k, v, local.block_idx, local.block_cnt, mask_mode=1, return_lse=True,
                                    lse_in=l2, out=om, lse_out=lm, tile_check=False, **am)
    assert torch.allclose(om, o, atol=1e-6, rtol=0) and torch.allclose(lm, lse, atol=1e-6, rtol=0)

    o1, l1 = block_sparse_attention(q, k, v, local.block_idx, local.block_cnt, mask_mode=1, return_lse=True, **am)
    qp, kp, vp = (x.index_select(2, perm) for x in (q, k, v))
    o2, l2 = block_sparse_attention(qp, kp, vp, grid.block_idx, grid.block_cnt, q_pos=perm, k_pos=perm,
                                    mask_mode=2, return_lse=True, **am)
    inv = invert_permutation(perm)
    o, lse = ref.merge_lse(o1, l1, o2.index_select(2, inv), l2.index_select(2, inv))
    _check(o, lse, r, rl, dtype)


def test_head_subset_writes_only_its_heads(device):
    """q_head_idx / kv_head_idx: a launch computes heads 3 and 0 of six (two kv heads) into a shared output and
    leaves the other heads untouched; the reference with the same arguments agrees."""
    n, d, h, hkv, dtype = 200, 64, 6, 2, torch.float32
    q, k, v = _qkv(n, d, h, hkv, dtype, device)
    heads = torch.tensor([3, 0], device=device)
    idx, cnt = (t.to(device) for t in _random_lists(2, n, 32, 32, empty_row_block=False))
    o = torch.full_like(q, float("nan"))
    o, lse = block_sparse_attention(q, k, v, idx, cnt, block_m=32, block_n=32, q_head_idx=heads, return_lse=True,
                                    out=o)
    assert lse.shape == (1, 2, n)
    untouched = [1, 2, 4, 5]
    assert torch.isnan(o[:, untouched]).all()
    r, rl = ref.block_sparse_attention_ref(q, k, v, idx, cnt, block_m=32, block_n=32, q_head_idx=heads,
                                           return_lse=True)
    _check(o[:, heads], lse, r[:, heads], rl, dtype)
    # without out the heads outside the subset are zeros, as in the reference (they held whatever memory the
    # allocator handed back: here a freed NaN tensor of the same size)
    stale = torch.full_like(q, float("nan"))
    del stale
    fresh = block_sparse_attention(q, k, v, idx, cnt, block_m=32, block_n=32, q_head_idx=heads)
    assert torch.all(fresh[:, untouched] == 0) and torch.equal(fresh[:, heads], o[:, heads])
    # head 3 reads kv head 1 (3 // 3): the same as a plain launch on that head alone
    alone = block_sparse_attention(q[:, 3:4], k[:, 1:2], v[:, 1:2], idx[:1], cnt[:1], block_m=32, block_n=32)
    assert rel_rms(o[:, 3:4].cpu(), alone.cpu()) < 1e-6


def test_boundary_permuted_layout(device):
    n_parts = [20, 75, 13, 90, 40]
    mod = torch.cat([torch.full((c,), i % 2) for i, c in enumerate(n_parts)]).long()
    n, d, h, hkv, dtype = mod.numel(), 64, 2, 1, torch.float32
    q, k, v = _qkv(n, d, h, hkv, dtype, device)
    rules = [{(0, 0): "dense", (0, 1): ("sink_local", 10, 0), (1, 1): ("sink_local", 4, 40), (1, 0): "dense"},
             {(1, 1): "dense", (0, 0): "dense"}]
    index, qperm, kperm = build_boundary(mod.to(device), rules, 32, 32)
    mask = torch.stack([ref.boundary_mask(mod, r, 32, 32) for r in rules])[None]
    r = ref.masked_attention(q, k, v, mask.to(device))
    qp, kp, vp = q.index_select(2, qperm), k.index_select(2, kperm), v.index_select(2, kperm)
    o = block_sparse_attention(qp, kp, vp, index.block_idx, index.block_cnt, q_pos=qperm, k_pos=kperm,
                               block_m=32, block_n=32)
    _check(o.index_select(2, invert_permutation(qperm)), None, r, None, dtype)
    # the same layout read and written through the permutation
    o, _ = _poisoned(q, False)
    o = block_sparse_attention(q, k, v, index.block_idx, index.block_cnt, q_pos=qperm, k_pos=kperm, gather=True,
                               block_m=32, block_n=32, out=o)
    _check(o, None, r, None, dtype)


def test_all_rows_empty_gives_zeros(device):
    q, k, v = _qkv(63, 32, 2, 1, torch.float32, device)
    idx = torch.zeros(2, 1, 1, dtype=torch.int32, device=device)
    cnt = torch.zeros(2, 1, dtype=torch.int32, device=device)
    o, lse = _poisoned(q)
    o, lse = block_sparse_attention(q, k, v, idx, cnt, return_lse=True, out=o, lse_out=lse)
    assert torch.all(o == 0) and torch.isneginf(lse).all()


def test_validation_errors(device):
    q, k, v = _qkv(63, 32, 3, 2, torch.float32, device)
    idx = torch.zeros(3, 1, 1, dtype=torch.int32, device=device)
    cnt = torch.ones(3, 1, dtype=torch.int32, device=device)
    with pytest.raises(ValueError, match="multiple"):
        block_sparse_attention(q, k, v, idx, cnt)
    q, k, v = _qkv(63, 32, 2, 1, torch.float32, device)
    with pytest.raises(ValueError, match="block_idx"):
        block_sparse_attention(q, k, v, idx, cnt)
    with pytest.raises(ValueError, match="fp16/bf16/fp32"):
        block_sparse_attention(q, k.half(), v, idx[:2], cnt[:2])
    with pytest.raises(ValueError, match="power of two"):
        block_sparse_attention(q, k, v, idx[:2], cnt[:2], block_m=48)
    with pytest.raises(ValueError, match="gather=True needs"):
        block_sparse_attention(q, k, v, idx[:2], cnt[:2], gather=True)
    with pytest.raises(ValueError, match="pass out as well"):
        block_sparse_attention(q, k, v, idx[:2], cnt[:2], lse_in=torch.zeros(1, 2, 63, device=device))
    with pytest.raises(ValueError, match="head dim"):
        block_sparse_attention(*_qkv(8, 300, 1, 1, torch.float32, device), idx[:1], cnt[:1])
    # more queries than keys has no default layout (the queries are the last Nq of the keys): an error, where the
    # kernel gave the first rows negative positions (empty) and the reference failed on a shape mismatch
    kq = torch.randn(1, 1, 30, 32, device=device)
    with pytest.raises(ValueError, match="Nq <= Nk"):
        block_sparse_attention(q[:, :1], kq, kq, idx[:1], cnt[:1])
    with pytest.raises(ValueError, match="nq <= nk"):
        ref.block_sparse_attention_ref(q[:, :1], kq, kq, idx[:1], cnt[:1])


@pytest.mark.slow
@pytest.mark.parametrize("d", [64, 256])
def test_large_dense_blocks_vs_sdpa(d, device):
    n, h, hkv, dtype = 2049, 4, 1, torch.float16
    q, k, v = _qkv(n, d, h, hkv, dtype, device)
    M = -(-n // 64)
    idx = torch.arange(M, dtype=torch.int32, device=device).expand(h, M, M).contiguous()
    cnt = (torch.arange(M, dtype=torch.int32, device=device) + 1).expand(h, M).contiguous()
    o = block_sparse_attention(q, k, v, idx, cnt)
    e = F.scaled_dot_product_attention(q.float(), k.float().repeat_interleave(4, 1),
                                       v.float().repeat_interleave(4, 1), is_causal=True)
    assert rel_rms(o, e) < TOL[dtype]
