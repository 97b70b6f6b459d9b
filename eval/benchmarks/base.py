"""What every benchmark shares: the Sample record, finding videos, reading answers, scoring and aggregation.

A benchmark module (one short file each) provides ``NAME``, ``load(annotations, videos=None, split=None) ->
list[Sample]`` and may override ``aggregate(rows) -> dict``; ``score`` and answer extraction live here because
they are the same for every multiple-choice benchmark. Prompts belong to the agents, never to benchmarks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from videomind import DependencyMissing, InputError, option_index

logger = logging.getLogger(__name__)

VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")
LETTERS = "ABCDEFGHIJ"


@dataclass
class Sample:
    """One multiple-choice question about one video, in a benchmark-neutral form."""

    qid: str  # unique within the benchmark (the official question id where there is one)
    benchmark: str
    video: str  # the video's id or file name as the annotation gives it
    question: str
    options: list[str]  # clean option texts, without "A." / "(A)" prefixes
    answer: int | None  # 0-based index of the correct option; None when the answer is not public
    video_path: str | None = None  # the local file, None when it was not found
    split: str = ""
    categories: list[str] = field(default_factory=list)  # task / question type(s); several count in each
    duration: float | None = None  # seconds, when the annotation says
    duration_bucket: str = ""  # the benchmark's own grouping, e.g. "short" | "medium" | "long", "600"
    subtitle: str | None = None  # a subtitle file for the video (.srt/.vtt/LongVideoBench .json)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        return cls(**d)


# -- reading annotation files -------------------------------------------------------------------------------------
def read_json_or_jsonl(path: str | os.PathLike) -> Any:
    """A .json document, or the list of records of a .jsonl file.

    Raises:
        InputError: the file is not valid JSON; names the file and line (one bad line of thousands is easy to fix
            once found, and hard to find from json's message alone).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from e
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg}, column {e.colno}); fix or remove "
                                 "that line") from e
    return records


def read_records(path: str | os.PathLike) -> list[dict]:
    """Rows of a .json (list), .jsonl or .parquet file (parquet needs pyarrow, as pandas does)."""
    path = Path(path)
    if path.suffix == ".parquet":
        try:
            import pandas as pd

            df = pd.read_parquet(path)
        except ImportError as e:
            raise DependencyMissing(f"reading {path.name} needs pandas with pyarrow (pip install pyarrow), "
                                    "or pass a JSON export of the same table") from e
        return [{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in r.items()}
                for r in df.to_dict(orient="records")]
    data = read_json_or_jsonl(path)
    if isinstance(data, dict):  # {id: record} tables
        data = [dict(v, _key=k) if isinstance(v, dict) else v for k, v in data.items()]
    return list(data)


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", str(s).lower()).strip()


def answer_index(answer: Any, options: list[str]) -> int | None:
    """The annotation's answer as an option index: an int, a letter ("B", "(B)", "B."), or the option's text."""
    if answer is None or (isinstance(answer, float) and math.isnan(answer)):
        return None
    if isinstance(answer, (int,)) and not isinstance(answer, bool):
        return answer if 0 <= answer < len(options) else None
    text = str(answer).strip()
    norm = _norm(text)
    exact = [i for i, o in enumerate(options) if _norm(o) == norm]
    if len(exact) == 1:  # text first: an option may itself be a single letter
        return exact[0]
    m = re.fullmatch(r"\(?([A-Ja-j])[).:]?", text)
    if m and LETTERS.index(m.group(1).upper()) < len(options):
        return LETTERS.index(m.group(1).upper())
    if text.isdigit() and int(text) < len(options):
        return int(text)
    return None


def distinct_options(options: list[str]) -> list[str]:
    """``options`` with each repeat of an earlier option's text labelled, e.g. "X (same text as B)".

    Published benchmarks have questions whose options repeat (LongVideoBench's p7YxwveUrjI_0: B and C are one
    sentence); their official scorers show every option and compare letters, so such a question counts in the total.
    ``VideoMind.ask`` refuses equal options (a caller's slip in the API), so the benchmark's copy is made distinct
    instead; positions are kept, so the answer's choice is still an index into the benchmark's own options. Equal
    means what ask() compares: case and runs of whitespace ignored. A third copy names both earlier ones ("same
    text as B and C"), so that the labelled copies differ from each other too.
    """
    earlier: dict[str, list[str]] = {}
    out = []
    for i, o in enumerate(options):
        letters = earlier.setdefault(" ".join(str(o).lower().split()), [])
        if letters:
            names = letters[0] if len(letters) == 1 else f"{', '.join(letters[:-1])} and {letters[-1]}"
            o = f"{o} (same text as {names})"
        letters.append(chr(65 + i))
        out.append(o)
    return out


def strip_letter(option: str) -> str:
    """'A. Paris' / '(A) Paris' / 'A) Paris' -> 'Paris'."""
    return re.sub(r"^\s*\(?[A-J][.):]\s*", "", str(option)).strip()


# -- finding videos -------------------------------------------------------------------------------------------------
class VideoFinder:
    """Finds a benchmark's video in a local folder: by the given relative names, else by file name or stem anywhere
    below the folder (benchmarks ship their videos in different layouts)."""

    def __init__(self, root: str | os.PathLike | None):
        self.root = Path(root).expanduser() if root else None
        self._index: dict[str, Path] | None = None

    def find(self, *names: str) -> str | None:
        if self.root is None or not self.root.is_dir():
            return None
        for name in names:
            if not name:
                continue
            for cand in (name, *(name + ext for ext in VIDEO_EXTS if not name.lower().endswith(VIDEO_EXTS))):
                p = self.root / cand
                if p.is_file():
                    return str(p)
        index = self._build_index()
        for name in names:
            if not name:
                continue
            base = Path(name).name
            hit = index.get(base) or index.get(Path(base).stem if base.lower().endswith(VIDEO_EXTS) else base)
            if hit:
                return str(hit)
        return None

    def _build_index(self) -> dict[str, Path]:
        if self._index is None:
            self._index = {}
            for dirpath, _, files in os.walk(self.root):
                for f in sorted(files):
                    if f.lower().endswith(VIDEO_EXTS):
                        p = Path(dirpath) / f
                        self._index.setdefault(f, p)
                        self._index.setdefault(p.stem, p)
        return self._index


# -- answer extraction (free-text replies of LLM backends) ---------------------------------------------------------
def extract_choice(text: str | None, options: list[str]) -> int | None:
    """The option a free-text reply picks, or None when it names none or several (never a guess).

    The agent's reader (``videomind.option_index``: "B", "(B)", "**B**", "Answer: B", "The answer is option B",
    "B) Paris", an option's text alone or inside a sentence), so a fix there reaches the benchmarks; except that a
    bare number is an option's text, not an index: a reply "2" may count from 1.
    """
    return option_index(text, options, digits_are_indices=False)


def predicted_choice(answer: dict[str, Any], options: list[str]) -> tuple[int | None, str]:
    """The choice of an ``Answer.to_dict()``: its ``choice`` when valid, else extracted from its text.

    Returns (index or None, how: "choice" | "extracted" | "none").
    """
    c = answer.get("choice")
    if isinstance(c, int) and 0 <= c < len(options):
        return c, "choice"
    i = extract_choice(answer.get("text"), options)
    return (i, "extracted") if i is not None else (None, "none")


def score(sample: Sample | dict, prediction: int | None) -> bool | None:
    """True/False for a labelled question (an unextractable prediction is wrong), None when unlabelled."""
    gold = sample["answer"] if isinstance(sample, dict) else sample.answer
    if gold is None:
        return None
    return prediction is not None and prediction == gold


# -- aggregation ---------------------------------------------------------------------------------------------------
def accuracy(rows: list[dict]) -> dict[str, Any]:
    """Accuracy with its standard error clustered by video (questions about one video are not independent).

    SE_cl = sqrt(G/(G-1) * sum_g (sum_{i in g} (y_i - p))^2) / n over G videos; None with fewer than 2 videos.
    """
    ys = [(r["video"], 1.0 if r["correct"] else 0.0) for r in rows]
    n = len(ys)
    if n == 0:
        return {"accuracy": None, "n": 0, "n_videos": 0, "se": None, "se_iid": None}
    p = sum(y for _, y in ys) / n
    by_video: dict[str, float] = defaultdict(float)
    for v, y in ys:
        by_video[v] += y - p
    g = len(by_video)
    se = math.sqrt(g / (g - 1) * sum(d * d for d in by_video.values())) / n if g > 1 else None
    se_iid = math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else None
    return {"accuracy": p, "n": n, "n_videos": g, "se": se, "se_iid": se_iid}


def group_accuracy(rows: list[dict], key) -> dict[str, dict[str, Any]]:
    """Accuracy per group; ``key(row)`` gives a list of groups (a row counts in each, as LVBench's script does)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        for k in key(r):
            if k not in (None, ""):
                groups[str(k)].append(r)
    return {k: accuracy(v) for k, v in sorted(groups.items(), key=lambda kv: _natural(kv[0]))}


def _natural(s: str):
    order = {"short": 0, "medium": 1, "long": 2,  # Video-MME's buckets, then duration_bucket()'s
             **{name: i for i, name in enumerate(("<3min", "3-10min", "10-30min", "30-60min", ">=60min"))}}
    if s in order:
        return (0, order[s], "")
    try:
        return (1, float(s), "")
    except ValueError:
        return (2, 0, s)


def scored(rows: Iterable[dict]) -> list[dict]:
    """Rows that count: labelled, answered (no error)."""
    return [r for r in rows if r.get("correct") is not None and not r.get("error")]


def aggregate(rows: list[dict]) -> dict[str, Any]:
    """Overall accuracy and accuracy by split, category and duration bucket, plus cost per question."""
    rows = list(rows)
    ok = scored(rows)
    out = {
        "overall": accuracy(ok),
        "by_split": group_accuracy(ok, lambda r: [r.get("split")]),
        "by_category": group_accuracy(ok, lambda r: r.get("categories") or []),
        "by_duration": group_accuracy(ok, lambda r: [r.get("duration_bucket")]),
        "n_rows": len(rows),
        "n_unlabelled": sum(1 for r in rows if r.get("answer") is None),
        "n_errors": sum(1 for r in rows if r.get("error")),
        "unextractable": [{"qid": r["qid"], "text": (r.get("prediction") or {}).get("text", "")}
                          for r in rows if r.get("how") == "none" and not r.get("error")],
    }
    out["cost"] = cost(ok)
    return out


def cost(rows: list[dict]) -> dict[str, Any]:
    """Mean seconds and tokens per question (the x axis of accuracy-vs-cost plots)."""
    if not rows:
        return {"ask_seconds": None, "tokens": None}
    n = len(rows)
    return {
        "ask_seconds": sum(r["timings"]["ask_s"] for r in rows) / n,
        "tokens": sum(r["tokens"]["prompt"] + r["tokens"]["completion"] for r in rows) / n,
        "prompt_tokens": sum(r["tokens"]["prompt"] for r in rows) / n,
        "completion_tokens": sum(r["tokens"]["completion"] for r in rows) / n,
    }


def macro_average(groups: dict[str, dict[str, Any]]) -> float | None:
    """Mean of per-group accuracies (MLVU's M-avg)."""
    accs = [g["accuracy"] for g in groups.values() if g["accuracy"] is not None]
    return sum(accs) / len(accs) if accs else None


def duration_bucket(seconds: float | None) -> str:
    """A coarse bucket for benchmarks without their own grouping."""
    if seconds is None:
        return ""
    for limit, name in ((180, "<3min"), (600, "3-10min"), (1800, "10-30min"), (3600, "30-60min")):
        if seconds < limit:
            return name
    return ">=60min"


def find_annotation(path: str | os.PathLike, patterns: tuple[str, ...]) -> Path:
    """``path`` itself when it is a file, else the first file under it matching one of ``patterns`` (globs)."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        for pattern in patterns:
            hits = sorted(p.rglob(pattern))
            if hits:
                return hits[0]
    raise InputError(f"no annotation file at {str(p)!r} (looked for {', '.join(patterns)})")

