"""python -m eval.synth --minutes 10 --seed 0 --out DIR [--name NAME]"""

from __future__ import annotations

import argparse
import json
import sys

from eval.synth import MIN_MINUTES, MissingTool, generate, minutes_arg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m eval.synth",
        description="Generate a deterministic synthetic video with needle questions: DIR/NAME.mp4, DIR/NAME.json "
        "(timeline) and DIR/NAME.samples.jsonl (questions, answers, ground-truth spans).")
    ap.add_argument("--minutes", type=minutes_arg, default=10.0,
                    help=f"length of the video (default 10, minimum {MIN_MINUTES:g})")
    ap.add_argument("--seed", type=int, default=0, help="the same seed gives the same video (default 0)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--name", help="file name stem (default synth_s{seed}_{minutes}m)")
    ap.add_argument("--speech-ratio", type=float, default=0.5, help="fraction of the time with speech (0.5)")
    ap.add_argument("--cache-dir", help="espeak-ng sentence cache (default $VIDEOMIND_SYNTH_CACHE, else "
                    "synth-tts in $VIDEOMIND_HOME, ~/.cache/videomind when that is not set)")
    ap.add_argument("--force", action="store_true", help="render even when up-to-date files exist")
    args = ap.parse_args(argv)
    try:
        res = generate(args.out, args.minutes, args.seed, args.name, speech_ratio=args.speech_ratio,
                       cache_dir=args.cache_dir, force=args.force)
    except (MissingTool, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stats = json.loads(res.script.read_text())["stats"]
    verb = "rendered" if res.rendered else "up to date"
    print(f"{verb} in {res.seconds:.1f} s: {res.video}")
    print(f"script:  {res.script}\nsamples: {res.samples}")
    print("stats:   " + ", ".join(f"{k}={v}" for k, v in stats.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
