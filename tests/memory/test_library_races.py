"""The library's folders under concurrent ingests: deleting, rebuilding and swapping a store another handle writes."""

from __future__ import annotations

import threading

import pytest

from tests.memory.conftest import HashEmbedder, info_for, make_stream
from videomind.config import Config
from videomind.errors import StoreError
from videomind.memory.library import Library

pytest.importorskip("fcntl")  # without it there is no writer lock to respect


def test_delete_refused_while_a_handle_of_this_process_writes(tmp_path):
    """Another session of one process deleted the store under an ingest (the writer lock is shared in-process, so
    delete joined it), and the ingest then failed with a raw FileNotFoundError on its manifest."""
    chunks, _ = make_stream(duration=300)
    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    with mem.writing():
        mem.add_chunk(chunks[0])
        with pytest.raises(StoreError, match=r"being ingested by another handle in this process \(pid \d+\)"):
            Library(tmp_path).delete(mem.key)
        for c in chunks[1:]:
            mem.add_chunk(c)
        mem.finalize()
    assert mem.is_complete and mem.counts()["chunks"] == len(chunks)
    assert Library(tmp_path).delete(mem.key) and not mem.directory.exists()  # nobody writes it now


def test_delete_refused_while_another_thread_holds_the_store(tmp_path):
    """A live ingest in another thread holds the store between its chunks, outside any write call."""
    chunks, _ = make_stream(duration=300)
    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    held, done = threading.Event(), threading.Event()

    def ingest():
        mem.start_writing()
        mem.add_chunk(chunks[0])
        held.set()
        done.wait(30)
        mem.add_chunk(chunks[1])
        mem.stop_writing()

    thread = threading.Thread(target=ingest)
    thread.start()
    try:
        assert held.wait(30)
        with pytest.raises(StoreError, match="another handle in this process"):
            Library(tmp_path).delete(mem.key)
    finally:
        done.set()
        thread.join()
    assert mem.counts()["chunks"] == 2
    assert Library(tmp_path).delete(mem.key)

