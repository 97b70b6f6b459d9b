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
