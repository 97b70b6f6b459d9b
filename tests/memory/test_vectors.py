"""The FAISS indexes in a process that has imported decord."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

# decord2 dlopens every library under site-packages/nvidia/*/lib with RTLD_GLOBAL on import, libnvblas among them:
# its sgemm_ (no nvblas.conf naming a CPU BLAS) jumps to address 0. faiss, loaded plainly, bound its BLAS calls to
# it: the IVF index finalize builds for a large store crashed the process (SIGSEGV in IndexIVFFlat.add).
SCRIPT = """
import numpy as np
import decord  # noqa: F401 - what decoding with the decord backend does to the process
from videomind.memory.vectors import VectorIndex, build_index

mat = np.random.default_rng(0).normal(size=(2000, 64)).astype(np.float32)
mat /= np.linalg.norm(mat, axis=1, keepdims=True)
ivf = build_index(mat, "ivf")
flat = build_index(mat, "flat")
_, pos = flat.search(mat[:100], 1)  # 20+ queries: faiss computes them with sgemm
assert (pos[:, 0] == np.arange(100)).all()
assert ivf.ntotal == 2000 and VectorIndex(64, ivf).search(mat[7], 1)[1][0] == 7
print("ok")
"""


@pytest.mark.skipif(importlib.util.find_spec("decord") is None, reason="decord is not installed")
def test_faiss_blas_survives_decord_import():  # in a subprocess: decord is not imported into this one
    r = subprocess.run([sys.executable, "-X", "faulthandler", "-c", SCRIPT], capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stderr[-3000:])
