"""LongVideoBench: referring reasoning over videos of 8 s to 1 h with interleaved subtitles.

``lvb_val.json`` (and ``lvb_test_wo_gt.json``, without answers): records ``{"id", "video_id", "video_path",
"subtitle_path", "question", "candidates" (4 or 5), "correct_choice" (index), "duration_group" (15 | 60 | 600 |
3600), "duration", "starting_timestamp_for_subtitles", "question_category", "topic_category", "level", ...}``. The
parquet export pads the options to five columns ``option0`` .. ``option4`` with "N/A"; that padding is dropped, as
the official loader shows the model only the real candidates. Subtitles are ``subtitles/<subtitle_path>`` (JSON cues
timed on the source video the clip was cut from: the clip starts at ``starting_timestamp_for_subtitles`` seconds of
them, kept as ``meta["subtitle_offset"]``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from eval.benchmarks.base import (
    Sample, VideoFinder, aggregate as base_aggregate, answer_index, find_annotation, group_accuracy, read_records,
    scored,
)
from videomind import ConfigError, InputError

logger = logging.getLogger(__name__)

NAME = "longvideobench"
SPLITS = ("val", "test")
# each split's files in the dataset folder (both sit side by side there), the official JSON first
FILES = {"val": ("lvb_val.json", "validation-*.parquet"), "test": ("lvb_test_wo_gt.json", "test-*.parquet")}
PAD = "N/A"
__all__ = ["NAME", "PAD", "SPLITS", "aggregate", "load", "options_of"]


def options_of(r: dict[str, Any]) -> list[str]:
    """The real candidates of a record: ``candidates`` or ``option0..4``, trailing "N/A" padding removed."""
    opts = list(r["candidates"]) if r.get("candidates") else [r[f"option{i}"] for i in range(5) if f"option{i}" in r]
    opts = [str(o) for o in opts if o is not None]
    while opts and opts[-1].strip() == PAD:
        opts.pop()
    return opts


def _split_of(path: Path) -> str | None:
    """The split a file's name says it holds (lvb_test_wo_gt.json, validation-*.parquet), None when it says none."""
    name = path.name.lower()
    return "test" if "test" in name else "val" if "val" in name else None


def load(annotations: str | os.PathLike, videos: str | os.PathLike | None = None,
         split: str | None = None) -> list[Sample]:
    """Questions of LongVideoBench.

    Args:
        annotations: lvb_val.json / lvb_test_wo_gt.json (or a parquet/JSONL export), or the dataset folder (the
            split's file is read from it).
        videos: folder of videos (default: ``videos/`` beside the annotations).
        split: "val" or "test"; inferred from the file name when None (val for the dataset folder).

    Raises:
        InputError: ``split`` names one split and the file's name the other (the questions would be labelled with
            a split they are not from).
    """
    if split is not None and split not in SPLITS:
        raise ConfigError(f"LongVideoBench split must be one of {SPLITS} (--split), not {split!r}")
    path = find_annotation(annotations, FILES[split] if split else ("lvb_val.json", "lvb_*.json",
                                                                     "validation-*.parquet"))
    named = _split_of(path)
    if split and named and named != split:
        raise InputError(f"{path} holds LongVideoBench's {named} questions, not {split}: use split {named!r} "
                         f"(--split {named}), or pass the {split} file ({FILES[split][0]}) or the dataset folder")
    split = split or named or "val"
    finder = VideoFinder(videos or path.parent / "videos")
    sub_dir = path.parent / "subtitles"
    out = []
    for i, r in enumerate(read_records(path)):
        options = options_of(r)
        sub = sub_dir / r["subtitle_path"] if r.get("subtitle_path") else None
        group = r.get("duration_group")
        out.append(Sample(
            qid=str(r.get("id") or f"{r['video_id']}_{i}"), benchmark=NAME, video=str(r["video_id"]),
            question=r["question"], options=options, answer=answer_index(r.get("correct_choice"), options),
            video_path=finder.find(r.get("video_path") or "", str(r["video_id"])), split=split,
            categories=[r["question_category"]] if r.get("question_category") else [],
            duration=float(r["duration"]) if r.get("duration") is not None else None,
            duration_bucket=str(int(group)) if group is not None else "",
            subtitle=str(sub) if sub is not None and sub.is_file() else None,
            meta={"topic_category": r.get("topic_category", ""), "level": r.get("level", ""),
                  "n_options": len(options),
                  "subtitle_offset": float(r.get("starting_timestamp_for_subtitles") or 0.0)},
        ))
    return out


def aggregate(rows: list[dict]) -> dict[str, Any]:
    """Overall, by duration group, by question category, by level and by topic."""
    out = base_aggregate(rows)
    ok = scored(rows)
    out["by_level"] = group_accuracy(ok, lambda r: [r.get("meta", {}).get("level")])
    out["by_topic"] = group_accuracy(ok, lambda r: [r.get("meta", {}).get("topic_category")])
    return out
