"""Audio: decode the chosen audio stream to 16 kHz mono float32, streamed in bounded blocks.

PyAV decodes and resamples (libswresample), so any codec, rate or channel layout works. Blocks are yielded as soon
as ``block_seconds`` of audio is ready; nothing ever holds the whole track. Times come from the stream's
timestamps after a seek, so ``start`` can be anywhere in the file. Where the timestamps skip (a corrupt packet was
dropped, the audio starts late) the span is filled with silence: the resampler only counts samples, so without it
every later sample would come early by the span's length and speech would drift off the video clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

import numpy as np

from videomind.ingest.decode import DecodeReport
from videomind.ingest.packets import timed_frames
from videomind.types import VideoInfo

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# Seconds of timestamp jump filled with silence: above the rounding of container clocks (Matroska: 1 ms), below one
# codec packet (AAC 1024 samples: 21-128 ms, Opus 20 ms), so a lost packet is always filled and rounding never is.
GAP_TOLERANCE = 0.005
SILENCE_PIECE = 1.0  # seconds per silent frame: an hour-long gap is streamed, never allocated at once
NOTE_SILENCE = 1.0  # a filled gap at least this long is a chunk note (speech memory is empty there)


@dataclass
class AudioBlock:
    """``samples``: float32 [N] mono at 16 kHz, starting at ``start`` seconds of the video."""

    start: float
    samples: np.ndarray

    @property
    def end(self) -> float:
        return self.start + len(self.samples) / SAMPLE_RATE


def iter_audio(info: VideoInfo, start: float = 0.0, end: float | None = None, block_seconds: float = 10.0,
               report: DecodeReport | None = None) -> Iterator[AudioBlock]:
    """Yield consecutive :class:`AudioBlock` s covering [start, end) of the chosen audio stream.

    Nothing is yielded when the file has no audio. A corrupt packet is skipped and decoding goes on; skipped spans,
    and where decoding stopped when it gave up, are recorded in ``report.notes`` (the caller turns them into chunk
    notes) instead of raising. Gaps in the timestamps (skipped packets, audio starting after ``start``) become
    silence, so the blocks are contiguous from ``start`` and every sample sits at its time on the video clock.
    """
    import av

    report = report if report is not None else DecodeReport()
    if info.audio_stream is None:
        return
    end = info.duration if end is None else end
    block = int(block_seconds * SAMPLE_RATE)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    parts: list[np.ndarray] = []
    have = 0
    pos: float | None = None  # time of the first buffered sample
    # A seek is trusted when its first frame starts at or just after ``start`` (an AAC frame is ~23 ms).
    first_ok = lambda t: t is not None and t <= start + 0.05  # noqa: E731
    with closing(timed_frames(info.path, "audio", info.audio_stream, start, report.notes, first_ok)) as frames:
        for t, frame in _fill_gaps(frames, start, report.notes):
            if pos is None:
                pos = max(0.0, t) if t is not None else start
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
                have += out.samples
            while have >= block:
                pos, parts, have, blk = _emit(pos, parts, have, block, start)
                if blk is not None:
                    yield blk
            if pos >= end:
                return
    for out in resampler.resample(None):  # flush
        parts.append(out.to_ndarray().reshape(-1))
        have += out.samples
    while have > 0 and pos is not None:
        pos, parts, have, blk = _emit(pos, parts, have, min(block, have), start)
        if blk is not None:
            yield blk


def _fill_gaps(frames: Iterator, start: float, notes: list[str]) -> Iterator:
    """``(t, frame)`` of ``frames`` with silent frames (same format, layout and rate) wherever a frame starts later
    than the previous one ended, or the first one later than ``start``."""
    expected: float | None = start  # where the next frame should start; None while the clock is unknown
    for t, frame in frames:
        rate = frame.sample_rate
        if t is not None and expected is not None and rate and t - expected > GAP_TOLERANCE:
            if t - expected >= NOTE_SILENCE:
                notes.append(f"audio: no audio between {expected:.1f} and {t:.1f} s (filled with silence)")
            logger.debug("audio gap of %.3f s at %.3f s filled with silence", t - expected, expected)
            yield from _silence(frame, expected, t)
        if t is not None:
            expected = t + frame.samples / rate if rate else None
        elif expected is not None and rate:  # an untimed frame follows the previous one
            expected += frame.samples / rate
        yield t, frame


def _silence(like, t0: float, t1: float) -> Iterator:
    """Silent frames shaped like ``like`` covering [t0, t1), :data:`SILENCE_PIECE` seconds at most each. They go
    through the resampler like decoded ones, which keeps its filter state continuous across the gap."""
    import av

    rate = like.sample_rate
    n = int(round((t1 - t0) * rate))
    piece = max(1, int(SILENCE_PIECE * rate))
    for i in range(0, n, piece):
        f = av.AudioFrame(format=like.format, layout=like.layout, samples=min(piece, n - i))
        for plane in f.planes:
            plane.update(bytes(plane.buffer_size))  # the frame's buffer is not zeroed on allocation
        f.sample_rate = rate
        yield t0 + i / rate, f


def _emit(pos: float, parts: list[np.ndarray], have: int, n: int, start: float):
    """Split ``n`` samples off the buffer; drop those before ``start`` (a seek lands on an earlier packet)."""
    buf = np.concatenate(parts) if len(parts) > 1 else parts[0]
    out, rest = buf[:n], buf[n:]
    t = pos
    new_pos = pos + n / SAMPLE_RATE
    skip = int(round((start - t) * SAMPLE_RATE)) if t < start else 0
    blk = None
    if skip < n:
        blk = AudioBlock(max(t, start) if skip > 0 else t, np.ascontiguousarray(out[skip:], dtype=np.float32))
    return new_pos, ([rest] if len(rest) else []), len(rest), blk


def read_audio(info: VideoInfo, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """All audio in [start, end) as one float32 array (small spans only: tests, the inspect tool)."""
    end = info.duration if end is None else end
    blocks = [b for b in iter_audio(info, start, end)]
    if not blocks:
        return np.zeros(0, np.float32)
    t0 = blocks[0].start
    a = np.concatenate([b.samples for b in blocks])
    i0 = max(0, int(round((start - t0) * SAMPLE_RATE)))
    return a[i0:i0 + int(round((end - start) * SAMPLE_RATE))]
