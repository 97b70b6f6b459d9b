"""The library's folders under concurrent ingests: deleting, rebuilding and swapping a store another handle writes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests.memory.conftest import HashEmbedder, info_for, make_stream
from videomind.config import Config
from videomind.errors import StoreError
from videomind.memory.library import Library
from videomind.memory.store import VideoMemory

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



def _complete_store(root, chunks):
    mem = Library(root).open_or_create(info_for(), Config(), HashEmbedder())
    for c in chunks:
        mem.add_chunk(c)
    mem.finalize()
    mem.close()
    return mem.key


def _store_and_its_rebuild(root):
    """A complete store of 300 s and a rebuild of it that has stored one chunk: (chunks, key, library, rebuild)."""
    chunks, _ = make_stream(duration=300)
    key = _complete_store(root, chunks)
    lib = Library(root)
    rebuild = lib.open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)
    rebuild.add_chunk(chunks[0])
    return chunks, key, lib, rebuild


def _rebuild_in_another_process(root) -> str:
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.memory.conftest import HashEmbedder, info_for
        from videomind.config import Config
        from videomind.errors import StoreError
        from videomind.memory.library import Library
        try:
            mem = Library({str(root)!r}).open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)
            print("started", mem.directory)
        except StoreError as e:
            print("refused:", e)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_a_second_rebuild_is_refused_while_the_first_writes(tmp_path):
    """A second rebuild deleted the first one's folder as it wrote; the first then finished into the second's
    folder and swapped that mix in place of the good store ('does not match its manifest')."""
    chunks, _ = make_stream(duration=600)
    key = _complete_store(tmp_path, chunks)
    lib = Library(tmp_path)
    first = lib.open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)
    assert first._writer.held  # from the start: no other rebuild can take its folder before its first chunk
    for c in chunks[:5]:
        first.add_chunk(c)
    out = _rebuild_in_another_process(tmp_path)
    assert out.startswith("refused:") and f"({key}) is already being rebuilt by another process" in out, out
    assert "/videos/talk.mp4" in out and "wait for that ingest to finish" in out
    with pytest.raises(StoreError, match="already being rebuilt by another handle in this process"):
        Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)
    for c in chunks[5:]:
        first.add_chunk(c)
    first.finalize()
    final = lib.finish_rebuild(first)
    assert final.is_complete and final.counts()["chunks"] == len(chunks)
    assert [(m["key"], m["complete"]) for m in lib.list()] == [(key, True)]


def test_the_swap_leaves_a_store_another_ingest_holds(tmp_path):
    """The swap renamed and deleted the store an ingest was resuming, which then failed on its vanished files."""
    chunks, _ = make_stream(duration=300)
    lib = Library(tmp_path)
    writer = lib.open_or_create(info_for(), Config(), HashEmbedder())
    writer.add_chunk(chunks[0])  # an ingest under way, holding the store
    rebuilt = lib.open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)
    for c in chunks:
        rebuilt.add_chunk(c)
    rebuilt.finalize()
    side = rebuilt.directory
    with pytest.raises(StoreError, match=r"not swapped in: another handle in this process .* is ingesting "
                                         r"into .*wait for that ingest to finish"):
        lib.finish_rebuild(rebuilt)
    writer.add_chunk(chunks[1])  # its store is still there
    assert writer.counts()["chunks"] == 2 and writer.directory.is_dir()
    writer.close()
    final = lib.finish_rebuild(VideoMemory.open(side, HashEmbedder()))  # the complete rebuild was kept
    assert final.is_complete and final.counts()["chunks"] == len(chunks) and not side.exists()


def test_a_finished_rebuild_is_not_swapped_after_another_started_over(tmp_path):
    """Between one rebuild's finalize and its swap another rebuild started over in its folder: the swap put that
    new, unfinished store in place of the good one."""
    chunks, _ = make_stream(duration=300)
    key = _complete_store(tmp_path, chunks)
    lib = Library(tmp_path)
    first = lib.open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)
    for c in chunks:
        first.add_chunk(c)
    first.finalize()
    second = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)
    second.add_chunk(chunks[0])
    with pytest.raises(StoreError, match="another rebuild started over .* and will swap itself in"):
        lib.finish_rebuild(first)
    second.close()  # interrupted
    with pytest.raises(StoreError, match="another rebuild started over .* and did not finish"):
        lib.finish_rebuild(first)
    good = lib.open(key, HashEmbedder())
    assert good.is_complete and good.counts()["chunks"] == len(chunks)


def _swap_killed_between_renames(root, chunks) -> int:
    """A rebuild of ``chunks`` whose process is killed right after the swap moved the old store aside."""
    code = textwrap.dedent(f"""
        import os, pathlib, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.memory.conftest import HashEmbedder, info_for, make_stream
        from videomind.config import Config
        from videomind.memory.library import Library
        lib = Library({str(root)!r})
        mem = lib.open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)
        for c in make_stream(duration=300)[0][:{len(chunks)}]:
            mem.add_chunk(c)
        mem.finalize()
        rename = pathlib.Path.rename
        def rename_then_die(self, target):
            out = rename(self, target)
            if str(target).endswith(".old"):
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        pathlib.Path.rename = rename_then_die
        lib.finish_rebuild(mem)
    """)
    return subprocess.run([sys.executable, "-c", code]).returncode


def test_a_swap_killed_between_its_renames_is_finished_by_the_next_list(tmp_path, caplog):
    """Both stores stayed hidden (.<key>.old, .<key>.rebuild): the library listed only the rebuild, and the next
    ingest started over from nothing."""
    chunks, _ = make_stream(duration=300)
    key = _complete_store(tmp_path, chunks)
    assert _swap_killed_between_renames(tmp_path, chunks[:3]) == -9
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{key}.old", f".{key}.rebuild"]
    listed = Library(tmp_path).list()
    assert [(m["key"], m["complete"], m.get("rebuild")) for m in listed] == [(key, True, None)]
    assert any("swap was interrupted; moved the complete rebuild" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in tmp_path.iterdir()) == [key]
    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    assert mem.is_complete and mem.counts()["chunks"] == 3  # the rebuild's store, not a new empty one


@pytest.mark.parametrize("how", ["open_or_create", "open", "list"])
def test_without_a_complete_rebuild_the_old_store_comes_back(tmp_path, how):
    chunks, key, lib, rebuild = _store_and_its_rebuild(tmp_path)
    rebuild.close()
    lib.path(key).rename(tmp_path / f".{key}.old")  # as a swap leaves it between its renames
    if how == "list":
        assert sorted((m["key"], m["complete"]) for m in lib.list()) == [(key, False), (key, True)]
    mem = lib.open(key, HashEmbedder()) if how == "open" else lib.open_or_create(info_for(), Config(),
                                                                                 HashEmbedder())
    assert mem.directory == lib.path(key) and mem.is_complete and mem.counts()["chunks"] == len(chunks)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{key}.rebuild", key]  # the rebuild stays, resumable


def test_a_failed_rename_puts_the_old_store_back(tmp_path, monkeypatch):
    """No error path of the swap leaves the key without its store."""
    chunks, key, lib, rebuild = _store_and_its_rebuild(tmp_path)
    rebuild.finalize()
    rename = Path.rename

    def refuse_the_second(self, target):
        if self.name.endswith(".rebuild"):
            raise OSError(5, "Input/output error")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", refuse_the_second)
    with pytest.raises(OSError, match="Input/output"):
        lib.finish_rebuild(rebuild)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{key}.rebuild", key]
    assert lib.open(key, HashEmbedder()).counts()["chunks"] == len(chunks)


def test_the_old_store_a_finished_swap_left_is_deleted(tmp_path):
    chunks, _ = make_stream(duration=300)
    key = _complete_store(tmp_path, chunks)
    shutil.copytree(tmp_path / key, tmp_path / f".{key}.old")  # killed while deleting it
    assert [m["key"] for m in Library(tmp_path).list()] == [key]
    assert sorted(p.name for p in tmp_path.iterdir()) == [key]
