"""The timeline of a synthetic video and its needle questions: pure, deterministic Python (no I/O).

``build_script(minutes, seed, speech_duration)`` lays out, for a seed:

* scenes: back-to-back visual segments (lavfi test sources, dim solid colours, moving boxes) on the frame grid;
* signs: on-screen text at known times (filler captions and needle signs);
* speech: narration sentences placed one after another with silences between them (speech about half the
  time); a sentence's span is ``[start, start + its audio length]``, the length coming from
  ``speech_duration(text)`` (the real espeak-ng WAV length when rendering);
* needles: planted facts with a 5-option multiple-choice question, the answer and the ground-truth spans.

Everything random comes from ``random.Random`` streams seeded with strings derived from the seed, so the same
(seed, minutes) gives the same script on every machine with the same speech durations.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Callable

from eval.synth.vocabulary import (BOX_COLORS, CAPTIONS, DIM_COLORS, FILLER_ACTIONS, FILLER_DECOYS,
                                   FILLER_SUBJECTS, FILLER_TIMES, NEEDLE_COLORS, NUMBER, SCENE_KINDS, SIGN_NUMBERS,
                                   SIGNS, SPOKEN_FACTS, SPOKEN_NUMBERS, TEMPORAL, fmt_time, number_words)

SCRIPT_VERSION = 1
FPS = 5
WIDTH, HEIGHT = 426, 240
MIN_MINUTES = 0.75  # below this the needles do not fit
TASKS = ("spoken_fact", "onscreen_text", "color_scene", "temporal_order")
# Needles of each task per 10 minutes of video (at least one of each task in any video).
NEEDLES_PER_10_MIN = {"spoken_fact": 1.5, "onscreen_text": 1.0, "color_scene": 1.0, "temporal_order": 1.0}
SIGN_SECONDS = 8.0  # how long a needle sign stays on screen
COLOR_SECONDS = 8.0  # how long a needle colour scene lasts

# ---------------------------------------------------------------------------------------------------------------
# Timeline records (serialised with dataclasses.asdict).
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Scene:
    start: float
    end: float
    kind: str  # one of SCENE_KINDS, or "needle_color"
    params: dict = field(default_factory=dict)
    needle: str | None = None  # qid of the needle this scene plants


@dataclass
class Sign:
    start: float
    end: float
    text: str
    role: str  # "caption" (filler) or "needle"
    needle: str | None = None


@dataclass
class Speech:
    start: float
    end: float
    text: str
    role: str  # "filler" or "needle"
    needle: str | None = None


@dataclass
class Needle:
    qid: str
    task: str
    question: str
    options: list[str]
    answer: int
    spans: list[list[float]]
    planted: list[str]  # the sentences or sign text planted
    keywords: list[str]  # words a transcript/OCR of the spans should contain (lower case)

    @property
    def answer_text(self) -> str:
        return self.options[self.answer]


@dataclass
class _Pending:  # a needle sentence waiting to be placed in the narration
    target: float
    text: str
    needle: str
    mention: int = 0


# ---------------------------------------------------------------------------------------------------------------


def frames(t: float) -> int:
    return int(round(t * FPS))


def on_grid(t: float) -> float:
    """Snap a time to the frame grid (scene cuts and signs start and end on frames)."""
    return frames(t) / FPS


def needle_counts(minutes: float) -> dict[str, int]:
    """Needles per task: NEEDLES_PER_10_MIN, at least one, at most one per template (so that no question is
    ambiguous: 10 spoken facts, 6 temporal orders, 8 signs and 8 colours in the longest videos)."""
    cap = {"spoken_fact": len(SPOKEN_FACTS), "temporal_order": len(TEMPORAL), "onscreen_text": len(SIGNS),
           "color_scene": len(NEEDLE_COLORS)}
    return {t: min(cap[t], max(1, int(round(minutes / 10 * r)))) for t, r in NEEDLES_PER_10_MIN.items()}


def _options(rng: random.Random, answer: str, pool: list[str]) -> tuple[list[str], int]:
    """The answer plus four distinct distractors from the pool, shuffled; returns (options, answer index)."""
    distractors = rng.sample([p for p in pool if p != answer], 4)
    options = distractors + [answer]
    rng.shuffle(options)
    return options, options.index(answer)


def _number_options(rng: random.Random, pool: list[int]) -> tuple[int, list[str], int]:
    values = rng.sample(pool, 5)
    answer = values[0]
    options = [str(v) for v in values]
    rng.shuffle(options)
    return answer, options, options.index(str(answer))


def _time_options(rng: random.Random, answer_t: float, duration: float) -> tuple[list[str], int]:
    """Five M:SS options: the answer and four other times, spread apart, inside the video."""
    answer = fmt_time(answer_t)
    sep = max(6.0, duration / 15)
    chosen = [round(answer_t)]
    for attempt in range(2000):
        if len(chosen) == 5:
            break
        c = rng.randint(3, max(4, int(duration) - 3))
        if all(abs(c - x) >= sep for x in chosen):
            chosen.append(c)
        elif attempt % 200 == 199:
            sep /= 2
    options = [fmt_time(c) for c in chosen]
    if len(set(options)) != 5:  # pragma: no cover - only for absurdly short videos
        raise ValueError("video too short for time options")
    rng.shuffle(options)
    return options, options.index(answer)


class _Fillers:
    """An endless deterministic stream of filler sentences with no immediate repeats."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.recent: list[str] = []

    def __next__(self) -> str:
        for _ in range(100):
            if self.rng.random() < 0.12:
                s = self.rng.choice(FILLER_DECOYS)
            else:
                s = (f"{self.rng.choice(FILLER_SUBJECTS)} {self.rng.choice(FILLER_ACTIONS)} "
                     f"{self.rng.choice(FILLER_TIMES)}.")
            if s not in self.recent:
                break
        self.recent = (self.recent + [s])[-40:]
        return s

    def __iter__(self):
        return self


def filler_sentences(seed: int, n: int) -> list[str]:
    """The first n filler sentences of a seed's stream (to synthesise their audio ahead of time)."""
    stream = _Fillers(random.Random(f"synth:{seed}:fillers"))
    return [next(stream) for _ in range(n)]


def check_minutes(minutes: float) -> float:
    """The one rule for a video's length, used by build_script, generate and the CLIs' ``--minutes``.

    Returns:
        ``minutes``, when the video can be generated.
    Raises:
        ValueError: shorter than MIN_MINUTES (the needles do not fit), or not a finite number (NaN passes
            ``<`` comparisons, and both NaN and infinity would fail later in int()).
    """
    if not (math.isfinite(minutes) and minutes >= MIN_MINUTES):
        raise ValueError(f"minutes must be a number >= {MIN_MINUTES:g}, the shortest video its questions fit in "
                         f"(got {minutes:g})")
    return minutes


def estimate_speech_duration(text: str) -> float:
    """A rough stand-in for the real audio length (130 words per minute), for planning without espeak."""
    return 0.35 + 0.46 * len(re.findall(r"[\w']+", text))


def build_script(
    minutes: float,
    seed: int,
    speech_duration: Callable[[str], float] = estimate_speech_duration,
    name: str | None = None,
    speech_ratio: float = 0.5,
) -> dict:
    """The full timeline and questions of one synthetic video, as a JSON-ready dict."""
    check_minutes(minutes)
    if not 0.05 <= speech_ratio <= 0.9:
        raise ValueError(f"speech_ratio must be in [0.05, 0.9] (got {speech_ratio})")
    name = name or default_name(minutes, seed)
    duration = frames(minutes * 60) / FPS
    rng_needles = random.Random(f"synth:{seed}:{duration}:needles")
    rng_visual = random.Random(f"synth:{seed}:{duration}:visual")
    rng_speech = random.Random(f"synth:{seed}:{duration}:speech")

    plan = _plan_needles(rng_needles, minutes, duration, name)
    needles, pending, needle_scenes, needle_signs = plan.needles, plan.pending, plan.scenes, plan.signs
    scenes = _layout_scenes(rng_visual, duration, needle_scenes)
    captions = _layout_captions(rng_visual, scenes, needle_signs)
    speech = _layout_speech(rng_speech, seed, duration, pending, speech_duration, speech_ratio)

    by_qid = {n.qid: n for n in needles}
    for s in speech:
        if s.needle:
            by_qid[s.needle].spans.append([s.start, s.end])
    for n in needles:
        n.spans.sort()

    talk = sum(s.end - s.start for s in speech)
    return {
        "version": SCRIPT_VERSION,
        "name": name,
        "seed": seed,
        "minutes": minutes,
        "duration": duration,
        "video": {"width": WIDTH, "height": HEIGHT, "fps": FPS},
        "stats": {
            "scenes": len(scenes), "signs": len(captions) + len(needle_signs), "sentences": len(speech),
            "needles": len(needles), "speech_seconds": round(talk, 3), "speech_ratio": round(talk / duration, 3),
        },
        "scenes": [asdict(s) for s in scenes],
        "signs": [asdict(s) for s in sorted(captions + needle_signs, key=lambda s: s.start)],
        "speech": [asdict(s) for s in speech],
        "needles": [dict(asdict(n), answer_text=n.answer_text) for n in sorted(needles, key=lambda n: n.qid)],
    }


@dataclass
class _Plan:
    """The needles of one video and what plants them: sentences still to place, colour scenes, signs."""

    rng: random.Random
    duration: float
    hi: float  # where the needle slots end
    needles: list[Needle] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)
    scenes: list[Scene] = field(default_factory=list)
    signs: list[Sign] = field(default_factory=list)


def _plan_needles(rng: random.Random, minutes: float, duration: float, name: str) -> _Plan:
    """Needle slots: the video (less margins) is cut into one bin per needle; each needle lands inside its bin,
    so visual needles never overlap each other. Each needle uses its own template (sentence, sign or colour): no
    two questions can be confused."""
    counts = needle_counts(minutes)
    kinds = [t for t in TASKS for _ in range(counts[t])]
    rng.shuffle(kinds)
    lo, hi = min(8.0, duration * 0.06), duration - min(20.0, duration * 0.12)
    width = (hi - lo) / len(kinds)
    if width < max(SIGN_SECONDS, COLOR_SECONDS) + 1:
        raise ValueError(f"{minutes} minutes is too short for {len(kinds)} needles")
    templates = {"spoken_fact": rng.sample(SPOKEN_FACTS, len(SPOKEN_FACTS)),
                 "temporal_order": rng.sample(TEMPORAL, len(TEMPORAL)),
                 "onscreen_text": rng.sample(SIGNS, len(SIGNS)),
                 "color_scene": rng.sample(NEEDLE_COLORS, len(NEEDLE_COLORS))}
    plant = {"spoken_fact": _plant_spoken_fact, "temporal_order": _plant_temporal_order,
             "onscreen_text": _plant_onscreen_text, "color_scene": _plant_color_scene}
    plan, used = _Plan(rng, duration, hi), {t: 0 for t in TASKS}
    for i, task in enumerate(kinds):
        k = used[task]
        used[task] += 1
        plant[task](plan, templates[task][k], f"{name}-{task}-{k:02d}", lo + i * width, lo + (i + 1) * width)
    return plan


def _plant_spoken_fact(plan: _Plan, template, qid: str, b0: float, b1: float) -> None:
    rng = plan.rng
    sentence, question, pool = template
    if pool == NUMBER:
        value, options, answer = _number_options(rng, SPOKEN_NUMBERS)
        text, keywords = sentence.format(x=number_words(value)), [str(value), number_words(value)]
    else:
        word = rng.choice(pool)
        options, answer = _options(rng, word, pool)
        text, keywords = sentence.format(x=word), [word.lower()]
    plan.needles.append(Needle(qid, "spoken_fact", question, options, answer, [], [text], keywords))
    plan.pending.append(_Pending(rng.uniform(b0, b1 - 4), text, qid))


def _plant_temporal_order(plan: _Plan, template, qid: str, b0: float, b1: float) -> None:
    rng = plan.rng
    sentence, question, pool = template
    words = rng.sample(pool, 5)
    mentioned = words[:3]
    which = rng.choice(["first", "last"])
    answer_word = mentioned[0] if which == "first" else mentioned[-1]
    options = list(words)
    rng.shuffle(options)
    texts = [sentence.format(x=w) for w in mentioned]
    plan.needles.append(Needle(qid, "temporal_order", question.format(which=which), options,
                               options.index(answer_word), [], texts, [w.lower() for w in mentioned]))
    # Mentions spread over the rest of the video, in order.
    t0 = rng.uniform(b0, b0 + 0.5 * (b1 - b0))
    step = min(max(15.0, plan.duration * 0.08), (plan.hi - t0) / 2.5)
    for m, t in enumerate(texts):
        plan.pending.append(_Pending(t0 + m * step * rng.uniform(0.8, 1.0), t, qid, m))


def _plant_onscreen_text(plan: _Plan, template, qid: str, b0: float, b1: float) -> None:
    rng = plan.rng
    sign_template, question, pool = template
    if pool == NUMBER:
        value, options, answer = _number_options(rng, SIGN_NUMBERS)
        word = str(value)
    else:
        word = rng.choice(pool)
        options, answer = _options(rng, word, pool)
    text = sign_template.format(x=word)
    start = on_grid(rng.uniform(b0 + 0.5, b1 - SIGN_SECONDS - 0.5))
    sign = Sign(start, on_grid(start + SIGN_SECONDS), text, "needle", qid)
    plan.signs.append(sign)
    plan.needles.append(Needle(qid, "onscreen_text", question, options, answer, [[sign.start, sign.end]], [text],
                               [word.lower()]))


def _plant_color_scene(plan: _Plan, template, qid: str, b0: float, b1: float) -> None:
    rng = plan.rng
    cname, chex = template
    start = float(round(rng.uniform(b0 + 0.5, b1 - COLOR_SECONDS - 0.5)))
    scene = Scene(start, start + COLOR_SECONDS, "needle_color", {"color": chex, "name": cname}, qid)
    plan.scenes.append(scene)
    if rng.random() < 0.5:
        question = f"At what time does the whole screen turn solid {cname}?"
        options, answer = _time_options(rng, start, plan.duration)
    else:
        question = f"What colour does the whole screen turn at {fmt_time(start)}?"
        options, answer = _options(rng, cname, [c for c, _ in NEEDLE_COLORS])
    plan.needles.append(Needle(qid, "color_scene", question, options, answer, [[scene.start, scene.end]], [cname],
                               [cname]))


def default_name(minutes: float, seed: int) -> str:
    return f"synth_s{seed}_{minutes:g}m".replace(".", "p")


def _layout_scenes(rng: random.Random, duration: float, needle_scenes: list[Scene]) -> list[Scene]:
    """Back-to-back scenes covering [0, duration], needle colour scenes included, cut on the frame grid."""
    needle_scenes = sorted(needle_scenes, key=lambda s: s.start)
    scenes: list[Scene] = []
    cursor, prev_kind = 0.0, None
    while cursor < duration - 1e-6:
        nxt = next((s for s in needle_scenes if s.start >= cursor - 1e-6), None)
        if nxt is not None and abs(nxt.start - cursor) < 1e-6:
            scenes.append(nxt)
            cursor = nxt.end
            continue
        limit = nxt.start if nxt is not None else duration
        end = on_grid(cursor + rng.uniform(12, 40))
        if end > limit - 3:  # never leave a sliver before a needle scene or the end
            end = limit
        kind = rng.choice([k for k in SCENE_KINDS if k != prev_kind])
        scenes.append(Scene(cursor, end, kind, _scene_params(rng, kind)))
        cursor, prev_kind = end, kind
    return scenes


def _scene_params(rng: random.Random, kind: str) -> dict:
    if kind == "gradients":  # explicit colours and points: ffmpeg's gradients is random even with a seed
        return {"seed": rng.randrange(1 << 30), "colors": rng.sample(DIM_COLORS + BOX_COLORS, rng.randint(2, 4)),
                "points": [rng.randrange(WIDTH), rng.randrange(HEIGHT), rng.randrange(WIDTH), rng.randrange(HEIGHT)]}
    if kind in ("life", "cellauto"):
        return {"seed": rng.randrange(1 << 30)}
    if kind == "mandelbrot":
        return {"start_scale": round(rng.uniform(1.5, 3.0), 3), "end_scale": round(rng.uniform(0.05, 0.4), 3)}
    if kind == "color":
        return {"color": rng.choice(DIM_COLORS)}
    if kind == "shapes":
        boxes = []
        for _ in range(rng.randint(2, 3)):
            boxes.append({"color": rng.choice(BOX_COLORS), "size": rng.randint(24, 60),
                          "fx": round(rng.uniform(0.2, 1.2), 3), "fy": round(rng.uniform(0.2, 1.2), 3),
                          "phase": round(rng.uniform(0, 6.28), 3)})
        return {"color": rng.choice(DIM_COLORS), "boxes": boxes}
    return {}


def _layout_captions(rng: random.Random, scenes: list[Scene], needle_signs: list[Sign]) -> list[Sign]:
    """Filler captions near the start of some filler scenes, away from needle signs."""
    captions: list[Sign] = []
    parts = 0
    for sc in scenes:
        if sc.needle or rng.random() > 0.6:
            continue
        start = on_grid(sc.start + rng.uniform(0.6, 3.0))
        end = on_grid(start + rng.uniform(4.0, 7.0))
        if end > sc.end - 0.4 or any(start < s.end + 1 and s.start < end + 1 for s in needle_signs):
            continue
        text = rng.choice(CAPTIONS)
        if rng.random() < 0.3:
            parts += 1
            text = f"PART {parts}"
        captions.append(Sign(start, end, text, "caption"))
    return captions


def _layout_speech(
    rng: random.Random,
    seed: int,
    duration: float,
    pending: list[_Pending],
    speech_duration: Callable[[str], float],
    ratio: float,
) -> list[Speech]:
    """Narration: sentences one after another, needle sentences at (or just after) their target times, with
    silences drawn so that speech fills about ``ratio`` of the time. Times are on a 1 ms grid."""
    queue = sorted(pending, key=lambda p: (p.target, p.mention))
    fillers = _Fillers(random.Random(f"synth:{seed}:fillers"))
    end_limit = duration - 1.0
    min_gap = 0.6
    out: list[Speech] = []
    t = round(rng.uniform(1.0, 3.0), 3)
    force = False  # no room for a filler: place the next needle sentence now
    while True:
        need = sum(speech_duration(p.text) + min_gap for p in queue)
        if queue and (force or t >= queue[0].target or t + need > end_limit - 4):
            p = queue.pop(0)
            text, role, qid, force = p.text, "needle", p.needle, False
        else:
            text, role, qid = next(fillers), "filler", None
            if t + speech_duration(text) + min_gap + need > end_limit:
                if not queue:
                    break
                force = True
                continue
        d = speech_duration(text)
        end = round(t + d, 3)
        if end > end_limit:
            raise ValueError("narration does not fit; use a longer video")
        out.append(Speech(t, end, text, role, qid))
        mean_gap = max(min_gap, d * (1 / ratio - 1))
        gap = min(min_gap + rng.expovariate(1 / (mean_gap - min_gap + 1e-3)), 6 * mean_gap)
        # never a silence so long that the needle sentences still queued no longer fit before the end
        room = end_limit - end - sum(speech_duration(p.text) + min_gap for p in queue)
        gap = max(min_gap, min(gap, room)) if queue else gap
        t = round(end + gap, 3)
        if queue and role == "filler" and t < queue[0].target < t + 1.5:
            t = round(queue[0].target, 3)
    if queue:
        raise ValueError("narration does not fit; use a longer video")
    return out


def samples(script: dict, video_name: str) -> list[dict]:
    """The samples.jsonl rows (the evaluation harness's format) of a script."""
    rows = []
    for n in script["needles"]:
        rows.append({
            "qid": n["qid"], "video": video_name, "duration": script["duration"], "question": n["question"],
            "options": n["options"], "answer": n["answer"], "answer_text": n["answer_text"],
            "spans": n["spans"], "task": n["task"], "benchmark": "needle",
        })
    return rows
