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
    with pytest.raises(InputError, match="not a readable media file") as e:
        IngestPipeline(_cfg()).probe(p)
    msg = str(e.value)
    assert msg.count(str(p)) == 1 and "Errno" not in msg and "Invalid data" in msg  # FFmpeg's reason, once


def test_run_raises_input_error_too(tmp_path):
    with pytest.raises(InputError):
        list(IngestPipeline(_cfg()).run(tmp_path / "missing.mp4"))


def test_no_video_stream(audio_only):
    with pytest.raises(InputError, match="no video stream"):
        IngestPipeline(_cfg()).probe(audio_only)


@pytest.mark.parametrize("name, codec, art", [
    ("talk.m4a", "aac", ""),
    ("talk_art.m4a", "aac", "png"),
    ("song_art.mp3", "libmp3lame", "mjpeg"),
    ("my talk (final).m4a", "aac", ""),  # the command's file names were not quoted: a syntax error in a shell
])
def test_audio_only_says_how_to_make_it_a_video(tmp_path, name, codec, art):
    """An .m4a or .mp3 said "no video stream (found: audio, video)" when it had cover art, and never what to do.
    The advice is a command that works: its output is a video as long as the sound."""
    import shlex
    import subprocess

    p, png = tmp_path / name, tmp_path / "art.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x64", "-frames:v", "1", str(png))
    cover = ["-i", str(png), "-map", "1:v", "-c:v", art, "-disposition:v", "attached_pic"] if art else []
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=3", *cover, "-map", "0:a", "-c:a", codec, str(p))
    said = r" \(its only picture is cover art\)" if art else ""
    with pytest.raises(InputError, match=rf"no video stream{said}: it is audio only") as e:
        IngestPipeline(_cfg()).probe(p)
    msg = str(e.value)
    subprocess.run([*shlex.split(msg[msg.index("ffmpeg -i"):]), "-loglevel", "error", "-y"], cwd=tmp_path,
                   check=True)
    info = IngestPipeline(_cfg()).probe(tmp_path / f"{p.stem}-video.mp4")
    assert info.has_audio and info.duration == pytest.approx(3.0, abs=0.3)


def test_mp4_still_being_recorded_says_so(jfk_video, tmp_path):
    """A recorder writes the MP4 index (moov) when it stops: until then (or after a crash) the file is its header
    and media data. That was "not a readable media file (corrupt, truncated or not a video)"."""
    data = jfk_video.read_bytes()
    assert data.find(b"moov") > len(data) // 2  # the index is at the end, as recorders write it
    for cut in (3000, len(data) // 2):
        p = tmp_path / "recording.mp4"
        p.write_bytes(data[:cut])
        with pytest.raises(InputError, match=r"MP4/MOV without its index .* still being recorded .*--follow"):
            IngestPipeline(_cfg()).probe(p)


def test_a_file_with_neither_video_nor_audio_says_what_ffmpeg_sees(tmp_path):
    p = tmp_path / "clip.mp4"
    p.write_text("[00:01.00]a line of lyrics\n[00:02.00]and another\n")  # FFmpeg reads this as LRC lyrics
    with pytest.raises(InputError, match=r"no video stream and no audio \(FFmpeg reads it as LRC lyrics: subtitle "
                                         r"streams only\): it is not a video"):
        IngestPipeline(_cfg()).probe(p)


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


def _faststart_mp4(path, size: str, seconds: int) -> None:
    """Test pattern + tone, 10 fps, with the index (moov) first: a cut copy of it still opens."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}:rate=10:d={seconds}", "-f", "lavfi", "-i",
           f"sine=f=440:d={seconds}", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags",
           "+faststart", str(path))


def test_truncated_file_faststart_gives_partial_result(tmp_path):
    """With the index first (faststart), half a file opens; decoding stops early and a note says where."""
    src = tmp_path / "full.mp4"
    _faststart_mp4(src, "320x240", 20)
    data = src.read_bytes()
    p = tmp_path / "half.mp4"
    p.write_bytes(data[: len(data) // 2])
    pipe = IngestPipeline(_cfg(asr=False, chunk_seconds=5.0))
    chunks = list(pipe.run(p))
    assert chunks, "a truncated file still yields what was decodable"
    notes = [n for c in chunks for n in c.notes]
    assert any("truncated" in n or "stopped" in n or "end at" in n for n in notes), notes
    assert sum(len(c.keyframes) for c in chunks) >= 1


def _piped(tmp_path, name: str, fmt: str, *codec: str, seconds: int = 6):
    """A file written to a pipe (as MediaRecorder or `ffmpeg ... -` do): no duration in its header."""
    import subprocess

    p = tmp_path / name
    with open(p, "wb") as out:
        ffmpeg_args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                       f"testsrc=size=160x120:rate=10:d={seconds}", "-f", "lavfi", "-i", f"sine=f=440:d={seconds}",
                       *codec, "-f", fmt, "-"]
        ffmpeg("-version")  # skips when ffmpeg is absent
        subprocess.run(ffmpeg_args, stdout=out, check=True)
    return p


@pytest.mark.parametrize("name, fmt, codec", [
    ("piped.webm", "webm", ("-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus")),
    ("piped.mkv", "matroska", ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac")),
])
def test_file_without_duration_metadata_is_ingested_whole(tmp_path, name, fmt, codec):
    """Its duration used to be 0: an empty memory marked complete. It now comes from the last packet."""
    p = _piped(tmp_path, name, fmt, *codec)
    pipe = IngestPipeline(_cfg(asr=False, chunk_seconds=5.0))
    info = pipe.probe(p)
    assert info.duration == pytest.approx(6.0, abs=0.1)
    chunks = list(pipe.run(p, info=info))
    assert [(c.start, round(c.end, 1)) for c in chunks] == [(0.0, 5.0), (5.0, 6.0)]
    assert sum(len(c.keyframes) for c in chunks) >= 1


def test_still_image_renamed_mp4_is_an_input_error(tmp_path):
    import shlex

    png = tmp_path / "shot.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120", "-frames:v", "1", str(png))
    p = tmp_path / "shot (1).mp4"
    png.rename(p)
    with pytest.raises(InputError, match=r"shot \(1\)\.mp4.*still image") as e:
        IngestPipeline(_cfg()).probe(p)
    msg = str(e.value)
    assert shlex.split(msg[msg.index("ffmpeg -loop"):])[3:5] == ["-i", p.name]  # the advice names it, quoted


def test_run_never_yields_zero_chunks_silently(silent_video):
    from dataclasses import replace

    pipe = IngestPipeline(_cfg(asr=False))
    info = replace(pipe.probe(silent_video), duration=0.0)
    with pytest.raises(InputError, match="duration"):
        list(pipe.run(silent_video, info=info))


@pytest.fixture(scope="module")
def one_bad_packet(tmp_path_factory):
    """20 s of video and audio with 400 bytes overwritten in the middle of the media data (ffmpeg decodes all but
    about one frame of it)."""
    d = tmp_path_factory.mktemp("onebad")
    src = d / "good.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:d=20", "-f", "lavfi", "-i", "sine=f=440:d=20",
           "-g", "250", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(src))
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 400] = b"\xab" * 400
    p = d / "onebad.mp4"
    p.write_bytes(bytes(data))
    return p


def test_one_corrupt_packet_does_not_stop_decoding(one_bad_packet):
    from videomind.ingest.audio import iter_audio
    from videomind.ingest.decode import DecodeReport, iter_frames
    from videomind.ingest.probe import probe

    info = probe(one_bad_packet)
    rep = DecodeReport()
    times = [t for t, _ in iter_frames(info, 0, None, fps=1, report=rep, backend="pyav")]
    assert len(times) >= 19 and times[-1] == 19.0, (times, rep.notes)
    arep = DecodeReport()
    blocks = list(iter_audio(info, report=arep))
    assert blocks[-1].end > 19.5, arep.notes
    assert not any("stopped" in n for n in rep.notes + arep.notes), rep.notes + arep.notes


def test_truncated_audio_note_says_where_the_audio_ends(tmp_path):
    """The note used to name the first *buffered* sample (0.0 s for a file cut at 7 s)."""
    import re

    from videomind.ingest.audio import iter_audio
    from videomind.ingest.decode import DecodeReport
    from videomind.ingest.probe import probe

    src = tmp_path / "full.mp4"
    _faststart_mp4(src, "160x120", 12)
    data = src.read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) * 6 // 10])
    rep = DecodeReport()
    blocks = list(iter_audio(probe(p), report=rep))
    notes = [n for n in rep.notes if "audio" in n]
    assert blocks and notes, rep.notes
    said = float(re.search(r"(\d+\.\d) s", notes[0]).group(1))
    assert said == pytest.approx(blocks[-1].end, abs=0.15), (notes, blocks[-1].end)


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_audio_longer_than_video_is_not_called_truncated(tmp_path, ext):
    """3 s of pictures over 8 s of sound (a complete file): the note said "video frames end at 2.0 s before the
    stated duration 8.0 s (truncated file?)"; the frames end at 3 s, and the file is whole. Matroska states where
    each track ends in a tag only (its streams have no duration): that note stayed for .mkv."""
    from videomind.ingest.decode import DecodeReport, iter_frames
    from videomind.ingest.probe import probe

    p = tmp_path / f"short_video.{ext}"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:d=3", "-f", "lavfi", "-i", "sine=f=440:d=8",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(p))
    info = probe(p)
    rep = DecodeReport()
    # Matroska starts the video 23 ms after the sound (the AAC priming): its last frame is on screen at 3.0 s
    last = [2.0] if ext == "mp4" else [2.0, 3.0]
    assert [t for t, _ in iter_frames(info, 0, None, fps=1, report=rep, backend="pyav")] == [0.0, 1.0] + last
    assert info.duration == pytest.approx(8.0, abs=0.1)
    assert rep.notes == ["the video stream ends at 3.0 s, the file at 8.0 s (its audio runs longer): no pictures "
                         "after 3.0 s"]


def test_subtitles_past_the_picture_and_sound_are_not_a_truncated_file(tmp_path):
    """A Matroska file's duration spans every track: a subtitle cue on screen until 9 s over 6 s of video and sound
    (the NASA clip remuxed to MKV: 16.6 s against 13.1 s) made the memory 9 s long, and its last 3 s, without
    frames, were noted as "video frames end at 6.0 s before the stated duration 9.0 s (truncated file?)". The
    memory is as long as the picture and sound, with every cue; half of the file is still called truncated."""
    srt = tmp_path / "talk.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello\n\n2\n00:00:05,000 --> 00:00:09,000\nThe end\n")
    p = tmp_path / "rec.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:d=6", "-f", "lavfi", "-i", "sine=f=440:d=6",
           "-i", str(srt), "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-c:s", "srt", str(p))
    srt.unlink()  # the embedded track, not the sidecar
    pipe = IngestPipeline(_cfg(asr=False, chunk_seconds=5.0))
    info = pipe.probe(p)
    assert info.duration == pytest.approx(6.0, abs=0.1)
    chunks = list(pipe.run(p, info=info))
    assert [n for c in chunks for n in c.notes] == []
    assert [(c.start, round(c.end, 1)) for c in chunks] == [(0.0, 5.0), (5.0, 6.0)]
    assert [t.text for c in chunks for t in c.texts if t.source == "subtitle"] == ["Hello", "The end"]
    data = p.read_bytes()
    half = tmp_path / "half.mkv"
    half.write_bytes(data[: len(data) // 2])
    notes = [n for c in pipe.run(half) for n in c.notes]
    assert any("(truncated file?)" in n for n in notes), notes


def _damage_audio_packets(src, dst, t0: float, n: int) -> None:
    """Copy ``src`` to ``dst`` with the ``n`` audio packets from ``t0`` s overwritten by 0xff bytes: the AAC decoder
    rejects each of them (an MP4's timestamps live in its index, so the later packets keep theirs)."""
    import av

    data = bytearray(src.read_bytes())
    with av.open(str(src)) as c:
        packets = [(float(p.pts * p.time_base), p.pos, p.size) for p in c.demux(c.streams.audio[0]) if p.size]
    hit = [(pos, size) for t, pos, size in packets if t >= t0][:n]
    assert len(hit) == n and all(pos is not None for pos, _ in hit)
    for pos, size in hit:
        data[pos:pos + size] = b"\xff" * size
    dst.write_bytes(bytes(data))


def _onset(blocks) -> float:
    """Time of the first loud sample (the tone's start) in contiguous blocks."""
    import numpy as np

    from videomind.ingest.audio import SAMPLE_RATE

    for a, b in zip(blocks, blocks[1:]):
        assert abs(b.start - a.end) < 1.5 / SAMPLE_RATE, (a.end, b.start)
    samples = np.concatenate([b.samples for b in blocks])
    return blocks[0].start + int(np.argmax(np.abs(samples) > 0.1)) / SAMPLE_RATE


@pytest.fixture(scope="module")
def tone_at_8s(tmp_path_factory):
    """12 s of video; its audio is silent until a 440 Hz tone starts at exactly 8 s (the 'speech onset')."""
    p = tmp_path_factory.mktemp("tone") / "tone.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:d=12", "-f", "lavfi", "-i",
           r"aevalsrc=if(gte(t\,8)\,sin(2*PI*440*t)\,0):d=12:s=44100", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", str(p))
    return p


@pytest.mark.parametrize("damaged_from", [3.0, 0.0])
def test_audio_after_corrupt_packets_stays_on_the_video_clock(tone_at_8s, tmp_path, damaged_from):
    """Ten AAC packets (232 ms) are undecodable from 3 s (or from the very start). They used to be dropped without
    a trace: every later sample came 232 ms early (the tone at 7.77 s), and Whisper's timestamps with it."""
    from videomind.ingest.audio import iter_audio, read_audio
    from videomind.ingest.decode import DecodeReport
    from videomind.ingest.probe import probe

    bad = tmp_path / "bad.mp4"
    _damage_audio_packets(tone_at_8s, bad, damaged_from, 10)
    clean = list(iter_audio(probe(tone_at_8s)))
    rep = DecodeReport()
    blocks = list(iter_audio(probe(bad), report=rep))
    assert any("skipped 10 undecodable packet" in n for n in rep.notes), rep.notes  # the damage was real
    assert _onset(clean) == pytest.approx(8.0, abs=0.005)
    assert _onset(blocks) == pytest.approx(_onset(clean), abs=0.002)
    assert blocks[0].start == 0.0 and blocks[-1].end == pytest.approx(clean[-1].end, abs=0.002)
    sound = read_audio(probe(bad), 7.0, 9.0)  # indexed from its start: the onset is at sample 16000
    assert int((abs(sound) > 0.1).argmax()) == pytest.approx(16000, abs=32)


def test_a_long_audio_gap_is_filled_piece_by_piece():
    """Timestamps that jump by three hours (a recording paused, a long undecodable span) are filled with silence
    one second at a time, lazily, and noted; never three hours of zeros at once."""
    import itertools

    import av
    import numpy as np

    from videomind.ingest.audio import _fill_gaps

    def frame(n: int):
        f = av.AudioFrame.from_ndarray(np.ones((2, n), np.float32), format="fltp", layout="stereo")
        f.sample_rate = 48000
        return f

    notes: list[str] = []
    out = _fill_gaps(iter([(0.5, frame(960)), (0.52, frame(960)), (0.54 + 3 * 3600, frame(960))]), 0.0, notes)
    first = list(itertools.islice(out, 6))
    times = [round(t, 3) for t, _ in first]
    assert times == [0.0, 0.5, 0.52, 0.54, 1.54, 2.54]          # the late start filled, then the gap in pieces
    assert [f.samples for _, f in first] == [24000, 960, 960, 48000, 48000, 48000]
    assert not first[0][1].to_ndarray().any() and first[1][1].to_ndarray().all()
    assert notes == ["audio: no audio between 0.5 and 10800.5 s (filled with silence)"]
