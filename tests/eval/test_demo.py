"""eval.demo (`make demo`): the sample video is the one --minutes and --seed ask for, and reused while they stay."""

from __future__ import annotations

import json
import shutil

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
