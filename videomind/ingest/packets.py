"""Decode one stream of a media file packet by packet: a corrupt packet costs that packet only, and a seek that
overshot (MPEG-TS lands on the keyframe after the target) is retried from further back. Shared by the video frames
(decode.py) and the audio (audio.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator

from videomind.ingest.probe import open_container, start_offset

logger = logging.getLogger(__name__)


# A corrupt packet is skipped; this many undecodable packets in a row (seconds of media) means the rest is garbage.
MAX_BAD_PACKETS = 200
NOTE_GAP = 5.0  # seconds between skipped packets that still share one note
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
