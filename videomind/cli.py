"""The ``videomind`` command line: each subcommand is a thin, typed wrapper over the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path

from videomind.config import Config
from videomind.errors import RebuildInterrupted, VideoMindError
from videomind.progress import ProgressBars

logger = logging.getLogger("videomind")


def cmd_ingest(video: str, config: Config, rebuild: bool = False, follow: bool = False,
               idle_timeout: float = 10.0) -> int:
    """Ingest VIDEO into its memory; a finished memory is reopened, an interrupted one resumed."""
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
    from videomind.inputs import check_question

    check_question(question, options or None)  # before ingest(), which can take hours on a long video
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


def cmd_memories(config: Config, delete: list[str] | None = None) -> int:
    """List the stored memories (key, video length, state, video), or delete the ones named by --delete KEY."""
    from videomind.api import VideoMind
    from videomind.errors import InputError
    from videomind.types import format_time

    library = VideoMind(config).library
    if delete:
        for name in delete:
            deleted = library.delete(name)  # refused (StoreError) while another process ingests into one
            if not deleted:
                raise InputError(f"no memory {name!r} in {library.root}: `videomind memories` lists them")
            print(f"deleted {name}: {_deleted_folders(deleted, library)}")
        return 0
    rows = library.list()
    if not rows:
        print(f"no memories in {library.root}")
    for m in rows:
        video = m.get("video") or {}
        state = (m["error"] if m.get("error") else
                 ("rebuild not swapped in" if m.get("complete") else "unfinished rebuild") if m.get("rebuild") else
                 "complete" if m.get("complete") else "incomplete (resumable)")
        length = format_time(float(video.get("duration") or 0.0))
        print(f"{m['name']:<32} {length:>8}  {state:<22} {video.get('path', '?')}")
        if m.get("rebuild"):
            print(f"    a rebuild of {m['key']} not swapped in (under way, or left by a killed ingest): `videomind "
                  f"memories --delete {m['name']}` deletes only it; the next `videomind ingest --rebuild` starts it "
                  f"over")
    return 0


def _deleted_folders(folders: list[Path], library) -> str:
    """What ``library.delete`` deleted, in words."""
    from videomind.memory.library import OLD_SUFFIX, REBUILD_SUFFIX

    words = ["its rebuild" if d.name.endswith(REBUILD_SUFFIX) else
             "the store an interrupted swap replaced" if d.name.endswith(OLD_SUFFIX) else "the memory"
             for d in folders]
    if words == ["its rebuild"]:
        key = folders[0].name[1:-len(REBUILD_SUFFIX)]
        kept = f"; the memory {key} is kept" if library.path(key).is_dir() else ""
        return f"the rebuild of {key} ({folders[0]}){kept}"
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def _seconds(positive: bool):
    """An argparse type: a finite number of seconds, > 0 (``positive``) or >= 0."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds {'> 0' if positive else '>= 0'}")
        return value
    return parse


def _common_options(suppress: bool) -> argparse.ArgumentParser:
    """--config/--set/-v, accepted before the subcommand and after it; after it, SUPPRESS keeps what came before."""
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=default(None), help="TOML/YAML/JSON config file")
    # the two places keep separate lists: after the subcommand, an appended list would replace the one before it
    common.add_argument("--set", action="append", default=default(None), metavar="KEY=VALUE",
                        dest="set" if suppress else "set_before",
                        help="override a config key, e.g. --set ingest.fps=2 (repeatable)")
    common.add_argument("-v", "--verbose", action="store_true", default=default(False),
                        help="debug logging and full tracebacks")
    return common


def build_parser() -> argparse.ArgumentParser:
    from videomind import __version__

    common = _common_options(suppress=True)
    p = argparse.ArgumentParser(prog="videomind", description="Question answering over long videos.",
                                parents=[_common_options(suppress=False)])
    p.add_argument("--version", action="version", version=f"videomind {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("ingest", parents=[common], help=cmd_ingest.__doc__, description=cmd_ingest.__doc__)
    s.add_argument("video", help="a video file (or, with --follow, a recording still being written)")
    s.add_argument("--rebuild", action="store_true",
                   help="ingest again from the start; the stored memory is replaced once the rebuild finishes")
    s.add_argument("--follow", action="store_true",
                   help="VIDEO is still being recorded (.ts/.mkv/fragmented .mp4): ingest it as it grows")
    s.add_argument("--idle-timeout", type=_seconds(positive=True), metavar="SECONDS",
                   help="with --follow: the recording is over once the file has not grown for this many seconds "
                        "(default: 10)")
    s.set_defaults(usage_error=s.error)  # _check_flags reports under `videomind ingest`'s usage
    s = sub.add_parser("ask", parents=[common], help=cmd_ask.__doc__, description=cmd_ask.__doc__)
    s.add_argument("video", help="a video file (ingested first unless its memory is complete)")
    s.add_argument("question")
    s.add_argument("-o", "--option", action="append", dest="options", metavar="OPTION",
                   help="a multiple-choice option (repeat: at least two)")
    s.add_argument("--until", type=_seconds(positive=False), metavar="SECONDS",
                   help="answer using only what was observed before this time")
    s.add_argument("--json", action="store_true", help="print the answer, evidence and trace as JSON")
    s.add_argument("--trace", action="store_true", help="print every agent step")
    sub.add_parser("models", parents=[common], help=cmd_models.__doc__, description=cmd_models.__doc__)
    s = sub.add_parser("memories", parents=[common], help=cmd_memories.__doc__, description=cmd_memories.__doc__)
    s.add_argument("--delete", action="append", metavar="KEY",
                   help="delete the memory KEY with its rebuild, if any; KEY.rebuild: only that rebuild (repeatable)")
    sub.add_parser("eval", help=cmd_eval.__doc__, description=cmd_eval.__doc__)
    return p


def _check_flags(args: argparse.Namespace) -> None:
    """Combinations argparse cannot express: reported as usage errors, before any work."""
    if args.command != "ingest":
        return
    if args.follow and args.rebuild:
        args.usage_error("--rebuild cannot be combined with --follow: delete the recording's memory (`videomind "
                         "memories` lists its key; `videomind memories --delete KEY`) to follow it from the start")
    if args.idle_timeout is not None and not args.follow:
        args.usage_error("--idle-timeout only applies with --follow")


def cmd_eval(argv: list[str]) -> int:
    """Run or report a benchmark evaluation (`videomind eval run --help`); needs a VideoMind checkout."""
    import importlib

    # eval/ sits beside the package in a checkout (the package's parent when installed editable, or the current
    # directory) and uses only the public API: load it by name
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (root / "eval" / "__main__.py").is_file():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            break
    try:
        module = importlib.import_module("eval.__main__")
    except ImportError as e:
        print("error: the evaluation harness (eval/) is not importable: run `videomind eval` from the root of a "
              f"VideoMind checkout ({e})", file=sys.stderr)
        return 2
    return module.main(argv, prog="videomind eval")


def _split_eval(argv: list[str]) -> list[str] | None:
    """``[-v] eval ARGS``: ARGS for the evaluation harness (with -v passed on), else None."""
    lead = 0
    while lead < len(argv) and argv[lead] in ("-v", "--verbose"):
        lead += 1
    if argv[lead:lead + 1] != ["eval"]:
        return None
    return argv[:lead][:1] + argv[lead + 1:]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    eval_argv = _split_eval(argv)
    if eval_argv is not None:
        return cmd_eval(eval_argv)
    args = build_parser().parse_args(argv)
    _check_flags(args)
    if not sys.stderr.isatty():  # like ProgressBars: no bars from the model libraries in a log file or a pipe
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # -v: our own debug messages; the libraries' (faiss's loader, the VAD's segment lists...) only from INFO up
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.verbose:
        logging.getLogger("videomind").setLevel(logging.DEBUG)
    try:
        config = Config.load(args.config, (args.set_before or []) + getattr(args, "set", []))
        if args.command == "ingest":
            idle = 10.0 if args.idle_timeout is None else args.idle_timeout
            rc = cmd_ingest(args.video, config, args.rebuild, args.follow, idle)
        elif args.command == "ask":
            rc = cmd_ask(args.video, args.question, args.options, args.until, args.json, args.trace, config)
        elif args.command == "memories":
            rc = cmd_memories(config, args.delete)
        else:
            rc = cmd_models(config)
        sys.stdout.flush()  # a closed pipe is reported here, not at interpreter exit
        return rc
    except VideoMindError as e:
        if args.verbose:
            logger.exception("failed")
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `videomind ... | head`: the reader has what it wanted
        try:  # nothing more to flush at exit (that would print "Exception ignored ... BrokenPipeError")
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a file descriptor (captured, in tests)
            pass
        return 141  # 128 + SIGPIPE, as a shell reports it
    except OSError as e:  # the library folder is not writable, the disk is full, ...
        if args.verbose:
            logger.exception("failed")
        print(f"error: {e} (rerun with -v for the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        if args.command == "models":
            print("interrupted", file=sys.stderr)
        elif isinstance(e, RebuildInterrupted):  # how far the rebuild had got: the API says
            print(f"interrupted: {e}", file=sys.stderr)
        elif getattr(args, "rebuild", False):  # before the rebuild stored anything
            print("interrupted: the rebuild had not started storing; the memory stored before it (if any) is "
                  "unchanged", file=sys.stderr)
        else:
            print("interrupted: the chunks already stored (if any) are kept; run the same command again to resume",
                  file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
