"""The Triton column-mass estimator (the grid estimator's GPU path) vs its plain-torch reference.

On the CPU the kernel runs in Triton's interpreter (conftest sets TRITON_INTERPRET=1); on a GPU, compiled."""
import pytest
import torch
from .sparse_attn_testutil import TOL, rel_rms

from videomind.kernels.estimate import last_q_column_mass
from videomind.kernels.patterns import column_mass, estimate_grid


def last_q_column_mass_ref(q_last, k, kv_head_idx, start=0, end=None):
    """The torch path of the grid estimator (patterns.column_mass), on all of ``q_last``'s rows."""
    end = k.shape[1] if end is None else end
    return column_mass(q_last, k, q_last.shape[1], start, end, kv_head_idx.cpu(), backend="torch")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("nk,d,L,start,end", [(63, 64, 63, 0, None), (1000, 80, 64, 100, 900),
                                              (2049, 128, 100, 7, 2049), (300, 64, 5, 0, 150)])
def test_column_mass_matches_reference(device, dtype, nk, d, L, start, end):
    H, hkv = 8, 2                                         # GQA 4:1, heads mapped out of order
    kvh = torch.tensor([1, 0, 0, 1, 1, 1, 0, 0])
    q = torch.randn(H, L, d, dtype=dtype, device=device)
    k = torch.randn(hkv, nk, d, dtype=dtype, device=device)
    k[0, 40] = q[1, -1] * 3                               # one peaked column, so the mass is not flat
    got = last_q_column_mass(q, k, kvh.to(device), start, end, block_n=64)
    want = last_q_column_mass_ref(q, k, kvh.to(device), start, end)
    assert got.shape == want.shape == (H, (end or nk) - start)
    assert rel_rms(got.cpu(), want.cpu()) < TOL[dtype]
    if start == 0 and end is None:
        # every row's probabilities sum to one, so the columns' mass sums to the number of rows
        torch.testing.assert_close(got.sum(-1).cpu(), torch.full((H,), float(L)), rtol=1e-4, atol=1e-4)


def test_column_mass_ignores_strided_and_noncontiguous_keys(device):
    """K as the model hands it over ([B, Hkv, N, D] sliced, heads not adjacent in memory)."""
    q = torch.randn(4, 64, 64, device=device)
    k_full = torch.randn(1, 300, 2, 64, device=device).transpose(1, 2)          # [1, 2, 300, 64], strided heads
    kvh = torch.tensor([0, 0, 1, 1], device=device)
    got = last_q_column_mass(q, k_full[0], kvh, block_n=32)
    assert rel_rms(got.cpu(), last_q_column_mass_ref(q, k_full[0], kvh).cpu()) < TOL[torch.float32]


def test_column_mass_rejects_bad_ranges(device):
    q, k, kvh = torch.randn(2, 8, 16), torch.randn(1, 32, 16), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="column range"):
        last_q_column_mass(q, k, kvh, 10, 40)
    with pytest.raises(ValueError, match="head dims"):
        last_q_column_mass(q, torch.randn(1, 32, 8), kvh)


def test_grid_estimator_same_phases_on_both_backends(device):
    n, d, start, end, stride = 1200, 64, 80, 1130, 50
    q = torch.randn(4, 64, d, device=device) * 0.1
    k = torch.randn(2, n, d, device=device) * 0.1
    pos = torch.arange(start, end)
    for u, phase in enumerate((5, 17)):                   # kv head 0 (query heads 0, 1) phase 5; kv head 1 phase 17
        k[u, pos[(pos - start) % stride == phase]] = q[2 * u:2 * u + 2].mean((0, 1)) * 60
    kvh = torch.tensor([0, 0, 1, 1])
    st_t, ph_t = estimate_grid(q, k, start, end, 2, stride, kv_head_idx=kvh, backend="triton")
    st_r, ph_r = estimate_grid(q, k, start, end, 2, stride, kv_head_idx=kvh, backend="torch")
    assert st_t == st_r == stride
    assert ph_t[:, 0].tolist() == ph_r[:, 0].tolist() == [5, 5, 17, 17]
    assert torch.equal(ph_t.sort(-1).values, ph_r.sort(-1).values)
