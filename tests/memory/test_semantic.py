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
