"""LVBench: extreme long videos (about 68 min on average), 4 options written inside the question.

``video_info.meta.jsonl``: one line per video ``{"key" (YouTube id), "type", "qa": [{"uid", "question" ("...?\\n(A)
...\\n(B) ...\\n(C) ...\\n(D) ..."), "answer" (letter), "question_type" (a list: a question counts in each of its
types, as the official script does), "time_reference"}], ...}``. Videos are ``<key>.mp4``, or where the official
download script (video2dataset) puts them: ``videos/00000/000000000.mp4`` beside a ``000000000.json`` whose ``url``
holds the key.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from eval.benchmarks.base import (
    Sample, VideoFinder, aggregate, answer_index, duration_bucket, find_annotation, read_records,
)

logger = logging.getLogger(__name__)

NAME = "lvbench"
__all__ = ["NAME", "aggregate", "load", "split_options", "video2dataset_index"]

_OPTION = re.compile(r"(?:^|\n)\s*\(([A-J])\)\s*")
_YOUTUBE_ID = re.compile(r"(?:[?&]v=|youtu\.be/|/shorts/)([\w-]{11})")


def split_options(text: str) -> tuple[str, list[str]]:
    """'Q?\\n(A) x\\n(B) y' -> ('Q?', ['x', 'y'])."""
    parts = _OPTION.split(text)
    stem, rest = parts[0].strip(), parts[1:]
    return stem, [rest[i + 1].strip() for i in range(0, len(rest) - 1, 2)]


def video2dataset_index(root: str | os.PathLike | None) -> dict[str, str]:
    """{YouTube id: video file} from the ``<n>.json`` beside each ``<n>.mp4`` that video2dataset writes."""
    index: dict[str, str] = {}
    root = Path(root).expanduser() if root else None
    if root is None or not root.is_dir():
        return index
    for meta in sorted(root.rglob("*.json")):
        video = meta.with_suffix(".mp4")
        if not video.is_file():
            continue
        try:
            url = json.loads(meta.read_text(encoding="utf-8")).get("url") or ""
        except (OSError, ValueError, AttributeError):  # not a video2dataset record
            continue
        m = _YOUTUBE_ID.search(str(url))
        if m:
            index.setdefault(m.group(1), str(video))
    return index


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
    root = videos or path.parent / "videos"
    finder, by_url = VideoFinder(root), None
    out = []
    for v in read_records(path):
        key, duration = str(v["key"]), _duration(v)
        video_path = finder.find(key)
        if video_path is None:
            by_url = video2dataset_index(root) if by_url is None else by_url
            video_path = by_url.get(key)
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
