"""`make demo`: generate a sample video with known narration, ingest it, and answer a question about it.

Uses only the public API and the embedded offline models. Prints the answer with its timestamped evidence and
checks it against the generator's ground truth.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from eval.synth import MIN_MINUTES, minutes_arg
from videomind import Config, ProgressBars, VideoMind, VideoMindError


def _overlaps(evidence, spans, slack: float = 1.0) -> bool:
    return any(e.start <= t1 + slack and e.end >= t0 - slack for e in evidence for t0, t1 in spans)


def run(out: Path, minutes: float, seed: int) -> int:
    from eval.synth import generate, load_samples

    # generate() reuses the files when they are those of these minutes and seed (a second `make demo` is fast)
    print(f"sample video: {minutes:g} minutes, seed {seed}, in {out}/ (generated unless it is there already) ...")
    res = generate(out, minutes=minutes, seed=seed, name="sample")
    video = res.video
    samples = load_samples(res.samples)
    sample = next(s for s in samples if s["task"] == "spoken_fact")

    vm = VideoMind(Config.from_dict({"library": str(out / "library")}))
    t0 = time.perf_counter()
    with ProgressBars() as bars:
        memory = vm.ingest(video, progress=bars)
    print(f"ingested {video.name} in {time.perf_counter() - t0:.1f} s\n")

    answer = vm.ask(memory, sample["question"], options=sample["options"])
    print(answer.format())
    truth = ", ".join(f"{a:.1f}-{b:.1f}s" for a, b in sample["spans"])
    correct = answer.choice == sample["answer"]
    grounded = _overlaps(answer.evidence, sample["spans"])
    print(f"\nground truth: ({chr(65 + sample['answer'])}) {sample['answer_text']} at {truth}")
    print(f"answer {'correct' if correct else 'WRONG'}; evidence {'matches' if grounded else 'does NOT match'} "
          f"the true time span")
    return 0 if correct and grounded else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.demo", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("demo"))
    # checked here, as a usage error: generate() refused a too short video with a ValueError traceback
    p.add_argument("--minutes", type=minutes_arg, default=3.0,
                   help=f"length of the sample video (default 3, minimum {MIN_MINUTES:g})")
    p.add_argument("--seed", type=int, default=0, help="any integer; the same seed gives the same video (default 0)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args.out, args.minutes, args.seed)
    except VideoMindError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
