"""The search side of a store: hybrid multi-scale episodic search, semantic (entity) and visual (keyframe)
search, and the rows they return (:class:`Hit`).

:class:`SearchMixin` holds the search verbs of :class:`~videomind.memory.store.VideoMemory`; they read the
store's in-memory mirrors (catalog, semantic and visual memories) and its database under the store's lock. The
ranking itself (BM25, dense, RRF, coarse-to-fine, MMR) is in :mod:`videomind.memory.retrieval`.
"""

from __future__ import annotations

import numbers
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from videomind.config import MemoryConfig
from videomind.memory import retrieval
from videomind.memory.catalog import SCALES, Catalog, DocFilter
from videomind.memory.semantic import SemanticMemory, merge_spans
from videomind.memory.vectors import from_blob
from videomind.memory.visual import ImageEncoder, TextToImage, VisualMemory
from videomind.types import Evidence, format_time


@dataclass(frozen=True)
class Hit:
    """One retrieved row. ``scale``: clip | segment | chapter (episodic), entity (semantic), frame (visual)."""

    id: str
    score: float
    scale: str
    source: str
    start: float
    end: float
    text: str
    event: int = -1  # episodic event id (drill down with mem.event / mem.children), -1 when none
    video: str = ""  # the store's key, filled by Library.search

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_evidence(self) -> Evidence:
        return Evidence(self.start, self.end, self.source, self.text, self.score, self.id)


def check_k(k: Any, default: int) -> int:
    """The number of hits a search verb returns: ``k``, an integer >= 1, or ``default`` for None.

    One rule for every verb: ``k or top_k`` gave 5 hits for k=0, a slice ``[:k]`` all but the last for k=-1, and
    k=1.5 failed in a slice ('slice indices must be integers').

    Raises:
        ValueError: ``k`` is not None nor an integer >= 1 (a bool is no count).
    """
    if k is None:
        return default
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be an integer >= 1, or None for the default ({default}); got {k!r}")
    return int(k)


class SearchMixin:
    """The search verbs of :class:`~videomind.memory.store.VideoMemory`. The store's state they use is declared
    here and set up by the store; they also call its ``_embed`` and ``event``."""

    directory: Path
    config: MemoryConfig
    manifest: dict[str, Any]
    _resume: float  # end of the last chunk this handle knows of (its writer's, or as of when it was opened)
    embedder: Any
    image_encoder: ImageEncoder | None
    text_to_image: TextToImage | None
    _conn: sqlite3.Connection
    _lock: threading.RLock
    _catalog: Catalog
    _semantic: SemanticMemory
    _visual: VisualMemory
    _qcache: OrderedDict[str, np.ndarray]  # query -> its embedding, the 256 latest

    def _query_vec(self, query: str) -> np.ndarray | None:
        if self.embedder is None or not query.strip():
            return None
        if query in self._qcache:
            self._qcache.move_to_end(query)
            return self._qcache[query]
        v = self._embed([query])[0]
        self._qcache[query] = v
        if len(self._qcache) > 256:
            self._qcache.popitem(last=False)
        return v

    # ------------------------------------------------------------------ episodic
    def search(self, query: str, k: int | None = None, scale: str | None = None, t0: float | None = None,
               t1: float | None = None, sources: Iterable[str] | None = None, *, before: float | None = None,
               after: float | None = None, hybrid: bool | None = None, mmr: float | None = 0.7) -> list[Hit]:
        """Hybrid search over the episodic memory.

        scale: "clip" | "segment" | "chapter" searches that level only; None: coarse-to-fine (chapters -> their
        segments -> their clips) fused with a flat clip search, returning clips. t0/t1 keep hits overlapping
        [t0, t1]; ``before``/``after`` are the same bounds named for "before/after an event". sources: e.g.
        ("speech",), ("ocr",), ("caption",); segment/chapter hits have source "summary". hybrid: BM25 + dense
        (default: config.memory.hybrid) or dense only. mmr: lambda of MMR diversification, None to disable.
        k: how many hits, an integer >= 1 (None: config.memory.top_k); ValueError otherwise.
        """
        k = check_k(k, self.config.top_k)
        if scale is not None and scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES} or None, got {scale!r}")
        if before is not None:
            t1 = before if t1 is None else min(t1, before)
        if after is not None:
            t0 = after if t0 is None else max(t0, after)
        src = tuple(sources) if sources is not None else None
        hybrid = self.config.hybrid if hybrid is None else hybrid
        with self._lock:
            qvec = self._query_vec(query)
            if scale is None:
                ranked = retrieval.coarse_to_fine(self._conn, self._catalog, query, qvec,
                                                  DocFilter(None, src, t0, t1), hybrid, self.config.rrf_k,
                                                  keep=(k + 1) // 2)
            else:
                ranked = retrieval.hybrid_rank(self._conn, self._catalog, query, qvec,
                                               DocFilter((scale,), src, t0, t1), retrieval.CANDIDATES, hybrid,
                                               self.config.rrf_k)
            ranked = ranked[: max(4 * k, 20)]
            if mmr is not None and len(ranked) > k:
                docs = [d for d, _ in ranked]
                spans = {d: (self._catalog.start[d], self._catalog.end[d]) for d in docs}
                ranked = retrieval.mmr(ranked, retrieval.doc_vectors(self._conn, docs), spans, k, mmr)
            hits = self._doc_hits(ranked[:k])
            if scale in (None, "clip") and qvec is not None and not self.manifest.get("complete"):
                hits = self._with_open_rows(hits, qvec, k, t0, t1, src)
            return hits

    def _open_rows(self, t0: float | None, t1: float | None,
                   sources: tuple[str, ...] | None) -> list[tuple[Hit, np.ndarray]]:
        """The texts of a store still being written that no clip holds yet, one row per source joined as a clip
        row joins them, with their vectors. A clip closes only once 1.5 clip lengths past its start are covered,
        so without these the last ~15 s of a recording being followed (what "what was just said?" asks about)
        could not be found. Only texts before this handle's resume point: a reader opened while another process
        writes knows the clips of then, and the writer's newer tail is not part of that view."""
        if DocFilter(t0=t0, t1=t1).inverted:  # start after end: empty, as for the clip docs (a row spans both)
            return []
        cond, args = self._open_condition()
        sql = f"SELECT start, end, source, text, vec FROM texts WHERE {cond} AND end >= ? AND +start <= ? " \
              "AND +start < ?"
        args += [-1e18 if t0 is None else t0, 1e18 if t1 is None else t1, self._resume]
        if sources is not None:
            sql += f" AND source IN ({','.join('?' * len(sources))})"
            args += list(sources)
        by_source: dict[str, list[tuple]] = {}
        for row in self._conn.execute(sql + " ORDER BY +start, id", args):
            if row[4] is not None:
                by_source.setdefault(row[2], []).append(row)
        out = []
        for source, rows in by_source.items():
            sep = " | " if source == "ocr" else " "
            text = sep.join(dict.fromkeys(r[3].strip() for r in rows))
            start, end = min(r[0] for r in rows), max(r[1] for r in rows)
            hit = Hit(f"open:{source}@{start:.1f}", 0.0, "clip", source, start, end, text)
            out.append((hit, np.stack([from_blob(r[4]) for r in rows])))
        return out

    def _open_condition(self) -> tuple[str, list[Any]]:
        """A condition on ``texts`` keeping those this handle can find through no clip doc, and its argument: no
        clip holds them yet, or the clip that does was closed after this handle read its catalog. Searches
        leave out docs newer than the catalog (their ids are past its arrays, see ``retrieval.bm25``'s
        ``max_doc``), so without the second case a long-lived reader lost the texts it found a moment ago once
        the writer closed their clip: no longer open, and their clip's doc not yet visible to it. Clips close in
        event id order, so those are the clips after the catalog's last: two ranges of the ``texts_clip`` index,
        which the queries keep to by not offering ``texts_time`` (``+start``); a subquery per text, or the time
        index, read every text of a recording being followed (1.6-3.5 ms a search at 10 hours, 0.01 ms now)."""
        return "(clip IS NULL OR clip > ?)", [self._catalog.last_clip]

    def _with_open_rows(self, hits: list[Hit], qvec: np.ndarray, k: int, t0: float | None, t1: float | None,
                        sources: tuple[str, ...] | None) -> list[Hit]:
        """``hits`` with the open rows (:meth:`_open_rows`) ranked in: each goes before the first hit that is
        less similar to the query (by the best cosine of its texts, as a clip doc is scored), then the k best."""
        open_rows = self._open_rows(t0, t1, sources)
        if not open_rows:
            return hits
        cos = self._hit_cosines(qvec, hits)
        for hit, vecs in sorted(open_rows, key=lambda hv: -float((hv[1] @ qvec).max())):
            c = float((vecs @ qvec).max())
            i = next((i for i, x in enumerate(cos) if x < c), len(hits))
            score = hits[i].score if i < len(hits) else (hits[-1].score if hits else c)
            hits.insert(i, Hit(hit.id, score, hit.scale, hit.source, hit.start, hit.end, hit.text))
            cos.insert(i, c)
        return hits[:k]

    def _hit_cosines(self, qvec: np.ndarray, hits: Sequence[Hit]) -> list[float]:
        """Cosine of the query to each hit: the best of its vectors (an episodic doc's, or an open row's texts')."""
        out = []
        for h in hits:
            if h.id.startswith("open:"):
                cond, args = self._open_condition()
                rows = self._conn.execute(f"SELECT vec FROM texts WHERE {cond} AND source=? AND +start>=? AND end<=? "
                                          "AND vec IS NOT NULL", (*args, h.source, h.start, h.end)).fetchall()
            else:
                rows = self._conn.execute("SELECT v.vec FROM vecs v JOIN docs d ON d.id = v.doc WHERE d.event=? "
                                          "AND d.source=?", (h.event, h.source)).fetchall()
            out.append(max((float(from_blob(b) @ qvec) for (b,) in rows), default=0.0))
        return out

    def _rows_by_id(self, table: str, columns: str, ids: list[int]) -> dict[int, tuple]:
        """{id: (id, *columns)} for the given row ids of one of our tables (names are ours, never user input)."""
        return {r[0]: r for r in self._conn.execute(
            f"SELECT id, {columns} FROM {table} WHERE id IN ({','.join('?' * len(ids))})", ids)}

    def _doc_hits(self, ranked: Sequence[tuple[int, float]]) -> list[Hit]:
        if not ranked:
            return []
        rows = self._rows_by_id("docs", "event, scale, source, start, end, text", [d for d, _ in ranked])
        out = []
        for d, score in ranked:
            _, event, scale, source, start, end, text = rows[d]
            out.append(Hit(f"{scale}:{event}:{source}", float(score), scale, source, start, end, text, event))
        return out

    def dense_scores(self, query: str, hits: Sequence[Hit]) -> list[float]:
        """Cosine of the query to each episodic hit (best of its vectors): comparable across stores."""
        qvec = self._query_vec(query)
        if qvec is None:
            return [h.score for h in hits]
        with self._lock:
            return self._hit_cosines(qvec, hits)

    # ------------------------------------------------------------------ semantic
    def about(self, name: str, limit: int = 20) -> dict[str, Any]:
        """What the memory knows about ``name``: the entity (aliases, counts, first/last seen), when it appears,
        the sentences that mention it (facts) and its relations. Falls back to a text match when no entity."""
        with self._lock:
            ent = self._semantic.resolve(name, self._embed if self.embedder is not None else None)
            if ent is None:
                facts = self._text_mentions(name, limit)
                return {"entity": None, "name": name, "aliases": [], "count": len(facts),
                        "spans": merge_spans([(f["start"], f["end"]) for f in facts], self.config.clip_seconds),
                        "facts": facts, "relations": []}
            return {"entity": ent.id, "name": ent.name, "aliases": list(ent.aliases), "kind": ent.kind,
                    "count": ent.count, "first": ent.first, "last": ent.last,
                    "spans": self._semantic.mention_spans(self._conn, ent.id, self.config.clip_seconds),
                    "facts": self._semantic.facts(self._conn, ent.id, limit),
                    "relations": self._semantic.relations(self._conn, ent.id, limit)}

    def when(self, name: str) -> list[tuple[float, float]]:
        """Time spans where ``name`` is mentioned (spoken or on screen), merged across a clip's gap."""
        return self.about(name, limit=10_000)["spans"]

    def relations(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        return self.about(name, limit)["relations"]

    def entities(self, limit: int = 50) -> list[dict[str, Any]]:
        """The most mentioned entities."""
        with self._lock:
            ents = sorted(self._semantic.entities.values(), key=lambda e: (-e.count, e.first))[:limit]
        return [{"id": e.id, "name": e.name, "kind": e.kind, "count": e.count, "first": e.first, "last": e.last,
                 "aliases": list(e.aliases)} for e in ents]

    def _text_mentions(self, name: str, limit: int) -> list[dict[str, Any]]:
        """Texts containing ``name`` literally: LIKE wildcards in it are escaped, a NUL (which would end the
        pattern early) is dropped."""
        needle = " ".join(name.replace("\x00", "").split())
        if not needle:
            return []
        needle = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._conn.execute("SELECT id, start, end, source, text FROM texts WHERE text LIKE ? ESCAPE '\\' "
                                  "ORDER BY start LIMIT ?", (f"%{needle}%", limit)).fetchall()
        return [{"id": r[0], "start": r[1], "end": r[2], "source": r[3], "text": r[4]} for r in rows]

    def search_semantic(self, query: str, k: int | None = None, t0: float | None = None,
                        t1: float | None = None) -> list[Hit]:
        """Entities relevant to ``query`` as hits (source "entity", span first..last mention).

        t0/t1 keep entities mentioned in [t0, t1]; their count, span, relations and example fact are then
        those of the window's mentions, so an entity also named later is found, and says nothing of later.
        k: how many hits, an integer >= 1 (None: config.memory.top_k); ValueError otherwise.
        """
        k = check_k(k, self.config.top_k)
        with self._lock:
            qvec = self._query_vec(query)
            window = None if t0 is None and t1 is None else self._semantic.in_window(self._conn, t0, t1)
            out = []
            for eid, score in self._semantic.rank(query, qvec, k, window):
                e = self._semantic.entities[eid]
                count, first, last = window[eid] if window is not None else (e.count, e.first, e.last)
                rel = ", ".join(r["entity"] for r in self._semantic.relations(self._conn, eid, 3, t0, t1))
                facts = self._semantic.facts(self._conn, eid, 1, t0, t1)
                text = f"{e.name}: mentioned {count}x, {format_time(first)}-{format_time(last)}"
                if rel:
                    text += f"; related: {rel}"
                if facts:
                    text += f'; e.g. "{facts[0]["text"]}"'
                out.append(Hit(f"entity:{eid}", float(score), "entity", "entity", first, last, text))
            return out

    # ------------------------------------------------------------------ visual
    def search_visual(self, query: Any, k: int | None = None, t0: float | None = None, t1: float | None = None,
                      scale: str = "frame") -> list[Hit]:
        """Keyframes most similar to ``query``: an image embedding, an image (needs image_encoder) or text
        (needs text_to_image, else CapabilityUnavailable). scale="clip" returns clips instead, each scored by its
        best keyframe. k: how many hits, an integer >= 1 (None: config.memory.top_k); ValueError otherwise."""
        k = check_k(k, self.config.top_k)
        if scale == "clip":
            frames = self.search_visual(query, 8 * k, t0, t1)
            best: dict[int, Hit] = {}
            for h in frames:
                if h.event >= 0 and h.event not in best:
                    best[h.event] = h
            out = []
            for eid, h in list(best.items())[:k]:
                ev = self.event(eid) or {}
                out.append(Hit(f"clip:{eid}:visual", h.score, "clip", "visual", ev.get("start", h.start),
                               ev.get("end", h.end), h.text, eid))
            return out
        with self._lock:
            qvec = self._visual.query_vector(query, self.image_encoder, self.text_to_image)
            allowed = None
            if t0 is not None or t1 is not None:
                allowed = {r[0] for r in self._conn.execute(
                    "SELECT id FROM keyframes WHERE t >= ? AND t <= ?",
                    (-1e18 if t0 is None else t0, 1e18 if t1 is None else t1))}
            ranked = self._visual.search(qvec, k, allowed)
            if not ranked:
                return []
            rows = self._rows_by_id("keyframes", "t, shot, thumbnail, clip", [i for i, _ in ranked])
        out = []
        for kid, score in ranked:
            _, t, shot, thumb, clip = rows[kid]
            path = str(self.directory / thumb) if thumb else ""
            out.append(Hit(f"frame:{kid}", score, "frame", "visual", t, t,
                           f"keyframe at {format_time(t)} (shot {shot}) {path}".strip(),
                           clip if clip is not None else -1))
        return out
