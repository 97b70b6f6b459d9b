"""Shared helpers for tests/kernels (unique module name: tests/ has no __init__.py)."""
import torch


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt().clamp_min(1e-30))


TOL = {torch.float32: 1e-5, torch.float16: 2e-3}
