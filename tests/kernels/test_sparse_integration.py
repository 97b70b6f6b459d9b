"""transformers integration on a tiny Qwen2.5-VL.

The model has RANDOM weights (a tiny Qwen2_5_VLConfig built in tests/tiny_qwen_vl.py, nothing downloaded): logits are
meaningless, but the run exercises the real code paths -- the processor-style inputs (video tokens, mm_token_type_ids,
video_grid_thw), the vision tower, multimodal RoPE, the KV cache and the AttentionInterface dispatch.
"""
import pytest
import torch

transformers = pytest.importorskip("transformers")

from videomind.backends.sparse_attention import (ATTN_NAME, contexts_from_inputs,  # noqa: E402
                                                 enable_sparse_prefill)
from videomind.kernels.search import dense_config, uniform_config  # noqa: E402

from tests.tiny_qwen_vl import VEND, VIDEO_TOKEN, VSTART  # noqa: E402
from tests.tiny_qwen_vl import tiny_model as _tiny_model  # noqa: E402


def _inputs(device="cpu"):
    grid = torch.tensor([[6, 8, 8]])                     # 6 temporal patches of 8x8 -> 16 tokens per frame
    n_vid = int(grid.prod()) // 4
    ids = torch.cat([torch.randint(0, 280, (10,)), torch.tensor([VSTART]), torch.full((n_vid,), VIDEO_TOKEN),
                     torch.tensor([VEND]), torch.randint(0, 280, (25,))])[None]
    inp = dict(input_ids=ids, pixel_values_videos=torch.randn(int(grid.prod()), 3 * 2 * 14 * 14),
               video_grid_thw=grid, mm_token_type_ids=(ids == VIDEO_TOKEN).int() * 2)
    return {k: v.to(device) for k, v in inp.items()}


@torch.no_grad()
def test_dense_patterns_equal_stock_sdpa_logits():
    model = _tiny_model()
    inp = _inputs()
    stock = model(**inp).logits
    h = enable_sparse_prefill(model, dense_config(2, 4), min_q_len=1)
    assert model.config.text_config._attn_implementation == ATTN_NAME
    assert model.config.vision_config._attn_implementation == "sdpa"
    got = model(**inp).logits
    assert h.calls["sparse"] == 2 and h.calls["stock"] == 0
    assert torch.allclose(got, stock, atol=1e-5, rtol=0)
    h.disable()
    assert model.config.text_config._attn_implementation == "sdpa"
    assert torch.equal(model(**inp).logits, stock)


@torch.no_grad()
def test_sparse_pattern_triton_matches_reference_and_decode_uses_stock(device):
    """On a CUDA machine this runs the compiled kernel (the model lives on the GPU); on the CPU, the interpreter."""
    model = _tiny_model().to(device)
    inp = _inputs(device)
    stock = model(**inp).logits
    n = inp["input_ids"].shape[1]
    cfg = uniform_config(2, 4, {"type": "a_shape", "sink": 4, "window": 16})
    cfg["layers"][1] = [{"type": "grid", "n_phases": 2, "sink": 4, "window": 16, "horizontal": True},
                        {"type": "vertical_slash", "n_vertical": 8, "n_slash": 16},
                        {"type": "dense"}, {"type": "a_shape", "sink": 4, "window": 16}]
    h = enable_sparse_prefill(model, cfg, min_q_len=64, backend="torch", block=16)
    ref_logits = model(**inp).logits
    assert h.calls["sparse"] == 2
    h.disable()
    h = enable_sparse_prefill(model, cfg, min_q_len=64, backend="triton", block=16)
    tri = model(**inp).logits
    assert (tri - ref_logits).abs().max() < 1e-4
    assert (tri - stock).abs().max() > 1e-3          # the sparse path really ran
    # short prompts and decode steps go to stock sdpa
    h.settings.calls.update(sparse=0, stock=0)
    out = model.generate(**inp, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == n + 3
    assert h.calls["sparse"] == 2 and h.calls["stock"] == 2 * 2
    h.disable()


def test_contexts_from_processor_token_types():
    model = _tiny_model()
    inp = _inputs()
    (ctx,) = contexts_from_inputs(model.config, inp["input_ids"], inp["mm_token_type_ids"], inp["video_grid_thw"])
    assert (ctx.video_start, ctx.video_end, ctx.tokens_per_frame) == (11, 11 + 96, 16)
    (ctx2,) = contexts_from_inputs(model.config, inp["input_ids"], None, inp["video_grid_thw"])
    assert torch.equal(ctx2.modality, ctx.modality)


def test_a_config_for_another_model_or_malformed_is_refused_when_enabled():
    """It was accepted and failed at the first long prefill (wrong head count: mid-generate, after short prompts
    had run fine), or never (extra layers ignored); a malformed dict failed with a KeyError inside a layer."""
    model = _tiny_model()
    for cfg, match in ((dense_config(2, 8), "8 patterns in layer 0"), (dense_config(3, 4), "3 layers"),
                       (uniform_config(2, 4, {"type": "a_shape", "window": 16}), "layer 0, head 0: .* need 'sink'")):
        with pytest.raises(ValueError, match=match):
            enable_sparse_prefill(model, cfg, min_q_len=64)
        assert model.config.text_config._attn_implementation == "sdpa"
    enable_sparse_prefill(model, dense_config(1, 4), min_q_len=64).disable()   # fewer layers: the rest run dense
