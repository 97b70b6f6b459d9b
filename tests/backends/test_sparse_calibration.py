"""Calibrating the sparse prefill on a real model's own attention (tiny RANDOM-weight Qwen2.5-VL, nothing
downloaded): the search runs on each layer's real post-RoPE q/k during one stock prefill, and its config is one
that enable_sparse_prefill and the VLM engine load."""
import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from tests.tiny_qwen_vl import VIDEO_TOKEN, VSTART, VEND, tiny_model, tiny_tokenizer  # noqa: E402
from videomind.backends.hf_vlm import TransformersVLM  # noqa: E402
from videomind.backends.sparse_attention import calibrate, enable_sparse_prefill  # noqa: E402
from videomind.config import VLMConfig  # noqa: E402
from videomind.kernels.search import load_config, save_config  # noqa: E402


def _inputs():
    grid = torch.tensor([[8, 16, 16]])  # 512 video tokens: long enough for windows below the length
    n_vid = int(grid.prod()) // 4
    ids = torch.cat([torch.randint(0, 280, (10,)), torch.tensor([VSTART]), torch.full((n_vid,), VIDEO_TOKEN),
                     torch.tensor([VEND]), torch.randint(0, 280, (30,))])[None]
    return dict(input_ids=ids, pixel_values_videos=torch.randn(int(grid.prod()), 3 * 2 * 14 * 14),
                video_grid_thw=grid, mm_token_type_ids=(ids == VIDEO_TOKEN).int() * 2)


@torch.no_grad()
def test_calibration_searches_every_layer_and_leaves_the_model_stock(tmp_path):
    model, inp = tiny_model(), _inputs()
    stock = model(**inp).logits
    # any pattern passes (threshold 0, no density cap): each head gets its cheapest candidate
    anything = calibrate(model, inp, threshold=0.0, n_rows=32, block=16, max_density=1.0)
    assert len(anything["layers"]) == 2 and all(len(lay) == 4 for lay in anything["layers"])
    assert all(p["type"] != "dense" for lay in anything["layers"] for p in lay)
    assert anything["threshold"] == 0.0 and all(0 < d < 1 for lay in anything["density"] for d in lay)
    nothing = calibrate(model, inp, threshold=1.01, n_rows=32, block=16)   # no pattern passes: all dense
    assert all(p["type"] == "dense" for lay in nothing["layers"] for p in lay)
    assert model.config.text_config._attn_implementation == "sdpa" and torch.equal(model(**inp).logits, stock)
    save_config(anything, tmp_path / "cfg.json")
    h = enable_sparse_prefill(model, load_config(tmp_path / "cfg.json"), min_q_len=1, backend="torch", block=16)
    assert model(**inp).logits.shape == stock.shape and h.calls["sparse"] == 2
    h.disable()


def test_the_engine_calibrates_on_its_own_compressed_prompt(tmp_path, caplog):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (84, 112, 3), dtype=np.uint8) for _ in range(24)]
    vlm = TransformersVLM(tiny_model(), tiny_tokenizer(), "tiny-random", VLMConfig(frame_pixels=84 * 112,
                                                                                 token_budget=64))
    logits = []  # calibration reads attention only: all [L, vocab] logits would be ~10 GB at 32K tokens (bf16)
    hook = vlm.model.lm_head.register_forward_hook(lambda module, args, out: logits.append(tuple(out.shape)))
    cfg = vlm.calibrate_sparse(frames, [{"role": "user", "content": "w5 w6"}], threshold=1.01)  # all dense
    hook.remove()
    assert logits == [(1, 1, vlm.model.config.text_config.vocab_size)]
    assert len(cfg["layers"]) == 2 and all(p == {"type": "dense"} for lay in cfg["layers"] for p in lay)
    save_config(cfg, tmp_path / "cfg.json")
    sparse = TransformersVLM(vlm.model, vlm.tokenizer, "tiny-random",
                             VLMConfig(frame_pixels=84 * 112, token_budget=64, sparse_config=str(tmp_path / "cfg.json"),
                                       sparse_min_tokens=16))
    assert sparse.chat([{"role": "user", "content": "w5 w6"}], images=frames, max_new_tokens=2).prompt_tokens > 16
    assert sparse.sparse.calls["sparse"] == 2
    # on the CPU the path runs (the reference), and the user is told it is slower than stock attention there
    assert any("slower than stock attention" in r.getMessage() for r in caplog.records)
