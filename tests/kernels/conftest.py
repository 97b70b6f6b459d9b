"""Kernel tests run on the CPU through Triton's interpreter when no CUDA device is present.

TRITON_INTERPRET must be set before any ``triton.jit`` kernel module is imported, hence at the top of this file.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


@pytest.fixture
def device():
    return "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
