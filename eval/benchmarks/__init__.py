"""One short module per benchmark: ``load(annotations, videos=None, split=None) -> list[Sample]`` and
``aggregate(rows) -> dict``; shared parts (Sample, answer extraction, scoring, clustered errors) in ``base``.

    from eval.benchmarks import get
    bench = get("egoschema")
    samples = bench.load("data/egoschema/questions.json", videos="data/egoschema/videos")
"""

from __future__ import annotations

import importlib
from types import ModuleType

NAMES = ("videomme", "mlvu", "longvideobench", "egoschema", "lvbench", "needle")


def get(name: str) -> ModuleType:
    """The benchmark module called ``name`` (one of NAMES)."""
    if name not in NAMES:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"eval.benchmarks.{name}")
