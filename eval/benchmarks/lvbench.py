"""LVBench: extreme long videos (about 68 min on average), 4 options written inside the question.

``video_info.meta.jsonl``: one line per video ``{"key" (YouTube id; videos are ``<key>.mp4``), "type",
"qa": [{"uid", "question" ("...?\\n(A) ...\\n(B) ...\\n(C) ...\\n(D) ..."), "answer" (letter), "question_type"
(a list: a question counts in each of its types, as the official script does), "time_reference"}], ...}``.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from eval.benchmarks.base import (
    Sample, VideoFinder, aggregate, answer_index, duration_bucket, find_annotation, read_records,
)

logger = logging.getLogger(__name__)

NAME = "lvbench"
__all__ = ["NAME", "aggregate", "load", "split_options"]

_OPTION = re.compile(r"(?:^|\n)\s*\(([A-J])\)\s*")


def split_options(text: str) -> tuple[str, list[str]]:
    """'Q?\\n(A) x\\n(B) y' -> ('Q?', ['x', 'y'])."""
    parts = _OPTION.split(text)
    stem, rest = parts[0].strip(), parts[1:]
    return stem, [rest[i + 1].strip() for i in range(0, len(rest) - 1, 2)]


def _duration(video: dict[str, Any]) -> float | None:
    info = video.get("video_info") or {}
    if info.get("duration_minutes") is not None:
        return float(info["duration_minutes"]) * 60
    return float(info["duration"]) if info.get("duration") is not None else None


def load(annotations: str | os.PathLike, videos: str | os.PathLike | None = None,
         split: str | None = None) -> list[Sample]:
    """Questions of LVBench.

    Args:
        annotations: video_info.meta.jsonl (or the folder holding it).
        videos: folder of ``<key>.mp4`` (default: ``videos/`` beside the annotations).
        split: unused (LVBench has one split).
    """
    path = find_annotation(annotations, ("video_info.meta.jsonl", "*.jsonl"))
    finder = VideoFinder(videos or path.parent / "videos")
    out = []
    for v in read_records(path):
        key, duration = str(v["key"]), _duration(v)
        video_path = finder.find(key)
        for qa in v["qa"]:
            question, options = split_options(qa["question"])
            if len(options) < 2:
                logger.warning("LVBench %s: no inline options found in %r", qa.get("uid"), qa["question"][:80])
            types = qa.get("question_type") or []
            out.append(Sample(
                qid=str(qa["uid"]), benchmark=NAME, video=key, question=question, options=options,
                answer=answer_index(qa.get("answer"), options), video_path=video_path, split="test",
                categories=[types] if isinstance(types, str) else list(types), duration=duration,
                duration_bucket=duration_bucket(duration),
                meta={"video_type": v.get("type", ""), "time_reference": qa.get("time_reference", "")},
            ))
    return out
