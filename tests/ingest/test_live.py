"""Live input: generators of frames and audio blocks; chunks arrive while the source is still running."""

from __future__ import annotations

import re

import numpy as np

from videomind.config import Config
from videomind.ingest.audio import iter_audio
from videomind.ingest.decode import iter_frames
from videomind.ingest.pipeline import AUDIO_MISSING, IngestPipeline
from videomind.ingest.probe import probe


def _cfg(chunk: float = 5.0) -> Config:
    c = Config()
    c.ingest.ocr = False
    c.ingest.chunk_seconds = chunk
    return c


def test_live_frames_and_audio(jfk_video):
    info = probe(jfk_video)
    frames = iter_frames(info, 0, info.duration, fps=10, size=640)  # a "camera" at 10 fps, resampled to 1 fps
    chunks = list(IngestPipeline(_cfg()).run_live(frames, iter_audio(info, block_seconds=0.5)))
    assert [(c.index, c.start) for c in chunks] == [(0, 0.0), (1, 5.0), (2, 10.0)]
    assert 10.5 <= chunks[-1].end <= 15.0  # the last chunk ends where the data ends, not on the grid
    assert [k.t for c in chunks for k in c.keyframes][:1] == [0.0]
    assert all(max(k.image.shape[:2]) <= 384 for c in chunks for k in c.keyframes)
    text = " ".join(t.text for c in chunks for t in c.texts if t.source == "speech").lower()
    assert "ask not what your country" in re.sub(r"[^a-z ]", "", text)


def test_chunks_arrive_before_the_source_ends():
    consumed = []

    def camera():
        for k in range(40):  # 20 s at 2 fps
            consumed.append(k / 2)
            colour = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 220)][k // 10]  # a new shot every 5 s
            yield k / 2, np.full((90, 160, 3), colour, np.uint8)

    it = IngestPipeline(_cfg()).run_live(camera())
    first = next(it)
    assert (first.start, first.end) == (0.0, 5.0) and AUDIO_MISSING in first.notes
    assert max(consumed) < 19.5  # the memory could be updated while frames kept coming
    rest = list(it)
    assert [c.index for c in rest] == [1, 2, 3] and len(first.keyframes) >= 1
    assert [[s.index for s in c.shots] for c in [first, *rest]] == [[0], [1], [2], [3]]


def test_the_last_live_chunk_ends_with_the_data_when_a_sign_is_still_on_screen(media_dir):
    """A sign that appears in the last chunk and is still on screen when the source ends is closed at the end of
    the chunk grid; that OCR end was taken as where the data ends, so a 13 s recording (5 s chunks) was stored as
    15 s long with the sign up to 0:15."""
    from tests.ingest.conftest import ffmpeg, signs_filter

    video = media_dir / "sign_to_the_end.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=white:size=480x270:rate=5:d=13", "-vf", signs_filter([("LOCKER 83", 11, 13)]),
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video))
    info = probe(video)
    c = Config()
    c.ingest.chunk_seconds = 5.0
    chunks = list(IngestPipeline(c).run_live(iter_frames(info, 0, info.duration, fps=5, size=480)))
    assert [c.start for c in chunks] == [0.0, 5.0, 10.0]
    assert 12.0 < chunks[-1].end <= 13.5, chunks[-1].end
    signs = [t for c in chunks for t in c.texts if t.source == "ocr"]
    assert signs and all("83" in t.text and t.end <= chunks[-1].end for t in signs)
