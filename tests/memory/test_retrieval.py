"""Retrieval over a built 10-minute store: needles by paraphrase and keyword, filters, scales, MMR."""

from __future__ import annotations

import numpy as np
import pytest

from tests.memory.conftest import NEEDLE_T, SIGN_T


def covers(hit, span, slack=0.0):
    return hit.start <= span[1] + slack and hit.end >= span[0] - slack


@pytest.mark.parametrize("query", [
    "what is the code word to open the safe",
    "which fruit is the secret password",
])
def test_needle_by_paraphrase_dense(built_store, query):
    _, mem, _, _ = built_store
    hits = mem.search(query, 5, scale="clip", hybrid=False)
    assert any(covers(h, NEEDLE_T) for h in hits), hits
    assert covers(hits[0], NEEDLE_T), hits[0]


def test_needle_by_keyword_bm25(built_store):
    from videomind.memory.catalog import DocFilter
    from videomind.memory.retrieval import bm25

    _, mem, _, _ = built_store
    ranked = bm25(mem._conn, "pineapple", DocFilter(("clip",)), 5)
    assert ranked, "BM25 found nothing"
    hits = mem._doc_hits(ranked)
    assert covers(hits[0], NEEDLE_T)
    hits = mem.search("pineapple", 5)
    assert covers(hits[0], NEEDLE_T)


def test_hybrid_multiscale_top1(built_store):
    _, mem, _, _ = built_store
    hits = mem.search("the password for the vault", 5)
    assert covers(hits[0], NEEDLE_T)
    assert all(h.scale == "clip" for h in hits)
    assert len({h.id for h in hits}) == len(hits)


def test_time_filters(built_store):
    _, mem, _, _ = built_store
    after = mem.search("password for the vault", 5, t0=200)
    assert after and all(h.end >= 200 for h in after)
    assert not any(covers(h, NEEDLE_T) for h in after)
    before = mem.search("password for the vault", 5, before=100)
    assert before and all(h.start <= 100 for h in before)
    window = mem.search("password for the vault", 5, t0=100, t1=150)
    assert covers(window[0], NEEDLE_T)
    assert all(h.end >= 100 and h.start <= 150 for h in window)


def test_source_filters(built_store):
    _, mem, _, _ = built_store
    ocr = mem.search("bakery", 5, sources=["ocr"])
    assert ocr and all(h.source == "ocr" for h in ocr)
    assert covers(ocr[0], SIGN_T) and "ROSALIND" in ocr[0].text
    speech = mem.search("bakery rosalind", 5, sources=["speech"])
    assert speech and all(h.source == "speech" for h in speech)


@pytest.mark.parametrize("scale", ["segment", "chapter"])
def test_coarse_scales(built_store, scale):
    _, mem, _, _ = built_store
    hits = mem.search("secret password vault", 3, scale=scale)
    assert hits and all(h.scale == scale and h.source == "summary" for h in hits)
    assert covers(hits[0], NEEDLE_T)
    kids = mem.children(hits[0].event)
    assert kids and kids[0]["start"] == hits[0].start and kids[-1]["end"] == hits[0].end


def test_mmr_diversifies(built_store, minilm):
    _, mem, _, _ = built_store

    def redundancy(hits):  # the closest pair of hits (cosine of their texts)
        v = np.asarray(minilm.embed([h.text for h in hits]))
        sims = v @ v.T
        return max(sims[i, j] for i in range(len(v)) for j in range(i + 1, len(v)))

    plain = mem.search("Marie Curie", 4, scale="clip", mmr=None)
    div = mem.search("Marie Curie", 4, scale="clip", mmr=0.3)
    assert plain and div and plain[0].id == div[0].id
    assert len({(h.start, h.end) for h in div}) == len(div)
    # the plain top 4 repeats the Curie sentences; MMR swaps near-duplicates for other clips
    assert [h.id for h in div] != [h.id for h in plain]
    assert redundancy(div) < redundancy(plain)


def test_texts_and_keyframes_between(built_store):
    import os

    _, mem, _, _ = built_store
    texts = mem.texts_between(120, 130)
    assert any("pineapple" in t.text for t in texts)
    assert [t.start for t in texts] == sorted(t.start for t in texts)
    assert all(t.source == "ocr" for t in mem.texts_between(330, 350, sources=["ocr"]))
    kfs = mem.keyframes_between(0, 600)
    assert kfs and all(k.image is None and os.path.isabs(k.thumbnail) and os.path.isfile(k.thumbnail)
                       for k in kfs)
    assert all(0 <= k.t <= 600 for k in kfs)


def test_hit_to_evidence(built_store):
    _, mem, _, _ = built_store
    h = mem.search("pineapple", 1)[0]
    ev = h.to_evidence()
    assert (ev.start, ev.end, ev.text, ev.source) == (h.start, h.end, h.text, h.source)


def test_fusion_units():
    from videomind.memory.retrieval import mmr, rrf

    fused = rrf([[1, 2, 3], [3, 1]], k=60)
    assert max(fused, key=fused.get) == 1 and fused[3] > fused[2]
    vecs = {1: np.array([1.0, 0]), 2: np.array([1.0, 0]), 3: np.array([0, 1.0])}
    spans = {1: (0, 10), 2: (20, 30), 3: (40, 50)}
    picked = mmr([(1, 1.0), (2, 0.99), (3, 0.5)], vecs, spans, 2, lam=0.5)
    assert [d for d, _ in picked] == [1, 3]  # 2 duplicates 1
    assert [d for d, _ in mmr([(1, 1.0), (2, 0.99), (3, 0.5)], vecs, spans, 2, lam=1.0)] == [1, 2]


def test_dense_only_and_hybrid_differ_on_keyword(built_store):
    _, mem, _, _ = built_store
    hyb = mem.search("ROSALIND", 3, scale="clip", hybrid=True, mmr=None)
    assert "ROSALIND" in hyb[0].text
    dense = mem.search("ROSALIND", 3, scale="clip", hybrid=False, mmr=None)
    assert dense and all(h.scale == "clip" for h in dense)
    # dense-only scores are cosines; fused scores are RRF sums (at most one 1 / (k + 1) per list)
    rrf_max = 2.0 / (mem.config.rrf_k + 1)
    assert all(h.score <= rrf_max for h in hyb)
    assert dense[0].score > rrf_max


def test_ocr_misreads_still_match_keywords(tmp_path):
    from tests.memory.conftest import HashEmbedder, info_for
    from videomind.config import Config
    from videomind.memory.library import Library
    from videomind.memory.text import ocr_variants
    from videomind.types import Chunk, TimedText

    assert ocr_variants("RO0M 22") == "room" and ocr_variants("EXIT 42") == ""
    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    mem.add_chunk(Chunk(0, 0, 60, [TimedText(30, 34, "RO0M 47", "ocr"), TimedText(5, 9, "Hello there.", "speech")]))
    mem.finalize()
    hits = mem.search("room", 3, sources=["ocr"])
    assert hits and hits[0].text == "RO0M 47"


def test_one_keyword_pass_filtered_in_memory_equals_filtered_sql(built_store):
    """Multi-scale search scores BM25 once and filters per level in memory; that must rank exactly as FTS5 with
    the filter in SQL does."""
    from videomind.memory.catalog import DocFilter
    from videomind.memory.retrieval import bm25, bm25_all, filter_ranked

    _, mem, _, _ = built_store
    filters = [DocFilter(("clip",)), DocFilter(("segment",)), DocFilter(("chapter",)),
               DocFilter(("clip",), ("speech",), 30.0, 400.0), DocFilter(("clip",), None, None, None, (1, 2, 3))]
    for q in ["secret password pineapple", "glacier", "the", "bakery river mountain"]:
        lex = bm25_all(mem._conn, q)
        for f in filters:
            want = bm25(mem._conn, q, f, 10)
            got = filter_ranked(mem._catalog, lex, f, 10)
            assert [round(s, 9) for _, s in got] == [round(s, 9) for _, s in want]
            assert {d for d, _ in got} == {d for d, _ in want}
    assert any(bm25(mem._conn, "secret password pineapple", f, 10) for f in filters)


def test_mmr_with_negative_scores_keeps_the_relevance_order():
    """Raw cosines can all be negative; dividing by the (negative) best score used to reverse the order."""
    from videomind.memory.retrieval import mmr

    vecs = {1: np.array([1.0, 0, 0]), 2: np.array([0, 1.0, 0]), 3: np.array([0, 0, 1.0])}
    spans = {1: (0, 10), 2: (20, 30), 3: (40, 50)}
    ranked = [(1, -0.5), (2, -0.6), (3, -0.9)]
    assert [d for d, _ in mmr(ranked, vecs, spans, 3, lam=0.7)] == [1, 2, 3]
    assert [d for d, _ in mmr([(1, 0.2), (2, 0.2)], vecs, spans, 2)] == [1, 2]  # equal scores: no division by 0


@pytest.mark.parametrize("scale", [None, "clip", "segment", "chapter"])
def test_inverted_time_window_is_empty(built_store, scale):
    """t0 > t1 is an empty window: nothing overlaps it (a chapter spanning both bounds used to be returned)."""
    from videomind.memory.catalog import DocFilter

    _, mem, _, _ = built_store
    assert mem.search("password for the vault", 5, scale=scale, t0=200, t1=100) == []
    assert mem.search("password for the vault", 5, scale=scale, before=100, after=200) == []
    assert mem._catalog.doc_mask(DocFilter(t0=200, t1=100)).sum() == 0
    assert mem.search("password for the vault", 5, scale=scale, t0=127, t1=127)  # a point is not empty


def test_unicode_keywords_match(tmp_path):
    from tests.memory.conftest import HashEmbedder, info_for
    from videomind.config import Config
    from videomind.memory.catalog import DocFilter
    from videomind.memory.library import Library
    from videomind.memory.retrieval import bm25
    from videomind.types import Chunk, TimedText

    mem = Library(tmp_path).open_or_create(info_for(duration=120), Config(), HashEmbedder())
    mem.add_chunk(Chunk(0, 0, 60, [TimedText(1, 4, "We met at the café Müller in Zürich.", "speech"),
                                   TimedText(12, 15, "José García and Zoë Saldaña arrived late.", "speech"),
                                   TimedText(22, 25, "東京タワーは夜に光る", "speech"),
                                   TimedText(42, 45, "The naïve approach fails.", "speech")]))
    mem.finalize()
    for q, start in [("café", 1), ("Müller", 1), ("Zürich", 1), ("cafe", 1), ("José", 12), ("García", 12),
                     ("東京タワーは夜に光る", 22), ("東京", 22), ("タワー", 22), ("夜に光る", 22),
                     ("naïve", 42)]:
        ranked = bm25(mem._conn, q, DocFilter(("clip",)), 5)
        assert ranked, q
        assert mem._doc_hits(ranked)[0].start <= start <= mem._doc_hits(ranked)[0].end, q
    about = mem.about("José García")
    assert about["entity"] is not None and about["name"] == "José García"
    assert "Zoë Saldaña" in [e["name"] for e in mem.entities()]


def test_a_store_being_written_finds_what_no_clip_holds_yet(tmp_path, minilm):
    """A recording being followed: what was said in the last ~15 s sits in no closed clip (a clip closes once 1.5
    clip lengths past its start are covered), and search must still find it, ranked by its similarity among the
    clips; once the store is complete it is an ordinary clip."""
    from videomind.config import Config
    from videomind.memory.library import Library
    from videomind.types import Chunk, Shot, TimedText, VideoInfo

    said = [(5.0, "Good morning, we start with the budget review."),
            (100.0, "The budget for marketing is twelve thousand."),
            (200.0, "Now the hiring plan for next quarter."),
            (290.0, "Finally we agreed to move the product launch to June.")]
    info = VideoInfo("desk-cam", 0.0, 320, 180, 0.0, True, content_hash="live")
    mem = Library(tmp_path).open_or_create(info, Config(), minilm)
    for i, c0 in enumerate(range(0, 300, 30)):
        texts = [TimedText(t, t + 4.0, s, "speech") for t, s in said if c0 <= t < c0 + 30]
        mem.add_chunk(Chunk(i, float(c0), float(c0 + 30), texts, [], [Shot(0, float(c0), float(c0 + 30))]))
    assert not mem.is_complete and mem.texts_between(280, 300)
    assert mem._conn.execute("SELECT count(*) FROM texts WHERE clip IS NULL").fetchone()[0] == 1  # the newest
    for kwargs in ({}, {"scale": "clip"}, {"t0": 250.0}, {"sources": ["speech"]}):
        hits = mem.search("product launch June", 3, **kwargs)
        assert hits[0].start == 290.0 and "product launch" in hits[0].text, (kwargs, hits)
        assert hits[0].id.startswith("open:speech") and len(hits) <= 3
    assert mem.dense_scores("product launch June", hits[:1])[0] > 0.5
    assert not any(h.start == 290.0 for h in mem.search("product launch June", 3, t1=250.0))
    assert not any(h.start == 290.0 for h in mem.search("product launch June", 3, sources=["ocr"]))
    budget = mem.search("marketing budget", 2)
    assert budget[0].start == 100.0 and len(budget) == 2  # ranked in by similarity, not put first
    mem.finalize()
    hits = mem.search("product launch June", 3)
    assert hits[0].start == 290.0 and hits[0].id.startswith("clip:")
    mem.close()


def test_inverted_time_window_is_empty_for_rows_in_no_clip(tmp_path):
    """Start after end is an empty window for the texts no clip holds yet too: t0=174, t1=171 returned the open
    row of 170.5-174.5 (it spans both bounds), where clip docs and events return nothing."""
    from tests.memory.conftest import HashEmbedder, info_for, make_stream
    from videomind.config import Config
    from videomind.memory.library import Library

    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    for c in make_stream(duration=600)[0][:3]:
        mem.add_chunk(c)
    query = "Glaciers carve deep valleys"  # said at 170.5-174.5, in no clip yet
    assert mem.search(query, 5, t0=171, t1=174)[0].id == "open:speech@170.5"
    for kw in ({"t0": 174, "t1": 171}, {"t0": 174, "t1": 171, "scale": "clip"}, {"after": 174, "before": 171}):
        assert mem.search(query, 5, **kw) == [], kw
    assert mem.events("clip", 174, 171) == []
    mem.close()


def test_a_long_question_still_matches_its_last_keyword(tmp_path):
    """A 355-character question that names the video's topics first and the needle last: only the first 32
    content words were searched, and 'pineapple' was not among them."""
    from tests.memory.conftest import HashEmbedder, info_for, make_stream
    from videomind.config import Config
    from videomind.memory.library import Library
    from videomind.memory.retrieval import bm25_all

    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    for c in make_stream(duration=600)[0]:
        mem.add_chunk(c)
    mem.finalize()
    question = ("Context for my question: earlier speakers discussed weather mountains budget running shoes river "
                "valley chess orchestra houseplants coast volcanic soil goalkeeper penalty bread dough museum "
                "honeybees bridge storms cat windowsill students poems satellite basil lighthouse sailboat library "
                "glaciers bakery croissants oven. Which clip mentions the pineapple?")
    needle = {d for (d,) in mem._conn.execute("SELECT id FROM docs WHERE text LIKE '%pineapple%'")}
    ids, _ = bm25_all(mem._conn, question)
    assert needle and needle <= set(ids.tolist())  # ranked below the clips of the topics it names, as it should
    unsaid = " ".join(f"topic{i}" for i in range(40))  # words the video never says count for nothing
    ids, _ = bm25_all(mem._conn, f"{unsaid} and then the pineapple?")
    assert set(ids.tolist()) == {d for (d,) in mem._conn.execute(  # the needle's clip, segment and chapter
        "SELECT rowid FROM docs_fts WHERE docs_fts MATCH 'pineapple'")}
    mem.close()


def test_every_search_verb_takes_k_as_a_count(tmp_path):
    """k is an integer >= 1 or None (the configured top_k) everywhere: search(k=0) returned top_k hits,
    search_semantic(k=-1) all but the last, and k=1.5 failed in a slice ('slice indices must be integers')."""
    from tests.memory.conftest import HashEmbedder, info_for, make_stream
    from videomind.config import Config
    from videomind.memory.library import Library

    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    for c in make_stream(duration=600)[0]:
        mem.add_chunk(c)
    mem.finalize()
    frame = np.ones(16, np.float32)
    verbs = {"search": lambda k: mem.search("the train to the coast", k),
             "search clip": lambda k: mem.search("the train to the coast", k, scale="clip"),
             "search_semantic": lambda k: mem.search_semantic("Marie Curie Paris", k),
             "search_visual": lambda k: mem.search_visual(frame, k),
             "search_visual clip": lambda k: mem.search_visual(frame, k, scale="clip")}
    for name, verb in verbs.items():
        for bad in (0, -1, 1.5, True, "3", float("nan")):
            with pytest.raises(ValueError, match="k must be an integer >= 1"):
                verb(bad)
        assert len(verb(None)) == len(verb(mem.config.top_k)), name
        assert len(verb(np.int64(2))) == 2 and len(verb(1)) == 1, name
    mem.close()
