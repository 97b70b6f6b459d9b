"""Deterministic synthetic long videos with known ground truth (needle-in-a-haystack questions).

    from eval.synth import generate, load_samples
    res = generate("out/", minutes=10, seed=0)        # -> SynthResult(video, script, samples)
    rows = load_samples(res.samples)                  # samples.jsonl rows (CONTRACTS.md format)

or ``python -m eval.synth --minutes 10 --seed 0 --out DIR [--name NAME]``. Writes DIR/NAME.mp4, DIR/NAME.json
(the full timeline: scenes, signs, speech, needles) and DIR/NAME.samples.jsonl. Needs ffmpeg, espeak-ng and
fonts-dejavu-core (apt). The same seed and minutes give the same JSON and, with the same ffmpeg/espeak-ng
builds, the same MP4 bytes. A second call with an unchanged script reuses the existing files.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from eval.synth.render import RATE_WPM, SAMPLE_RATE, VOICE, MissingTool, Speaker, check_tools, render_video
from eval.synth.script import MIN_MINUTES, build_script, check_minutes, default_name, filler_sentences, samples

__all__ = ["MIN_MINUTES", "MissingTool", "SynthResult", "build_script", "generate", "load_samples", "minutes_arg"]


@dataclass(frozen=True)
class SynthResult:
    video: Path  # NAME.mp4
    script: Path  # NAME.json
    samples: Path  # NAME.samples.jsonl
    rendered: bool = True  # False when up-to-date files were reused
    seconds: float = 0.0  # wall time of this call


def generate(
    out_dir: str | os.PathLike,
    minutes: float,
    seed: int,
    name: str | None = None,
    *,
    speech_ratio: float = 0.5,
    cache_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> SynthResult:
    """Generate (or reuse) the synthetic video of ``minutes`` for ``seed`` in ``out_dir``.

    Raises:
        ValueError: ``minutes`` below MIN_MINUTES or not finite (see check_minutes).
        MissingTool: ffmpeg or espeak-ng is not installed.
    """
    t0 = time.perf_counter()
    check_minutes(minutes)  # before the narration is prefetched, which sizes itself on minutes
    check_tools()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or default_name(minutes, seed)
    video, script_path, samples_path = out / f"{name}.mp4", out / f"{name}.json", out / f"{name}.samples.jsonl"

    speaker = Speaker(Path(cache_dir) if cache_dir else None)
    speaker.prefetch(filler_sentences(seed, int(minutes * 60 * speech_ratio / 4.0) + 10))
    script = build_script(minutes, seed, speaker.duration, name=name, speech_ratio=speech_ratio)
    script["audio"] = {"voice": VOICE, "wpm": RATE_WPM, "sample_rate": SAMPLE_RATE, "channels": 1}
    script_text = json.dumps(script, indent=1) + "\n"
    rows_text = "".join(json.dumps(r) + "\n" for r in samples(script, video.name))

    fresh = (not force and video.is_file() and samples_path.is_file() and script_path.is_file()
             and script_path.read_text() == script_text and samples_path.read_text() == rows_text)
    if not fresh:
        script_path.unlink(missing_ok=True)  # the script is written last: its presence marks a complete set
        render_video(script, speaker, video)
        _write(samples_path, rows_text)
        _write(script_path, script_text)
    return SynthResult(video, script_path, samples_path, rendered=not fresh, seconds=time.perf_counter() - t0)


def minutes_arg(text: str) -> float:
    """argparse ``type=`` of a ``--minutes`` flag: check_minutes' rule, reported as a usage error (exit code 2,
    ``error: argument --minutes: ...``) instead of a traceback from inside generate()."""
    try:
        return check_minutes(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number of minutes >= {MIN_MINUTES:g}, the shortest video its questions fit in (got "
            f"{text!r}); use --minutes {MIN_MINUTES:g} or more") from None


def load_samples(path: str | os.PathLike) -> list[dict]:
    """Rows of a samples.jsonl file; each gets ``video_path``, the absolute path of its video."""
    path = Path(path)
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            row["video_path"] = str((path.parent / row["video"]).resolve())
            rows.append(row)
    return rows


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
