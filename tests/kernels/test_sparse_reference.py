"""The fp32 reference itself: dense masked attention, LSE merge and permutations."""
import torch
import torch.nn.functional as F

from videomind.kernels import reference as ref
from videomind.kernels.permute import (grid_permutation, grid_phase_ranges, invert_permutation,
                                       modality_permutation, modality_ranges, permute_tokens, unpermute_tokens)

from .sparse_attn_testutil import rel_rms


def test_masked_attention_matches_sdpa_causal_gqa():
    q = torch.randn(1, 8, 70, 32)
    k = torch.randn(1, 2, 70, 32)
    v = torch.randn(1, 2, 70, 32)
    pos = torch.arange(70)
    o = ref.masked_attention(q, k, v, ref.causal_mask(pos, pos))
    e = F.scaled_dot_product_attention(q, k.repeat_interleave(4, 1), v.repeat_interleave(4, 1), is_causal=True)
    assert rel_rms(o, e) < 1e-6


def test_empty_rows_are_zero_with_neg_inf_lse():
    q, k, v = torch.randn(1, 1, 5, 16), torch.randn(1, 1, 5, 16), torch.randn(1, 1, 5, 16)
    mask = torch.ones(5, 5, dtype=torch.bool)
    mask[2] = False
    o, lse = ref.masked_attention(q, k, v, mask, return_lse=True)
    assert torch.all(o[0, 0, 2] == 0) and torch.isneginf(lse[0, 0, 2])
    assert torch.isfinite(o).all()


def test_merge_lse_equals_union():
    q, k, v = torch.randn(1, 2, 40, 16), torch.randn(1, 2, 40, 16), torch.randn(1, 2, 40, 16)
    m1 = torch.rand(40, 40) < 0.3
    m2 = (torch.rand(40, 40) < 0.3) & ~m1
    m2[7] = False
    m1[7] = False                     # a row empty in both parts
    m1[9] = False                     # a row empty in one part only
    o1, l1 = ref.masked_attention(q, k, v, m1, return_lse=True)
    o2, l2 = ref.masked_attention(q, k, v, m2, return_lse=True)
    o, l = ref.merge_lse(o1, l1, o2, l2)
    e, le = ref.masked_attention(q, k, v, m1 | m2, return_lse=True)
    assert rel_rms(o, e) < 1e-6
    assert torch.equal(torch.isneginf(l), torch.isneginf(le))
    assert torch.allclose(l[torch.isfinite(l)], le[torch.isfinite(le)], atol=1e-5)


def test_grid_permutation_round_trip_and_phase_runs():
    n, stride, start, end = 103, 7, 5, 96
    perm = grid_permutation(n, stride, start, end)
    assert torch.equal(torch.sort(perm).values, torch.arange(n))
    x = torch.randn(1, 2, n, 3)
    assert torch.equal(unpermute_tokens(permute_tokens(x, perm), perm), x)
    inv = invert_permutation(perm)
    assert torch.equal(perm[inv], torch.arange(n)) and torch.equal(inv[perm], torch.arange(n))
    assert torch.equal(perm[:start], torch.arange(start)) and torch.equal(perm[end:], torch.arange(end, n))
    for p, (b, e) in enumerate(grid_phase_ranges(n, stride, start, end).tolist()):
        seg = perm[b:e]
        assert torch.all((seg - start) % stride == p) and torch.all(seg[1:] > seg[:-1])
        assert e - b == int(((torch.arange(start, end) - start) % stride == p).sum())


def test_modality_permutation_round_trip():
    mod = torch.tensor([0, 0, 1, 1, 1, 0, 2, 1, 0, 0, 2])
    perm = modality_permutation(mod)
    assert torch.equal(mod[perm], torch.sort(mod, stable=True).values)
    for m, (b, e) in modality_ranges(mod).items():
        seg = perm[b:e]
        assert torch.all(mod[seg] == m) and torch.all(seg[1:] > seg[:-1])
    x = torch.randn(len(mod), 4)
    assert torch.equal(unpermute_tokens(permute_tokens(x, perm, 0), perm, 0), x)


def test_kernels_package_imports_nothing_of_ours():
    import ast
    import pathlib
    root = pathlib.Path(ref.__file__).parent
    allowed = {"torch", "triton", "math", "os", "json", "dataclasses", "__future__", "typing", "argparse",
               "pathlib", "time", "sys", "functools", "itertools", "contextlib"}
    for f in root.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:          # relative import inside kernels/
                    continue
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{f.name} imports {name}"


def test_package_import_is_light():
    import subprocess
    import sys
    code = "import sys, videomind.kernels; print('torch' in sys.modules, 'triton' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
