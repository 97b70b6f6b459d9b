"""Frames -> the patch layout a Qwen2-VL / Qwen2.5-VL vision tower reads, one temporal patch at a time.

The stock processor takes a whole video at once; :class:`TransformersVLM` instead streams frames through the
vision tower a few temporal patches at a time (their tokens attend only within their own temporal patch, so the
result is the same) and compresses the tokens as they come. This module holds the per-frame half of that: resize to
a multiple of ``patch_size * merge_size`` under a pixel cap (the processors' ``smart_resize`` rule), normalise, and
flatten into ``[grid_t * grid_h * grid_w, C * temporal_patch_size * patch_size ** 2]`` in the tower's merge order.
``tests/backends/test_vision_input.py`` checks the layout against transformers' own video processor.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The Qwen2-VL video processors' floor on a frame (size["shortest_edge"], qwen-vl-utils' VIDEO_MIN_PIXELS): frames
# are scaled up to at least 128 merged tokens, the smallest the models saw video frames at.
VIDEO_MIN_PIXELS = 128 * 28 * 28
# OpenAI CLIP's statistics, which the Qwen2-VL family was trained with (its processors' defaults).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class PatchSpec:
    """How the vision tower cuts frames: from the model config (sizes) and the processor config (statistics)."""

    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    min_pixels: int = VIDEO_MIN_PIXELS

    @property
    def factor(self) -> int:
        """Frame sides are multiples of this: one merged token covers ``factor x factor`` pixels."""
        return self.patch_size * self.merge_size

    @classmethod
    def from_model(cls, vision_config, folder: str | Path | None = None) -> PatchSpec:
        """Sizes from ``config.vision_config``; mean/std from the folder's (video_)preprocessor_config.json, the
        frame floor from its video processor's config only (the image processor's floor is for images)."""
        mean, std, min_pixels = CLIP_MEAN, CLIP_STD, VIDEO_MIN_PIXELS
        for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
            p = Path(folder) / name if folder else None
            if p is not None and p.is_file():
                try:
                    cfg = json.loads(p.read_text(encoding="utf-8"))
                except ValueError as e:
                    raise ValueError(f"{p} is not valid JSON ({e}): restore it from the model's repository") from e
                mean = tuple(cfg.get("image_mean", mean))
                std = tuple(cfg.get("image_std", std))
                if name.startswith("video"):
                    size = cfg.get("size") if isinstance(cfg.get("size"), dict) else {}
                    min_pixels = int(size.get("shortest_edge") or cfg.get("min_pixels") or min_pixels)
                break
        return cls(int(vision_config.patch_size), int(vision_config.temporal_patch_size),
                   int(vision_config.spatial_merge_size), mean, std, min_pixels)


def fit_size(height: int, width: int, factor: int, max_pixels: int, min_pixels: int | None = None) -> tuple[int, int]:
    """(H, W) multiples of ``factor`` close to the aspect ratio, with ``min_pixels <= H * W <= max_pixels``.

    The rule of the Qwen2-VL processors' ``smart_resize``, so a frame costs the tokens the model was trained with,
    with its one exception: a side held at ``factor`` by an extreme aspect ratio (over ~100:1) leaves the other
    side as long as the ratio asks, up to ~17% over ``max_pixels``.
    """
    if height < 1 or width < 1:
        raise ValueError(f"frame of {height}x{width} pixels")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"frame aspect ratio {max(height, width) / min(height, width):.0f}:1 is over 200:1")
    min_pixels = factor * factor if min_pixels is None else min_pixels
    h, w = round(height / factor) * factor, round(width / factor) * factor
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
        if h * w > max_pixels:  # a floor close to the cap: rounding up broke the cap, which is the user's
            h, w = math.floor(height * beta / factor) * factor, math.floor(width * beta / factor) * factor
    return max(h, factor), max(w, factor)


def check_frame(frame: np.ndarray) -> np.ndarray:
    """``frame`` itself when it is an RGB uint8 array [H, W, 3].

    Raises:
        ValueError: another shape or dtype, saying how to convert it. Other dtypes are refused rather than cast:
            a float frame in [0, 1] would come out black and a uint16 one would wrap around.
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be RGB arrays [H, W, 3], got shape {tuple(frame.shape)}: convert grayscale, "
                         f"RGBA or channels-first frames to RGB [H, W, 3] first")
    if frame.shape[0] < 1 or frame.shape[1] < 1:  # resized, it would be shown as a black picture
        raise ValueError(f"frame of {frame.shape[0]}x{frame.shape[1]} pixels")
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB (0-255), got {frame.dtype}: convert them first, e.g. "
                         f"(frame * 255).round().astype(np.uint8) for floats in [0, 1]")
    return frame


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 [h, w, 3] -> [H, W, 3] (bicubic, as the processors resample); ValueError as :func:`check_frame`."""
    from PIL import Image

    check_frame(frame)
    if frame.shape[:2] == tuple(size):
        return frame
    return np.asarray(Image.fromarray(np.ascontiguousarray(frame)).resize(
        (size[1], size[0]), Image.BICUBIC))


def patchify(frames: np.ndarray, spec: PatchSpec):
    """Sized frames -> (pixel_values, grid_thw) for the vision tower.

    Args:
        frames: uint8 [T, H, W, 3], H and W multiples of ``spec.factor``; T is padded to a multiple of
            ``temporal_patch_size`` by repeating the last frame (as the processors do).
    Returns:
        pixel_values: float32 [grid_t * grid_h * grid_w, 3 * temporal_patch_size * patch_size ** 2];
        grid_thw: (grid_t, grid_h, grid_w) in patches (before the 2x2 merge).
    """
    import torch

    t, h, w, c = frames.shape
    ps, tps, ms = spec.patch_size, spec.temporal_patch_size, spec.merge_size
    if h % spec.factor or w % spec.factor:
        raise ValueError(f"frame size {h}x{w} is not a multiple of {spec.factor}")
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)
    mean = torch.tensor(spec.mean).view(1, 1, 1, 3)
    std = torch.tensor(spec.std).view(1, 1, 1, 3)
    x = ((x - mean) / std).permute(0, 3, 1, 2)  # [T, C, H, W]
    if pad := -t % tps:
        x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)])
    gt, gh, gw = x.shape[0] // tps, h // ps, w // ps
    x = x.reshape(gt, tps, c, gh // ms, ms, ps, gw // ms, ms, ps)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # grid_t, h/ms, w/ms, ms, ms, C, tps, ps, ps
    return x.reshape(gt * gh * gw, c * tps * ps * ps).contiguous(), (gt, gh, gw)
