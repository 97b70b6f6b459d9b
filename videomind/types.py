"""Plain records that flow between the stages: ingestion -> memory -> agents -> API.

They hold no behaviour beyond (de)serialisation, so every layer can import them without pulling anything heavy
(no torch, no numpy at import time).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# Where a piece of evidence came from. "speech" = ASR transcript, "ocr" = on-screen text, "subtitle" = embedded or
# sidecar subtitles, "caption" = VLM caption, "visual" = a keyframe found by image similarity, "summary" = an
# episodic summary, "entity" = semantic memory.
Source = Literal["speech", "ocr", "subtitle", "caption", "visual", "summary", "entity"]
TEXT_SOURCES: tuple[str, ...] = ("speech", "ocr", "subtitle", "caption")
# File suffixes of videos: what the app accepts as an upload, and what makes a sidecar subtitle another video's
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"})


@dataclass(frozen=True)
class VideoInfo:
    """What probing a file tells us before decoding it."""

    path: str
    duration: float  # seconds
    width: int
    height: int
    fps: float
    has_audio: bool
    video_stream: int = 0  # index among the file's video streams that we decode
    audio_stream: int | None = None  # index among its audio streams, None when it has none
    n_video_streams: int = 1
    n_audio_streams: int = 0
    n_subtitle_streams: int = 0
    rotation: int = 0
    content_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TimedText:
    """A piece of text observed in a time span: a transcript segment, an OCR line, a subtitle, a caption."""

    start: float
    end: float
    text: str
    source: str  # one of TEXT_SOURCES
    confidence: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. {"words": [...]} for speech, {"box": ...} for ocr

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Keyframe:
    """A representative frame. ``image`` is an RGB uint8 array [H, W, 3]; it is dropped once stored."""

    t: float
    shot: int
    image: Any = None  # np.ndarray [H, W, 3] uint8 while in flight
    embedding: Any = None  # np.ndarray [D] float32, L2-normalised
    thumbnail: str | None = None  # path relative to the memory directory once stored


@dataclass(frozen=True)
class Shot:
    """A continuous camera take between two detected cuts."""

    index: int
    start: float
    end: float


@dataclass
class Chunk:
    """Everything ingestion observed in one time window [start, end) of the video."""

    index: int
    start: float
    end: float
    texts: list[TimedText] = field(default_factory=list)
    keyframes: list[Keyframe] = field(default_factory=list)
    shots: list[Shot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # documented partial results, e.g. "audio missing"


@dataclass(frozen=True)
class Evidence:
    """One timestamped piece of support for an answer."""

    start: float
    end: float
    source: str
    text: str
    score: float
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def timestamp(self) -> str:
        return f"[{format_time(self.start)}-{format_time(self.end)}]"


@dataclass
class Answer:
    """The result of a question: the answer text, the chosen option index (multiple choice), evidence, trace."""

    question: str
    text: str
    choice: int | None = None
    options: list[str] | None = None
    evidence: list[Evidence] = field(default_factory=list)
    steps: list[Any] = field(default_factory=list)  # agent Step records (have .to_dict())
    policy: str = ""  # which policy produced it, e.g. "heuristic (offline)" or "llm:Qwen/Qwen2.5-7B-Instruct"
    # no evidence relevant to the question was found: a multiple-choice choice is a guess, an open answer says so
    low_confidence: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "text": self.text,
            "choice": self.choice,
            "options": self.options,
            "evidence": [e.to_dict() for e in self.evidence],
            "steps": [s.to_dict() if hasattr(s, "to_dict") else s for s in self.steps],
            "policy": self.policy,
            "low_confidence": self.low_confidence,
        }

    def format(self) -> str:
        """Human-readable answer with its evidence, as the CLI prints it."""
        lines = [f"Q: {self.question}"]
        if self.options:
            lines += [f"   {chr(65 + i)}. {o}" for i, o in enumerate(self.options)]
        head = f"({chr(65 + self.choice)}) " if self.choice is not None else ""
        lines.append(f"A: {head}{self.text}")
        if self.evidence:
            lines.append("Evidence:")
            lines += [f"  {e.timestamp()} {e.source:<8} {e.text[:120]}" for e in self.evidence]
        if self.policy:
            lines.append(f"(answered by: {self.policy})")
        return "\n".join(lines)


def format_time(seconds: float) -> str:
    """Seconds -> 'H:MM:SS' (or 'M:SS' under an hour); '?' for NaN or infinity, which have no clock time (an
    answer with such a span still prints instead of raising)."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(max(seconds, 0.0)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
