"""The ``videomind`` command line: each subcommand is a thin, typed wrapper over the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from videomind.config import Config
from videomind.errors import VideoMindError
from videomind.progress import ProgressBars

logger = logging.getLogger("videomind")


def cmd_ingest(video: str, config: Config, rebuild: bool = False, follow: bool = False,
               idle_timeout: float = 10.0) -> int:
    """Ingest VIDEO into its memory (reopened instantly when already done)."""
    from videomind.api import VideoMind

    if follow:
        memory = None
        for memory in VideoMind(config).follow(video, idle_timeout=idle_timeout):
            state = "complete" if memory.is_complete else "recording goes on"
            print(f"memory up to {memory.resume_point:.0f} s ({state})", flush=True)
    else:
        with ProgressBars() as bars:
            memory = VideoMind(config).ingest(video, progress=bars, rebuild=rebuild)
    print(f"memory: {getattr(memory, 'directory', '?')}")
    for line in getattr(memory, "describe", lambda: [])():
        print(f"  {line}")
    return 0


def cmd_ask(video: str, question: str, options: list[str] | None, until: float | None, as_json: bool,
            trace: bool, config: Config) -> int:
    """Answer QUESTION about VIDEO (ingesting it first if needed), with timestamped evidence."""
    from videomind.api import VideoMind

    vm = VideoMind(config)
    with ProgressBars() as bars:
        memory = vm.ingest(video, progress=bars)
    answer = vm.ask(memory, question, options=options or None, until=until)
    if as_json:
        print(json.dumps(answer.to_dict(), indent=2))
        return 0
    if trace:
        for step in answer.steps:
            print(step.summary()[:200])
        print()
    print(answer.format())
    return 0


def cmd_models(config: Config) -> int:
    """Show which model serves each capability on this machine, and why the others are unavailable."""
    from videomind.models.registry import describe

    for row in describe(config.models, config.agent):
        mark = "ok " if row.available else "-- "
        print(f"{mark}{row.capability:<13} {row.name:<24} {row.detail}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML/YAML/JSON config file")
    common.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set ingest.fps=2 (repeatable)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    p = argparse.ArgumentParser(prog="videomind", description="Question answering over long videos.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("ingest", parents=[common], help=cmd_ingest.__doc__, description=cmd_ingest.__doc__)
    s.add_argument("video")
    s.add_argument("--rebuild", action="store_true", help="drop the stored memory and ingest again")
    s.add_argument("--follow", action="store_true",
                   help="VIDEO is still being recorded (.ts/.mkv/fragmented .mp4): ingest it as it grows")
    s.add_argument("--idle-timeout", type=float, default=10.0,
                   help="with --follow: the recording is over once the file has not grown for this many seconds")
    s = sub.add_parser("ask", parents=[common], help=cmd_ask.__doc__, description=cmd_ask.__doc__)
    s.add_argument("video")
    s.add_argument("question")
    s.add_argument("-o", "--option", action="append", dest="options", help="a multiple-choice option (repeat)")
    s.add_argument("--until", type=float, help="answer using only what was observed before this time (s)")
    s.add_argument("--json", action="store_true", help="print the answer, evidence and trace as JSON")
    s.add_argument("--trace", action="store_true", help="print every agent step")
    sub.add_parser("models", parents=[common], help=cmd_models.__doc__, description=cmd_models.__doc__)
    sub.add_parser("eval", help=cmd_eval.__doc__, description=cmd_eval.__doc__)
    return p


def cmd_eval(argv: list[str]) -> int:
    """Run or report a benchmark evaluation (`videomind eval run --help`); needs a VideoMind checkout."""
    import importlib

    if (Path.cwd() / "eval" / "__main__.py").is_file() and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:  # eval/ sits beside the package in a checkout and uses only the public API: load it by name
        module = importlib.import_module("eval.__main__")
    except ImportError as e:
        print("error: the evaluation harness (eval/) is not importable: run `videomind eval` from the root of a "
              f"VideoMind checkout ({e})", file=sys.stderr)
        return 2
    return module.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["eval"]:
        return cmd_eval(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        config = Config.load(args.config, args.set)
        if args.command == "ingest":
            return cmd_ingest(args.video, config, args.rebuild, args.follow, args.idle_timeout)
        if args.command == "ask":
            return cmd_ask(args.video, args.question, args.options, args.until, args.json, args.trace, config)
        return cmd_models(config)
    except VideoMindError as e:
        if args.verbose:
            logger.exception("failed")
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if getattr(args, "rebuild", False):
            print("interrupted: the rebuild was abandoned and the previous memory is unchanged", file=sys.stderr)
        else:
            print("interrupted: finished chunks are kept; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
