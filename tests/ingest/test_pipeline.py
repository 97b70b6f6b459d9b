"""End to end: real speech, stream choice, subtitles, chunking, resume, progress events."""

from __future__ import annotations

import re

import numpy as np
import pytest

from videomind.config import Config
from videomind.ingest.decode import open_frames
from videomind.ingest.pipeline import IngestPipeline
from videomind.ingest.progress import ProgressEvent


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z ]+", " ", text.lower()).split())


@pytest.fixture(scope="module")
def jfk_chunks(jfk_video):
    events: list[ProgressEvent] = []
    pipe = IngestPipeline(Config(), progress=events.append)
    return pipe, list(pipe.run(jfk_video)), events


def test_jfk_transcript(jfk_chunks):
    _, chunks, _ = jfk_chunks
    speech = [t for c in chunks for t in c.texts if t.source == "speech"]
    assert "ask not what your country can do for you" in _words(" ".join(t.text for t in speech))
    words = speech[0].meta["words"]
    assert words and all(w["start"] <= w["end"] for w in words)
    assert all(0 <= t.start <= t.end <= 11.5 for t in speech)


def test_chunk_contents(jfk_chunks):
    pipe, chunks, events = jfk_chunks
    assert len(chunks) == 1 and chunks[0].start == 0.0 and chunks[0].end == pytest.approx(11.0, abs=0.2)
    c = chunks[0]
    assert c.keyframes and c.shots and c.notes == []
    for k in c.keyframes:
        assert k.image.dtype == np.uint8 and k.image.ndim == 3 and max(k.image.shape[:2]) <= 384
        assert k.embedding.dtype == np.float32 and abs(float(np.linalg.norm(k.embedding)) - 1) < 1e-4
    stages = {e.stage for e in events}
    assert {"probe", "decode", "asr", "chunk"} <= stages
    assert events[-1].stage == "chunk" and events[-1].done == events[-1].total


def test_nasa_streams_subtitles_and_resampling(nasa):
    cfg = Config()
    cfg.ingest.ocr = False
    pipe = IngestPipeline(cfg)
    info = pipe.probe(nasa)
    assert (info.n_video_streams, info.n_audio_streams, info.n_subtitle_streams) == (2, 2, 2)
    assert (info.width, info.height) == (480, 270)  # the larger of the two video streams
    assert info.audio_stream == 1  # the 16 kHz track, not the 8 kHz one
    chunks = list(pipe.run(nasa, info=info))
    subs = [t for c in chunks for t in c.texts if t.source == "subtitle"]
    assert [s.text for s in subs][:1] == ["NAR: This is the optical and science segment of the Webb"]
    assert len(subs) == 4  # one track only, not both duplicates
    speech = _words(" ".join(t.text for c in chunks for t in c.texts if t.source == "speech"))
    assert "largest clean rooms in the world" in speech or "largest cleanrooms in the world" in speech


def test_chunks_and_resume(silent_video):
    cfg = Config()
    cfg.ingest.ocr = False
    cfg.ingest.chunk_seconds = 5.0
    cfg.ingest.fps = 2.0
    pipe = IngestPipeline(cfg)
    full = list(pipe.run(silent_video))
    assert [(c.index, c.start, c.end) for c in full] == [(0, 0.0, 5.0), (1, 5.0, pytest.approx(8.0, abs=0.1))]
    assert [k.t for k in full[0].keyframes][0] == 0.0
    resumed = list(pipe.run(silent_video, start_at=5.0, first_shot=2))
    assert [(c.index, c.start) for c in resumed] == [(1, 5.0)]
    # a resumed run starts decoding at 5 s; its first frame opens a shot (numbered first_shot) and is a keyframe
    assert [k.t for k in resumed[0].keyframes][0] == 5.0
    assert set(k.t for k in full[1].keyframes) <= set(k.t for k in resumed[0].keyframes)
    assert [s.index for s in resumed[0].shots] == [2]
    # the red shot starts at 4 s: one cut, two shots, the second continuing into chunk 1 under the same index
    assert [s.index for s in full[0].shots] == [0, 1] and full[0].shots[1].start == 4.0
    assert [s.index for s in full[1].shots] == [1]


def test_open_frames(silent_video):
    frames = open_frames(silent_video, 1.0, 3.0, fps=2)
    assert [t for t, _ in frames] == [1.0, 1.5, 2.0, 2.5]
    assert frames[0][1].shape == (240, 320, 3)


def test_stream_frames_reads_one_frame_at_a_time(silent_video):
    """inspect() may stream an hours-long span to a VLM: the frames come lazily, not as one list."""
    import collections.abc

    from videomind.ingest.decode import stream_frames

    it = stream_frames(silent_video, 1.0, 3.0, fps=2, size=160)
    assert isinstance(it, collections.abc.Iterator) and not isinstance(it, list)
    t, img = next(it)
    assert t == 1.0 and img.shape == (120, 160, 3)
    assert [t for t, _ in it] == [1.5, 2.0, 2.5]


def test_early_close_stops_workers(jfk_video):
    import threading

    pipe = IngestPipeline(Config())
    it = pipe.run(jfk_video)
    next(it)
    it.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("videomind-") and t.is_alive()]


def test_captions_only_with_a_vlm(silent_video):
    calls = []

    def cap(images, transcript):
        calls.append(len(images))
        return "a test pattern, then a red screen"

    cfg = Config()
    cfg.ingest.ocr = False
    assert not [t for c in IngestPipeline(cfg, captioner=cap).run(silent_video) for t in c.texts]
    assert calls == []  # no VLM configured: skipped cleanly
    cfg.models.vlm = "Qwen/Qwen2.5-VL-3B-Instruct"
    caps = [t for c in IngestPipeline(cfg, captioner=cap).run(silent_video) for t in c.texts if t.source == "caption"]
    assert caps and caps[0].text.startswith("a test pattern") and calls


def test_sidecar_subtitles_through_the_pipeline(silent_video, tmp_path):
    video = tmp_path / "lecture.mp4"
    video.symlink_to(silent_video)
    (tmp_path / "lecture.srt").write_text("1\n00:00:01,000 --> 00:00:02,500\nWelcome to the lecture\n")
    cfg = Config()
    cfg.ingest.ocr = False
    subs = [t for c in IngestPipeline(cfg).run(video) for t in c.texts if t.source == "subtitle"]
    assert [(s.start, s.end, s.text) for s in subs] == [(1.0, 2.5, "Welcome to the lecture")]


@pytest.mark.parametrize("asr_window", [0.0, 10.0])
def test_speech_across_chunks(jfk_video, asr_window):
    cfg = Config()
    cfg.ingest.ocr = False
    cfg.ingest.chunk_seconds = 5.0
    chunks = list(IngestPipeline(cfg, asr_window=asr_window).run(jfk_video))
    assert [(c.index, c.start) for c in chunks] == [(0, 0.0), (1, 5.0), (2, 10.0)]
    for c in chunks:
        assert all(c.start <= t.start < c.end for t in c.texts if t.source == "speech")
    text = _words(" ".join(t.text for c in chunks for t in c.texts if t.source == "speech"))
    assert "ask not what your country can do for you" in text


def test_resume_does_not_transcribe_speech_twice(jfk_video):
    """The segment "... ask not what your country can do for you." starts in chunk 0 and ends at ~7.9 s, past the
    resume point (5 s): resumed from 5 s, Whisper heard "what your country can do for you" again."""
    cfg = Config()
    cfg.ingest.ocr = False
    cfg.ingest.chunk_seconds = 5.0
    pipe = IngestPipeline(cfg, asr_window=0.0)
    full = list(pipe.run(jfk_video))
    stored = [t for t in full[0].texts if t.source == "speech"]  # what an interrupted run committed
    assert stored and max(t.end for t in stored) > 5.0
    resumed = list(pipe.run(jfk_video, start_at=5.0, first_shot=1, speech_from=max(t.end for t in stored)))
    text = _words(" ".join(t.text for t in stored + [t for c in resumed for t in c.texts if t.source == "speech"]))
    assert text.count("your country") == 2, text  # "... for you, ask what you can do for your country"
    assert text.endswith("ask what you can do for your country")


def test_resume_does_not_store_a_subtitle_twice(silent_video, tmp_path):
    """A cue is stored with the chunk where it starts: the first (1-6 s) belongs to chunk 0 (chunks of 4 s). Resumed
    from 4 s, the resumed run's first chunk took it again as a cue still on screen at its start, so the memory held
    it twice."""
    video = tmp_path / "talk.mp4"
    video.symlink_to(silent_video)
    (tmp_path / "talk.srt").write_text("1\n00:00:01,000 --> 00:00:06,000\nThe password is swordfish.\n\n"
                                       "2\n00:00:05,000 --> 00:00:07,000\nSay it twice.\n")
    cfg = Config()
    cfg.ingest.ocr = False
    cfg.ingest.chunk_seconds = 4.0
    cfg.ingest.fps = 2.0
    pipe = IngestPipeline(cfg)
    stored = list(pipe.run(video))[:1]  # what an interrupted run committed
    resumed = list(pipe.run(video, start_at=4.0, first_shot=2))
    subs = [t.text for c in stored + resumed for t in c.texts if t.source == "subtitle"]
    assert subs == ["The password is swordfish.", "Say it twice."]
