"""Small text helpers: tokens, stopwords, FTS5 query building, extractive summaries, keyphrase candidates."""

from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

STOPWORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each few
for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him
himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's like me more most
mustn't my myself no nor not now of off on once only or other ought our ours ourselves out over own same shan't
she she'd she'll she's should shouldn't so some such than that that's the their theirs them themselves then there
there's these they they'd they'll they're they've this those through to too under until up very was wasn't we
we'd we'll we're we've were weren't what what's when when's where where's which while who who's whom why why's
will with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves yes ok okay oh well
so um uh yeah really actually today now then here there thing things get got going gonna want one two three
first next last also just maybe let lets see look said say says tell told know think right good great much many
video clip minute minutes second seconds time times way lot kind sort does did done make made
""".split())

# letters and digits of any script ("café", "Ørsted", "東京"), as FTS5's unicode61 tokenizer reads them (an
# underscore separates words there too), with inner apostrophes and hyphens
_WORD = re.compile(r"[^\W_](?:[^\W_]|['\-])*")
# after . ! ? and a space, or after the full-width 。！？ of CJK text, which takes no space
_SENT = re.compile(r"(?<=[.!?])\s+|(?<=[\u3002\uff01\uff1f])\s*")
# scripts written without spaces: unicode61 indexes a whole run ("東京タワーは夜に光る") as one token
_UNSPACED = re.compile("[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
                       "\uf900-\ufaff]")
UNSPACED_RUN = re.compile(_UNSPACED.pattern + "+")  # agents.textmatch reads runs the same way


def tokens(text: str) -> list[str]:
    return [t.lower().strip("'-") for t in _WORD.findall(text)]


def _unspaced_parts(token: str) -> tuple[list[str], list[str]]:
    """A token's runs of an unspaced script and the rest of it: "iphone手机" -> (["手机"], ["iphone"])."""
    runs = UNSPACED_RUN.findall(token)
    rest = [t for t in UNSPACED_RUN.split(token) if t.strip("'-")]
    return runs, rest


def _bigrams(run: str) -> list[str]:
    return [run[i:i + 2] for i in range(len(run) - 1)] + [run[-1]]


def unspaced_terms(text: str) -> str:
    """Extra index terms for scripts written without spaces, so a word inside a run can be found.

    unicode61 keeps "東京タワーは夜に光る" as one token, which a query for "タワー" can never match. Appending the
    run's overlapping bigrams ("東京 京タ タワ ワー ... 光る る": the last character alone, so every character
    starts a term) lets :func:`fts_query` match any substring as a phrase of bigrams, the CJK analysers' usual
    way without a dictionary. Tokens that mix scripts also get their other parts ("iphone手机" -> "iphone").
    Empty when the text has no such script."""
    if not _UNSPACED.search(text):
        return ""
    out: list[str] = []
    for tok in tokens(text):
        runs, rest = _unspaced_parts(tok)
        if runs:
            out += rest
            for run in runs:
                out += _bigrams(run)
    return " ".join(out)


def _unspaced_match(token: str) -> str:
    """The MATCH form of a query token holding an unspaced script: the token as a prefix (what stores indexed
    before :func:`unspaced_terms` existed can match) or all of its parts, each run as a phrase of its bigrams
    (a lone character as a prefix: it starts a bigram or is one)."""
    runs, rest = _unspaced_parts(token)
    parts = [f'"{p}"' for p in rest] + [f'"{r}"*' if len(r) == 1 else f'"{" ".join(_bigrams(r)[:-1])}"'
                                        for r in runs]
    if parts == [f'"{token}"*']:
        return parts[0]
    return f'("{token}"* OR ({" AND ".join(parts)}))'


MAX_QUERY_TERMS = 32  # words of one keyword query (see _most_informative)


def fts_query(text: str, doc_freq: Callable[[str], int] | None = None) -> str | None:
    """An FTS5 MATCH expression: the query's content words, OR-ed and quoted (no syntax from the user).

    A run of a script without spaces is matched as its bigrams (see :func:`unspaced_terms`): the query "タワー"
    finds "東京タワーは夜に光る"; a single character matches the terms it starts as a prefix.
    At most MAX_QUERY_TERMS words, the most informative of a longer question (:func:`_most_informative`);
    ``doc_freq``: how many docs of the store match one word's MATCH expression, to tell which those are."""
    toks = [t for t in tokens(text) if t]
    content = [t for t in toks if t not in STOPWORDS] or toks
    seen: list[str] = []
    for t in content:
        t = t.replace('"', "")
        if t and t not in seen:
            seen.append(t)
    terms = [_unspaced_match(t) if _UNSPACED.search(t) else f'"{t}"' for t in seen]
    if len(terms) > MAX_QUERY_TERMS:
        terms = [terms[i] for i in _most_informative(seen, terms, doc_freq)]
    return " OR ".join(terms) or None


def _most_informative(words: Sequence[str], terms: Sequence[str],
                      doc_freq: Callable[[str], int] | None) -> list[int]:
    """Indices of the MAX_QUERY_TERMS words of a long question to search for, in question order.

    Why a cap: an OR query costs FTS5 every posting of every word, and a long question's common words match
    most of a store (141 words: ~0.3-0.4 s on 50,000 docs, ~0.1 s for 32 of them). Why the rarest in the store
    (fewest docs matching the word's ``terms`` expression): BM25 weighs a word by its rarity, so the rare ones
    decide the ranking anyway, and they are the cheap ones to match (the 32 rarest of those 141, counting
    included: ~45 ms); the first 32 lost "pineapple" at the end of a question that first listed the video's
    topics. A word no doc holds matches nothing: left out. Without counts (no store at hand) the longest words
    are kept, which tend to be the rarer ones. Ties keep question order."""
    if doc_freq is None:
        order = sorted(range(len(words)), key=lambda i: -len(words[i]))
    else:
        df = [doc_freq(t) for t in terms]
        order = sorted((i for i in range(len(words)) if df[i] > 0), key=lambda i: df[i])
    return sorted(order[:MAX_QUERY_TERMS])


_OCR_FIX = str.maketrans({"0": "o", "1": "l", "5": "s", "8": "b", "|": "l"})


def ocr_variants(text: str) -> str:
    """Letter-for-digit readings of OCR tokens that mix both ("RO0M" -> "room", "B1KE" -> "blke" / "bike"), so
    a keyword search still finds a sign misread by OCR. Returns the extra tokens (may be empty)."""
    out = []
    for tok in _WORD.findall(text):
        if any(c.isdigit() for c in tok) and sum(c.isalpha() for c in tok) >= 2:
            fixed = tok.lower().translate(_OCR_FIX)
            out.append(fixed)
            if "l" in fixed:
                out.append(fixed.replace("l", "i"))
    return " ".join(out)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(text or "") if s.strip()]


def norm_key(text: str) -> str:
    """Normalised entity key: lowercase words, possessives and a plural -s dropped from the last word."""
    toks = [t[:-2] if t.endswith("'s") else t for t in tokens(text)]
    toks = [t for t in toks if t]
    if toks and len(toks[-1]) > 3 and toks[-1].endswith("s") and not toks[-1].endswith(("ss", "us", "is")):
        toks[-1] = toks[-1][:-1]
    return " ".join(toks)


def dedupe_lines(lines: Sequence[str]) -> list[str]:
    """Drop repeats (OCR sees the same sign every second), keeping first occurrences in order."""
    seen, out = set(), []
    for line in lines:
        k = " ".join(tokens(line))
        if k and k not in seen:
            seen.add(k)
            out.append(line.strip())
    return out


def extractive_summary(sentences: Sequence[str], vecs: np.ndarray | None, max_sentences: int = 3,
                       max_chars: int = 400) -> str:
    """The most central sentences (sum of cosine similarity to the others), in their original order."""
    idx = list(range(len(sentences)))
    if not idx:
        return ""
    if vecs is not None and len(idx) > max_sentences:
        sims = vecs @ vecs.T
        centrality = sims.sum(axis=1)
        top = sorted(np.argsort(-centrality, kind="stable")[:max_sentences].tolist())
    else:
        top = idx[:max_sentences]
    out, used = [], 0
    for i in top:
        s = sentences[i].strip()
        if used and used + len(s) > max_chars:
            break
        out.append(s if len(s) <= max_chars else s[: max_chars - 1] + "…")
        used += len(s) + 1
    return " ".join(out)


def entity_candidates(text: str, source: str) -> list[tuple[str, str]]:
    """Offline (POS-free) entity/keyphrase candidates: (surface form, kind).

    - "name": runs of capitalised words, acronyms ("initial": a lone capitalised sentence-initial word, kept
      by the semantic memory only when it names a known entity);
    - "phrase": runs of 2-3 content words (RAKE-style, split at stopwords and punctuation);
    - "onscreen": a short OCR line taken whole (signs, titles).
    """
    out: list[tuple[str, str]] = []
    if source == "ocr":
        words = _WORD.findall(text)
        if 1 <= len(words) <= 4 and any(w.lower() not in STOPWORDS for w in words):
            out.append((" ".join(words), "onscreen"))
    for sent in split_sentences(text) or [text]:
        # split into punctuation-free pieces so phrases do not cross commas
        pieces = re.split(r"[,;:()\"\u201c\u201d]+|\s[-\u2013\u2014]\s", sent)
        for n_piece, piece in enumerate(pieces):
            words = _WORD.findall(piece)
            at_start = n_piece == 0
            run: list[str] = []
            runs: list[tuple[int, list[str]]] = []
            for i, w in enumerate(words + [""]):
                cap = bool(w) and (w[0].isupper() or (len(w) >= 2 and w.isupper())) and not w[0].isdigit()
                if cap and w.lower() not in STOPWORDS:
                    run.append(w)
                else:
                    if run:
                        runs.append((i - len(run), run))
                    run = []
            for pos, r in runs:
                lone_initial = len(r) == 1 and pos == 0 and at_start and not r[0].isupper()
                if len(r) <= 5:  # a lone capitalised first word may just start the sentence: "initial"
                    out.append((" ".join(r), "initial" if lone_initial else "name"))
            # keyphrases: maximal runs of content words, kept when 2-3 words long
            run = []
            for w in words + [""]:
                lw = w.lower()
                if w and lw not in STOPWORDS and len(lw) >= 3 and not lw.isdigit():
                    run.append(w)
                else:
                    if 2 <= len(run) <= 3 and not all(x[0].isupper() for x in run):
                        out.append((" ".join(x.lower() for x in run), "phrase"))
                    run = []
    seen, uniq = set(), []
    for surface, kind in out:
        k = norm_key(surface)
        if k and k not in seen and len(k) >= 3:
            seen.add(k)
            uniq.append((surface, kind))
    return uniq
