"""The CUDA device a Triton launch must run on.

Triton launches on the *current* CUDA device and its current stream, not on the device of the tensors it is
given: with the model on cuda:1 (``models.device = "cuda:1"``) and cuda:0 current, a kernel would run in device
0's context with device 1's pointers. Every launch site enters :func:`launch_device` of its first tensor.
"""

from __future__ import annotations

import contextlib

import torch


def launch_device(t: torch.Tensor):
    """A context that makes ``t``'s CUDA device current (and so its current stream the launch stream); nothing
    for CPU tensors (the interpreter)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()
