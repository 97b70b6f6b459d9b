"""Growing-file input: a recording that is still being written is ingested as it grows.

The "recorder" is a thread that appends the bytes of a real MPEG-TS file (the JFK speech muxed with generated
frames) in pieces, the way OBS or ffmpeg write a recording; the reader must see the same frames and audio as a
reader of the finished file, and the memory must be queryable before the recording ends.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from videomind.errors import InputError
from videomind.ingest.audio import SAMPLE_RATE, iter_audio
from videomind.ingest.decode import iter_frames
from videomind.ingest.follow import GrowingFile
from videomind.ingest.probe import probe

from .conftest import ffmpeg


@pytest.fixture(scope="module")
def recording(jfk_video, tmp_path_factory) -> Path:
    """The JFK clip (11 s of speech over generated frames) as MPEG-TS, the usual container of live recordings."""
    out = tmp_path_factory.mktemp("rec") / "full.ts"
    ffmpeg("-i", str(jfk_video), "-c:v", "libx264", "-g", "10", "-c:a", "aac", "-f", "mpegts", str(out))
    return out


@pytest.fixture(scope="module")
def long_recording(jfk_video, tmp_path_factory) -> Path:
    """The JFK clip three times (33 s), long enough for chunks to land while the recording goes on."""
    out = tmp_path_factory.mktemp("rec") / "long.ts"
    ffmpeg("-stream_loop", "2", "-i", str(jfk_video), "-c:v", "libx264", "-g", "10", "-c:a", "aac", "-f", "mpegts",
           str(out))
    return out


class Recorder(threading.Thread):
    """Appends ``src`` to ``dst`` in ``pieces`` writes, ``pause`` seconds apart."""

    def __init__(self, src: Path, dst: Path, pieces: int = 8, pause: float = 0.4):
        super().__init__(daemon=True)
        self.data, self.dst, self.pieces, self.pause = src.read_bytes(), dst, pieces, pause
        self.finished_at: float | None = None

    def run(self) -> None:
        step = -(-len(self.data) // self.pieces)
        with open(self.dst, "wb") as f:
            for i in range(0, len(self.data), step):
                f.write(self.data[i:i + step])
                f.flush()
                time.sleep(self.pause)
        self.finished_at = time.monotonic()


def test_frames_and_audio_of_a_growing_file_equal_those_of_the_finished_file(recording, tmp_path):
    dst = tmp_path / "rec.ts"
    rec = Recorder(recording, dst)
    rec.start()
    src = GrowingFile(dst, poll=0.1, idle_timeout=1.5, settle=1.0)
    got = {}

    def read(name, it):
        got[name] = [(x, time.monotonic()) for x in it]

    threads = [threading.Thread(target=read, args=("frames", src.frames(fps=2, size=160))),
               threading.Thread(target=read, args=("audio", src.audio()))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    rec.join()
    info = probe(recording)
    want = list(iter_frames(info, 0, info.duration, fps=2, size=160))
    frames = [f for f, _ in got["frames"]]
    assert [t for t, _ in frames] == [t for t, _ in want]          # every grid instant once, none twice
    for (_, a), (_, b) in zip(frames, want):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0
    assert got["frames"][0][1] < rec.finished_at                   # frames came while it was still recording
    blocks = [b for b, _ in got["audio"]]
    for a, b in zip(blocks, blocks[1:]):                            # contiguous across passes
        assert abs(b.start - a.end) < 2.0 / SAMPLE_RATE
    full = np.concatenate([b.samples for b in iter_audio(info)])
    mine = np.concatenate([b.samples for b in blocks])
    assert abs(len(mine) - len(full)) < SAMPLE_RATE * 0.05
    n = min(len(mine), len(full))
    assert np.corrcoef(mine[:n], full[:n])[0, 1] > 0.99


def test_follow_builds_a_queryable_memory_while_recording(long_recording, tmp_path, config, monkeypatch):
    from videomind.api import VideoMind

    config.ingest.ocr = False
    config.ingest.chunk_seconds = 3.0
    dst = tmp_path / "rec.ts"
    rec = Recorder(long_recording, dst, pieces=16, pause=1.0)     # 33 s of content written over 16 s
    rec.start()
    vm = VideoMind(config)
    seen = []
    for memory in vm.follow(dst, poll=0.2, idle_timeout=2.0):
        seen.append((memory.resume_point, memory.is_complete, rec.finished_at))
        if len(seen) == 1:
            assert memory.search("country", k=3) is not None     # queryable between chunks
    rec.join()
    assert seen[0][2] is None                                      # the first chunk landed before the end
    assert seen[-1][1] and not seen[0][1]
    assert memory.is_complete and 31.0 <= memory.info.duration <= 34.5
    text = " ".join(t.text for t in memory.texts_between(0, 60, ["speech"])).lower()
    assert "ask not what your country" in re.sub(r"[^a-z ]", "", text)
    # following the finished recording again reopens the complete memory instead of recomputing it
    again = list(vm.follow(dst, poll=0.1, idle_timeout=0.2))
    assert len(again) == 1 and again[0].directory == memory.directory
    # and so does asking about it (ingest) once the recording is finished: no second memory of the same file
    import videomind.ingest.pipeline as pipeline

    def boom(*a, **k):
        raise AssertionError("the followed recording was ingested again")

    monkeypatch.setattr(pipeline.IngestPipeline, "run", boom)
    assert vm.ingest(dst).directory == memory.directory


def test_a_plain_mp4_still_recording_is_reported_with_the_fix(jfk_video, tmp_path):
    part = tmp_path / "rec.mp4"
    ffmpeg("-i", str(jfk_video), "-c", "copy", str(tmp_path / "full.mp4"))
    data = (tmp_path / "full.mp4").read_bytes()
    part.write_bytes(data[: len(data) // 3])                      # no index (moov) yet: unreadable
    with pytest.raises(InputError, match="MPEG-TS"):
        GrowingFile(part, poll=0.1, idle_timeout=0.5).wait_readable()


def test_cli_follow_ingests_a_finished_recording(recording, tmp_path, capsys):
    from videomind.cli import main

    rc = main(["ingest", str(recording), "--follow", "--idle-timeout", "0.3", "--set", "ingest.ocr=false",
               "--set", f"library={tmp_path / 'lib'}"])
    out = capsys.readouterr().out
    assert rc == 0 and "(complete)" in out and "memory:" in out


def test_stop_ends_following_without_waiting_for_the_idle_timeout(recording, tmp_path):
    dst = tmp_path / "rec.ts"
    dst.write_bytes(recording.read_bytes())
    stop = threading.Event()
    src = GrowingFile(dst, poll=0.1, idle_timeout=3600, stop=stop)
    it = src.frames(fps=1, size=64)
    first = next(it)
    stop.set()
    t = time.monotonic()
    rest = list(it)
    assert time.monotonic() - t < 10 and first[0] == 0.0 and len(rest) >= 9   # one last full pass, then done


def test_a_recording_that_never_appears_is_an_input_error(tmp_path):
    """Nothing to read is not an MP4 that cannot be read yet: the error says so, without the container advice."""
    with pytest.raises(InputError, match="does not exist after waiting 0.3 s: check the path") as e:
        GrowingFile(tmp_path / "nothing.ts", poll=0.05, idle_timeout=0.3).wait_readable()
    assert "MP4" not in str(e.value)
    (tmp_path / "empty.ts").touch()
    with pytest.raises(InputError, match="is still empty after waiting"):
        GrowingFile(tmp_path / "empty.ts", poll=0.05, idle_timeout=0.3).wait_readable()
    with pytest.raises(InputError, match="is a directory"):
        GrowingFile(tmp_path, poll=0.05, idle_timeout=0.3).wait_readable()


def test_ingest_stream_from_generators_is_queryable_while_it_runs(jfk_video, config):
    """A camera-like generator (10 fps) plus audio blocks: memory after every chunk, finalized at the end."""
    from videomind.api import VideoMind

    config.ingest.ocr = False
    config.ingest.chunk_seconds = 5.0
    info = probe(jfk_video)
    consumed = []

    def camera():  # paced like a real camera, at twice real time
        for t, img in iter_frames(info, 0, info.duration, fps=10, size=320):
            consumed.append(t)
            time.sleep(0.05)
            yield t, img

    vm = VideoMind(config)
    seen = []
    for memory in vm.ingest_stream(camera(), iter_audio(info, block_seconds=0.5), name="desk-cam"):
        seen.append((memory.is_complete, max(consumed)))
        memory.search("country", k=3)
    assert not seen[0][0] and seen[0][1] < info.duration - 1          # the first chunk came mid-stream
    assert seen[-1][0] and 10.0 <= memory.info.duration <= 12.0
    text = " ".join(t.text for t in memory.texts_between(0, 60, ["speech"])).lower()
    assert "ask not what your country" in re.sub(r"[^a-z ]", "", text)
    with pytest.raises(InputError, match="already exists"):
        next(vm.ingest_stream(iter([(0.0, np.zeros((8, 8, 3), np.uint8))]), name="desk-cam"))
    with pytest.raises(InputError, match="no frames"):
        next(vm.ingest_stream(iter([]), name="empty"))


def _piped_recording(src: Path, out: Path, fmt: str, *codec: str) -> Path:
    """``src`` re-encoded to ``fmt`` through a pipe, as a recorder writes it: no duration in the header (a Matroska
    or WebM file gets one only when its writer can seek back at the end)."""
    import subprocess

    ffmpeg("-version")  # skips when ffmpeg is absent
    with open(out, "wb") as f:
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(src), *codec, "-f", fmt, "-"],
                       stdout=f, check=True)
    return out


@pytest.mark.parametrize("fmt", ["mpegts", "matroska", "webm"])
def test_following_a_finalized_recording_that_grew_says_so(recording, jfk_video, tmp_path, caplog, fmt):
    """A finalized memory is not reopened for appending: when the recording has grown since, the user is told
    that the rest was not ingested and how to get it, instead of silently answering from the shorter memory.
    Matroska and WebM state no duration while they grow (probing does not measure them then): it used to be
    MPEG-TS only."""
    from videomind.api import VideoMind
    from videomind.config import Config
    from videomind.ingest.follow import recorded_length

    if fmt == "mpegts":
        full = recording
    else:
        codec = (("-c:v", "libx264", "-g", "10", "-c:a", "aac") if fmt == "matroska" else
                 ("-c:v", "libvpx", "-g", "10", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"))
        full = _piped_recording(jfk_video, tmp_path / f"full.{fmt}", fmt, *codec)
    cfg = Config.from_dict({"library": str(tmp_path / "lib")}, ["ingest.ocr=false", "ingest.chunk_seconds=5"])
    data = full.read_bytes()
    dst = tmp_path / f"rec.{fmt}"
    dst.write_bytes(data[: len(data) // 3])
    first = list(VideoMind(cfg).follow(dst, poll=0.1, idle_timeout=0.3))[-1]
    assert first.is_complete and first.info.duration < 8.0
    with caplog.at_level("WARNING", logger="videomind.api"):
        same = list(VideoMind(cfg).follow(dst, poll=0.1, idle_timeout=0.3))
    assert [m.directory for m in same] == [first.directory] and "not ingested" not in caplog.text  # not grown
    dst.write_bytes(data)                                           # the same recording, grown to 11 s
    assert fmt == "mpegts" or probe(dst, measure=False).duration == 0.0  # what the warning cannot rely on
    with caplog.at_level("WARNING", logger="videomind.api"):
        again = list(VideoMind(cfg).follow(dst, poll=0.1, idle_timeout=0.3))
    assert [m.directory for m in again] == [first.directory]
    assert "the rest is not ingested" in caplog.text and "ingest it as a file" in caplog.text
    assert recorded_length(probe(dst, measure=False), since=first.info.duration) == pytest.approx(11.0, abs=0.3)


def test_a_resumed_follow_does_not_store_the_straddling_speech_twice(recording, tmp_path, monkeypatch):
    """Speech is stored with the chunk where it starts and may run past that chunk's end (3.2-7.9 s here, chunks
    of 3 s). Following again after an interruption at 6 s used to transcribe 6-7.9 s again and store it twice."""
    import videomind.ingest.pipeline as pipeline
    from videomind.api import VideoMind
    from videomind.config import Config

    cfg = Config.from_dict({"library": str(tmp_path / "lib")}, ["ingest.ocr=false"])
    cfg.ingest.chunk_seconds = 3.0  # short, to cut the speech mid-sentence
    dst = tmp_path / "rec.ts"
    dst.write_bytes(recording.read_bytes())
    real, calls = pipeline.IngestPipeline.run_live, []

    def spy(self, *args, **kw):
        calls.append(kw)
        return real(self, *args, **kw)

    monkeypatch.setattr(pipeline.IngestPipeline, "run_live", spy)
    first = VideoMind(cfg).follow(dst, poll=0.1, idle_timeout=0.3)
    memory = [next(first) for _ in range(2)][-1]
    first.close()                                                   # interrupted after two committed chunks
    stored = memory.texts_between(0, 1e9, ["speech"])
    assert memory.resume_point == 6.0 and not memory.is_complete
    assert max(t.end for t in stored) > 6.5, stored                # a segment straddles the interruption
    memory = list(VideoMind(cfg).follow(dst, poll=0.1, idle_timeout=0.3))[-1]
    assert memory.is_complete and calls[1]["start"] == 6.0
    speech = memory.texts_between(0, 1e9, ["speech"])
    assert all(b.start >= a.end - 0.5 for a, b in zip(speech, speech[1:])), speech   # nothing heard twice
    words = re.sub(r"[^a-z ]", "", " ".join(t.text for t in speech).lower()).split()
    assert words.count("country") == 2 and words[-3:] == ["for", "your", "country"], words
    assert calls[1].get("speech_from") == max(t.end for t in stored)


def test_a_new_recording_at_the_same_path_gets_a_memory_of_its_own(tmp_path):
    """A followed recording is keyed by its path and first 4 KiB, which two recordings made with the same settings
    that start dark share: once the first had been followed, following the second written to the same path, or
    asking about it, returned the first one's memory (its pictures, its speech)."""
    from PIL import Image

    from videomind.api import VideoMind
    from videomind.config import Config

    def record(colour: str) -> bytes:
        out = tmp_path / f"{colour}.ts"
        ffmpeg("-f", "lavfi", "-i", "color=black:s=160x96:r=10:d=2", "-f", "lavfi", "-i",
               f"color={colour}:s=160x96:r=10:d=4", "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]",
               "-c:v", "libx264", "-g", "10", "-f", "mpegts", str(out))
        return out.read_bytes()

    def colour(memory) -> str:  # of the last keyframe (the cut to colour at 2 s is one)
        kf = memory.keyframes_between(0.0, 6.0)[-1]
        return "rgb"[int(np.argmax(np.asarray(Image.open(kf.thumbnail)).reshape(-1, 3).mean(axis=0)))]

    green, red = record("green"), record("red")
    assert green[:4096] == red[:4096] and green != red
    vm = VideoMind(Config.from_dict({"library": str(tmp_path / "lib")}, ["ingest.ocr=false", "ingest.chunk_seconds=3"]))
    dst = tmp_path / "rec.ts"
    dst.write_bytes(green)
    first = list(vm.follow(dst, poll=0.1, idle_timeout=0.3))[-1]
    assert first.is_complete and colour(first) == "g"
    dst.write_bytes(red)                                            # the next recording, to the same file
    assert colour(vm.ingest(dst)) == "r"
    second = list(vm.follow(dst, poll=0.1, idle_timeout=0.3))[-1]
    assert second.is_complete and colour(second) == "r" and second.directory != first.directory
    dst.write_bytes(green)                                          # each memory is still that recording's
    assert [m.directory for m in vm.follow(dst, poll=0.1, idle_timeout=0.3)] == [first.directory]
    assert vm.ingest(dst).directory == first.directory


def test_a_followed_recording_is_stored_as_long_as_it_is(recording, tmp_path):
    """The last live chunk ended a sampling period after its last sampled frame: a followed 30.0 s recording was
    stored as 31.0 s long (its chunks, shots and duration), up to one period past the file's end."""
    from videomind.api import VideoMind
    from videomind.config import Config

    cfg = Config.from_dict({"library": str(tmp_path / "lib")}, ["ingest.ocr=false", "ingest.chunk_seconds=5"])
    dst = tmp_path / "rec.ts"
    dst.write_bytes(recording.read_bytes())
    memory = list(VideoMind(cfg).follow(dst, poll=0.1, idle_timeout=0.3))[-1]
    length = probe(recording).duration
    assert memory.is_complete and memory.info.duration == pytest.approx(length, abs=0.05), length
    assert memory.resume_point == memory.info.duration
    assert max(e["end"] for scale in ("clip", "segment", "chapter") for e in memory.events(scale)) <= length + 0.05


CUES = [(1.0, 2.0, "Welcome to the launch"), (2.5, 4.0, "The mirror unfolds"), (6.2, 8.0, "Orbit reached")]


@pytest.fixture(scope="module")
def subtitled_recording(tmp_path_factory) -> Path:
    """9 s of pictures and a tone with a SubRip track of CUES, written to Matroska through a pipe as a recorder
    writes it (no duration, no index)."""
    import subprocess

    d = tmp_path_factory.mktemp("subrec")
    srt = d / "cues.srt"
    srt.write_text("\n".join(f"{i}\n00:00:{a:06.3f} --> 00:00:{b:06.3f}\n{text}\n".replace(".", ",")
                             for i, (a, b, text) in enumerate(CUES, 1)))
    ffmpeg("-version")  # skips when ffmpeg is absent
    out = d / "full.mkv"
    with open(out, "wb") as f:
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                        "testsrc=size=160x120:rate=10:d=9", "-f", "lavfi", "-i", "sine=f=440:d=9", "-i", str(srt),
                        "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-g", "10", "-pix_fmt", "yuv420p",
                        "-c:a", "aac", "-c:s", "srt", "-f", "matroska", "-"], stdout=f, check=True)
    return out


def _cues(memory) -> list[tuple[float, str]]:
    return [(round(t.start, 1), t.text) for t in memory.texts_between(0, 1e9, ["subtitle"])]


def _follow_cfg(tmp_path):
    from videomind.config import Config

    return Config.from_dict({"library": str(tmp_path / "lib")},
                            ["ingest.ocr=false", "ingest.asr=false", "ingest.chunk_seconds=3"])


def test_the_subtitles_of_a_growing_recording_are_read_again_as_it_grows(subtitled_recording, tmp_path):
    """Each read sees the cues written so far; one is read again once a chunk ends past what the last one covered."""
    from videomind.ingest.follow import RecordingSubtitles

    data = subtitled_recording.read_bytes()
    dst = tmp_path / "rec.mkv"
    dst.write_bytes(data[: len(data) // 2])                       # about 4.5 s of the 9 written
    subs = RecordingSubtitles(GrowingFile(dst, poll=0.05, settle=1.0))
    assert [(round(c.start, 1), c.text) for c in subs(3.0)] == [(a, text) for a, _, text in CUES[:2]]
    assert 3.0 <= subs.covered < 6.2
    dst.write_bytes(data)
    assert [(round(c.start, 1), c.text) for c in subs(6.0)] == [(a, text) for a, _, text in CUES]
    assert subs.covered >= 7.5                                    # the rest of the file: no read per chunk


def test_a_followed_recording_keeps_its_subtitles_and_stores_them_once_when_resumed(subtitled_recording, tmp_path):
    """follow() stored no subtitles (run_live was given none): the NASA clip remuxed to MKV kept 3 of the 7 texts
    a file ingest stores, without a note, though ingest.subtitles is on. Its cues are now stored with the chunk
    where each starts; the one still on screen where following was interrupted (2.5-4.0 s, at 3 s) once."""
    from videomind.api import VideoMind

    dst = tmp_path / "rec.mkv"
    dst.write_bytes(subtitled_recording.read_bytes())
    cfg = _follow_cfg(tmp_path)
    first = VideoMind(cfg).follow(dst, poll=0.1, idle_timeout=0.3)
    memory = next(first)
    first.close()                                                   # interrupted after the first chunk
    assert memory.resume_point == 3.0 and _cues(memory) == [(a, text) for a, _, text in CUES[:2]]
    memory = list(VideoMind(cfg).follow(dst, poll=0.1, idle_timeout=0.3))[-1]
    assert memory.is_complete and _cues(memory) == [(a, text) for a, _, text in CUES]
    assert memory.notes() == []


def test_a_followed_recording_takes_its_sidecar_subtitles_as_a_file_does(subtitled_recording, tmp_path):
    from videomind.api import VideoMind

    dst = tmp_path / "rec.mkv"
    dst.write_bytes(subtitled_recording.read_bytes())
    (tmp_path / "rec.en.srt").write_text("1\n00:00:05,000 --> 00:00:06,000\nFrom the sidecar\n")
    memory = list(VideoMind(_follow_cfg(tmp_path)).follow(dst, poll=0.1, idle_timeout=0.3))[-1]
    assert memory.is_complete and _cues(memory) == [(5.0, "From the sidecar")]
