"""eval.demo (`make demo`): the sample video is the one --minutes and --seed ask for, and reused while they stay."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from videomind import Answer


@pytest.mark.skipif(not all(shutil.which(t) for t in ("ffmpeg", "ffprobe", "espeak-ng")),
                    reason="needs ffmpeg and espeak-ng (apt)")
def test_demo_video_follows_minutes_and_seed(tmp_path, monkeypatch):
    """The demo's folder held a sample from an earlier run: other --minutes/--seed were ignored. VideoMind is a
    stand-in here (what is under test is which video and question the demo uses)."""
    import eval.demo as demo

    asked = []

    class FakeVideoMind:
        def __init__(self, config):
            pass

        def ingest(self, path, progress=None):
            return path

        def ask(self, memory, question, options=None):
            asked.append((memory, question))
            return Answer(question=question, text="A", choice=0, options=options)

    monkeypatch.setattr(demo, "VideoMind", FakeVideoMind)
    video, script = tmp_path / "sample.mp4", tmp_path / "sample.json"

    def demo_run(minutes: str, seed: str) -> dict:
        demo.main(["--out", str(tmp_path), "--minutes", minutes, "--seed", seed])
        samples = [json.loads(line) for line in (tmp_path / "sample.samples.jsonl").read_text().splitlines()]
        assert asked[-1] == (video, next(s["question"] for s in samples if s["task"] == "spoken_fact"))
        return json.loads(script.read_text())

    first = demo_run("0.75", "0")
    assert (first["duration"], first["seed"]) == (45.0, 0)
    rendered = video.stat().st_mtime_ns
    assert demo_run("0.75", "0") == first and video.stat().st_mtime_ns == rendered  # reused, not rendered again
    second = demo_run("1", "5")
    assert (second["duration"], second["seed"]) == (60.0, 5)


@pytest.mark.parametrize("minutes", ["0.25", "0", "-1", "nan", "inf", "-inf", "1e400", "three"])
def test_bad_minutes_is_a_usage_error(minutes, monkeypatch, capsys):
    """--minutes 0.25 ended in generate()'s ValueError traceback (exit code 1), and nan or inf in int()'s. Now the
    parser refuses them: exit code 2, the flag, the generator's minimum and what to pass instead; nothing is
    generated."""
    import eval.demo as demo
    from eval.synth.script import MIN_MINUTES

    monkeypatch.setattr(demo, "run", lambda *a: pytest.fail("run() reached with a bad --minutes"))
    with pytest.raises(SystemExit) as exc:
        demo.main([f"--minutes={minutes}"])  # "=": argparse reads a lone "-inf" as a flag
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --minutes: must be a number of minutes >= {MIN_MINUTES:g}" in err
    assert f"use --minutes {MIN_MINUTES:g} or more" in err and "Traceback" not in err


def test_bad_seed_is_a_usage_error(capsys):
    import eval.demo as demo

    with pytest.raises(SystemExit) as exc:
        demo.main(["--seed", "1.5"])
    assert exc.value.code == 2 and "argument --seed: invalid int value: '1.5'" in capsys.readouterr().err


def test_shortest_accepted_minutes_is_the_generators(monkeypatch):
    """One rule: the demo accepts exactly what the generator does (MIN_MINUTES), whatever it becomes."""
    import eval.demo as demo
    from eval.synth.script import MIN_MINUTES, build_script

    build_script(MIN_MINUTES, 0)  # the minimum is a video the generator can make
    got = []
    monkeypatch.setattr(demo, "run", lambda out, minutes, seed: got.append((minutes, seed)) or 0)
    assert demo.main(["--minutes", str(MIN_MINUTES), "--seed", "-3"]) == 0
    assert got == [(MIN_MINUTES, -3)]


def test_too_short_minutes_from_the_command_line():
    """The reported command, as a user runs it: a usage error on stderr, exit code 2, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "eval.demo", "--minutes", "0.25"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "error: argument --minutes:" in proc.stderr and "Traceback" not in proc.stderr
