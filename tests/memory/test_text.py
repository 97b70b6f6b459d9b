"""Text helpers: words in any script, FTS5 queries, entity candidates with accented capitals."""

from __future__ import annotations

import sqlite3

from videomind.memory.text import entity_candidates, fts_query, norm_key, tokens, unspaced_terms


def test_tokens_keep_non_ascii_letters():
    assert tokens("We met at the café Müller in Zürich.") == ["we", "met", "at", "the", "café", "müller", "in",
                                                               "zürich"]
    assert tokens("naïve Ørsted snake_case") == ["naïve", "ørsted", "snake", "case"]
    assert fts_query("Müller") == '"müller"'
    assert fts_query("café naïve") == '"café" OR "naïve"'
    assert norm_key("José García's") == "josé garcía"


def test_fts_query_for_scripts_without_spaces():
    # unicode61 indexes a CJK run as one token, so a run is matched as a prefix (stores indexed without bigram
    # terms) or as the phrase of its bigrams (what unspaced_terms adds to the index)
    assert fts_query("東京タワー") == '("東京タワー"* OR ("東京 京タ タワ ワー"))'
    assert fts_query("Tokyo 東京") == '"tokyo" OR ("東京"* OR ("東京"))'
    assert fts_query("光") == '"光"*'
    assert fts_query("iPhone手机") == '("iphone手机"* OR ("iphone" AND "手机"))'
    assert fts_query("pineapple") == '"pineapple"'
    assert unspaced_terms("東京タワー") == "東京 京タ タワ ワー ー"
    assert unspaced_terms("We met in Tokyo") == ""


def test_words_inside_unspaced_runs_are_found():
    """Real FTS5 with the store's tokenizer: a word in the middle of a run is found; order still matters."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(body, tokenize='porter unicode61')")
    docs = ["東京タワーは夜に光る", "京都の寺は古い", "新しいiPhone手机を買った", "第3章 まとめ", "We met in Tokyo"]
    for i, d in enumerate(docs, 1):
        conn.execute("INSERT INTO f(rowid, body) VALUES(?,?)", (i, f"{d}\n{unspaced_terms(d)}"))

    def hits(q):
        return {r[0] for r in conn.execute("SELECT rowid FROM f WHERE f MATCH ?", (fts_query(q),))}

    assert hits("タワー") == {1}
    assert hits("夜に光る") == {1}
    assert hits("る") == {1}                       # the last character of a run
    assert hits("京") == {1, 2}                    # inside one run, at the start of another
    assert hits("手机") == hits("iphone") == {3}
    assert hits("3章") == {4}
    assert hits("寺は古い") == {2}
    assert hits("古い寺") == set()                 # bigrams match as a phrase, not as a bag of characters
    assert hits("Tokyo タワー") == {1, 5}
    # a store indexed before the bigram terms existed still finds runs by their start
    conn.execute("CREATE VIRTUAL TABLE g USING fts5(body, tokenize='porter unicode61')")
    conn.execute("INSERT INTO g(rowid, body) VALUES(1, '東京タワーは夜に光る')")
    assert conn.execute("SELECT rowid FROM g WHERE g MATCH ?", (fts_query("東京"),)).fetchall() == [(1,)]


def test_entity_candidates_with_accented_capitals():
    names = {s for s, kind in entity_candidates("We saw José García and Zoë Saldaña in Zürich.", "speech")
             if kind == "name"}
    assert names == {"José García", "Zoë Saldaña", "Zürich"}
    assert ("Ørsted", "initial") in entity_candidates("Ørsted discovered electromagnetism.", "speech")


def test_sentences_end_at_full_width_punctuation():
    """CJK sentences end with 。！？ and no space: one 'sentence' per clip made its extractive summary a blob."""
    from videomind.memory.text import split_sentences

    assert split_sentences("会议在杭州举行。密码是七十二！你好吗？ Yes. No") == [
        "会议在杭州举行。", "密码是七十二！", "你好吗？", "Yes.", "No"]


def test_a_long_query_keeps_its_rarest_words():
    """Past MAX_QUERY_TERMS words a query keeps the rarest in the store (the first 32 lost the word that mattered,
    placed last), the longest without a store; the words kept stay in question order."""
    from videomind.memory.text import MAX_QUERY_TERMS

    common = [f"common{i:02d}" for i in range(40)]
    question = " ".join(common[:20] + ["ghost", "pineapple"] + common[20:])
    df = {f'"{w}"': 50 for w in common} | {'"pineapple"': 1, '"ghost"': 0}  # ghost: in no doc
    kept = fts_query(question, lambda term: df[term]).split(" OR ")
    assert len(kept) == MAX_QUERY_TERMS and '"pineapple"' in kept and '"ghost"' not in kept
    assert kept == sorted(kept, key=lambda term: question.split().index(term.strip('"')))
    by_length = fts_query(" ".join([f"w{i}" for i in range(40)] + ["pineapple"])).split(" OR ")
    assert len(by_length) == MAX_QUERY_TERMS and by_length[-1] == '"pineapple"'
    assert fts_query(" ".join(f"w{i}" for i in range(MAX_QUERY_TERMS))).count(" OR ") == MAX_QUERY_TERMS - 1
