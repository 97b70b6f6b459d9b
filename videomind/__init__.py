"""VideoMind: ask questions about hours-long videos and get answers backed by timestamped evidence.

    from videomind import VideoMind, Config
    vm = VideoMind(Config())
    memory = vm.ingest("talk.mp4")
    answer = vm.ask(memory, "What is the secret password?", options=["apple", "pineapple", "mango"])
    print(answer.format())

Importing this package is cheap: torch and the models load only when first needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from videomind.config import Config, default_home
from videomind.errors import (
    CapabilityUnavailable,
    ConfigError,
    DependencyMissing,
    InputError,
    ModelNotFoundError,
    ModelOutputError,
    RebuildInterrupted,
    StoreError,
    VideoMindError,
)
from videomind.progress import ProgressBars
from videomind.types import VIDEO_SUFFIXES, Answer, Evidence, VideoInfo

if TYPE_CHECKING:
    from videomind.api import VideoMind

__version__ = "0.1.0"

__all__ = [
    "Answer", "CapabilityUnavailable", "Config", "ConfigError", "DependencyMissing", "Evidence", "InputError",
    "ModelNotFoundError", "ModelOutputError", "ProgressBars", "RebuildInterrupted", "StoreError", "VIDEO_SUFFIXES",
    "VideoInfo", "VideoMind", "VideoMindError", "default_home", "describe_models", "option_index",
]


def __getattr__(name: str):
    # VideoMind pulls the agent and memory modules; load them on first use, not at import.
    if name == "VideoMind":
        from videomind.api import VideoMind

        return VideoMind
    if name == "describe_models":
        from videomind.models.registry import describe

        return describe
    if name == "option_index":  # which option a model's reply names (the agent's reader, also the benchmarks')
        from videomind.agents.parsing import option_index

        return option_index
    raise AttributeError(f"module 'videomind' has no attribute {name!r}")
