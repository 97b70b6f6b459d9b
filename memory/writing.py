"""Adding to a store: each chunk in one SQLite transaction, then ``finalize``; and the writer lock they take.

A chunk's keyframe JPEGs are written inside its transaction, before the rows that refer to them commit. When
anything in the chunk fails, the transaction rolls back, the JPEGs are unlinked and the in-memory mirrors are
reloaded, so the store resumes at the end of the last committed chunk. When the process is killed instead, the
JPEGs stay behind with no row referring to them: the next process to take the store's writer lock removes them,
before it writes anything (no other writer of the store is alive then to commit a row that refers to one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from videomind.errors import StoreError
from videomind.memory.catalog import Catalog
from videomind.memory.episodic import EpisodicBuilder
from videomind.memory.lock import WriterLock
from videomind.memory.manifest import DOCS_INDEX, MANIFEST, VISUAL_INDEX, rebuild_hint, utc_now, write_manifest
from videomind.memory.semantic import EntityExtractor, SemanticMemory
from videomind.memory.vectors import IVF_THRESHOLD, VectorIndex, build_index, from_blob, normalize, to_blob
from videomind.memory.visual import VisualMemory, remove_orphan_thumbnails, write_thumbnail
from videomind.types import Chunk, Keyframe, VideoInfo

logger = logging.getLogger(__name__)


class WritingMixin:
    """The write verbs of :class:`~videomind.memory.store.VideoMemory` (``add_chunk``, ``finalize``). The store's
    state they use is declared here and set up by the store; they also call its ``is_complete``, ``counts``,
    ``_load`` and ``_embed``."""

    directory: Path
    manifest: dict[str, Any]
    info: VideoInfo
    dim: int
    embedder: Any
    entity_extractor: EntityExtractor | None
    _conn: sqlite3.Connection
    _lock: threading.RLock
    _writer: WriterLock
    _catalog: Catalog
    _semantic: SemanticMemory
    _visual: VisualMemory
    _episodic: EpisodicBuilder
    _committed: set[int]  # indices of the committed chunks
    _resume: float  # end of the last committed chunk
    _tcache: OrderedDict[str, np.ndarray]  # text -> its embedding, the 4096 latest

    def add_chunk(self, chunk: Chunk) -> None:
        """Store one chunk and roll finished clips up, in a single transaction."""
        with self._writer.mutex, self._lock:
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

    def start_writing(self) -> None:
        """Take the store's writer lock now, before the work that leads to the first chunk (decoding and
        transcribing it takes minutes on a long video), rather than at its commit: until then another process
        could delete the store from under the ingest, or start ingesting it too.

        Raises:
            StoreError: another process is ingesting into this store.
        """
        with self._writer.mutex, self._lock:
            self._start_writing()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the store for a whole ingest: its writer lock (:meth:`start_writing`), and this process's turn to
        write it. Another thread ingesting the same video (a second app session) waits here, then finds the store
        complete, instead of decoding and transcribing every chunk beside this one for the store to skip them."""
        with self._writer.mutex:
            self.start_writing()
            yield

    def stop_writing(self) -> None:
        """Give up the store's writer lock while keeping this handle open for reading: another process may then
        resume the ingest or delete the store (a handle that wrote holds the lock until it is closed, or the
        process exits). Writing through this handle again takes the lock again."""
        with self._lock:
            self._writer.release()

    def _complete_error(self) -> StoreError:
        return StoreError(f"memory store {self.directory} is complete; to add to it, "
                          f"{rebuild_hint(self.directory, self.manifest)}")

    def _start_writing(self) -> None:
        """Before each write: hold the store's writer lock (StoreError when another process is ingesting into it),
        then catch up with what was committed since this handle last looked (by an earlier process, or another
        handle of this one), so a resumed ingest skips the chunks already stored and never stores one twice."""
        if self.is_complete:
            return
        holder = self._writer.acquire(on_take=self._remove_orphan_thumbnails)
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

    def _remove_orphan_thumbnails(self) -> None:
        """The JPEGs of a chunk whose process was killed before its rows committed (see the module docstring)."""
        n = remove_orphan_thumbnails(self.directory, self._conn)
        if n:
            logger.info("memory store %s: removed %d orphaned thumbnail file(s), written by an ingest that was "
                        "killed before it committed their chunk", self.directory, n)

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
        with self._writer.mutex, self._lock:
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
                            updated=utc_now())
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
