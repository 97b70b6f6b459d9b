"""VideoMemory: the durable memory of one video (episodic + semantic + visual) and its retrieval API.

Layout of a store directory:
    manifest.json     schema version, video, models, config hash, complete flag (written last, atomically)
    memory.db         SQLite (WAL, FTS5): every record and every vector blob; one transaction per chunk
    docs.faiss        dense index of the searchable documents (cache; rebuilt from memory.db when stale)
    visual.faiss      keyframe embeddings (cache, idem)
    thumbnails/       keyframe JPEGs

A crash mid-chunk rolls that chunk's transaction back: the store reopens incomplete and resumes at the end of
the last committed chunk (``resume_point``). Only ``finalize`` marks a store complete, after the index files are
written, by replacing the manifest.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from videomind.config import MemoryConfig
from videomind.errors import StoreError
from videomind.memory import retrieval
from videomind.memory.catalog import SCALES, Catalog, DocFilter
from videomind.memory.episodic import EpisodicBuilder, Summarizer
from videomind.memory.lock import WriterLock
from videomind.memory.schema import SCHEMA_VERSION, connect
from videomind.memory.semantic import EntityExtractor, SemanticMemory, merge_spans
from videomind.memory.vectors import IVF_THRESHOLD, VectorIndex, build_index, from_blob, normalize, to_blob
from videomind.memory.visual import THUMB_DIR, ImageEncoder, TextToImage, VisualMemory, write_thumbnail
from videomind.types import Chunk, Evidence, Keyframe, TimedText, VideoInfo, format_time

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DB = "memory.db"
DOCS_INDEX = "docs.faiss"
VISUAL_INDEX = "visual.faiss"


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


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Atomic: write a temp file, fsync, then os.replace."""
    tmp = directory / (MANIFEST + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / MANIFEST)


def rebuild_hint(directory: Path, manifest: dict[str, Any] | None = None) -> str:
    video = ((manifest or {}).get("video") or {}).get("path") or "<video>"
    return f"delete {directory} or run `videomind ingest --rebuild {video}`"


class VideoMemory:
    """Open with :meth:`open` or through :class:`~videomind.memory.library.Library`; see the module docstring."""

    def __init__(self, directory: Path, conn: sqlite3.Connection, manifest: dict[str, Any], embedder,
                 image_encoder: ImageEncoder | None = None, text_to_image: TextToImage | None = None,
                 summarizer: Summarizer | None = None, entity_extractor: EntityExtractor | None = None):
        self.directory = Path(directory)
        self._conn = conn
        self.manifest = manifest
        self.embedder = embedder
        self.image_encoder = image_encoder
        self.text_to_image = text_to_image
        self.config = MemoryConfig(**(manifest.get("config") or {}).get("memory", {}))
        self.info = VideoInfo(**manifest["video"])
        self.dim = int(manifest["models"]["text_dim"])
        self._episodic = EpisodicBuilder(self, summarizer)
        self._lock = threading.RLock()
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._tcache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.entity_extractor = entity_extractor
        self._writer = WriterLock(self.directory)
        self._load()

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, directory: Path, info: VideoInfo, config, embedder, key: str = "", **kw) -> VideoMemory:
        """A new, empty store. Built in a temporary sibling directory and renamed into place."""
        directory = Path(directory)
        if directory.exists():
            raise StoreError(f"memory store {directory} already exists: open it, or {rebuild_hint(directory)}")
        tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:  # nothing half-made stays behind: the embedder loads here, and can fail (no GPU, no weights)
            (tmp / THUMB_DIR).mkdir(parents=True)
            connect(tmp / DB, create=True).close()
            manifest = {
                "schema_version": SCHEMA_VERSION,
                "key": key or directory.name,
                "video": info.to_dict(),
                "models": {"text_embed": getattr(embedder, "name", type(embedder).__name__),
                           "text_dim": int(embedder.dim), "visual_embed": config.models.visual_embed},
                "config_hash": config.hash("ingest", "memory", "models"),
                "config": config.to_dict(),
                "complete": False,
                "created": now,
                "updated": now,
            }
            write_manifest(tmp, manifest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, directory)
        except OSError:
            if not directory.exists():
                raise
            # another process created the same store since our check: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
            logger.info("memory store %s was created by another process; opening it", directory)
        return cls.open(directory, embedder, **kw)

    @classmethod
    def open(cls, directory, embedder=None, **kw) -> VideoMemory:
        """Open an existing store (complete or not). Raises StoreError with the fix when it is unusable."""
        directory = Path(directory)
        mpath = directory / MANIFEST
        if not mpath.is_file():
            raise StoreError(f"{directory} is not a memory store (no {MANIFEST}): {rebuild_hint(directory)}")
        try:
            manifest = json.loads(mpath.read_text())
            if not isinstance(manifest, dict) or "video" not in manifest or "models" not in manifest:
                raise ValueError("missing keys")
        except (OSError, ValueError) as e:
            raise StoreError(f"memory store {directory} has a corrupt manifest ({e}): "
                             f"{rebuild_hint(directory)}") from e
        version = manifest.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(f"memory store {directory} has schema version {version}, this VideoMind reads "
                             f"version {SCHEMA_VERSION}: {rebuild_hint(directory, manifest)}")
        if embedder is not None:
            want, have = manifest["models"].get("text_embed"), getattr(embedder, "name", None)
            if have is not None and want is not None and want != have:
                raise StoreError(f"memory store {directory} was built with text embedder {want!r}, not {have!r}: "
                                 f"use models.text_embed={want!r} or {rebuild_hint(directory, manifest)}")
        if not (directory / DB).is_file():
            raise StoreError(f"memory store {directory} has no {DB}: {rebuild_hint(directory, manifest)}")
        try:
            conn = connect(directory / DB)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or int(row[0]) != SCHEMA_VERSION:
                conn.close()
                raise StoreError(f"memory store {directory}: database schema version {row and row[0]} != "
                                 f"{SCHEMA_VERSION}: {rebuild_hint(directory, manifest)}")
            mem = cls(directory, conn, manifest, embedder, **kw)
        except StoreError:
            raise
        except Exception as e:  # sqlite3.DatabaseError, a gap in the tables, a bad blob ...
            raise StoreError(f"memory store {directory} is corrupt ({type(e).__name__}: {e}): "
                             f"{rebuild_hint(directory, manifest)}") from e
        if manifest.get("complete"):
            counts = manifest.get("counts") or {}
            have = mem.counts()
            bad = {k: (v, have.get(k)) for k, v in counts.items() if have.get(k) != v}
            if bad:
                mem.close()
                raise StoreError(f"memory store {directory} does not match its manifest (expected vs found: "
                                 f"{bad}): {rebuild_hint(directory, manifest)}")
        return mem

    def _load(self) -> None:
        """(Re)build the in-memory mirrors from the database (also after a failed chunk)."""
        complete = self.manifest.get("complete")
        self._catalog = Catalog.load(self._conn, self.dim, self.directory / DOCS_INDEX if complete else None)
        self._semantic = SemanticMemory.load(self._conn, self.dim)
        self._visual = VisualMemory.load(self._conn, self.directory / VISUAL_INDEX if complete else None)
        self._committed = {r[0] for r in self._conn.execute("SELECT idx FROM chunks")}
        row = self._conn.execute("SELECT max(end) FROM chunks").fetchone()
        self._resume = float(row[0]) if row[0] is not None else 0.0

    def close(self) -> None:
        with self._lock:
            self._writer.release()
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> VideoMemory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def is_complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def resume_point(self) -> float:
        """End time of the last committed chunk (0.0 for an empty store)."""
        return self._resume

    @property
    def next_shot(self) -> int:
        """Index the next shot should get when ingestion resumes, so shot numbers stay unique."""
        with self._lock:
            row = self._conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM shots").fetchone()
        return int(row[0])

    @property
    def key(self) -> str:
        return self.manifest.get("key", self.directory.name)

    def _video_start(self) -> float:
        row = self._conn.execute("SELECT min(start) FROM chunks").fetchone()
        return float(row[0]) if row[0] is not None else 0.0

    def describe(self) -> list[str]:
        """Human-readable lines about this store (the CLI prints them after ingest)."""
        c = self.counts()
        m = self.manifest
        n = {sc: len(self.events(sc)) for sc in SCALES}
        size = sum(p.stat().st_size for p in self.directory.rglob("*") if p.is_file())
        return [
            f"video: {self.info.path} ({format_time(self.info.duration)})",
            f"status: {'complete' if self.is_complete else f'incomplete, resumes at {format_time(self.resume_point)}'}",
            f"episodic: {n['clip']} clips, {n['segment']} segments, {n['chapter']} chapters; "
            f"{c['texts']} texts ({c['docs']} searchable documents)",
            f"semantic: {c['entities']} entities; visual: {c['keyframes']} keyframes",
            f"models: text {m['models'].get('text_embed')}, visual {m['models'].get('visual_embed')}; "
            f"schema v{m.get('schema_version')}; {size / 2 ** 20:.1f} MiB on disk",
        ]

    def counts(self) -> dict[str, int]:
        c = self._conn
        return {t: int(c.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in ("chunks", "texts", "keyframes", "events", "docs", "vecs", "entities")}

    # ------------------------------------------------------------------ building
    def add_chunk(self, chunk: Chunk) -> None:
        """Store one chunk and roll finished clips up, in a single transaction."""
        with self._lock:
            if self.is_complete:
                raise self._complete_error()
            if self.embedder is None:
                raise StoreError("this memory was opened without a text embedder; it cannot add chunks")
            self._start_writing()
            if self.is_complete:  # finished by another writer since this handle was opened
                raise self._complete_error()
            if chunk.end <= self._resume + 1e-6 and self._committed:
                logger.info("chunk %d [%.1f, %.1f) is already committed; skipping", chunk.index, chunk.start,
                            chunk.end)
                return
            thumbs: list[Path] = []
            try:
                self._add_chunk(chunk, thumbs)
            except BaseException:
                try:
                    self._conn.rollback()
                    for p in thumbs:  # written for keyframe rows that were just rolled back
                        p.unlink(missing_ok=True)
                finally:
                    self._load()
                raise

    def _complete_error(self) -> StoreError:
        return StoreError(f"memory store {self.directory} is complete; to add to it, "
                          f"{rebuild_hint(self.directory, self.manifest)}")

    def _start_writing(self) -> None:
        """Before each write: hold the store's writer lock (StoreError when another process is ingesting into it),
        then catch up with what was committed since this handle last looked (by an earlier process, or another
        handle of this one), so a resumed ingest skips the chunks already stored and never stores one twice."""
        if self.is_complete:
            return
        holder = self._writer.acquire()
        if holder is not None:
            raise StoreError(f"memory store {self.directory} is being ingested by another process ({holder}): "
                             f"wait for it to finish, or stop it and run the ingest again to resume")
        self.manifest = json.loads((self.directory / MANIFEST).read_text())
        self.info = VideoInfo(**self.manifest["video"])
        n_chunks, n_docs = self._conn.execute(
            "SELECT (SELECT count(*) FROM chunks), (SELECT coalesce(max(id), 0) FROM docs)").fetchone()
        if self.is_complete or n_chunks != len(self._committed) or n_docs != self._catalog.n_docs:
            logger.info("memory store %s changed since this handle read it; reloading it", self.directory)
            self._load()
        if self.is_complete:
            self._writer.release()

    def _add_chunk(self, chunk: Chunk, thumbs: list[Path]) -> None:
        """The work of :meth:`add_chunk`; appends the thumbnail files it writes to ``thumbs``."""
        conn = self._conn
        index = chunk.index
        if index in self._committed:  # a resumed run that numbers its chunks from 0 again
            index = max(self._committed) + 1
            logger.warning("chunk index %d is taken; storing chunk [%.1f, %.1f) as %d", chunk.index, chunk.start,
                           chunk.end, index)
        texts = [t for t in chunk.texts if t.text and t.text.strip()]
        vecs = self._embed_texts([t.text.strip() for t in texts])
        with conn:
            conn.execute("INSERT INTO chunks VALUES(?,?,?,?)",
                         (index, chunk.start, chunk.end, json.dumps(list(chunk.notes))))
            conn.executemany("INSERT INTO shots VALUES(?,?,?,?) ON CONFLICT(chunk, idx) DO UPDATE SET "
                             "start = min(start, excluded.start), end = max(end, excluded.end)",
                             [(index, sh.index, float(sh.start), float(sh.end)) for sh in chunk.shots])
            rows = []
            for t, v in zip(texts, vecs):
                cur = conn.execute(
                    "INSERT INTO texts(start, end, source, text, confidence, meta, chunk, clip, vec) "
                    "VALUES(?,?,?,?,?,?,?,NULL,?)",
                    (float(t.start), float(t.end), t.source, t.text.strip(), t.confidence,
                     json.dumps(t.meta, default=str), index, to_blob(v)))
                rows.append((int(cur.lastrowid), float(t.start), float(t.end), t.text, t.source))
            stored: list[tuple[Keyframe, str]] = []
            next_kf = int(conn.execute("SELECT coalesce(max(id), 0) FROM keyframes").fetchone()[0]) + 1
            for i, kf in enumerate(chunk.keyframes):
                kid = next_kf + i
                thumb = kf.thumbnail
                if kf.image is not None and self.manifest["config"]["ingest"].get("thumbnails", True):
                    thumb = write_thumbnail(self.directory, kid, kf.image)
                    thumbs.append(self.directory / thumb)
                    stored.append((kf, thumb))
                vec = None
                if kf.embedding is not None:
                    v = normalize(np.asarray(kf.embedding, dtype=np.float32).ravel())
                    if self._visual.dim in (None, len(v)):
                        self._visual.add(kid, v)
                        vec = to_blob(v)
                    else:  # keep the frame and its thumbnail; only visual search will not find it
                        logger.warning("keyframe at %.1f s: embedding dim %d != %d of earlier keyframes; not "
                                       "indexed", kf.t, len(v), self._visual.dim)
                conn.execute("INSERT INTO keyframes VALUES(?,?,?,?,?,NULL,?)",
                             (kid, float(kf.t), int(kf.shot), thumb, index, vec))
            self._semantic.ingest(conn, rows, self._embed, self.entity_extractor)
            self._episodic.rollup(max(chunk.end, self._resume), final=False)
        thumbs.clear()  # committed: the rows now refer to them
        for kf, thumb in stored:  # the image is dropped once the thumbnail is committed
            kf.image, kf.thumbnail = None, thumb
        self._committed.add(index)
        self._resume = max(self._resume, float(chunk.end))

    def finalize(self, duration: float | None = None) -> None:
        """Close the last clip, segment and chapter, write the index files, then mark the store complete.

        ``duration``: the video's length, for a live recording whose length was unknown when the store was made."""
        with self._lock:
            self._start_writing()
            if self.is_complete:
                return
            try:
                with self._conn:
                    self._episodic.rollup(self._resume, final=True)
            except BaseException:
                self._load()
                raise
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if self._catalog.n_vecs > IVF_THRESHOLD:  # exact search gets slow: switch to IVF for reopening
                rows = self._conn.execute("SELECT vec FROM vecs ORDER BY pos").fetchall()
                mat = np.stack([from_blob(b) for (b,) in rows])
                self._catalog.index = VectorIndex(self.dim, build_index(mat, "ivf"))
            self._catalog.index.save(self.directory / DOCS_INDEX)
            if self._visual.index is not None:
                self._visual.index.save(self.directory / VISUAL_INDEX)
            manifest = dict(self.manifest)
            manifest.update(complete=True, counts=self.counts(), duration_covered=self._resume,
                            updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            if duration is not None:
                manifest["video"] = {**manifest["video"], "duration": float(duration)}
            write_manifest(self.directory, manifest)
            self.manifest = manifest
            self.info = VideoInfo(**manifest["video"])
            self._writer.release()  # complete: nothing more to write

    def _embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed each distinct string once (on-screen text repeats every sampled frame); a small cache carries
        repeats across chunks."""
        out = np.zeros((len(texts), self.dim), np.float32)
        todo = list(dict.fromkeys(t for t in texts if t not in self._tcache))
        if todo:
            for t, v in zip(todo, self._embed(todo)):
                self._tcache[t] = v
        for i, t in enumerate(texts):
            out[i] = self._tcache[t]
            self._tcache.move_to_end(t)
        while len(self._tcache) > 4096:
            self._tcache.popitem(last=False)
        return out

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        vecs = np.asarray(self.embedder.embed(list(texts)), dtype=np.float32)
        if vecs.shape != (len(texts), self.dim):
            raise StoreError(f"text embedder returned shape {vecs.shape}, expected ({len(texts)}, {self.dim})")
        return vecs

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

    # ------------------------------------------------------------------ episodic retrieval
    def search(self, query: str, k: int | None = None, scale: str | None = None, t0: float | None = None,
               t1: float | None = None, sources: Iterable[str] | None = None, *, before: float | None = None,
               after: float | None = None, hybrid: bool | None = None, mmr: float | None = 0.7) -> list[Hit]:
        """Hybrid search over the episodic memory.

        scale: "clip" | "segment" | "chapter" searches that level only; None: coarse-to-fine (chapters -> their
        segments -> their clips) fused with a flat clip search, returning clips. t0/t1 keep hits overlapping
        [t0, t1]; ``before``/``after`` are the same bounds named for "before/after an event". sources: e.g.
        ("speech",), ("ocr",), ("caption",); segment/chapter hits have source "summary". hybrid: BM25 + dense
        (default: config.memory.hybrid) or dense only. mmr: lambda of MMR diversification, None to disable.
        """
        k = k or self.config.top_k
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
            return self._doc_hits(ranked[:k])

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
        out = []
        with self._lock:
            for h in hits:
                rows = self._conn.execute("SELECT v.vec FROM vecs v JOIN docs d ON d.id = v.doc WHERE d.event=? "
                                          "AND d.source=?", (h.event, h.source)).fetchall()
                out.append(max((float(from_blob(b) @ qvec) for (b,) in rows), default=0.0)
                           if qvec is not None else h.score)
        return out

    def texts_between(self, t0: float, t1: float, sources: Iterable[str] | None = None) -> list[TimedText]:
        """Texts overlapping [t0, t1] in time order."""
        sql, args = "SELECT start, end, text, source, confidence, meta FROM texts WHERE end >= ? AND start <= ?", \
            [t0, t1]
        if sources is not None:
            src = list(sources)
            sql += f" AND source IN ({','.join('?' * len(src))})"
            args += src
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY start, id", args).fetchall()
        return [TimedText(s, e, text, source, conf, json.loads(meta or "{}")) for s, e, text, source, conf, meta
                in rows]

    def keyframes_between(self, t0: float, t1: float) -> list[Keyframe]:
        """Keyframes with t in [t0, t1]: thumbnail is an absolute path, image None, embedding when stored."""
        with self._lock:
            rows = self._conn.execute("SELECT t, shot, thumbnail, vec FROM keyframes WHERE t >= ? AND t <= ? "
                                      "ORDER BY t, id", (t0, t1)).fetchall()
        return [Keyframe(t, shot, None, from_blob(vec).copy() if vec is not None else None,
                         str(self.directory / thumb) if thumb else None) for t, shot, thumb, vec in rows]

    def events(self, scale: str = "clip", t0: float | None = None, t1: float | None = None) -> list[dict[str, Any]]:
        """Episodic events of one scale overlapping [t0, t1], in time order."""
        if t0 is not None and t1 is not None and t0 > t1:
            return []
        sql, args = "SELECT * FROM events WHERE scale = ?", [scale]
        if t0 is not None:
            sql += " AND end >= ?"
            args.append(t0)
        if t1 is not None:
            sql += " AND start <= ?"
            args.append(t1)
        with self._lock:
            cur = self._conn.execute(sql + " ORDER BY start", args)
            names = [c[0] for c in cur.description]
            rows = cur.fetchall()
        out = []
        for r in rows:
            d = dict(zip(names, r))
            d["keyframes"] = json.loads(d["keyframes"] or "[]")
            out.append(d)
        return out

    def event(self, event_id: int) -> dict[str, Any] | None:
        with self._lock:
            cur = self._conn.execute("SELECT * FROM events WHERE id = ?", (event_id,))
            names = [c[0] for c in cur.description]
            row = cur.fetchone()
        if row is None:
            return None
        d = dict(zip(names, row))
        d["keyframes"] = json.loads(d["keyframes"] or "[]")
        return d

    def children(self, event_id: int) -> list[dict[str, Any]]:
        with self._lock:
            ids = [r[0] for r in self._conn.execute("SELECT id FROM events WHERE parent=? ORDER BY start",
                                                    (event_id,))]
        return [e for e in (self.event(i) for i in ids) if e]

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

    def search_semantic(self, query: str, k: int = 5) -> list[Hit]:
        """Entities relevant to ``query`` as hits (source "entity", span first..last mention)."""
        with self._lock:
            qvec = self._query_vec(query)
            out = []
            for eid, score in self._semantic.rank(query, qvec, k):
                e = self._semantic.entities[eid]
                rel = ", ".join(r["entity"] for r in self._semantic.relations(self._conn, eid, 3))
                facts = self._semantic.facts(self._conn, eid, 1)
                text = f"{e.name}: mentioned {e.count}x, {format_time(e.first)}-{format_time(e.last)}"
                if rel:
                    text += f"; related: {rel}"
                if facts:
                    text += f'; e.g. "{facts[0]["text"]}"'
                out.append(Hit(f"entity:{eid}", float(score), "entity", "entity", e.first, e.last, text))
            return out

    # ------------------------------------------------------------------ visual
    def search_visual(self, query: Any, k: int = 5, t0: float | None = None, t1: float | None = None,
                      scale: str = "frame") -> list[Hit]:
        """Keyframes most similar to ``query``: an image embedding, an image (needs image_encoder) or text
        (needs text_to_image, else CapabilityUnavailable). scale="clip" returns clips instead, each scored by its
        best keyframe."""
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
