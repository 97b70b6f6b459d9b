"""The writer lock of one store: one ingesting process at a time; readers never take it.

An advisory ``flock`` on a file in the store directory: the kernel releases it when its holder exits or is
killed, so a crashed ingest never leaves a store locked. The handles of one process share their process's lock:
a handle left behind by a failed or interrupted ingest (still referenced by a traceback) must not lock the retry
out, so within a process each handle instead catches up with the others' writes before its own. Deleting or moving
a store is another matter: that must wait until no handle at all writes it, in this process or another, so it takes
the lock alone (:meth:`WriterLock.acquire_alone`), and no handle may join it meanwhile. On platforms without
``fcntl`` there is no lock.

:func:`folder_lock` is the other lock here: the library's, on its root folder, held for a moment while stores are
created, deleted or swapped, so that no two of those steps interleave.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import IO, Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = "ingest.lock"

_held: dict[Path, tuple[IO, int]] = {}  # lock file -> (the locked open file, handles of this process using it)
_alone: set[Path] = set()  # lock files taken by acquire_alone: no other handle of this process may join them
_mutexes: dict[Path, threading.RLock] = {}  # lock file -> the lock the handles of this process write under
_guard = threading.Lock()


class WriterLock:
    """One store handle's share of the process's writer lock on the store."""

    def __init__(self, directory: Path):
        self.path = Path(directory).resolve() / LOCK_FILE
        self.held = False
        with _guard:
            # The handles of one process share the file lock, so they take turns through this one: a chunk that
            # one handle found not yet committed could otherwise be committed by another (a thread ingesting the
            # same video) before its own insert (sqlite3.IntegrityError on the chunk's index).
            self.mutex = _mutexes.setdefault(self.path, threading.RLock())

    def acquire(self, on_take: Callable[[], object] | None = None) -> str | None:
        """None when this handle holds the lock (also when it already did); otherwise who holds it ("pid N").

        ``on_take`` is called when this call takes the lock for its process (no other handle of the process held
        it), before any other handle can join: no writer of the store is alive then, so what a killed one left
        half-done is safe to clean up. It is not called without ``fcntl`` (no lock, so no such moment)."""
        if self.held or fcntl is None:
            return None
        with _guard:
            if self.path in _alone:  # this process is deleting or moving the store
                return f"pid {os.getpid()}"
            taken = self.path not in _held
            if not taken:
                fh, n = _held[self.path]
            else:
                fh, n = _lock_file(self.path), 0
                if isinstance(fh, str):
                    return fh
            _held[self.path] = (fh, n + 1)
            self.held = True
            if taken and on_take is not None:
                on_take()
        return None

    def acquire_alone(self) -> str | None:
        """Take the lock only when no handle holds it, in this process or another, and let none join it until
        :meth:`release`: for deleting or moving the store, which must never happen under a writer (:meth:`acquire`
        would join a writer of this process). For a lock this handle does not hold yet.

        Returns:
            None when taken (also without ``fcntl``); otherwise who holds it, in words: "another process (pid N)"
            or "another handle in this process (pid N)".
        """
        if fcntl is None:
            return None
        with _guard:
            if self.path in _held:
                return f"another handle in this process (pid {os.getpid()})"
            fh = _lock_file(self.path)
            if isinstance(fh, str):
                return f"another process ({fh})"
            _held[self.path] = (fh, 1)
            _alone.add(self.path)
            self.held = True
        return None

    def release(self) -> None:
        """Closing the file drops the lock; the file stays (unlinking it would race with the next writer)."""
        if not self.held:
            return
        with _guard:
            fh, n = _held.pop(self.path)
            if n > 1:
                _held[self.path] = (fh, n - 1)
            else:
                fh.close()
                _alone.discard(self.path)
        self.held = False


def _lock_file(path: Path) -> IO | str:
    """``path`` opened and flock'ed, with this process's id written in it; who holds it ("pid N") when another
    process does."""
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip()
        fh.close()
        return f"pid {holder}" if holder else "pid unknown"
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


@contextlib.contextmanager
def folder_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory`` (an existing folder) locked while the block runs, waiting for the lock first: a
    ``flock`` on the folder itself (no lock file among the stores), which threads of one process also wait for
    (each opens the folder anew). Not reentrant: a block that takes it again waits for itself."""
    if fcntl is None:
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the lock
