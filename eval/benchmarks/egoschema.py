"""EgoSchema: 3-minute egocentric clips, 5 options.

Published files: ``questions.json`` (a list of ``{"q_uid", "google_drive_id", "question", "option 0" .. "option 4"}``)
and ``subset_answers.json`` (``{q_uid: index}`` for the public 500-question subset). The answers of the other
questions are held by the benchmark's server: those questions load with ``answer=None`` (split "fullset") and are
counted, never guessed. Videos are ``<q_uid>.mp4``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from eval.benchmarks.base import Sample, VideoFinder, aggregate, answer_index, find_annotation, read_json_or_jsonl

logger = logging.getLogger(__name__)

NAME = "egoschema"
__all__ = ["NAME", "aggregate", "load"]


def load(annotations: str | os.PathLike, videos: str | os.PathLike | None = None, split: str | None = None,
         answers: str | os.PathLike | None = None) -> list[Sample]:
    """Questions of EgoSchema.

    Args:
        annotations: questions.json (or a folder holding it; any ``questions*.json``).
        videos: folder of ``<q_uid>.mp4`` (default: ``videos/`` beside the questions).
        split: "subset" keeps only questions with a public answer; None or "fullset" keeps all.
        answers: subset_answers.json (default: beside the questions).
    """
    qpath = find_annotation(annotations, ("questions.json", "questions*.json"))
    apath = Path(answers) if answers else qpath.parent / "subset_answers.json"
    gold = read_json_or_jsonl(apath) if apath.is_file() else {}
    if not gold:
        logger.warning("no %s beside %s: every question is unlabelled", apath.name, qpath.name)
    finder = VideoFinder(videos or qpath.parent / "videos")
    out = []
    for q in read_json_or_jsonl(qpath):
        options = [str(q[f"option {i}"]) for i in range(5) if f"option {i}" in q]
        uid = q["q_uid"]
        answer = answer_index(gold.get(uid), options)
        s = Sample(qid=uid, benchmark=NAME, video=uid, question=q["question"], options=options, answer=answer,
                   video_path=finder.find(uid), split="subset" if answer is not None else "fullset",
                   duration=180.0, duration_bucket="3min",
                   meta={"google_drive_id": q.get("google_drive_id", "")})
        out.append(s)
    unlabelled = sum(s.answer is None for s in out)
    if unlabelled:
        logger.info("EgoSchema: %d of %d questions have no public answer (not in %s); they are not scored",
                    unlabelled, len(out), apath.name)
    if split == "subset":
        out = [s for s in out if s.answer is not None]
    return out
