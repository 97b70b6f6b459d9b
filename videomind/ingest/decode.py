"""Sample RGB frames from the best video stream of a media file (probed by probe.py).

Two decoders, same output: PyAV (the default, "auto") and ``decord`` (the decord2 wheel; "auto" falls back to it
when PyAV cannot open a single-stream file). PyAV is the default because it measured better for sparse sampling on
the 10-minute benchmark (bench/ingest): 678 MB vs 2363 MB peak RSS and ~1.4x the throughput, it can pick one of
several video streams (decord cannot), and it can skip non-reference frames while decoding. Frames are sampled on a
global time grid ``k / fps`` so a resumed run (``start_at``) lands on the same instants as a full run, scaled while
decoding so the longest side is ``size`` (a huge source never materialises at full resolution in RGB), and rotated
by the stream's display matrix.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np

from videomind.errors import InputError
from videomind.ingest.packets import timed_frames
from videomind.ingest.probe import open_container, probe, start_offset, stream_end
from videomind.types import VideoInfo

logger = logging.getLogger(__name__)


@dataclass
class DecodeReport:
    """What happened while decoding: notes for the chunk (documented partial results) and the last frame time."""

    notes: list[str] = field(default_factory=list)
    last_t: float = -1.0
    backend: str = ""


def scaled_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) with the longest side ``size`` (never upscaled), both even and >= 2."""
    s = min(1.0, size / max(width, height, 1))
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


def _rotate(img: np.ndarray, rotation: int) -> np.ndarray:
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


def sample_times(t0: float, t1: float, fps: float) -> np.ndarray:
    """Instants ``k / fps`` in [t0, t1) of the global sampling grid."""
    k0, k1 = math.ceil(t0 * fps - 1e-6), math.ceil(t1 * fps - 1e-6)
    return np.arange(k0, max(k0, k1)) / fps


def iter_frames(info: VideoInfo, start: float = 0.0, end: float | None = None, fps: float = 1.0, size: int = 384,
                report: DecodeReport | None = None, backend: str = "auto") -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(t, rgb)`` for each grid instant in [start, end): the frame a player shows at that instant, i.e.
    the last one starting at or before it (before a video stream's first frame: that frame). With variable frame
    rate that matters: a slideshow or screen recording has a frame only where the picture changes, seconds apart,
    and the next frame is the next slide. The last frame is shown for its duration.

    ``rgb`` is uint8 [H, W, 3], longest side ``size``, display-rotated. Corrupt packets are skipped, and where
    decoding gave up is recorded in ``report.notes`` (a documented partial result) instead of raising.
    """
    report = report if report is not None else DecodeReport()
    end = info.duration if end is None else min(end, info.duration)
    if backend == "decord":
        if info.n_video_streams != 1:
            raise InputError(f"{info.path!r} has {info.n_video_streams} video streams; decord cannot choose one: "
                             f"use the PyAV backend")
        try:
            yield from _iter_decord(info, start, end, fps, size, report)
        except _DecordUnavailable as e:
            raise InputError(f"decord cannot read {info.path!r}: {e}") from e
        return
    try:
        yield from _iter_pyav(info, start, end, fps, size, report)
    except InputError as e:
        if backend != "auto" or info.n_video_streams != 1 or report.last_t >= 0:
            raise
        logger.info("PyAV cannot read %s (%s); trying decord", info.path, e)
        try:
            yield from _iter_decord(info, start, end, fps, size, report)
        except _DecordUnavailable:
            raise e from None


class _DecordUnavailable(Exception):
    pass


def _iter_decord(info, start, end, fps, size, report) -> Iterator[tuple[float, np.ndarray]]:
    try:
        import decord

        # decord2 applies the display matrix itself and takes the *display* size: no rotation of ours here.
        w, h = scaled_size(info.width, info.height, size)
        vr = decord.VideoReader(info.path, ctx=decord.cpu(0), width=w, height=h, num_threads=2)
        n = len(vr)
        spans = vr.get_frame_timestamp(np.arange(n)) if n else np.zeros((0, 2))  # [n, 2]: start, end (s)
        stamps, ends = spans[:, 0], spans[:, 1]
    except Exception as e:  # decord raises DECORDError / RuntimeError for anything it cannot open
        raise _DecordUnavailable(str(e)) from e
    report.backend = "decord"
    times = sample_times(start, end, fps)
    # The frame on screen at t: the last one starting at or before t (the first one before the stream starts).
    idx = np.maximum(np.searchsorted(stamps, times + 1e-4, side="right") - 1, 0)
    ok = times < (ends[-1] if n else 0.0) - 1e-4  # past the last frame's end there is no picture
    if not ok.all() and n:
        report.notes.append(f"video frames end at {ends[-1]:.1f} s before the stated duration {info.duration:.1f} s")
    times, idx = times[ok], idx[ok]
    batch = 16
    for b in range(0, len(idx), batch):
        sel = idx[b:b + batch]
        try:
            frames = vr.get_batch(list(map(int, sel))).asnumpy()
        except Exception as e:  # a corrupt packet in the middle: keep what was decoded, note the rest
            report.notes.append(f"video decoding stopped at {times[b]:.1f} s: {e.__class__.__name__}")
            return
        for t, img in zip(times[b:b + batch], frames):
            report.last_t = float(t)
            yield float(t), img


# Frame periods between two decoded frames that are B-frames skipped (x264 puts up to 3 in a row by default)
SKIPPED_RUN = 5
REORDER_FRAMES = 16  # the most frames a packet is stored ahead of its turn (H.264/HEVC allow 16 B-frames in a row)


def _steady_rate(info: VideoInfo, start: float, end: float) -> bool:
    """Whether no frame of the video stream in [start, end] is on screen longer than 1.5 periods of its average
    rate, judged from its packets' timestamps (demuxed, not decoded: ~2% of the decoding time).

    Only then may non-reference frames go undecoded: in a variable frame rate stream (a phone or screen recording)
    the frame after a skipped one can come seconds later, and a sample shows it that long before it is on screen
    (vfr.mp4, 20 fps then a frame every 0.7-1.3 s: up to 1.97 s). A stream whose base rate (the one all its
    timestamps are multiples of) is far from its average rate is variable without reading further; the packets
    decide the rest, as MPEG-TS states the rate of its first frames only.
    """
    period = 1.0 / info.fps
    reorder = REORDER_FRAMES * period  # packets come up to this much (in their timestamps) out of time order
    with open_container(info.path) as c:
        if not abs(float(c.streams.video[info.video_stream].base_rate or 0.0) * period - 1.0) < 0.05:
            return False
    seek = start > 2 * reorder
    times = _packet_times(info, start - 2 * reorder if seek else 0.0, end + 2 * reorder)
    if times is not None and seek and len(times) and times[0] + reorder > start:
        times = _packet_times(info, 0.0, end + 2 * reorder)  # the seek overshot (MPEG-TS): read from the start
    if times is None or len(times) < 2:
        return False
    # B-frames are stored after the frame that follows them, so the frames within ``reorder`` of where reading
    # started (after a seek) or stopped (before the end of the file) may miss neighbours: judge those in between.
    lo = times[0] + reorder if seek else -math.inf
    hi = times[-1] - reorder if times[-1] > end + 2 * reorder else math.inf
    times = times[(times >= lo) & (times <= hi)]
    return len(times) > 1 and float(np.diff(times).max()) <= 1.5 * period


def _packet_times(info: VideoInfo, start: float, until: float) -> np.ndarray | None:
    """The sorted timestamps (seconds of the video) of the video stream's packets from the keyframe the seek to
    ``start`` lands on until the first one past ``until``; None when a packet has none (a raw stream) or the file
    cannot be read so (an unseekable or damaged file)."""
    import av

    stamps: list[float] = []
    with open_container(info.path) as c:
        vs = c.streams.video[info.video_stream]
        offset = start_offset(c)
        try:
            if start > 0:
                c.seek(int((start + offset) / vs.time_base), stream=vs, backward=True, any_frame=False)
            for pkt in c.demux(vs):
                if pkt.size == 0:  # the flush packet at the end
                    continue
                if pkt.pts is None or pkt.time_base is None:
                    return None
                stamps.append(float(pkt.pts * pkt.time_base) - offset)
                if stamps[-1] > until:
                    break
        except av.error.FFmpegError as e:
            logger.debug("%s: cannot read its packet timestamps from %.1f s (%s)", info.path, start, e)
            return None
    return np.sort(np.array(stamps))


def _iter_pyav(info, start, end, fps, size, report) -> Iterator[tuple[float, np.ndarray]]:
    report.backend = "pyav"
    times = sample_times(start, end, fps)
    if not len(times):
        return

    header_end: list[float | None] = [None]  # where the video stream's header says it ends (video clock)
    skipping = [False]  # non-reference frames are not decoded
    # Sampling far sparser than the frame rate: skip decoding non-reference (B) frames, ~1.4x faster. A sample
    # between two reference frames then shows the next one, a frame or two (<= ~0.1 s) after its instant (a B-frame
    # at a cut usually shows the picture after it) -- where frames come at a steady rate only.
    skip = fps <= 5 and info.fps >= 4 * fps and _steady_rate(info, start, end)

    def configure(vs) -> None:
        vs.thread_type = "AUTO"
        header_end[0] = stream_end(vs)
        # Raw streams (AVFMT_NOTIMESTAMPS) are timed by counting frames below: every frame must be decoded.
        no_timestamps = bool((vs.container.format.flags or 0) & 0x80)
        if skip and not no_timestamps:
            try:
                vs.codec_context.skip_frame = "NONREF"
                skipping[0] = True
            except Exception:  # noqa: BLE001 - an option some decoders lack; decoding everything is still right
                pass

    w, h = scaled_size(info.width, info.height, size)
    if info.rotation in (90, 270):
        w, h = h, w
    # A seek is trusted when it starts with a timestamped frame at or before the first instant: none was skipped.
    first_ok = lambda t: t is not None and t <= times[0] + 1e-4  # noqa: E731
    step = 1.0 / (info.fps or 25.0)
    i, prev, held = 0, None, None  # held: the frame on screen until the next one starts

    def rgb(frame) -> np.ndarray:
        return _rotate(frame.to_ndarray(format="rgb24", width=w, height=h), info.rotation)

    with closing(timed_frames(info.path, "video", info.video_stream, start, report.notes, first_ok, configure)) as it:
        for t, frame in it:
            # A frame without a timestamp (raw elementary streams have none) follows the previous one by a period.
            t = t if t is not None else (prev + step if prev is not None else 0.0)
            # A gap of a few frame periods is the B-frames we did not decode, not a picture held on screen.
            skipped = skipping[0] and prev is not None and t - prev <= SKIPPED_RUN * step
            while i < len(times) and times[i] < t - 1e-4:  # the instants before this frame show the one before
                report.last_t = float(times[i])
                behind = held is None or (skipped and times[i] > prev + 1e-4)
                yield report.last_t, rgb(frame if behind else held)
                i += 1
            if i >= len(times):
                return
            held, prev = frame, t
    if held is None:
        return
    length = float(held.duration * held.time_base) if held.duration and held.time_base else step
    while i < len(times) and times[i] < prev + length - 1e-4:  # the last frame is shown for its duration
        report.last_t = float(times[i])
        yield report.last_t, rgb(held)
        i += 1
    if i < len(times) and times[i] < info.duration - 2.0 / max(fps, 1e-3):
        report.notes.append(_frames_end_note(info, min(prev + length, info.duration), header_end[0]))


def _frames_end_note(info: VideoInfo, frames_end: float, header_end: float | None) -> str:
    """The note for video frames that end before the file does: a video stream shorter than its audio (a player
    shows its last frame, or black, for the rest) or, where the stream's header promised more, a truncated file."""
    if header_end is not None and frames_end >= header_end - 1.0:
        return (f"the video stream ends at {frames_end:.1f} s, the file at {info.duration:.1f} s (its audio runs "
                f"longer): no pictures after {frames_end:.1f} s")
    return f"video frames end at {frames_end:.1f} s before the stated duration {info.duration:.1f} s (truncated file?)"


def stream_frames(path: str | os.PathLike, t0: float, t1: float, fps: float = 1.0,
                  size: int = 384) -> Iterator[tuple[float, np.ndarray]]:
    """Frames of ``path`` in [t0, t1) at ``fps``, one at a time: ``(t, rgb uint8 [H, W, 3])`` (for the inspect
    tool, which may stream an hours-long span to a VLM: only the frame being read is held).

    Raises:
        InputError: the file is missing or unreadable (when the file is opened, before the first frame).
    """
    info = probe(path)
    if t1 <= t0:
        t1 = t0 + 1.0 / fps
    return iter_frames(info, max(0.0, t0), t1, fps=fps, size=size)


def open_frames(path: str | os.PathLike, t0: float, t1: float, fps: float = 1.0,
                size: int = 384) -> list[tuple[float, np.ndarray]]:
    """:func:`stream_frames` as a list."""
    return list(stream_frames(path, t0, t1, fps, size))

