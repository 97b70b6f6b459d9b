"""Evaluation of VideoMind: synthetic long videos (eval.synth) and, later, the benchmark harness.

Code under eval/ uses only VideoMind's public API (``from videomind import ...``).
"""
