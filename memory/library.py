"""Library: one memory store per (video content, settings) under a root directory; list, delete, search all.

Two locks keep concurrent ingests (processes, or app sessions in one process) from pulling a store from under
each other. Each store's writer lock (:mod:`videomind.memory.lock`) is held by the ingest writing it; a store is
deleted or moved only when nobody holds it (taken alone). The library lock, on the root folder, is held for the
short steps that change which store folders exist (creating a store or a rebuild, swapping a rebuild in,
deleting), so that a rebuild holds its folder's writer lock before any other step can find that folder unheld.
A swap that a killed process left half-done is finished by the next open, create or list (``Library._swap``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from videomind.errors import StoreError
from videomind.memory.lock import WriterLock, folder_lock
from videomind.memory.manifest import MANIFEST, peek_manifest
from videomind.memory.search import Hit, check_k
from videomind.memory.store import VideoMemory
from videomind.types import VideoInfo

logger = logging.getLogger(__name__)

REBUILD_SUFFIX = ".rebuild"  # a store being rebuilt beside the one it replaces (hidden: its name starts with ".")
OLD_SUFFIX = ".old"  # the store a rebuild replaces, for the moment of the swap (Library._swap)
STAGE_CACHE_DIR = ".stage-cache"  # per-video caches of the ingestion's model stages (the StageCache files)


def store_key(info: VideoInfo, config) -> str:
    """``<file stem>-<12 hex>``: the hex digest covers the video's content hash (its path and size when it has
    none) and config.hash("ingest", "memory", "models"), so other settings get their own store."""
    content = info.content_hash or f"{Path(info.path).resolve()}:{info.duration}"
    digest = hashlib.sha256(f"{content}|{config.hash('ingest', 'memory', 'models')}".encode()).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(info.path).stem)[:40].strip("._") or "video"
    return f"{stem}-{digest}"


class Library:
    """Memory stores under ``root`` (one sub-directory each)."""

    def __init__(self, root, embedder=None):
        self.root = Path(root).expanduser()
        self.embedder = embedder
        self._cache: dict[str, tuple[float, VideoMemory]] = {}  # dir -> (manifest mtime, open store) for search

    def path(self, key: str) -> Path:
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise StoreError(f"invalid memory key {key!r}")
        return self.root / key

    def stage_cache_path(self, content_hash: str) -> Path:
        """The stage-cache file of the video whose content hash is ``content_hash`` (shared by its stores)."""
        if not re.fullmatch(r"[A-Za-z0-9_-]+", content_hash or ""):
            raise StoreError(f"invalid content hash {content_hash!r}")
        return self.root / STAGE_CACHE_DIR / f"{content_hash}.sqlite"

    def open_or_create(self, info: VideoInfo, config, embedder=None, *, rebuild: bool = False,
                       **kw) -> VideoMemory:
        """The store of this video and settings: reopened when it exists (complete: nothing is recomputed;
        incomplete: resume at ``mem.resume_point``), created otherwise.

        ``rebuild`` drops the video's stage cache (a rebuild recomputes every stage) and, when the store exists,
        builds the new one beside it (``.<key>.rebuild``, started over each time): the old memory stays usable
        until :meth:`finish_rebuild` swaps the finished one in, so an interrupted rebuild loses nothing. The
        rebuild's store is returned holding its writer lock; one that will not be finished is given to
        :meth:`abandon_rebuild`.

        Raises:
            StoreError: the store cannot be opened; or (``rebuild``) another ingest is rebuilding it.
        """
        embedder = embedder or self.embedder
        key = store_key(info, config)
        directory = self.path(key)
        if rebuild:
            self._drop_stage_cache(info.content_hash)
        if embedder is not None and (rebuild or not directory.exists()):  # a new store's manifest records dim:
            _ = embedder.dim  # the model loads, if it must, before the library lock that other ingests wait for
        self.root.mkdir(parents=True, exist_ok=True)
        with folder_lock(self.root):
            self._recover(key)
            if rebuild and directory.exists():
                return self._start_rebuild(info, config, embedder, key, **kw)
            if directory.exists():
                return VideoMemory.open(directory, embedder, **kw)
            try:
                return VideoMemory.create(directory, info, config, embedder, key=key, **kw)
            except StoreError:
                if not directory.exists():
                    raise
                return VideoMemory.open(directory, embedder, **kw)  # a process without the library lock made it

    def _start_rebuild(self, info: VideoInfo, config, embedder, key: str, **kw) -> VideoMemory:
        """A new, empty store beside ``key``'s, for its rebuild, holding its writer lock. An earlier rebuild
        there is started over, unless an ingest still holds it. Under the library lock: no other rebuild can find
        the new store between its creation and its lock and start over in its place."""
        side = self._side(key)
        if side.exists():
            lock = WriterLock(side)
            if (holder := lock.acquire_alone()) is not None:
                raise StoreError(f"the memory of {info.path} ({key}) is already being rebuilt by {holder}, in "
                                 f"{side}: wait for that ingest to finish, or stop it and run the rebuild again")
            try:
                shutil.rmtree(side)
            finally:
                lock.release()
        memory = VideoMemory.create(side, info, config, embedder, key=key, **kw)
        try:
            memory.start_writing()
        except BaseException:
            memory.close()
            raise
        return memory

    def abandon_rebuild(self, memory: VideoMemory) -> bool:
        """Close ``memory``, a store that ``open_or_create(rebuild=True)`` returned, for a rebuild that will not
        finish (interrupted, failed), and delete it unless it is complete or another handle holds it (a rebuild
        of another process that started over in its folder, another ingest of this process): the rebuild's folder
        beside the old memory, or the new store in the key's place when there was none. So an abandoned rebuild
        leaves the library as it found it; the next rebuild would start over anyway, and the model stages it
        computed stay in the video's stage cache while a store of the video remains. Returns whether it was
        deleted."""
        directory = Path(memory.directory)
        if memory.is_complete or not directory.is_dir():
            memory.close()  # finished (its swap failed, and said where it is kept), or gone
            return False
        content = _content_hash(directory)
        with folder_lock(self.root):  # no rebuild starts over in the folder between the close and the deletion
            memory.close()
            lock = WriterLock(directory)
            if (holder := lock.acquire_alone()) is not None:
                logger.warning("memory %s: the abandoned rebuild in %s is kept: %s holds it", memory.key,
                               directory, holder)
                return False
            try:
                shutil.rmtree(directory)
            except OSError as e:  # the abandon path of an error: reported, not raised over that error
                logger.warning("memory %s: could not delete the abandoned rebuild %s: %s", memory.key, directory, e)
                return False
            finally:
                lock.release()
        logger.info("memory %s: deleted the abandoned rebuild %s", memory.key, directory)
        self._drop_unused_stage_cache(content)
        return True

    def finish_rebuild(self, memory: VideoMemory, **kw) -> VideoMemory:
        """Put a complete store built by ``open_or_create(rebuild=True)`` in place of the old one; returns it
        reopened at its final place (any other store is returned as it is). ``memory`` is closed.

        Raises:
            StoreError: ``memory`` is not complete; or an ingest holds the old store (the swap would remove it
                from under that ingest), or another rebuild started over in the rebuild's place. The old store
                is then left as it was.
        """
        side = Path(memory.directory)
        if not side.name.endswith(REBUILD_SUFFIX):
            return memory
        if not memory.is_complete:
            raise StoreError(f"the rebuilt memory in {side} is not complete; it was not swapped in")
        directory = self.path(memory.manifest["key"])
        embedder = memory.embedder
        memory.close()
        self._forget(directory)
        with folder_lock(self.root):
            self._swap(side, directory)
            return VideoMemory.open(directory, embedder, **kw)

    def _swap(self, side: Path, directory: Path) -> None:
        """Move the rebuilt store ``side`` to ``directory``, deleting the store there, with both writer locks
        held alone (no ingest may write either meanwhile). Under the library lock.

        Two renames, each made durable (fsync of the library folder) before the next step, through states that the
        folders present tell apart, so that the next open, create or list of the key finishes what a killed
        process left (:meth:`_recover`)::

            <key> (old store)   .<key>.rebuild (new)   before: the old store is in use
            .<key>.old          .<key>.rebuild         no <key>: the new store is moved into place
            .<key>.old          <key> (new)            the old store is deleted
            <key> (new)                                done

        There is no portable atomic exchange of two folders (Linux's renameat2 RENAME_EXCHANGE, which not every
        file system has, would also leave a state that looks like the first one).
        """
        key = directory.name
        locks = []
        try:
            if not side.is_dir():
                raise StoreError(f"the rebuilt memory {key!r} in {side} is gone (deleted meanwhile): it was not "
                                 f"swapped in; {directory} is unchanged")
            for d in (side, directory) if directory.exists() else (side,):
                lock = WriterLock(d)
                if (holder := lock.acquire_alone()) is not None and d == side:
                    raise StoreError(f"the rebuilt memory {key!r} was not swapped in: another rebuild started over "
                                     f"in {side} ({holder}) and will swap itself in; {directory} is unchanged")
                if holder is not None:
                    raise StoreError(f"the rebuilt memory {key!r} was not swapped in: {holder} is ingesting into "
                                     f"{directory}, which the swap would delete from under it; the rebuilt one is "
                                     f"kept in {side}: wait for that ingest to finish, then run the rebuild again")
                locks.append(lock)
            if not peek_manifest(side).get("complete"):  # another rebuild started over there, then stopped
                raise StoreError(f"the rebuilt memory {key!r} was not swapped in: another rebuild started over in "
                                 f"{side} and did not finish; {directory} is unchanged: run the rebuild again")
            old = self._old(key)
            shutil.rmtree(old, ignore_errors=True)  # what an earlier swap left: the complete rebuild supersedes it
            if directory.exists():
                directory.rename(old)
                _sync(self.root)
            try:
                side.rename(directory)
            except BaseException:
                if old.exists() and not directory.exists():
                    old.rename(directory)  # back as it was: the old store stays in use
                raise
            _sync(self.root)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            for lock in locks:
                lock.release()

    def _recover(self, key: str) -> None:
        """Finish a swap (:meth:`_swap`) that a killed process left half-done: with no ``<key>``, move a complete
        rebuild into place, else the old store back; delete an old store beside a complete one. A folder that a
        writer holds is left alone. Under the library lock."""
        directory, side, old = self.path(key), self._side(key), self._old(key)
        if not directory.exists():
            if side.is_dir() and peek_manifest(side).get("complete") and _move(side, directory):
                logger.warning("memory %s: a rebuild's swap was interrupted; moved the complete rebuild %s into "
                               "place", key, side)
            elif old.is_dir() and _move(old, directory):
                logger.warning("memory %s: a swap was interrupted; moved the store it was replacing (%s) back into "
                               "place", key, old)
        if old.is_dir() and peek_manifest(directory).get("complete"):
            lock = WriterLock(old)
            if lock.acquire_alone() is None:
                try:
                    shutil.rmtree(old)
                finally:
                    lock.release()
                logger.info("memory %s: deleted %s, the store an interrupted swap had replaced", key, old)

    def _side(self, key: str) -> Path:
        return self.root / f".{key}{REBUILD_SUFFIX}"

    def _old(self, key: str) -> Path:
        return self.root / f".{key}{OLD_SUFFIX}"

    def open(self, key: str, embedder=None, **kw) -> VideoMemory:
        directory = self.path(key)
        if not directory.exists() and self.root.is_dir():
            with folder_lock(self.root):
                self._recover(key)
        if not directory.exists():
            raise StoreError(f"no memory store {key!r} in {self.root}")
        return VideoMemory.open(directory, embedder or self.embedder, **kw)

    def list(self) -> list[dict[str, Any]]:
        """Manifests of the stores (plus ``key``, ``name`` and ``dir``); unreadable ones carry an ``error``. A
        rebuild under way, or left by a killed process (``.<key>.rebuild``: the next rebuild starts over), is
        listed too, with ``rebuild: True`` and the name ``<key>.rebuild``, which :meth:`delete` takes to delete it
        alone. A swap that a killed process left half-done is finished first."""
        out = []
        if not self.root.is_dir():
            return out
        self._recover_all()
        for d in sorted(p for p in self.root.iterdir() if p.is_dir()):
            rebuild = d.name.startswith(".") and d.name.endswith(REBUILD_SUFFIX)
            if d.name.startswith(".") and not rebuild:
                continue
            try:
                m = json.loads((d / MANIFEST).read_text())
                if not isinstance(m, dict):
                    raise ValueError("not an object")
            except (OSError, ValueError) as e:
                m = {"error": f"unreadable manifest: {e}", "complete": False}
            m.setdefault("key", d.name[1:-len(REBUILD_SUFFIX)] if rebuild else d.name)
            m["name"] = m["key"] + REBUILD_SUFFIX if rebuild else m["key"]
            m["dir"] = str(d)
            if rebuild:
                m["rebuild"] = True
            out.append(m)
        return out

    def _recover_all(self) -> None:
        """:meth:`_recover` each key whose folders show an interrupted swap (the library lock only then)."""
        names = {p.name for p in self.root.iterdir() if p.is_dir()}
        hidden = [n[1:] for n in names if n.startswith(".")]
        keys = {h[:-len(OLD_SUFFIX)] for h in hidden if h.endswith(OLD_SUFFIX)}  # only a swap makes one
        keys |= {k for h in hidden if h.endswith(REBUILD_SUFFIX)  # a rebuild of no store: killed mid-swap
                 if (k := h[:-len(REBUILD_SUFFIX)]) not in names}
        keys = {k for k in keys if k and not k.startswith(".")}  # names that are keys (Library.path)
        if keys:
            with folder_lock(self.root):
                for key in sorted(keys):
                    self._recover(key)

    def _cached(self, directory: str, embedder) -> VideoMemory:
        mtime = (Path(directory) / MANIFEST).stat().st_mtime
        hit = self._cache.get(directory)
        if hit is not None and hit[0] == mtime and hit[1].embedder is embedder:
            return hit[1]
        if hit is not None:
            hit[1].close()
        mem = VideoMemory.open(directory, embedder)
        self._cache[directory] = (mtime, mem)
        return mem

    def _forget(self, directory: Path) -> None:
        """Close and drop the search cache's open handle of ``directory`` before it is moved or deleted."""
        cached = self._cache.pop(str(directory), None)
        if cached is not None:
            cached[1].close()

    def delete(self, key: str) -> list[Path]:
        """Delete a memory: its store, with the rebuild of it under way or left by a killed process
        (``.<key>.rebuild``) and what an interrupted swap left (``.<key>.old``); or, named ``<key>.rebuild`` (its
        ``name`` in :meth:`list`), that rebuild alone. The video's stage cache goes with its last store.

        Returns:
            The folders deleted ([] when there was none of them).
        Raises:
            StoreError: an ingest writes one of them (a handle holds its writer lock), in another process or in
                this one (its handles share the lock, so taking it as a writer would join theirs).
        """
        directory = self.path(key)
        if key.endswith(REBUILD_SUFFIX) and not directory.exists():  # no key ends so (store_key: 12 hex digits)
            targets = [self._side(self.path(key[:-len(REBUILD_SUFFIX)]).name)]
        else:
            self._forget(directory)
            targets = [directory, self._side(key), self._old(key)]
        if not self.root.is_dir():
            return []
        with folder_lock(self.root):  # no rebuild starts or swaps between the checks and the deletion
            found = [d for d in targets if d.is_dir()]
            locks = []
            try:
                for d in found:  # all of them free before any is deleted
                    lock = WriterLock(d)
                    if (holder := lock.acquire_alone()) is not None:
                        raise StoreError(f"memory {key!r} is being ingested by {holder}: wait for that ingest to "
                                         f"finish, or stop it, then delete the memory")
                    locks.append(lock)
                content = next((c for c in map(_content_hash, found) if c), "")
                for d in found:
                    shutil.rmtree(d)
            finally:
                for lock in locks:
                    lock.release()
        self._drop_unused_stage_cache(content)
        return found

    def _drop_unused_stage_cache(self, content_hash: str) -> None:
        """Drop the stage cache of the video ``content_hash`` when no store of it remains."""
        if content_hash and not any((m.get("video") or {}).get("content_hash") == content_hash
                                    for m in self.list()):
            self._drop_stage_cache(content_hash)

    def _drop_stage_cache(self, content_hash: str) -> None:
        if not content_hash:
            return
        try:
            path = self.stage_cache_path(content_hash)
        except StoreError:
            return
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)

    def delete_video(self, info: VideoInfo, config) -> list[Path]:
        """Delete the store of this video and settings (:meth:`delete`)."""
        return self.delete(store_key(info, config))

    def search(self, query: str, k: int = 5, embedder=None, **kw) -> list[Hit]:
        """Search every complete store. Each store's top-k are merged by the cosine of the query to the hit
        (store-local fused scores are ranks, not comparable across stores); Hit.score is that cosine and
        Hit.video the store's key."""
        k = check_k(k, 5)  # here too: an empty library would take any k, and merged[:k] a k of -1 or 1.5
        embedder = embedder or self.embedder
        merged: list[Hit] = []
        for m in self.list():
            if not m.get("complete") or "error" in m or m.get("rebuild"):
                continue
            try:
                mem = self._cached(m["dir"], embedder)
                hits = mem.search(query, k, **kw)
                scores = mem.dense_scores(query, hits)
            except StoreError as e:
                logger.warning("skipping memory store %s: %s", m["dir"], e)
                continue
            merged += [_with_video(h, m["key"], s) for h, s in zip(hits, scores)]
        merged.sort(key=lambda h: -h.score)
        return merged[:k]


def _content_hash(directory: Path) -> str:
    """The content hash of the video of the store in ``directory`` ("" when unknown or unreadable)."""
    video = peek_manifest(directory).get("video")
    return str(video.get("content_hash") or "") if isinstance(video, dict) else ""


def _move(src: Path, dst: Path) -> bool:
    """Rename the store ``src`` to ``dst`` (durably) unless a writer holds it; whether it was moved."""
    lock = WriterLock(src)
    if lock.acquire_alone() is not None:
        return False
    try:
        src.rename(dst)
    finally:
        lock.release()
    _sync(dst.parent)
    return True


def _sync(directory: Path) -> None:
    """Make the renames in ``directory`` durable, in their order (where a folder can be fsync'ed)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _with_video(h: Hit, key: str, score: float) -> Hit:
    return Hit(h.id, score, h.scale, h.source, h.start, h.end, h.text, h.event, key)
