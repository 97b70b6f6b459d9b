"""Per-head dispatch: Triton path == torch reference path, dense heads == SDPA, grid falls back without video."""
import pytest
import torch
import torch.nn.functional as F

from videomind.kernels.mminference import MultimodalContext, sparse_prefill_attention

from .sparse_attn_testutil import rel_rms

PATTERNS = [{"type": "dense"}, {"type": "a_shape", "sink": 16, "window": 40},
            {"type": "vertical_slash", "n_vertical": 20, "n_slash": 30},
            {"type": "grid", "n_phases": 2, "sink": 16, "window": 40, "horizontal": True},
            {"type": "boundary", "rules": {"0,0": "dense", "1,1": ["sink_local", 8, 48], "1,0": "dense",
                                           "0,1": ["sink_local", 30, 0]}},
            {"type": "grid", "n_phases": 3, "sink": 8, "window": 64, "horizontal": False}]


def _inputs(n=300, d=64, h=6, hkv=2, dtype=torch.float32, device="cpu"):
    q = torch.randn(1, h, n, d, dtype=dtype, device=device)
    k = torch.randn(1, hkv, n, d, dtype=dtype, device=device)
    v = torch.randn(1, hkv, n, d, dtype=dtype, device=device)
    mod = torch.zeros(n, dtype=torch.long, device=device)
    mod[25:140] = 1
    mod[150:280] = 1                                   # two video clips with a subtitle between them
    return q, k, v, MultimodalContext.from_modality(mod, tokens_per_frame=23)


def test_triton_path_matches_reference_path(device):
    q, k, v, ctx = _inputs(device=device)
    a = sparse_prefill_attention(q, k, v, PATTERNS, ctx, backend="torch")
    b = sparse_prefill_attention(q, k, v, PATTERNS, ctx, backend="triton")
    assert rel_rms(b, a) < 1e-5
    # one head per launch (the head-subset path every long input takes) gives the same output
    c = sparse_prefill_attention(q, k, v, PATTERNS, ctx, backend="triton", head_chunk=1)
    assert rel_rms(c, b) < 1e-6
    e = F.scaled_dot_product_attention(q[:, :1], k[:, :1], v[:, :1], is_causal=True)
    assert rel_rms(a[:, :1], e) < 1e-6
    # the sparse heads really are sparse (differ from dense attention) but the last row of an A-shape head with a
    # large window equals dense
    assert rel_rms(a[:, 1], F.scaled_dot_product_attention(q[:, 1:2], k[:, :1], v[:, :1], is_causal=True)[:, 0]) > 1e-3


def test_grid_without_video_falls_back_to_a_shape():
    q, k, v, _ = _inputs(n=130, h=2, hkv=1)
    pats = [{"type": "grid", "n_phases": 2, "sink": 16, "window": 40}, {"type": "a_shape", "sink": 16, "window": 40}]
    o = sparse_prefill_attention(q, k, v, pats, MultimodalContext(), backend="torch")
    o2 = sparse_prefill_attention(q[:, [1, 0]], k, v, pats, None, backend="torch")
    assert rel_rms(o[:, 0], o2[:, 1]) < 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU-only: the compiled kernel in bf16 at a realistic "
                    "head shape (the interpreter is too slow there and unreliable in bf16)")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_compiled_kernel_on_searched_patterns_matches_reference(dtype):
    """Qwen2.5-VL-7B head shape (28 heads, 4 KV heads, d 128), every pattern type the search picks, the launch
    defaults used in production: compiled Triton path == fp32 torch reference path."""
    from videomind.kernels.search import search_layer

    n, h, hkv, d, tpf = 4096, 28, 4, 128, 256
    g = torch.Generator(device="cpu").manual_seed(0)
    q = torch.randn(1, h, n, d, generator=g).cuda()
    k = torch.randn(1, hkv, n, d, generator=g).cuda()
    v = torch.randn(1, hkv, n, d, generator=g).cuda()
    pos = torch.arange(n, device="cuda")
    k[0, :, 512:n - 256] += 2.0 * torch.randn(tpf, d, generator=g).cuda()[(pos[512:n - 256] - 512) % tpf]
    mod = torch.zeros(n, dtype=torch.long, device="cuda")
    mod[512:n - 256] = 1
    ctx = MultimodalContext.from_modality(mod, tokens_per_frame=tpf)
    found = search_layer(q[0], k[0], ctx, threshold=0.9, n_rows=64, max_density=1.0)
    patterns = [r["pattern"] for r in found]
    patterns[:4] = [{"type": "grid", "n_phases": 4, "sink": 64, "window": 256, "horizontal": True},
                    {"type": "a_shape", "sink": 64, "window": 256},
                    {"type": "vertical_slash", "n_vertical": 128, "n_slash": 256}, {"type": "dense"}]
    qx, kx, vx = (x.to(dtype) for x in (q, k, v))
    ref = sparse_prefill_attention(qx, kx, vx, patterns, ctx, backend="torch")   # fp32 math inside
    out = sparse_prefill_attention(qx, kx, vx, patterns, ctx, backend="triton")
    assert rel_rms(out.float(), ref) < (2e-2 if dtype == torch.bfloat16 else 2e-3)
    # several chunks per head group: each chunk's lists are built on the side stream while the previous chunk's
    # kernel runs; the result must not change
    again = sparse_prefill_attention(qx, kx, vx, patterns, ctx, backend="triton", head_chunk=2)
    assert torch.equal(again, out)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU-only: host synchronisations exist only with CUDA")
def test_dense_a_shape_grid_and_vertical_slash_heads_never_wait_for_the_gpu():
    """After a first call (Triton compiles, the shared lists are made once), planning and running dense, A-shape,
    grid and vertical-slash heads reads nothing back from the GPU, so the host queues the whole layer while the
    dense heads' SDPA runs (a single read-back there waited 25 ms at 128K tokens on an H100: bench/RESULTS.md)."""
    q, k, v, ctx = _inputs(n=1000, d=64, h=6, hkv=2, dtype=torch.float16, device="cuda")
    pats = [PATTERNS[0], PATTERNS[1], PATTERNS[3], PATTERNS[5], PATTERNS[2], PATTERNS[0]]
    want = sparse_prefill_attention(q, k, v, pats, ctx, backend="triton")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = sparse_prefill_attention(q, k, v, pats, ctx, backend="triton")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(out, want)
    ref = sparse_prefill_attention(q, k, v, pats, ctx, backend="torch")
    assert rel_rms(out.float(), ref) < 2e-3


def test_boundary_lists_are_built_once_per_context(monkeypatch):
    """Boundary lists depend on the modality layout only: every layer after the first reuses them."""
    from videomind.kernels import mminference
    q, k, v, ctx = _inputs()
    calls = []
    real = mminference.build_boundary
    monkeypatch.setattr(mminference, "build_boundary", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    pats = [PATTERNS[4]] * 3 + [PATTERNS[1]] * 3
    first = sparse_prefill_attention(q, k, v, pats, ctx, backend="torch")
    again = sparse_prefill_attention(q, k, v, pats, ctx, backend="torch")
    assert len(calls) == 1 and len(ctx.plans) == 1
    assert torch.equal(first, again)
    fresh = MultimodalContext.from_modality(ctx.modality, tokens_per_frame=23)
    assert torch.equal(sparse_prefill_attention(q, k, v, pats, fresh, backend="torch"), first)
    assert len(calls) == 2


@pytest.mark.parametrize("m", [400, 200])
def test_a_context_for_another_input_is_refused_with_its_sizes(m):
    """A context whose modality is longer failed inside a builder (IndexError / index_select shapes), a shorter one
    ran its grid on the wrong span or failed on mismatched masks; now both name the sizes."""
    q, k, v, _ = _inputs(n=300, h=2, hkv=1)
    mod = torch.zeros(m, dtype=torch.long)
    mod[20:m - 10] = 1
    ctx = MultimodalContext.from_modality(mod, tokens_per_frame=23)
    for pats in ([PATTERNS[3], PATTERNS[1]], [PATTERNS[4], PATTERNS[0]]):
        with pytest.raises(ValueError, match=f"describes {m} tokens, the input has 300"):
            sparse_prefill_attention(q, k, v, pats, ctx, backend="torch")
    span = MultimodalContext(video_start=20, video_end=390, tokens_per_frame=23)
    with pytest.raises(ValueError, match=r"video span \[20, 390\) is not inside the input's 300 tokens"):
        sparse_prefill_attention(q, k, v, [PATTERNS[3], PATTERNS[1]], span, backend="torch")
    with pytest.raises(ValueError, match="2 contexts for a batch of 1"):
        sparse_prefill_attention(q, k, v, [PATTERNS[1]] * 2, [None, None], backend="torch")
    for tpf in (0, -4, 23.0):
        bad = MultimodalContext(video_start=20, video_end=290, tokens_per_frame=tpf)
        with pytest.raises(ValueError, match="tokens_per_frame must be a positive int"):
            sparse_prefill_attention(q, k, v, [PATTERNS[3], PATTERNS[1]], bad, backend="torch")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs: the model on cuda:1 while cuda:0 is "
                    "current (models.device = 'cuda:1')")
def test_the_triton_path_runs_on_the_tensors_gpu_not_the_current_one():
    """Triton launches on the current device: without kernels/device.launch_device every launch site (sparse
    kernel, list compaction, grid estimator) would run in cuda:0's context with cuda:1's pointers."""
    q, k, v, ctx = _inputs(n=1000, d=64, device="cuda:1")
    assert torch.cuda.current_device() == 0
    ref = sparse_prefill_attention(q, k, v, PATTERNS, ctx, backend="torch")
    out = sparse_prefill_attention(q, k, v, PATTERNS, ctx, backend="triton")
    assert rel_rms(out, ref) < 1e-5

