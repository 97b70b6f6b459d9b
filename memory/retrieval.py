"""Ranking: BM25 (FTS5) + dense (FAISS) fused by reciprocal rank, MMR diversification, coarse-to-fine search."""

from __future__ import annotations

import sqlite3
from typing import Iterable, Sequence

import numpy as np

from videomind.memory.catalog import Catalog, DocFilter
from videomind.memory.text import fts_query
from videomind.memory.vectors import from_blob, normalize

CANDIDATES = 50  # per ranked list before fusion
# docs counted per word to rank a long question's words by rarity (text.fts_query): enough to tell a word of a few
# clips from one said every minute, and FTS5 stops counting there, so a common word costs no more than that
DF_LIMIT = 1000


def match_expression(conn: sqlite3.Connection, query: str) -> str | None:
    """The FTS5 MATCH expression of ``query`` on this store: a long question keeps its rarest words here."""
    def doc_freq(term: str) -> int:
        return conn.execute("SELECT count(*) FROM (SELECT 1 FROM docs_fts WHERE docs_fts MATCH ? LIMIT ?)",
                            (term, DF_LIMIT)).fetchone()[0]

    return fts_query(query, doc_freq)


def rrf(lists: Iterable[Sequence[int]], k: int = 60) -> dict[int, float]:
    """Reciprocal rank fusion: score(d) = sum over lists of 1 / (k + rank), rank from 1."""
    out: dict[int, float] = {}
    for lst in lists:
        for rank, d in enumerate(lst, start=1):
            out[d] = out.get(d, 0.0) + 1.0 / (k + rank)
    return out


def bm25(conn: sqlite3.Connection, query: str, f: DocFilter, n: int,
         max_doc: int | None = None) -> list[tuple[int, float]]:
    """Top-``n`` docs by FTS5 BM25 (higher is better here), after filtering. ``max_doc``: the last doc id the
    caller's catalog knows; a reader opened before a writer committed more chunks must not get the newer ones."""
    match = match_expression(conn, query)
    if not match:
        return []
    where, args = f.sql()
    if max_doc is not None:
        where, args = f"{where} AND d.id <= ?", [*args, max_doc]
    rows = conn.execute(
        f"SELECT f.rowid, -bm25(docs_fts) AS s FROM docs_fts f JOIN docs d ON d.id = f.rowid "
        f"WHERE docs_fts MATCH ? AND {where} ORDER BY bm25(docs_fts) LIMIT ?", (match, *args, n)).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]


def bm25_all(conn: sqlite3.Connection, query: str) -> tuple[np.ndarray, np.ndarray]:
    """Every doc that matches ``query`` and its BM25 score (higher is better), best first, unfiltered.

    A multi-scale search asks for the keyword ranking at four levels; FTS5 scores all matches each time whatever
    the filter, so scoring once and filtering in memory (:func:`filter_ranked`) does a quarter of the work."""
    match = match_expression(conn, query)
    if not match:
        return np.zeros(0, np.int64), np.zeros(0)
    rows = conn.execute("SELECT rowid, -bm25(docs_fts) FROM docs_fts WHERE docs_fts MATCH ? "
                        "ORDER BY bm25(docs_fts)", (match,)).fetchall()
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0)
    ids, scores = zip(*rows)
    return np.asarray(ids, np.int64), np.asarray(scores, np.float64)


def filter_ranked(cat: Catalog, ranked: tuple[np.ndarray, np.ndarray], f: DocFilter,
                  n: int) -> list[tuple[int, float]]:
    """The top ``n`` of a :func:`bm25_all` ranking that pass the filter ``f``."""
    ids, scores = ranked
    ok = ids <= cat.n_docs  # docs committed after the catalog was read are not searchable yet
    mask = cat.doc_mask(f)
    if mask is not None:
        ok[ok] = mask[ids[ok]]
    ids, scores = ids[ok], scores[ok]
    return list(zip(ids[:n].tolist(), scores[:n].tolist()))


def hybrid_rank(conn: sqlite3.Connection, cat: Catalog, query: str, qvec: np.ndarray | None, f: DocFilter,
                n: int = CANDIDATES, hybrid: bool = True, rrf_k: int = 60,
                lexical_all: tuple[np.ndarray, np.ndarray] | None = None) -> list[tuple[int, float]]:
    """Docs ranked by RRF of BM25 and dense lists (dense only when ``hybrid`` is False, BM25 only when there is
    no query vector). ``lexical_all``: a precomputed :func:`bm25_all` of the query. Returns (doc id, score) best
    first."""
    dense = cat.dense(qvec, n, f) if qvec is not None else []
    if not hybrid and dense:
        return dense
    lexical = bm25(conn, query, f, n, cat.n_docs) if lexical_all is None else filter_ranked(cat, lexical_all, f, n)
    if not dense:
        return lexical
    fused = rrf([[d for d, _ in dense], [d for d, _ in lexical]], rrf_k)
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))


def doc_vectors(conn: sqlite3.Connection, docs: Sequence[int]) -> dict[int, np.ndarray]:
    """Each doc's representative vector (normalised mean of its vectors)."""
    if not docs:
        return {}
    acc: dict[int, list[np.ndarray]] = {}
    for i in range(0, len(docs), 500):
        part = list(docs[i:i + 500])
        for d, b in conn.execute(f"SELECT doc, vec FROM vecs WHERE doc IN ({','.join('?' * len(part))})", part):
            acc.setdefault(d, []).append(from_blob(b))
    return {d: normalize(np.mean(v, axis=0)) for d, v in acc.items()}


def mmr(ranked: Sequence[tuple[int, float]], vecs: dict[int, np.ndarray], spans: dict[int, tuple[float, float]],
        k: int, lam: float = 0.7) -> list[tuple[int, float]]:
    """Maximal marginal relevance: trade relevance for novelty (cosine, or time overlap, to the picked docs)."""
    if not ranked:
        return []
    # relevance scaled to [0, 1] by min-max: scores may be raw cosines, all negative, or RRF sums near zero
    lo, hi = min(s for _, s in ranked), max(s for _, s in ranked)
    span = hi - lo
    pool = list(ranked)
    picked: list[tuple[int, float]] = []
    while pool and len(picked) < k:
        best, best_val = None, -1e9
        for i, (d, s) in enumerate(pool):
            red = 0.0
            for p, _ in picked:
                red = max(red, _sim(d, p, vecs, spans))
            val = lam * ((s - lo) / span if span > 0 else 1.0) - (1 - lam) * red
            if val > best_val:
                best, best_val = i, val
        picked.append(pool.pop(best))
    return picked


def _sim(a: int, b: int, vecs: dict[int, np.ndarray], spans: dict[int, tuple[float, float]]) -> float:
    cos = float(vecs[a] @ vecs[b]) if a in vecs and b in vecs else 0.0
    (s1, e1), (s2, e2) = spans.get(a, (0, 0)), spans.get(b, (0, 0))
    inter = max(0.0, min(e1, e2) - max(s1, s2))
    union = max(e1, e2) - min(s1, s2)
    iou = inter / union if union > 0 else (1.0 if (s1, e1) == (s2, e2) else 0.0)
    return max(cos, iou)


def coarse_to_fine(conn: sqlite3.Connection, cat: Catalog, query: str, qvec: np.ndarray | None, f: DocFilter,
                   hybrid: bool, rrf_k: int, n_chapters: int = 3, n_segments: int = 5,
                   keep: int = 3) -> list[tuple[int, float]]:
    """Clip docs ranked by fusing a flat clip search with a drill-down: best chapters -> their best segments ->
    the clips inside them. Time filters apply at every level, source filters at the clip level.

    The flat list's top ``keep`` stay on top: a needle that matches one clip strongly while its segment does
    not stand out must not be pushed down by clips that merely sit in well-matching segments. The drill-down
    decides the order after them."""
    lex = bm25_all(conn, query) if hybrid or qvec is None else None

    def rank(flt: DocFilter, n: int) -> list[tuple[int, float]]:
        return hybrid_rank(conn, cat, query, qvec, flt, n, hybrid, rrf_k, lex)

    flat = rank(DocFilter(("clip",), f.sources, f.t0, f.t1), CANDIDATES)
    chapters = rank(DocFilter(("chapter",), None, f.t0, f.t1), n_chapters)[:n_chapters]
    seg_filter = DocFilter(("segment",), None, f.t0, f.t1)
    if chapters:
        seg_filter.parents = tuple(cat.event[d] for d, _ in chapters)
    segments = rank(seg_filter, n_segments)[:n_segments]
    if not segments:
        return flat
    drill = rank(DocFilter(("clip",), f.sources, f.t0, f.t1, tuple(cat.event[d] for d, _ in segments)), CANDIDATES)
    fused = rrf([[d for d, _ in flat], [d for d, _ in drill]], rrf_k)
    head = [d for d, _ in flat[:keep]]
    tail = sorted((d for d in fused if d not in head), key=lambda d: (-fused[d], d))
    order = head + tail
    # scores that follow the order (MMR reads them as relevance): the fused score, made non-increasing
    out, last = [], float("inf")
    for d in order:
        last = min(last, fused[d])
        out.append((d, last))
    return out
