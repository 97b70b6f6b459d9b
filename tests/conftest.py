"""Shared test setup.

- Triton kernels run in the interpreter when there is no GPU (TRITON_INTERPRET must be set before the kernel
  modules are imported, hence here, first).
- VIDEOMIND_HOME points at a persistent test cache (converted models are reused across runs); every test that
  stores memories gets its own library directory through the ``config`` fixture.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("VIDEOMIND_HOME", str(Path.home() / ".cache" / "videomind-test"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = SHARED / "data"
    if not d.is_dir():
        pytest.skip(f"shared test data not found at {d} (it sits beside the repository in CI)")
    return d


@pytest.fixture
def config(tmp_path):
    from videomind.config import Config

    return Config.from_dict({"library": str(tmp_path / "library")})


SPEECH = [(2.0, "Hello and welcome. Today we talk about gardens."), (25.0, "The secret password is pineapple.")]


@pytest.fixture(scope="session")
def speech_video(tmp_path_factory) -> Path:
    """A 40 s video (blue frames, 5 fps) with two espeak-ng sentences at known times (SPEECH)."""
    import shutil
    import subprocess

    for tool in ("ffmpeg", "espeak-ng"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make test` (it installs system packages) or apt-get install {tool}")
    d = tmp_path_factory.mktemp("speech_video")
    inputs, filters = [], []
    for i, (t, text) in enumerate(SPEECH):
        wav = d / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-s", "140", "-w", str(wav), text], check=True)
        inputs += ["-i", str(wav)]
        ms = int(t * 1000)
        filters.append(f"[{i + 1}]adelay={ms}|{ms}[a{i}]")
    mix = "".join(f"[a{i}]" for i in range(len(SPEECH)))
    graph = ";".join(filters) + f";{mix}amix=inputs={len(SPEECH)}:duration=longest:normalize=0,apad[a]"
    out = d / "speech.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=320x180:r=5:d=40",
                    *inputs, "-filter_complex", graph, "-map", "0:v", "-map", "[a]", "-t", "40",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(out)], check=True)
    return out
