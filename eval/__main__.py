"""Benchmark evaluation of VideoMind (also `videomind eval ...`).

    python -m eval run --benchmark egoschema --annotations data/egoschema/questions.json \\
        --videos data/egoschema/videos --out runs/ego [--limit 20] [--workers 2] [--ray-address local|ADDR] \\
        [--config vm.toml] [--set agent.backend=openai ...]
    python -m eval report runs/ego
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from eval.benchmarks import NAMES
from videomind import VideoMindError


def cmd_run(args: argparse.Namespace) -> int:
    """Run (or resume) a benchmark: ingest each video once, ask every question, write samples.jsonl and
    results.json under --out."""
    from eval.runner import RunSpec, run

    spec = RunSpec(benchmark=args.benchmark, annotations=args.annotations, videos=args.videos, out=args.out,
                   split=args.split, limit=args.limit, workers=args.workers, ray_address=args.ray_address,
                   config_file=args.config, overrides=args.set or [], include_unlabelled=args.include_unlabelled)
    results = run(spec)
    print(summary(results, Path(args.out)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write report.md and plots (PNG) for a finished run folder."""
    from eval.report import write_report

    path = write_report(Path(args.run), Path(args.out) if args.out else None)
    print(f"wrote {path}")
    return 0


def summary(results: dict, out: Path) -> str:
    m, c = results["metrics"], results["counts"]
    o = m["overall"]
    acc = "n/a" if o["accuracy"] is None else f"{100 * o['accuracy']:.1f}%"
    se = f" ± {100 * o['se']:.1f}" if o.get("se") is not None else ""
    lines = [f"{results['benchmark']}: accuracy {acc}{se} on {o['n']} questions ({o['n_videos']} videos)"]
    if m.get("m_avg") is not None:
        lines.append(f"M-avg (mean of per-task accuracy): {100 * m['m_avg']:.1f}%")
    if c["missing_video_questions"] or results["unreadable_videos"]:
        lines.append(f"WARNING: {len(results['missing_videos'])} videos missing, {len(results['unreadable_videos'])} "
                     f"unreadable ({c['missing_video_questions'] + c['unreadable_video_questions']} questions not "
                     "asked): see results.json")
    if c["errors"]:
        first = results["errors"][0]
        lines.append(f"WARNING: {c['errors']} questions failed and are left out of the accuracy (e.g. {first['qid']}: "
                     f"{first['error'][:200]}); a rerun of the command asks them again: see errors in results.json")
    if c["unlabelled_in_annotations"] and not results["run"]["include_unlabelled"]:
        lines.append(f"{c['unlabelled_in_annotations']} questions have no public answer and were not asked "
                     "(--include-unlabelled asks them and records the predictions)")
    if m.get("unextractable"):
        lines.append(f"{len(m['unextractable'])} answers named no option (counted wrong; listed in results.json)")
    lines.append(f"results: {out / 'results.json'}  samples: {out / 'samples.jsonl'}")
    return "\n".join(lines)


def build_parser(prog: str = "python -m eval") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO) and show tracebacks")
    # -v after the subcommand too (`python -m eval run ... -v`); SUPPRESS keeps a -v given before it
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="log progress (INFO) and show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help=" ".join(cmd_run.__doc__.split()), description=cmd_run.__doc__, parents=[verbose])
    r.add_argument("--benchmark", required=True, choices=NAMES)
    r.add_argument("--annotations", required=True, help="the benchmark's annotation file (or its folder)")
    r.add_argument("--videos", help="folder of the benchmark's videos (default: beside the annotations)")
    r.add_argument("--out", required=True, help="run folder (resumed when it exists)")
    r.add_argument("--split", help="videomme: wo_subs | w_subs; mlvu: dev | test; longvideobench: val | test; "
                                        "egoschema: subset | fullset")
    r.add_argument("--limit", type=int, help="only the first N questions (smoke runs)")
    r.add_argument("--workers", type=int, default=1, help="videos in parallel (processes, or Ray tasks)")
    r.add_argument("--ray-address", help="run videos as Ray tasks: 'local' or a cluster address (ray.init)")
    r.add_argument("--config", help="a VideoMind config file (.toml/.yaml/.json)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, e.g. agent.max_steps=8")
    r.add_argument("--include-unlabelled", action="store_true",
                   help="also ask questions without a public answer (their predictions are recorded, not scored)")
    r.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help=cmd_report.__doc__.split("\n")[0], description=cmd_report.__doc__,
                         parents=[verbose])
    rep.add_argument("run", help="a run folder (holding results.json and samples.jsonl)")
    rep.add_argument("--out", help="where to write report.md and the plots (default: the run folder)")
    rep.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None, prog: str = "python -m eval") -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except VideoMindError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # one line, not a traceback, unless -v; ValueError/KeyError: malformed annotations, mostly
        if args.verbose:
            raise
        hint = "a malformed annotation file? " if isinstance(e, (ValueError, KeyError)) else ""
        message = " ".join(str(e).split())
        print(f"error: {type(e).__name__}: {message} ({hint}rerun with -v for details)", file=sys.stderr)
        return 2 if hint else 1
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP during a run (eval.runner.Stopped)
        if args.command == "run":
            print("interrupted: the questions answered so far are kept in samples.jsonl; run the same command "
                  "again to resume", file=sys.stderr)
        else:
            print("interrupted", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)  # as a shell reports a process ended by that signal


if __name__ == "__main__":
    sys.exit(main())
