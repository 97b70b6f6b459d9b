"""FAISS vector indexes: exact inner product for a video's store, IVF for millions of vectors.

Vectors are L2-normalised float32, so inner product is cosine similarity. ``VectorIndex`` positions are
0..n-1 in insertion order; the caller maps positions to its own ids.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Above this many vectors an exact scan gets slow on a laptop CPU (~15-20 ms per 100k on 2 cores): a store
# that large (tens of hours of video) is reopened with an IVF index (~1 ms, nprobe 32).
IVF_THRESHOLD = 50_000


_FAISS = None
_FAISS_LOCK = threading.Lock()


def _faiss():
    """The faiss module, its native libraries bound to their own BLAS and OpenMP first (RTLD_DEEPBIND).

    faiss's wheel calls the Fortran BLAS ``sgemm_`` of the OpenBLAS it ships, looked up lazily in the process's
    global scope first. decord2 (the decord frame backend) dlopens every library under site-packages/nvidia/*/lib
    with RTLD_GLOBAL on import, torch's CUDA wheels' libnvblas among them: a BLAS interposer whose ``sgemm_``,
    with no nvblas.conf naming a CPU BLAS, jumps to address 0. After a decode with decord, the IVF index that
    ``finalize`` builds for a large store (and any flat search of 20+ queries) died with SIGSEGV in faiss's add.
    Deep binding makes faiss resolve its symbols in its own dependencies (its OpenBLAS, its libgomp) before the
    global scope, whatever was loaded before or after it. It holds when faiss is first imported here: every use in
    the package goes through this function."""
    global _FAISS
    if _FAISS is None:
        with _FAISS_LOCK:
            if _FAISS is None:
                deep = getattr(os, "RTLD_DEEPBIND", 0)  # glibc only; elsewhere a plain import
                old = sys.getdlopenflags()
                if deep and "faiss" not in sys.modules:
                    sys.setdlopenflags(old | deep)
                try:
                    import faiss
                finally:
                    sys.setdlopenflags(old)
                _FAISS = faiss
    return _FAISS


def to_blob(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


def normalize(mat: np.ndarray) -> np.ndarray:
    mat = np.asarray(mat, dtype=np.float32)
    if mat.ndim == 1:
        n = float(np.linalg.norm(mat))
        return mat / n if n > 0 else mat
    n = np.linalg.norm(mat, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return (mat / n).astype(np.float32)


def build_index(mat: np.ndarray, kind: str = "auto", nprobe: int = 32):
    """A FAISS index over the rows of ``mat``. kind: "flat" (exact), "ivf" (IVF-Flat, exact vectors, probes
    ``nprobe`` lists), "hnsw", or "auto" (flat up to IVF_THRESHOLD rows, ivf above)."""
    faiss = _faiss()

    mat = np.ascontiguousarray(mat, dtype=np.float32)
    n, dim = mat.shape
    if kind == "auto":
        kind = "flat" if n <= IVF_THRESHOLD else "ivf"
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = max(1, min(int(4 * np.sqrt(max(n, 1))), max(1, n // 39)))
        quant = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quant, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 12  # k-means: 12 iterations are plenty for coarse lists
        rng = np.random.default_rng(0)
        sample = mat if n <= 32 * nlist else mat[np.sort(rng.choice(n, 32 * nlist, replace=False))]
        index.train(sample)
        index.nprobe = min(nprobe, nlist)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 64
    else:
        raise ValueError(f"unknown index kind {kind!r}: use flat, ivf, hnsw or auto")
    if n:
        index.add(mat)
    return index


class VectorIndex:
    """A growing index of unit vectors with filtered top-n search."""

    def __init__(self, dim: int, index=None):
        faiss = _faiss()

        self.dim = int(dim)
        self.index = index if index is not None else faiss.IndexFlatIP(self.dim)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, mat: np.ndarray) -> None:
        mat = np.ascontiguousarray(np.atleast_2d(mat), dtype=np.float32)
        if mat.size:
            if mat.shape[1] != self.dim:
                raise ValueError(f"vector dim {mat.shape[1]} != index dim {self.dim}")
            self.index.add(mat)

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` (scores, positions) for one query; ``allowed`` restricts to these positions."""
        faiss = _faiss()

        if self.ntotal == 0 or n <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            if allowed.size == 0:
                return np.zeros(0, np.float32), np.zeros(0, np.int64)
            n = min(n, int(allowed.size))
            sel = faiss.IDSelectorBatch(allowed)
            if isinstance(self.index, faiss.IndexIVF):
                # probe every list: a time window's vectors sit in lists that the query's nearest nprobe may
                # not include. The selector skips the other vectors before any distance: O(n) id checks
                params = faiss.SearchParametersIVF(sel=sel, nprobe=self.index.nlist)
            else:
                params = faiss.SearchParameters(sel=sel)
            scores, pos = self.index.search(q, n, params=params)
        else:
            scores, pos = self.index.search(q, min(n, self.ntotal))
        keep = pos[0] >= 0
        return scores[0][keep], pos[0][keep]

    def save(self, path: Path) -> None:
        """Write atomically: temp file then os.replace."""
        faiss = _faiss()

        tmp = Path(str(path) + ".tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, dim: int, expected: int) -> VectorIndex | None:
        """The saved index, or None when it is missing, unreadable or does not hold ``expected`` vectors."""
        faiss = _faiss()

        if not Path(path).is_file():
            return None
        try:
            index = faiss.read_index(str(path))
        except Exception as e:  # noqa: BLE001 - a cache: rebuild instead
            logger.warning("vector index %s unreadable (%s); rebuilding it from the database", path, e)
            return None
        if index.ntotal != expected or index.d != dim:
            logger.warning("vector index %s is stale (%d vectors, expected %d); rebuilding", path, index.ntotal,
                           expected)
            return None
        return cls(dim, index)
