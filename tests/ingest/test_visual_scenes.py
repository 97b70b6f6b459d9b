"""The perceptual descriptor (cuts, near-duplicates, query-by-image), the shot detector, the captions hook."""

from __future__ import annotations

import numpy as np
import pytest

from videomind.errors import CapabilityUnavailable, ModelNotFoundError
from videomind.ingest.captions import caption_chunk
from videomind.ingest.scenes import ShotDetector
from videomind.ingest.visual import (
    PERCEPTUAL_DIM,
    PerceptualEmbedder,
    make_embedder,
    near_duplicate_groups,
    perceptual_descriptor,
)
from videomind.types import Chunk, Keyframe, TimedText


def _scene(seed: int, h: int = 216, w: int = 384) -> np.ndarray:
    """A random smooth 'scene': blurred blobs of colour."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
    from PIL import Image

    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def _jitter(img: np.ndarray, seed: int, amount: int = 6) -> np.ndarray:
    """The same scene re-encoded / slightly moved: noise plus a 3-pixel shift."""
    rng = np.random.default_rng(seed)
    out = np.roll(img, 3, axis=1).astype(np.int16) + rng.integers(-amount, amount + 1, img.shape)
    return out.clip(0, 255).astype(np.uint8)


def test_descriptor_shape_and_norm():
    d = perceptual_descriptor(_scene(0))
    assert d.shape == (PERCEPTUAL_DIM,) and d.dtype == np.float32
    assert abs(float(np.linalg.norm(d)) - 1) < 1e-5
    flat = perceptual_descriptor(np.full((100, 50, 3), 128, np.uint8))  # odd shape, no structure: still unit
    assert abs(float(np.linalg.norm(flat)) - 1) < 1e-5 and np.isfinite(flat).all()


def test_near_duplicates_group_and_distinct_scenes_do_not():
    scenes = [_scene(s) for s in range(5)]
    imgs = [img for i, s in enumerate(scenes) for img in (s, _jitter(s, i), _jitter(s, 100 + i))]
    emb = PerceptualEmbedder().embed_images(imgs)
    groups = near_duplicate_groups(emb, 0.95)
    assert groups == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [12, 13, 14]]


def test_query_by_image_finds_its_scene():
    scenes = [_scene(s) for s in range(20)]
    emb = PerceptualEmbedder().embed_images(scenes)
    for i in (0, 7, 19):
        q = PerceptualEmbedder().embed_images([_jitter(scenes[i], 9)])[0]
        assert int(np.argmax(emb @ q)) == i


def test_text_to_image_is_unavailable_with_a_way_to_enable_clip():
    emb = make_embedder("perceptual")
    assert emb.dim == PERCEPTUAL_DIM
    with pytest.raises(CapabilityUnavailable, match="visual_embed"):
        emb.embed_text(["a red car"])


def test_unavailable_clip_is_an_error_not_a_silent_fallback(monkeypatch, tmp_path):
    """A perceptual fallback stored 272-d vectors in a store keyed and marked complete as CLIP: once the weights
    were installed, the store was reopened and never re-embedded, and CLIP query vectors did not match it."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # nothing cached
    with pytest.raises(ModelNotFoundError, match=r"ViT-B-32:openai.*models\.visual_embed=perceptual"):
        make_embedder("ViT-B-32:openai", device="cpu")


def test_ingest_with_unavailable_clip_creates_no_store(monkeypatch, tmp_path, config, silent_video):
    from videomind.api import VideoMind

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    config.models.visual_embed = "ViT-B-32:openai"
    with pytest.raises(ModelNotFoundError, match="visual_embed"):
        VideoMind(config).ingest(silent_video)
    assert not [p for p in config.library_dir.glob("*") if not p.name.startswith(".")]


def test_shot_detector_cuts_keyframes_and_shots():
    a, b = _scene(1), _scene(2)
    frames = [_jitter(a, i, 3) for i in range(25)] + [_jitter(b, i, 3) for i in range(10)]
    det = ShotDetector(max_gap=10.0, min_gap=3.0)
    decisions = [det.push(float(t), perceptual_descriptor(f)) for t, f in enumerate(frames)]
    assert [d.t for d in decisions if d.cut] == [0.0, 25.0]
    assert [(d.t, d.reason) for d in decisions if d.keyframe] == [(0.0, "shot"), (10.0, "gap"), (20.0, "gap"),
                                                                 (25.0, "shot")]
    shots = det.shots_in(0.0, 30.0)
    assert [(s.index, s.start, s.end) for s in shots] == [(0, 0.0, 25.0), (1, 25.0, 30.0)]
    assert [(s.index, s.start, s.end) for s in det.shots_in(30.0, 35.0, final=True)] == [(1, 30.0, 35.0)]


def test_novelty_keyframe_inside_a_shot():
    det = ShotDetector(max_gap=1e9, novelty=0.05, min_gap=3.0)
    base = _scene(3)
    # the picture drifts slowly (no single step is a cut) until it is far from the first keyframe
    frames = [(base.astype(np.float32) * (1 - k / 40) + 255 * (k / 40)).astype(np.uint8) for k in range(30)]
    ds = [det.push(float(t), perceptual_descriptor(f)) for t, f in enumerate(frames)]
    assert [d.t for d in ds if d.cut] == [0.0]
    novel = [d.t for d in ds if d.reason == "novelty"]
    assert novel and all(b - a >= 3.0 for a, b in zip([0.0] + novel, novel))


def test_fixed_threshold():
    assert ShotDetector(threshold=0.3).threshold() == 0.3


def test_captions_hook():
    img = np.zeros((8, 8, 3), np.uint8)
    chunk = Chunk(0, 0.0, 25.0, texts=[TimedText(1.0, 3.0, "hello", "speech")],
                  keyframes=[Keyframe(t, 0, img) for t in (0.0, 5.0, 21.0)])
    seen = []

    def cap(images, transcript):
        seen.append((len(images), transcript))
        return "a dark room"

    out = caption_chunk(chunk, cap, clip_seconds=10.0)
    assert [(c.start, c.end, c.source) for c in out] == [(0.0, 10.0, "caption"), (20.0, 25.0, "caption")]
    assert seen == [(2, "hello"), (1, "")]

    def broken(images, transcript):
        raise RuntimeError("VLM down")

    assert caption_chunk(chunk, broken) == []


def test_local_change_makes_a_keyframe():
    from videomind.ingest.visual import grey_grid

    base = _scene(4)
    captioned = base.copy()
    captioned[180:210, 120:260] = 10  # a dark caption box appears at the bottom: small globally, strong locally
    frames = [base] * 5 + [captioned] * 5
    det = ShotDetector(max_gap=1e9, min_gap=3.0)
    ds = [det.push(float(t), perceptual_descriptor(f), grey_grid(f)) for t, f in enumerate(frames)]
    assert [(d.t, d.reason) for d in ds if d.keyframe] == [(0.0, "shot"), (5.0, "local")]
    assert not any(d.cut for d in ds[1:])
