"""Text helpers: words in any script, FTS5 queries, entity candidates with accented capitals."""

from __future__ import annotations

from videomind.memory.text import entity_candidates, fts_query, norm_key, tokens


def test_tokens_keep_non_ascii_letters():
    assert tokens("We met at the café Müller in Zürich.") == ["we", "met", "at", "the", "café", "müller", "in",
                                                               "zürich"]
    assert tokens("naïve Ørsted snake_case") == ["naïve", "ørsted", "snake", "case"]
    assert fts_query("Müller") == '"müller"'
    assert fts_query("café naïve") == '"café" OR "naïve"'
    assert norm_key("José García's") == "josé garcía"


def test_fts_query_for_scripts_without_spaces():
    # unicode61 indexes a CJK run as one token: a prefix query matches the run and the runs it starts
    assert fts_query("東京タワーは夜に光る") == '"東京タワーは夜に光る"*'
    assert fts_query("Tokyo 東京") == '"tokyo" OR "東京"*'
    assert fts_query("pineapple") == '"pineapple"'


def test_entity_candidates_with_accented_capitals():
    names = {s for s, kind in entity_candidates("We saw José García and Zoë Saldaña in Zürich.", "speech")
             if kind == "name"}
    assert names == {"José García", "Zoë Saldaña", "Zürich"}
    assert ("Ørsted", "initial") in entity_candidates("Ørsted discovered electromagnetism.", "speech")
