"""Follow a video file that is still being written (a recording in progress) as a live source.

A recorder (OBS, ffmpeg, a capture card) appends to the file while we read it. Each poll re-opens the file, seeks
to where the previous pass stopped and decodes what is new. The newest ``settle`` seconds of a pass are held back
until the next one, because the packets at the end of a growing file may be incomplete. The file counts as
finished once it has not grown for ``idle_timeout`` seconds (or when ``stop`` is set); the last pass then reads to
the end without holding anything back.

Containers that can be read while they grow: MPEG-TS (.ts), Matroska/WebM (.mkv/.webm), fragmented MP4 and FLV.
A plain MP4/MOV writes its index when the recording stops, so it is unreadable until then (the error says so).

The two iterators (frames, audio) are independent -- the pipeline consumes them from two threads -- and each
re-opens the file on its own. Their output plugs into :meth:`IngestPipeline.run_live`, with the recording's
subtitles (:class:`RecordingSubtitles`), read as each chunk is finished.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from videomind.errors import InputError
from videomind.ingest import decode, probe
from videomind.ingest.audio import AudioBlock, iter_audio
from videomind.types import TimedText, VideoInfo

logger = logging.getLogger(__name__)

T = TypeVar("T")
HORIZON = 24 * 3600.0  # a pass asks for this much past its start; it ends at the end of the data anyway

NOT_READABLE_YET = ("{path!r} is not readable as a growing video: a plain MP4/MOV is only readable once the recording "
                    "stops. Record to MPEG-TS or Matroska (e.g. ffmpeg ... -f mpegts rec.ts, OBS 'mkv'), or to a "
                    "fragmented MP4 (-movflags frag_keyframe+empty_moov). Last error: {error}")


@dataclass
class GrowingFile:
    """A file that may still be growing.

    Args:
        path: the recording.
        poll: seconds between looks at the file.
        idle_timeout: the recording is over once the file has not grown for this long.
        settle: seconds at the end of the data held back until the next pass (partial packets).
        stop: set it to end following now (after one last full pass).
    """

    path: str | os.PathLike
    poll: float = 1.0
    idle_timeout: float = 10.0
    settle: float = 1.0
    stop: threading.Event | None = None

    def wait_readable(self) -> VideoInfo:
        """Block until the file exists and has a decodable video frame; return its probe (duration: so far).

        Raises:
            InputError: the file stayed unreadable for ``idle_timeout`` seconds without growing.
        """
        if Path(self.path).is_dir():
            raise InputError(f"{str(self.path)!r} is a directory: give the recording's file, e.g. rec.ts")
        growth, error = self._growth(), ""
        while True:
            over = next(growth)
            if _size(self.path) > 0:
                try:
                    return probe.probe(self.path, measure=False)
                except InputError as e:
                    error = str(e)
            if over and not error:  # nothing was ever there to read: the MP4 advice would point the wrong way
                state = "is still empty" if Path(self.path).exists() else "does not exist"
                raise InputError(f"{str(self.path)!r} {state} after waiting {self.idle_timeout:g} s: check the "
                                 f"path, and that the recording has started")
            if over:
                raise InputError(NOT_READABLE_YET.format(path=str(self.path), error=error))
            time.sleep(self.poll)

    def frames(self, fps: float, size: int, start: float = 0.0) -> Iterator[tuple[float, np.ndarray]]:
        """``(t, rgb)`` on the global ``k / fps`` grid from ``start`` on, as the recording grows."""
        step = 0.5 / fps  # the next pass starts half a grid step after the last frame it gave

        def read(info: VideoInfo, pos: float) -> Iterator[tuple[float, tuple[float, np.ndarray]]]:
            for t, img in decode.iter_frames(info, pos, pos + HORIZON, fps, size, decode.DecodeReport(), "pyav"):
                yield t, (t, img)

        for _, item in self._follow(read, start, lambda t: t + step):
            yield item

    def audio(self, start: float = 0.0, block_seconds: float = 2.0) -> Iterator[AudioBlock]:
        """16 kHz mono :class:`AudioBlock` s from ``start`` on, contiguous across passes."""

        def read(info: VideoInfo, pos: float) -> Iterator[tuple[float, AudioBlock]]:
            if info.audio_stream is None:
                return
            for blk in iter_audio(info, pos, pos + HORIZON, block_seconds, decode.DecodeReport()):
                yield blk.end, blk

        for _, blk in self._follow(read, start, lambda end: end):
            yield blk

    def length(self, since: float = 0.0) -> float:
        """How long the recording is now, in seconds (0.0 when it cannot be told): once it is finished, where its
        frames and sound really end, which its frames sampled at ``fps`` tell only to within a sampling period.
        ``since``: the length already known (see :func:`recorded_length`)."""
        try:
            return recorded_length(probe.probe(self.path, measure=False), since)
        except InputError as e:
            logger.debug("cannot tell how long %s is: %s", self.path, e)
            return 0.0

    # ---------------------------------------------------------------------------------------------------- helpers
    def _follow(self, read: Callable[[VideoInfo, float], Iterator[tuple[float, T]]], start: float,
                next_pos: Callable[[float], float]) -> Iterator[tuple[float, T]]:
        """Repeated passes of ``read(info, pos)`` (items keyed by their end time, in order) over the growing file."""
        pos, growth = start, self._growth()
        while True:
            final = next(growth)
            info = self._probe()
            if info is not None:
                held: deque[tuple[float, T]] = deque()
                for key, item in read(info, pos):
                    held.append((key, item))
                    while held and held[0][0] <= key - self.settle:
                        k, it = held.popleft()
                        pos = next_pos(k)
                        yield k, it
                if final:
                    yield from held
                    return
            elif final:
                return
            time.sleep(self.poll)

    def _growth(self) -> Iterator[bool]:
        """At each poll: whether the recording is over (no growth for ``idle_timeout`` seconds, or ``stop``)."""
        last_size, last_change = -1, time.monotonic()
        while True:
            size, now = _size(self.path), time.monotonic()
            if size != last_size:
                last_size, last_change = size, now
            yield now - last_change >= self.idle_timeout or self._stopped()

    def _probe(self) -> VideoInfo | None:
        try:
            info = probe.probe(self.path, measure=False)
        except InputError as e:  # e.g. a torn header while the recorder rewrites it: try again next poll
            logger.debug("not readable yet: %s", e)
            return None
        return replace(info, duration=info.duration + HORIZON)  # decoders clamp to the duration: don't

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


class RecordingSubtitles:
    """The text subtitles of a recording being followed, chunk by chunk: the sidecar (.srt/.vtt) or the embedded
    track that :func:`~videomind.ingest.subtitles.read_subtitles` picks for a finished file, read again whenever a
    chunk ends past what the last read covered.

    A read when a chunk is finished sees every cue that starts in it: the chunk's frames up to its end (and
    ``settle`` seconds more) were in the file, and a muxer writes a cue among the packets of its start time (MKV,
    WebM, fragmented MP4). A file that is finished, or grew ahead of ingestion, is covered as far as its length
    then, so following it reads its subtitles once or twice, not once per chunk.
    """

    def __init__(self, recording: GrowingFile, tries: int = 3):
        self.recording, self.tries = recording, tries
        self.cues: list[TimedText] = []
        self.covered = 0.0  # seconds: every cue starting before this was in the file at the last read

    def __call__(self, until: float) -> list[TimedText]:
        """All the cues of the recording, in time order, once its frames have reached ``until`` (seconds).

        Raises:
            InputError: the file could not be read ``tries`` times, ``poll`` seconds apart.
        """
        from videomind.ingest.subtitles import read_subtitles

        if until <= self.covered:
            return self.cues
        length = self.recording.length(since=self.covered)  # before reading: the file holds at least that much
        for attempt in range(self.tries):
            try:
                self.cues = read_subtitles(self.recording.path)
                break
            except InputError:  # e.g. the recorder rewriting the header as we open it
                if attempt == self.tries - 1:
                    raise
                time.sleep(self.recording.poll)
        self.covered = max(until, length - self.recording.settle)
        return self.cues


def recorded_length(info: VideoInfo, since: float = 0.0) -> float:
    """How long the recording probed as ``info`` is now, in seconds; 0.0 when it cannot be told.

    Its header's duration when it states one (MPEG-TS, a finished file); else (Matroska/WebM state none while they
    grow, and probing does not measure a growing file) where its packets end. Pass the length already known as
    ``since``: only the packets from there on are read, and not decoded, so it costs I/O over what is new.
    """
    import av

    if info.duration > 0:
        return info.duration
    try:
        return probe.demuxed_length(info, since)
    except (InputError, av.error.FFmpegError) as e:  # torn or corrupt data: the length is unknown, not an error
        logger.debug("cannot measure %s: %s", info.path, e)
        return 0.0


def recording_key(path: str | os.PathLike, head: int = 4096, generation: int = 0) -> str:
    """A stable key for a recording while it grows: its absolute path and first 4 KiB (the container header, written
    before the first frame is readable and never changed after).

    Another recording written to the same path later often has the same first 4 KiB (same recorder settings, a dark
    first second): ``generation`` n > 0 keys the n-th such one, told apart by :func:`same_recording`."""
    p = Path(path).expanduser().absolute()
    h = hashlib.sha256(str(p).encode())
    with open(p, "rb") as f:
        h.update(f.read(head))
    if generation:
        h.update(f"#{generation}".encode())
    return "rec-" + h.hexdigest()[:28]


def recording_identity(path: str | os.PathLike) -> dict:
    """What identifies a finished recording, for the manifest of the memory made by following it: its size and
    the content hash of its bytes (as ingest() keys a file)."""
    size = Path(path).stat().st_size
    return {"size": size, "content_hash": probe.content_hash(path, size)}


def same_recording(identity, path: str | os.PathLike) -> bool:
    """Whether the file at ``path`` is the recording ``identity`` (:func:`recording_identity`) was taken of, or
    that recording grown since (a recorder appends): its first ``size`` bytes hash the same. False for a new
    recording at that path, and without an identity (a memory made by an older VideoMind)."""
    size = identity.get("size") if isinstance(identity, dict) else None
    if not isinstance(size, int) or _size(path) < size:
        return False
    try:
        return probe.content_hash(path, size) == identity.get("content_hash")
    except OSError:  # gone or unreadable since: nothing to reuse its memory for
        return False


def _size(path: str | os.PathLike) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return -1
