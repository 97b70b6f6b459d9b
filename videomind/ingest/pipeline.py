"""The streaming ingestion pipeline: a video file or a live source -> an iterator of :class:`Chunk` s, in time order.

:class:`IngestPipeline` turns its arguments into a :class:`~videomind.ingest.sources.Source` (the decoders of a
file, or live iterators sampled onto the same grid) and hands it to a :class:`~videomind.ingest.run.RunState`,
whose threads overlap decoding, ASR and the visual stages. Chunks are windows
[k * chunk_seconds, (k+1) * chunk_seconds) of the global grid; ``run(path, start_at=t)`` seeks to ``t`` and starts
there (the memory store's resume point).

Partial results are documented in ``chunk.notes``: no audio stream ("audio missing: speech memory empty"), a
truncated or corrupt file (where decoding stopped, which packets were skipped).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from videomind.config import Config
from videomind.errors import InputError
from videomind.ingest import decode, probe
from videomind.ingest.cache import StageCache
from videomind.ingest.progress import ProgressEvent
from videomind.ingest.run import RunState
from videomind.ingest.sources import Source, audio_from, file_edges, live_edges, sample_live
from videomind.ingest.workers import StageTimes
from videomind.types import Chunk, TimedText, VideoInfo

logger = logging.getLogger(__name__)

AUDIO_MISSING = "audio missing: speech memory empty"
# Seconds of audio before the end of the stored speech that a resumed run transcribes again (and drops): Whisper
# loses a first word cut at its start.
SPEECH_CONTEXT = 1.0


def _read_once(path: str) -> Callable[[float], list[TimedText]]:
    """A finished file's subtitles as :attr:`Source.subtitles` gives them: read at the first chunk, kept after."""
    from videomind.ingest.subtitles import read_subtitles

    cues: list[list[TimedText]] = []

    def get(until: float) -> list[TimedText]:
        if not cues:
            cues.append(read_subtitles(path))
        return cues[0]

    return get


class IngestPipeline:
    """Turn a video into observations, chunk by chunk.

    Args:
        config: the root config; ingestion reads ``config.ingest`` and ``config.models``.
        progress: called with a :class:`ProgressEvent` per stage and chunk (from the caller's thread).
        captioner: ``caption(images, transcript) -> str``; used only when ``config.models.vlm`` is set and
            ``config.ingest.captions`` is true.
        backend: frame decoder, "auto" (PyAV, decord fallback), "pyav" or "decord".
        keyframe_gap: seconds between keyframes in a static shot (keyframes are what OCR reads).
        asr_window: seconds of audio per Whisper call for files (whole chunks; longer windows waste less of
            Whisper's fixed 30 s decoding windows); the visual stages run that far ahead, holding their chunks
            (~5 MB each). Live input uses one chunk per call, for latency.
        cache: the video's :class:`StageCache`: file runs reuse its ASR, OCR, image-encoder and caption outputs
            computed under the same stage settings and store the new ones (decoding and scene detection always
            re-run); ``cache_stats`` counts its hits and misses per stage. Live runs never use it (no content hash).
    """

    def __init__(self, config: Config, progress: Callable[[ProgressEvent], None] | None = None,
                 captioner: Callable | None = None, backend: str = "auto", keyframe_gap: float = 8.0,
                 asr_window: float = 180.0, cache: StageCache | None = None):
        self.config = config
        self.cfg = config.ingest
        self.progress = progress
        self.captioner = captioner
        self.backend = backend
        self.keyframe_gap = keyframe_gap
        self.asr_window = asr_window
        self.cache = cache
        self.times = StageTimes()

    @property
    def cache_stats(self) -> dict[str, dict[str, int]]:
        """``{stage: {"hit": n, "miss": m}}`` of the stage cache ({} without one)."""
        return self.cache.stats if self.cache is not None else {}

    # ------------------------------------------------------------------------------------------------- public
    def probe(self, path) -> VideoInfo:
        """Describe ``path`` (streams chosen, rotation, duration, content hash).

        Raises:
            InputError: missing, empty, corrupt or non-video file, or a file without a video stream.
        """
        return probe.probe(path)

    def run(self, path, start_at: float = 0.0, info: VideoInfo | None = None, first_shot: int = 0,
            speech_from: float = 0.0) -> Iterator[Chunk]:
        """Yield the chunks of ``path`` from ``start_at`` (seconds) to the end, in time order.

        A resumed run (``start_at`` > 0) knows nothing of the frames before: its first frame opens a shot (numbered
        ``first_shot``; pass the stored shot count to keep indices unique) and is a keyframe. A speech segment
        belongs to the chunk where it starts but may end past that chunk's end: pass the end of the last stored
        speech segment as ``speech_from`` and the words before it are not transcribed (and stored) twice.

        Raises:
            InputError: the file cannot be ingested at all (see :meth:`probe`).
            ModelNotFoundError / DependencyMissing: a configured model cannot be loaded (before any chunk).
        """
        from videomind.ingest.audio import iter_audio

        info = info or self.probe(path)
        if not info.duration > 0:  # never an empty memory marked complete (probe measures or refuses)
            raise InputError(f"{info.path!r} has no known duration, so nothing would be ingested; remux it with "
                             f"one: ffmpeg -i {shlex.quote(info.path)} -c copy out.mkv")
        edges = file_edges(info.duration, start_at, self.cfg.chunk_seconds)
        if len(edges) < 2:  # resuming a memory that already reaches the end
            return
        self.emit("probe", 1, 1, f"{info.width}x{info.height} {info.duration:.1f}s "
                  f"{'with' if info.has_audio else 'without'} audio")
        t0, t1 = edges[0], edges[-1]
        a0 = max(t0, speech_from - SPEECH_CONTEXT)
        source = Source(
            frames=lambda rep: decode.iter_frames(info, t0, t1, self.cfg.fps, self.cfg.frame_size, rep, self.backend),
            audio=(lambda rep: iter_audio(info, a0, t1, report=rep)) if info.has_audio else None,
            edges=lambda: iter(edges), total=info.duration, n_chunks=len(edges) - 1,
            subtitles=_read_once(info.path) if self.cfg.subtitles else None,
            notes=[] if info.has_audio else [AUDIO_MISSING], asr_window=self.asr_window, cache=self.cache,
            speech_from=speech_from,
        )
        yield from self._run(source, first_shot)

    def run_live(self, frames: Iterable[tuple[float, np.ndarray]], audio: Iterable | None = None,
                 start: float = 0.0, first_shot: int = 0, speech_from: float = 0.0,
                 length: Callable[[], float] | None = None,
                 subtitles: Callable[[float], list[TimedText]] | None = None) -> Iterator[Chunk]:
        """Ingest a live source: ``frames`` yields ``(t, rgb uint8 [H, W, 3])`` in time order (any rate, any
        size: sampled to ``ingest.fps`` and scaled to ``ingest.frame_size`` here); ``audio`` yields
        :class:`~videomind.ingest.audio.AudioBlock` s (16 kHz mono float32) or is None.

        A chunk is yielded as soon as its window is complete (the first frame past its end arrived, plus ~5 s of
        audio for the speech cut), so the memory built so far can be queried while the source continues. The last
        chunk ends where the data ends: at ``length()`` when it tells (a followed file's real length), else a
        sampling period after the last frame at the latest. A resumed run (``start`` > 0) passes ``first_shot`` and
        ``speech_from`` as :meth:`run` does: the audio before ``speech_from`` is skipped (but for a second of
        context) and the words before it are dropped, so speech stored before the interruption is not stored twice.

        ``subtitles(until)`` gives the source's cues once its frames have reached ``until`` (a followed file's:
        :class:`~videomind.ingest.follow.RecordingSubtitles`), stored when ``ingest.subtitles`` is on; a cue belongs
        to the chunk where it starts, so a resumed run does not store the cues before ``start`` again.
        """
        a0 = speech_from - SPEECH_CONTEXT
        source = Source(
            frames=lambda rep: sample_live(frames, start, self.cfg.fps, self.cfg.frame_size),
            audio=(lambda rep: audio_from(audio, a0)) if audio is not None else None,
            edges=lambda: live_edges(start, self.cfg.chunk_seconds), total=None, live=True,
            subtitles=subtitles if self.cfg.subtitles else None,
            notes=[] if audio is not None else [AUDIO_MISSING], speech_from=speech_from, length=length,
        )
        yield from self._run(source, first_shot)

    # ------------------------------------------------------------------------------------------------ helpers
    def _run(self, source: Source, first_shot: int) -> Iterator[Chunk]:
        state = RunState(self, source, first_shot)
        try:
            yield from state.chunks()
        finally:
            state.close()
            if source.cache is not None:
                logger.info("stage cache %s: %s", source.cache.path.name, source.cache.stats)

    def emit(self, stage: str, done: float, total: float | None, message: str = "") -> None:
        """Report one :class:`ProgressEvent` to the ``progress`` callback, if any (the run state's stages call it)."""
        if self.progress is not None:
            self.progress(ProgressEvent(stage, float(done), None if total is None else float(total), message))
