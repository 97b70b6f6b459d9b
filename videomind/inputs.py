"""Checks of what callers pass the public API, done before any work starts (an ingest can take hours), each
failing with an InputError that names the problem and what to give instead."""

from __future__ import annotations

import math
import numbers
import re
from pathlib import Path

from videomind.errors import InputError


def check_question(question: str, options: list[str] | None = None) -> tuple[str, list[str] | None]:
    """The question stripped, and multiple-choice options as the policies expect them: at least two, none blank,
    no two the same (a choice between equal options cannot be answered, and a blank one is a slip in the input,
    not a candidate). Callers that ingest first check with this before the ingest, which can take hours.

    Raises:
        InputError: an empty question, or options that cannot be answered.
    """
    if question is not None and not isinstance(question, str):
        raise InputError(f"the question must be text, not {type(question).__name__} {question!r}")
    if not question or not question.strip():
        raise InputError("the question is empty")
    return question.strip(), _check_options(options)


def check_until(until: float | None) -> float | None:
    """``until`` as seconds from the start (None: the whole memory).

    Raises:
        InputError: not a finite number >= 0 (a string from a form field must be converted by its caller).
    """
    if until is None:
        return None
    if not isinstance(until, numbers.Real) or isinstance(until, bool) or not (math.isfinite(until) and until >= 0):
        raise InputError(f"until={until!r}: give the answer-as-of time in seconds from the start (a number >= 0)")
    return float(until)


def local_file(path: str | Path) -> Path:
    """``path`` with ``~`` expanded; a URL is refused by name (``Path`` would fold ``https://`` into a missing
    ``https:/`` file and say only that it does not exist)."""
    if isinstance(path, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", path):
        raise InputError(f"{path!r} is a URL: VideoMind reads local files; download it first (e.g. with yt-dlp or "
                         f"curl -o video.mp4) and pass the file")
    return Path(path).expanduser()


def _check_options(options: list[str] | None) -> list[str] | None:
    if options is None:
        return None
    if isinstance(options, str):
        raise InputError("options must be a list of strings, one per option, not one string")
    options = list(options)
    missing = [i for i, o in enumerate(options) if o is None]
    if missing:  # str(None) would offer "None" as a candidate
        raise InputError(f"option {chr(65 + missing[0])} is None: remove it or fill it in")
    options = [str(o) for o in options]
    if len(options) < 2:
        raise InputError(f"{len(options)} option(s) given: a multiple-choice question needs at least two (or none "
                         f"for an open answer)")
    blank = [i for i, o in enumerate(options) if not o.strip()]
    if blank:
        raise InputError(f"option {chr(65 + blank[0])} is blank: remove it or fill it in")
    seen: dict[str, int] = {}
    for i, o in enumerate(options):
        j = seen.setdefault(" ".join(o.lower().split()), i)
        if j != i:
            raise InputError(f"options {chr(65 + j)} and {chr(65 + i)} are the same ({o.strip()!r}): make them "
                             f"distinct")
    return options


def check_frame(item) -> tuple[int, int]:
    """The height and width of a live source's ``(t, rgb uint8 [H, W, 3])`` item.

    Raises:
        InputError: any other shape of item (a bare array, greyscale, float pixels, a non-finite time).
    """
    import numpy as np

    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        raise InputError(f"the live source must yield (t, rgb) pairs, got {type(item).__name__}: yield "
                         f"(seconds, uint8 array [H, W, 3])")
    t, rgb = item
    if not isinstance(t, numbers.Real) or not math.isfinite(t):
        raise InputError(f"a frame's time must be a finite number of seconds, got {t!r}")
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3):
        got = f"{rgb.dtype} {list(rgb.shape)}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise InputError(f"frames must be RGB uint8 arrays [H, W, 3], got {got}: convert them first (e.g. "
                         f"np.stack([grey] * 3, -1), or (rgb * 255).astype(np.uint8) for floats in [0, 1])")
    return int(rgb.shape[0]), int(rgb.shape[1])
