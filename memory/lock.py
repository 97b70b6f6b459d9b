"""The writer lock of one store: one ingesting process at a time; readers never take it.

An advisory ``flock`` on a file in the store directory: the kernel releases it when its holder exits or is
killed, so a crashed ingest never leaves a store locked. The handles of one process share their process's lock:
a handle left behind by a failed or interrupted ingest (still referenced by a traceback) must not lock the retry
out, so within a process each handle instead catches up with the others' writes before its own. On platforms
without ``fcntl`` there is no lock.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import IO, Callable

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = "ingest.lock"

_held: dict[Path, tuple[IO, int]] = {}  # lock file -> (the locked open file, handles of this process using it)
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
            taken = self.path not in _held
            if not taken:
                fh, n = _held[self.path]
            else:
                fh, n = open(self.path, "a+"), 0
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
            _held[self.path] = (fh, n + 1)
            self.held = True
            if taken and on_take is not None:
                on_take()
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
        self.held = False
