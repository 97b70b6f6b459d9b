"""The runner on a generated needle benchmark: records, missing and unreadable videos, resume after a kill, and the
same results from the serial, process-pool and Ray executors."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from eval.__main__ import main
from eval.runner import RESULTS, SAMPLES, RunSpec, run
from eval.worker import read_rows
from videomind import Config, ConfigError, InputError, VideoMind

REPO = Path(__file__).resolve().parents[2]
FIX = Path(__file__).parent / "fixtures"

# what must not depend on how (or in how many pieces) a run was executed
KEYS = ("qid", "video", "question", "options", "answer", "pred", "how", "correct", "evidence", "prediction",
        "grounded")


def _same(row: dict) -> dict:
    return {k: row.get(k) for k in KEYS}


def _metrics(results: dict) -> dict:
    m = dict(results["metrics"])
    m.pop("cost")  # seconds differ from run to run
    return {"metrics": m, "counts": results["counts"], "missing": results["missing_videos"],
            "unreadable": [v["video"] for v in results["unreadable_videos"]]}


@pytest.fixture(scope="session")
def needle_bench(tmp_path_factory, request):
    """A needle benchmark folder: a generated video, a corrupt one and a missing one, with a warm library (the
    video ingested once here; memory stores are keyed on the file, so every run below reopens this one)."""
    d = tmp_path_factory.mktemp("needle_bench")
    try:
        from eval.synth import generate
    except ImportError:
        generate = None
    if generate is not None:
        res = generate(d / "synth", minutes=1, seed=0)
        video = res.video
        rows = [json.loads(line) for line in res.samples.read_text().splitlines() if line.strip()]
    else:  # the synth generator is not there: the espeak-ng speech video and hand-written questions
        video = request.getfixturevalue("speech_video")
        rows = [json.loads(line) for line in (FIX / "needle/demo.samples.jsonl").read_text().splitlines()]
    bench = d / "bench"
    bench.mkdir()
    shutil.copy(video, bench / "a.mp4")
    (bench / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    out = [{**r, "video": "a.mp4"} for r in rows]
    out.append({**rows[0], "qid": "absent-0", "video": "absent.mp4"})
    out.append({**rows[0], "qid": "broken-0", "video": "broken.mp4"})
    samples = bench / "bench.samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in out))
    library = d / "library"
    VideoMind(Config.from_dict({"library": str(library)})).ingest(bench / "a.mp4")
    return {"samples": samples, "library": library, "n": len(rows), "dir": d}


@pytest.fixture(scope="session")
def pool_run(needle_bench):
    """The reference run: through the CLI, videos on a pool of 2 spawned worker processes."""
    out = needle_bench["dir"] / "run_pool"
    rc = main(["run", "--benchmark", "needle", "--annotations", str(needle_bench["samples"]), "--out", str(out),
               "--workers", "2", "--set", f"library={needle_bench['library']}"])
    assert rc == 0
    return out


def _spec(needle_bench, out, extra: tuple[str, ...] = (), **kw) -> RunSpec:
    return RunSpec("needle", str(needle_bench["samples"]), None, str(out),
                   overrides=[f"library={needle_bench['library']}", *extra], **kw)


def test_run_records_everything_and_reports_bad_videos(needle_bench, pool_run):
    res = json.loads((pool_run / RESULTS).read_text())
    n = needle_bench["n"]
    assert res["counts"]["answered"] == n and res["metrics"]["overall"]["n"] == n
    assert res["metrics"]["overall"]["n_videos"] == 1
    assert res["missing_videos"] == [{"video": "absent.mp4", "questions": 1}]
    assert [v["video"] for v in res["unreadable_videos"]] == ["broken.mp4"]
    assert res["counts"]["missing_video_questions"] == 1 and res["counts"]["unreadable_video_questions"] == 1
    assert res["config"]["library"] == str(needle_bench["library"])
    assert res["git"]["sha"] is None or len(res["git"]["sha"]) == 40
    assert {m["capability"] for m in res["models"]} >= {"asr", "text-embed", "llm"}
    assert 0.0 <= res["metrics"]["grounded"] <= 1.0
    rows = read_rows(pool_run / SAMPLES)
    assert len(rows) == n and len((pool_run / SAMPLES).read_text().splitlines()) == n
    row = next(iter(rows.values()))
    assert row["pred"] is not None and row["how"] == "choice" and isinstance(row["correct"], bool)
    assert row["trace"] and {"tool", "observation", "prompt_tokens"} <= set(row["trace"][0])
    assert row["timings"]["ask_s"] > 0 and set(row["tokens"]) == {"prompt", "completion"}
    assert row["evidence"] and {"start", "end", "source", "text"} <= set(row["evidence"][0])
    assert res["run"]["ingest_s_this_invocation"] < 30  # reopened from the warm library, not re-ingested


def test_report_writes_markdown_and_plots(pool_run, tmp_path):
    from PIL import Image

    assert main(["report", str(pool_run), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "# needle" in md and "| spoken_fact |" in md and "absent.mp4" in md and "broken.mp4" in md
    # the bundled 135M LLM is configured, and policy auto never asks it: the report says who answered
    n = json.loads((pool_run / RESULTS).read_text())["counts"]["answered"]
    assert f"- answered by: heuristic ({n} of {n})\n" in md
    assert "- agent as configured: backend `offline`, policy `auto`, llm `smollm2-135m-instruct`" in md
    for png in ("accuracy_by_duration.png", "accuracy_by_category.png", "accuracy_vs_cost.png"):
        assert f"]({png})" in md
        with Image.open(tmp_path / png) as im:
            assert im.size[0] > 100


def test_resume_after_an_interrupted_run_gives_the_same_results(needle_bench, pool_run, tmp_path):
    """Keep the first 2 answers and half of the 3rd line (as a kill leaves them), resume serially in-process."""
    lines = (pool_run / SAMPLES).read_text().splitlines(keepends=True)
    (tmp_path / SAMPLES).write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    res = run(_spec(needle_bench, tmp_path))
    after = (tmp_path / SAMPLES).read_text().splitlines(keepends=True)
    assert after[:2] == lines[:2]  # finished questions were not asked again
    assert len(after) == needle_bench["n"]  # the partial line was dropped, the rest asked once each
    ref = json.loads((pool_run / RESULTS).read_text())
    assert _metrics(res) == _metrics(ref)
    want = {q: _same(r) for q, r in read_rows(pool_run / SAMPLES).items()}
    assert {q: _same(r) for q, r in read_rows(tmp_path / SAMPLES).items()} == want
    # a finished run asks nothing more; --limit selects the first questions
    again = run(_spec(needle_bench, tmp_path))
    assert len((tmp_path / SAMPLES).read_text().splitlines()) == needle_bench["n"]
    assert _metrics(again) == _metrics(ref)
    part = run(_spec(needle_bench, tmp_path, limit=2))
    assert part["metrics"]["overall"]["n"] == 2 and part["counts"]["selected"] == 2


def test_resume_refuses_other_settings(needle_bench, pool_run, capsys):
    with pytest.raises(ConfigError, match="different config_hash"):
        run(_spec(needle_bench, pool_run, extra=("agent.max_steps=3",)))
    assert main(["run", "--benchmark", "needle", "--annotations", str(needle_bench["samples"]), "--out",
                 str(pool_run), "--set", "agent.max_steps=3"]) == 2
    assert "different" in capsys.readouterr().err


def test_ray_gives_the_same_results_as_the_local_run(needle_bench, pool_run, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    import eval.runner as runner

    def local(*a, **k):
        raise AssertionError("a local executor ran instead of Ray")

    monkeypatch.setattr(runner, "_run_pool", local)
    monkeypatch.setattr(runner, "_run_serial", local)
    res = run(_spec(needle_bench, tmp_path, ray_address="local", workers=2))
    assert res["run"]["ray_address"] == "local"
    assert _metrics(res) == _metrics(json.loads((pool_run / RESULTS).read_text()))
    want = {q: _same(r) for q, r in read_rows(pool_run / SAMPLES).items()}
    assert {q: _same(r) for q, r in read_rows(tmp_path / SAMPLES).items()} == want


@pytest.mark.slow
def test_resume_after_a_real_kill(needle_bench, pool_run, tmp_path):
    """SIGKILL a serial CLI run once it has answered a question, resume it: the same results as uninterrupted."""
    cmd = [sys.executable, "-m", "eval", "run", "--benchmark", "needle", "--annotations",
           str(needle_bench["samples"]), "--out", str(tmp_path), "--set", f"library={needle_bench['library']}"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (tmp_path / SAMPLES).is_file() and (tmp_path / SAMPLES).read_text().count("\n") >= 1:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(60)
    killed = len(read_rows(tmp_path / SAMPLES))
    res = run(_spec(needle_bench, tmp_path))
    assert _metrics(res) == _metrics(json.loads((pool_run / RESULTS).read_text()))
    assert len((tmp_path / SAMPLES).read_text().splitlines()) == needle_bench["n"], killed


def test_subtitles_are_staged_beside_a_link_to_the_video(tmp_path):
    """Ingestion finds sidecar subtitles next to the video: a sample's subtitle file (LongVideoBench JSON cues,
    converted to SRT) is put beside a link to the video in the run folder."""
    from eval.benchmarks import longvideobench
    from eval.runner import stage_subtitle
    from videomind.ingest.subtitles import find_sidecar, parse_srt_vtt

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "86CxyhFV9MI.mp4").write_bytes(b"")
    s = longvideobench.load(FIX / "longvideobench/lvb_val.json", videos)[0]
    path = Path(stage_subtitle(s, tmp_path / "run"))
    assert path.name == "86CxyhFV9MI.mp4" and path.resolve() == (videos / "86CxyhFV9MI.mp4").resolve()
    cues = parse_srt_vtt(find_sidecar(path).read_text())
    assert [(c.start, c.end, c.text) for c in cues] == [(1.0, 3.5, "of the wolves of the world, they are"),
                                                      (4.0, 6.25, "the last ones standing")]
    assert stage_subtitle(s, tmp_path / "run") == str(path)  # idempotent
    (videos / "Gy9sKTg3JgA.mp4").write_bytes(b"")  # the other cue form: {"timestamp": [s, e], "text"}
    s2 = longvideobench.load(FIX / "longvideobench/lvb_val.json", videos)[1]
    cues = parse_srt_vtt(find_sidecar(stage_subtitle(s2, tmp_path / "run")).read_text())
    assert [(c.start, c.end) for c in cues] == [(0.5, 2.0), (2.0, 4.5)] and cues[1].text.startswith("And I'll")
    s.subtitle = None
    assert stage_subtitle(s, tmp_path / "run") == s.video_path


def test_longvideobench_subtitles_are_staged_on_the_clips_clock(tmp_path):
    """LongVideoBench clips are cut from longer videos and their subtitle cues keep the source's times: the clip
    starts at starting_timestamp_for_subtitles. Staged cues start from the clip's start; cues outside it are dropped."""
    from eval.benchmarks import longvideobench
    from eval.runner import stage_subtitle
    from videomind.ingest.subtitles import find_sidecar, parse_srt_vtt

    d = tmp_path / "lvb"
    (d / "subtitles").mkdir(parents=True)
    (d / "videos").mkdir()
    (d / "videos/clip.mp4").write_bytes(b"")
    cues = [{"timestamp": [90.0, 95.0], "text": "before the clip"}, {"timestamp": [98.0, 102.0], "text": "across"},
            {"timestamp": [110.5, 112.0], "text": "inside"}, {"timestamp": [135.0, None], "text": "last words"},
            {"timestamp": [150.0, 151.0], "text": "after the clip"}]
    (d / "subtitles/clip_en.json").write_text(json.dumps(cues))
    record = {"video_id": "clip", "question": "Q?", "candidates": ["a", "b"], "correct_choice": 0, "id": "clip_0",
              "video_path": "clip.mp4", "subtitle_path": "clip_en.json", "duration_group": 60,
              "starting_timestamp_for_subtitles": 100.0, "duration": 36.0, "question_category": "TOS"}
    (d / "lvb_val.json").write_text(json.dumps([record]))
    (s,) = longvideobench.load(d)
    assert s.meta["subtitle_offset"] == 100.0
    got = parse_srt_vtt(find_sidecar(Path(stage_subtitle(s, tmp_path / "run"))).read_text())
    assert [(c.start, c.end, c.text) for c in got] == [(0.0, 2.0, "across"), (10.5, 12.0, "inside"),
                                                     (35.0, 36.0, "last words")]


def test_longvideobench_cue_without_an_end_runs_to_the_end_of_the_video():
    """Whisper-style cues can end open ([start, null]); the official loader (insert_subtitles_into_frames) takes the
    video's duration as the end. Without a known duration the cue keeps a short default length."""
    from eval.runner import json_cues_to_srt
    from videomind.ingest.subtitles import parse_srt_vtt

    cues = [{"timestamp": [0.5, 2.0], "text": "Now into the oven it goes."},
            {"timestamp": [100.0, None], "text": "and that is how you bake it, see you next time"}]
    got = parse_srt_vtt(json_cues_to_srt(cues, duration=190.16))
    assert [(c.start, c.end) for c in got] == [(0.5, 2.0), (100.0, 190.16)]
    got = parse_srt_vtt(json_cues_to_srt(cues, offset=40.0, duration=190.16))  # a clip: the end is the clip's
    assert [(c.start, c.end) for c in got] == [(60.0, 190.16)]
    assert [(c.start, c.end) for c in parse_srt_vtt(json_cues_to_srt(cues))] == [(0.5, 2.0), (100.0, 102.0)]


# -- failures that must not cost a run (a fake VideoMind: no models, milliseconds) -----------------------------------
class _FakeAnswer:
    def to_dict(self) -> dict:
        return {"text": "B", "choice": 1, "evidence": [], "steps": [], "policy": "fake"}


class _FakeVideoMind:
    """Ingests anything; asking ``bad_question`` raises what a backend replying malformed output raised."""

    def __init__(self, bad_question: str | None = None):
        self.bad_question = bad_question

    def warm_up_ingest(self):
        pass

    def ingest(self, path):
        return object()

    def ask(self, memory, question, options=None):
        if question == self.bad_question:
            raise RuntimeError("malformed reply from the backend")
        if options is not None and len(options) < 2:  # as VideoMind.ask: [] is a slip, None an open question
            raise InputError(f"{len(options)} option(s) given: a multiple-choice question needs at least two")
        return _FakeAnswer()


@pytest.fixture
def fake_bench(tmp_path, monkeypatch):
    """Four needle questions on one (empty) video, answered by a _FakeVideoMind; returns a RunSpec factory."""
    import eval.worker as worker

    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "v.mp4").write_bytes(b"")
    rows = [{"qid": f"q{i}", "video": "v.mp4", "question": f"question {i}?", "options": ["a", "b", "c"],
             "answer": 1, "task": "t"} for i in range(4)]
    samples = bench / "b.samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    vm = _FakeVideoMind()
    monkeypatch.setattr(worker, "_videomind", lambda config: vm)
    monkeypatch.setattr(worker, "_WARM", set())
    monkeypatch.setattr(worker, "_WARM_INGEST", set())

    def spec(out="run", **kw) -> RunSpec:
        return RunSpec("needle", str(kw.pop("annotations", samples)), None, str(tmp_path / out), **kw)

    spec.vm = vm
    return spec


def test_a_question_failing_with_any_exception_is_recorded_and_the_run_goes_on(fake_bench):
    """The first question fails (in the warm-up too): its row carries the error, the others are answered."""
    fake_bench.vm.bad_question = "question 0?"
    res = run(fake_bench())
    out = Path(fake_bench().out)
    assert res["counts"]["answered"] == 3 and res["counts"]["errors"] == 1
    assert res["errors"] == [{"qid": "q0", "error": "RuntimeError: malformed reply from the backend"}]
    rows = read_rows(out / SAMPLES)
    assert len(rows) == 4 and rows["q0"]["correct"] is None and rows["q1"]["correct"] is True
    assert json.loads((out / RESULTS).read_text())["counts"]["errors"] == 1
    fake_bench.vm.bad_question = None  # a resume asks the failed question again
    assert run(fake_bench())["counts"] == {**res["counts"], "answered": 4, "errors": 0}


def test_cli_reports_an_unexpected_error_in_one_line(fake_bench, monkeypatch, capsys):
    import eval.runner as runner

    def boom(spec):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(runner, "run", boom)
    argv = ["run", "--benchmark", "needle", "--annotations", fake_bench().annotations, "--out", fake_bench().out]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: RuntimeError: something broke") and "-v" in err
    with pytest.raises(RuntimeError):
        main(argv + ["-v"])


def test_verbose_is_accepted_before_and_after_the_subcommand(fake_bench):
    from eval.__main__ import build_parser

    argv = ["run", "--benchmark", "needle", "--annotations", "a", "--out", "o"]
    assert build_parser().parse_args(["-v", *argv]).verbose
    assert build_parser().parse_args([*argv, "-v"]).verbose
    assert build_parser().parse_args(["report", "r", "--verbose"]).verbose
    assert not build_parser().parse_args(argv).verbose


def test_refused_resume_names_what_to_delete(fake_bench):
    """The settings are compared with run.json: the message says so, and its remedy works."""
    run(fake_bench())
    out = Path(fake_bench().out)
    with pytest.raises(ConfigError, match="different config_hash") as e:
        run(fake_bench(overrides=["agent.max_steps=3"]))
    assert str(out / "run.json") in str(e.value) and SAMPLES not in str(e.value)
    shutil.rmtree(out)  # what the message says to do
    assert run(fake_bench(overrides=["agent.max_steps=3"]))["counts"]["answered"] == 4


def test_bad_annotations_leave_no_run_folder(fake_bench, tmp_path):
    from videomind import InputError

    with pytest.raises(InputError):
        run(fake_bench(annotations=tmp_path / "nonexistent"))
    assert not Path(fake_bench().out).exists()
    assert run(fake_bench())["counts"]["answered"] == 4  # nothing left behind blocks the real run


def test_negative_limit_is_refused(fake_bench, capsys):
    with pytest.raises(ConfigError, match="--limit"):
        fake_bench(limit=-1)
    run(fake_bench(limit=0))  # 0 is a valid (empty) selection
    out = fake_bench().out
    before = (Path(out) / RESULTS).read_text()
    assert main(["run", "--benchmark", "needle", "--annotations", fake_bench().annotations, "--out", out,
                 "--limit", "-1"]) == 2
    assert "--limit" in capsys.readouterr().err
    assert (Path(out) / RESULTS).read_text() == before  # results.json was not overwritten


def _write_samples(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_duplicate_question_ids_are_refused_before_anything_is_written(fake_bench, tmp_path):
    """Answers are keyed on the question id: two questions sharing one would be scored with one answer."""
    rows = [{"qid": "q", "video": "v.mp4", "question": f"question {i}?", "options": ["a", "b"], "answer": i,
             "task": "t"} for i in range(2)]
    ann = _write_samples(tmp_path / "bench/dup.samples.jsonl", rows)
    with pytest.raises(InputError, match=r"dup\.samples\.jsonl.*'q' \(2 times\)"):
        run(fake_bench(annotations=ann))
    assert not Path(fake_bench().out).exists()


def test_resume_refuses_other_vlm_settings_and_names_them(fake_bench, tmp_path):
    run(fake_bench())
    with pytest.raises(ConfigError, match=r"different config_hash.*changed: vlm\.token_budget"):
        run(fake_bench(overrides=["vlm.token_budget=1024"]))
    # where memories are kept is not how questions are answered
    assert run(fake_bench(overrides=[f"library={tmp_path / 'lib'}"]))["counts"]["answered"] == 4


def test_a_question_without_options_is_asked_open(fake_bench, tmp_path):
    rows = [{"qid": "open", "video": "v.mp4", "question": "What is said?", "options": [], "answer": None}]
    res = run(fake_bench(annotations=_write_samples(tmp_path / "bench/open.samples.jsonl", rows),
                         include_unlabelled=True))
    assert res["errors"] == [] and res["counts"]["answered"] == 1
    row = read_rows(Path(fake_bench().out) / SAMPLES)["open"]
    assert row["pred"] is None and row["correct"] is None and row["prediction"]["text"] == "B"


def test_report_is_over_the_runs_selection_only(fake_bench, tmp_path, monkeypatch):
    """After a full run, a --limit 2 run writes results.json over 2 questions: the report's plots agree with it."""
    import eval.report as report

    rows = [{"qid": f"q{i}", "video": "v.mp4", "question": f"question {i}?", "options": ["a", "b", "c"],
             "answer": 1 if i < 2 else 0, "task": "t"} for i in range(6)]  # the fake answers b: 2 of 6 right
    ann = _write_samples(tmp_path / "bench/six.samples.jsonl", rows)
    assert run(fake_bench(annotations=ann))["metrics"]["overall"]["accuracy"] == pytest.approx(1 / 3)
    res = run(fake_bench(annotations=ann, limit=2))
    assert res["metrics"]["overall"]["accuracy"] == 1.0 and res["selected_qids"] == ["q0", "q1"]
    points = []
    scatter = report.scatter
    monkeypatch.setattr(report, "scatter", lambda path, title, pts, xlabel: (points.extend(pts),
                                                                           scatter(path, title, pts, xlabel))[1])
    report.write_report(Path(fake_bench().out), tmp_path / "report")
    assert [(name, acc) for name, _, acc in points] == [("t", 1.0)]


def test_report_says_what_answered_each_question(fake_bench, tmp_path):
    """The report said 'agent: backend `offline`, policy `auto`, llm `smollm2-135m-instruct`' of a run where no
    LLM answered anything (every sample recorded the heuristic policy). It counts the recorded policies now."""
    import eval.report as report

    policies = ["heuristic: multi-scale retrieval + evidence scoring (no LLM planning)", "llm:qwen",
                "llm:qwen (no valid evidence cited; evidence chosen by scorer)",
                "llm:qwen (invalid choice '(Z) none'; evidence scoring used)"]
    answer = {"text": "B", "choice": 1, "evidence": [], "steps": []}
    fake_bench.vm.ask = lambda memory, question, options=None: SimpleNamespace(  # "question 2?": policies[2]
        to_dict=lambda: {**answer, "policy": policies[int(question.split()[1].rstrip("?"))]})
    run(fake_bench())
    md = report.write_report(Path(fake_bench().out), tmp_path / "report").read_text()
    assert ("- answered by: llm:qwen (2 of 4), heuristic (1 of 4), heuristic after llm:qwen gave no usable answer "
            "(1 of 4)\n") in md
    assert "- agent as configured: backend `offline`, policy `auto`" in md


def test_a_worker_process_dying_costs_only_its_video(fake_bench, tmp_path, monkeypatch):
    """A worker killed mid-video (out of memory, a segfault in a decoder) breaks the whole process pool: the videos
    still queued are run again one process each, and only the one that kills its process is reported."""
    import multiprocessing

    import eval.runner as runner

    def ingest(path):
        if "crash" in str(path):
            os._exit(1)  # what the kernel's OOM killer leaves behind
        return object()

    fake_bench.vm.ingest = ingest
    # forked workers inherit the fake VideoMind (spawned ones would import the real one)
    monkeypatch.setattr(runner, "get_context", lambda method: multiprocessing.get_context("fork"))
    rows = []
    for v in ("a", "crash", "b", "c"):
        (tmp_path / f"bench/{v}.mp4").write_bytes(b"")
        rows += [{"qid": f"{v}{i}", "video": f"{v}.mp4", "question": f"{v} {i}?", "options": ["a", "b"], "answer": 1}
                 for i in range(2)]
    ann = _write_samples(tmp_path / "bench/crash.samples.jsonl", rows)
    res = run(fake_bench(annotations=ann, workers=2))
    assert [v["video"] for v in res["unreadable_videos"]] == ["crash.mp4"]
    assert "worker process died" in res["unreadable_videos"][0]["error"]
    assert res["counts"]["answered"] == 6 and res["counts"]["unreadable_video_questions"] == 2
    lines = (Path(fake_bench().out) / SAMPLES).read_text().splitlines()
    assert sorted(json.loads(line)["qid"] for line in lines) == ["a0", "a1", "b0", "b1", "c0", "c1"]  # each once


def test_a_ray_worker_crash_costs_only_its_video(fake_bench, tmp_path, monkeypatch):
    """Ray gives up on a task whose worker died twice (its one retry) with WorkerCrashedError: that video is
    reported as unreadable and the others are answered. A stand-in for Ray (a real worker cannot be crashed on
    cue here); the real Ray path is run by test_ray_gives_the_same_results_as_the_local_run."""
    import sys
    import types

    from eval.worker import process_video

    class WorkerCrashedError(Exception):
        pass

    class Ref:
        def __init__(self, job, config):
            self.job, self.config = job, config

    ray = types.ModuleType("ray")
    ray.exceptions = types.SimpleNamespace(WorkerCrashedError=WorkerCrashedError, OutOfMemoryError=MemoryError,
                                           NodeDiedError=ConnectionError)
    ray.is_initialized = lambda: True
    ray.remote = lambda **kw: lambda fn: types.SimpleNamespace(remote=lambda job, config, sink: Ref(job, config))
    ray.wait = lambda pending, num_returns: (pending[:1], pending[1:])

    def get(ref):
        if ref.job["video"] == "crash.mp4":
            raise WorkerCrashedError("the worker died unexpectedly")
        return process_video(ref.job, ref.config, None)

    ray.get = get
    monkeypatch.setitem(sys.modules, "ray", ray)
    rows = []
    for v in ("a", "crash", "b"):
        (tmp_path / f"bench/{v}.mp4").write_bytes(b"")
        rows += [{"qid": f"{v}{i}", "video": f"{v}.mp4", "question": f"{v} {i}?", "options": ["a", "b"], "answer": 1}
                 for i in range(2)]
    ann = _write_samples(tmp_path / "bench/crash.samples.jsonl", rows)
    res = run(fake_bench(annotations=ann, ray_address="local", workers=2))
    assert [v["video"] for v in res["unreadable_videos"]] == ["crash.mp4"], res["unreadable_videos"]
    assert "worker process died" in res["unreadable_videos"][0]["error"]
    assert res["counts"]["answered"] == 4 and res["counts"]["unreadable_video_questions"] == 2


def test_report_of_a_folder_without_results_is_a_clear_error_and_makes_nothing(tmp_path, capsys):
    from eval.__main__ import main

    missing = tmp_path / "no-such-run"
    assert main(["report", str(missing)]) == 2
    assert "holds no results.json" in capsys.readouterr().err and not missing.exists()


def test_videomind_eval_names_itself_in_its_usage(capsys):
    from videomind.cli import main

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: videomind eval") and "write samples.jsonl and results.json under --out" in out


def test_sample_rows_are_standard_json_with_non_finite_numbers(tmp_path):
    """A model's 1e400 in a step's arguments must not write the non-JSON token Infinity into samples.jsonl."""
    from eval.worker import append_row

    path = tmp_path / SAMPLES
    append_row(path, {"qid": "q1", "steps": [{"args": {"t0": float("inf"), "t1": float("nan")}}], "score": 1.0})
    line = path.read_text()
    assert "Infinity" not in line and "NaN" not in line
    json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))
    assert read_rows(path)["q1"]["steps"][0]["args"] == {"t0": "inf", "t1": "nan"}


def test_repeated_options_are_asked_distinct_and_scored_by_index(fake_bench, tmp_path):
    """lvb_val.json's p7YxwveUrjI_0 (copied verbatim) has candidates B and C the same sentence; the official scorer
    shows A-E and compares letters, so it counts. ask() refuses equal options (VideoMind's own check runs here):
    the later copy is asked labelled, the choice maps back by index, and the question is scored, not an error."""
    from videomind.inputs import check_question

    asked = []

    def ask(memory, question, options=None):
        question, options = check_question(question, options)
        asked.append(options)
        return _FakeAnswer()  # choice 1: B, the first copy

    fake_bench.vm.ask = ask
    d = tmp_path / "lvb"
    (d / "videos").mkdir(parents=True)
    (d / "videos/p7YxwveUrjI.mp4").write_bytes(b"")
    shutil.copy(FIX / "longvideobench/repeated/lvb_val.json", d / "lvb_val.json")
    res = run(RunSpec("longvideobench", str(d), None, str(tmp_path / "lvb_run")))
    assert res["errors"] == [] and res["counts"]["answered"] == 1
    assert res["metrics"]["overall"]["n"] == 1 and res["metrics"]["overall"]["accuracy"] == 0.0  # gold is A
    original = json.loads((d / "lvb_val.json").read_text())[0]["candidates"]
    assert asked[-1][:2] == original[:2] and asked[-1][3:] == original[3:]
    assert asked[-1][2] == f"{original[2]} (same text as B)"
    row = read_rows(tmp_path / "lvb_run" / SAMPLES)["p7YxwveUrjI_0"]
    assert row["options"] == original and row["asked_options"] == asked[-1]
    assert row["pred"] == 1 and row["correct"] is False and row["answer"] == 0


# -- stopping a run: its worker processes stop with it (a real CLI process, forked workers with a slow fake) ---------
_STOPPABLE = r"""
import multiprocessing, sys, time
import eval.runner as runner, eval.worker as worker
from eval.__main__ import main

class Answer:
    def to_dict(self):
        return {"text": "B", "choice": 1, "evidence": [], "steps": [], "policy": "fake"}

class SlowVideoMind:
    def warm_up_ingest(self):
        pass
    def ingest(self, path):
        return object()
    def ask(self, memory, question, options=None):
        time.sleep(0.3)
        return Answer()

worker._videomind = lambda config: SlowVideoMind()
runner.get_context = lambda method: multiprocessing.get_context("fork")  # forked workers keep the fake
sys.exit(main(sys.argv[1:]))
"""


def _empty_videos(tmp_path: Path, n: int) -> Path:
    """``n`` empty video files with 3 two-option questions each (for fakes that never read them); their
    annotations' path."""
    rows = []
    for v in range(n):
        (tmp_path / f"v{v}.mp4").write_bytes(b"")
        rows += [{"qid": f"v{v}-{i}", "video": f"v{v}.mp4", "question": f"v{v} {i}?", "options": ["a", "b"],
                  "answer": 1} for i in range(3)]
    return _write_samples(tmp_path / "all.samples.jsonl", rows)


@pytest.fixture
def stoppable(tmp_path):
    """Start `python -m eval run --workers 2` over 20 videos x 3 questions answered in 0.3 s each (~10 s), in a
    process group of its own; returns (process, samples.jsonl, its worker processes) once 4 rows are written."""
    psutil = pytest.importorskip("psutil")
    ann = _empty_videos(tmp_path, 20)
    sink, procs = tmp_path / "run" / SAMPLES, []

    def start():
        proc = subprocess.Popen([sys.executable, "-c", _STOPPABLE, "run", "--benchmark", "needle", "--annotations",
                                 str(ann), "--out", str(tmp_path / "run"), "--workers", "2"], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                preexec_fn=_as_foreground)
        procs.append(proc)
        deadline = time.time() + 60
        while not (sink.is_file() and sink.read_text().count("\n") >= 4):
            if proc.poll() is not None:
                pytest.fail(f"the run ended early: {proc.stderr.read()}")
            assert time.time() < deadline, "no rows written in 60 s"
            time.sleep(0.05)
        return proc, sink, psutil.Process(proc.pid).children()

    yield start
    for proc in procs:  # a failed test must not leave its workers behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _as_foreground() -> None:
    """Popen preexec_fn: SIGINT as a terminal's foreground job has it. A test run started in the background (`make
    test &`, a CI step) has SIGINT ignored, the run under test inherits that through exec, and Python then installs
    no KeyboardInterrupt handler: the Ctrl-C tests saw it answer all 60 questions and exit 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _gone(procs, within: float) -> list:
    """The processes still running after ``within`` seconds (zombies count as gone)."""
    import psutil

    deadline = time.time() + within
    while True:
        alive = []
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
        if not alive or time.time() > deadline:
            return alive
        time.sleep(0.05)


def _still(sink: Path, seconds: float = 1.0) -> int:
    """The number of rows in ``sink``, checked unchanged over ``seconds``."""
    n = sink.read_text().count("\n")
    time.sleep(seconds)
    assert sink.read_text().count("\n") == n, "rows were written after the run had stopped"
    return n


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "ctrl-c"])
def test_stopping_a_run_stops_its_workers_and_a_resume_asks_each_question_once(stoppable, fake_bench, how):
    proc, sink, workers = stoppable()
    assert len(workers) == 2
    before = sink.read_text().count("\n")
    if how == "ctrl-c":  # the terminal sends SIGINT to the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=30)
    # counted in rows, not seconds: at most the 2 questions in flight and the 2 the workers may have handed over
    # meanwhile are written; going on would write up to 60
    assert sink.read_text().count("\n") <= before + 4, "the run went on after it was stopped"
    assert proc.returncode == 128 + {"ctrl-c": signal.SIGINT, "SIGTERM": signal.SIGTERM,
                                     "SIGHUP": signal.SIGHUP}[how], err
    assert "interrupted" in err and "Traceback" not in err
    assert _gone(workers, within=2) == []
    assert _still(sink) < 60
    spec = RunSpec("needle", str(sink.parents[1] / "all.samples.jsonl"), None, str(sink.parent))
    assert run(spec)["counts"]["answered"] == 60  # the fast fake answers the rest
    qids = [json.loads(line)["qid"] for line in sink.read_text().splitlines()]
    assert len(qids) == len(set(qids)) == 60


def test_workers_die_with_a_killed_run(stoppable):
    """SIGKILL (the OOM killer) leaves the runner no chance to stop them: they end with it on their own."""
    proc, sink, workers = stoppable()
    proc.kill()
    proc.wait(10)
    assert _gone(workers, within=2) == []
    _still(sink)


# Spawned workers (as a real run has), so the fake is installed by an initializer importable in them.
_SPAWNED_FAKE = r"""
import os, time
import eval.worker as worker

class Answer:
    def to_dict(self):
        return {"text": "B", "choice": 1, "evidence": [], "steps": [], "policy": "fake"}

class SlowVideoMind:
    def warm_up_ingest(self):  # transformers shows a progress bar while it loads a model's weights
        from tqdm.auto import tqdm
        for _ in tqdm(range(3), desc="Loading weights"):
            pass
        with open(os.environ["WARMED_UP"], "a") as f:
            f.write(f"{os.getpid()}\n")
    def ingest(self, path):
        return object()
    def ask(self, memory, question, options=None):
        time.sleep(0.3)
        return Answer()

def init_worker(threads, parent):
    worker.init_worker(threads, parent)
    worker._videomind = lambda config: SlowVideoMind()
"""


def test_ctrl_c_of_a_spawned_pool_leaves_no_leaked_semaphores(tmp_path):
    """Ctrl-C of a real `--workers 2` run ended with Python's "resource_tracker: There appear to be 2 leaked
    semaphore objects to clean up at shutdown": tqdm's first bar in each spawned worker (a model's "Loading
    weights") made a named semaphore, registered with the resource tracker and never unregistered by a worker
    that _stop terminates. The run now ends with only its own message and exit code."""
    ann = _empty_videos(tmp_path, 10)
    (tmp_path / "spawned_fake.py").write_text(_SPAWNED_FAKE)
    script = ("import sys, eval.runner as runner, spawned_fake\n"
              "runner.init_worker = spawned_fake.init_worker\n"
              "from eval.__main__ import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    warmed = tmp_path / "warmed_up"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]), "WARMED_UP": str(warmed)}
    proc = subprocess.Popen([sys.executable, "-c", script, "run", "--benchmark", "needle", "--annotations", str(ann),
                             "--out", str(tmp_path / "run"), "--workers", "2"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_as_foreground)
    try:
        deadline = time.time() + 60
        while not (warmed.is_file() and warmed.read_text().count("\n") == 2):  # each worker has shown its bar
            assert proc.poll() is None, f"the run ended early: {proc.stderr.read()}"
            assert time.time() < deadline, "the workers did not warm up in 60 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground process group
        _, err = proc.communicate(timeout=30)  # stderr closes once the resource tracker, which warns, has exited
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "interrupted: the questions answered so far are kept in samples.jsonl" in err
    assert "leaked semaphore" not in err and "Traceback" not in err, err


def test_stopping_a_pool_ends_its_busy_workers_without_the_executors_private_state(monkeypatch):
    """_stop reached the workers through ProcessPoolExecutor._processes, private: a Python without it would have
    stopped a run with an AttributeError, its workers answering on. The pool now records the processes it starts;
    here they are busy for a minute, and the executor's private dict is gone."""
    import multiprocessing

    import eval.runner as runner

    monkeypatch.setattr(runner, "get_context", lambda method: multiprocessing.get_context("fork"))  # starts fast
    before = set(multiprocessing.active_children())
    pool = runner._pool(2, 1)
    futures = [pool.submit(time.sleep, 60) for _ in range(2)]
    deadline = time.time() + 30
    while not all(f.running() for f in futures):  # handed to the workers: shutdown() alone would wait a minute
        assert time.time() < deadline, "the workers never took their calls"
        time.sleep(0.05)
    workers = [p for p in multiprocessing.active_children() if p not in before]
    assert len(workers) == 2
    del pool._processes
    t0 = time.time()
    runner._stop(pool)
    # is_alive() can say True for a moment after _stop: the executor's own thread may reap a worker first, and the
    # Process object learns its exit code when that thread's join returns (1 run in 6 here); a worker _stop did
    # not reach would sleep on for a minute
    while any(p.is_alive() for p in workers) and time.time() - t0 < 10:
        time.sleep(0.05)
    assert not any(p.is_alive() for p in workers)


def test_a_resumed_run_scores_against_the_annotations_as_they_are_now(fake_bench, tmp_path):
    """A corrected answer key (or task names) rescores the stored answers without asking them again, as a fresh
    run would score them; a question whose text or options changed is asked again."""
    asked = []
    ask = fake_bench.vm.ask
    fake_bench.vm.ask = lambda memory, question, options=None: (asked.append(question), ask(memory, question,
                                                                                             options))[1]
    ann = Path(fake_bench().annotations)
    rows = [json.loads(line) for line in ann.read_text().splitlines()]
    assert run(fake_bench())["metrics"]["overall"]["accuracy"] == 1.0  # the fake answers b, the gold of all
    n_asked = len(asked)
    rows[0]["answer"] = rows[1]["answer"] = 0  # release 2 of the annotations: the gold of q0 and q1 is a
    rows[3]["task"] = "renamed"
    _write_samples(ann, rows)
    res = run(fake_bench())
    assert len(asked) == n_asked  # nothing asked again
    assert res["metrics"]["overall"]["accuracy"] == 0.5 and set(res["metrics"]["by_category"]) == {"t", "renamed"}
    stored = read_rows(Path(fake_bench().out) / SAMPLES)  # the file agrees (the report reads it)
    assert stored["q0"]["answer"] == 0 and stored["q0"]["answer_text"] == "a" and stored["q0"]["correct"] is False
    assert stored["q3"]["categories"] == ["renamed"] and stored["q2"]["correct"] is True
    fresh = run(fake_bench(out="fresh"))
    assert _metrics(res) == _metrics(fresh)

    rows[2]["question"] = "question 2, reworded?"
    rows[3]["options"] = ["a", "c", "b"]  # b moved: the stored pred 1 would now mean c
    _write_samples(ann, rows)
    asked.clear()
    res = run(fake_bench())
    assert asked == ["question 2, reworded?", "question 3?"]  # only those, once each
    stored = read_rows(Path(fake_bench().out) / SAMPLES)
    assert stored["q2"]["question"] == "question 2, reworded?" and stored["q3"]["options"] == ["a", "c", "b"]
    assert _metrics(res) == _metrics(run(fake_bench(out="fresh2")))


def _fake_ray(monkeypatch, get):
    """A stand-in for Ray that records each task's submission and the results asked for; ``get(job)`` gives a
    task's result. Returns its log: ("submit" | "wait" | "cancel", video)."""
    import types

    from eval.worker import process_video

    log = []

    class Ref:
        def __init__(self, job, config):
            self.job, self.config = job, config
            log.append(("submit", job["video"]))

    def wait(pending, num_returns):
        log.append(("wait", pending[0].job["video"]))
        return pending[:1], pending[1:]

    ray = types.ModuleType("ray")
    ray.exceptions = types.SimpleNamespace(WorkerCrashedError=OSError, OutOfMemoryError=MemoryError,
                                           NodeDiedError=ConnectionError)
    ray.is_initialized = lambda: True  # a cluster started elsewhere: num_cpus does not bound the run
    ray.remote = lambda **kw: lambda fn: types.SimpleNamespace(remote=lambda job, config, sink: Ref(job, config))
    ray.wait = wait
    ray.get = lambda ref: get(ref.job) or process_video(ref.job, ref.config, None)
    ray.cancel = lambda ref, force=False: log.append(("cancel", ref.job["video"]))
    monkeypatch.setitem(sys.modules, "ray", ray)
    return log


def _videos(tmp_path, names) -> Path:
    rows = []
    for v in names:
        (tmp_path / f"bench/{v}.mp4").write_bytes(b"")
        rows += [{"qid": f"{v}{i}", "video": f"{v}.mp4", "question": f"{v} {i}?", "options": ["a", "b"], "answer": 1}
                 for i in range(2)]
    return _write_samples(tmp_path / "bench/videos.samples.jsonl", rows)


def test_ray_runs_at_most_workers_videos_at_once(fake_bench, tmp_path, monkeypatch):
    """On a cluster started elsewhere (or by the caller) every video was submitted at once: as many VideoMinds
    (copies of the models) as the cluster has CPUs, whatever --workers said."""
    log = _fake_ray(monkeypatch, lambda job: None)
    ann = _videos(tmp_path, "abcde")
    res = run(fake_bench(annotations=ann, ray_address="auto", workers=2))
    assert res["counts"]["answered"] == 10
    in_flight = peak = 0
    for what, _ in log:
        in_flight += {"submit": 1, "wait": -1}[what]
        peak = max(peak, in_flight)
    assert peak == 2 and in_flight == 0


def test_a_stopped_ray_run_cancels_its_tasks(fake_bench, tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM) while a cluster runs the videos: the tasks in flight are cancelled, the queued ones
    never submitted."""
    def get(job):
        if job["video"] == "b.mp4":
            raise KeyboardInterrupt

    log = _fake_ray(monkeypatch, get)
    ann = _videos(tmp_path, "abcde")
    with pytest.raises(KeyboardInterrupt):
        run(fake_bench(annotations=ann, ray_address="auto", workers=2))
    assert log[-1] == ("cancel", "c.mp4") and ("submit", "d.mp4") not in log


def test_loading_the_ingest_models_is_warm_up_not_the_first_videos_ingest(fake_bench, tmp_path):
    """Models load on first use: a worker's first ingest took seconds more than the others (5x a 1-minute video's)."""
    class LazyVideoMind(type(fake_bench.vm)):
        loaded = False

        def warm_up_ingest(self):
            time.sleep(0.5)
            self.loaded = True

        def ingest(self, path):
            if not self.loaded:
                self.warm_up_ingest()
            time.sleep(0.05)
            return object()

    fake_bench.vm.__class__ = LazyVideoMind
    res = run(fake_bench(annotations=_videos(tmp_path, "abc")))
    rows = read_rows(Path(fake_bench().out) / SAMPLES).values()
    ingest_s = {r["video"]: r["timings"]["video_ingest_s"] for r in rows}
    assert len(ingest_s) == 3 and max(ingest_s.values()) < 0.3, ingest_s
    assert res["run"]["warmup_s_this_invocation"] >= 0.5 and res["run"]["ingest_s_this_invocation"] < 0.9


_INGEST_LOADS = r"""
import sys
import faster_whisper, onnxruntime, rapidocr_onnxruntime
from videomind import Config, VideoMind
from videomind.models.bert_embed import BertSentenceEncoder

video, library, warm = sys.argv[1:]
vm = VideoMind(Config.from_dict({"library": library}))
if warm == "warm":
    vm.warm_up_ingest()
loaded = set()

def spy(cls):
    init = cls.__init__
    def load(self, *args, **kwargs):
        loaded.add(cls.__name__)
        init(self, *args, **kwargs)
    cls.__init__ = load

for cls in (faster_whisper.WhisperModel, onnxruntime.InferenceSession, rapidocr_onnxruntime.RapidOCR,
            BertSentenceEncoder):
    spy(cls)
vm.ingest(video).close()
print(sorted(loaded))
"""


def test_warm_up_ingest_loads_every_model_an_ingest_uses(needle_bench, tmp_path):
    """In fresh processes (this one has its models loaded): an ingest of a video with speech and on-screen text
    loads Whisper, ONNX sessions (its voice detector, OCR), RapidOCR and the text embedder, and none of them after
    warm_up_ingest()."""
    video = str(needle_bench["samples"].parent / "a.mp4")

    def loaded_by_ingest(warm: str) -> list[str]:
        out = subprocess.run([sys.executable, "-c", _INGEST_LOADS, video, str(tmp_path / warm), warm], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.splitlines()[-1].replace("'", '"'))

    assert loaded_by_ingest("cold") == ["BertSentenceEncoder", "InferenceSession", "RapidOCR", "WhisperModel"]
    assert loaded_by_ingest("warm") == []


def test_cli_summary_warns_of_questions_that_failed(fake_bench, capsys):
    """A failed question is left out of the accuracy: the summary must say so, not only results.json."""
    fake_bench.vm.bad_question = "question 0?"
    spec = fake_bench()
    assert main(["run", "--benchmark", "needle", "--annotations", spec.annotations, "--out", spec.out]) == 0
    out = capsys.readouterr().out
    assert "accuracy 100.0% on 3 questions" in out
    assert "WARNING: 1 questions failed and are left out of the accuracy (e.g. q0: RuntimeError: malformed reply " \
           "from the backend)" in out
    fake_bench.vm.bad_question = None
    assert main(["run", "--benchmark", "needle", "--annotations", spec.annotations, "--out", spec.out]) == 0
    assert "WARNING" not in capsys.readouterr().out
