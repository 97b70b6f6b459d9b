"""The streaming ingestion pipeline: a video file -> an iterator of :class:`Chunk` s, in time order.

Three threads overlap the stages, linked by bounded queues so memory stays flat whatever the duration:

    frames thread : decode + scale sampled frames (PyAV / decord)   --q_frames (<= ~1 chunk of frames)-->  main
    speech thread : decode audio -> 16 kHz mono -> Whisper windows  --q_speech (<= 2 chunks of segments)--> main
    main (caller) : descriptors -> shots/keyframes -> embeddings -> OCR -> subtitles + speech -> Chunk

CTranslate2 (Whisper), onnxruntime (OCR) and libav (decoding) release the GIL, so on two cores ASR runs beside the
visual stages instead of after them. Chunks are windows [k * chunk_seconds, (k+1) * chunk_seconds) of the global
grid; ``run(path, start_at=t)`` seeks to ``t`` and starts there (the memory store's resume point).

Partial results are documented in ``chunk.notes``: no audio stream ("audio missing: speech memory empty"), a
truncated or corrupt file (where decoding stopped, which packets were skipped).
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from videomind.config import Config
from videomind.errors import InputError
from videomind.ingest import decode
from videomind.ingest.cache import StageCache, stage_key
from videomind.ingest.decode import DecodeReport, open_frames  # noqa: F401  (re-exported for the agents' tools)
from videomind.ingest.progress import ProgressEvent
from videomind.ingest.workers import END, StageTimes, Worker
from videomind.types import Chunk, Keyframe, Shot, TimedText, VideoInfo

logger = logging.getLogger(__name__)

AUDIO_MISSING = "audio missing: speech memory empty"
# Seconds of audio before the end of the stored speech that a resumed run transcribes again (and drops): Whisper
# loses a first word cut at its start.
SPEECH_CONTEXT = 1.0


@dataclass
class _Source:
    """Where a run's observations come from: a file (decoders) or live iterators."""

    frames: Callable[[DecodeReport], Iterator[tuple[float, np.ndarray]]]
    audio: Callable[[DecodeReport], Iterator] | None  # -> AudioBlocks (16 kHz mono float32)
    edges: Callable[[], Iterator[float]]  # a fresh iterator of chunk boundaries (first = start); endless if live
    total: float | None  # seconds, for progress; None when unknown (live)
    n_chunks: int | None = None
    subtitles: Callable[[], list[TimedText]] | None = None
    notes: list[str] = field(default_factory=list)
    live: bool = False
    asr_window: float = 0.0  # seconds of audio per Whisper call (0: one chunk)
    cache: StageCache | None = None  # files only: live input has no content hash to key it by
    speech_from: float = 0.0  # speech before this is already stored (a resumed run): drop it


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
        return decode.probe(path)

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
                             f"one: ffmpeg -i {info.path!r} -c copy out.mkv")
        edges = self._edges(info.duration, start_at)
        if len(edges) < 2:  # resuming a memory that already reaches the end
            return
        self._emit("probe", 1, 1, f"{info.width}x{info.height} {info.duration:.1f}s "
                   f"{'with' if info.has_audio else 'without'} audio")
        t0, t1 = edges[0], edges[-1]
        a0 = max(t0, speech_from - SPEECH_CONTEXT)
        source = _Source(
            frames=lambda rep: decode.iter_frames(info, t0, t1, self.cfg.fps, self.cfg.frame_size, rep, self.backend),
            audio=(lambda rep: iter_audio(info, a0, t1, report=rep)) if info.has_audio else None,
            edges=lambda: iter(edges), total=info.duration, n_chunks=len(edges) - 1,
            subtitles=(lambda: self._subtitles(info.path)) if self.cfg.subtitles else None,
            notes=[] if info.has_audio else [AUDIO_MISSING], asr_window=self.asr_window, cache=self.cache,
            speech_from=speech_from,
        )
        yield from self._run(source, first_shot)

    def run_live(self, frames: Iterable[tuple[float, np.ndarray]], audio: Iterable | None = None,
                 start: float = 0.0, first_shot: int = 0, speech_from: float = 0.0) -> Iterator[Chunk]:
        """Ingest a live source: ``frames`` yields ``(t, rgb uint8 [H, W, 3])`` in time order (any rate, any
        size: sampled to ``ingest.fps`` and scaled to ``ingest.frame_size`` here); ``audio`` yields
        :class:`~videomind.ingest.audio.AudioBlock` s (16 kHz mono float32) or is None.

        A chunk is yielded as soon as its window is complete (the first frame past its end arrived, plus ~5 s of
        audio for the speech cut), so the memory built so far can be queried while the source continues. The last
        chunk ends where the data ends. A resumed run (``start`` > 0) passes ``first_shot`` and ``speech_from`` as
        :meth:`run` does: the audio before ``speech_from`` is skipped (but for a second of context) and the words
        before it are dropped, so speech stored before the interruption is not stored twice.
        """

        cs = self.cfg.chunk_seconds
        k0 = math.floor(start / cs + 1e-9)
        def edges():
            return itertools.chain([start], (k * cs for k in itertools.count(k0 + 1)))

        a0 = speech_from - SPEECH_CONTEXT
        source = _Source(
            frames=lambda rep: _sample_live(frames, start, self.cfg.fps, self.cfg.frame_size),
            audio=(lambda rep: _audio_from(audio, a0)) if audio is not None else None,
            edges=edges, total=None, notes=[] if audio is not None else [AUDIO_MISSING], live=True,
            speech_from=speech_from,
        )
        yield from self._run(source, first_shot)

    # ------------------------------------------------------------------------------------------------ helpers
    def _run(self, source: _Source, first_shot: int) -> Iterator[Chunk]:
        state = _RunState(self, source, first_shot)
        try:
            yield from state.chunks()
        finally:
            state.close()
            if source.cache is not None:
                logger.info("stage cache %s: %s", source.cache.path.name, source.cache.stats)

    def _subtitles(self, path: str) -> list[TimedText]:
        from videomind.ingest.subtitles import read_subtitles

        t = time.perf_counter()
        try:
            return read_subtitles(path)
        finally:
            self.times.add("subtitles", time.perf_counter() - t)

    def _edges(self, duration: float, start_at: float) -> list[float]:
        cs = self.cfg.chunk_seconds
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

    def _emit(self, stage: str, done: float, total: float | None, message: str = "") -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(stage, float(done), None if total is None else float(total), message))


def _sample_live(frames: Iterable[tuple[float, np.ndarray]], start: float, fps: float,
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


def _audio_from(blocks: Iterable, t: float) -> Iterator:
    """The :class:`~videomind.ingest.audio.AudioBlock` s of ``blocks`` without their audio before ``t``."""
    from videomind.ingest.audio import SAMPLE_RATE, AudioBlock

    for blk in blocks:
        if blk.end <= t:
            continue
        if blk.start < t:  # cut on a sample so the times stay on the block's sample grid
            i = int(round((t - blk.start) * SAMPLE_RATE))
            blk = AudioBlock(blk.start + i / SAMPLE_RATE, blk.samples[i:])
        yield blk


class _RunState:
    """One run: models, workers and the streaming state of the shot detector and OCR tracker."""

    def __init__(self, pipe: IngestPipeline, source: _Source, first_shot: int = 0):
        from videomind.ingest.ocr import OcrTracker
        from videomind.ingest.scenes import ShotDetector
        from videomind.ingest.visual import make_embedder

        self.pipe, self.cfg, self.source = pipe, pipe.cfg, source
        models = pipe.config.models
        self.notes_once: list[str] = list(source.notes)
        t = time.perf_counter()
        self.embedder = make_embedder(models.visual_embed, models.device, models.allow_download)
        self.ocr = None
        if self.cfg.ocr:
            from videomind.ingest.ocr import load_engine

            self.ocr = load_engine(models.ocr)
        self.transcriber = None
        if self.cfg.asr and source.audio is not None:
            from videomind.ingest.asr import Transcriber

            self.transcriber = Transcriber(models.asr, models.device, self.cfg.asr_language, self.cfg.asr_vad,
                                           models.allow_download, cpu_threads=self.cfg.asr_threads)
        pipe.times.add("load_models", time.perf_counter() - t)
        self.subs: list[TimedText] = []
        if source.subtitles is not None:
            try:
                self.subs = source.subtitles()
            except InputError as e:
                self.notes_once.append(f"subtitles unreadable: {e}")
        self.detector = ShotDetector(threshold=self.cfg.scene_threshold, max_gap=pipe.keyframe_gap,
                                     first_shot=first_shot)
        self.tracker = OcrTracker()
        self.video_report, self.audio_report = DecodeReport(), DecodeReport()
        # The chunk boundaries are read by the main loop and the speech thread: each gets its own iterator.
        self.edges_main, self.edges_speech = source.edges(), source.edges()
        self.stop = threading.Event()
        self.frames = Worker("frames", self._produce_frames, int(self.cfg.fps * self.cfg.chunk_seconds) + 8, self.stop)
        self.speech = Worker("speech", self._produce_speech, 2, self.stop) if self.transcriber else None
        self.speech_buf: dict[int, list[TimedText]] = {}
        self.reported_v = self.reported_a = 0
        self.speech_done = self.speech is None
        self.pending: tuple[float, np.ndarray] | None = None
        self.frames_done = False
        self.last_frame_t = -1.0
        self.last_ocr: tuple[np.ndarray, list] | None = None

    # ------------------------------------------------------------------------------------------------ workers
    def _produce_frames(self, put) -> None:
        it = self.source.frames(self.video_report)
        t = time.perf_counter()
        for item in it:
            self.pipe.times.add("decode", time.perf_counter() - t)
            if not put(item):
                return
            t = time.perf_counter()
        self.pipe.times.add("decode", time.perf_counter() - t)

    def _produce_speech(self, put) -> None:
        from videomind.ingest.asr import drop_heard, speech_windows

        def timed_blocks():
            it = self.source.audio(self.audio_report)
            while True:
                t = time.perf_counter()
                blk = next(it, None)
                self.pipe.times.add("audio", time.perf_counter() - t)
                if blk is None:
                    return
                yield blk

        def timed_asr(samples, offset):
            key, hit = self._cached("asr", offset=round(float(offset), 6), samples=len(samples))
            if hit is not None:
                return [TimedText(**x) for x in hit]
            t = time.perf_counter()
            try:
                out = self.transcriber(samples, offset)
            finally:
                self.pipe.times.add("asr", time.perf_counter() - t)
            self._store("asr", key, [x.to_dict() for x in out])
            return out

        for i, segs in speech_windows(timed_blocks(), self.edges_speech, timed_asr, window=self.source.asr_window):
            if self.source.speech_from > 0:
                segs = drop_heard(segs, self.source.speech_from)
            if not put((i, segs)):
                return

    def _speech_ready(self, j: int, block: bool) -> bool:
        """True when chunk j's speech is in ``speech_buf`` or the speech thread has finished."""
        while j not in self.speech_buf and not self.speech_done:
            w = time.perf_counter()
            try:
                item = self.speech.get(block)
            except queue.Empty:
                return False
            finally:
                self.pipe.times.add("wait_asr", time.perf_counter() - w)
            if item is END:
                self.speech_done = True
            else:
                self.speech_buf[item[0]] = item[1]
        return True

    # -------------------------------------------------------------------------------------------------- chunks
    def chunks(self) -> Iterator[Chunk]:
        """Visual stages run up to ``max_ahead`` chunks ahead of the speech thread (ASR windows span several
        chunks); a chunk is yielded once its speech is in, in order."""
        self.frames.start()
        if self.speech:
            self.speech.start()
        self.t_wall = time.perf_counter()
        edges = self.edges_main
        t0 = next(edges)
        nxt = next(edges, None)
        base = math.floor(t0 / self.cfg.chunk_seconds + 1e-9)
        max_ahead = math.ceil(self.source.asr_window / self.cfg.chunk_seconds) + 1
        ready: deque[tuple[int, Chunk]] = deque()
        i = 0
        while nxt is not None:
            t1, nxt = nxt, next(edges, None)
            chunk = Chunk(index=base + i, start=t0, end=t1)
            self._visual(chunk, nxt is None)
            self.pipe._emit("decode", t1, self.source.total)
            self.pipe._emit("ocr", t1, self.source.total)
            ready.append((i, chunk))
            frames_over = self.frames_done and self.pending is None
            while ready:
                j, c = ready[0]
                must = nxt is None or len(ready) > max_ahead or (self.source.live and frames_over)
                if self.speech and not self._speech_ready(j, block=must):
                    break
                ready.popleft()
                final = False
                if self.source.live and frames_over and not ready:
                    if self.speech:
                        self._speech_ready(-1, block=True)  # wait for the rest of the speech: is any after j?
                    final = not any(v for k, v in self.speech_buf.items() if k > j)
                yield self._finish(j, c, final)
                if final:
                    return
            t0, i = t1, i + 1

    def _finish(self, i: int, chunk: Chunk, final_live: bool) -> Chunk:
        """Add speech, subtitles, captions and notes to a chunk whose visual stages are done."""
        t0, t1 = chunk.start, chunk.end
        if self.speech:
            chunk.texts.extend(self.speech_buf.pop(i, []))
            self.pipe._emit("asr", t1, self.source.total)
        if final_live:  # the last live chunk ends where its data ends
            ends = [self.last_frame_t + 1.0 / self.cfg.fps] + [x.end for x in chunk.texts]
            chunk.end = min(t1, max(t0 + 1e-3, *ends))
            chunk.shots = [Shot(x.index, x.start, min(x.end, chunk.end)) for x in chunk.shots]
            chunk.texts = [replace(x, end=min(x.end, chunk.end)) if x.source == "ocr" else x for x in chunk.texts]
        chunk.texts.extend(s for s in self.subs if t0 <= s.start < t1 or (i == 0 and s.start < t0 < s.end))
        self._captions(chunk)
        chunk.texts.sort(key=lambda x: (x.start, x.source))
        if i == 0:
            chunk.notes.extend(self.notes_once)
        for rep, attr in ((self.video_report, "reported_v"), (self.audio_report, "reported_a")):
            chunk.notes.extend(rep.notes[getattr(self, attr):])
            setattr(self, attr, len(rep.notes))
        self.pipe.times.seconds["wall"] = time.perf_counter() - self.t_wall
        self.pipe._emit("chunk", i + 1, self.source.n_chunks, f"{t0:.0f}-{chunk.end:.0f}s: {len(chunk.texts)} "
                        f"texts, {len(chunk.keyframes)} keyframes, {len(chunk.shots)} shots")
        return chunk

    def _next_frame(self):
        if self.pending is not None:
            item, self.pending = self.pending, None
            return item
        if self.frames_done:
            return None
        w = time.perf_counter()
        item = self.frames.get()
        self.pipe.times.add("wait_decode", time.perf_counter() - w)
        if item is END:
            self.frames_done = True
            return None
        return item

    def _visual(self, chunk: Chunk, last: bool) -> None:
        from videomind.ingest.visual import PerceptualEmbedder, grey_grid, perceptual_descriptor

        times = self.pipe.times
        keyframes: list[tuple[Keyframe, np.ndarray]] = []
        while True:
            item = self._next_frame()
            if item is None:
                break
            t, img = item
            if t >= chunk.end and not last:
                self.pending = item
                break
            self.last_frame_t = t
            s = time.perf_counter()
            desc = perceptual_descriptor(img)
            d = self.detector.push(t, desc, grey_grid(img))
            times.add("scenes", time.perf_counter() - s)
            if d.keyframe:
                keyframes.append((Keyframe(t=t, shot=d.shot, image=img, embedding=desc), desc))
        chunk.shots = self.detector.shots_in(chunk.start, chunk.end, final=last)
        if keyframes and not isinstance(self.embedder, PerceptualEmbedder):
            s = time.perf_counter()
            cached = [self._cached("visual_embed", t=round(k.t, 4)) for k, _ in keyframes]
            todo = [i for i, (_, e) in enumerate(cached) if e is None]
            emb = self.embedder.embed_images([keyframes[i][0].image for i in todo]) if todo else []
            for i, e in zip(todo, emb):
                self._store("visual_embed", cached[i][0], e)
                cached[i] = (cached[i][0], e)
            for (k, _), (_, e) in zip(keyframes, cached):
                k.embedding = e
            times.add("visual_embed", time.perf_counter() - s)
        chunk.keyframes = [k for k, _ in keyframes]
        if self.ocr is not None:
            s = time.perf_counter()
            for k, desc in keyframes:
                chunk.texts.extend(self.tracker.update(k.t, self._ocr(k.t, k.image, desc)))
            chunk.texts.extend(self.tracker.flush(chunk.end))
            times.add("ocr", time.perf_counter() - s)

    def _ocr(self, t: float, image: np.ndarray, desc: np.ndarray) -> list:
        from videomind.ingest.ocr import OcrLine, read_text

        # A near-identical picture reads the same: reuse the last result (saves most OCR calls in static shots).
        if self.last_ocr is not None and float(np.dot(self.last_ocr[0], desc)) > 0.995:
            return self.last_ocr[1]
        key, hit = self._cached("ocr", t=round(t, 4))
        if hit is not None:
            lines = [OcrLine(**x) for x in hit]
        else:
            lines = read_text(self.ocr, image, self.cfg.ocr_min_confidence)
            self._store("ocr", key, [vars(x) for x in lines])
        self.last_ocr = (desc, lines)
        return lines

    def _captions(self, chunk: Chunk) -> None:
        if not (self.pipe.captioner and self.pipe.config.models.vlm and self.cfg.captions):
            return
        from videomind.ingest.captions import caption_chunk

        s = time.perf_counter()
        speech = [[x.start, x.text] for x in chunk.texts if x.source in ("speech", "subtitle")]  # the VLM reads it
        key, hit = self._cached("captions", window=[chunk.start, chunk.end], speech=speech,
                                keyframes=[round(k.t, 4) for k in chunk.keyframes])
        failed: list[Exception] = []

        def caption(images, transcript):
            try:
                return self.pipe.captioner(images, transcript)
            except Exception as e:  # caption_chunk skips the window; a transient failure must not be cached
                failed.append(e)
                raise

        texts = [TimedText(**x) for x in hit] if hit is not None else caption_chunk(
            chunk, caption, self.pipe.config.memory.clip_seconds)
        if hit is None and not failed:
            self._store("captions", key, [x.to_dict() for x in texts])
        chunk.texts.extend(texts)
        self.pipe.times.add("captions", time.perf_counter() - s)

    def _cached(self, stage: str, **call) -> tuple[str | None, object]:
        """(key, stored value or None) of one call of ``stage``; (None, None) without a cache."""
        cache = self.source.cache
        if cache is None:
            return None, None
        key = stage_key(self.pipe.config, stage, **call)
        return key, cache.get(stage, key)

    def _store(self, stage: str, key: str | None, value) -> None:
        if key is not None:
            self.source.cache.put(stage, key, value)

    def close(self) -> None:
        self.stop.set()
        for w in (self.frames, self.speech):
            if w is None:
                continue
            while w.is_alive():
                try:
                    w.q.get_nowait()
                except queue.Empty:
                    w.join(timeout=0.1)
