"""Run a benchmark through the public API: ingest each video once, ask its questions, record everything.

    from eval.runner import RunSpec, run
    results = run(RunSpec("egoschema", "data/egoschema/questions.json", "data/egoschema/videos", "runs/ego"))

Writes ``<out>/samples.jsonl`` (one row per question as it is answered: question, options, prediction, correct,
evidence, full agent trace, timings, tokens), ``<out>/results.json`` (metrics by split, category and duration with
standard errors clustered by video, resolved config, git sha, models) and ``<out>/run.json`` (what was asked for).
A stopped run resumes: questions already in samples.jsonl are not asked again (unless their video, question or
options changed), and their answers are scored against the annotations as they are now. Videos run in parallel on a
local process pool (``workers``) or as Ray tasks (``ray_address``); the results do not depend on either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterable

from eval.benchmarks import get as get_benchmark
from eval.benchmarks.base import Sample
from eval.worker import append_row, init_worker, process_video, read_rows, repair_tail, rescore, write_rows
from videomind import Config, ConfigError, InputError, VideoMindError

logger = logging.getLogger(__name__)

SAMPLES, RESULTS, RUN = "samples.jsonl", "results.json", "run.json"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class RunSpec:
    """What to run; the CLI flags of ``python -m eval run`` map one to one onto these fields."""

    benchmark: str
    annotations: str
    videos: str | None
    out: str
    split: str | None = None
    limit: int | None = None  # the first N questions (in the benchmark's order): smoke runs
    workers: int = 1  # processes (local) or concurrent Ray tasks
    ray_address: str | None = None  # "local" starts a Ray instance on this machine; else ray.init(address=...)
    config_file: str | None = None
    overrides: list[str] = field(default_factory=list)  # "key=value", as `--set`
    include_unlabelled: bool = False  # also ask questions without a public answer (predictions for a server)

    def __post_init__(self):
        # samples[:-1] would silently drop the last question and still overwrite results.json
        if self.limit is not None and self.limit < 0:
            raise ConfigError(f"--limit must be 0 or more (the first N questions), not {self.limit}")


# -- setup -------------------------------------------------------------------------------------------------------------
def _check_unique_qids(samples: list[Sample], annotations: str) -> None:
    """samples.jsonl, resuming and scoring key every answer on its question id: two questions sharing one would
    share one answer (the later overwrites the earlier, which is then scored with it)."""
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.qid] = counts.get(s.qid, 0) + 1
    dups = [f"{q!r} ({n} times)" for q, n in counts.items() if n > 1]
    if dups:
        raise InputError(f"{annotations}: {len(dups)} question id(s) used by more than one question, e.g. "
                         f"{', '.join(dups[:3])}; give each question its own id")


def resolve_config(spec: RunSpec, bench) -> Config:
    """Config file (or defaults) + the benchmark's protocol overrides + the user's overrides; library defaults to
    ``<out>/library`` so memories are reused across resumed runs."""
    overrides = list(getattr(bench, "config_overrides", lambda split: [])(spec.split)) + list(spec.overrides)
    config = Config.load(spec.config_file, overrides)
    if not config.library:
        config = Config.from_dict({**config.to_dict(), "library": str((Path(spec.out) / "library").resolve())})
    return config


def _check_resume(out: Path, spec: RunSpec, config: Config) -> dict[str, Any]:
    """Refuse to mix answers of different settings in one run folder; returns run.json's content (written by the
    caller once the annotations have loaded, so a mistyped path leaves no run folder behind)."""
    # every section but the library's location shapes the answers (vlm: token budget, sparse prefill, ...)
    sections = [k for k in config.to_dict() if k != "library"]
    want = {"benchmark": spec.benchmark, "split": spec.split, "config_hash": config.hash(*sections),
            "include_unlabelled": spec.include_unlabelled}
    path = out / RUN
    if path.is_file():
        have = json.loads(path.read_text())
        diff = [k for k in want if have.get(k) != want[k]]
        if diff:
            changed = _changed_keys(have.get("config") or {}, config.to_dict(), sections)
            detail = f"; changed: {', '.join(changed[:5])}" if "config_hash" in diff and changed else ""
            raise ConfigError(f"{out} holds a run with different {', '.join(diff)} ({have.get('benchmark')}, split "
                              f"{have.get('split')}{detail}; recorded in {path}); use another --out, or delete the "
                              f"folder {out} to start over")
    return {**want, "spec": dataclasses.asdict(spec), "config": config.to_dict()}


def _changed_keys(old: dict[str, Any], new: dict[str, Any], sections: list[str]) -> list[str]:
    """The dotted config keys whose values differ, e.g. ["vlm.token_budget"]."""
    return sorted(f"{sec}.{k}" for sec in sections for k in set(old.get(sec) or {}) | set(new.get(sec) or {})
                  if (old.get(sec) or {}).get(k) != (new.get(sec) or {}).get(k))


def stage_subtitle(sample: Sample, out: Path) -> str:
    """The path to ingest: the video itself, or (when the sample has a subtitle file) a link to it in
    ``<out>/staged/`` with the subtitle beside it as ``<stem>.srt``, where ingestion finds sidecar subtitles."""
    if not sample.subtitle:
        return sample.video_path
    video = Path(sample.video_path)
    d = out / "staged" / video.stem
    d.mkdir(parents=True, exist_ok=True)
    link = d / video.name
    if not link.exists():
        link.symlink_to(video.resolve())
    sub = Path(sample.subtitle)
    target = d / (video.stem + (sub.suffix if sub.suffix in (".srt", ".vtt") else ".srt"))
    if not target.exists():
        if sub.suffix in (".srt", ".vtt"):
            target.symlink_to(sub.resolve())
        else:
            cues = json.loads(sub.read_text(encoding="utf-8"))
            target.write_text(json_cues_to_srt(cues, offset=float(sample.meta.get("subtitle_offset") or 0.0),
                                               duration=sample.duration), encoding="utf-8")
    return str(link)


def json_cues_to_srt(cues: list[dict[str, Any]], offset: float = 0.0, duration: float | None = None) -> str:
    """LongVideoBench subtitle JSON ([{"start": "00:00:01.5", "end": ..., "line": ...}] or [{"timestamp": [s, e],
    "text": ...}]) -> SRT text on the clip's clock: ``offset`` (the clip's start in the cues' source video) is
    subtracted, and cues outside ``[0, duration]`` are dropped or cut to it. A cue without an end (Whisper's last
    chunk, ``[s, null]``) runs to the end of the video, as the official loader reads it; 2 s when the duration is
    unknown."""
    def secs(t) -> float:
        if isinstance(t, (int, float)):
            return float(t)
        parts = [float(x) for x in str(t).replace(",", ".").split(":")]
        return sum(v * 60 ** i for i, v in enumerate(reversed(parts)))

    def stamp(s: float) -> str:
        ms = int(round(s * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    blocks = []
    for c in cues:
        t0, t1 = c["timestamp"] if "timestamp" in c else (c["start"], c["end"])
        text = c.get("text", c.get("line", ""))
        if text and t0 is not None:
            t0 = secs(t0) - offset
            t1 = secs(t1) - offset if t1 is not None else (duration if duration else t0 + 2.0)
            t0, t1 = max(t0, 0.0), (min(t1, duration) if duration else t1)
            if t1 > t0:
                blocks.append(f"{len(blocks) + 1}\n{stamp(t0)} --> {stamp(t1)}\n{text.strip()}\n")
    return "\n".join(blocks)


def make_jobs(samples: Iterable[Sample], out: Path, benchmark: str) -> list[dict[str, Any]]:
    """One job per video, in the order the benchmark first mentions it."""
    jobs: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for s in samples:
        job = jobs.get(s.video_path)
        if job is None:
            job = jobs[s.video_path] = {"benchmark": benchmark, "video": s.video, "path": stage_subtitle(s, out),
                                        "samples": []}
        job["samples"].append(s.to_dict())
    return list(jobs.values())


# -- executors ---------------------------------------------------------------------------------------------------------
def _progress(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="video", desc="videos", disable=None)


def _run_serial(jobs, config, sink) -> list[dict]:
    outs = []
    with _progress(len(jobs)) as bar:
        for job in jobs:
            outs.append(process_video(job, config, sink))
            bar.update()
    return outs


class _Recording:
    """A multiprocessing context that keeps the processes it starts; everything else is the wrapped context's.

    ProcessPoolExecutor starts its workers with ``mp_context.Process`` (what its public ``mp_context`` argument is
    for) and gives no public way to reach them before Python 3.14 (``terminate_workers()``): :func:`_stop` read
    the private ``pool._processes``, which any release may rename or remove.
    """

    def __init__(self, context):
        self._context = context
        self.processes: list = []  # every worker, in the order they were made; ended ones stay

    def Process(self, *args, **kwargs):  # multiprocessing's name
        p = self._context.Process(*args, **kwargs)
        self.processes.append(p)
        return p

    def __getattr__(self, name: str):
        return getattr(self._context, name)


class _Pool(ProcessPoolExecutor):
    """A ProcessPoolExecutor whose worker processes :func:`_stop` can reach: ``started``."""

    def __init__(self, workers: int, mp_context, **kwargs):
        recording = _Recording(mp_context)
        self.started = recording.processes
        super().__init__(workers, mp_context=recording, **kwargs)


def _pool(workers: int, threads: int) -> _Pool:
    # Created and submitted to (when spawn starts the processes) only from the thread running run(), which outlives
    # them: init_worker ties each worker's life to the thread that started it (PR_SET_PDEATHSIG).
    return _Pool(workers, get_context("spawn"), initializer=init_worker, initargs=(threads, os.getpid()))


def _stop(pool: _Pool) -> None:
    """Cancel the videos ``pool`` has not started and end its processes now. ``shutdown()`` alone waits for the
    videos being answered (minutes each) and, without cancel_futures, for every queued one, all of them appending
    to samples.jsonl after the run was stopped."""
    procs = [p for p in pool.started if p.pid is not None]  # None: its start failed (joining it would raise)
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:  # gone before the run returns: none appends a row after it
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()


def _run_pool(jobs, config, sink, workers: int) -> list[dict]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    outs, broken, pools = [], [], []
    try:
        with _progress(len(jobs)) as bar:
            pools.append(_pool(workers, threads))
            futures = {pools[0].submit(process_video, job, config, sink): job for job in jobs}
            for f in as_completed(futures):
                try:
                    outs.append(f.result())
                except BrokenProcessPool:  # a worker died (killed for memory, a crash in native code)
                    broken.append(futures[f])
                    continue
                bar.update()
            pools.pop().shutdown()
            if broken:
                # Which video killed it is unknown, and a broken pool fails every video still queued: each of them
                # runs again in a process of its own, where dying costs only that video (a resume would die on it
                # again).
                logger.warning("a worker process died; %d videos run again one process each", len(broken))
                done = {q for q, r in read_rows(sink).items() if not r.get("error")}
                rerun = [{**j, "samples": [d for d in j["samples"] if d["qid"] not in done]} for j in broken]
                outs += _run_alone([j for j in rerun if j["samples"]], config, sink, threads, workers, pools, bar)
    except BaseException:  # Ctrl-C, SIGTERM (run() makes it a KeyboardInterrupt), a bug: stop every worker
        for pool in pools:
            _stop(pool)
        raise
    return outs


def _run_alone(jobs, config, sink, threads: int, workers: int, pools: list, bar) -> list[dict]:
    """process_video of each job in a process of its own, ``workers`` at a time: a death is that video's error,
    not the run's. Started from this (the main) thread; ``pools`` holds the running ones for the caller to stop."""
    outs, queued, running = [], list(jobs), {}
    while queued or running:
        while queued and len(running) < workers:
            job = queued.pop(0)
            pools.append(_pool(1, threads))
            running[pools[-1].submit(process_video, job, config, sink)] = (pools[-1], job)
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for f in done:
            pool, job = running.pop(f)
            try:
                outs.append(f.result())
            except BrokenProcessPool:
                outs.append(_died(job))
            pool.shutdown()
            pools.remove(pool)
            bar.update()
    return outs


def _died(job) -> dict:
    """process_video's result for a video whose worker process died on it."""
    logger.warning("the worker process died on %s", job["path"])
    return {"video": job["video"], "rows": [], "ingest_s": 0.0, "warmup_s": 0.0,
            "error": "its worker process died (out of memory, or a crash in native code)"}


def _run_ray(jobs, config, sink, address: str, workers: int) -> list[dict]:
    try:
        import ray
    except ImportError as e:
        raise ConfigError("--ray-address needs Ray: pip install 'videomind[dist]'") from e
    started = False
    if not ray.is_initialized():
        # Workers import eval/ from this checkout (on a cluster, every node needs the same checkout and videos,
        # library and run folder on a shared filesystem).
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}}
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, runtime_env=env, log_to_driver=False)
        else:
            ray.init(address=address, runtime_env=env)
        started = True
    queued, job_of, outs = list(jobs), {}, []  # job_of: the videos in flight, by their task's result
    try:
        task = ray.remote(num_cpus=1, max_retries=1)(process_video)
        crashed = (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError, ray.exceptions.NodeDiedError)
        with _progress(len(jobs)) as bar:
            while queued or job_of:
                # At most `workers` at once: each task loads a VideoMind (its models), and a cluster would run as
                # many as it has CPUs (num_cpus bounds only the instance started here).
                while queued and len(job_of) < workers:
                    job = queued.pop(0)
                    job_of[task.remote(job, config, None)] = job
                done, _ = ray.wait(list(job_of), num_returns=1)
                job = job_of.pop(done[0])
                try:
                    out = ray.get(done[0])
                except crashed:  # after Ray's one retry: this video's error, not the whole run's
                    out = _died(job)
                for row in out["rows"]:  # the driver writes: workers may be on machines without the run folder
                    append_row(sink, row)
                outs.append(out)
                bar.update()
        return outs
    except BaseException:  # Ctrl-C, SIGTERM, a bug: a cluster started elsewhere would run them to the end
        for ref in job_of:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


# -- the run -----------------------------------------------------------------------------------------------------------
class Stopped(KeyboardInterrupt):
    """The run was stopped by SIGTERM or SIGHUP; handled as Ctrl-C's KeyboardInterrupt is (its workers are stopped,
    the questions answered so far stay in samples.jsonl)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals_interrupt():
    """While the run lasts, SIGTERM and SIGHUP (kill, `timeout`, a scheduler's cancel, a dropped SSH session) raise
    :class:`Stopped` in the main thread: by default they end this process at once, leaving its worker processes
    and Ray tasks running. Only the main thread can set handlers: a run in another thread keeps the defaults."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Stopped(signum)

    previous = {}
    try:
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):  # no SIGHUP on Windows
            if sig is not None:
                previous[sig] = signal.signal(sig, stop)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)  # None: set from C


def run(spec: RunSpec) -> dict[str, Any]:
    """Run (or resume) a benchmark; returns the results dict also written to ``<out>/results.json``.

    Raises:
        ConfigError: bad config/overrides/limit, or ``out`` holds a run with other settings.
        InputError: the annotations cannot be found or read (nothing is written to ``out`` then).
        KeyboardInterrupt: Ctrl-C, or :class:`Stopped` (SIGTERM, SIGHUP); the worker processes have ended and the
            answered questions are kept (the next run resumes).
    """
    t_start = time.perf_counter()
    out = Path(spec.out)
    bench = get_benchmark(spec.benchmark)
    config = resolve_config(spec, bench)
    run_info = _check_resume(out, spec, config)

    samples = bench.load(spec.annotations, spec.videos, spec.split)
    _check_unique_qids(samples, spec.annotations)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN).write_text(json.dumps(run_info, indent=1))
    loaded = samples
    unlabelled = [s for s in samples if s.answer is None]
    if not spec.include_unlabelled:
        samples = [s for s in samples if s.answer is not None]
    if spec.limit is not None:
        samples = samples[: spec.limit]
    missing = [s for s in samples if not (s.video_path and Path(s.video_path).is_file())]
    if missing:
        vids = sorted({s.video for s in missing})
        logger.warning("%d videos not found (%d questions skipped), e.g. %s; see missing_videos in %s",
                       len(vids), len(missing), ", ".join(vids[:3]), out / RESULTS)

    sink = out / SAMPLES
    repair_tail(sink)
    done = {q for q, r in _resume_rows(sink, loaded, bench).items() if not r.get("error")}
    missing_qids = {s.qid for s in missing}
    todo = [s for s in samples if s.qid not in done and s.qid not in missing_qids]
    jobs = make_jobs(todo, out, spec.benchmark)
    logger.info("%s: %d questions selected, %d already answered, %d to ask over %d videos",
                spec.benchmark, len(samples), len(samples) - len(todo) - len(missing), len(todo), len(jobs))

    cfg = config.to_dict()
    with _stop_signals_interrupt():
        if not jobs:
            outs = []
        elif spec.ray_address:
            outs = _run_ray(jobs, cfg, str(sink), spec.ray_address, max(1, spec.workers))
        elif spec.workers > 1 and len(jobs) > 1:
            outs = _run_pool(jobs, cfg, str(sink), min(spec.workers, len(jobs)))
        else:
            outs = _run_serial(jobs, cfg, str(sink))

    failed = sorted(({"video": o["video"], "error": o["error"]} for o in outs if o["error"]), key=lambda f: f["video"])
    if failed:
        logger.warning("%d videos could not be ingested: %s", len(failed), "; ".join(
            f"{f['video']}: {f['error']}" for f in failed[:3]))
    results = build_results(spec, config, bench, samples, _current_rows(read_rows(sink), samples, bench), missing,
                            failed, n_loaded=len(loaded), n_unlabelled=len(unlabelled), outs=outs,
                            wall_s=time.perf_counter() - t_start)
    tmp = out / (RESULTS + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    tmp.replace(out / RESULTS)
    return results


def _current_rows(rows: dict[str, dict], samples: list[Sample], bench) -> dict[str, dict]:
    """The rows ({qid: row} of samples.jsonl) of ``samples``, rescored against them as the annotations are now;
    without the rows of questions whose video, question or options changed since (see :func:`rescore`)."""
    by_qid = {s.qid: s for s in samples}
    current = {q: rescore(r, by_qid[q], bench) for q, r in rows.items() if q in by_qid}
    return {q: r for q, r in current.items() if r is not None}


def _resume_rows(sink: Path, samples: list[Sample], bench) -> dict[str, dict]:
    """:func:`_current_rows` of samples.jsonl; the file is rewritten when a row was rescored (a corrected answer
    key), so that what reads it (the report) sees the scores results.json gives."""
    stored = read_rows(sink)
    rows = _current_rows(stored, samples, bench)
    changed = [q for q, r in rows.items() if r != stored[q]]
    if changed:
        logger.warning("%d answers in %s rescored against the annotations as they are now (answer key, categories, "
                       "...), e.g. %s", len(changed), sink, ", ".join(changed[:3]))
        write_rows(sink, {**stored, **rows}.values())
    again = [s.qid for s in samples if s.qid in stored and s.qid not in rows]
    if again:
        logger.warning("%d questions changed since they were answered (video, question or options): their answers "
                       "no longer count and they are asked again, e.g. %s", len(again), ", ".join(again[:3]))
    return rows


def build_results(spec, config, bench, samples, rows_by_qid, missing, failed, *, n_loaded, n_unlabelled, outs,
                  wall_s) -> dict[str, Any]:
    """results.json: metrics over this run's selection of questions (in the benchmark's order) and provenance."""
    rows = [rows_by_qid[s.qid] for s in samples if s.qid in rows_by_qid]
    failed_videos = {f["video"] for f in failed}
    missing_videos: dict[str, int] = {}
    for s in missing:
        missing_videos[s.video] = missing_videos.get(s.video, 0) + 1
    return {
        "benchmark": spec.benchmark,
        "split": spec.split,
        "metrics": bench.aggregate(rows),
        "counts": {"loaded": n_loaded, "unlabelled_in_annotations": n_unlabelled, "selected": len(samples),
                   "answered": sum(1 for r in rows if not r.get("error")),
                   "errors": sum(1 for r in rows if r.get("error")),
                   "missing_video_questions": len(missing),
                   "unreadable_video_questions": sum(1 for s in samples if s.video in failed_videos)},
        "missing_videos": [{"video": v, "questions": n} for v, n in sorted(missing_videos.items())],
        "unreadable_videos": failed,
        "errors": [{"qid": r["qid"], "error": r["error"]} for r in rows if r.get("error")],
        # what the metrics are over (samples.jsonl may hold more: an earlier run without --limit)
        "selected_qids": [s.qid for s in samples],
        "run": {"annotations": str(spec.annotations), "videos": spec.videos, "limit": spec.limit,
                "workers": spec.workers, "ray_address": spec.ray_address,
                "include_unlabelled": spec.include_unlabelled, "overrides": spec.overrides,
                "config_file": spec.config_file, "wall_s_this_invocation": wall_s,
                "ingest_s_this_invocation": sum(o["ingest_s"] for o in outs),
                "warmup_s_this_invocation": sum(o["warmup_s"] for o in outs)},
        "config": config.to_dict(),
        "git": git_info(),
        "models": models_info(config),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def git_info() -> dict[str, Any]:
    """The commit of this checkout and whether it has uncommitted changes (None outside a git checkout)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)

    try:
        sha = git("rev-parse", "HEAD")
        if sha.returncode:
            return {"sha": None, "dirty": None}
        return {"sha": sha.stdout.strip(), "dirty": bool(git("status", "--porcelain", "--untracked-files=no").stdout)}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def models_info(config: Config) -> list[dict[str, Any]]:
    """Which model serves each capability (videomind.describe_models) as plain rows."""
    from videomind import describe_models

    try:
        return [dataclasses.asdict(r) for r in describe_models(config.models)]
    except VideoMindError as e:
        return [{"error": str(e)}]
