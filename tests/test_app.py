"""The Gradio app's handlers over the real API (no browser), its upload checks and capability banner."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

import app
from videomind import Answer, Config, Evidence, VideoMind, VideoMindError
from videomind.types import Keyframe


def test_banner_names_unavailable_capabilities():
    md = app.capability_banner(Config())
    assert "| asr |" in md and "**unavailable**" in md and "models.vlm" in md
    # what serves an available capability, and its limits, are said too (as `videomind models` says them)
    assert "Whisper tiny.en" in md and "no text-to-image search" in md
    note = app.capability_note(Config())
    assert "Not available on this machine: vlm" in note


@pytest.mark.parametrize("text, seconds", [(None, None), ("", None), ("  ", None), ("90", 90.0), ("1:30", 90.0),
                                           ("1:02:03", 3723.0), ("0", 0.0), (12.5, 12.5)])
def test_until_field_empty_means_the_whole_video(text, seconds):
    assert app.parse_until(text) == seconds


def test_until_field_refuses_what_is_not_a_time():
    with pytest.raises(VideoMindError, match="seconds .90. or M:SS"):
        app.parse_until("ten")


@pytest.mark.parametrize("name, content, msg", [
    ("evil.sh", b"#!/bin/sh\nrm -rf /\n", "unsupported file type"),
    ("empty.mp4", b"", "empty"),
    ("noext", b"x", "unsupported file type"),
])
def test_hostile_or_broken_uploads_are_refused(tmp_path, name, content, msg):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(VideoMindError, match=msg):
        app.check_upload(str(p))
    with pytest.raises(VideoMindError, match="no video"):
        app.check_upload(None)


def test_symlink_upload_is_refused(tmp_path):
    (tmp_path / "real.mp4").write_bytes(b"x" * 10)
    (tmp_path / "link.mp4").symlink_to(tmp_path / "real.mp4")
    with pytest.raises(VideoMindError, match="not a regular file"):
        app.check_upload(str(tmp_path / "link.mp4"))


def test_session_ingests_and_streams_an_answer(tmp_path, speech_video):
    s = app.Session(Config.from_dict({"library": str(tmp_path)}))
    with pytest.raises(VideoMindError, match="ingest a video first"):
        list(s.ask("what?"))
    seen = []
    assert "Ingested" in s.ingest(str(speech_video), progress=lambda f, desc="": seen.append((f, desc)))
    assert seen and 0 <= min(f for f, _ in seen) and max(f for f, _ in seen) <= 1.0
    assert seen[0] == (0.0, seen[0][1]) and seen[0][1].startswith("probe: ")  # probed is not "100% ingested"
    assert not [desc for _, desc in seen if desc.endswith(": ")]               # a stage without detail: its name
    # "" is what the browser sends when the "answer as of" field is left empty: the whole video
    updates = list(s.ask("What is the secret password?", "apple\npineapple\nbanana", ""))
    assert len(updates) > 1 and updates[0][1] == "_thinking..._"
    trace, answer, rows, thumbs = updates[-1]
    assert "(B) pineapple" in answer and "heuristic" in answer
    assert rows and rows[0][1] == "speech" and "pineapple" in rows[0][3].lower()
    *_, (trace, answer, rows, thumbs) = s.ask("What is the secret password?", "apple\npineapple\nbanana", "0")
    assert rows == [] and thumbs == []          # as of 0 s nothing is known yet (0 is a time, not "unset")
    assert "Ingest" in s.forget("other.mp4") and s.memory is None   # a new video: no answers from the old one
    with pytest.raises(VideoMindError, match="ingest a video first"):
        list(s.ask("What is the secret password?"))


def test_ingest_status_says_what_the_memory_lacks(tmp_path):
    """A video without audio: the CLI says 'note: audio missing: speech memory empty' after the ingest, the app
    said only 'Ingested **noaudio.mp4** (0.1 min). Ask a question below.'"""
    from tests.ingest.conftest import ffmpeg

    video = tmp_path / "noaudio.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=5:d=4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(video))
    s = app.Session(Config.from_dict({"library": str(tmp_path / "library")}))
    status = s.ingest(str(video))
    assert status == ("Ingested **noaudio.mp4** (0.1 min). Ask a question below.\n\n"
                      "- note: audio missing: speech memory empty"), status


class StubMind(VideoMind):
    """ingest() runs ``during`` (what the user does while it runs) and returns a memory that records its close."""

    def __init__(self, during=lambda: None):
        super().__init__(Config())
        self.during, self.made = during, []

    def ingest(self, path, progress=None, rebuild=False):
        class Memory:
            info, closed = SimpleNamespace(duration=60.0), False

            def close(self):
                self.closed = True

            def notes(self):
                return []

        self.during()
        self.made.append(Memory())
        return self.made[-1]


@pytest.mark.parametrize("chosen_meanwhile, kept", [(["b.mp4"], False), ([None], False), (["a.mp4"], True),
                                                    (["b.mp4", "a.mp4"], True)])
def test_ingest_keeps_its_memory_only_if_its_video_is_still_selected(tmp_path, chosen_meanwhile, kept):
    """gradio runs the player's change event (forget) while an ingest runs: picking video B during the ingest of A
    must not leave A's memory answering the questions about B once that ingest ends ("Ingested A", then Ask
    answered from A while the player showed B). A change event for A itself arriving late keeps A's memory."""
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"x" * 10)
    a, chosen = str(tmp_path / "a.mp4"), [str(tmp_path / c) if c else None for c in chosen_meanwhile]
    s = app.Session(StubMind(during=lambda: [s.forget(c) for c in chosen]))
    s.forget(a)
    status = s.ingest(a)
    made = s.vm.made[0]
    if kept:
        assert s.memory is made and not made.closed and status.startswith("Ingested **a.mp4** (1.0 min)")
    else:
        assert s.memory is None and made.closed  # not left to the garbage collector with the store's files open
        assert status == ("Ingested **a.mp4**, but another video is selected now: click **Ingest** to read it."
                          if chosen[-1] else "Ingested **a.mp4**, but no video is selected now.")
        with pytest.raises(VideoMindError, match="ingest a video first"):
            list(s.ask("What did the speaker ask?"))


def keyframes(directory, colours: dict[float, tuple]) -> dict[float, str]:
    """JPEG thumbnails of one colour each (keyed by their time), as a store writes them; returns their paths."""
    from PIL import Image

    (directory / "thumbnails").mkdir(parents=True, exist_ok=True)
    paths = {t: str(directory / "thumbnails" / f"kf_{int(t):07d}.jpg") for t in colours}
    for t, colour in colours.items():
        Image.new("RGB", (64, 48), colour).save(paths[t])
    return paths


def answered_with(session, thumbnails: dict[float, str], evidence: list[Evidence]):
    """The session answers with ``evidence`` from a memory whose keyframes are ``thumbnails``."""
    class Memory:
        def keyframes_between(self, t0, t1):
            return [Keyframe(t, 0, thumbnail=p) for t, p in thumbnails.items() if t0 <= t <= t1]

    session.memory = Memory()
    session.vm.ask_stream = lambda memory, q, options, until: iter([Answer(q, "March", evidence=evidence)])


def test_overlapping_evidence_shows_each_keyframe_once(tmp_path):
    """Evidence items often cover the same moment (a sentence and the entity it mentions): the gallery shows that
    keyframe once, captioned with the first evidence's timestamp, not twice side by side."""
    paths = keyframes(tmp_path, {21.0: (255, 0, 0), 40.0: (0, 0, 255)})
    s = app.Session(Config.from_dict({"library": str(tmp_path)}))
    answered_with(s, paths, [Evidence(21.0, 30.0, "speech", "The concert is in March.", 0.03),
                             Evidence(21.0, 23.0, "entity", "March: mentioned 1x", 0.02),
                             Evidence(40.0, 41.0, "ocr", "HOTEL ATLAS", 0.01)])
    *_, (trace, answer, rows, thumbs) = s.ask("In which month is the concert?")
    assert len(rows) == 3
    assert [(image.getpixel((32, 24))[0] > 200, caption) for image, caption in thumbs] == [
        (True, "[0:21-0:30]"), (False, "[0:40-0:41]")]
    assert app.keyframe_image(str(tmp_path / "deleted.jpg")) is None  # its memory deleted meanwhile: left out


def test_the_library_is_not_served_and_answers_still_show_their_keyframes(tmp_path, demo):
    """Launch allowed the library so that the gallery could show keyframes by their path, and with it any HTTP
    client could download every file in it (GET /gradio_api/file=<library>/<key>/memory.db: the SQLite file). The
    gallery gets the keyframes as images now, which gradio serves from its own cache."""
    import io

    import gradio as gr
    import httpx
    from PIL import Image

    library = tmp_path / "library"
    store = library / "0123abcd"
    paths = keyframes(store, {21.0: (200, 30, 30)})
    (store / "memory.db").write_bytes(b"SQLite format 3\x00" + bytes(100))
    (store / "manifest.json").write_text("{}")
    config = Config.from_dict({"library": str(library)})
    s = app.Session(config)
    answered_with(s, paths, [Evidence(21.0, 30.0, "speech", "The concert is in March.", 0.03)])
    *_, (*_, thumbs) = s.ask("In which month is the concert?")
    gallery = next(b for b in demo.blocks.values() if isinstance(b, gr.Gallery))
    shown = gallery.postprocess(thumbs).root  # what the browser is sent
    assert [item.caption for item in shown] == ["[0:21-0:30]"]
    demo.launch(prevent_thread_lock=True, quiet=True, **app.launch_options())
    try:
        def get(path):
            return httpx.get(f"{demo.local_url}gradio_api/file={path}")

        for path in (store / "memory.db", store / "manifest.json", paths[21.0]):
            assert get(path).status_code == 403, path
        keyframe = get(shown[0].image.path)
        assert keyframe.status_code == 200
        red, green, _ = Image.open(io.BytesIO(keyframe.content)).convert("RGB").getpixel((32, 24))
        assert red > 150 and green < 80
    finally:
        demo.close()


def test_unreadable_upload_is_named_by_its_file_name_not_the_server_path(tmp_path):
    """A text file renamed .mp4 passes the upload checks; the decoder's refusal must reach the user naming the
    file they chose, not gradio's /tmp/gradio/<hash>/ copy of it."""
    upload = tmp_path / "gradio" / "0123abcd"
    upload.mkdir(parents=True)
    (upload / "notavideo.mp4").write_text("hello, this is not a video\n")
    s = app.Session(Config.from_dict({"library": str(tmp_path / "library")}))
    with pytest.raises(VideoMindError, match="notavideo.mp4") as e:
        s.ingest(str(upload / "notavideo.mp4"))
    assert "not a readable media file" in str(e.value) and str(upload) not in str(e.value)


@pytest.mark.parametrize("argv, message", [
    (["--config", "nope.toml"], "error: config file 'nope.toml' does not exist\n"),
    (["--set", "ingest.fsp=2"], "error: unknown config key 'ingest.fsp'; did you mean 'ingest.fps'?"),
    (["--set", "ingest.fps"], "error: override 'ingest.fps': expected key=value, e.g. ingest.fps=2\n"),
])
def test_a_config_mistake_is_one_line_and_exit_code_2_as_in_the_cli(argv, message, monkeypatch, capsys):
    """`python app.py --config nope.toml` printed a traceback ending in ConfigError; the CLI prints `error: ...`."""
    monkeypatch.setattr("sys.argv", ["app.py", *argv])
    monkeypatch.setattr(app, "build_app", lambda *a, **kw: pytest.fail("launched with a bad config"))
    with pytest.raises(SystemExit) as exit_:
        app.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_launch_options():
    options = app.launch_options()
    assert options["max_file_size"] == app.MAX_UPLOAD_BYTES and ".vm-models" in options["css"]
    assert "allowed_paths" not in options  # gradio would serve every file under them to any client


def test_blocks_wire_the_handlers_to_the_widgets():
    """The page has the banner, the inputs and outputs each handler needs, and handler errors reach the user as
    gr.Error (building alone proves nothing)."""
    import gradio as gr

    demo = app.build_app(Config())
    markdown = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert any("| vlm |" in (m or "") and "**unavailable**" in m for m in markdown)
    # the missing VLM is said where it is seen without opening the collapsed model table
    outside = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)
               and not isinstance(b.parent, gr.Accordion)]
    assert any("Not available on this machine: vlm" in (m or "") for m in outside)
    fns = {f.fn.__name__: f for f in demo.fns.values() if f.fn is not None}
    kinds = {name: ([type(x).__name__ for x in f.inputs], [type(x).__name__ for x in f.outputs])
             for name, f in fns.items()}
    assert kinds["on_ingest"] == (["State", "Video"], ["Markdown"])
    # the progress bar is drawn over the status, so the click first clears the old status text, then ingests
    order = {f.fn.__name__: i for i, f in demo.fns.items() if f.fn is not None}
    assert fns["on_ingest"].trigger_after == order["clear_status"] and fns["clear_status"].fn() == ""
    # not a gr.Number: the browser shows an empty one as 0 and sends 0, answering every question as of 0 s
    assert kinds["on_ask"] == (["State", "Textbox", "Textbox", "Textbox"], ["Markdown", "Markdown", "Dataframe",
                                                                             "Gallery"])
    assert kinds["on_video"] == (["State", "Video"], ["Markdown", "Markdown", "Markdown", "Dataframe", "Gallery"])
    assert [event for _, event in fns["on_video"].targets] == ["change"]
    assert fns["on_video"].fn(app.Session(Config()), "new.mp4")[1:] == ("", "", [], [])  # old answer cleared
    assert sorted(event for _, event in fns["on_ask"].targets) == ["click", "submit"]  # Enter asks too
    gallery = fns["on_ask"].outputs[3]
    assert gallery.fit_columns is False and gallery.object_fit == "contain"  # whole frames, captions visible
    with pytest.raises(gr.Error, match="ingest a video first"):
        list(fns["on_ask"].fn(app.Session(Config()), "what?", "", None))
    with pytest.raises(gr.Error, match="no video uploaded"):
        fns["on_ingest"].fn(app.Session(Config()), None, progress=None)


@pytest.fixture(scope="module")
def demo():
    return app.build_app(Config())


def test_every_tab_shares_one_videomind_and_keeps_its_own_memory(demo):
    """gradio gives each browser tab the session gr.State's factory makes, deep-copied: the tabs must share one
    VideoMind, or each loads its own copy of every model (+53 MiB a tab with the offline pack, a configured 7B LLM
    per tab, kept an hour after the tab closes), while each keeps the memory of its own video."""
    import gradio as gr
    from gradio.state_holder import SessionState

    state = next(b for b in demo.blocks.values() if isinstance(b, gr.State))
    tab1, tab2 = (SessionState(demo)[state._id] for _ in range(2))  # as gradio makes them for two tabs
    assert isinstance(tab1, app.Session) and tab1 is not tab2
    assert tab1.vm is tab2.vm and isinstance(tab1.vm, VideoMind)
    tab1.memory = "the memory of tab 1's video"
    assert tab2.memory is None


def test_models_the_tabs_share_are_built_once_when_two_tabs_start_at_once(monkeypatch):
    """VideoMind built its models on first use without a lock: two tabs asking at once would each load a copy."""
    from videomind.backends import registry
    from videomind.models import text_embed

    built = []

    def slow(what):
        time.sleep(0.2)  # loading takes a while, so both first callers are inside it at once
        built.append(what)
        return object()

    monkeypatch.setattr(text_embed, "SentenceTransformerEmbedder", lambda *args: slow("text embedder"))
    monkeypatch.setattr(registry, "load_backend", lambda config: slow("llm"))
    vm = VideoMind(Config())
    got = []
    calls = [lambda: vm.embedder, lambda: vm.embedder, vm._load_backend, vm._load_backend]
    threads = [threading.Thread(target=lambda call=call: got.append(call())) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(built) == ["llm", "text embedder"] and len({id(x) for x in got}) == 2


def test_ingests_of_several_users_run_at_once(demo):
    """gradio ran one ingest at a time for all users: a 5 s clip waited behind a 5-minute video. (Two ingests of
    one video take turns in VideoMind itself: tests/test_api.py.)"""
    fns = {f.fn.__name__: f for f in demo.fns.values() if f.fn is not None}
    assert fns["on_ingest"].concurrency_limit == app.CONCURRENT_INGESTS >= 2

def test_a_closed_tab_closes_its_memory_and_old_files_are_cleaned(demo, monkeypatch):
    """gradio drops a closed tab's state after an hour; its memory stayed open until the garbage collector came.
    Uploads (hours of video) and the keyframes shown piled up in gradio's cache for ever."""
    import gradio as gr

    state = next(b for b in demo.blocks.values() if isinstance(b, gr.State))
    assert demo.delete_cache == (3600, 86400)
    closed = []
    session = app.Session(Config())
    session.memory = SimpleNamespace(close=lambda: closed.append(True))
    state.delete_callback(session)
    assert closed == [True] and session.memory is None
    state.delete_callback(session)  # twice (or a tab that never ingested): nothing to close
    assert closed == [True]


@pytest.mark.parametrize("policy", [[], ["agent.policy=llm", "agent.max_steps=2", "agent.max_new_tokens=24"]],
                         ids=["heuristic", "offline-llm"])
def test_asks_of_several_users_run_at_once_and_answer_as_alone(tmp_path, speech_video, policy):
    """gradio ran one ask at a time for all users: one slow question (an LLM policy's tens of seconds) held up
    everyone's. Asks at once share the VideoMind's text embedder (and the LLM, generating from several threads)
    and, for tabs on one video, its store; each must answer as it does alone."""
    vm = VideoMind(Config.from_dict({"library": str(tmp_path)}, policy))
    tabs = [app.Session(vm) for _ in range(3)]
    for tab in tabs:  # the first ingests, the others reopen its store: a handle each, as tabs of one video have
        assert "Ingested" in tab.ingest(str(speech_video))
    questions = [("What is the secret password?", "apple\npineapple\nbanana"), ("What do they talk about?", ""),
                 ("What is said first?", "gardens\npasswords")]

    def final(tab, question, options):
        *_, (_, answer, rows, _) = tab.ask(question, options)
        return answer, rows

    alone = [final(tab, *q) for tab, q in zip(tabs, questions)]
    repeats = 1 if policy else 3  # an LLM's ask is long enough to overlap the others' once; the heuristic's, not
    start = threading.Barrier(len(tabs))
    got, spans, errors = {}, [], []

    def user(i):
        try:
            start.wait()
            t0 = time.perf_counter()
            got[i] = [final(tabs[i], *questions[i]) for _ in range(repeats)]
            spans.append((t0, time.perf_counter()))
        except BaseException as e:  # noqa: BLE001 - reported below, on the test's thread
            errors.append(e)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(len(tabs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert max(t0 for t0, _ in spans) < min(t1 for _, t1 in spans)  # all were asking at once
    for i in range(len(tabs)):
        assert got[i] == [alone[i]] * repeats, questions[i]


def test_asks_of_several_users_are_allowed_at_once(demo):
    fns = {f.fn.__name__: f for f in demo.fns.values() if f.fn is not None}
    assert fns["on_ask"].concurrency_limit == app.CONCURRENT_ASKS >= 2
