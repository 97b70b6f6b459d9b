"""Bad input: every case is a clear InputError or a documented partial result, never a raw traceback."""

from __future__ import annotations

import pytest

from tests.ingest.conftest import ffmpeg
from videomind.config import Config
from videomind.errors import InputError
from videomind.ingest.pipeline import AUDIO_MISSING, IngestPipeline


def _cfg(**ingest) -> Config:
    c = Config()
    c.ingest.ocr = False
    for k, v in ingest.items():
        setattr(c.ingest, k, v)
    return c


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        IngestPipeline(_cfg()).probe(tmp_path / "nope.mp4")


def test_directory_is_not_a_video(tmp_path):
    with pytest.raises(InputError, match="not a file"):
        IngestPipeline(_cfg()).probe(tmp_path)


def test_zero_length(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        IngestPipeline(_cfg()).probe(p)


def test_text_file_renamed_mp4(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("these are my meeting notes, not a video\n" * 50)
    with pytest.raises(InputError, match="not a readable media file"):
        IngestPipeline(_cfg()).probe(p)


def test_run_raises_input_error_too(tmp_path):
    with pytest.raises(InputError):
        list(IngestPipeline(_cfg()).run(tmp_path / "missing.mp4"))


def test_no_video_stream(audio_only):
    with pytest.raises(InputError, match="no video stream"):
        IngestPipeline(_cfg()).probe(audio_only)


def test_no_audio_stream_is_a_partial_result(silent_video):
    pipe = IngestPipeline(_cfg())
    info = pipe.probe(silent_video)
    assert not info.has_audio and info.audio_stream is None
    chunks = list(pipe.run(silent_video))
    assert chunks and any(AUDIO_MISSING in n for c in chunks for n in c.notes)
    assert not [t for c in chunks for t in c.texts if t.source == "speech"]
    assert sum(len(c.keyframes) for c in chunks) >= 2  # the visual memory is still built


def test_truncated_file_moov_at_end(jfk_video, tmp_path):
    """ffmpeg writes the index (moov) last by default: half a file has no index and cannot be opened."""
    data = jfk_video.read_bytes()
    p = tmp_path / "half.mp4"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt|truncated"):
        IngestPipeline(_cfg()).probe(p)


def test_truncated_file_faststart_gives_partial_result(tmp_path):
    """With the index first (faststart), half a file opens; decoding stops early and a note says where."""
    src = tmp_path / "full.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:d=20", "-f", "lavfi", "-i", "sine=f=440:d=20",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart", str(src))
    data = src.read_bytes()
    p = tmp_path / "half.mp4"
    p.write_bytes(data[: len(data) // 2])
    pipe = IngestPipeline(_cfg(asr=False, chunk_seconds=5.0))
    chunks = list(pipe.run(p))
    assert chunks, "a truncated file still yields what was decodable"
    notes = [n for c in chunks for n in c.notes]
    assert any("truncated" in n or "stopped" in n or "end at" in n for n in notes), notes
    assert sum(len(c.keyframes) for c in chunks) >= 1
