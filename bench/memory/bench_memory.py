"""Memory benchmarks: query latency at 10k / 100k / 1M items, store size per hour of video.

    nice python bench/memory/bench_memory.py [--sizes 10000,100000,1000000] [--store-sizes 10000,100000]
                                             [--no-hour] [--out bench/memory/results.json]

1. Vector index latency (synthetic clustered 384-d unit vectors, top-50 of one query, single thread):
   exact IndexFlatIP vs IVF-Flat (nlist = 4 sqrt(n), nprobe 32), with IVF's recall@10 against exact.
2. End-to-end ``VideoMemory.search`` latency (hybrid BM25 + dense + RRF + MMR, multi-scale and clip-only) on
   stores holding 10k / 100k text items (10 words from a 20k-word Zipf vocabulary) built through ``add_chunk``
   with a fast random embedder. The query's embedding time is excluded (reported for MiniLM in part 3).
3. Store size per hour: a synthetic hour (speech every 4 s, a sign on screen half the time sampled at 1 fps,
   a keyframe per ~8 s shot as a 384x216 JPEG) built with the real MiniLM embedder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
WORDS = ("river mountain bakery password vault engine orbit galaxy violin tomato harbor lantern glacier "
         "falcon quartz meadow circuit saddle pepper comet canyon ribbon anchor marble thunder willow copper "
         "cactus lagoon pixel summit walnut beacon jungle nickel oyster prism rocket sandal tunnel velvet "
         "wizard yacht zebra amber bamboo cobalt dragon ember fossil garnet hazel igloo jasper kettle lemon").split()


def zipf_vocab(rng: np.random.Generator, n_words: int = 20000):
    """Pseudo-words with Zipf(1.1)-like frequencies, like real transcripts (a few common, a long tail)."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, int(rng.integers(4, 10)))) for _ in range(n_words)]
    p = 1.0 / np.arange(1, n_words + 1) ** 1.1
    return words, p / p.sum()


def clustered(n: int, rng: np.random.Generator) -> np.ndarray:
    n_clusters = max(100, n // 100)
    centers = rng.standard_normal((n_clusters, DIM)).astype(np.float32)
    out = np.empty((n, DIM), np.float32)
    step = 100_000
    for i in range(0, n, step):
        m = min(step, n - i)
        x = centers[rng.integers(0, n_clusters, m)] + 0.6 * rng.standard_normal((m, DIM)).astype(np.float32)
        out[i:i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def bench_vectors(sizes: list[int], n_queries: int = 200) -> list[dict]:
    import faiss

    from videomind.memory.vectors import VectorIndex, build_index

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        data = clustered(n, rng)
        src = rng.integers(0, n, n_queries)  # each query is a perturbed stored item (cos ~0.95 to it)
        queries = data[src] + (0.3 / np.sqrt(DIM)) * rng.standard_normal((n_queries, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        exact_top = None
        for kind in ("flat", "ivf"):
            t = time.perf_counter()
            idx = VectorIndex(DIM, build_index(data, kind))
            build_s = time.perf_counter() - t
            times, tops = [], []
            for q in queries:
                t = time.perf_counter()
                _, pos = idx.search(q, 50)
                times.append(time.perf_counter() - t)
                tops.append(pos[:10])
            found = float(np.mean([s_ in t_ for s_, t_ in zip(src.tolist(), [t.tolist() for t in tops])]))
            row = {"items": n, "index": "IndexFlatIP" if kind == "flat" else
                   f"IndexIVFFlat(nlist={idx.index.nlist}, nprobe={idx.index.nprobe})",
                   "build_s": round(build_s, 2), **pct(times), "source_item_in_top10": round(found, 4)}
            if kind == "flat":
                exact_top = tops
            else:
                row["recall@10_vs_exact"] = round(float(np.mean(
                    [len(set(a) & set(b)) / 10 for a, b in zip(tops, exact_top)])), 4)
            print(json.dumps(row), flush=True)
            rows.append(row)
            del idx
        del data
    return rows


class RandomEmbedder:
    """Fast stand-in for scale tests: a random unit vector per distinct text (same text, same vector)."""

    name = "random-bench"
    dim = DIM

    def embed(self, texts):
        out = np.empty((len(texts), DIM), np.float32)
        for i, t in enumerate(texts):
            r = np.random.default_rng(abs(hash(t)) % (2 ** 32))
            v = r.standard_normal(DIM).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


def bench_store(sizes: list[int], n_queries: int = 100, keep_dir: str | None = None) -> list[dict]:
    """keep_dir: build the stores there and reuse them on the next run (a 100k store takes minutes to build)."""
    from videomind.config import Config
    from videomind.memory.library import Library
    from videomind.types import Chunk, TimedText, VideoInfo

    rows = []
    rng = np.random.default_rng(1)
    vocab, probs = zipf_vocab(rng)
    for n in sizes:
        root = Path(keep_dir) / f"store-{n}" if keep_dir else Path(tempfile.mkdtemp(prefix="vm-bench-"))
        info = VideoInfo(f"/bench/{n}.mp4", n * 4.0, 640, 360, 25.0, True, content_hash=f"bench{n}")
        emb = RandomEmbedder()
        mem = Library(root).open_or_create(info, Config(), emb)
        t = time.perf_counter()
        per_chunk = 15  # 60 s chunks, a text every 4 s
        for ci in range(n // per_chunk if not mem.is_complete else 0):
            texts = []
            for j in range(per_chunk):
                s = ci * 60.0 + j * 4.0
                words = rng.choice(vocab, 10, p=probs)
                texts.append(TimedText(s, s + 3.5, " ".join(words) + f" item{ci * per_chunk + j}.", "speech"))
            mem.add_chunk(Chunk(ci, ci * 60.0, (ci + 1) * 60.0, texts))
        if not mem.is_complete:
            mem.finalize()
        build_s = time.perf_counter() - t
        mem.close()
        t = time.perf_counter()
        from videomind.memory.store import VideoMemory

        mem = VideoMemory.open(mem.directory, emb)
        open_s = time.perf_counter() - t
        # queries: 3 words of the top 2000 (common enough to match many items, as real content words do)
        qrng = np.random.default_rng(100 + n)         # the same queries whether the store was built or reused
        queries = [" ".join(qrng.choice(vocab[:2000], 3)) for _ in range(n_queries)]
        for q in queries[:5]:
            mem._query_vec(q)
        for mode, kw in (("multi-scale hybrid", {}), ("clip hybrid", {"scale": "clip"}),
                         ("clip dense-only", {"scale": "clip", "hybrid": False}),
                         ("clip hybrid, t0/t1 filter", {"scale": "clip", "t0": 0.0, "t1": n * 2.0})):
            times = []
            for q in queries:
                mem._query_vec(q)  # exclude embedding time
                t = time.perf_counter()
                mem.search(q, 5, **kw)
                times.append(time.perf_counter() - t)
            row = {"items": n, "docs": mem.counts()["docs"], "mode": mode, **pct(times),
                   "build_s": round(build_s, 1), "open_s": round(open_s, 3)}
            print(json.dumps(row), flush=True)
            rows.append(row)
        mem.close()
        if not keep_dir:
            shutil.rmtree(root)
    return rows


def bench_hour() -> dict:
    from videomind.config import Config
    from videomind.memory.library import Library
    from videomind.models.text_embed import SentenceTransformerEmbedder
    from videomind.types import Chunk, Keyframe, Shot, TimedText, VideoInfo

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.memory.conftest import FILLER  # noqa: E402

    rng = np.random.default_rng(2)
    root = Path(tempfile.mkdtemp(prefix="vm-hour-"))
    emb = SentenceTransformerEmbedder()
    info = VideoInfo("/bench/hour.mp4", 3600.0, 640, 360, 25.0, True, content_hash="hour")
    mem = Library(root).open_or_create(info, Config(), emb)
    shot_starts = np.cumsum(rng.uniform(4, 12, 800))
    shot_starts = np.concatenate([[0.0], shot_starts[shot_starts < 3600]])
    shots = [Shot(i, float(s), float(shot_starts[i + 1] if i + 1 < len(shot_starts) else 3600.0))
             for i, s in enumerate(shot_starts)]
    yy, xx = np.mgrid[0:216, 0:384]
    t0 = time.perf_counter()
    n_texts = n_kf = 0
    for ci in range(60):
        c0, c1 = ci * 60.0, (ci + 1) * 60.0
        texts = []
        for j in range(15):
            s = c0 + j * 4.0
            a, b = FILLER[rng.integers(len(FILLER))], FILLER[rng.integers(len(FILLER))]
            texts.append(TimedText(s, s + 3.8, f"{a[:-1]} and {b[0].lower()}{b[1:]}", "speech", 0.9))
        for sec in range(60):
            if (ci * 60 + sec) // 30 % 2 == 0:  # a sign on screen half of the time, sampled at 1 fps
                sign = f"{WORDS[(ci * 2 + sec // 30) % len(WORDS)].upper()} STREET {ci}"
                texts.append(TimedText(c0 + sec, c0 + sec + 1, sign, "ocr", 0.9))
        cs = [s for s in shots if c0 <= s.start < c1]
        kfs = []
        for s in cs:
            base = (np.sin(xx / rng.uniform(10, 60)) + np.cos(yy / rng.uniform(10, 60))) * 60 + 128
            img = np.clip(base[..., None] + rng.normal(0, 8, (216, 384, 3)) + rng.uniform(-60, 60, 3), 0, 255)
            v = rng.standard_normal(256).astype(np.float32)
            kfs.append(Keyframe((s.start + s.end) / 2, s.index, img.astype(np.uint8), v / np.linalg.norm(v)))
        n_texts += len(texts)
        n_kf += len(kfs)
        mem.add_chunk(Chunk(ci, c0, c1, texts, kfs, cs))
    mem.finalize()
    build_s = time.perf_counter() - t0
    sizes = {}
    for p in mem.directory.rglob("*"):
        if p.is_file():
            key = "thumbnails" if p.parent.name == "thumbnails" else p.name
            sizes[key] = sizes.get(key, 0) + p.stat().st_size
    total = sum(sizes.values())
    row = {"video_hours": 1, "texts": n_texts, "keyframes": n_kf, "counts": mem.counts(),
           "bytes": sizes, "total_mb": round(total / 2 ** 20, 2),
           "without_thumbnails_mb": round((total - sizes.get("thumbnails", 0)) / 2 ** 20, 2),
           "build_s_excluding_ingest": round(build_s, 1)}
    times = []
    for q in ["where is the bakery", "what happens to the glacier", "COPPER STREET", "who saved the penalty"] * 5:
        t = time.perf_counter()
        mem.search(q, 5)
        times.append(time.perf_counter() - t)
    row["query_incl_minilm_embed"] = pct(times)
    print(json.dumps(row), flush=True)
    mem.close()
    shutil.rmtree(root)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--store-sizes", default="10000,100000")
    ap.add_argument("--no-hour", action="store_true")
    ap.add_argument("--keep-dir", default=None, help="build the test stores here and reuse them next time")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    res: dict = {"cpu_count": os.cpu_count()}
    if a.sizes:
        res["vector_index"] = bench_vectors([int(x) for x in a.sizes.split(",")])
    if a.store_sizes:
        res["store_search"] = bench_store([int(x) for x in a.store_sizes.split(",")], keep_dir=a.keep_dir)
    if not a.no_hour:
        res["store_per_hour"] = bench_hour()
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
