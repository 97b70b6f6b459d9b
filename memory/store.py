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

This module opens, creates and reads back a store; writing it is in :mod:`videomind.memory.writing`, searching
it in :mod:`videomind.memory.search`, its files and manifest in :mod:`videomind.memory.manifest`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from videomind.config import MemoryConfig
from videomind.errors import StoreError
from videomind.memory.catalog import SCALES, Catalog
from videomind.memory.episodic import EpisodicBuilder, Summarizer
from videomind.memory.lock import WriterLock
from videomind.memory.manifest import (DB, DOCS_INDEX, VISUAL_INDEX, new_manifest, read_manifest, rebuild_hint,
                                       write_manifest)
from videomind.memory.schema import SCHEMA_VERSION, connect, snapshot
from videomind.memory.search import Hit, SearchMixin
from videomind.memory.semantic import EntityExtractor, SemanticMemory
from videomind.memory.vectors import from_blob
from videomind.memory.visual import THUMB_DIR, ImageEncoder, TextToImage, VisualMemory
from videomind.memory.writing import WritingMixin
from videomind.types import Keyframe, TimedText, VideoInfo, format_time

__all__ = ["Hit", "VideoMemory"]  # Hit, the row every search returns, is importable beside the store

logger = logging.getLogger(__name__)


def _sweep_dead_builds(directory: Path) -> None:
    """Remove the temporary folders that processes which no longer run left while creating ``directory``
    (a killed ingest); those of live processes, this one's other threads included, are theirs."""
    for tmp in directory.parent.glob(f".{directory.name}.tmp-*"):
        try:
            pid = int(tmp.name[len(directory.name) + 6:].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue  # not a name of ours, or a process we may not signal: alive


def _memory_config(directory: Path, manifest: dict[str, Any]) -> MemoryConfig:
    """The memory settings the store was built with; settings this version does not know mean a newer VideoMind
    built it (not corruption: rebuilding would throw away a good store)."""
    saved = (manifest.get("config") or {}).get("memory") or {}
    unknown = sorted(set(saved) - {f.name for f in dataclasses.fields(MemoryConfig)})
    if unknown:
        raise StoreError(f"memory store {directory} was built with memory settings this VideoMind does not know "
                         f"({', '.join(unknown)}): a newer VideoMind made it; upgrade VideoMind, "
                         f"or {rebuild_hint(directory, manifest)}")
    return MemoryConfig(**saved)


class VideoMemory(WritingMixin, SearchMixin):
    """Open with :meth:`open` or through :class:`~videomind.memory.library.Library`; see the module docstring."""

    def __init__(self, directory: Path, conn: sqlite3.Connection, manifest: dict[str, Any], embedder,
                 image_encoder: ImageEncoder | None = None, text_to_image: TextToImage | None = None,
                 summarizer: Summarizer | None = None, entity_extractor: EntityExtractor | None = None):
        self.directory = Path(directory)
        self._db: sqlite3.Connection | None = conn
        self.manifest = manifest
        self.embedder = embedder
        self.image_encoder = image_encoder
        self.text_to_image = text_to_image
        self.config = _memory_config(self.directory, manifest)
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
        directory.parent.mkdir(parents=True, exist_ok=True)
        _sweep_dead_builds(directory)
        # a folder of its own per call, not per process: two threads creating the same store must not share one
        tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-{os.getpid()}-"))
        try:  # nothing half-made stays behind: the embedder loads here, and can fail (no GPU, no weights)
            (tmp / THUMB_DIR).mkdir(parents=True)
            connect(tmp / DB, create=True).close()
            write_manifest(tmp, new_manifest(key or directory.name, info, config, embedder))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
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
        manifest = read_manifest(directory)
        if embedder is not None:
            want, have = manifest["models"].get("text_embed"), getattr(embedder, "name", None)
            if have is not None and want is not None and want != have:
                raise StoreError(f"memory store {directory} was built with text embedder {want!r}, not {have!r}: "
                                 f"use models.text_embed={want!r} or {rebuild_hint(directory, manifest)}")
        if not (directory / DB).is_file():
            raise StoreError(f"memory store {directory} has no {DB}: {rebuild_hint(directory, manifest)}")
        conn = None
        try:
            conn = connect(directory / DB)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or int(row[0]) != SCHEMA_VERSION:
                raise StoreError(f"memory store {directory}: database schema version {row and row[0]} != "
                                 f"{SCHEMA_VERSION}: {rebuild_hint(directory, manifest)}")
            mem = cls(directory, conn, manifest, embedder, **kw)
        except Exception as e:  # sqlite3.DatabaseError, a gap in the tables, a bad blob ...
            if conn is not None:
                conn.close()
            if isinstance(e, StoreError):
                raise
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
        """(Re)build the in-memory mirrors from the database (also after a failed chunk), all from one snapshot:
        a writer's commit between two of these queries would give vectors of docs the catalog does not know."""
        complete = self.manifest.get("complete")
        with snapshot(self._conn):
            self._catalog = Catalog.load(self._conn, self.dim, self.directory / DOCS_INDEX if complete else None)
            self._semantic = SemanticMemory.load(self._conn, self.dim)
            self._visual = VisualMemory.load(self._conn, self.directory / VISUAL_INDEX if complete else None)
            self._committed = {r[0] for r in self._conn.execute("SELECT idx FROM chunks")}
            row = self._conn.execute("SELECT max(end) FROM chunks").fetchone()
        self._resume = float(row[0]) if row[0] is not None else 0.0

    @property
    def _conn(self) -> sqlite3.Connection:
        """The open database; a StoreError once :meth:`close` ran (sqlite's own error names no store or fix)."""
        if self._db is None:
            raise StoreError(f"memory store {self.directory} was closed: open it again (Library.open, or "
                             f"VideoMind.ingest, which reopens a finished store without recomputing it)")
        return self._db

    def close(self) -> None:
        with self._lock:
            self._writer.release()
            db, self._db = self._db, None
            try:
                if db is not None:
                    db.close()
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
            *(f"note: {note}" for note in self.notes()),
        ]

    def notes(self) -> list[str]:
        """What ingestion could not observe, once each in time order: a truncated file's frames ending early,
        no audio, undecodable stretches. A memory that looks complete may cover less than the video."""
        with self._lock:
            rows = self._conn.execute("SELECT notes FROM chunks ORDER BY start").fetchall()
        out: dict[str, None] = {}
        for (text,) in rows:
            try:
                notes = json.loads(text or "[]")
            except ValueError:
                continue
            out.update((str(n), None) for n in notes if isinstance(notes, list) and n)
        return list(out)

    def counts(self) -> dict[str, int]:
        c = self._conn
        return {t: int(c.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in ("chunks", "texts", "keyframes", "events", "docs", "vecs", "entities")}

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        vecs = np.asarray(self.embedder.embed(list(texts)), dtype=np.float32)
        if vecs.shape != (len(texts), self.dim):
            raise StoreError(f"text embedder returned shape {vecs.shape}, expected ({len(texts)}, {self.dim})")
        return vecs

    # ------------------------------------------------------------------ reading
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
        return self._event_rows(sql + " ORDER BY start", args)

    def event(self, event_id: int) -> dict[str, Any] | None:
        rows = self._event_rows("SELECT * FROM events WHERE id = ?", [event_id])
        return rows[0] if rows else None

    def _event_rows(self, sql: str, args: list) -> list[dict[str, Any]]:
        """Event rows as dicts, their keyframe id lists decoded."""
        with self._lock:
            cur = self._conn.execute(sql, args)
            names = [c[0] for c in cur.description]
            rows = cur.fetchall()
        out = [dict(zip(names, r)) for r in rows]
        for d in out:
            d["keyframes"] = json.loads(d["keyframes"] or "[]")
        return out

    def children(self, event_id: int) -> list[dict[str, Any]]:
        return self._event_rows("SELECT * FROM events WHERE parent = ? ORDER BY start", [event_id])
