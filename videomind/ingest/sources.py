"""Where a run's observations come from: a file (decoders) or live iterators, and the grid of chunk boundaries.

A :class:`Source` is what :class:`~videomind.ingest.run.RunState` consumes; ``IngestPipeline.run`` and
``run_live`` build one. Live input arrives at its own rate and size, so :func:`sample_live` puts it on the
``ingest.fps`` grid the decoders sample files on.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from videomind.ingest import decode
from videomind.ingest.cache import StageCache
from videomind.ingest.decode import DecodeReport
from videomind.types import TimedText


@dataclass
class Source:
    """Where a run's observations come from: a file (decoders) or live iterators."""

    frames: Callable[[DecodeReport], Iterator[tuple[float, np.ndarray]]]
    audio: Callable[[DecodeReport], Iterator] | None  # -> AudioBlocks (16 kHz mono float32)
    edges: Callable[[], Iterator[float]]  # a fresh iterator of chunk boundaries (first = start); endless if live
    total: float | None  # seconds, for progress; None when unknown (live)
    n_chunks: int | None = None
    # (until) -> the cues (time order) once the frames reached ``until``: asked as each chunk is finished, with its end
    subtitles: Callable[[float], list[TimedText]] | None = None
    notes: list[str] = field(default_factory=list)
    live: bool = False
    asr_window: float = 0.0  # seconds of audio per Whisper call (0: one chunk)
    cache: StageCache | None = None  # files only: live input has no content hash to key it by
    speech_from: float = 0.0  # speech before this is already stored (a resumed run): drop it
    length: Callable[[], float] | None = None  # live: where the source really ends, asked once it has (0.0: unknown)


def file_edges(duration: float, start_at: float, chunk_seconds: float) -> list[float]:
    """The chunk boundaries of a file from ``start_at`` to ``duration`` on the global ``k * chunk_seconds`` grid
    (the first is ``start_at``, the last ``duration``); [] when ``start_at`` is already at the end."""
    cs = chunk_seconds
    start = max(0.0, float(start_at))
    if start >= duration - 1e-3:
        return []
    edges = [start]
    k = math.floor(start / cs + 1e-9) + 1
    while k * cs < duration - 1e-3:
        edges.append(k * cs)
        k += 1
    edges.append(duration)
    return edges


def live_edges(start: float, chunk_seconds: float) -> Iterator[float]:
    """The endless chunk boundaries of a live source: ``start``, then the global grid after it."""
    cs = chunk_seconds
    k0 = math.floor(start / cs + 1e-9)
    return itertools.chain([start], (k * cs for k in itertools.count(k0 + 1)))


def sample_live(frames: Iterable[tuple[float, np.ndarray]], start: float, fps: float,
                size: int) -> Iterator[tuple[float, np.ndarray]]:
    """Keep the first frame at or after each instant of the ``k / fps`` grid, scaled to ``size``."""
    from PIL import Image

    k = math.ceil(start * fps - 1e-6)
    for t, img in frames:
        if t < k / fps - 1e-4:
            continue
        grid_t = k / fps
        while (k + 1) / fps <= t + 1e-4:  # a gap in the source: skip the instants it missed
            k += 1
            grid_t = k / fps
        k += 1
        img = np.asarray(img, dtype=np.uint8)
        w, h = decode.scaled_size(img.shape[1], img.shape[0], size)
        if (w, h) != (img.shape[1], img.shape[0]):
            img = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
        yield grid_t, img


def audio_from(blocks: Iterable, t: float) -> Iterator:
    """The :class:`~videomind.ingest.audio.AudioBlock` s of ``blocks`` without their audio before ``t``."""
    from videomind.ingest.audio import SAMPLE_RATE, AudioBlock

    for blk in blocks:
        if blk.end <= t:
            continue
        if blk.start < t:  # cut on a sample so the times stay on the block's sample grid
            i = int(round((t - blk.start) * SAMPLE_RATE))
            blk = AudioBlock(blk.start + i / SAMPLE_RATE, blk.samples[i:])
        yield blk
