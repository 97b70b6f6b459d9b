"""Video-MME: 900 videos (short < 2 min, medium 4-15 min, long 30-60 min), 2,700 questions, 4 options.

Published as ``videomme/test-00000-of-00001.parquet`` (one row per question: ``video_id``, ``duration``
short|medium|long, ``domain``, ``sub_category``, ``url``, ``videoID`` (the YouTube id; videos are
``data/<videoID>.mp4``), ``question_id``, ``task_type``, ``question``, ``options`` ["A. ...", ...], ``answer``
letter), or the JSON of the same rows. The nested form of the JSON release and of the official scorer's template
(``evaluation/output_test_template.json``) is read too: one record per video with ``duration_category``,
``video_category``, ``video_sub_category`` (the template: ``video_subcategory``) and ``url``, and its ``questions``
with the options under ``choices``. Its videos are found by the YouTube id in ``url``; the template has no url, so
its videos are found only where they are named by the numeric ``video_id``.
Two settings: "wo_subs" (default) and "w_subs" (with ``subtitle/<videoID>.srt``).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from eval.benchmarks.base import (
    Sample, VideoFinder, aggregate as base_aggregate, answer_index, find_annotation, group_accuracy, read_records,
    scored, strip_letter,
)
from videomind import ConfigError, InputError

logger = logging.getLogger(__name__)

NAME = "videomme"
SPLITS = ("wo_subs", "w_subs")
__all__ = ["NAME", "SPLITS", "aggregate", "config_overrides", "load"]


def config_overrides(split: str | None) -> list[str]:
    """Without subtitles means none at all: embedded or sidecar subtitle tracks are not ingested."""
    return ["ingest.subtitles=false"] if (split or "wo_subs") == "wo_subs" else []


# the nested form's keys -> the parquet's
NESTED_KEYS = {"duration_category": "duration", "video_category": "domain", "video_sub_category": "sub_category",
               "video_subcategory": "sub_category", "choices": "options"}
YOUTUBE_ID = re.compile(r"(?:[?&]v=|youtu\.be/|/shorts/|/embed/|/live/)([A-Za-z0-9_-]{11})")


def _rows(path: Path) -> list[dict[str, Any]]:
    """The questions as rows of the parquet's shape, whichever form the file is in."""
    rows = []
    for r in read_records(path):
        if "questions" in r:  # nested: one record per video
            video = {k: v for k, v in r.items() if k != "questions"}
            rows += [{NESTED_KEYS.get(k, k): v for k, v in {**video, **q}.items()} for q in r["questions"]]
        else:
            rows.append(r)
    for r in rows:
        if not r.get("videoID"):  # the file name of the video in the download is the YouTube id of its url
            m = YOUTUBE_ID.search(str(r.get("url") or ""))
            if m:
                r["videoID"] = m.group(1)
    return rows


def load(annotations: str | os.PathLike, videos: str | os.PathLike | None = None,
         split: str | None = None) -> list[Sample]:
    """Questions of Video-MME.

    Args:
        annotations: the parquet/JSON file, or a folder holding it.
        videos: folder of ``<videoID>.mp4`` (default: ``data/`` beside the annotations).
        split: "wo_subs" (default) or "w_subs" (each sample then carries its subtitle file, when present).
    """
    split = split or "wo_subs"
    if split not in SPLITS:
        raise ConfigError(f"Video-MME split must be one of {SPLITS} (--split), not {split!r}")
    path = find_annotation(annotations, ("test-*.parquet", "*.parquet", "videomme*.json*", "*.json"))
    roots = (path.parent, path.parent.parent)  # the HF layout keeps the parquet in videomme/, data/ beside it
    finder = VideoFinder(videos or next((r / "data" for r in roots if (r / "data").is_dir()), path.parent))
    sub_dir = next((r / d for r in roots for d in ("subtitle", "subtitles") if (r / d).is_dir()), None)
    out, by_number = [], set()
    for r in _rows(path):
        vid = str(r.get("videoID") or r.get("video_id"))
        if not r.get("videoID"):
            by_number.add(vid)
        qid = str(r.get("question_id") or f"{vid}-{len(out)}")
        if not isinstance(r["options"], (list, tuple)):  # a string would be split into one option per character
            raise InputError(f"{path}: question {qid}: options must be a list like [\"A. ...\", \"B. ...\"], not "
                             f"{type(r['options']).__name__} {str(r['options'])[:60]!r}")
        options = [strip_letter(o) for o in r["options"]]
        answer = answer_index(r.get("answer"), options)
        if answer is None and r.get("answer") not in (None, ""):
            logger.warning("Video-MME %s: answer %r is not one of its %d options; the question is unlabelled", qid,
                           r["answer"], len(options))
        sub = None
        if split == "w_subs" and sub_dir is not None:
            sub = next((str(p) for p in (sub_dir / f"{vid}.srt", sub_dir / f"{vid}.vtt") if p.is_file()), None)
        out.append(Sample(
            qid=qid, benchmark=NAME, video=vid, question=r["question"], options=options, answer=answer,
            video_path=finder.find(vid, str(r.get("video_id", ""))), split=split,
            categories=[r["task_type"]] if r.get("task_type") else [], duration_bucket=str(r.get("duration", "")),
            subtitle=sub, meta={"domain": r.get("domain", ""), "sub_category": r.get("sub_category", ""),
                                "video_id": str(r.get("video_id", ""))},
        ))
    if by_number and not any(s.video_path for s in out if s.video in by_number):
        raise InputError(f"{path}: {len(by_number)} video(s) are named only by Video-MME's number (video_id "
                         f"{min(by_number)!r}; this form has no url) and none is at <number>.mp4 under "
                         f"{finder.root}; the download names videos by YouTube id (data/<videoID>.mp4): pass the "
                         f"published videomme/test-00000-of-00001.parquet, which gives each question's videoID, or "
                         f"add each video's \"url\" to this file")
    if split == "w_subs":
        logger.info("Video-MME w_subs: %d of %d questions have a subtitle file", sum(bool(s.subtitle) for s in out),
                    len(out))
    return out


def aggregate(rows: list[dict]) -> dict[str, Any]:
    """Overall, by duration (short/medium/long), by task type and by domain."""
    out = base_aggregate(rows)
    out["by_domain"] = group_accuracy(scored(rows), lambda r: [r.get("meta", {}).get("domain")])
    return out
