"""Several handles on one store: a reader behind a writer, two processes creating or ingesting the same video."""

from __future__ import annotations

import os
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


def test_reader_opened_before_the_writer_added_chunks(tmp_path):
    """The reader's catalog knows fewer docs than the database holds: keyword hits past it must not reach MMR."""
    chunks, _ = make_stream(duration=600)
    writer = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    for c in chunks[:3]:
        writer.add_chunk(c)
    reader = VideoMemory.open(writer.directory, HashEmbedder())
    for c in chunks[3:]:
        writer.add_chunk(c)
    n_docs = reader._catalog.n_docs
    assert reader.counts()["docs"] > n_docs
    for kw in ({"scale": "clip"}, {"scale": "segment"}, {}, {"scale": "clip", "hybrid": False}):
        hits = reader.search("bakery rosalind glaciers valleys", 3, **kw)
        assert hits and all(h.start < chunks[2].end for h in hits), kw


def test_create_race_opens_the_store_the_other_process_made(tmp_path, monkeypatch):
    """Another process renames its new store into place between our existence check and our rename."""
    import videomind.memory.store as store_mod

    directory = tmp_path / "talk"
    real = store_mod.write_manifest

    def write_then_lose_the_race(d, manifest):
        real(d, manifest)
        if not directory.exists():
            shutil.copytree(d, directory)  # the other process's store, complete with its manifest

    monkeypatch.setattr(store_mod, "write_manifest", write_then_lose_the_race)
    mem = VideoMemory.create(directory, info_for(), Config(), HashEmbedder())
    assert mem.directory == directory and not mem.is_complete
    assert [p.name for p in tmp_path.iterdir()] == ["talk"]  # no hidden .talk.tmp-PID left behind


def test_threads_creating_one_store_at_once_all_get_it(tmp_path):
    """Each call builds in a folder of its own (the folder was named by process id, so two threads of one process
    shared it and one failed with 'Directory not empty' or lost its files to the other's clean-up)."""
    import threading

    n = 4
    barrier, out, errors = threading.Barrier(n), [], []

    def create():
        barrier.wait()
        try:
            out.append(Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder()))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=create) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(out) == n and len({m.directory for m in out}) == 1
    assert [p.name for p in tmp_path.iterdir()] == [out[0].directory.name]
    for m in out:
        m.close()


def test_a_killed_creators_folder_is_swept_a_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (tmp_path / f".talk.tmp-{dead}-x1" / "thumbs").mkdir(parents=True)
    (tmp_path / f".talk.tmp-{os.getpid()}-x2").mkdir()    # another thread of this process, still building
    (tmp_path / ".other.tmp-1-x3").mkdir()                # another store's
    VideoMemory.create(tmp_path / "talk", info_for(), Config(), HashEmbedder()).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".other.tmp-1-x3", f".talk.tmp-{os.getpid()}-x2", "talk"])


def test_second_process_gets_a_clear_error_then_resumes(tmp_path):
    """Two ingests of one video: the second process is refused while the first holds the store, and after the
    first exits it continues from what the first committed."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.memory.conftest import HashEmbedder, info_for, make_stream
        from videomind.config import Config
        from videomind.memory.library import Library
        mem = Library({str(tmp_path)!r}).open_or_create(info_for(), Config(), HashEmbedder())
        mem.add_chunk(make_stream(duration=300)[0][0])
        print("writing", flush=True)
        sys.stdin.readline()
    """)
    first = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert first.stdout.readline().strip() == "writing"
        chunks, _ = make_stream(duration=300)
        second = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
        with pytest.raises(StoreError, match="being ingested by another process"):
            second.add_chunk(chunks[1])
    finally:
        first.communicate("\n", timeout=120)
    for c in chunks:
        second.add_chunk(c)  # chunk 0 is already committed (by the first process) and is skipped
    second.finalize()
    assert second.counts()["chunks"] == len(chunks)


def test_two_handles_of_one_process_take_turns(tmp_path):
    """Each handle catches up with the other's commits before writing (it used to hit sqlite3.IntegrityError on a
    chunk index the other had taken, or store a chunk twice)."""
    chunks, _ = make_stream(duration=300)
    lib = Library(tmp_path)
    a = lib.open_or_create(info_for(), Config(), HashEmbedder())
    a.add_chunk(chunks[0])
    b = lib.open_or_create(info_for(), Config(), HashEmbedder())
    a.add_chunk(chunks[1])
    b.add_chunk(chunks[1])  # committed by a: skipped
    b.add_chunk(chunks[2])
    a.add_chunk(chunks[3])
    a.finalize()
    with pytest.raises(StoreError, match="complete"):
        b.add_chunk(chunks[4])
    spans = a._conn.execute("SELECT start, end FROM chunks ORDER BY start").fetchall()
    assert spans == [(c.start, c.end) for c in chunks[:4]]


def test_two_threads_ingesting_one_store_take_turns(tmp_path):
    """Two ingests of one video at once in one process (two app sessions): each handle found chunk i not yet
    committed, then the other committed it first (sqlite3.IntegrityError: UNIQUE constraint failed: chunks.idx)."""
    chunks, _ = make_stream(duration=600)
    lib = Library(tmp_path)
    handles = [lib.open_or_create(info_for(), Config(), HashEmbedder()) for _ in range(2)]
    start, errors = threading.Barrier(2), []

    def ingest(mem):  # as VideoMind.ingest does: a store the other finished meanwhile is the memory asked for
        start.wait()
        try:
            for c in chunks:
                mem.add_chunk(c)
            mem.finalize()
        except StoreError as e:
            if not (mem.is_complete and "is complete" in str(e)):
                errors.append(e)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=ingest, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    spans = handles[0]._conn.execute("SELECT start, end FROM chunks ORDER BY start").fetchall()
    assert spans == [(c.start, c.end) for c in chunks] and all(h.is_complete for h in handles)


def test_abandoned_handle_does_not_lock_out_a_retry(tmp_path):
    """An interrupted ingest's handle lives on in its traceback (a notebook keeps the last one); the retry in the
    same process must not be refused as "another process"."""
    chunks, _ = make_stream(duration=300)
    lib = Library(tmp_path)
    abandoned = lib.open_or_create(info_for(), Config(), HashEmbedder())
    abandoned.add_chunk(chunks[0])
    retry = lib.open_or_create(info_for(), Config(), HashEmbedder())
    for c in chunks:
        retry.add_chunk(c)
    retry.finalize()
    assert retry.counts()["chunks"] == len(chunks) and abandoned is not None


class _CommitsMidLoad:
    """A reader's database connection that lets ``commit`` (a writer adding a chunk) run just before the first
    query containing ``trigger``: a writer's commit landing between two queries of one load, deterministically."""

    def __init__(self, conn, trigger, commit):
        self._conn, self._trigger, self._commit = conn, trigger, commit

    def execute(self, sql, *args):
        if self._commit is not None and self._trigger in sql:
            commit, self._commit = self._commit, None
            commit()
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_a_reader_loads_one_snapshot_while_a_writer_commits(tmp_path):
    """A chunk committed after the reader read the docs but before it read the vectors gave it vectors of docs it
    did not know, and its searches failed ('IndexError: index 803 is out of bounds for axis 0 with size 803')."""
    from videomind.memory.manifest import DB, read_manifest
    from videomind.memory.schema import connect

    chunks, _ = make_stream(duration=600)
    writer = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    for c in chunks[:3]:
        writer.add_chunk(c)
    docs_before = writer._catalog.n_docs
    conn = _CommitsMidLoad(connect(writer.directory / DB), "FROM events", lambda: writer.add_chunk(chunks[3]))
    reader = VideoMemory(writer.directory, conn, read_manifest(writer.directory), HashEmbedder())
    assert writer._catalog.n_docs > docs_before  # the writer did commit in the middle of the load
    cat = reader._catalog
    assert cat.n_docs == docs_before and max(cat.pos_doc) <= cat.n_docs and cat.index.ntotal == len(cat.pos_doc)
    assert reader.resume_point == chunks[2].end and reader._committed == {0, 1, 2}
    for kw in ({}, {"t0": 0, "t1": 1e9}, {"scale": "clip"}):
        assert reader.search("the train to the coast", 5, **kw), kw
    reader.close()


def test_a_reader_keeps_finding_texts_whose_clip_the_writer_closed(tmp_path):
    """Texts no clip held when the reader opened were found as open rows; once the writer closed their clip they
    were no longer open, and the clip's doc was newer than the reader's catalog: the reader found nothing."""
    chunks, _ = make_stream(duration=600)
    writer = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    for c in chunks[:3]:
        writer.add_chunk(c)
    reader = VideoMemory.open(writer.directory, HashEmbedder())
    query = "Glaciers carve deep valleys over thousands of years."  # said at 170.5-174.5, in no clip yet
    before = reader.search(query, 3, t0=170, t1=180)
    assert [h.id for h in before] == ["open:speech@170.5"] and query in before[0].text
    writer.add_chunk(chunks[3])  # closes the clip of 170.5-174.5
    assert writer._conn.execute("SELECT count(*) FROM texts WHERE start >= 170 AND start < 180 AND clip IS NULL"
                                ).fetchone()[0] == 0
    after = reader.search(query, 3, t0=170, t1=180)
    assert [(h.id, h.text) for h in after] == [(h.id, h.text) for h in before]
    assert reader.dense_scores(query, after)[0] > 0.9  # scored from its texts, as before the clip closed
    assert all(h.start < chunks[2].end for h in reader.search(query, 5))  # still nothing of the writer's new tail
    reader.close()


def test_searching_a_store_being_written_reads_only_its_open_texts(tmp_path):
    """The open rows' query must stay on the texts_clip index: a subquery per text, or SQLite taking the start
    index for its ORDER BY, read every text of a recording being followed at each search (1.6-3.5 ms at 10 h of
    clips, growing with the recording; 0.02 ms on the index)."""
    chunks, _ = make_stream(duration=600)
    writer = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    for c in chunks[:4]:
        writer.add_chunk(c)
    reader = VideoMemory.open(writer.directory, HashEmbedder())
    writer.add_chunk(chunks[4])  # a clip the reader's catalog does not know: its texts are open rows to it
    for mem in (writer, reader):
        queries: list[str] = []
        mem._conn.set_trace_callback(queries.append)
        hits = mem.search("Glaciers carve deep valleys over thousands of years.", 5)
        mem.dense_scores("Glaciers carve deep valleys over thousands of years.", hits)
        mem._conn.set_trace_callback(None)
        on_texts = [q for q in queries if "FROM texts" in q]
        assert on_texts
        for q in on_texts:
            plan = " ".join(str(row[-1]) for row in mem._conn.execute("EXPLAIN QUERY PLAN " + q))
            assert "texts_clip" in plan and "SCAN texts" not in plan and "texts_time" not in plan, (q, plan)
    reader.close()
    writer.close()
