"""Durability: reopen without recomputation, crash and resume, corruption and schema errors, the library."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.memory.conftest import NEEDLE_T, CountingEmbedder, HashEmbedder, info_for, make_stream
from videomind.config import Config
from videomind.errors import CapabilityUnavailable, StoreError
from videomind.memory.library import Library, store_key
from videomind.memory.store import VideoMemory


def snapshot(mem):
    return [(h.id, round(h.score, 9), h.start, h.end, h.text) for q in ("pineapple", "who discovered radium",
                                                                         "bakery sign")
            for h in mem.search(q, 5)]


def test_reopen_without_recomputation(built_store, minilm, config):
    lib, mem, _, _ = built_store
    before = snapshot(mem)
    assert mem.is_complete
    emb = CountingEmbedder(minilm)
    again = lib.open_or_create(info_for(), config, emb)
    assert again.is_complete and again.directory == mem.directory
    assert emb.calls == 0  # opening embeds nothing
    assert snapshot(again) == before
    assert emb.calls == 3 and emb.n_texts == 3  # only the three query strings
    assert again.counts() == mem.counts()
    with pytest.raises(StoreError, match="complete"):
        again.add_chunk(make_stream()[0][0])
    again.close()


def test_reopening_a_store_does_not_load_the_embedder(tmp_path):
    """open_or_create read embedder.dim (loading the model: 7-9 s a process) to reopen a store, which records its
    dimension; only a new store (or a rebuild) needs it."""
    class Unloadable(HashEmbedder):
        @property
        def dim(self):
            raise AssertionError("the model was loaded")

    mem = _build(Library(tmp_path), make_stream(duration=120)[0])
    mem.finalize()
    counts = mem.counts()
    mem.close()
    again = Library(tmp_path).open_or_create(info_for(), Config(), Unloadable())
    assert again.is_complete and again.counts() == counts
    with pytest.raises(AssertionError, match="loaded"):
        Library(tmp_path).open_or_create(info_for(), Config(), Unloadable(), rebuild=True)


def _build(lib, chunks, emb=None, info=None):
    mem = lib.open_or_create(info or info_for(), Config(), emb or HashEmbedder())
    for c in chunks:
        mem.add_chunk(c)
    return mem


def test_crash_mid_chunk_rolls_back_and_resumes(tmp_path, monkeypatch):
    chunks, _ = make_stream(duration=600)
    lib = Library(tmp_path)
    mem = _build(lib, chunks[:4])
    before = mem.counts()

    def boom(*a, **k):
        raise RuntimeError("simulated crash during roll-up")

    monkeypatch.setattr(mem._episodic, "rollup", boom)
    with pytest.raises(RuntimeError):
        mem.add_chunk(chunks[4])
    monkeypatch.undo()
    assert mem.counts() == before  # the chunk's texts, keyframes and entities were rolled back
    assert not mem.is_complete and mem.resume_point == chunks[3].end
    mem.close()
    again = lib.open_or_create(info_for(), Config(), HashEmbedder())
    assert not again.is_complete and again.resume_point == chunks[3].end
    for c in chunks[4:]:
        again.add_chunk(c)
    again.finalize()
    ref = _build(Library(tmp_path / "ref"), make_stream(duration=600)[0])
    ref.finalize()
    assert again.counts() == ref.counts()
    assert [(e["start"], e["end"], e["transcript"]) for e in again.events("segment")] == \
           [(e["start"], e["end"], e["transcript"]) for e in ref.events("segment")]


def _die_inside_chunk(tmp_path, duration: float, committed: int) -> None:
    """A real crash: a subprocess commits ``committed`` chunks of a ``duration`` s stream into a library at
    ``tmp_path``, then dies (os._exit) inside the next chunk's transaction, after its keyframe JPEGs are written."""
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.memory.conftest import HashEmbedder, info_for, make_stream
        from videomind.config import Config
        from videomind.memory.library import Library
        chunks, _ = make_stream(duration={duration})
        mem = Library({str(tmp_path)!r}).open_or_create(info_for(), Config(), HashEmbedder())
        for c in chunks[:{committed}]:
            mem.add_chunk(c)
        mem._episodic.rollup = lambda *a, **k: os._exit(3)
        mem.add_chunk(chunks[{committed}])
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr


def test_process_killed_mid_chunk(tmp_path):
    """A real crash: the process dies inside the 4th chunk's transaction; the store reopens incomplete."""
    _die_inside_chunk(tmp_path, duration=600, committed=3)
    chunks, _ = make_stream(duration=600)
    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    assert not mem.is_complete and mem.resume_point == chunks[2].end
    assert mem.counts()["chunks"] == 3
    for c in chunks:
        mem.add_chunk(c)  # chunks 0-2 are skipped as already committed
    mem.finalize()
    hits = mem.search("pineapple", 3)
    assert hits[0].start <= NEEDLE_T[1] and hits[0].end >= NEEDLE_T[0]
    assert Library(tmp_path).list()[0]["complete"]


def test_incomplete_store_is_never_complete_on_disk(tmp_path):
    chunks, _ = make_stream(duration=300)
    mem = _build(Library(tmp_path), chunks)
    m = json.loads((mem.directory / "manifest.json").read_text())
    assert m["complete"] is False
    mem.finalize()
    m = json.loads((mem.directory / "manifest.json").read_text())
    assert m["complete"] is True and m["counts"]["docs"] > 0 and m["schema_version"] == 1
    assert m["models"]["text_embed"] == "hash-bow" and m["config_hash"]


@pytest.fixture()
def small_store(tmp_path):
    mem = _build(Library(tmp_path), make_stream(duration=180)[0])
    mem.finalize()
    mem.close()
    return mem.directory


def test_corrupt_manifest(small_store):
    (small_store / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match="rebuild"):
        VideoMemory.open(small_store, HashEmbedder())


def test_corrupt_database(small_store):
    for p in small_store.glob("memory.db*"):
        p.unlink()
    (small_store / "memory.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="--rebuild /videos/talk.mp4"):
        VideoMemory.open(small_store, HashEmbedder())


def test_truncated_database_rows(small_store):
    import sqlite3

    conn = sqlite3.connect(small_store / "memory.db")
    with conn:
        conn.execute("DELETE FROM vecs WHERE pos > 3")
    conn.close()
    with pytest.raises(StoreError, match="does not match its manifest"):
        VideoMemory.open(small_store, HashEmbedder())


def test_stale_vector_index_is_rebuilt(small_store):
    from videomind.memory.catalog import DocFilter

    (small_store / "docs.faiss").write_bytes(b"garbage")
    mem = VideoMemory.open(small_store, HashEmbedder())
    assert mem._catalog.index.ntotal == mem._catalog.n_vecs > 0
    # dense retrieval itself, not a BM25 hit that a search would return even with an empty index
    dense = mem._catalog.dense(mem._query_vec("secret password vault pineapple"), 3, DocFilter(("clip",)))
    assert dense, "dense retrieval found nothing"
    hit = mem._doc_hits(dense)[0]
    assert hit.start <= NEEDLE_T[1] and hit.end >= NEEDLE_T[0]
    assert mem.search("pineapple", 1)


def test_schema_mismatch(small_store):
    m = json.loads((small_store / "manifest.json").read_text())
    m["schema_version"] = 999
    (small_store / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="schema version 999"):
        VideoMemory.open(small_store, HashEmbedder())


def test_a_store_from_a_newer_version_is_not_called_corrupt(small_store):
    """Memory settings this version does not know: say a newer VideoMind made it (it was 'corrupt (TypeError)')."""
    m = json.loads((small_store / "manifest.json").read_text())
    m["config"]["memory"]["future_setting"] = 3
    (small_store / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="newer VideoMind made it") as err:
        VideoMemory.open(small_store, HashEmbedder())
    assert "future_setting" in str(err.value) and "corrupt" not in str(err.value)


def test_a_closed_store_says_so(small_store):
    mem = VideoMemory.open(small_store, HashEmbedder())
    assert mem.search("pineapple", 1)
    mem.close()
    mem.close()  # twice is fine
    for use in (lambda: mem.search("pineapple", 1), mem.counts, lambda: mem.about("Marie Curie")):
        with pytest.raises(StoreError, match="was closed: open it again"):
            use()


def test_embedder_mismatch(small_store, minilm):
    with pytest.raises(StoreError, match="text embedder"):
        VideoMemory.open(small_store, minilm)


def test_library_two_videos(tmp_path, minilm):
    lib = Library(tmp_path, embedder=minilm)
    a = _build(lib, make_stream(duration=180)[0], minilm, info_for("cooking.mp4", 180, "h1"))
    a.finalize()
    other = [c for c in make_stream(duration=180, seed=1)[0]]
    for c in other:  # video b has no password needle but has its own
        c.texts = [t for t in c.texts if "pineapple" not in t.text]
    from videomind.types import TimedText
    other[0].texts.append(TimedText(20.0, 24.0, "The treasure map is hidden under the blue lighthouse.", "speech"))
    b = _build(lib, other, minilm, info_for("travel.mp4", 180, "h2"))
    b.finalize()
    keys = [m["key"] for m in lib.list()]
    assert len(keys) == 2 and a.key in keys and b.key in keys
    assert store_key(info_for("cooking.mp4", 180, "h1"), Config()) == a.key
    hits = lib.search("what is the password", 3)
    assert hits[0].video == a.key and "pineapple" in hits[0].text
    hits = lib.search("where is the treasure map", 3)
    assert hits[0].video == b.key and "treasure" in hits[0].text
    assert lib.delete(b.key) and not lib.delete(b.key)
    assert [m["key"] for m in lib.list()] == [a.key]


def test_library_rebuild_replaces_the_old_store_only_when_finished(tmp_path):
    lib = Library(tmp_path)
    chunks = make_stream(duration=120)[0]
    mem = _build(lib, chunks)
    mem.finalize()
    key, before = mem.manifest["key"], mem.counts()
    mem.close()
    fresh = lib.open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)
    assert not fresh.is_complete and fresh.counts()["chunks"] == 0
    fresh.add_chunk(chunks[0])
    fresh.close()                                   # interrupted: the old memory is still there, whole
    old = lib.open(key, HashEmbedder())
    assert old.is_complete and old.counts() == before
    assert [(m["key"], bool(m.get("rebuild"))) for m in lib.list()] == [(key, True), (key, False)]  # both seen
    old.close()
    fresh = lib.open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)   # starts over
    assert fresh.counts()["chunks"] == 0
    for c in chunks:
        fresh.add_chunk(c)
    fresh.finalize()
    done = lib.finish_rebuild(fresh)
    assert done.directory == lib.path(key) and done.is_complete and done.counts() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".stage-cache") == [key]


def test_deleting_a_memory_deletes_its_interrupted_rebuild(tmp_path):
    """An interrupted --rebuild left .<key>.rebuild (gigabytes for a long video), which neither `memories` nor
    --delete could see: deleting the key removed the store and kept the rebuild."""
    lib = Library(tmp_path)
    chunks = make_stream(duration=120)[0]
    mem = _build(lib, chunks)
    mem.finalize()
    key = mem.manifest["key"]
    mem.close()
    fresh = lib.open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)
    fresh.add_chunk(chunks[0])
    fresh.close()  # interrupted
    side = tmp_path / f".{key}.rebuild"
    listed = lib.list()[0]
    assert listed["rebuild"] and listed["key"] == key and listed["dir"] == str(side)
    holder = subprocess.Popen([sys.executable, "-c", (  # a rebuild under way in another process is not deleted
        "import time; from videomind.memory.lock import WriterLock; "
        f"assert WriterLock({str(side)!r}).acquire() is None; print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="being ingested by another process"):
            lib.delete(key)
        assert side.is_dir() and lib.path(key).is_dir()  # neither is deleted while one is held
    finally:
        holder.kill()
        holder.wait()
    assert lib.delete(key) and not lib.delete(key)
    assert not side.exists() and not lib.path(key).exists() and lib.list() == []


def test_an_abandoned_rebuild_is_deleted_and_a_killed_one_can_be_deleted_alone(tmp_path):
    """A rebuild that will not finish left its .<key>.rebuild, listed under the memory's key, and deleting that key
    deleted the memory with it."""
    lib = Library(tmp_path)
    chunks = make_stream(duration=120)[0]
    mem = _build(lib, chunks)
    mem.finalize()
    key, before = mem.key, mem.counts()
    mem.close()
    side = tmp_path / f".{key}.rebuild"
    fresh = lib.open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)
    fresh.add_chunk(chunks[0])
    assert lib.abandon_rebuild(fresh) and not side.exists()
    assert [(m["name"], m["complete"]) for m in lib.list()] == [(key, True)]
    killed = lib.open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)
    killed.add_chunk(chunks[0])
    killed.close()  # as a killed process leaves it: not abandoned
    assert [(m["name"], m["key"], bool(m.get("rebuild"))) for m in lib.list()] == [
        (f"{key}.rebuild", key, True), (key, key, False)]
    assert lib.delete(f"{key}.rebuild") == [side] and not lib.delete(f"{key}.rebuild")
    assert lib.open(key, HashEmbedder()).counts() == before
    done = lib.open_or_create(info_for(), Config(), HashEmbedder(), rebuild=True)  # a finished one is kept
    for c in chunks:
        done.add_chunk(c)
    done.finalize()
    assert not lib.abandon_rebuild(done) and side.is_dir()


def test_a_store_whose_embedder_fails_leaves_nothing_behind(tmp_path):
    class NoGpu(HashEmbedder):
        @property
        def dim(self):
            raise RuntimeError("Found no NVIDIA driver on your system")

    with pytest.raises(RuntimeError, match="NVIDIA"):
        Library(tmp_path).open_or_create(info_for(), Config(), NoGpu())
    assert list(tmp_path.iterdir()) == []


def test_semantic_about_when_relations(built_store):
    _, mem, _, _ = built_store
    about = mem.about("Curie")
    assert about["name"] == "Marie Curie" and about["count"] == 3
    assert about["spans"] == [(52.0, 61.0), (402.0, 406.0)]
    assert any("radium" in f["text"] for f in about["facts"])
    assert mem.when("marie curie") == about["spans"]
    rel = {r["entity"]: r for r in mem.relations("Marie Curie")}
    assert "Paris" in rel and rel["Paris"]["count"] == 2
    assert mem.when("Rosalind") and mem.when("Rosalind")[0][0] == pytest.approx(340.0)
    unknown = mem.about("zeppelin")
    assert unknown["entity"] is None and unknown["spans"] == []
    hits = mem.search_semantic("the scientist who discovered radium", 5)
    assert any("Marie Curie" in h.text for h in hits) and all(h.source == "entity" for h in hits)


def test_semantic_consolidates_aliases(tmp_path, minilm):
    from videomind.types import Chunk, TimedText

    mem = Library(tmp_path).open_or_create(info_for(), Config(), minilm)
    mem.add_chunk(Chunk(0, 0, 60, [TimedText(1, 4, "Professor Ada Lovelace wrote the first program.", "speech"),
                                   TimedText(30, 34, "Lovelace worked with Charles Babbage.", "speech")]))
    mem.add_chunk(Chunk(1, 60, 120, [TimedText(70, 74, "Ada Lovelace's notes describe loops.", "speech")]))
    ent = mem.about("Lovelace")
    assert ent["count"] == 3 and ent["spans"] == [(1, 4), (30, 34), (70, 74)]
    assert "Charles Babbage" in [r["entity"] for r in ent["relations"]]


def test_visual_search(built_store):
    _, mem, _, _ = built_store
    kfs = mem.keyframes_between(0, 600)
    target = kfs[7]
    hits = mem.search_visual(target.embedding, 3)
    assert hits[0].start == target.t and hits[0].source == "visual" and hits[0].scale == "frame"
    in_window = mem.search_visual(target.embedding, 3, t0=target.t + 1)
    assert all(h.start >= target.t + 1 for h in in_window)
    with pytest.raises(CapabilityUnavailable, match="CLIP"):
        mem.search_visual("a red car", 3)
    with pytest.raises(CapabilityUnavailable):
        mem.search_visual(np.zeros((8, 8, 3), np.uint8), 3)
    mem.text_to_image = lambda text: target.embedding
    try:
        assert mem.search_visual("a red car", 1)[0].start == target.t
    finally:
        mem.text_to_image = None


def test_summarizer_hook(tmp_path):
    calls = []

    def summarizer(text, scale):
        calls.append(scale)
        return f"LLM summary of a {scale}"

    lib = Library(tmp_path)
    mem = lib.open_or_create(info_for(), Config(), HashEmbedder(), summarizer=summarizer)
    for c in make_stream(duration=400)[0]:
        mem.add_chunk(c)
    mem.finalize()
    assert set(calls) == {"segment", "chapter"}
    assert all(e["summary"] == "LLM summary of a segment" for e in mem.events("segment"))
    assert mem.events("clip")[0]["summary"]  # clips keep the extractive summary


def test_dependency_direction():
    root = Path(__file__).resolve().parents[2] / "memory"
    for p in root.glob("*.py"):
        src = p.read_text()
        for banned in ("videomind.agents", "videomind.ingest", "videomind.api", "videomind.backends"):
            assert banned not in src, f"{p.name} imports {banned}"


def test_visual_clip_scale(built_store):
    _, mem, _, _ = built_store
    target = mem.keyframes_between(0, 600)[4]
    hits = mem.search_visual(target.embedding, 3, scale="clip")
    assert hits[0].scale == "clip" and hits[0].start <= target.t <= hits[0].end


def test_entity_extractor_hook(tmp_path):
    from videomind.types import Chunk, TimedText

    def extractor(text, source):
        if "broken" in text:
            raise ValueError("model output unparsable")
        return [("the Vault", "object")] if "vault" in text else []

    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder(), entity_extractor=extractor)
    mem.add_chunk(Chunk(0, 0, 60, [TimedText(1, 4, "Open the vault at dawn.", "speech"),
                                   TimedText(9, 12, "A broken sentence about Grace Hopper.", "speech")]))
    assert mem.about("vault")["kind"] == "object"
    assert mem.about("Grace Hopper")["count"] == 1  # offline fallback for the failed call


def test_large_store_switches_to_ivf(tmp_path, monkeypatch):
    import faiss

    import videomind.memory.writing as writing_mod

    monkeypatch.setattr(writing_mod, "IVF_THRESHOLD", 50)
    mem = _build(Library(tmp_path), make_stream(duration=300)[0])
    mem.finalize()
    ref = [h.id for h in mem.search("pineapple password", 3, scale="clip")]
    mem.close()
    again = VideoMemory.open(mem.directory, HashEmbedder())
    assert isinstance(again._catalog.index.index, faiss.IndexIVF)
    assert [h.id for h in again.search("pineapple password", 3, scale="clip")][0] == ref[0]


def test_describe_and_delete_video(tmp_path):
    lib = Library(tmp_path)
    mem = _build(lib, make_stream(duration=120)[0])
    mem.finalize()
    lines = mem.describe()
    assert any("complete" in x for x in lines) and any("clips" in x for x in lines)
    mem.close()
    assert lib.delete_video(info_for(), Config()) and lib.list() == []


def test_resumed_run_renumbering_chunks(tmp_path):
    chunks, _ = make_stream(duration=240)
    lib = Library(tmp_path)
    mem = _build(lib, chunks[:2])
    mem.close()
    again = lib.open_or_create(info_for(), Config(), HashEmbedder())
    for i, c in enumerate(chunks[2:]):  # a resumed pipeline that counts from 0 again
        c.index = i
        again.add_chunk(c)
    again.finalize()
    assert again.counts()["chunks"] == 4 and again.resume_point == 240


def test_keyframe_dim_change_is_not_fatal(tmp_path):
    from videomind.types import Chunk, Keyframe

    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    img = np.zeros((8, 8, 3), np.uint8)
    mem.add_chunk(Chunk(0, 0, 60, keyframes=[Keyframe(1, 0, img, np.ones(4, np.float32)),
                                             Keyframe(2, 0, img, np.ones(6, np.float32))]))
    assert len(mem.keyframes_between(0, 60)) == 2 and len(mem.search_visual(np.ones(4), 5)) == 1


def test_ivf_store_time_filtered_dense_search_is_exact(tmp_path, monkeypatch):
    """Above IVF_THRESHOLD the index probes 32 lists; a selective filter must still see every allowed vector
    (the allowed docs sit in lists the query does not probe)."""
    import faiss

    import videomind.memory.writing as writing_mod
    from videomind.memory.catalog import DocFilter
    from videomind.memory.vectors import VectorIndex, from_blob

    monkeypatch.setattr(writing_mod, "IVF_THRESHOLD", 1000)
    mem = _build(Library(tmp_path), make_stream(duration=3 * 3600)[0], info=info_for(duration=3 * 3600))
    mem.finalize()
    mem.close()
    ivf = VideoMemory.open(mem.directory, HashEmbedder())
    assert isinstance(ivf._catalog.index.index, faiss.IndexIVF)
    assert ivf._catalog.index.index.nprobe < ivf._catalog.index.index.nlist
    exact = VideoMemory.open(mem.directory, HashEmbedder())
    exact._catalog.index = VectorIndex(exact.dim)
    exact._catalog.index.add(np.stack([from_blob(b) for (b,) in exact._conn.execute(
        "SELECT vec FROM vecs ORDER BY pos")]))
    rng = np.random.default_rng(0)
    for q in ["secret password vault", "glaciers carve valleys", "bakery croissants", "river floods autumn"]:
        qvec = ivf._query_vec(q)
        for t0 in rng.uniform(0, 3 * 3600 - 120, 5):
            f = DocFilter(("clip",), None, float(t0), float(t0) + 60)
            want = dict(exact._catalog.dense(qvec, 50, f))  # every clip in the window
            assert len(want) >= 3
            assert dict(ivf._catalog.dense(qvec, 50, f)) == pytest.approx(want)


def test_about_fallback_treats_like_wildcards_literally(tmp_path):
    from videomind.types import Chunk, TimedText

    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    mem.add_chunk(Chunk(0, 0, 60, [TimedText(1, 4, "the shirt is 100% cotton", "speech"),
                                   TimedText(9, 12, "nothing to see here", "speech"),
                                   TimedText(20, 24, "use snake_case names", "speech")]))
    for q, want in [("%", [1]), ("100%", [1]), ("_", [20]), ("snake_case", [20]), ("o%t", []), ("e_s", []),
                    ("\\", [])]:
        assert [f["start"] for f in mem.about(q)["facts"]] == want, q
    assert mem.about("cotton\x00zzz")["facts"] == []  # a NUL does not cut the pattern short ("%cotton")


def test_rolled_back_chunk_leaves_no_thumbnails(tmp_path, monkeypatch):
    chunks, _ = make_stream(duration=300)
    mem = _build(Library(tmp_path), chunks[:2])

    def boom(*a, **k):
        raise RuntimeError("simulated crash after the thumbnails were written")

    monkeypatch.setattr(mem._semantic, "ingest", boom)
    with pytest.raises(RuntimeError):
        mem.add_chunk(chunks[2])
    monkeypatch.undo()
    files = sorted(p.name for p in (mem.directory / "thumbnails").iterdir())
    rows = sorted(Path(r[0]).name for r in mem._conn.execute("SELECT thumbnail FROM keyframes"))
    assert files == rows and rows


def test_thumbnails_off_writes_no_jpegs(tmp_path):
    """ingest.thumbnails=false: keyframes and their embeddings are stored, their images are not."""
    cfg = Config.from_dict({}, ["ingest.thumbnails=false"])
    mem = Library(tmp_path).open_or_create(info_for(), cfg, HashEmbedder())
    for c in make_stream(duration=120)[0]:
        mem.add_chunk(c)
    assert mem.counts()["keyframes"] > 0 and list((mem.directory / "thumbnails").iterdir()) == []
    assert all(kf.thumbnail is None for kf in mem.keyframes_between(0, 120))


def _thumbnail_files(directory: Path) -> set[str]:
    return {p.name for p in (directory / "thumbnails").iterdir()}


def _thumbnail_rows(mem) -> set[str]:
    return {Path(r[0]).name for r in mem._conn.execute("SELECT thumbnail FROM keyframes WHERE thumbnail NOT NULL")}


def test_thumbnails_orphaned_by_a_kill_are_swept_by_the_next_writer(tmp_path, caplog):
    """The process dies after writing a chunk's keyframe JPEGs, before its rows commit: the next process that
    takes the writer lock removes those JPEGs (and nothing else); a reader removes nothing."""
    _die_inside_chunk(tmp_path, duration=300, committed=2)
    chunks, _ = make_stream(duration=300)
    directory = Library(tmp_path).path(Library(tmp_path).list()[0]["key"])
    thumbs = directory / "thumbnails"
    (thumbs / "kf_0000098.jpg.tmp").write_bytes(b"")  # killed inside write_thumbnail, before its rename
    keep = {"cover.jpg", "kf_12.jpg", "kf_0000099.png", "notes.txt"}  # not named the way the store names them
    for name in keep:
        (thumbs / name).write_bytes(b"not ours")
    (directory / "kf_0000099.jpg").write_bytes(b"not in thumbnails/")

    reader = VideoMemory.open(directory, HashEmbedder())
    committed = _thumbnail_rows(reader)
    orphans = _thumbnail_files(directory) - committed - keep
    assert len(orphans) > 1 and "kf_0000098.jpg.tmp" in orphans and committed
    assert reader.search("pineapple", 3) and reader.keyframes_between(0, 300)
    reader.close()
    assert _thumbnail_files(directory) == committed | orphans | keep  # a read-only open removes nothing

    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    assert _thumbnail_files(directory) == committed | orphans | keep  # opening is not writing yet
    with caplog.at_level("INFO", logger="videomind.memory"):
        mem.add_chunk(chunks[0])  # already committed: takes the writer lock, stores nothing
    assert _thumbnail_files(directory) == committed | keep
    assert all(Path(kf.thumbnail).is_file() for kf in mem.keyframes_between(0, 300))
    assert (directory / "kf_0000099.jpg").is_file()
    assert any(f"{len(orphans)} orphaned thumbnail" in rec.getMessage() for rec in caplog.records), caplog.text
    for c in chunks[2:]:
        mem.add_chunk(c)
    mem.finalize()
    assert _thumbnail_files(directory) == _thumbnail_rows(mem) | keep
    assert all(Path(kf.thumbnail).is_file() for kf in mem.keyframes_between(0, 300))


def test_a_handle_joining_its_process_writer_lock_sweeps_nothing(tmp_path):
    """Handles of one process share the writer lock, and another handle may be between writing a chunk's JPEGs
    and committing its rows: only the handle that takes the lock for the process sweeps."""
    chunks, _ = make_stream(duration=300)
    first = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    first.add_chunk(chunks[0])
    in_flight = first.directory / "thumbnails" / "kf_9999999.jpg"
    in_flight.write_bytes(b"")  # as if ``first`` were mid-chunk on another thread
    second = VideoMemory.open(first.directory, HashEmbedder())
    second.add_chunk(chunks[1])
    assert in_flight.is_file()
    first.close()
    second.close()
    third = VideoMemory.open(first.directory, HashEmbedder())
    third.add_chunk(chunks[1])  # takes the lock afresh: nothing of this store is being written now
    assert not in_flight.is_file() and _thumbnail_files(third.directory) == _thumbnail_rows(third)


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_library_search_takes_k_as_a_count_even_with_no_store(tmp_path, k):
    """Each store's search checks k, but a library with no complete store never reached one: merged[:-1] and
    merged[:1.5] were the answers."""
    with pytest.raises(ValueError, match="k must be an integer"):
        Library(tmp_path).search("anything", k)
