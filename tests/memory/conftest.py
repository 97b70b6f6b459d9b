"""Hand-made observation streams for memory tests: known sentences at known times, random keyframes."""

from __future__ import annotations

import numpy as np
import pytest

from videomind.config import Config
from videomind.types import Chunk, Keyframe, Shot, TimedText, VideoInfo

FILLER = [
    "We start by preheating the oven to two hundred degrees.",
    "The weather in the mountains changes very quickly in spring.",
    "Our team reviewed the quarterly budget on Monday morning.",
    "A good running shoe should fit snugly around the heel.",
    "The river floods the valley almost every autumn.",
    "Chess openings reward careful study of the centre squares.",
    "The orchestra tuned their instruments before the concert.",
    "Most houseplants prefer indirect sunlight and little water.",
    "The train to the coast leaves every hour on the hour.",
    "Volcanic soil is unusually rich in minerals.",
    "The goalkeeper dived to the left and saved the penalty.",
    "Bread dough needs time to rise in a warm kitchen.",
    "The museum closes early on public holidays.",
    "Honeybees communicate the location of flowers by dancing.",
    "The bridge was repainted after the winter storms.",
    "Our cat sleeps on the windowsill all afternoon.",
    "Students compared the two poems in small groups.",
    "The satellite orbits the earth every ninety minutes.",
    "Fresh basil loses its flavour when it is cooked too long.",
    "The lighthouse keeper wrote letters every evening.",
    "A steady breeze pushed the sailboat across the bay.",
    "The library added a new section for graphic novels.",
    "Glaciers carve deep valleys over thousands of years.",
    "The bakery sells out of croissants before nine.",
]

NEEDLE = "The secret password for the vault is pineapple."
NEEDLE_T = (125.0, 129.0)
SIGN = "BAKERY ROSALIND OPEN"
SIGN_T = (340.0, 344.0)
CURIE = [(52.0, 56.0, "Marie Curie discovered radium in Paris."),
         (57.0, 61.0, "Marie Curie later won a second Nobel Prize."),
         (402.0, 406.0, "Years later Marie Curie returned to Paris to build a laboratory.")]


def make_stream(duration: float = 600.0, chunk_s: float = 60.0, seed: int = 0, kf_dim: int = 16,
                img: tuple[int, int] = (24, 32)):
    """Chunks of a synthetic video: a filler sentence every 5 s, a needle, an on-screen sign, an entity."""
    rng = np.random.default_rng(seed)
    texts: list[TimedText] = []
    special = [(NEEDLE_T[0], NEEDLE_T[1], NEEDLE, "speech")] + [(s, e, t, "speech") for s, e, t in CURIE]
    taken = {int(s // 5) for s, _, _, _ in special}
    for i in range(int(duration // 5)):
        if i in taken:
            continue
        t = i * 5.0 + 0.5
        texts.append(TimedText(t, t + 4.0, FILLER[(i * 7 + seed) % len(FILLER)], "speech", 0.9))
    texts += [TimedText(s, e, txt, src, 0.95) for s, e, txt, src in special]
    for t in range(int(SIGN_T[0]), int(SIGN_T[1])):
        texts.append(TimedText(float(t), t + 1.0, SIGN, "ocr", 0.9))
    texts.sort(key=lambda x: x.start)
    # shots: cuts at irregular times
    cuts = [0.0]
    while cuts[-1] < duration:
        cuts.append(cuts[-1] + float(rng.uniform(15, 45)))
    shots = [Shot(i, cuts[i], min(cuts[i + 1], duration)) for i in range(len(cuts) - 1) if cuts[i] < duration]
    chunks = []
    n = int(np.ceil(duration / chunk_s))
    for ci in range(n):
        c0, c1 = ci * chunk_s, min((ci + 1) * chunk_s, duration)
        ct = [t for t in texts if c0 <= (t.start + t.end) / 2 < c1]
        cs = [Shot(s.index, max(s.start, c0), min(s.end, c1)) for s in shots if s.end > c0 and s.start < c1]
        kfs = []
        for s in cs:
            t = (s.start + s.end) / 2
            v = rng.standard_normal(kf_dim).astype(np.float32)
            kfs.append(Keyframe(t, s.index, rng.integers(0, 255, (*img, 3), dtype=np.uint8), v / np.linalg.norm(v)))
        chunks.append(Chunk(ci, c0, c1, ct, kfs, cs))
    return chunks, shots


def info_for(name: str = "talk.mp4", duration: float = 600.0, content_hash: str = "abc123") -> VideoInfo:
    return VideoInfo(path=f"/videos/{name}", duration=duration, width=640, height=360, fps=25.0, has_audio=True,
                     content_hash=content_hash)


class CountingEmbedder:
    """Wraps an embedder and counts calls and texts."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.calls = 0
        self.n_texts = 0
        self.fail_after: int | None = None  # raise on the call after this many calls

    @property
    def dim(self):
        return self.inner.dim

    def embed(self, texts):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("simulated crash inside the embedder")
        self.calls += 1
        self.n_texts += len(texts)
        return self.inner.embed(texts)


class HashEmbedder:
    """Deterministic bag-of-words hashing embedder (for pure-logic tests; no model)."""

    name = "hash-bow"
    dim = 64

    def embed(self, texts):
        import re
        import zlib

        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, zlib.crc32(w.encode()) % self.dim] += 1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
            if not n:
                out[i, 0] = 1.0
        return out


@pytest.fixture(scope="session")
def minilm():
    from videomind.models.text_embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture()
def embedder(minilm):
    return CountingEmbedder(minilm)


@pytest.fixture()
def config():
    return Config()


@pytest.fixture(scope="session")
def built_store(tmp_path_factory, minilm):
    """One complete 10-minute store shared by the read-only tests."""
    from videomind.memory.library import Library

    root = tmp_path_factory.mktemp("lib")
    lib = Library(root)
    emb = CountingEmbedder(minilm)
    mem = lib.open_or_create(info_for(), Config(), emb)
    chunks, shots = make_stream()
    for c in chunks:
        mem.add_chunk(c)
    mem.finalize()
    return lib, mem, emb, shots
