"""One run of the ingestion pipeline over a :class:`~videomind.ingest.sources.Source`: its models, its threads and
the per-chunk stages.

Three threads overlap the stages, linked by bounded queues so memory stays flat whatever the duration:

    frames thread : decode + scale sampled frames (PyAV / decord)   --q_frames (<= ~1 chunk of frames)-->  main
    speech thread : decode audio -> 16 kHz mono -> Whisper windows  --q_speech (<= 2 chunks of segments)--> main
    main (caller) : descriptors -> shots/keyframes -> embeddings -> OCR -> subtitles + speech -> Chunk

CTranslate2 (Whisper), onnxruntime (OCR) and libav (decoding) release the GIL, so on two cores ASR runs beside the
visual stages instead of after them.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from videomind.config import Config
from videomind.errors import InputError
from videomind.ingest.cache import stage_key
from videomind.ingest.decode import DecodeReport
from videomind.ingest.sources import Source
from videomind.ingest.workers import END, Worker
from videomind.types import Chunk, Keyframe, Shot, TimedText

if TYPE_CHECKING:  # the pipeline builds run states; importing it here at run time would be circular
    from videomind.ingest.pipeline import IngestPipeline


def load_models(config: Config, with_audio: bool = True) -> tuple[Any, Any, Any]:
    """The models a run uses: (visual embedder, OCR engine or None, Transcriber or None), as ``config.ingest``
    turns OCR and ASR on (ASR only ``with_audio``). Their modules cache the loaded weights per process, so a second
    call (the next run, or VideoMind.warm_up_ingest before the first) loads nothing again."""
    from videomind.ingest.visual import make_embedder

    models, ingest = config.models, config.ingest
    embedder = make_embedder(models.visual_embed, models.device, models.allow_download)
    ocr = transcriber = None
    if ingest.ocr:
        from videomind.ingest.ocr import load_engine

        ocr = load_engine(models.ocr)
    if ingest.asr and with_audio:
        from videomind.ingest.asr import Transcriber

        transcriber = Transcriber(models.asr, models.device, ingest.asr_language, ingest.asr_vad,
                                  models.allow_download, cpu_threads=ingest.asr_threads)
    return embedder, ocr, transcriber


class RunState:
    """One run: models, workers and the streaming state of the shot detector and OCR tracker."""

    def __init__(self, pipe: IngestPipeline, source: Source, first_shot: int = 0):
        from videomind.ingest.ocr import OcrTracker
        from videomind.ingest.scenes import ShotDetector

        self.pipe, self.cfg, self.source = pipe, pipe.cfg, source
        self.notes_once: list[str] = list(source.notes)
        t = time.perf_counter()
        self.embedder, self.ocr, self.transcriber = load_models(pipe.config, with_audio=source.audio is not None)
        pipe.times.add("load_models", time.perf_counter() - t)
        self.read_subtitles = source.subtitles  # None once it failed: its note says so, the run goes on
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
            self.pipe.emit("decode", t1, self.source.total)
            self.pipe.emit("ocr", t1, self.source.total)
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
            self.pipe.emit("asr", t1, self.source.total)
        if final_live:  # the last live chunk ends where its data ends
            # not where its OCR ends: the tracker closes a sign still on screen at the chunk's grid end (flush)
            ends = [self.last_frame_t + 1.0 / self.cfg.fps] + [x.end for x in chunk.texts if x.source != "ocr"]
            end = max(t0 + 1e-3, *ends)
            if self.source.length is not None:  # the last frame lasts up to a period: where the source really ends
                end = min(end, max(self.source.length(), self.last_frame_t + 1e-3, t0 + 1e-3))
            chunk.end = min(t1, end)
            chunk.shots = [Shot(x.index, x.start, min(x.end, chunk.end)) for x in chunk.shots]
            chunk.texts = [replace(x, end=min(x.end, chunk.end)) if x.end > chunk.end else x for x in chunk.texts]
        # A cue belongs to the chunk where it starts, as speech does: one still on screen at a resumed run's start
        # was stored by the run before.
        chunk.texts.extend(s for s in self._subtitles(chunk) if t0 <= s.start < chunk.end)
        self._captions(chunk)
        chunk.texts.sort(key=lambda x: (x.start, x.source))
        if i == 0:
            chunk.notes[:0] = self.notes_once
        for rep, attr in ((self.video_report, "reported_v"), (self.audio_report, "reported_a")):
            chunk.notes.extend(rep.notes[getattr(self, attr):])
            setattr(self, attr, len(rep.notes))
        self.pipe.times.seconds["wall"] = time.perf_counter() - self.t_wall
        self.pipe.emit("chunk", i + 1, self.source.n_chunks, f"{t0:.0f}-{chunk.end:.0f}s: {len(chunk.texts)} "
                       f"texts, {len(chunk.keyframes)} keyframes, {len(chunk.shots)} shots")
        return chunk

    def _subtitles(self, chunk: Chunk) -> list[TimedText]:
        """The source's cues once its frames reached the chunk's end; [] (and a note on the chunk) when unreadable."""
        if self.read_subtitles is None:
            return []
        t = time.perf_counter()
        try:
            return self.read_subtitles(chunk.end)
        except InputError as e:
            self.read_subtitles = None
            since = f" from {chunk.start:.0f} s on" if chunk.start > 0 else ""
            chunk.notes.append(f"subtitles unreadable{since}: {e}")
            return []
        finally:
            self.pipe.times.add("subtitles", time.perf_counter() - t)

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
