"""The project's generated needle-in-a-haystack benchmark (eval.synth).

``<name>.samples.jsonl`` rows: ``{"qid", "video" (file name relative to the jsonl), "duration", "question",
"options", "answer" (index), "answer_text", "spans" ([[t0, t1], ...] ground truth), "task", "benchmark": "needle"}``.
Besides accuracy it scores grounding: whether the answer's evidence overlaps a true span.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from eval.benchmarks.base import (
    Sample, VideoFinder, aggregate as base_aggregate, duration_bucket, read_json_or_jsonl, scored,
)
from videomind import InputError

NAME = "needle"
__all__ = ["NAME", "aggregate", "load", "row_extras"]
SLACK = 1.0  # seconds of tolerance when matching evidence to a true span


def load(annotations: str | os.PathLike, videos: str | os.PathLike | None = None,
         split: str | None = None) -> list[Sample]:
    """Questions of one samples.jsonl, or of every ``*.samples.jsonl`` in a folder.

    Args:
        annotations: a samples.jsonl file or a folder of them.
        videos: where the videos are (default: beside each jsonl).
        split: unused.
    """
    p = Path(annotations).expanduser()
    files = [p] if p.is_file() else sorted(p.glob("*.samples.jsonl")) if p.is_dir() else []
    if not files:
        raise InputError(f"no needle samples at {str(p)!r} (a .samples.jsonl file or a folder of them)")
    out = []
    for f in files:
        finder = VideoFinder(videos or f.parent)
        for r in read_json_or_jsonl(f):
            out.append(Sample(
                qid=r["qid"], benchmark=NAME, video=r["video"], question=r["question"], options=list(r["options"]),
                answer=r.get("answer"), video_path=finder.find(r["video"]), split="needle",
                categories=[r["task"]] if r.get("task") else [], duration=r.get("duration"),
                duration_bucket=duration_bucket(r.get("duration")),
                meta={"spans": r.get("spans", []), "answer_text": r.get("answer_text", "")},
            ))
    return out


def row_extras(sample: Sample, answer: dict[str, Any]) -> dict[str, Any]:
    """``grounded``: some evidence overlaps a true span (within SLACK seconds)."""
    spans = sample.meta.get("spans") or []
    ev = answer.get("evidence") or []
    return {"grounded": any(e["start"] <= t1 + SLACK and e["end"] >= t0 - SLACK for e in ev for t0, t1 in spans)}


def aggregate(rows: list[dict]) -> dict[str, Any]:
    """Base metrics plus the grounding rate, overall and per task."""
    out = base_aggregate(rows)
    ok = [r for r in scored(rows) if "grounded" in r]
    out["grounded"] = sum(r["grounded"] for r in ok) / len(ok) if ok else None
    tasks: dict[str, list[dict]] = {}
    for r in ok:
        for t in r.get("categories") or []:
            tasks.setdefault(t, []).append(r)
    out["grounded_by_task"] = {t: sum(r["grounded"] for r in v) / len(v) for t, v in sorted(tasks.items())}
    return out
