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


def _words(start: float, end: float, text: str) -> list[dict]:
    """Evenly spaced word timings over [start, end], as the ASR stores them in a segment's meta."""
    words = text.split()
    step = (end - start) / len(words)
    return [{"start": round(start + i * step, 3), "end": round(start + (i + 1) * step, 3), "word": w}
            for i, w in enumerate(words)]


TALK_SPEECH = [(0.0, 7.6, "And so my fellow Americans ask not what your country can do for you"),
               (8.3, 10.5, "ask what you can do for your country.")]
TALK_SIGN = (0.0, 12.96, "ASK NOT")  # on screen from the first frame to the last


@pytest.fixture(scope="session")
def talk(tmp_path_factory, embedder):
    """The reviewer's talk.mp4 as memory holds it: a sign on screen the whole 13 s, two ASR segments with word
    times. As of 0:04 the first sentence is still being said: 'And so my fellow Americans ask not' by 3.8 s."""
    from videomind.memory.store import VideoMemory

    info = VideoInfo("talk.mp4", 12.96, 320, 240, 25.0, True, content_hash="talk")
    mem = VideoMemory.create(tmp_path_factory.mktemp("mem") / "talk", info, Config(), embedder)
    texts = [TimedText(a, b, s, "speech", 0.75, {"words": _words(a, b, s)}) for a, b, s in TALK_SPEECH]
    texts.append(TimedText(*TALK_SIGN, "ocr", 0.99))
    mem.add_chunk(Chunk(0, 0.0, 12.96, texts, [], [Shot(0, 0.0, 12.96)]))
    mem.finalize()
    return mem
