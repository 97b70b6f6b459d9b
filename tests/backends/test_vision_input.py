"""Frames -> the vision tower's patch layout, checked against transformers' own Qwen2-VL video processor."""
import numpy as np
import pytest
import torch

from videomind.backends.vision_input import PatchSpec, fit_size, patchify

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("frames", [2, 5])
def test_patchify_equals_the_qwen2vl_video_processor(frames):
    """Same pixels, same order (temporal patch, merged row, merged column, 2x2 merge, channel, time, 14x14) as
    the processor the model was trained with; an odd frame count pads with the last frame as it does."""
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (frames, 56, 84, 3), dtype=np.uint8)
    ref = Qwen2VLVideoProcessor(do_resize=False, do_sample_frames=False)(
        videos=[torch.from_numpy(video).permute(0, 3, 1, 2)], return_tensors="pt", cap_pixels_per_frame=False)
    got, grid = patchify(video, PatchSpec())
    assert list(grid) == ref["video_grid_thw"][0].tolist() == [(frames + 1) // 2, 4, 6]
    assert got.shape == ref["pixel_values_videos"].shape
    assert torch.allclose(got, ref["pixel_values_videos"], atol=1e-5)


@pytest.mark.parametrize("hw", [(180, 320), (1080, 1920), (27, 500), (1000, 30), (64, 64)])
def test_fit_size_follows_smart_resize(hw):
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import smart_resize

    cap = 448 * 252
    assert fit_size(*hw, 28, cap, min_pixels=28 * 28) == smart_resize(*hw, factor=28, min_pixels=28 * 28,
                                                                      max_pixels=cap)
    h, w = fit_size(*hw, 28, cap)
    assert h % 28 == 0 and w % 28 == 0 and h * w <= cap


def test_bad_frames_are_refused():
    with pytest.raises(ValueError, match="multiple of 28"):
        patchify(np.zeros((2, 30, 56, 3), np.uint8), PatchSpec())
    with pytest.raises(ValueError, match="aspect ratio"):
        fit_size(1, 400, 28, 448 * 252)


@pytest.mark.parametrize("frame", [np.full((30, 40, 3), 0.5), np.full((28, 28, 3), 0.5),
                                   np.full((30, 40, 3), 300, np.uint16)])
def test_frames_that_are_not_uint8_are_refused(frame):
    """Float frames in [0, 1] came out black and uint16 ones wrapped around, whether resized or not."""
    from videomind.backends.vision_input import resize_frame

    with pytest.raises(ValueError, match="uint8"):
        resize_frame(frame, (28, 28))
