"""A real memory store built from hand-made observations with known sentences at known times."""

from __future__ import annotations

import numpy as np
import pytest

from videomind.config import Config
from videomind.types import Chunk, Keyframe, Shot, TimedText, VideoInfo

SENTENCES = [
    (5.0, "Welcome to the morning cooking show."),
    (40.0, "First we visit the old stone bridge over the river."),
    (75.0, "The secret password is pineapple."),
    (130.0, "Next we talk about the weather in the mountains."),
    (170.0, "Then we admire a bright red balloon in the sky."),
    (215.0, "The train leaves from platform nine at noon."),
]
SIGNS = [(100.0, 108.0, "GATE 42")]


def build_chunks(duration: float = 240.0, chunk: float = 60.0) -> list[Chunk]:
    rng = np.random.default_rng(0)
    chunks = []
    for i, c0 in enumerate(np.arange(0.0, duration, chunk)):
        c1 = min(c0 + chunk, duration)
        texts = [TimedText(t, t + 4.0, s, "speech") for t, s in SENTENCES if c0 <= t < c1]
        texts += [TimedText(a, b, s, "ocr", 0.95) for a, b, s in SIGNS if c0 <= a < c1]
        kfs = []
        for t in np.arange(c0, c1, 20.0):
            emb = rng.normal(size=16).astype(np.float32)
            kfs.append(Keyframe(float(t), i, rng.integers(0, 255, (24, 32, 3), dtype=np.uint8),
                                emb / np.linalg.norm(emb)))
        chunks.append(Chunk(i, float(c0), float(c1), texts, kfs, [Shot(i, float(c0), float(c1))]))
    return chunks


@pytest.fixture(scope="session")
def embedder():
    from videomind.models.text_embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def memory(tmp_path_factory, embedder):
    from videomind.memory.store import VideoMemory

    cfg = Config()
    info = VideoInfo("show.mp4", 240.0, 320, 180, 25.0, True, content_hash="show")
    mem = VideoMemory.create(tmp_path_factory.mktemp("mem") / "show", info, cfg, embedder)
    for c in build_chunks():
        mem.add_chunk(c)
    mem.finalize()
    return mem
