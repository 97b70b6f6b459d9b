"""The local VLM engine on a CUDA GPU in bf16, with the compiled Triton sparse prefill (GPU-only).

Same tiny RANDOM-weight Qwen2.5-VL as tests/backends/test_vlm_engine.py; run on the GPU machine by
bench/kernels/gpu_session.sh. On the CPU these tests are skipped: the CPU tests cover the same code in fp32.
"""
import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU-only: the engine in bf16 on CUDA")

from tests.tiny_qwen_vl import VIDEO_TOKEN, tiny_model, tiny_tokenizer  # noqa: E402
from videomind.backends.hf_vlm import TransformersVLM  # noqa: E402
from videomind.backends.vision_input import PatchSpec, patchify  # noqa: E402
from videomind.config import VLMConfig  # noqa: E402

QUESTION = [{"role": "user", "content": "w5 w6 w7 w8"}]
KEEP_ALL = dict(frame_pixels=84 * 112, token_budget=100_000, redundancy=2.0)


def _frames(n):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (84, 112, 3), dtype=np.uint8) for _ in range(n)]


@torch.no_grad()
def test_bf16_engine_matches_the_stock_forward():
    model = tiny_model().to("cuda", torch.bfloat16)
    vlm = TransformersVLM(model, tiny_tokenizer(), "tiny-random", VLMConfig(**KEEP_ALL))
    frames = _frames(2)
    visual, _ = vlm.encode_frames(frames)
    prompt = vlm.build_prompt(QUESTION, visual)
    ours = model(inputs_embeds=prompt.embeds[None], position_ids=prompt.positions[:, None].cuda()).logits.float()
    ids = torch.tensor(vlm._prompt_ids(QUESTION, with_video=True))
    pixels, grid = patchify(np.stack(frames), PatchSpec())
    k = int((ids == VIDEO_TOKEN).nonzero())
    ids = torch.cat([ids[:k], torch.full((int(np.prod(grid)) // 4,), VIDEO_TOKEN), ids[k + 1:]])[None].cuda()
    stock = model(input_ids=ids, pixel_values_videos=pixels.cuda(), video_grid_thw=torch.tensor([grid]).cuda(),
                  mm_token_type_ids=(ids == VIDEO_TOKEN).int() * 2,
                  second_per_grid_ts=torch.tensor([2.0]).cuda()).logits.float()
    rel = (ours - stock).pow(2).mean().sqrt() / stock.pow(2).mean().sqrt()
    assert rel < 2e-2, float(rel)


def test_long_prompt_prefills_through_the_triton_kernels(tmp_path):
    from videomind.kernels.search import save_config, uniform_config

    path = tmp_path / "sparse.json"
    save_config(uniform_config(2, 4, {"type": "a_shape", "sink": 4, "window": 16}), path)
    model = tiny_model().to("cuda", torch.bfloat16)
    vlm = TransformersVLM(model, tiny_tokenizer(), "tiny-random",
                          VLMConfig(**{**KEEP_ALL, "sparse_config": str(path), "sparse_min_tokens": 128}))
    c = vlm.chat(QUESTION, images=_frames(40), max_new_tokens=4)
    assert c.prompt_tokens >= 128 and vlm.sparse.calls["sparse"] == 2  # one prefill, both layers sparse
    assert c.completion_tokens == 0 or vlm.sparse.calls["stock"] >= 2  # decode steps: the stock kernel
