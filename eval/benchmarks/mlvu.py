"""MLVU: multi-task long video understanding (3 min to 2 h).

Dev: ``json/<n>_<task>.json`` per task (``1_plotQA.json``, ``2_needle.json``, ``3_ego.json``, ``4_count.json``,
``5_order.json``, ``6_anomaly_reco.json``, ``7_topic_reasoning.json``; 4 candidates) with records ``{"video",
"duration", "question", "candidates", "answer" (the option's text), "question_type"}``; videos in
``video/<n>_<task>/``. Test: ``test_mcq_gt.json`` (6 candidates, ``question_id``). The generation tasks
(sub-scene captioning, summary) need a judge model and are skipped. M-avg is the mean of per-task accuracies.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from eval.benchmarks.base import (
    Sample, VideoFinder, aggregate as base_aggregate, answer_index, duration_bucket, macro_average, read_records,
)
from videomind import ConfigError, InputError

logger = logging.getLogger(__name__)

NAME = "mlvu"
SPLITS = ("dev", "test")
__all__ = ["NAME", "SPLITS", "aggregate", "load"]


def _files(annotations: Path) -> list[Path]:
    if annotations.is_file():
        return [annotations]
    if annotations.is_dir():
        d = annotations / "json" if (annotations / "json").is_dir() else annotations
        files = sorted(d.glob("*.json"))
        if files:
            return files
    raise InputError(f"no MLVU annotation files at {str(annotations)!r} (a task .json, test_mcq_gt.json, or the "
                     "dev json/ folder)")


def _split_of(path: Path) -> str:
    """The split a file holds: test_mcq_gt.json (and other names with "test") the test set, task files dev."""
    return "test" if "test" in path.name else "dev"


def _answer(candidates: list[Any], answer: Any, options: list[str]) -> int | None:
    """The answer is a candidate's value, never an index: the count task's candidates and answer are numbers
    (``[3, 5, 2, 4]``, answer ``3`` is the first option, as the official ``c == answer`` scores it)."""
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        return next((i for i, c in enumerate(candidates) if c == answer or str(c).strip() == str(answer)), None)
    return answer_index(answer, options)


def load(annotations: str | os.PathLike, videos: str | os.PathLike | None = None,
         split: str | None = None) -> list[Sample]:
    """Multiple-choice questions of MLVU dev (task files) or test (``test_mcq_gt.json``).

    Args:
        annotations: a task file, the dev ``json/`` folder (or its parent), or test_mcq_gt.json.
        videos: folder of videos, flat or in per-task subfolders (default: ``video/`` beside ``json/``).
        split: "dev" or "test"; inferred from the file names when None.
    """
    if split is not None and split not in SPLITS:
        raise ConfigError(f"MLVU split must be one of {SPLITS} (--split), not {split!r}")
    files = _files(Path(annotations).expanduser())
    if split is not None:  # the dev task files and test_mcq_gt.json may sit in one folder
        chosen = [f for f in files if _split_of(f) == split]
        if not chosen:
            raise InputError(f"no MLVU {split} annotations at {str(annotations)!r}: it holds "
                             f"{', '.join(sorted({_split_of(f) for f in files}))} files ({files[0].name}, ...); use "
                             f"--split {_split_of(files[0])} or pass the {split} file")
        files = chosen
    root = files[0].parent.parent if files[0].parent.name in ("json", "test-ground-truth") else files[0].parent
    finder = VideoFinder(videos or next((d for d in (root / "video", root / "videos") if d.is_dir()), root))
    out, skipped = [], 0
    for f in files:
        this_split = _split_of(f)
        for i, r in enumerate(read_records(f)):
            if not r.get("candidates"):
                skipped += 1  # generation task: free-form answers scored by a judge model
                continue
            options = [str(c) for c in r["candidates"]]
            answer = _answer(r["candidates"], r.get("answer"), options)
            if answer is None and r.get("answer") not in (None, ""):
                logger.warning("MLVU %s #%d: answer %r is not one of its candidates", f.name, i, r["answer"])
            task = r.get("question_type") or f.stem.split("_", 1)[-1]
            out.append(Sample(
                qid=str(r.get("question_id") or f"{f.stem}/{i}"), benchmark=NAME, video=r["video"],
                question=r["question"], options=options, answer=answer,
                video_path=finder.find(f"{f.stem}/{r['video']}", r["video"]), split=this_split, categories=[task],
                duration=float(r["duration"]) if r.get("duration") is not None else None,
                duration_bucket=duration_bucket(r.get("duration")), meta={"n_options": len(options)},
            ))
    if skipped:
        logger.info("MLVU: skipped %d generation-task records (no candidates)", skipped)
    return out


def aggregate(rows: list[dict]) -> dict[str, Any]:
    """Base metrics plus M-avg (mean of per-task accuracies), overall and per split."""
    out = base_aggregate(rows)
    out["m_avg"] = macro_average(out["by_category"])
    splits = {r.get("split") for r in rows}
    if len(splits) > 1:
        out["m_avg_by_split"] = {s: macro_average(base_aggregate([r for r in rows if r.get("split") == s])
                                                  ["by_category"]) for s in sorted(splits)}
    return out
