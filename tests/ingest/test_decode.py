"""Decode: stream choice, rotation, odd sizes, variable frame rate, huge resolution, decord == PyAV."""

from __future__ import annotations

import av
import numpy as np
import pytest

from tests.ingest.conftest import ffmpeg
from videomind.config import Config
from videomind.errors import InputError
from videomind.ingest.decode import DecodeReport, iter_frames, sample_times, scaled_size
from videomind.ingest.probe import probe


def _gen(media_dir, name, *args):
    out = media_dir / name
    if not out.exists():
        ffmpeg(*args, str(out))
    return out


def _close(a: np.ndarray, b: np.ndarray, tol: float = 6.0) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()) < tol


def test_probe_nasa_picks_largest_video_and_best_audio(nasa):
    info = probe(nasa)
    assert info.video_stream == 1 and (info.width, info.height) == (480, 270)
    assert info.audio_stream == 1 and info.has_audio
    assert info.duration == pytest.approx(13.06, abs=0.1)
    assert len(info.content_hash) == 32 and probe(nasa).content_hash == info.content_hash


def test_multi_stream_frames_come_from_the_chosen_stream(nasa):
    frames = list(iter_frames(probe(nasa), 0, 3, fps=1, size=384))
    assert [t for t, _ in frames] == [0.0, 1.0, 2.0]
    assert frames[0][1].shape == (216, 384, 3)  # 480x270 scaled; the 320x180 stream would not be upscaled


def test_sample_grid():
    assert list(sample_times(0, 3, 1)) == [0, 1, 2]
    assert list(sample_times(59.5, 61, 2)) == [59.5, 60, 60.5]
    assert scaled_size(321, 179, 384) == (320, 180) and scaled_size(3840, 2160, 384) == (384, 216)


@pytest.mark.parametrize("rotation", [90, 270])
def test_rotation_matches_ffmpeg_autorotate(media_dir, rotation):
    src = _gen(media_dir, "plain.mp4", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:d=2",
               "-c:v", "libx264", "-pix_fmt", "yuv420p")
    rot = _gen(media_dir, f"rot{rotation}.mp4", "-i", str(src), "-c", "copy", "-metadata:s:v:0", f"rotate={rotation}")
    ref = _gen(media_dir, f"rot{rotation}.png", "-i", str(rot), "-frames:v", "1")  # ffmpeg applies the rotation
    info = probe(rot)
    assert info.rotation in (90, 270) and (info.width, info.height) == (240, 320)
    expected = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(ref).convert("RGB"))
    for backend in ("decord", "pyav"):
        (t, img), *_ = iter_frames(info, 0, 1, fps=1, size=384, backend=backend)
        assert img.shape == (320, 240, 3) and _close(img, expected, 12.0), backend


def test_odd_size(media_dir):
    p = _gen(media_dir, "odd.mp4", "-f", "lavfi", "-i", "testsrc=size=321x179:rate=5:d=2", "-c:v", "libx264",
             "-pix_fmt", "yuv444p")
    info = probe(p)
    assert (info.width, info.height) == (321, 179)
    a = list(iter_frames(info, 0, 2, fps=2, backend="decord"))
    b = list(iter_frames(info, 0, 2, fps=2, backend="pyav"))
    assert [t for t, _ in a] == [t for t, _ in b] == [0.0, 0.5, 1.0, 1.5]
    assert all(_close(x, y) for (_, x), (_, y) in zip(a, b))


def test_variable_frame_rate(media_dir):
    """10 fps for 2 s, then 2 fps: a sample at t is the frame on screen at t, the last one starting at or before t."""
    p = _gen(media_dir, "vfr.mp4", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:d=4",
             "-vf", "setpts='if(lt(N,20),N/10,2+(N-20)/2)/TB'", "-fps_mode", "passthrough",
             "-c:v", "libx264", "-pix_fmt", "yuv420p")
    info = probe(p)
    with av.open(str(p)) as c:
        ref = {round(f.time, 3): f.to_ndarray(format="rgb24") for f in c.decode(video=0)}
    for backend in ("decord", "pyav"):
        frames = dict(iter_frames(info, 0, 6, fps=4, size=384, backend=backend))
        assert sorted(frames)[:3] == [0.0, 0.25, 0.5]
        def shown(img):  # the source frame this sample is (nearest in pixels)
            return min(ref, key=lambda k: float(np.abs(ref[k].astype(np.float32) - img).mean()))

        assert [round(shown(frames[t]), 1) for t in (2.25, 2.75, 3.0, 4.75)] == [2.0, 2.5, 3.0, 4.5], backend


def test_slideshow_frames_are_what_a_player_shows(media_dir):
    """A slideshow (or a screen recording) has a frame only where the picture changes: red at 0 s, blue at 9 s,
    green at 20 s. The instants in between show the slide on screen, not the next one: a sample at 1 s used to be
    the blue slide, so the blue shot started at 1 s, 8 s before anyone saw it."""
    from videomind.ingest.pipeline import IngestPipeline

    p = _gen(media_dir, "slides.mp4", "-f", "lavfi", "-i", "color=c=red:s=160x120:r=1:d=9", "-f", "lavfi",
             "-i", "color=c=blue:s=160x120:r=1:d=11", "-f", "lavfi", "-i", "color=c=green:s=160x120:r=1:d=5",
             "-filter_complex", "[0][1][2]concat=n=3,select='eq(n,0)+eq(n,9)+eq(n,20)+eq(n,24)'",
             "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p")
    info = probe(p)
    def colours(frames):
        return "".join("rgb"[int(np.argmax(img.reshape(-1, 3).mean(axis=0)))] for _, img in frames)

    for backend in ("decord", "pyav"):
        frames = list(iter_frames(info, 0, None, fps=1, size=160, backend=backend))
        assert [t for t, _ in frames] == list(range(25)), backend
        assert colours(frames) == "r" * 9 + "b" * 11 + "g" * 5, backend
        part = list(iter_frames(info, 12.0, 15.0, fps=1, backend=backend))  # a resumed run starts mid-slide
        assert [t for t, _ in part] == [12.0, 13.0, 14.0] and colours(part) == "bbb", backend
    config = Config()
    config.ingest.ocr = config.ingest.asr = False
    shots = [s for c in IngestPipeline(config).run(p, info=info) for s in c.shots]
    assert [(s.start, s.end) for s in shots] == [(0.0, 9.0), (9.0, 20.0), (20.0, 25.0)]


def test_huge_resolution_is_downscaled_while_decoding(media_dir):
    p = _gen(media_dir, "huge.mp4", "-f", "lavfi", "-i", "color=c=teal:size=5120x2880:rate=2:d=1", "-c:v", "libx264",
             "-preset", "ultrafast", "-pix_fmt", "yuv420p")
    info = probe(p)
    assert (info.width, info.height) == (5120, 2880)
    for backend in ("decord", "pyav"):
        frames = list(iter_frames(info, 0, 1, fps=2, size=384, backend=backend))
        assert [f.shape for _, f in frames] == [(216, 384, 3)] * 2


def test_start_mid_file_seeks(media_dir):
    p = _gen(media_dir, "long.mp4", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:d=30", "-g", "50",
             "-c:v", "libx264", "-pix_fmt", "yuv420p")
    info = probe(p)
    full = dict(iter_frames(info, 0, 30, fps=1, backend="pyav"))
    for backend in ("decord", "pyav"):
        part = list(iter_frames(info, 17.0, 20.0, fps=1, backend=backend))
        assert [t for t, _ in part] == [17.0, 18.0, 19.0]
        assert all(_close(img, full[t]) for t, img in part)


def test_report_backend(nasa, silent_video):
    rep = DecodeReport()
    list(iter_frames(probe(silent_video), 0, 1, report=rep))
    assert rep.backend == "pyav" and rep.notes == []  # the default
    with pytest.raises(InputError, match="decord cannot choose"):
        list(iter_frames(probe(nasa), 0, 1, backend="decord"))  # several video streams


def test_skipping_b_frames_lands_within_a_few_frames(media_dir, monkeypatch):
    import videomind.ingest.decode as decode

    p = _gen(media_dir, "bframes.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:d=6", "-c:v", "libx264",
             "-preset", "medium", "-bf", "3", "-pix_fmt", "yuv420p")
    info = probe(p)
    with av.open(str(p)) as c:
        ref = {round(f.time, 3): f.to_ndarray(format="rgb24") for f in c.decode(video=0)}
    real, skip = decode.timed_frames, []

    def spy(path, kind, index, start, notes, first_ok, configure):  # what iter_frames told the decoder to skip
        def seen(vs):
            configure(vs)
            skip.append(vs.codec_context.skip_frame)

        return real(path, kind, index, start, notes, first_ok, seen)

    monkeypatch.setattr(decode, "timed_frames", spy)
    for t, img in iter_frames(info, 0, 6, fps=1, size=384, backend="pyav"):
        shown = min(ref, key=lambda k: float(np.abs(ref[k].astype(np.float32) - img).mean()))
        assert t <= shown + 1e-3 <= t + 0.13, (t, shown)
    assert skip == ["NONREF"]  # a constant frame rate stream keeps the speed-up


def test_seek_into_the_last_gop_of_mpeg_ts(media_dir):
    """MPEG-TS has no index: a seek past the last keyframe used to land at the end and yield nothing (the end of
    every --follow TS recording was lost). Keyframes at 0 s and 10 s; a start of 10.5 s must still give 11 s."""
    p = _gen(media_dir, "gop250.ts", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:d=12", "-f", "lavfi",
             "-i", "sine=f=440:d=12", "-g", "250", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac")
    info = probe(p)
    full = dict(iter_frames(info, 0, None, fps=1, backend="pyav"))
    # The file lasts 12.02 s (its audio starts first) and its last frame is on screen at 12 s: that instant too.
    for start, expected in [(10.5, [11.0, 12.0]), (9.5, [10.0, 11.0]), (3.5, [4.0, 5.0])]:
        part = list(iter_frames(info, start, min(start + 2, info.duration), fps=1, backend="pyav"))
        assert [t for t, _ in part] == expected, start
        assert all(_close(img, full[t]) for t, img in part)
    from videomind.ingest.audio import iter_audio

    blocks = list(iter_audio(info, 10.5))
    assert blocks and blocks[0].start == pytest.approx(10.5, abs=0.05) and blocks[-1].end > 11.5


def test_raw_h264_without_timestamps_gets_its_duration_and_frame_times(tmp_path):
    """A raw elementary stream has neither a duration nor timestamps: the duration comes from its packets and
    frame times from their count (its frame rate), so it is not ingested as an empty memory."""
    p = tmp_path / "raw.h264"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:d=4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-f", "h264", str(p))
    info = probe(p)
    assert info.duration == pytest.approx(4.0, abs=0.1)
    frames = list(iter_frames(info, 0, None, fps=1, backend="pyav"))
    assert [t for t, _ in frames] == [0.0, 1.0, 2.0, 3.0]
    assert not _close(frames[0][1], frames[3][1], 1.0)  # distinct instants, not one frame repeated


@pytest.mark.parametrize("container", ["mp4", "mpegts"])
def test_sparse_sampling_of_a_variable_frame_rate_video_shows_the_frame_on_screen(media_dir, container):
    """Non-reference frames were left undecoded whenever the average rate was 4x the sampling rate: on a variable
    frame rate video (20 fps, then a frame every 0.7-1.3 s, B-frames) a sample showed a frame up to ~2 s after its
    instant. MPEG-TS states the rate of its first frames (30 fps here), so the stream's header alone cannot tell."""
    p = _gen(media_dir, f"vfr_bframes.{container}", "-f", "lavfi", "-i",
             "nullsrc=s=64x32:r=30:d=2,geq=lum='20+3*N':cb=128:cr=128",
             "-vf", "setpts='if(lt(N,30),N*0.05,1.5+(N-30)*0.7+mod(N,3)*0.3)/TB'", "-fps_mode", "passthrough",
             "-c:v", "libx264", "-bf", "3", "-pix_fmt", "yuv420p", "-f", container)
    info = probe(p)
    assert info.fps >= 4 * 0.5                                      # sparse enough to have skipped frames
    with av.open(str(p)) as c:
        ref = sorted((f.time - (c.start_time or 0) / 1e6, f.to_ndarray(format="rgb24")) for f in c.decode(video=0))
    starts = np.array([t for t, _ in ref])
    for t, img in iter_frames(info, 0, None, fps=0.5, size=64, backend="pyav"):
        on_screen = int(np.searchsorted(starts, t + 1e-4, side="right")) - 1
        shown = min(range(len(ref)), key=lambda k: float(np.abs(ref[k][1].astype(np.float32) - img).mean()))
        assert shown == on_screen, (t, starts[shown], starts[on_screen])
