"""Probe a media file and sample RGB frames from its best video stream.

Two decoders, same output: PyAV (the default, "auto") and ``decord`` (the decord2 wheel; "auto" falls back to it
when PyAV cannot open a single-stream file). PyAV is the default because it measured better for sparse sampling on
the 10-minute benchmark (bench/ingest): 678 MB vs 2363 MB peak RSS and ~1.4x the throughput, it can pick one of
several video streams (decord cannot), and it can skip non-reference frames while decoding. Frames are sampled on a
global time grid ``k / fps`` so a resumed run (``start_at``) lands on the same instants as a full run, scaled while
decoding so the longest side is ``size`` (a huge source never materialises at full resolution in RGB), and rotated
by the stream's display matrix.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from videomind.errors import InputError
from videomind.types import VideoInfo

logger = logging.getLogger(__name__)


@dataclass
class DecodeReport:
    """What happened while decoding: notes for the chunk (documented partial results) and the last frame time."""

    notes: list[str] = field(default_factory=list)
    last_t: float = -1.0
    backend: str = ""


# ----------------------------------------------------------------------------------------------------------- probe
def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"video file {str(p)!r} does not exist; check the path")
    if not p.is_file():
        raise InputError(f"{str(p)!r} is not a file; pass a video file such as talk.mp4")
    if p.stat().st_size == 0:
        raise InputError(f"video file {str(p)!r} is empty (0 bytes); re-download or re-export it")
    return p


def open_container(path: str | os.PathLike):
    """Open ``path`` with PyAV, turning every failure into an :class:`InputError`."""
    import av

    p = _check_file(path)
    try:
        return av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        if _mp4_without_index(p):
            raise InputError(
                f"{str(p)!r} is an MP4/MOV without its index (the 'moov' box, written when a recording stops): "
                f"it is still being recorded or copied, or it is truncated (a recording cut off, a partial "
                f"download). Wait until it is finished, or download it again; to ingest a recording while it is "
                f"made, record to .ts or .mkv and use `videomind ingest --follow`") from e
        raise InputError(
            f"{str(p)!r} is not a readable media file (corrupt, truncated or not a video): "
            f"{getattr(e, 'strerror', None) or e}. "  # strerror: FFmpeg's reason without its errno and the path
            f"Check it plays, or re-encode it: ffmpeg -i in -c:v libx264 -c:a aac out.mp4"
        ) from e


def _mp4_without_index(p: Path, max_boxes: int = 1000) -> bool:
    """Whether ``p`` is an ISO media file (MP4/MOV/M4A: it opens with an 'ftyp' box) whose top-level boxes hold
    no 'moov': what a recorder leaves while it records, or when it is killed. Reads box headers only."""
    size = p.stat().st_size
    with open(p, "rb") as f:
        pos = 0
        for i in range(max_boxes):
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                return i > 0
            n, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if i == 0 and kind != b"ftyp":
                return False
            if kind == b"moov":
                return False
            if n == 1 and len(head) == 16:  # a 64-bit size follows the type
                n = int.from_bytes(head[8:16], "big")
            if n == 0 or pos + n >= size:  # the last box (size 0: "to the end of the file")
                return True
            if n < 8:
                return False  # not a box structure: some other damage
            pos += n
    return False


def content_hash(path: str | os.PathLike, size: int | None = None, block: int = 1 << 20) -> str:
    """A fast content key: SHA-256 over the size and the first, middle and last MiB (not the whole file).

    ``size``: of the file's first ``size`` bytes only, as if it ended there (a recording that has grown since)."""
    p = Path(path)
    size = p.stat().st_size if size is None else size
    h = hashlib.sha256(str(size).encode())
    with open(p, "rb") as f:
        for off in sorted({0, max(0, size // 2 - block // 2), max(0, size - block)}):
            f.seek(off)
            h.update(f.read(min(block, size - off)))
    return h.hexdigest()[:32]


def _stream_duration(s) -> float:
    if s.duration is not None and s.time_base is not None:
        return float(s.duration * s.time_base)
    return 0.0


def select_video_stream(container) -> int | None:
    """Position (among video streams) of the best one: largest area, then most frames, ignoring cover art."""
    best, key = None, None
    for i, s in enumerate(container.streams.video):
        if s.disposition & 0x400:  # AV_DISPOSITION_ATTACHED_PIC: album art, not video
            continue
        cc = s.codec_context
        k = ((cc.width or 0) * (cc.height or 0), s.frames or 0, -i)
        if key is None or k > key:
            best, key = i, k
    return best


def select_audio_stream(container) -> int | None:
    """Position (among audio streams) of the best one for speech: highest sample rate, then channels, then first."""
    best, key = None, None
    for i, s in enumerate(container.streams.audio):
        cc = s.codec_context
        k = (cc.sample_rate or 0, cc.channels or 0, -i)
        if key is None or k > key:
            best, key = i, k
    return best


def _is_still_image(container) -> bool:
    """An image demuxer (image2, png_pipe, jpeg_pipe, ...): a picture, even when renamed .mp4."""
    name = container.format.name or ""
    return name == "image2" or name.endswith("_pipe")


def _demuxed_end(container, streams) -> float:
    """Seconds (container clock) where the last packet of ``streams`` ends, reading packets only (no decoding).

    For files whose header has no duration: WebM from MediaRecorder, Matroska written to a pipe, raw .h264. A
    packet without a timestamp (raw elementary streams have none) follows the previous one of its stream."""
    ends: dict[int, float] = {}
    for pkt in container.demux(streams):
        if pkt.size == 0 or pkt.time_base is None:  # the flush packet at the end
            continue
        span = float((pkt.duration or 0) * pkt.time_base)
        i = pkt.stream.index
        t = float(pkt.pts * pkt.time_base) if pkt.pts is not None else ends.get(i, 0.0)
        ends[i] = max(ends.get(i, 0.0), t + span)
    return max(ends.values(), default=0.0)


def demuxed_length(info: VideoInfo, since: float = 0.0) -> float:
    """Seconds of media in ``info.path`` as far as its packets go (no decoding): the length of a recording whose
    header states none while it grows (Matroska/WebM). Only the packets from the keyframe at or before ``since`` on
    are read (all of them where the file cannot seek there); 0.0 when there are none.

    Raises:
        InputError: the file cannot be opened.
    """
    import av

    with open_container(info.path) as c:
        offset = start_offset(c)
        vs = c.streams.video[info.video_stream]
        streams = [vs] + ([c.streams.audio[info.audio_stream]] if info.audio_stream is not None else [])
        if since > 0:
            try:
                c.seek(int((since + offset) / vs.time_base), stream=vs, backward=True, any_frame=False)
            except av.error.FFmpegError as e:  # e.g. a raw stream: read it all
                logger.debug("%s: seek to %.1f s failed (%s); measuring from the beginning", info.path, since, e)
                return demuxed_length(info)
        return max(0.0, _demuxed_end(c, streams) - offset)


def probe(path: str | os.PathLike, measure: bool = True) -> VideoInfo:
    """Describe ``path`` and choose its streams, decoding one frame to prove the video is readable.

    Args:
        path: the video file.
        measure: when the header states no duration, read every packet to find it (I/O over the whole file, no
            decoding). ``--follow`` passes False: a growing file has no final duration yet (it then stays 0).

    Raises:
        InputError: missing, empty, unreadable, not a media file, a still image, no video stream, no decodable
            frame, or (``measure``) no way to tell the duration.
    """
    import av

    p = _check_file(path)
    with open_container(p) as c:
        if _is_still_image(c):
            raise InputError(f"{str(p)!r} is a still image ({c.format.name}), not a video; VideoMind needs a video. "
                             f"To make one from it: ffmpeg -loop 1 -i {shlex.quote(p.name)} -t 10 -pix_fmt yuv420p "
                             f"out.mp4")
        vi = select_video_stream(c)
        if vi is None:
            raise InputError(_no_video(p, c))
        ai = select_audio_stream(c)
        vs = c.streams.video[vi]
        rotation, width, height = 0, vs.codec_context.width, vs.codec_context.height
        try:
            frame = next(c.decode(vs))
            rotation = int(getattr(frame, "rotation", 0) or 0) % 360
            width, height = frame.width, frame.height
        except (StopIteration, av.error.FFmpegError) as e:
            raise InputError(f"{str(p)!r}: its video stream has no decodable frame (corrupt or truncated): {e}") from e
        if rotation in (90, 270):
            width, height = height, width
        durations = [float(c.duration) / 1e6] if c.duration else []
        durations += [_stream_duration(vs)] + ([_stream_duration(c.streams.audio[ai])] if ai is not None else [])
        duration = max(durations) if c.duration is None else durations[0]
        if measure and not duration > 0:
            with open_container(p) as whole:  # from the first packet: decoding a frame above consumed some
                streams = [whole.streams.video[vi]] + ([whole.streams.audio[ai]] if ai is not None else [])
                duration = _demuxed_end(whole, streams) - start_offset(whole)
            if not duration > 0:
                raise InputError(f"{str(p)!r}: cannot tell how long it is (no duration in its header and no "
                                 f"timestamps in its packets); remux it with one: ffmpeg -i "
                                 f"{shlex.quote(p.name)} -c copy out.mkv")
        fps = float(vs.average_rate or vs.guessed_rate or vs.base_rate or 0.0)
        return VideoInfo(
            path=str(p.absolute()), duration=duration, width=width, height=height, fps=fps,
            has_audio=ai is not None, video_stream=vi, audio_stream=ai,
            n_video_streams=len(c.streams.video), n_audio_streams=len(c.streams.audio),
            n_subtitle_streams=len(c.streams.subtitles), rotation=rotation, content_hash=content_hash(p),
        )


def _no_video(p: Path, container) -> str:
    """Why ``p`` has nothing to watch, and what to do about it."""
    if container.streams.audio:
        art = " (its only picture is cover art)" if container.streams.video else ""
        return (f"{str(p)!r} has no video stream{art}: it is audio only, and VideoMind needs a video. To ingest "
                f"its speech, give it a picture track (its waveform, as long as the sound): ffmpeg -i "
                f"{shlex.quote(p.name)} -filter_complex \"[0:a]showwaves=s=640x360:rate=5,format=yuv420p[v]\" "
                f"-map \"[v]\" -map 0:a -c:v libx264 -c:a aac {shlex.quote(p.stem + '-video.mp4')}")
    kinds = ", ".join(sorted({s.type for s in container.streams}))
    found = f"{kinds} streams only" if kinds else "no streams"
    fmt = container.format.long_name or container.format.name
    return (f"{str(p)!r} has no video stream and no audio (FFmpeg reads it as {fmt}: {found}): it is not a video; "
            f"check it is the file you meant, and that it downloaded completely")


# ---------------------------------------------------------------------------------------------------------- frames
def start_offset(container) -> float:
    """Seconds before the container's first timestamp. MPEG-TS and some Matroska files start at 1.4 s or later
    (muxer delay); players show that instant as 0:00, and so do we: every time we report is ``pts - offset``."""
    return max(0.0, float(container.start_time) / 1e6) if container.start_time else 0.0


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


# A corrupt packet is skipped; this many undecodable packets in a row (seconds of media) means the rest is garbage.
MAX_BAD_PACKETS = 200
NOTE_GAP = 5.0  # seconds between skipped packets that still share one note
# Frame periods between two decoded frames that are B-frames skipped (x264 puts up to 3 in a row by default)
SKIPPED_RUN = 5
REORDER_FRAMES = 16  # the most frames a packet is stored ahead of its turn (H.264/HEVC allow 16 B-frames in a row)
# Seek retries: seconds before ``start`` to seek to when a seek overshot (MPEG-TS lands on the keyframe *after* the
# target, so the last GOP is unreachable); inf: decode from the beginning.
SEEK_BACK = (0.0, 1.0, 10.0, 60.0, math.inf)


def decode_packets(container, stream, note: Callable[[str], None], offset: float = 0.0) -> Iterator:
    """Decoded frames of ``stream``, one packet at a time, so that a corrupt packet costs that packet only.

    ``container.decode`` stops at the first packet the codec rejects: one bad packet in an hour-long file lost
    everything after it (ffmpeg itself skips it). Skipped packets are reported through ``note`` once per span
    (packets within :data:`NOTE_GAP` seconds of each other share one), at the latest when the generator is closed;
    decoding gives up after :data:`MAX_BAD_PACKETS` in a row or a demuxing error, saying where the decoded media
    ends. Times are seconds of the video (``pts - offset``).
    """
    import av

    kind, end, run = stream.type, 0.0, 0  # end: of the decoded media so far; run: undecodable packets in a row
    span: list = []  # [first t, last t, count, first error] of skipped packets not yet reported

    def note_span() -> None:
        if span:
            note(f"{kind}: skipped {span[2]} undecodable packet(s) between {span[0]:.1f} and {span[1]:.1f} s "
                 f"(corrupt data: {span[3]})")
            span.clear()

    try:
        for pkt in container.demux(stream):
            t = float(pkt.pts * pkt.time_base) - offset if pkt.pts is not None and pkt.time_base else end
            try:
                frames = pkt.decode()
            except av.error.FFmpegError as e:
                if span and t - span[1] > NOTE_GAP:
                    note_span()
                span[:] = [span[0], t, span[2] + 1, span[3]] if span else [t, t, 1, e]
                run += 1
                if run >= MAX_BAD_PACKETS:
                    span.clear()
                    note(f"{kind} decoding stopped at {end:.1f} s after {run} undecodable packets in a row "
                         f"(corrupt or truncated): {e}")
                    return
                continue
            run = 0
            for frame in frames:
                if frame.time is not None:
                    length = frame.samples / frame.sample_rate if kind == "audio" and frame.sample_rate else 0.0
                    end = max(end, frame.time - offset + length)
                if span and end - span[1] > NOTE_GAP:
                    note_span()
                yield frame
    except av.error.FFmpegError as e:  # the container itself is unreadable from here on
        note(f"{kind} decoding stopped at {end:.1f} s (corrupt or truncated): {e}")
    finally:
        note_span()


def timed_frames(path: str, kind: str, index: int, start: float, notes: list[str],
                 first_ok: Callable[[float | None], bool], configure: Callable | None = None) -> Iterator:
    """``(t, frame)`` of the ``index``-th ``kind`` ("video" / "audio") stream of ``path`` from a keyframe at or before
    ``start``; ``t`` is in seconds of the video (``pts - start offset``), None for a frame without a timestamp.

    A seek is checked by its first frame, ``first_ok(t)``; when it overshot (MPEG-TS lands on the keyframe
    *after* the target: the last GOP was unreachable) or gave nothing, the file is read again from further back
    (:data:`SEEK_BACK`), at worst from the beginning (also for unseekable raw streams). Frames before ``start`` are
    the caller's to discard. Notes (see :func:`decode_packets`) go to ``notes``, except those of a rejected attempt:
    the next one reads the same packets. ``configure(stream)`` sets decoder options before decoding.
    """
    import av

    for back in SEEK_BACK if start > 0 else (math.inf,):
        target = max(0.0, start - back)
        attempt: list[str] = []
        with open_container(path) as c:
            st = getattr(c.streams, kind)[index]
            if configure is not None:
                configure(st)
            offset = start_offset(c)
            if target > 0:
                try:
                    c.seek(int((target + offset) / st.time_base), stream=st, backward=True, any_frame=False)
                except av.error.FFmpegError as e:  # e.g. a raw .h264: only a read from the beginning works
                    logger.debug("%s: seek to %.1f s failed (%s)", path, target, e)
                    continue
            packets = decode_packets(c, st, lambda msg, sink=attempt: sink.append(msg), offset)
            try:
                first = next(packets, None)
                if target > 0 and (first is None or not first_ok(_time(first, offset))):
                    logger.debug("%s: seek to %.1f s overshot %.1f s; reading from further back", path, target, start)
                    packets.close()
                    attempt.clear()
                    continue
                if first is not None:
                    yield _time(first, offset), first
                    for frame in packets:
                        notes.extend(attempt)  # as they come: the pipeline reads them while decoding goes on
                        attempt.clear()
                        yield _time(frame, offset), frame
            finally:
                packets.close()  # reports a pending skipped span
                notes.extend(attempt)
            return


def _time(frame, offset: float) -> float | None:
    return None if frame.time is None else frame.time - offset


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

    stream_end: list[float | None] = [None]  # where the video stream's header says it ends (video clock)
    skipping = [False]  # non-reference frames are not decoded
    # Sampling far sparser than the frame rate: skip decoding non-reference (B) frames, ~1.4x faster. A sample
    # between two reference frames then shows the next one, a frame or two (<= ~0.1 s) after its instant (a B-frame
    # at a cut usually shows the picture after it) -- where frames come at a steady rate only.
    skip = fps <= 5 and info.fps >= 4 * fps and _steady_rate(info, start, end)

    def configure(vs) -> None:
        vs.thread_type = "AUTO"
        if vs.duration and vs.time_base:
            stream_end[0] = float(((vs.start_time or 0) + vs.duration) * vs.time_base) - start_offset(vs.container)
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
        report.notes.append(_frames_end_note(info, min(prev + length, info.duration), stream_end[0]))


def _frames_end_note(info: VideoInfo, frames_end: float, stream_end: float | None) -> str:
    """The note for video frames that end before the file does: a video stream shorter than its audio (a player
    shows its last frame, or black, for the rest) or, where the stream's header promised more, a truncated file."""
    if stream_end is not None and frames_end >= stream_end - 1.0:
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

