"""The public API end to end on a generated video with the real offline models, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from videomind import Answer, Config, ConfigError, InputError, ModelNotFoundError, RebuildInterrupted, VideoMind

OPTIONS = ["apple", "pineapple", "banana", "kiwi", "plum"]


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    return VideoMind(Config.from_dict({"library": str(tmp_path_factory.mktemp("lib"))}))


@pytest.fixture(scope="module")
def memory(vm, speech_video):
    return vm.ingest(speech_video)


def test_round_trip_answers_with_the_right_time(vm, memory):
    ans = vm.ask(memory, "What is the secret password?", options=OPTIONS)
    assert isinstance(ans, Answer) and ans.choice == 1 and ans.text == "pineapple"
    top = ans.evidence[0]
    assert top.source == "speech" and "pineapple" in top.text.lower()
    assert 23.0 <= top.start <= 27.0, top  # spoken at 25 s
    assert ans.steps and ans.steps[-1].tool == "answer"
    d = ans.to_dict()
    assert json.loads(json.dumps(d))["evidence"][0]["text"] == top.text
    assert "0:25" in ans.format() or "0:24" in ans.format() or "0:26" in ans.format()


def test_reopening_recomputes_nothing(vm, memory, speech_video, monkeypatch):
    import videomind.ingest.pipeline as pipeline

    def boom(*a, **k):
        raise AssertionError("ingestion ran again")

    monkeypatch.setattr(pipeline.IngestPipeline, "run", boom)
    again = vm.ingest(speech_video)
    assert again.is_complete and again.directory == memory.directory


def test_reopening_a_complete_memory_loads_no_text_embedder(vm, memory, speech_video, monkeypatch):
    """`videomind ingest` of a complete memory took 7.5-9.2 s, against 10.8 s for ingesting it: 12.6 of 13.0 s of
    its profile went to loading the text embedder (importing sentence-transformers and torch), which reopening
    does not use. Questions still load it, when they first embed."""
    from videomind.models.text_embed import SentenceTransformerEmbedder

    loads = []

    def load(self):
        loads.append(self.name)
        raise AssertionError("the text embedder was loaded")

    fresh = VideoMind(vm.config)  # as in a new process: no model loaded
    with monkeypatch.context() as patched:
        patched.setattr(SentenceTransformerEmbedder, "_load", load)
        again = fresh.ingest(speech_video)
    assert again.is_complete and again.directory == memory.directory and loads == []
    assert fresh.ask(again, "What is the secret password?", options=OPTIONS).choice == 1
    again.close()


class _Nameless:
    dim = 64

    def embed(self, texts):
        raise AssertionError("not used")


@pytest.mark.parametrize("embedder, msg", [
    ("hash", "was built with text embedder 'all-MiniLM-L6-v2', not 'hash-bow'"),  # refused as before
    ("nameless", "holds 384-d text vectors, and the text embedder _Nameless gives 64-d ones"),
])
def test_a_complete_memory_is_refused_to_another_text_embedder(vm, memory, speech_video, embedder, msg):
    from tests.memory.conftest import HashEmbedder
    from videomind.errors import StoreError

    other = VideoMind(vm.config)
    other._embedder = HashEmbedder() if embedder == "hash" else _Nameless()
    with pytest.raises(StoreError, match=msg):
        other.ingest(speech_video)


def test_ask_stream_yields_steps_then_answer(vm, memory):
    items = list(vm.ask_stream(memory, "What is the secret password?", OPTIONS))
    assert isinstance(items[-1], Answer) and all(hasattr(s, "to_dict") for s in items[:-1])


def test_missing_file_non_video_and_empty_question(vm, tmp_path, memory):
    with pytest.raises(InputError, match="does not exist"):
        vm.ingest(tmp_path / "nope.mp4")
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    with pytest.raises(InputError) as e:
        vm.ingest(fake)
    assert "notes.mp4" in str(e.value)
    with pytest.raises(InputError, match="empty"):
        vm.ask(memory, "   ")


@pytest.mark.parametrize("options, until, msg", [
    (["camel"], None, "at least two"),
    (["camel", " "], None, "option B is blank"),
    (["Camel", "dog", "camel "], None, "options A and C are the same"),
    ("camel", None, "list of strings"),
    (None, -5.0, "until=-5.0"),
    (None, float("nan"), "until=nan"),
])
def test_options_and_until_that_cannot_be_answered_are_refused(vm, memory, options, until, msg):
    with pytest.raises(InputError, match=msg):
        vm.ask(memory, "What animal?", options=options, until=until)


def test_until_zero_is_a_time_not_unset(vm, memory):
    """As of 0 s nothing has been observed yet: no evidence (the password is spoken at 25 s)."""
    ans = vm.ask(memory, "What is the secret password?", options=OPTIONS, until=0.0)
    assert ans.evidence == [] or all(e.end <= 0.0 for e in ans.evidence)


@pytest.mark.parametrize("key, value", [("text_embed", "/no/such/minilm"), ("asr", "/no/such/whisper"),
                                        ("ocr", "no-such-ocr")])
def test_missing_model_is_named_before_any_store_is_made(tmp_path, speech_video, key, value):
    vm = VideoMind(Config.from_dict({"library": str(tmp_path)}, [f"models.{key}={value}"]))
    with pytest.raises(ModelNotFoundError, match=value):
        vm.ingest(speech_video)
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_cuda_without_a_gpu_is_a_config_error_not_a_store(tmp_path, speech_video):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    vm = VideoMind(Config.from_dict({"library": str(tmp_path)}, ["models.device=cuda"]))
    with pytest.raises(ConfigError, match="models.device='cuda'.*no CUDA GPU"):
        vm.ingest(speech_video)
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_rebuild_swaps_in_a_complete_memory(tmp_path, speech_video):
    vm = VideoMind(Config.from_dict({"library": str(tmp_path)}, ["ingest.ocr=false"]))
    first = vm.ingest(speech_video)
    again = vm.ingest(speech_video, rebuild=True)
    assert again.directory == first.directory and again.is_complete
    assert again.counts() == first.counts()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".stage")) == [first.directory.name]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
@pytest.mark.parametrize("stored", [True, False])
def test_an_abandoned_rebuild_leaves_the_library_as_it_was(tmp_path, speech_video, stop, stored):
    """An interrupted `ingest --rebuild` said 'the rebuild was abandoned and the previous memory is unchanged' but
    left its half-built .<key>.rebuild, listed under the memory's own key, which `memories --delete KEY` could only
    delete together with the memory. What the rebuild stored is deleted; the memory before it (if any) stays."""
    cfg = Config.from_dict({"library": str(tmp_path)}, ["ingest.chunk_seconds=10", "ingest.ocr=false",
                                                         "ingest.asr=false"])
    before = VideoMind(cfg).ingest(speech_video) if stored else None
    counts = before.counts() if stored else None

    def progress(ev):
        if ev.stage == "chunk" and ev.done >= 2:  # two chunks of the rebuild are stored
            raise stop("stopped")

    with pytest.raises(stop) as raised:
        VideoMind(cfg).ingest(speech_video, progress=progress, rebuild=True)
    if stop is KeyboardInterrupt:  # the CLI prints what the API says became of the rebuild
        assert raised.type is RebuildInterrupted and str(raised.value).startswith(
            "the rebuild was abandoned and what it had stored deleted")
    assert [p.name for p in tmp_path.iterdir() if p.name != ".stage-cache"] == ([before.directory.name] if stored
                                                                                else [])
    listed = VideoMind(cfg).library.list()
    assert [(m["name"], m["complete"]) for m in listed] == ([(before.key, True)] if stored else [])
    if stored:
        assert VideoMind(cfg).ingest(speech_video).counts() == counts


def test_a_rebuild_interrupted_after_its_swap_says_it_finished(tmp_path, speech_video, monkeypatch):
    """A Ctrl-C while the swapped-in memory is reopened (it loads every vector) came after the old memory was
    deleted, yet the CLI said 'the memory stored before it (if any) is unchanged' (reviewer)."""
    from videomind.memory.library import Library

    cfg = Config.from_dict({"library": str(tmp_path)}, ["ingest.ocr=false", "ingest.asr=false"])
    before = VideoMind(cfg).ingest(speech_video)
    folder = before.directory.stat().st_ino  # the rebuilt store is another folder, moved into place
    before.close()
    swap = Library._swap

    def swap_then_ctrl_c(self, side, directory):
        swap(self, side, directory)
        raise KeyboardInterrupt

    monkeypatch.setattr(Library, "_swap", swap_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt) as raised:  # not RebuildInterrupted: a bare one would stop pytest
        VideoMind(cfg).ingest(speech_video, rebuild=True)
    assert raised.type is RebuildInterrupted
    assert str(raised.value) == f"the rebuild had finished: the memory {before.key} is the rebuilt one"
    monkeypatch.undo()
    after = VideoMind(cfg).ingest(speech_video)
    assert after.is_complete and after.directory.stat().st_ino != folder


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "videomind.cli", *args], capture_output=True, text=True, env=env)


def test_cli_models_and_clear_errors(tmp_path):
    r = _cli("models")
    assert r.returncode == 0 and "asr" in r.stdout and "vlm" in r.stdout and "not configured" in r.stdout
    r = _cli("ask", str(tmp_path / "missing.mp4"), "what?")
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = _cli("models", "--set", "ingest.fps=0")
    assert r.returncode == 2 and "ingest.fps" in r.stderr


def test_cli_ask_prints_answer_with_evidence(tmp_path, speech_video):
    r = _cli("ask", str(speech_video), "What is the secret password?", *sum((["-o", o] for o in OPTIONS), []),
             "--set", f"library={tmp_path}")
    assert r.returncode == 0, r.stderr
    assert "A: (B) pineapple" in r.stdout and "speech" in r.stdout and "answered by: heuristic" in r.stdout


_ASK_IMPORTS = r"""
import sys
from videomind.cli import main

rc = main(sys.argv[1:])
print(rc, sorted({m.split(".")[0] for m in sys.modules} & {"sentence_transformers", "transformers", "sklearn",
                                                          "pandas", "torch"}))
"""


def test_cli_ask_on_a_complete_memory_imports_no_sentence_transformers(vm, memory, speech_video):
    """`videomind ask` on a complete memory took 8.3-10 s in a new process, ~6 s of it importing
    sentence-transformers (transformers' model code, scikit-learn, pandas) to embed the question with
    all-MiniLM-L6-v2. The model runs on torch alone now: the answer is the same, and none of those is imported."""
    r = subprocess.run([sys.executable, "-c", _ASK_IMPORTS, "ask", str(speech_video), "What is the secret password?",
                        *sum((["-o", o] for o in OPTIONS), []), "--set", f"library={vm.config.library_dir}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "A: (B) pineapple" in r.stdout
    assert r.stdout.splitlines()[-1] == "0 ['torch']"  # torch: the question was embedded


def test_real_offline_llm_drives_the_loop_without_crashing(tmp_path, memory):
    """policy=llm with the bundled 135M model: whatever it replies, the loop records it and ends in an answer."""
    vm = VideoMind(Config.from_dict({"library": str(tmp_path)}, ["agent.policy=llm", "agent.max_steps=2",
                                                                 "agent.max_new_tokens=48"]))
    ans = vm.ask(memory, "What is the secret password?", options=OPTIONS)
    assert ans.choice in range(5) and ans.policy.startswith("llm:smollm2-135m-instruct")
    assert 1 <= len(ans.steps) <= 2 and ans.steps[-1].tool == "answer"
    assert all(s.model_output and s.prompt_tokens > 0 for s in ans.steps)


def test_vlm_endpoint_inspects_frames_of_the_span(tmp_path, memory, speech_video):
    """agent.backend=openai with a VLM: the model's inspect() call sends that span's frames as images."""
    from tests.backends.test_openai_compat import _ok, _Server

    server = _Server([
        _ok('{"tool": "inspect", "args": {"t0": 20, "t1": 23, "question": "What colour is the screen?"}}'),
        _ok("The screen is plain blue."),
        _ok('{"tool": "answer", "args": {"text": "blue", "evidence": []}}'),
    ])
    try:
        cfg = Config.from_dict({"library": str(tmp_path)}, [
            "agent.backend=openai", f"agent.base_url={server.url}", "models.vlm=test-vlm", "agent.policy=llm"])
        ans = VideoMind(cfg).ask(memory, "What colour is the screen?")
    finally:
        server.close()
    assert ans.text == "blue" and [s.tool for s in ans.steps] == ["inspect", "answer"]
    assert "plain blue" in ans.steps[0].observation
    images = [p for p in server.requests[1]["body"]["messages"][-1]["content"] if p["type"] == "image_url"]
    assert len(images) == 3  # 1 fps over [20, 23)


def test_interrupted_ingest_resumes_where_it_stopped(tmp_path, speech_video, monkeypatch):
    import videomind.ingest.pipeline as pipeline

    cfg = Config.from_dict({"library": str(tmp_path)}, ["ingest.chunk_seconds=10"])
    real_run, calls = pipeline.IngestPipeline.run, []

    def crashing_run(self, path, start_at=0.0, **kw):
        calls.append((start_at, kw.get("first_shot"), kw.get("speech_from")))
        for i, chunk in enumerate(real_run(self, path, start_at=start_at, **kw)):
            if len(calls) == 1 and i == 2:
                raise KeyboardInterrupt  # the user pressed Ctrl-C during the third chunk
            yield chunk

    monkeypatch.setattr(pipeline.IngestPipeline, "run", crashing_run)
    with pytest.raises(KeyboardInterrupt):
        VideoMind(cfg).ingest(speech_video)
    memory = VideoMind(cfg).ingest(speech_video)
    assert calls[1][0] == 20.0 and calls[1][1] > 0  # resumed after the two committed chunks, shots continue
    assert memory.is_complete
    speech = memory.texts_between(0, 1e9, ["speech"])
    stored_before = [t for t in speech if t.start < 20.0]
    assert calls[0][2] == 0.0 and calls[1][2] == max((t.end for t in stored_before), default=0.0)
    assert all(b.start >= a.end - 0.5 for a, b in zip(speech, speech[1:])), speech   # nothing heard twice
    ans = VideoMind(cfg).ask(memory, "What is the secret password?", options=OPTIONS)
    assert ans.choice == 1 and 23 <= ans.evidence[0].start <= 27


class _ContentBackend:
    """A capable (non-weak) fake chat model that answers memory-writing prompts by their kind."""

    name, weak, supports_images, context_window = "fake-capable", False, False, 8192

    def __init__(self):
        self.prompts = []

    def chat(self, messages, *, max_new_tokens=256, temperature=0.0, images=None):
        from videomind.backends.base import Completion

        prompt = messages[-1]["content"]
        self.prompts.append(prompt)
        if prompt.startswith("Summarise"):
            return Completion("LLM SUMMARY: someone says the password.")
        if prompt.startswith("List the people"):
            return Completion('Sure: [["Password Pineapple", "term"]]' if "pineapple" in prompt else "no idea")
        return Completion('{"tool": "answer", "args": {"choice": 1, "text": "pineapple"}}')


def test_capable_backend_writes_summaries_and_entities(tmp_path, speech_video):
    backend = _ContentBackend()
    vm = VideoMind(Config.from_dict({"library": str(tmp_path)}), backend=backend)
    memory = vm.ingest(speech_video)
    summaries = [e["summary"] for scale in ("segment", "chapter") for e in memory.events(scale)]
    assert summaries and all(s.startswith("LLM SUMMARY") for s in summaries)
    assert [e["summary"] for e in memory.events("clip")][0] and not any(
        e["summary"].startswith("LLM") for e in memory.events("clip"))  # clips stay extractive
    assert "Password Pineapple" in memory.about("Password Pineapple")["name"]
    # an unparseable entity reply ("no idea") fell back to the offline extractor instead of losing the row
    assert any("welcome" in t.text.lower() for t in memory.texts_between(0, 10))
    ans = vm.ask(memory, "What is the secret password?", options=OPTIONS)
    assert ans.policy == "llm:fake-capable" and ans.choice == 1


def test_an_unreachable_endpoint_that_writes_memory_fails_before_any_store(tmp_path, vm, memory, speech_video):
    """A wrong agent.base_url (or a server that is down): ingest went through every chunk, each summary and entity
    call waiting through its retries (4.5 min for a 2-minute video), then stored a complete memory written by the
    offline fallbacks under the endpoint's settings, and only the question failed."""
    import socket

    from videomind.backends.openai_compat import EndpointError, OpenAIChat

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = OpenAIChat(f"http://127.0.0.1:{port}/v1", "served-model", retries=0)
    with pytest.raises(EndpointError, match="could not reach"):
        VideoMind(Config.from_dict({"library": str(tmp_path)}), backend=backend).ingest(speech_video)
    assert not list(tmp_path.iterdir())
    # a complete memory is reopened without asking the endpoint (it is written already)
    assert VideoMind(vm.config, backend=backend).ingest(speech_video).is_complete


@pytest.mark.parametrize("kwargs, msg", [
    ({"question": 5}, "question must be text"),
    ({"until": "5"}, "until='5'"),
    ({"until": True}, "until=True"),
    ({"until": float("inf")}, "until=inf"),
    ({"options": [None, "dog"]}, "option A is None"),
])
def test_arguments_of_the_wrong_type_are_input_errors(vm, memory, kwargs, msg):
    """They raised AttributeError/TypeError from deep inside, or offered the option "None"."""
    args = {"question": "What animal?", **kwargs}
    with pytest.raises(InputError, match=msg):
        vm.ask(memory, args.pop("question"), **args)


@pytest.mark.parametrize("memory", [None, 42, {"dir": "x"}])
def test_ask_on_something_that_is_not_a_memory(vm, memory):
    with pytest.raises(InputError, match="what ingest\\(\\) returned"):
        vm.ask(memory, "What is the secret password?")


def test_a_url_is_refused_by_name(vm):
    with pytest.raises(InputError, match="'https://example.com/talk.mp4' is a URL.*download it first"):
        vm.ingest("https://example.com/talk.mp4")


def test_a_config_changed_after_construction_is_validated(tmp_path):
    cfg = Config.from_dict({"library": str(tmp_path)})
    cfg.ingest.fps = 0
    with pytest.raises(ConfigError, match=r"ingest\.fps"):
        VideoMind(cfg)


def test_settings_that_shape_nothing_reopen_the_same_store(vm, memory, speech_video, monkeypatch):
    import videomind.ingest.pipeline as pipeline

    monkeypatch.setattr(pipeline.IngestPipeline, "run", lambda *a, **k: pytest.fail("ingested again"))
    other = VideoMind(Config.from_dict(vm.config.to_dict(), ["ingest.asr_threads=1", "models.allow_download=true"]))
    assert other.ingest(speech_video).directory == memory.directory


def test_a_store_finished_by_another_ingest_meanwhile_is_returned(tmp_path, speech_video, monkeypatch):
    """Two ingests of one video at once: the one that finds the store completed by the other when it comes to
    write returns that memory (it raised 'is complete; to add to it, delete ... or --rebuild')."""
    import videomind.ingest.pipeline as pipeline

    cfg = Config.from_dict({"library": str(tmp_path)}, ["ingest.ocr=false"])
    real_run, runs = pipeline.IngestPipeline.run, []

    def run_while_another_finishes(self, path, **kw):
        runs.append(path)
        if len(runs) == 1:  # the first ingest has made its store; another ingest completes it before it writes
            assert VideoMind(cfg).ingest(path).is_complete
        yield from real_run(self, path, **kw)

    monkeypatch.setattr(pipeline.IngestPipeline, "run", run_while_another_finishes)
    memory = VideoMind(cfg).ingest(speech_video)
    assert len(runs) == 2 and memory.is_complete
    ans = VideoMind(cfg).ask(memory, "What is the secret password?", options=OPTIONS)
    assert ans.choice == 1


def test_timestamps_past_an_hour_and_answers_as_json():
    from videomind.types import Evidence, format_time

    e = Evidence(3599.6, 7322.4, "speech", "late", 0.5, id="t1")
    assert e.timestamp() == "[1:00:00-2:02:02]" and format_time(59.6) == "1:00" and format_time(-2) == "0:00"
    assert format_time(float("nan")) == "?" and format_time(float("inf")) == "?"
    ans = Answer("q", "late", choice=None, evidence=[e])
    assert "[1:00:00-2:02:02] speech" in ans.format()
    assert Evidence(**json.loads(json.dumps(ans.to_dict()))["evidence"][0]) == e


def test_ask_with_a_path_closes_the_memory_it_opened(vm, memory, speech_video):
    """The store handle ask() opens for a path is closed when it has answered; it waited for the garbage
    collector (reference cycles), two file descriptors per call in a server that asks by path."""
    import gc
    import os

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to count open files")
    vm.ask(speech_video, "What is the secret password?")  # loads what stays loaded (models, caches)
    gc.collect()
    gc.disable()
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(5):
            assert vm.ask(speech_video, "What is the secret password?", options=OPTIONS).choice == 1
        after = len(os.listdir("/proc/self/fd"))
    finally:
        gc.enable()
    assert after <= before + 1, (before, after)


def _frames(kind: str):
    import numpy as np

    rgb = np.zeros((120, 160, 3), np.uint8)
    return {"bare arrays": [rgb, rgb], "greyscale": [(0.0, rgb[..., 0])], "float pixels": [(0.0, rgb / 255.0)],
            "nan time": [(float("nan"), rgb)], "a list": [(0.0, rgb.tolist())]}[kind]


@pytest.mark.parametrize("kind, msg", [("bare arrays", r"\(t, rgb\) pairs"), ("greyscale", r"uint8 \[120, 160\]"),
                                       ("float pixels", "float64"), ("nan time", "finite"), ("a list", "got list")])
def test_a_live_source_of_the_wrong_shape_is_refused_before_a_store_exists(tmp_path, kind, msg):
    """It failed inside the pipeline (unpacking, matmul shapes) after making an empty store; float pixels were
    stored as they came."""
    vm = VideoMind(Config.from_dict({"library": str(tmp_path / "lib")}))
    with pytest.raises(InputError, match=msg):
        list(vm.ingest_stream(_frames(kind), name="cam"))
    with pytest.raises(InputError, match="name=None"):
        list(vm.ingest_stream([], name=None))
    assert not (tmp_path / "lib").exists() or not [p for p in (tmp_path / "lib").iterdir()
                                                    if not p.name.startswith(".")]


def _locked_by_another(store) -> bool:
    """Whether a process other than this one would find the store's writer lock taken: flock locks belong to an
    open file, so a second open of the lock file here contends as another process's would."""
    import fcntl

    with open(store / "ingest.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def test_a_failed_ingest_leaves_the_store_unlocked_and_resumable(tmp_path, speech_video):
    """The handle of a failed ingest kept the writer lock until the process exited: another process (the CLI
    beside an app or a notebook) got 'is being ingested by another process' on ingest and on delete."""
    pytest.importorskip("fcntl")
    cfg = Config.from_dict({"library": str(tmp_path)}, ["ingest.chunk_seconds=10", "ingest.ocr=false",
                                                         "ingest.asr=false"])

    def progress(ev):
        if ev.stage == "chunk" and ev.done >= 2:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        VideoMind(cfg).ingest(speech_video, progress=progress)
    [stored] = VideoMind(cfg).library.list()
    assert not stored["complete"] and not _locked_by_another(Path(stored["dir"]))
    memory = VideoMind(cfg).ingest(speech_video)
    assert memory.is_complete and memory.directory == Path(stored["dir"])


def test_a_failed_or_abandoned_live_ingest_leaves_the_store_unlocked(tmp_path):
    """The same for a live source: one that fails, and one whose caller stops iterating (the memory it was
    given stays readable)."""
    import numpy as np

    pytest.importorskip("fcntl")
    vm = VideoMind(Config.from_dict({"library": str(tmp_path)}, ["ingest.chunk_seconds=2", "ingest.ocr=false"]))

    def camera(fail: bool):
        for i in range(60):
            yield i / 10, np.full((60, 80, 3), 40 * (i // 20), np.uint8)
        if fail:
            raise OSError("camera unplugged")

    with pytest.raises(OSError, match="unplugged"):
        for memory in vm.ingest_stream(camera(fail=True), name="failing"):
            assert not memory.is_complete
    assert memory.resume_point >= 2.0 and not _locked_by_another(memory.directory)
    following = vm.ingest_stream(camera(fail=False), name="abandoned")
    memory = next(following)
    following.close()
    assert not _locked_by_another(memory.directory) and memory.keyframes_between(0, 2)


def test_a_live_name_in_use_says_how_to_delete_its_memory(tmp_path):
    """The error asked users to delete the memory's directory by hand ('or delete that directory to record over
    it'), past the library's locks and its other folders."""
    import re

    import numpy as np

    from videomind import cli

    vm = VideoMind(Config.from_dict({"library": str(tmp_path)}, ["ingest.chunk_seconds=2", "ingest.ocr=false"]))
    frames = [(i / 10, np.zeros((60, 80, 3), np.uint8)) for i in range(30)]
    recording = vm.ingest_stream(iter(frames), name="desk-cam")
    key = next(recording).key
    recording.close()
    with pytest.raises(InputError) as e:
        next(vm.ingest_stream(iter(frames), name="desk-cam"))
    assert f"already exists ({key}): pass another name, or delete it to record over it: `videomind memories " \
           f"--delete {key}`" in str(e.value) and "directory" not in str(e.value)
    command = re.search(r"`videomind (memories --delete \S+)`", str(e.value)).group(1).split()
    assert cli.main([*command, "--set", f"library={tmp_path}"]) == 0
    assert not next(vm.ingest_stream(iter(frames), name="desk-cam")).is_complete  # recorded over


def test_an_ingest_holds_its_store_before_the_first_chunk_is_stored(tmp_path, speech_video):
    """The writer lock was taken at the first chunk's commit: while that chunk decoded and was transcribed
    (tens of seconds), `videomind memories --delete` in another process deleted the store from under the ingest,
    which then failed on a missing ingest.lock."""
    pytest.importorskip("fcntl")
    cfg = Config.from_dict({"library": str(tmp_path)}, ["ingest.chunk_seconds=10", "ingest.ocr=false",
                                                         "ingest.asr=false"])
    seen = []

    def progress(ev):
        if not seen:  # the first event of the first chunk: nothing is stored yet
            [store] = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
            seen.append((store, _locked_by_another(store), VideoMind(cfg).library.list()[0]["complete"]))

    memory = VideoMind(cfg).ingest(speech_video, progress=progress)
    assert seen == [(memory.directory, True, False)] and memory.is_complete
    assert not _locked_by_another(memory.directory)  # complete: released


def test_two_ingests_of_one_video_in_one_process_take_turns(tmp_path, speech_video):
    """Two app sessions ingesting one video at once: the second waits for the first and reopens what it stored,
    instead of decoding every chunk beside it (or crashing on the chunk index the other committed first)."""
    import threading

    cfg = Config.from_dict({"library": str(tmp_path)}, ["ingest.chunk_seconds=5", "ingest.ocr=false",
                                                         "ingest.asr=false"])
    vm, chunks, results = VideoMind(cfg), [], []
    first_chunk = threading.Event()

    def progress(ev):
        if ev.stage == "chunk":
            chunks.append(threading.current_thread().name)
            first_chunk.set()

    def ingest():
        results.append(vm.ingest(speech_video, progress=progress))

    first = threading.Thread(target=ingest, name="first")
    first.start()
    assert first_chunk.wait(60)  # the first is under way
    second = threading.Thread(target=ingest, name="second")
    second.start()
    first.join()
    second.join()
    assert len(results) == 2 and all(m.is_complete for m in results)
    assert results[0].directory == results[1].directory and set(chunks) == {"first"}, chunks
