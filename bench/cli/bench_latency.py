"""New-process latency of `videomind ask` and `videomind ingest` on a complete memory.

    python bench/cli/bench_latency.py [--video PATH] [--runs 5] [--home DIR] [--json OUT]

Makes a 13 s test video (blue frames over the shared jfk.flac speech) unless ``--video`` is given, ingests it once
into a fresh VIDEOMIND_HOME, then times each variant as a new process, round-robin (one run of each variant per
round, so a load change on a shared machine hits all of them alike), and prints the median, min and max wall time:

- ``ask``: ``python -m videomind ask VIDEO "What is said?"``, as a user runs it;
- ``ask, sentence-transformers``: the same command with the text embedder loaded the way it was before
  bert_embed.py (``SentenceTransformer(folder)``, which imports sentence-transformers, transformers' model code,
  scikit-learn and pandas): the before variant, reached by the small runner below, not by a switch in the product;
- ``ask, OMP_WAIT_POLICY=PASSIVE``: ``ask`` with OpenMP's idle threads sleeping instead of spinning (torch's
  2-thread matmuls on a busy machine wait for a descheduled partner);
- ``ingest``: ``python -m videomind ingest VIDEO`` of the complete memory (a no-op: reopens it, loads no model).

The ask variants must print the same answer; the script stops if they do not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPEECH = REPO.parent / "shared" / "data" / "media" / "jfk.flac"
QUESTION = "What is said?"

# The CLI with the text embedder loaded through sentence-transformers, as before: the plain-PyTorch path is
# taken only for folders bert_embed.supports(), so saying no to every folder gives the old load.
BEFORE = """
import sys
from videomind.models import bert_embed
bert_embed.supports = lambda folder: False
from videomind.cli import main
sys.exit(main(sys.argv[1:]))
"""


def make_video(out: Path) -> Path:
    if not SPEECH.is_file():
        sys.exit(f"no speech at {SPEECH}: pass --video PATH")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=320x240:r=25",
                    "-i", str(SPEECH), "-shortest", "-c:v", "libx264", "-c:a", "aac", str(out)], check=True)
    return out


def variants(video: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (command, extra environment)."""
    ask = ["ask", video, QUESTION]
    return {
        "ask": ([sys.executable, "-m", "videomind", *ask], {}),
        "ask, sentence-transformers (before)": ([sys.executable, "-c", BEFORE, *ask], {}),
        "ask, OMP_WAIT_POLICY=PASSIVE": ([sys.executable, "-m", "videomind", *ask], {"OMP_WAIT_POLICY": "PASSIVE"}),
        "ingest (complete: no-op)": ([sys.executable, "-m", "videomind", "ingest", video], {}),
    }


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} ... failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return wall, r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", help="a video to use instead of the generated one")
    ap.add_argument("--runs", type=int, default=5, help="runs of each variant (default 5)")
    ap.add_argument("--home", help="VIDEOMIND_HOME to use (default: a fresh temporary folder)")
    ap.add_argument("--json", help="also write the timings here")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="bench_latency_")
    home = Path(args.home or tmp.name) / "home"
    video = args.video or str(make_video(Path(tmp.name) / "talk.mp4"))
    env = {**os.environ, "VIDEOMIND_HOME": str(home)}
    env.pop("OMP_WAIT_POLICY", None)
    t = time.perf_counter()
    timed([sys.executable, "-m", "videomind", "ingest", video], env)
    print(f"first ingest of {video}: {time.perf_counter() - t:.1f} s (VIDEOMIND_HOME={home})", flush=True)

    runs = variants(video)
    walls: dict[str, list[float]] = {name: [] for name in runs}
    answers: dict[str, set[str]] = {name: set() for name in runs}
    for i in range(args.runs):
        for name, (cmd, extra) in runs.items():
            wall, out = timed(cmd, {**env, **extra})
            walls[name].append(wall)
            answers[name].add(out)
        print(f"round {i + 1}/{args.runs}: " + ", ".join(f"{w[-1]:.2f}" for w in walls.values()), flush=True)
    asked = set().union(*(answers[name] for name in runs if name.startswith("ask")))
    if len(asked) != 1:
        sys.exit("the ask variants answered differently:\n" + "\n---\n".join(sorted(asked)))

    print(f"\n{'variant':<38} {'median':>7} {'min':>6} {'max':>6}  (s, {args.runs} runs, new process each)")
    for name, w in walls.items():
        print(f"{name:<38} {statistics.median(w):7.2f} {min(w):6.2f} {max(w):6.2f}")
    print(f"\nanswer (the same in every ask variant):\n{asked.pop().strip()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"video": video, "question": QUESTION, "runs": args.runs,
                                               "wall_s": walls, "load_avg": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
