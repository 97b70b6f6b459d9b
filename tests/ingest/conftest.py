"""Fixtures for the ingestion tests: real clips from ../shared/data/media and small generated videos (ffmpeg)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MEDIA = REPO.parent / "shared" / "data" / "media"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def ffmpeg(*args: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (needed to generate test videos)")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def signs_filter(signs: list[tuple[str, float, float]]) -> str:
    """An ffmpeg -vf drawing each (text, from s, to s) centred in black, for on-screen text tests."""
    draw = ("drawtext=fontfile={font}:text='{t}':fontsize=48:fontcolor=black:x=(w-text_w)/2:"
            "y=(h-text_h)/2:enable='between(t,{a},{b})'")
    return ",".join(draw.format(font=FONT, t=t, a=a, b=b) for t, a, b in signs)


def media(name: str) -> Path:
    p = MEDIA / name
    if not p.is_file():
        pytest.skip(f"shared test media {p} is absent")
    return p


@pytest.fixture(scope="session")
def nasa() -> Path:
    return media("nasa_13013.mp4")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ingest_media")


@pytest.fixture(scope="session")
def jfk_video(media_dir) -> Path:
    """The JFK speech (11 s) muxed with generated frames: a real-speech video."""
    out = media_dir / "jfk.mp4"
    if not out.exists():
        ffmpeg("-f", "lavfi", "-i", "color=c=navy:size=320x240:rate=10", "-i", str(media("jfk.flac")),
               "-t", "11", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", str(out))
    return out


@pytest.fixture(scope="session")
def silent_video(media_dir) -> Path:
    """8 s of video without any audio stream: two coloured shots of 4 s."""
    out = media_dir / "silent.mp4"
    if not out.exists():
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:d=4", "-f", "lavfi",
               "-i", "color=c=red:size=320x240:rate=10:d=4", "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]",
               "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out))
    return out


@pytest.fixture(scope="session")
def audio_only(media_dir) -> Path:
    out = media_dir / "audio_only.m4a"
    if not out.exists():
        ffmpeg("-i", str(media("jfk.flac")), "-c:a", "aac", str(out))
    return out
