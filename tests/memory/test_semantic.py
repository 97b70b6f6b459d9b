"""Semantic memory: entity counts, alias merging, facts."""

from __future__ import annotations

import pytest

from tests.memory.conftest import HashEmbedder, info_for
from videomind.config import Config
from videomind.memory.library import Library
from videomind.types import Chunk, TimedText


def speech(t, text):
    return TimedText(t, t + 3, text, "speech")


@pytest.fixture()
def curies(tmp_path, minilm):
    mem = Library(tmp_path).open_or_create(info_for(), Config(), minilm)
    mem.add_chunk(Chunk(0, 0, 60, [speech(1, "We flew to Paris for the conference."),
                                   speech(20, "Marie Curie worked with Pierre Curie."),
                                   speech(40, "Curie, Marie Curie, was born in Warsaw.")]))
    mem.add_chunk(Chunk(1, 60, 120, [speech(90, "Pierre Curie died in 1906.")]))
    return mem


def test_entity_count_is_its_number_of_mentions(curies):
    rows = curies._conn.execute("SELECT e.name, e.count, (SELECT count(*) FROM mentions m WHERE m.entity = e.id) "
                                "FROM entities e").fetchall()
    assert rows and [(n, c) for n, c, m in rows if c != m] == []
    assert curies.about("Marie Curie")["count"] == 2


def test_ambiguous_surname_and_phrases_do_not_become_aliases(curies):
    marie, pierre = curies.about("Marie Curie"), curies.about("Pierre Curie")
    assert marie["entity"] != pierre["entity"]
    assert marie["aliases"] == [] and pierre["aliases"] == []  # not "curie", "marie curie worked", ...
    assert curies.about("Curie")["entity"] not in (marie["entity"], pierre["entity"])


def test_facts_are_deduplicated_before_the_limit(tmp_path):
    """A sign read every second must not fill the limit and hide the later spoken facts."""
    mem = Library(tmp_path).open_or_create(info_for(), Config(), HashEmbedder())
    ocr = [TimedText(float(t), t + 1.0, "ROSALIND BAKERY", "ocr") for t in range(30)]
    mem.add_chunk(Chunk(0, 0, 60, ocr + [speech(40, "Rosalind Bakery was founded by Grace Hopper.")]))
    mem.add_chunk(Chunk(1, 60, 120, [speech(70, "Rosalind Bakery closed in 2020.")]))
    facts = mem.about("Rosalind Bakery")["facts"]
    assert [(f["start"], f["text"]) for f in facts] == [
        (0.0, "ROSALIND BAKERY"), (40, "Rosalind Bakery was founded by Grace Hopper."),
        (70, "Rosalind Bakery closed in 2020.")]
    assert len(mem.about("Rosalind Bakery", limit=2)["facts"]) == 2


@pytest.fixture()
def curie_years(tmp_path, minilm):
    """Marie Curie named at 0:20 (with Paris) and again at 5:00 (with Warsaw) and 9:00."""
    mem = Library(tmp_path).open_or_create(info_for(), Config(), minilm)
    mem.add_chunk(Chunk(0, 0, 60, [speech(20, "Marie Curie moved to Paris.")]))
    mem.add_chunk(Chunk(1, 60, 600, [speech(300, "Marie Curie visited Warsaw again."),
                                     speech(540, "Marie Curie visited Warsaw once more.")]))
    return mem


def _curie(hits):
    return next(h for h in hits if h.text.startswith("Marie Curie"))


def test_semantic_search_in_a_window_counts_only_its_mentions(curie_years):
    whole = _curie(curie_years.search_semantic("Marie Curie", 5))
    assert (whole.start, whole.end) == (20, 543) and "mentioned 3x" in whole.text
    early = _curie(curie_years.search_semantic("Marie Curie", 5, t1=100))
    assert (early.start, early.end) == (20, 23) and "mentioned 1x" in early.text
    assert "related: Paris" in early.text and "Warsaw" not in early.text and "moved to Paris" in early.text
    late = _curie(curie_years.search_semantic("Marie Curie", 5, t0=200))
    assert (late.start, late.end) == (300, 543) and "mentioned 2x" in late.text
    assert "related: Warsaw" in late.text and "Paris" not in late.text
    # entities with no mention in the window are not returned, whatever their similarity
    assert all(h.end <= 100 for h in curie_years.search_semantic("Warsaw", 5, t1=100))
    assert not curie_years.search_semantic("Marie Curie", 5, t0=700)


def test_windowed_relations_and_facts(curie_years):
    sem, conn = curie_years._semantic, curie_years._conn
    eid = sem.resolve("Marie Curie").id
    assert [r["entity"] for r in sem.relations(conn, eid)] == ["Warsaw", "Paris"]
    assert [(r["entity"], r["count"]) for r in sem.relations(conn, eid, t0=250, t1=400)] == [("Warsaw", 1)]
    assert [f["start"] for f in sem.facts(conn, eid, t0=250)] == [300, 540]
