"""Ingestion throughput, per-stage time and peak RSS: the streaming pipeline vs the naive approach.

    python bench/ingest/bench_ingest.py VIDEO [--mode both|streaming|naive] [--backend auto|decord|pyav] [--json OUT]

Each mode runs in its own subprocess so peak RSS (ru_maxrss of the child) is measured separately.

- streaming: ``IngestPipeline.run`` — bounded queues, ASR thread overlapping decode/scenes/OCR, per-chunk output.
- naive: decode every sampled frame of the whole video into a list, decode the whole audio track, then run
  scenes, OCR and ASR one after another over everything (the same stage functions and models).

Throughput is reported as a multiple of real time (video seconds per wall second). Model loading is timed
separately and excluded from the throughput (it is paid once per process, not per video). When the video comes
from ``python -m eval.synth`` (its ``NAME.json`` script lies beside it), the streaming run also reports recall:
the fraction of on-screen signs read by OCR in their time span, and of spoken words found in the transcript.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds of this process (all threads): steadier than wall time on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_streaming(video: str, backend: str, overrides: list[str]) -> dict:
    from videomind.config import Config
    from videomind.ingest.pipeline import IngestPipeline

    pipe = IngestPipeline(Config.load(None, overrides), backend=backend)
    info = pipe.probe(video)
    t, c0 = time.perf_counter(), _cpu_s()
    n_texts = {"speech": 0, "ocr": 0, "subtitle": 0}
    n_kf = n_chunks = 0
    rss_per_chunk = []
    texts = []
    for chunk in pipe.run(video, info=info):
        n_chunks += 1
        n_kf += len(chunk.keyframes)
        for x in chunk.texts:
            n_texts[x.source] = n_texts.get(x.source, 0) + 1
        texts += [(x.start, x.end, x.source, x.text) for x in chunk.texts]
        rss_per_chunk.append(round(_rss_mb()))
    wall, cpu = time.perf_counter() - t, _cpu_s() - c0
    load = pipe.times.seconds.get("load_models", 0.0)
    return {"mode": "streaming", "backend": backend, "duration": info.duration, "wall_s": wall, "cpu_s": cpu,
            "wall_excl_load_s": wall - load, "x_realtime": info.duration / (wall - load),
            "stages_s": {k: round(v, 2) for k, v in pipe.times.seconds.items()}, "chunks": n_chunks,
            "keyframes": n_kf, "texts": n_texts, "peak_rss_mb": round(_rss_mb()),
            "rss_mb_after_chunk": rss_per_chunk, **recall(video, texts)}


def recall(video: str, texts: list[tuple]) -> dict:
    """Sign and spoken-word recall against an eval.synth script beside the video ({} when there is none)."""
    import difflib
    import re

    script = Path(video).with_suffix(".json")
    if not script.is_file():
        return {}
    sc = json.loads(script.read_text())
    norm = lambda s: re.sub(r"[^a-z0-9 ]", "", s.lower())  # noqa: E731
    ocr = [(a, b, norm(t)) for a, b, src, t in texts if src == "ocr"]
    hit = 0
    for sign in sc["signs"]:  # every word of the sign read (fuzzily) by OCR lines overlapping its span
        seen = " ".join(t for a, b, t in ocr if a <= sign["end"] + 1 and b >= sign["start"] - 1).split()
        hit += all(any(w == s or difflib.SequenceMatcher(None, w, s).ratio() >= 0.8 for s in seen)
                   for w in norm(sign["text"]).split())
    words = set(norm(" ".join(t for *_, src, t in texts if src == "speech")).split())
    spoken = [w for x in sc["speech"] for w in norm(x["text"]).split() if len(w) > 3]
    return {"sign_recall": round(hit / max(1, len(sc["signs"])), 3), "signs": len(sc["signs"]),
            "spoken_word_recall": round(sum(w in words for w in spoken) / max(1, len(spoken)), 3)}


def run_naive(video: str, backend: str, overrides: list[str]) -> dict:
    """Decode everything first, then each stage in turn over the whole video."""
    import numpy as np

    from videomind.config import Config
    from videomind.ingest.asr import Transcriber
    from videomind.ingest.audio import iter_audio
    from videomind.ingest.decode import iter_frames
    from videomind.ingest.ocr import OcrTracker, load_engine, read_text
    from videomind.ingest.probe import probe
    from videomind.ingest.scenes import ShotDetector
    from videomind.ingest.visual import grey_grid, perceptual_descriptor

    cfg = Config.load(None, overrides)
    stages: dict[str, float] = {}
    info = probe(video)
    t = time.perf_counter()
    asr = Transcriber(cfg.models.asr, cfg.models.device, None, True, cpu_threads=cfg.ingest.asr_threads)
    ocr = load_engine(cfg.models.ocr)
    stages["load_models"] = time.perf_counter() - t

    t0, c0 = time.perf_counter(), _cpu_s()
    t = t0
    frames = list(iter_frames(info, 0, info.duration, cfg.ingest.fps, cfg.ingest.frame_size, backend=backend))
    stages["decode"] = time.perf_counter() - t
    t = time.perf_counter()
    audio = np.concatenate([b.samples for b in iter_audio(info)]) if info.has_audio else np.zeros(0, np.float32)
    stages["audio"] = time.perf_counter() - t
    t = time.perf_counter()
    det = ShotDetector(cfg.ingest.scene_threshold)
    keyframes = []
    for ft, img in frames:
        d = det.push(ft, perceptual_descriptor(img), grey_grid(img))
        if d.keyframe:
            keyframes.append((ft, img))
    stages["scenes"] = time.perf_counter() - t
    t = time.perf_counter()
    tracker, n_ocr = OcrTracker(), 0
    for ft, img in keyframes:
        n_ocr += len(tracker.update(ft, read_text(ocr, img, cfg.ingest.ocr_min_confidence)))
    n_ocr += len(tracker.flush(info.duration))
    stages["ocr"] = time.perf_counter() - t
    t = time.perf_counter()
    speech = asr(audio, 0.0)
    stages["asr"] = time.perf_counter() - t
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    return {"mode": "naive", "backend": backend, "duration": info.duration, "wall_s": wall + stages["load_models"],
            "cpu_s": cpu,
            "wall_excl_load_s": wall, "x_realtime": info.duration / wall,
            "stages_s": {k: round(v, 2) for k, v in stages.items()}, "keyframes": len(keyframes),
            "texts": {"speech": len(speech), "ocr": n_ocr}, "peak_rss_mb": round(_rss_mb())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--mode", default="both", choices=["both", "streaming", "naive"])
    ap.add_argument("--backend", default="auto", choices=["auto", "decord", "pyav"])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    a = ap.parse_args()
    if a.mode == "both":
        rows = []
        for mode in ("streaming", "naive"):
            sets = [x for kv in a.set for x in ("--set", kv)]
            out = subprocess.run([sys.executable, __file__, a.video, "--mode", mode, "--backend", a.backend, *sets],
                                 check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(_fmt(rows[-1]), file=sys.stderr)
        if a.json:
            a.json.write_text(json.dumps(rows, indent=1))
        print(json.dumps(rows))
        return
    row = (run_streaming if a.mode == "streaming" else run_naive)(a.video, a.backend, a.set)
    print(json.dumps(row))


def _fmt(r: dict) -> str:
    return (f"{r['mode']:>9} [{r['backend']}] {r['duration']:.0f}s video: {r['x_realtime']:.1f}x real time "
            f"(wall {r['wall_excl_load_s']:.1f}s + load {r['stages_s'].get('load_models', 0):.1f}s, "
            f"cpu {r['cpu_s']:.1f}s), "
            f"peak RSS {r['peak_rss_mb']} MB, stages {r['stages_s']}")


if __name__ == "__main__":
    main()
