"""The agent's tools: typed functions over the memory whose docstrings are their schema.

A ``Toolbox`` binds them to one video memory, a time gate (``until``: only memory observed before it) and an
optional VLM for ``inspect``. Every tool returns an ``Observation``: text for the model plus Evidence rows.
"""

from __future__ import annotations

import inspect as _inspect
import itertools
import logging
import math
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from videomind.errors import CapabilityUnavailable
from videomind.types import Evidence, TimedText, format_time

logger = logging.getLogger(__name__)

SCALES = ("clip", "segment", "chapter")
CLIP_TEXT_SOURCES = ("speech", "subtitle", "ocr", "caption")  # a clip row of these joins the clip's timed texts
SHOWN_SOURCES = ("ocr", "subtitle")  # texts read whole on screen from their first frame


@dataclass
class Observation:
    text: str
    evidence: list[Evidence] = field(default_factory=list)


def hits_to_evidence(hits) -> list[Evidence]:
    return [Evidence(h.start, h.end, h.source, h.text, float(h.score), h.id) for h in hits]


def _seconds(name: str, value: Any) -> float:
    """A time argument of the model in seconds: "90" is read as 90; a non-number or NaN/inf is its mistake."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {value!r:.40}") from None
    if not math.isfinite(t):
        raise ValueError(f"{name} must be finite seconds, got {t}")
    return t


def _window(t0: Any, t1: Any) -> tuple[float | None, float | None]:
    """The optional time range of a search, in seconds; t1 before t0 is the model's mistake (memory would
    answer "no results": a false negative)."""
    t0 = None if t0 is None else _seconds("t0", t0)
    t1 = None if t1 is None else _seconds("t1", t1)
    if t0 is not None and t1 is not None and t1 < t0:
        raise ValueError(f"t1 ({t1:g}) must not be before t0 ({t0:g})")
    return t0, t1


def _query(query: Any) -> str:
    """A search query of the model: text or a number; null, a list or blank text would search for nothing
    (or for "None") and read as "no results"."""
    if isinstance(query, (int, float)) and not isinstance(query, bool):
        query = str(query)
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"query must be non-empty text, got {query!r:.40}")
    return query


def _text_id(t) -> str:
    """The id of a timed text in an inspect result. The lines of one OCR'd slide share their source and start,
    so the text's checksum tells them apart (the same text gets the same id in every call: the pool dedupes)."""
    return f"{t.source}@{t.start:.1f}~{zlib.crc32(t.text.encode()) % 4096:03x}"


def _said_part(text: str, words: list[str]) -> str:
    """The beginning of ``text`` up to the last of ``words`` (its first words, in order), with its own spacing
    and punctuation: unspaced scripts keep no spaces. The words joined by spaces where they cannot be found."""
    pos = 0
    for w in (w.strip() for w in words):
        if not w:
            continue
        i = text.find(w, pos)
        if i < 0:
            return " ".join(w.strip() for w in words if w.strip())
        pos = i + len(w)
    return text[:pos].rstrip(" ,;:")


def render(evidence: list[Evidence], max_chars: int = 220) -> str:
    if not evidence:
        return "no results"
    return "\n".join(f"{e.id} {e.timestamp()} ({e.source}) {e.text[:max_chars]}" for e in evidence)


def spread(frames, t0: float, t1: float, k: int) -> list[tuple[float, Any]]:
    """At most ``k`` (t, image) pairs of the stream, one at or after each of ``k`` evenly spaced times of
    [t0, t1), read in one pass (the first ``k`` frames would show only the start of a long span)."""
    marks = [t0 + (t1 - t0) * i / k for i in range(k)]
    out, i = [], 0
    for t, img in frames:
        if i < len(marks) and t >= marks[i] - 1e-6:
            out.append((t, img))
            while i < len(marks) and marks[i] <= t + 1e-6:  # one frame serves every mark it reaches
                i += 1
    return out


def look(vlm, frames: Callable, t0: float, t1: float, question: str, fps: float = 1.0,
         max_images: int = 8) -> str | None:
    """Ask ``vlm`` about the frames of [t0, t1]; None when the span has no frames.

    ``frames(t0, t1, fps)`` yields (t, image) sampled at ``fps``. A streaming VLM (``streams_frames``: the local
    engine, which compresses any number of frames to a fixed token budget) sees the whole span at ``fps``, or at
    the rate that fits its ``max_frames`` in a longer span; others get ``max_images`` frames spread across it.
    """
    streaming = getattr(vlm, "streams_frames", False)
    if streaming:
        cap = getattr(vlm, "max_frames", None)
        if cap and (t1 - t0) * fps > cap:  # an hours-long span: sparser frames over all of it, not its first hour
            fps = cap / (t1 - t0)
        stream = (img for _, img in frames(t0, t1, fps))
        first = next(stream, None)
        if first is None:
            return None
        images, note, kwargs = itertools.chain([first], stream), f"{fps:.3g} per second", {"fps": fps}
    else:
        picked = spread(frames(t0, t1, fps), t0, t1, max_images)
        if not picked:
            return None
        # their times, in order: a model shown a handful of stills cannot tell when each was taken
        images, kwargs = [img for _, img in picked], {}
        note = "at " + ", ".join(format_time(t) for t, _ in picked)
    prompt = f"The video frames shown are from {format_time(t0)} to {format_time(t1)} ({note}). {question}"
    return vlm.chat([{"role": "user", "content": prompt}], images=images, **kwargs).text.strip()


class Toolbox:
    """Tools over one memory. ``vlm`` is a ChatBackend with ``supports_images`` (or None); ``frames(t0, t1, fps)``
    yields the video's (t, RGB image) pairs of a span for it."""

    def __init__(self, memory, until: float | None = None, vlm=None, frames: Callable | None = None, k: int = 5):
        self.memory, self.until, self.vlm, self.frames, self.k = memory, until, vlm, frames, k
        self.tools: dict[str, Callable[..., Observation]] = {
            "search_episodic": self.search_episodic,
            "search_semantic": self.search_semantic,
            "search_visual": self.search_visual,
            "inspect": self.inspect,
        }

    def _gate(self, t1: float | None) -> float | None:
        if self.until is None:
            return t1
        return self.until if t1 is None else min(t1, self.until)

    def _gated(self, search: Callable[[int], list], k: int | None = None) -> list[Evidence]:
        """The ``k`` best visible rows of ``search(n)`` (the n best hits). Under a gate, hidden rows would leave
        fewer than ``k``, or none when the video's later part ranks first, so more are fetched to keep ``k``."""
        k = k or self.k
        if self.until is None:
            return hits_to_evidence(search(k))
        return self._visible(hits_to_evidence(search(4 * k)))[:k]

    def _visible(self, evidence: list[Evidence]) -> list[Evidence]:
        """Rows wholly observed before ``until``. A segment or chapter straddling it summarises what comes after,
        an entity row quotes its later mentions: a row that merely starts before the gate leaks the future, so it
        is hidden. A clip row straddling it is the texts of one ~10 s clip joined, so it is cut instead to what of
        them had been observed by then (:meth:`_observed`); so is an open row (``open:``, a store still being
        written: the texts of a source no clip holds yet, joined as a clip row joins them)."""
        if self.until is None:
            return evidence
        out = []
        for e in evidence:
            if e.end <= self.until:
                out.append(e)
            elif e.start < self.until and e.id.startswith(("clip:", "open:")) and e.source in CLIP_TEXT_SOURCES:
                if (cut := self._cut_at_gate(e)) is not None:
                    out.append(cut)
        return out

    def _cut_at_gate(self, row: Evidence) -> Evidence | None:
        """The part of a clip or open row observed before ``until``: what of its texts had been observed by then.
        Its texts are the ones of its source from its start that its joined text holds (a text of the next clip
        may start before the gate too), read back from memory with their word times (the row joins their texts
        only)."""
        texts = [c for t in self.memory.texts_between(row.start, self.until, sources=[row.source])
                 if row.start - 1e-6 <= t.start and t.text.strip() in row.text and (c := self._observed(t))]
        if not texts:
            return None
        sep = " | " if row.source == "ocr" else " "
        text = sep.join(dict.fromkeys(t.text.strip() for t in texts))
        return Evidence(min(t.start for t in texts), max(t.end for t in texts), row.source, text, row.score, row.id)

    def _observed(self, text: TimedText) -> TimedText | None:
        """What of ``text`` had been observed by ``until``, its span cut there; None when nothing had.

        A text's span is the time it was on screen or being said, and it is known from different moments:
        - on-screen text (OCR, subtitle cues) is read whole from its first frame: text shown since 0:00 and still
          shown at 0:12 is visible as of 0:12, as [0:00-0:12];
        - speech is known word by word: a sentence still being said keeps its words that ended before the gate,
          with an ellipsis (the rest was not said yet, and may change what it meant). Without word times it is
          hidden, as is any sentence of which no word ended yet;
        - a caption describes its window's frames and speech, some of them after the gate: hidden."""
        if text.end <= self.until:
            return text
        if text.start >= self.until:
            return None
        if text.source in SHOWN_SOURCES:
            return replace(text, end=self.until)
        if text.source == "speech":
            words = [w for w in text.meta.get("words") or [] if w.get("end", math.inf) <= self.until]
            if words and (said := _said_part(text.text, [str(w.get("word", "")) for w in words])):
                return replace(text, end=max(float(w["end"]) for w in words), text=said + "…",
                               meta={**text.meta, "words": words})
        return None

    def search_episodic(self, query: str, scale: str | None = None, t0: float | None = None,
                        t1: float | None = None) -> Observation:
        """Search what was said, shown on screen and summarised. scale: clip (~10 s), segment (~1 min),
        chapter (~5 min) or null for all; t0/t1: optional time range in seconds."""
        if scale is not None and scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES} or null, got {scale!r}")
        t0, t1 = _window(t0, t1)
        hits = self.memory.search(_query(query), k=self.k, scale=scale, t0=t0, t1=self._gate(t1))
        ev = self._visible(hits_to_evidence(hits))
        return Observation(render(ev), ev)

    def search_semantic(self, query: str, t0: float | None = None, t1: float | None = None) -> Observation:
        """Look up entities, their relations and facts (people, objects, places, terms) and when they appear;
        t0/t1: optional time range in seconds (counts and facts are then of that range)."""
        t0, t1 = _window(t0, t1)
        query = _query(query)
        ev = self._gated(lambda n: self.memory.search_semantic(query, k=n, t0=t0, t1=self._gate(t1)))
        return Observation(render(ev), ev)

    def search_visual(self, query: str) -> Observation:
        """Find keyframes that look like the description (needs a CLIP-type encoder)."""
        try:
            ev = self._gated(lambda n: self.memory.search_visual(_query(query), k=n, t1=self.until))
        except CapabilityUnavailable as e:
            return Observation(f"unavailable: {e}")
        return Observation(render(ev), ev)

    def inspect(self, t0: float, t1: float, question: str) -> Observation:
        """Look closely at the span [t0, t1] seconds: frames to the VLM when one is configured, else the
        transcript and on-screen text of that span."""
        t0, t1 = max(_seconds("t0", t0), 0.0), _seconds("t1", t1)  # before the start: from the start
        if t1 < t0:
            raise ValueError(f"t1 ({t1}) must not be before t0 ({t0})")
        end = self._video_end()
        if end is not None:
            if t0 >= end:
                raise ValueError(f"span starts at {format_time(t0)}, after the video ends ({format_time(end)}); "
                                 f"inspect an earlier span")
            t1 = min(t1, end)  # the span past the end holds nothing; its caption and frame rate would claim it did
        t1 = self._gate(t1)
        if t1 < t0:  # checked again: the gate can cut the span to before its start
            raise ValueError(f"span starts after the answer-as-of time {format_time(self.until)}; inspect an "
                             f"earlier span")
        texts = self.memory.texts_between(t0, t1)
        if self.until is not None:
            texts = [c for t in texts if (c := self._observed(t)) is not None]
        ev = [Evidence(t.start, t.end, t.source, t.text, 1.0, _text_id(t)) for t in texts][:20]
        if self.vlm is not None and self.frames is not None:
            reply = look(self.vlm, self.frames, t0, t1, question)
            if reply is not None:
                ev.insert(0, Evidence(t0, t1, "caption", reply, 1.0, f"vlm@{t0:.1f}-{t1:.1f}"))
        span = f"[{format_time(t0)}-{format_time(t1)}]"
        return Observation(f"{span}\n" + render(ev), ev)

    def _video_end(self) -> float | None:
        """The video's length once its memory is complete (a recording still being followed may grow)."""
        info = getattr(self.memory, "info", None)
        duration = float(getattr(info, "duration", 0) or 0)
        return duration if duration > 0 and getattr(self.memory, "is_complete", False) else None

    def video_end(self) -> float | None:
        """How far the video can be read: its length once its memory is complete, else how far a recording still
        being ingested has got so far; None when unknown."""
        if (end := self._video_end()) is not None:
            return end
        if getattr(self.memory, "is_complete", True):
            return None
        return float(getattr(self.memory, "resume_point", 0) or 0) or None

    def readable_end(self) -> float | None:
        """Where what the tools show ends: the video's end (as far as known) or the answer-as-of time, whichever
        is earlier ("the last 5 minutes" of a question asked as of 2:20 end at 2:20)."""
        ends = [t for t in (self.video_end(), self.until) if t is not None]
        return min(ends) if ends else None

    def hidden_by_gate(self, query: str) -> bool:
        """Whether memory holds what the answer-as-of gate hides: a search of ``query`` past it finds rows."""
        search = getattr(self.memory, "search", None)
        return self.until is not None and search is not None and bool(search(_query(query), k=1))

    def call(self, name: str, args: dict[str, Any]) -> Observation:
        """Run a tool by name; a TypeError/ValueError here is the model's mistake and is reported to it."""
        if name not in self.tools:
            raise KeyError(f"unknown tool {name!r}; available: {', '.join(self.tools)}, answer")
        return self.tools[name](**args)

    def schema(self) -> str:
        """Tool signatures and docstrings, as shown to the model."""
        lines = []
        for name, fn in self.tools.items():
            sig = str(_inspect.signature(fn)).replace(" -> Observation", "")
            lines.append(f"- {name}{sig}: {' '.join((fn.__doc__ or '').split())}")
            if name == "inspect":  # the planner should know whether inspecting can show it anything new
                lines[-1] += (" Here a VLM is configured: it looks at the span's frames." if self.vlm is not None
                              and self.frames is not None else " Here no VLM is configured: transcript and "
                              "on-screen text only, which the searches also reach.")
        lines.append("- answer(choice: int | None, text: str, evidence: list[str]): give the final answer; "
                     "choice is the option index (0-based) for multiple choice; evidence lists result ids.")
        return "\n".join(lines)
