"""Retrieval recall@5 on generated needle videos (eval/synth), per retrieval mode.

    python -m eval.synth --minutes 10 --seed 0 --out DIR        # make the videos first
    nice python bench/memory/bench_recall.py DIR/*.samples.jsonl [--library DIR/lib] [--out results.json]

Each video is ingested once with the offline models (ASR, OCR, MiniLM) into a memory store; then for every
``spoken_fact`` / ``onscreen_text`` sample the question is the query, and a hit counts when any of the top-5
overlaps a ground-truth span. Modes: multi-scale (coarse-to-fine + flat clips) vs single-scale (clips only),
each hybrid (BM25 + dense, RRF) vs dense-only. Questions whose answer is an option are asked without the
options (retrieval only sees the question).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

MODES = {
    "multi-scale hybrid": {"scale": None, "hybrid": True},
    "multi-scale dense-only": {"scale": None, "hybrid": False},
    "clip hybrid": {"scale": "clip", "hybrid": True},
    "clip dense-only": {"scale": "clip", "hybrid": False},
}
TASKS = ("spoken_fact", "onscreen_text")


def overlaps(h, spans, slack: float = 1.0) -> bool:
    return any(h.start <= b + slack and h.end >= a - slack for a, b in spans)


def replay_chunks(store_dir: Path):
    """The observations of an existing store, as chunks again (no ASR/OCR rerun): texts, shots, keyframe
    embeddings (images are gone; thumbnails are not carried over). For re-measuring after memory changes."""
    import sqlite3

    from videomind.memory.vectors import from_blob
    from videomind.types import Chunk, Keyframe, Shot, TimedText

    conn = sqlite3.connect(store_dir / "memory.db")
    for idx, c0, c1, notes in conn.execute("SELECT idx, start, end, notes FROM chunks ORDER BY start"):
        texts = [TimedText(s, e, t, src, conf, json.loads(meta or "{}")) for s, e, t, src, conf, meta in
                 conn.execute("SELECT start, end, text, source, confidence, meta FROM texts WHERE chunk=? "
                              "ORDER BY id", (idx,))]
        shots = [Shot(i, s, e) for i, s, e in conn.execute("SELECT idx, start, end FROM shots WHERE chunk=?",
                                                          (idx,))]
        kfs = [Keyframe(t, sh, None, from_blob(v).copy() if v is not None else None) for t, sh, v in
               conn.execute("SELECT t, shot, vec FROM keyframes WHERE chunk=? ORDER BY id", (idx,))]
        yield Chunk(idx, c0, c1, texts, kfs, shots, json.loads(notes or "[]"))
    conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples", nargs="+")
    ap.add_argument("--library", default="/tmp/vm_mem_bench/lib")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).with_name("recall.json")))
    ap.add_argument("--replay", help="a library holding earlier stores of these videos: rebuild the memory from "
                    "their stored observations instead of running ingestion again")
    a = ap.parse_args(argv)

    from videomind.config import Config
    from videomind.ingest.pipeline import IngestPipeline
    from videomind.memory.library import Library
    from videomind.models.text_embed import SentenceTransformerEmbedder

    config = Config(library=a.library)
    emb = SentenceTransformerEmbedder(config.models.text_embed)
    lib = Library(config.library_dir, emb)
    results: dict = {"k": a.k, "videos": [], "modes": {m: {"hit": 0, "n": 0} for m in MODES}, "by_task": {}}
    for sp in a.samples:
        sp = Path(sp)
        rows = [json.loads(x) for x in sp.read_text().splitlines() if x.strip()]
        rows = [r for r in rows if r.get("task") in TASKS]
        if not rows:
            continue
        video = sp.parent / rows[0]["video"]
        pipe = IngestPipeline(config)
        info = pipe.probe(video)
        mem = lib.open_or_create(info, config, emb)
        t = time.perf_counter()
        if not mem.is_complete:
            old = None
            if a.replay:
                old = next((Path(m["dir"]) for m in Library(a.replay).list()
                            if m.get("complete") and m.get("video", {}).get("content_hash") == info.content_hash),
                           None)
            chunks = replay_chunks(old) if old else pipe.run(video, start_at=mem.resume_point)
            for chunk in chunks:
                mem.add_chunk(chunk)
            mem.finalize()
        ingest_s = time.perf_counter() - t
        per_video = {"video": video.name, "duration": info.duration, "ingest_s": round(ingest_s, 1),
                     "samples": len(rows), "misses": []}
        for r in rows:
            for mode, kw in MODES.items():
                hits = mem.search(r["question"], a.k, **kw)
                ok = any(overlaps(h, r["spans"]) for h in hits)
                results["modes"][mode]["hit"] += ok
                results["modes"][mode]["n"] += 1
                bt = results["by_task"].setdefault(f"{mode} | {r['task']}", {"hit": 0, "n": 0})
                bt["hit"] += ok
                bt["n"] += 1
                if not ok and mode == "multi-scale hybrid":
                    per_video["misses"].append({"q": r["question"], "spans": r["spans"],
                                                "top": [(round(h.start, 1), h.source, h.text[:60]) for h in hits]})
        results["videos"].append(per_video)
        print(json.dumps(per_video), flush=True)
        mem.close()
    for d in (results["modes"], results["by_task"]):
        for v in d.values():
            v["recall"] = round(v["hit"] / v["n"], 3) if v["n"] else None
    print(json.dumps(results["modes"], indent=1))
    Path(a.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
