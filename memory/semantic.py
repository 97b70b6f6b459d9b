"""Semantic memory: entities / keyphrases, co-occurrence relations and facts, each tied to times in the video.

Offline extraction (no LLM, no POS tagger): capitalised runs, 2-3 word keyphrases and short on-screen lines
(see ``text.entity_candidates``). Consolidation as the video streams: a candidate whose normalised key is known
is a new mention; otherwise its name embedding is compared with the known entities and merged as an alias when
one name contains the other and they are similar (cos >= 0.75; 0.7 between proper names), or when they share a
word and are near-identical (cos >= 0.93).
Facts are the sentences that mention an entity; relations are entities mentioned in the same sentence.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Callable, Container, Sequence

import numpy as np

from videomind.memory.text import entity_candidates, norm_key, tokens
from videomind.memory.vectors import from_blob, to_blob

logger = logging.getLogger(__name__)
# (text, source) -> [(entity name, kind)], e.g. an LLM prompt; kind: name | phrase | onscreen | any label
EntityExtractor = Callable[[str, str], Sequence[tuple[str, str]]]

MAX_CANDIDATES = 256
MERGE_SUBSET_COS = 0.75
MERGE_NAME_COS = 0.7  # "Lovelace" -> "Ada Lovelace"
MERGE_ANY_COS = 0.93


@dataclass
class Entity:
    id: int
    name: str
    key: str
    kind: str
    aliases: list[str] = field(default_factory=list)
    count: int = 0
    first: float = float("inf")
    last: float = float("-inf")

    @property
    def words(self) -> set[str]:
        return set(self.key.split())


class SemanticMemory:
    """Entity tables of one store, with an in-memory index for consolidation and lookup."""

    def __init__(self, dim: int):
        self.dim = dim
        self.entities: dict[int, Entity] = {}
        self.by_key: dict[str, int] = {}
        self._ids: list[int] = []
        self._vecs: list[np.ndarray] = []
        self._vec: dict[int, np.ndarray] = {}
        self._by_word: dict[str, list[int]] = {}
        self._mat: np.ndarray | None = None

    @classmethod
    def load(cls, conn: sqlite3.Connection, dim: int) -> SemanticMemory:
        sem = cls(dim)
        for eid, name, key, aliases, kind, count, first, last, vec in conn.execute(
                "SELECT id, name, key, aliases, kind, count, first, last, vec FROM entities ORDER BY id"):
            e = Entity(eid, name, key, kind, json.loads(aliases or "[]"), count, first, last)
            sem._register(e, from_blob(vec))
        return sem

    def _register(self, e: Entity, vec: np.ndarray) -> None:
        self.entities[e.id] = e
        self.by_key[e.key] = e.id
        for a in e.aliases:
            self.by_key.setdefault(a, e.id)
        for w in set(e.key.split()).union(*(a.split() for a in e.aliases)):
            self._by_word.setdefault(w, []).append(e.id)
        self._vec[e.id] = np.asarray(vec, dtype=np.float32)
        self._ids.append(e.id)
        self._vecs.append(np.asarray(vec, dtype=np.float32))
        self._mat = None

    def matrix(self) -> np.ndarray:
        if self._mat is None:
            self._mat = np.stack(self._vecs) if self._vecs else np.zeros((0, self.dim), np.float32)
        return self._mat

    # --- building (inside the store's transaction) ---
    def ingest(self, conn: sqlite3.Connection, rows: Sequence[tuple[int, float, float, str, str]], embed,
               extractor: EntityExtractor | None = None) -> int:
        """Extract and consolidate entities from (text id, start, end, text, source) rows; returns mentions.
        ``extractor`` (e.g. an LLM) replaces the offline candidates; on failure the offline ones are used."""
        found: list[tuple[int, float, float, list[tuple[str, str]]]] = []
        unknown: dict[str, str] = {}
        for tid, s, e, text, source in rows:
            cands = None
            if extractor is not None:
                try:
                    cands = [(str(n), str(k or "name")) for n, k in extractor(text, source) if str(n).strip()]
                except Exception as ex:  # noqa: BLE001 - fall back to the offline extractor
                    logger.warning("entity extractor failed (%s); using the offline extractor", ex)
            if cands is None:
                cands = entity_candidates(text, source)
            found.append((tid, s, e, cands))
            for surface, _ in cands:
                k = norm_key(surface)
                if k not in self.by_key:
                    unknown.setdefault(k, surface)
        vecs: dict[str, np.ndarray] = {}
        if unknown:
            keys = list(unknown)
            mat = np.asarray(embed([unknown[k] for k in keys]), dtype=np.float32)
            vecs = dict(zip(keys, mat))
        touched: set[int] = set()
        n = 0
        for tid, s, e, cands in found:
            ids: list[int] = []
            for surface, kind in cands:
                if kind == "initial" and not self._known(surface):
                    continue  # a capitalised first word that names nothing we know
                eid = self._resolve_or_create(conn, surface, kind, vecs)
                # counted once per text: "Curie, Marie Curie, was born ..." is one mention of her
                if eid is not None and eid not in ids:
                    ent = self.entities[eid]
                    ent.count += 1
                    ent.first, ent.last = min(ent.first, s), max(ent.last, e)
                    touched.add(eid)
                    ids.append(eid)
                    conn.execute("INSERT INTO mentions VALUES(?,?,?,?)", (eid, tid, s, e))
                    n += 1
            for i, a in enumerate(ids):
                for b in ids[i + 1:]:
                    a_, b_ = min(a, b), max(a, b)
                    conn.execute(
                        "INSERT INTO relations VALUES(?,?,1,?,?,?) ON CONFLICT(a, b) DO UPDATE SET "
                        "count = count + 1, first = min(first, excluded.first), last = max(last, excluded.last)",
                        (a_, b_, s, e, tid))
        for eid in touched:
            ent = self.entities[eid]
            conn.execute("UPDATE entities SET name=?, aliases=?, count=?, first=?, last=? WHERE id=?",
                         (ent.name, json.dumps(ent.aliases), ent.count, ent.first, ent.last, eid))
        return n

    def _known(self, surface: str) -> bool:
        key = norm_key(surface)
        if key in self.by_key:
            return True
        sets = [set(self._by_word.get(w, ())) for w in key.split()]
        return bool(sets) and bool(set.intersection(*sets))

    def _resolve_or_create(self, conn: sqlite3.Connection, surface: str, kind: str, vecs: dict) -> int | None:
        """The entity ``surface`` names: known, merged into a known one as an alias, or new. None for a keyphrase
        around a known name ("marie curie worked"): it is no other name for her, and the name itself is a
        candidate of the same text."""
        key = norm_key(surface)
        if key in self.by_key:
            return self.by_key[key]
        vec = np.asarray(vecs[key], dtype=np.float32)
        words = set(key.split())
        # merge candidates share a word with the new name (an inverted index keeps this O(candidates), not
        # O(entities)); the most recent MAX_CANDIDATES per word are compared
        cands: list[int] = []
        for w in words:
            cands.extend(self._by_word.get(w, [])[-MAX_CANDIDATES:])
        cands = list(dict.fromkeys(cands))
        known = [self.entities[c] for c in cands if self.entities[c].kind != "phrase"]
        if kind == "phrase" and any(o.words < words for o in known):
            return None
        # a bare "Curie" once Marie and Pierre Curie are both known is neither of them: it is merged into no one
        ambiguous = sum(words < o.words for o in known) >= 2
        if cands:
            sims = np.stack([self._vec[c] for c in cands]) @ vec
            for j in np.argsort(-sims)[:5].tolist():
                cos = float(sims[j])
                other = self.entities[cands[j]]
                if ambiguous and words < other.words:
                    continue
                subset = words <= other.words or other.words <= words
                names = kind in ("name", "initial") and other.kind == "name"
                if (subset and cos >= (MERGE_NAME_COS if names else MERGE_SUBSET_COS)) or cos >= MERGE_ANY_COS:
                    other.aliases.append(key)
                    self.by_key[key] = other.id
                    for w in words - other.words:
                        self._by_word.setdefault(w, []).append(other.id)
                    if kind in ("name", "initial") and len(surface) > len(other.name) and other.kind == "name":
                        other.name = surface  # the fuller name wins ("Curie" -> "Marie Curie")
                    return other.id
        cur = conn.execute("INSERT INTO entities(name, key, aliases, kind, count, first, last, vec) "
                           "VALUES(?,?,?,?,?,?,?,?)", (surface, key, "[]", kind, 0, None, None, to_blob(vec)))
        ent = Entity(int(cur.lastrowid), surface, key, kind)
        self._register(ent, vec)
        return ent.id

    # --- queries ---
    def resolve(self, name: str, embed=None) -> Entity | None:
        """The entity called ``name``: exact key or alias, then word containment, then the nearest name."""
        key = norm_key(name)
        if not key:
            return None
        if key in self.by_key:
            return self.entities[self.by_key[key]]
        words = set(key.split())
        contained = [e for e in self.entities.values() if words <= e.words]
        if contained:
            return max(contained, key=lambda e: (e.count, -len(e.key)))
        if embed is not None and self._ids:
            sims = self.matrix() @ np.asarray(embed([name])[0], dtype=np.float32)
            j = int(np.argmax(sims))
            if sims[j] >= 0.8:
                return self.entities[self._ids[j]]
        return None

    def mention_spans(self, conn: sqlite3.Connection, eid: int, gap: float) -> list[tuple[float, float]]:
        rows = conn.execute("SELECT start, end FROM mentions WHERE entity=? ORDER BY start", (eid,)).fetchall()
        return merge_spans(rows, gap)

    def in_window(self, conn: sqlite3.Connection, t0: float | None, t1: float | None
                  ) -> dict[int, tuple[int, float, float]]:
        """{entity: (mentions, first, last)} over the mentions overlapping [t0, t1] (either bound optional)."""
        cond, args = _overlap("", t0, t1)
        rows = conn.execute(f"SELECT entity, count(*), min(start), max(end) FROM mentions WHERE 1{cond} "
                            "GROUP BY entity", args)
        return {eid: (n, first, last) for eid, n, first, last in rows}

    def facts(self, conn: sqlite3.Connection, eid: int, limit: int = 20, t0: float | None = None,
              t1: float | None = None) -> list[dict[str, Any]]:
        """The first ``limit`` distinct sentences that mention the entity (those overlapping [t0, t1] when
        given), in time order. Rows stream until ``limit`` distinct ones are found: a sign read by OCR every
        second must not use up the limit."""
        cond, args = _overlap("m.", t0, t1)
        rows = conn.execute(
            "SELECT t.id, t.start, t.end, t.source, t.text FROM mentions m JOIN texts t ON t.id = m.text "
            f"WHERE m.entity=?{cond} ORDER BY t.start, t.id", (eid, *args))
        seen, out = set(), []
        for tid, s, e, src, text in rows:
            k = " ".join(text.lower().split())
            if k not in seen:
                seen.add(k)
                out.append({"id": tid, "start": s, "end": e, "source": src, "text": text})
                if len(out) >= limit:
                    break
        return out

    def relations(self, conn: sqlite3.Connection, eid: int, limit: int = 20, t0: float | None = None,
                  t1: float | None = None) -> list[dict[str, Any]]:
        """Entities mentioned in the same sentence, most often first. With t0/t1 only the sentences
        overlapping [t0, t1] count (the relations table aggregates the whole video, so they are recounted from
        the mentions: one pass over them, no index on their text needed)."""
        if t0 is None and t1 is None:
            rows = conn.execute(
                "SELECT CASE WHEN a=? THEN b ELSE a END, count, first, last, text FROM relations "
                "WHERE a=? OR b=? ORDER BY count DESC, first LIMIT ?", (eid, eid, eid, limit)).fetchall()
        else:
            cond, args = _overlap("", t0, t1)
            rows = conn.execute(
                "SELECT entity, count(*), min(start), max(end), min(text) FROM mentions WHERE entity != ? AND "
                f"text IN (SELECT text FROM mentions WHERE entity=?{cond}) "
                "GROUP BY entity ORDER BY count(*) DESC, min(start) LIMIT ?", (eid, eid, *args, limit)).fetchall()
        out = []
        for other, count, first, last, tid in rows:
            ent = self.entities.get(other)
            if ent is None:
                continue
            ex = conn.execute("SELECT text FROM texts WHERE id=?", (tid,)).fetchone()
            out.append({"entity": ent.name, "count": count, "first": first, "last": last,
                        "example": ex[0] if ex else ""})
        return out

    def rank(self, query: str, qvec: np.ndarray | None, k: int, allowed: Container[int] | None = None
             ) -> list[tuple[int, float]]:
        """Entities for a free-text query: name similarity fused with word overlap. ``allowed``: rank only
        these (e.g. those mentioned in a time window), so a window's entities are never crowded out."""
        from videomind.memory.retrieval import rrf

        lists = []
        if qvec is not None and self._ids:
            sims = self.matrix() @ np.asarray(qvec, dtype=np.float32)
            if allowed is not None:
                sims[[j for j, eid in enumerate(self._ids) if eid not in allowed]] = -np.inf
            order = [j for j in np.argsort(-sims)[: 4 * k].tolist() if np.isfinite(sims[j])]
            lists.append([self._ids[j] for j in order])
        qwords = set(tokens(query))
        overlap = [(len(qwords & e.words) / len(e.words), e.count, e.id) for e in self.entities.values()
                   if qwords & e.words and (allowed is None or e.id in allowed)]
        if overlap:
            lists.append([eid for _, _, eid in sorted(overlap, key=lambda x: (-x[0], -x[1]))[: 4 * k]])
        fused = rrf(lists)
        return sorted(fused.items(), key=lambda x: -x[1])[:k]


def merge_spans(rows: Sequence[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(rows):
        if out and s <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(a, b) for a, b in out]


def _overlap(prefix: str, t0: float | None, t1: float | None) -> tuple[str, tuple[float, ...]]:
    """SQL conditions (" AND ...", or "" without bounds) keeping rows whose ``prefix``start/end overlap
    [t0, t1], and their arguments."""
    cond, args = "", []
    if t0 is not None:
        cond, args = cond + f" AND {prefix}end >= ?", [*args, t0]
    if t1 is not None:
        cond, args = cond + f" AND {prefix}start <= ?", [*args, t1]
    return cond, tuple(args)
