"""The searchable documents of one store: rows in ``docs`` + ``docs_fts`` + ``vecs``, mirrored in memory.

A document is what a search returns: at clip scale one per (clip, source) whose dense score is the best of its
sentence vectors (max-sim), at segment/chapter scale one "summary" document per event whose vector is the
centroid of the event's sentences and whose keyword body is the event's full text.
The in-memory mirror (numpy arrays + a FAISS index) serves filtered search without touching SQLite.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from videomind.memory.text import unspaced_terms
from videomind.memory.vectors import VectorIndex, from_blob, to_blob

SCALES = ("clip", "segment", "chapter")
SOURCES = ("speech", "ocr", "subtitle", "caption", "summary", "visual", "entity")
SCALE_CODE = {s: i for i, s in enumerate(SCALES)}
SOURCE_CODE = {s: i for i, s in enumerate(SOURCES)}


@dataclass
class DocFilter:
    """Which documents a search may return. ``events``: only docs of these events; ``parents``: only docs
    whose event's parent is one of these (drill down from chapters to segments to clips)."""

    scales: tuple[str, ...] | None = None
    sources: tuple[str, ...] | None = None
    t0: float | None = None
    t1: float | None = None
    parents: tuple[int, ...] | None = None

    def sql(self) -> tuple[str, list]:
        """A WHERE fragment over alias ``d`` (docs) and its parameters."""
        if self.inverted:
            return "0", []
        where, args = [], []
        if self.scales is not None:
            where.append(f"d.scale IN ({','.join('?' * len(self.scales))})")
            args += list(self.scales)
        if self.sources is not None:
            where.append(f"d.source IN ({','.join('?' * len(self.sources))})")
            args += list(self.sources)
        if self.t0 is not None:
            where.append("d.end >= ?")
            args.append(self.t0)
        if self.t1 is not None:
            where.append("d.start <= ?")
            args.append(self.t1)
        if self.parents is not None:
            where.append(f"d.event IN (SELECT id FROM events WHERE parent IN ({','.join('?' * len(self.parents))}))")
            args += list(self.parents)
        return (" AND ".join(where) or "1"), args

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.scales, self.sources, self.t0, self.t1, self.parents))

    @property
    def inverted(self) -> bool:
        """t0 > t1 is an empty window; the overlap test alone would still pass docs that span both bounds."""
        return self.t0 is not None and self.t1 is not None and self.t0 > self.t1


class Catalog:
    """Docs metadata as arrays indexed by doc id (1-based) and the dense index over their vectors."""

    def __init__(self, dim: int):
        self.dim = dim
        self.event: list[int] = [0]
        self.scale: list[int] = [-1]
        self.source: list[int] = [-1]
        self.start: list[float] = [0.0]
        self.end: list[float] = [0.0]
        self.pos_doc: list[int] = []
        self.index = VectorIndex(dim)
        self.parent: dict[int, int | None] = {}  # event id -> parent event id
        # the newest clip event this catalog has a doc of: a clip is closed (event and docs) in one transaction,
        # in event id order, so the clips after it are those closed after this catalog was read (search.py)
        self.last_clip = 0
        self._arrays: dict[str, np.ndarray] | None = None

    @property
    def n_docs(self) -> int:
        return len(self.event) - 1

    @property
    def n_vecs(self) -> int:
        return len(self.pos_doc)

    # --- writing (inside the caller's transaction) ---
    def add_doc(self, conn: sqlite3.Connection, event: int, scale: str, source: str, start: float, end: float,
                text: str, body: str, vecs: np.ndarray) -> int:
        doc = self.n_docs + 1
        conn.execute("INSERT INTO docs VALUES(?,?,?,?,?,?,?)", (doc, event, scale, source, start, end, text))
        extra = unspaced_terms(body)
        conn.execute("INSERT INTO docs_fts(rowid, body) VALUES(?,?)", (doc, f"{body}\n{extra}" if extra else body))
        vecs = np.atleast_2d(np.asarray(vecs, dtype=np.float32))
        base = self.n_vecs
        conn.executemany("INSERT INTO vecs VALUES(?,?,?)",
                         [(base + i, doc, to_blob(v)) for i, v in enumerate(vecs)])
        self.event.append(event)
        self.scale.append(SCALE_CODE.get(scale, -1))
        if scale == "clip":
            self.last_clip = max(self.last_clip, event)
        self.source.append(SOURCE_CODE.get(source, -1))
        self.start.append(float(start))
        self.end.append(float(end))
        self.pos_doc.extend([doc] * len(vecs))
        self.index.add(vecs)
        self._arrays = None
        return doc

    def set_parent(self, event: int, parent: int | None) -> None:
        self.parent[event] = parent
        self._arrays = None

    # --- loading ---
    @classmethod
    def load(cls, conn: sqlite3.Connection, dim: int, index_path: Path | None) -> Catalog:
        """The catalog as the database holds it. Its queries must read one snapshot (call it inside
        :func:`~videomind.memory.schema.snapshot`, as the store does): vectors committed after the docs were read
        would map to doc ids past the arrays."""
        cat = cls(dim)
        for doc, event, scale, source, start, end in conn.execute(
                "SELECT id, event, scale, source, start, end FROM docs ORDER BY id"):
            if doc != cat.n_docs + 1:
                raise ValueError(f"docs table has a gap at id {doc}")
            cat.event.append(event)
            cat.scale.append(SCALE_CODE.get(scale, -1))
            if scale == "clip":
                cat.last_clip = max(cat.last_clip, event)
            cat.source.append(SOURCE_CODE.get(source, -1))
            cat.start.append(start)
            cat.end.append(end)
        for eid, parent in conn.execute("SELECT id, parent FROM events"):
            cat.parent[eid] = parent
        cat.pos_doc = [d for (d,) in conn.execute("SELECT doc FROM vecs ORDER BY pos")]
        saved = VectorIndex.load(index_path, dim, len(cat.pos_doc)) if index_path else None
        if saved is not None:
            cat.index = saved
        else:
            rows = conn.execute("SELECT vec FROM vecs ORDER BY pos").fetchall()
            if rows:
                cat.index.add(np.stack([from_blob(b) for (b,) in rows]))
        return cat

    # --- filtering ---
    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            ev = np.asarray(self.event, dtype=np.int64)
            max_ev = max([0, *self.parent.keys()])
            par = np.full(max_ev + 1, -1, dtype=np.int64)
            for e, p in self.parent.items():
                par[e] = -1 if p is None else p
            self._arrays = {
                "event": ev, "scale": np.asarray(self.scale, dtype=np.int8),
                "source": np.asarray(self.source, dtype=np.int8), "start": np.asarray(self.start),
                "end": np.asarray(self.end), "pos_doc": np.asarray(self.pos_doc, dtype=np.int64),
                "parent_of_doc": par[np.clip(ev, 0, max_ev)],
            }
        return self._arrays

    def doc_mask(self, f: DocFilter) -> np.ndarray | None:
        """Boolean mask over doc ids (index 0 is never allowed), or None when everything is allowed."""
        if f.empty:
            return None
        a = self.arrays()
        m = np.ones(self.n_docs + 1, dtype=bool)
        m[0] = False
        if f.inverted:
            m[:] = False
        if f.scales is not None:
            m &= np.isin(a["scale"], [SCALE_CODE[s] for s in f.scales if s in SCALE_CODE])
        if f.sources is not None:
            m &= np.isin(a["source"], [SOURCE_CODE[s] for s in f.sources if s in SOURCE_CODE])
        if f.t0 is not None:
            m &= a["end"] >= f.t0
        if f.t1 is not None:
            m &= a["start"] <= f.t1
        if f.parents is not None:
            m &= np.isin(a["parent_of_doc"], np.asarray(f.parents, dtype=np.int64))
        return m

    def dense(self, qvec: np.ndarray, n: int, f: DocFilter) -> list[tuple[int, float]]:
        """Top-``n`` docs by max-sim of their vectors to the query, after filtering."""
        mask = self.doc_mask(f)
        allowed = None
        want = max(4 * n, 64)
        if mask is not None:
            a = self.arrays()
            pos_ok = mask[a["pos_doc"]] if self.n_vecs else np.zeros(0, bool)
            n_ok = int(pos_ok.sum())
            if n_ok == 0:
                return []
            if n_ok * 2 >= self.n_vecs:  # a loose filter: over-fetch and filter after (a selector costs O(n))
                want = int(want * self.n_vecs / n_ok) + 1
            else:
                allowed = np.nonzero(pos_ok)[0]
        best: dict[int, float] = {}
        while True:
            scores, pos = self.index.search(qvec, want, allowed)
            best = {}
            for s, p in zip(scores.tolist(), pos.tolist()):
                d = self.pos_doc[p]
                if d not in best and (mask is None or mask[d]):
                    best[d] = s
            limit = self.n_vecs if allowed is None else int(allowed.size)
            if len(best) >= n or len(pos) < min(want, limit) or want >= limit:
                break
            want *= 4
        return sorted(best.items(), key=lambda x: -x[1])[:n]
