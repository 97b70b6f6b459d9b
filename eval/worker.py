"""The per-video work of a benchmark run, in a worker process or a Ray task: ingest the video once (reopened
from the library when already done), answer its questions, and append each row to samples.jsonl as it comes.

:mod:`eval.runner` plans the run and fans these out (serially, on a process pool or on Ray); this module holds
what runs on the other side, and the samples.jsonl format both sides read and write.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eval.benchmarks import get as get_benchmark
from eval.benchmarks.base import Sample, distinct_options, predicted_choice, score
from videomind import Config

logger = logging.getLogger(__name__)

# -- the per-video work (runs in a worker process or a Ray task) ----------------------------------------------------
_VMS: dict[str, Any] = {}
_WARM: set[int] = set()  # ids of the VideoMinds in _VMS that have answered a question (models loaded)
_WARM_INGEST: set[int] = set()  # ids of the VideoMinds in _VMS whose ingest models are loaded


def _videomind(config: dict[str, Any]):
    """One VideoMind per process and config: models load once and serve every video of the worker."""
    from videomind import VideoMind

    key = json.dumps(config, sort_keys=True)
    if key not in _VMS:
        _VMS[key] = VideoMind(Config.from_dict(config))
    return _VMS[key]


def init_worker(threads: int | None, parent: int | None = None) -> None:
    """Set up a worker process of the runner's pool; ``parent``: the runner's process id."""
    # Set before torch is imported in this fresh (spawned) process: N workers share the cores instead of each
    # starting a thread per core.
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The runner decides when its workers stop and terminates them (SIGTERM). Ctrl-C reaches the whole process
    # group: here a KeyboardInterrupt would only be sent back as one video's error (the worker taking the next) or
    # break the pool. A forked worker would inherit the runner's handlers, which turn SIGTERM into an exception.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, signal.SIG_DFL)
    # tqdm's first bar (transformers' "Loading weights") makes a lock for the bars of processes sharing a terminal:
    # a named semaphore, here one no other process opens, registered with the resource tracker and unregistered
    # only by an orderly exit, which a terminated worker never has: Python warned "There appear to be N leaked
    # semaphore objects" after every stopped run. A thread lock serves the bars of this process as well.
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    if parent:
        _die_with(parent)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with(parent: int) -> None:
    """End this process when the process ``parent`` ends, however it ends (SIGKILL, the OOM killer, a crash):
    an orphaned worker would go on answering into samples.jsonl beside a resumed run (duplicate rows), then block
    for ever on the dead result pipe holding its models and stores.

    On Linux the kernel sends SIGKILL the moment the parent dies (prctl PR_SET_PDEATHSIG): nothing can be written
    after it, and it works while this process is busy in native code holding the GIL (decoding, a forward pass),
    where a watchdog thread would have to wait its turn. The signal comes when the parent *thread* that started
    this process ends: the runner starts its pools from its main thread. Elsewhere, a thread polls getppid().
    """
    if sys.platform.startswith("linux"):
        try:
            ok = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):  # no prctl in this libc
            ok = False
        if ok:
            if os.getppid() != parent:  # it ended before prctl: no signal will come
                os._exit(1)
            return
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()


def _watch_parent(parent: int, every: float = 0.2) -> None:
    while os.getppid() == parent:  # an orphan is adopted by init or a subreaper
        time.sleep(every)
    os._exit(1)


def ask_one(vm, memory, sample: Sample, bench) -> dict[str, Any]:
    """Ask one question; the row of samples.jsonl. Any error is recorded on the row (and retried on resume): a
    backend's malformed reply to one question must not cost the answers of the others."""
    t0 = time.perf_counter()
    error = ""
    options = distinct_options(sample.options)  # same positions: a choice indexes sample.options too
    try:
        # no options: an open question (ask() refuses an empty list as a multiple-choice slip)
        answer = vm.ask(memory, sample.question, options=options or None).to_dict()
    except Exception as e:  # noqa: BLE001 - reported on the row and in results.json
        logger.warning("question %s failed: %s: %s", sample.qid, type(e).__name__, e)
        logger.debug("question %s failed", sample.qid, exc_info=True)
        answer, error = {"text": "", "choice": None, "evidence": [], "steps": [], "policy": ""}, \
            f"{type(e).__name__}: {e}"
    ask_s = time.perf_counter() - t0
    pred, how = predicted_choice(answer, options)  # a reply quotes the options it was shown
    steps = answer.get("steps") or []
    row = {
        **_question_fields(sample),
        "prediction": {"choice": answer.get("choice"), "text": answer.get("text", ""),
                       "policy": answer.get("policy", "")},
        "pred": pred, "how": how, "correct": None if error else score(sample, pred), "error": error,
        "evidence": answer.get("evidence") or [], "trace": steps,
        "timings": {"ask_s": ask_s},
        "tokens": {"prompt": sum(s.get("prompt_tokens", 0) for s in steps),
                   "completion": sum(s.get("completion_tokens", 0) for s in steps)},
    }
    if options != sample.options:
        row["asked_options"] = options
    if hasattr(bench, "row_extras") and not error:
        row.update(bench.row_extras(sample, answer))
    return row


def _question_fields(sample: Sample) -> dict[str, Any]:
    """What a row of samples.jsonl says of its question: what is asked and how it is scored and grouped."""
    return {
        "qid": sample.qid, "benchmark": sample.benchmark, "split": sample.split, "video": sample.video,
        "categories": sample.categories, "duration": sample.duration, "duration_bucket": sample.duration_bucket,
        "meta": sample.meta, "question": sample.question, "options": sample.options, "answer": sample.answer,
        "answer_text": sample.options[sample.answer] if sample.answer is not None else None,
    }


ASKED = ("video", "question", "options")  # a row answers its question only while these are the same


def rescore(row: dict[str, Any], sample: Sample, bench) -> dict[str, Any] | None:
    """``row`` of samples.jsonl against ``sample`` as the annotations give it now: the prediction kept, what the
    row says of the question (answer, answer_text, categories, ...), ``correct`` and the benchmark's extras
    (needle: grounded) recomputed; a corrected answer key changes the scores of a resumed run as of a fresh one.

    Returns None when the row answers another question (its video, question or options changed): ask it again.
    """
    fields = json.loads(json.dumps(_standard_json(_question_fields(sample))))  # as read back from the file
    if any(row.get(k) != fields[k] for k in ASKED):
        return None
    out = {**row, **fields}
    if not row.get("error"):
        out["correct"] = score(sample, row.get("pred"))
        if hasattr(bench, "row_extras"):
            prediction = row.get("prediction") or {}
            answer = {**prediction, "evidence": row.get("evidence") or [], "steps": row.get("trace") or []}
            out.update(json.loads(json.dumps(_standard_json(bench.row_extras(sample, answer)))))
    return out


def process_video(job: dict[str, Any], config: dict[str, Any], sink: str | None = None) -> dict[str, Any]:
    """Ingest one video (reopened from the library when already done) and answer its questions.

    Args:
        job: {"benchmark", "video", "path" (the file to ingest), "samples": [Sample.to_dict(), ...]}.
        config: the resolved Config as a dict.
        sink: samples.jsonl to append each row to as it is answered (None: the caller writes the rows).
    Returns:
        {"video", "rows", "ingest_s", "error"}; error is set (and rows empty) when the video cannot be ingested.
    """
    bench = get_benchmark(job["benchmark"])
    vm = _videomind(config)
    warmup_s = _warm_up_ingest(vm)
    t0 = time.perf_counter()
    try:
        memory = vm.ingest(job["path"])
    except Exception as e:  # noqa: BLE001 - one unreadable video must not stop a benchmark run; it is reported
        logger.warning("cannot ingest %s: %s: %s", job["path"], type(e).__name__, e)
        logger.debug("cannot ingest %s", job["path"], exc_info=True)
        return {"video": job["video"], "rows": [], "ingest_s": time.perf_counter() - t0, "warmup_s": warmup_s,
                "error": f"{type(e).__name__}: {e}"}
    ingest_s = time.perf_counter() - t0
    warmup_s += _warm_up(vm, memory, job["samples"][0]) if job["samples"] else 0.0
    rows = []
    for d in job["samples"]:
        row = ask_one(vm, memory, Sample.from_dict(d), bench)
        row["timings"]["video_ingest_s"] = ingest_s
        if sink:
            append_row(sink, row)
        rows.append(row)
    return {"video": job["video"], "rows": rows, "ingest_s": ingest_s, "warmup_s": warmup_s, "error": ""}


def _warm_up_ingest(vm) -> float:
    """Load the ingest models once in each process, before the first video's ingest is timed: they load on first
    use, and that one-off cost (seconds) was charged to the video_ingest_s of whichever video came first."""
    if id(vm) in _WARM_INGEST:
        return 0.0
    t0 = time.perf_counter()
    try:
        vm.warm_up_ingest()
    except Exception:  # noqa: BLE001 - the ingest loads them again and reports the error as the video's
        logger.debug("loading the ingest models failed", exc_info=True)
    _WARM_INGEST.add(id(vm))
    return time.perf_counter() - t0


def _warm_up(vm, memory, sample: dict[str, Any]) -> float:
    """Ask the first question once, unrecorded, in each fresh process: models load lazily on the first question,
    and that one-off cost must not be charged to whichever question happens to come first."""
    if id(vm) in _WARM:
        return 0.0
    t0 = time.perf_counter()
    try:
        vm.ask(memory, sample["question"], options=distinct_options(sample["options"]) or None)
    except Exception:  # noqa: BLE001 - the real ask of the same question records the error on its row
        logger.debug("warm-up question failed", exc_info=True)
    _WARM.add(id(vm))
    return time.perf_counter() - t0


# -- samples.jsonl ----------------------------------------------------------------------------------------------------
def _standard_json(value: Any) -> Any:
    """``value`` with NaN/inf floats as strings ("inf"): Python writes them as bare NaN/Infinity, which is not JSON
    and which jq, JavaScript and pandas refuse (a model's argument of 1e400 lands in a step's args)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _standard_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_standard_json(v) for v in value]
    return value


def append_row(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one JSON line with a single write on an O_APPEND descriptor, so that concurrent workers never
    interleave and a kill leaves at most one partial last line (dropped on resume)."""
    data = (json.dumps(_standard_json(row), ensure_ascii=False, allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write_rows(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Replace the file with ``rows``, one JSON line each (written beside it, then renamed over it: a kill leaves
    the old file or the new one)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(_standard_json(r), ensure_ascii=False, allow_nan=False) + "\n" for r in rows),
                   encoding="utf-8")
    tmp.replace(path)


def read_rows(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """{qid: row} of a samples.jsonl (the last row of a qid wins; an unparsable line, e.g. cut by a kill, is
    skipped)."""
    rows: dict[str, dict[str, Any]] = {}
    p = Path(path)
    if not p.is_file():
        return rows
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        rows[row["qid"]] = row
    return rows


def repair_tail(path: Path) -> None:
    """Cut a partial last line left by a killed run, so the next append starts on a fresh line."""
    if path.is_file() and path.stat().st_size:
        data = path.read_bytes()
        if not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])
            logger.warning("dropped a partial last line of %s (the run was interrupted)", path)
