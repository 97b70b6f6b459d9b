"""Questions that name video times, derived from a generated video's timeline (its NAME.json).

Long-video benchmarks ask these often (LVBench's temporal grounding: "(A) 00:15:23-00:16:10 ..."; "what is
shown at 12:30?"), and the needle questions never do. Each planted sentence or sign (spoken facts, on-screen
needles and every mention of a temporal-order needle) gives two questions:

- grounding: "When does the narrator say "..."?" with five time-range options, the true span and the spans of
  four other planted items (so every option is a moment where something notable happens);
- anchored: "Which of these is mentioned or shown at M:SS?" with five options, the item's word and the words of
  four other planted items, all of which occur somewhere in the video: only the time tells them apart.

Colour scenes are left out: their words are on no transcript or sign.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

from eval.synth.vocabulary import fmt_time


@dataclass(frozen=True)
class Item:
    start: float
    end: float
    text: str  # the planted sentence or sign
    word: str  # the word that identifies it (the needle's keyword)
    shown: bool  # a sign (on screen) rather than speech


def items(script: dict) -> list[Item]:
    """The planted sentences and signs of a script, in time order."""
    out = []
    for n in script["needles"]:
        if n["task"] == "color_scene" or len(n["spans"]) != len(n["planted"]):
            continue
        for (a, b), text, word in zip(n["spans"], n["planted"], n["keywords"][:len(n["planted"])]):
            out.append(Item(a, b, text.rstrip("."), word, n["task"] == "onscreen_text"))
    return sorted(out, key=lambda i: i.start)


def _span(item: Item) -> str:
    return f"{fmt_time(math.floor(item.start))}-{fmt_time(math.ceil(item.end))}"


def _pick(rng: random.Random, truth: str, others: list[str]) -> tuple[list[str], int]:
    """The truth and up to four distinct others, shuffled; (options, answer index)."""
    pool = sorted(set(others) - {truth})
    options = rng.sample(pool, min(4, len(pool))) + [truth]
    rng.shuffle(options)
    return options, options.index(truth)


def time_questions(script_path: str | Path, video: str, seed: int = 0) -> list[dict]:
    """samples.jsonl-shaped rows (task "grounding" or "anchored") for the video of ``script_path``."""
    script = json.loads(Path(script_path).read_text())
    planted = items(script)
    rng = random.Random(f"time-questions-{seed}")
    rows = []
    for k, item in enumerate(planted):
        others = [o for o in planted if o is not item]
        if len(others) < 2:
            break
        said = f'is the sign "{item.text}" on screen' if item.shown else f'does the narrator say "{item.text}"'
        options, answer = _pick(rng, _span(item), [_span(o) for o in others])
        rows.append({"qid": f"{video}-grounding-{k:02d}", "task": "grounding", "question": f"When {said}?",
                     "options": options, "answer": answer, "spans": [[item.start, item.end]]})
        options, answer = _pick(rng, item.word, [o.word for o in others])
        t = fmt_time((item.start + item.end) / 2)
        rows.append({"qid": f"{video}-anchored-{k:02d}", "task": "anchored",
                     "question": f"Which of these is mentioned or shown at {t}?", "options": options,
                     "answer": answer, "spans": [[item.start, item.end]]})
    return rows
