"""Stage cache: a re-ingest after a memory-only config change reuses the Whisper and OCR outputs.

    python bench/ingest/bench_stage_cache.py [--minutes 3] [--video PATH] [--json OUT]

Generates a speech-dense video (``make_video.py``, speech 100% of the time, a sign per scene) unless ``--video``
is given, ingests it through ``VideoMind.ingest`` into a fresh library, then ingests it again with
``memory.clip_seconds`` changed (a new memory store) and prints both wall and CPU times, the pipeline's per-stage
seconds and the stage cache's hits and misses. The models are loaded before the first timing, so neither run pays
for loading them.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _ingest(vm, video: Path, pipes: list) -> dict:
    t, c = time.perf_counter(), _cpu_s()
    mem = vm.ingest(video)
    wall, cpu = time.perf_counter() - t, _cpu_s() - c
    pipe = pipes[-1]
    out = {"store": mem.key, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
           "stages_s": {k: round(v, 2) for k, v in pipe.times.seconds.items()},
           "cache": {k: dict(v) for k, v in pipe.cache_stats.items()}, "counts": mem.counts()}
    mem.close()
    return out


def run(video: Path, library: Path) -> dict:
    from videomind.api import VideoMind
    from videomind.config import Config
    from videomind.ingest.asr import load_whisper
    from videomind.ingest.ocr import load_engine
    from videomind.ingest.pipeline import IngestPipeline

    pipes: list[IngestPipeline] = []
    run_ = IngestPipeline.run

    def recording_run(self, *a, **kw):  # keep the pipeline VideoMind.ingest builds, for its stats
        pipes.append(self)
        yield from run_(self, *a, **kw)

    IngestPipeline.run = recording_run
    cfg = Config.from_dict({"library": str(library)})
    vm = VideoMind(cfg)
    load_whisper(cfg.models.asr, cfg.models.device)
    load_engine(cfg.models.ocr)
    vm.embedder.embed(["warm up"])

    first = _ingest(vm, video, pipes)
    cfg.memory.clip_seconds = 5.0  # memory only: a new store
    second = _ingest(vm, video, pipes)
    info = pipes[-1].probe(video)
    cache = vm.library.stage_cache_path(info.content_hash)
    return {"video": str(video), "duration_s": round(info.duration, 1), "first": first,
            "second_clip_seconds_5": second, "speedup": round(first["wall_s"] / second["wall_s"], 2),
            "cache_file_mb": round(cache.stat().st_size / 2**20, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--video", type=Path, help="a video to use instead of a generated one")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        video = a.video
        if video is None:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from make_video import make

            video = make(Path(d) / "speech.mp4", a.minutes, speech=1.0)
        res = run(video, Path(d) / "library")
    text = json.dumps(res, indent=2)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
