"""Speech -> timed transcript with faster-whisper (bundled Whisper tiny.en by default).

Audio arrives in blocks; :func:`speech_windows` cuts it into windows that end in the quietest moment just after
each chunk boundary, so no word is split by a chunk edge, and hands each chunk exactly the segments that start in
it. VAD (Silero, inside faster-whisper) skips non-speech, which is most of the ASR saving on typical video.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from videomind.config import parse_device
from videomind.ingest.audio import SAMPLE_RATE, AudioBlock
from videomind.types import TimedText

logger = logging.getLogger(__name__)

_MODELS: dict[tuple, object] = {}
_LOCK = threading.Lock()


def _passive_openmp() -> None:
    """Ask OpenMP threads to sleep rather than spin when idle (unless the user chose otherwise).

    CTranslate2's bundled libgomp reads this when it loads, so it must be set before ctranslate2 is imported.
    Whisper runs beside decoding and OCR on few cores; spinning threads burnt ~7% of the CPU of a 10-minute
    speech-dense ingest on 2 cores (bench/ingest).
    """
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pick_device(device: str) -> tuple[str, int, str]:
    """(device, device_index, compute_type) for CTranslate2, which names a GPU as device="cuda" plus an index
    (it refuses "cuda:1"): CUDA float16 on GPU N for "cuda:N", on the first GPU for "cuda" or under "auto" when
    there is one. Without a GPU every cuda form runs on the CPU, int8 (the API's check_device refuses them
    first)."""
    _passive_openmp()
    kind, index = parse_device(device)
    if kind in ("cuda", "auto"):
        try:
            import ctranslate2

            if ctranslate2.get_cuda_device_count() > 0:
                return "cuda", index or 0, "float16"
        except Exception:  # no CUDA build: CPU
            pass
    return "cpu", 0, "int8"


def load_whisper(name: str, device: str = "auto", allow_download: bool = False, cpu_threads: int = 0):
    """A cached ``faster_whisper.WhisperModel`` for the registry name ``name`` (loaded once per process).

    ``cpu_threads`` 0 means one per core, at most 4 (CTranslate2's own default of 4 oversubscribes a 2-core
    machine on which decoding and OCR run at the same time).
    """
    import os

    from videomind.errors import require
    from videomind.models.registry import resolve

    path = resolve(name, "asr", allow_download).path
    dev, index, compute = pick_device(device)
    cpu_threads = cpu_threads or max(1, min(4, os.cpu_count() or 1))
    key = (path, dev, index, compute, cpu_threads)
    with _LOCK:
        if key not in _MODELS:
            fw = require("faster_whisper", "offline")
            logger.info("loading Whisper %s (%s:%d, %s)", path, dev, index, compute)
            _MODELS[key] = fw.WhisperModel(path, device=dev, device_index=index, compute_type=compute,
                                           cpu_threads=cpu_threads)
        return _MODELS[key]


class Transcriber:
    """``transcriber(samples, offset) -> [TimedText]`` over 16 kHz mono float32 audio; times shifted by offset."""

    def __init__(self, name: str = "whisper-tiny.en", device: str = "auto", language: str | None = None,
                 vad: bool = True, allow_download: bool = False, cpu_threads: int = 0):
        self.model = load_whisper(name, device, allow_download, cpu_threads)
        multilingual = bool(getattr(self.model, "model", None) and self.model.model.is_multilingual)
        # An English-only model must be told its language; a multilingual one detects it when none is set.
        self.language = language or (None if multilingual else "en")
        self.vad = vad

    def __call__(self, samples: np.ndarray, offset: float = 0.0) -> list[TimedText]:
        if len(samples) < SAMPLE_RATE // 4:
            return []
        segments, info = self.model.transcribe(
            # temperature 0 only: faster-whisper's default fallback re-decodes hard windows by sampling, which
            # makes the transcript (and every benchmark built on it) change from run to run.
            samples, language=self.language, vad_filter=self.vad, word_timestamps=True, beam_size=1, temperature=0.0,
            condition_on_previous_text=False, vad_parameters={"min_silence_duration_ms": 500},
        )
        # faster-whisper's times are numpy float64 (and round() keeps that type): stored and shown as plain floats
        offset = float(offset)

        def at(t) -> float:
            return round(float(t) + offset, 3)

        out = []
        for s in segments:
            text = s.text.strip()
            if not text:
                continue
            words = [{"start": at(w.start), "end": at(w.end), "word": w.word.strip(),
                      "prob": round(float(w.probability), 3)} for w in (s.words or [])]
            conf = float(np.exp(s.avg_logprob)) if s.avg_logprob is not None else None
            out.append(TimedText(at(s.start), at(s.end), text, "speech", conf,
                                 {"words": words, "language": info.language,
                                  "no_speech_prob": round(float(s.no_speech_prob), 3)}))
        return out


def drop_heard(segments: list[TimedText], until: float, slack: float = 0.15) -> list[TimedText]:
    """``segments`` without the words that start before ``until`` (minus ``slack``, Whisper's timing jitter).

    A resumed run re-transcribes a little audio before the end of the speech already stored (``until``): starting
    exactly there makes Whisper lose the first word. A segment is kept whole, dropped, or cut at a word boundary
    (its word timestamps).
    """
    out = []
    for s in segments:
        if s.start >= until - slack:
            out.append(s)
            continue
        words = [w for w in s.meta.get("words", []) if w["start"] >= until - slack]
        if words and s.end > until:
            out.append(TimedText(words[0]["start"], s.end, " ".join(w["word"] for w in words), s.source,
                                 s.confidence, {**s.meta, "words": words}))
    return out


def quietest_point(samples: np.ndarray, t0: float, lo: float, hi: float, frame: float = 0.1) -> float:
    """Time in [lo, hi] (absolute, samples start at ``t0``) at the centre of the lowest-energy ``frame``."""
    i0, i1 = int((lo - t0) * SAMPLE_RATE), int((hi - t0) * SAMPLE_RATE)
    i0, i1 = max(0, i0), min(len(samples), i1)
    n = int(frame * SAMPLE_RATE)
    if i1 - i0 < 2 * n:
        return min(hi, t0 + len(samples) / SAMPLE_RATE)
    seg = samples[i0:i1][: (i1 - i0) // n * n].reshape(-1, n)
    k = int(np.argmin((seg.astype(np.float32) ** 2).mean(axis=1)))
    return t0 + (i0 + k * n + n / 2) / SAMPLE_RATE


def speech_windows(blocks: Iterable[AudioBlock], edges: Iterable[float],
                   transcribe: Callable[[np.ndarray, float], list[TimedText]],
                   lookahead: float = 5.0, window: float = 0.0) -> Iterator[tuple[int, list[TimedText]]]:
    """Yield ``(i, segments)`` for chunk i = [edges[i], edges[i+1]) in order, from streamed audio.

    Audio is transcribed in windows of at least ``window`` seconds (whole chunks; 0: one chunk per window), each
    ending at the quietest point in [edge, edge + lookahead], so no word is cut; a segment belongs to the chunk
    where it starts. Longer windows cost less: Whisper decodes fixed 30 s windows of VAD-kept speech, and each
    call ends with a partial one. ``edges`` may be endless (live input): the iteration stops once the audio is
    exhausted and every segment was handed out, so later chunks have no speech. Memory holds at most one window
    plus ``lookahead`` of audio.
    """
    edge_it = iter(edges)
    win_start = next(edge_it, None)
    if win_start is None:
        return
    nxt = next(edge_it, None)
    parts: list[np.ndarray] = []
    buf_t0: float | None = None
    carry: list[TimedText] = []
    pending: list[tuple[int, float]] = []  # chunks of the current window: (index, end)
    it = iter(blocks)
    exhausted = False
    i = 0
    while nxt is not None:
        t1, nxt = nxt, next(edge_it, None)
        last = nxt is None
        pending.append((i, t1))
        i += 1
        if not last and t1 - win_start < window and not (exhausted and buf_t0 is None):
            continue
        buf_end = buf_t0 + sum(len(p) for p in parts) / SAMPLE_RATE if buf_t0 is not None else -1.0
        while not exhausted and buf_end < t1 + lookahead:
            blk = next(it, None)
            if blk is None:
                exhausted = True
                break
            if buf_t0 is None:
                buf_t0 = blk.start
            parts.append(blk.samples)
            buf_end = buf_t0 + sum(len(p) for p in parts) / SAMPLE_RATE
        segs = carry
        win_start = t1
        if buf_t0 is not None:
            audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            cut = buf_end if (last or exhausted) else quietest_point(audio, buf_t0, t1, min(t1 + lookahead, buf_end))
            n = max(0, int(round((cut - buf_t0) * SAMPLE_RATE)))
            segs = carry + transcribe(audio[:n], buf_t0)
            rest = audio[n:]
            parts, buf_t0 = ([rest] if len(rest) else []), (buf_t0 + n / SAMPLE_RATE if len(rest) else None)
        for j, tj in pending[:-1]:
            yield j, [s for s in segs if s.start < tj]
            segs = [s for s in segs if s.start >= tj]
        j, tj = pending[-1]
        pending = []
        if last:
            yield j, segs
            return
        yield j, [s for s in segs if s.start < tj]
        carry = [s for s in segs if s.start >= tj]
        if exhausted and buf_t0 is None and not carry:
            return
