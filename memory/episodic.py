"""Episodic memory: clips (~10 s) roll up into segments (~1 min) and chapters (~5 min) as chunks stream.

Boundaries are deterministic functions of the shot cuts and the covered time, so streaming chunk by chunk and
building from one big chunk give the same events:
- a clip closes once the stream covers 1.5 clip lengths past its start; its end snaps to the shot cut closest
  to the nominal length within [0.5, 1.5] clip lengths, else the nominal length;
- a segment (chapter) closes once its children cover 1.25 target lengths; its end is the child end closest to
  the target within [0.75, 1.25] targets, preferring child ends that fall on a shot cut.
Texts belong to the clip holding their midpoint; keyframes to the clip holding their time.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from videomind.memory.text import dedupe_lines, extractive_summary, ocr_variants
from videomind.memory.vectors import from_blob, normalize

if TYPE_CHECKING:
    from videomind.memory.store import VideoMemory

logger = logging.getLogger(__name__)
EPS = 1e-6
SUMMARY_SENTENCES = {"clip": 2, "segment": 3, "chapter": 5}
MAX_EVENT_KEYFRAMES = 8

Summarizer = Callable[[str, str], str]  # (event text, scale) -> summary


def plan_clips(start: float, covered: float, clip_s: float, cuts: Sequence[float], final: bool) -> list[tuple]:
    out, s = [], start
    while True:
        if final:
            if s >= covered - EPS:
                break
        elif s + 1.5 * clip_s > covered + EPS:
            break
        nominal = s + clip_s
        cands = [x for x in cuts if s + 0.5 * clip_s - EPS <= x <= min(s + 1.5 * clip_s, covered) + EPS]
        e = min(cands, key=lambda x: (abs(x - nominal), x)) if cands else nominal
        if final and e >= covered - 0.25 * clip_s:
            e = covered
        out.append((s, e))
        s = e
    return out


def plan_groups(children: Sequence[tuple[float, float]], target: float, cuts: Sequence[float],
                final: bool) -> list[tuple[int, int]]:
    """Group consecutive children [(start, end)] into (first, last) index ranges of about ``target`` seconds."""
    groups, i = [], 0
    cutset = list(cuts)

    def on_cut(t: float) -> bool:
        return any(abs(t - c) < 0.05 for c in cutset)

    while i < len(children):
        g0 = children[i][0]
        last_end = children[-1][1]
        if last_end - g0 < 1.25 * target - EPS:
            if final:
                groups.append((i, len(children) - 1))
            break
        cands = [j for j in range(i, len(children))
                 if 0.75 * target - EPS <= children[j][1] - g0 <= 1.25 * target + EPS]
        if cands:
            pool = [j for j in cands if on_cut(children[j][1])] or cands
            j = min(pool, key=lambda j: (abs(children[j][1] - g0 - target), j))
        else:  # a child longer than the window: close at the first child that reaches 0.75 target
            j = next(j for j in range(i, len(children)) if children[j][1] - g0 >= 0.75 * target - EPS)
        groups.append((i, j))
        i = j + 1
    return groups


class EpisodicBuilder:
    """Closes clips, segments and chapters inside the store's current transaction."""

    def __init__(self, mem: VideoMemory, summarizer: Summarizer | None = None):
        self.mem = mem
        self.summarizer = summarizer

    @property
    def conn(self):
        return self.mem._conn

    def cuts(self) -> list[float]:
        """Shot cut times: where the shot index changes along time. A shot that spans several chunks arrives
        once per chunk with the same index (no cut at the chunk boundary); numbering restarted by a resumed
        ingestion still yields a cut at each change."""
        rows = self.conn.execute("SELECT idx, start FROM shots ORDER BY start, chunk").fetchall()
        return [s for (i0, _), (i1, s) in zip(rows, rows[1:]) if i1 != i0]

    def rollup(self, covered: float, final: bool) -> None:
        cfg = self.mem.config
        cuts = self.cuts()
        row = self.conn.execute("SELECT max(end) FROM events WHERE scale='clip'").fetchone()
        start = row[0] if row[0] is not None else self.mem._video_start()
        plan = plan_clips(start, covered, cfg.clip_seconds, cuts, final)
        for n, (s, e) in enumerate(plan):
            self.close_clip(s, e, last=final and n == len(plan) - 1)
        for child, parent, target in (("clip", "segment", cfg.segment_seconds),
                                      ("segment", "chapter", cfg.chapter_seconds)):
            open_ = self.conn.execute(
                "SELECT id, start, end FROM events WHERE scale=? AND parent IS NULL ORDER BY start",
                (child,)).fetchall()
            for a, b in plan_groups([(r[1], r[2]) for r in open_], target, cuts, final):
                self.close_group(parent, [r[0] for r in open_[a:b + 1]], open_[a][1], open_[b][2])

    # --- clips ---
    def close_clip(self, s: float, e: float, last: bool) -> int:
        conn = self.conn
        cond = "" if last else " AND (start + end) / 2.0 < ?"
        args = () if last else (e,)
        texts = conn.execute(f"SELECT id, start, end, source, text, vec FROM texts WHERE clip IS NULL{cond} "
                             "ORDER BY start, id", args).fetchall()
        kcond = "" if last else " AND t < ?"
        kfs = [r[0] for r in conn.execute(f"SELECT id FROM keyframes WHERE clip IS NULL{kcond} ORDER BY t", args)]
        eid = self._insert_event("clip", s, e, texts, kfs)
        if texts:
            conn.execute(f"UPDATE texts SET clip=? WHERE id IN ({','.join('?' * len(texts))})",
                         (eid, *[t[0] for t in texts]))
        if kfs:
            conn.execute(f"UPDATE keyframes SET clip=? WHERE id IN ({','.join('?' * len(kfs))})", (eid, *kfs))
        by_source: dict[str, list] = {}
        for t in texts:
            by_source.setdefault(t[3], []).append(t)
        for source, rows in by_source.items():
            if source == "ocr":
                keep, seen = [], set()
                for r in rows:
                    k = " ".join(r[4].lower().split())
                    if k not in seen:
                        seen.add(k)
                        keep.append(r)
                rows, sep = keep, " | "
            else:
                sep = " "
            text = sep.join(r[4].strip() for r in rows)
            body = f"{text} {ocr_variants(text)}" if source == "ocr" else text
            vecs = np.stack([from_blob(r[5]) for r in rows])
            self.mem._catalog.add_doc(conn, eid, "clip", source, min(r[1] for r in rows),
                                      max(r[2] for r in rows), text, body, vecs)
        return eid

    # --- segments and chapters ---
    def close_group(self, scale: str, children: list[int], s: float, e: float) -> int:
        conn = self.conn
        texts = conn.execute(
            "SELECT id, start, end, source, text, vec FROM texts WHERE clip IN "
            "(SELECT id FROM events WHERE scale='clip' AND start >= ? AND end <= ?) ORDER BY start, id",
            (s - EPS, e + EPS)).fetchall()
        kfs = [r[0] for r in conn.execute(
            "SELECT id FROM keyframes WHERE clip IN (SELECT id FROM events WHERE scale='clip' AND start >= ? "
            "AND end <= ?) ORDER BY t", (s - EPS, e + EPS))]
        eid = self._insert_event(scale, s, e, texts, kfs, n_children=len(children))
        conn.execute(f"UPDATE events SET parent=? WHERE id IN ({','.join('?' * len(children))})", (eid, *children))
        for c in children:
            self.mem._catalog.set_parent(c, eid)
        if texts:
            row = conn.execute("SELECT transcript, onscreen, captions, summary FROM events WHERE id=?",
                               (eid,)).fetchone()
            body = "\n".join(x for x in (*row[:3], ocr_variants(row[1] or "")) if x)
            centroid = normalize(np.stack([from_blob(t[5]) for t in texts]).mean(axis=0))
            self.mem._catalog.add_doc(conn, eid, scale, "summary", s, e, row[3], body, centroid)
        return eid

    def _insert_event(self, scale: str, s: float, e: float, texts: list, kfs: list[int],
                      n_children: int = 0) -> int:
        speech = [t[4].strip() for t in texts if t[3] in ("speech", "subtitle")]
        ocr = dedupe_lines([t[4] for t in texts if t[3] == "ocr"])
        captions = dedupe_lines([t[4] for t in texts if t[3] == "caption"])
        summary = self._summary(scale, texts)
        if len(kfs) > MAX_EVENT_KEYFRAMES:
            kfs = [kfs[int(i)] for i in np.linspace(0, len(kfs) - 1, MAX_EVENT_KEYFRAMES)]
        cur = self.conn.execute(
            "INSERT INTO events(scale, start, end, parent, transcript, onscreen, captions, summary, keyframes, "
            "n_children) VALUES(?,?,?,?,?,?,?,?,?,?)",
            (scale, s, e, None, " ".join(speech), " | ".join(ocr), " ".join(captions), summary, json.dumps(kfs),
             n_children))
        eid = int(cur.lastrowid)
        self.mem._catalog.set_parent(eid, None)
        return eid

    def _summary(self, scale: str, texts: list) -> str:
        seen, sents, vecs = set(), [], []
        for t in texts:
            k = " ".join(t[4].lower().split())
            if k and k not in seen:
                seen.add(k)
                sents.append(t[4].strip())
                vecs.append(from_blob(t[5]))
        if not sents:
            return ""
        if self.summarizer is not None and scale != "clip":
            try:
                out = (self.summarizer("\n".join(sents), scale) or "").strip()
                if out:
                    return out
            except Exception as ex:  # noqa: BLE001 - fall back to the extractive summary
                logger.warning("summarizer failed on a %s (%s); using the extractive summary", scale, ex)
        return extractive_summary(sents, np.stack(vecs), SUMMARY_SENTENCES.get(scale, 3))
