"""The command line as a user meets it: argument errors are caught before any work, errors are one line, stdout
holds only results. Most tests call ``main()`` in process with ``VideoMind.ingest`` stubbed, so nothing is ingested."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from videomind import RebuildInterrupted, cli
from videomind.ingest.progress import ProgressEvent
from videomind.progress import ProgressBars

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_ingest(monkeypatch):
    """Fail the test if the CLI starts ingesting (argument errors must be reported before hours of work)."""
    from videomind.api import VideoMind

    def ingest(*args, **kwargs):
        raise AssertionError("ingest() was called")

    monkeypatch.setattr(VideoMind, "ingest", ingest)
    monkeypatch.setattr(VideoMind, "follow", ingest)


@pytest.fixture
def video(tmp_path) -> str:
    p = tmp_path / "talk.mp4"
    p.write_bytes(b"\0" * 16)  # never decoded: ingest is stubbed in the tests that use it
    return str(p)


def run_main(argv, capsys) -> tuple[int, str, str]:
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_global_options_before_the_subcommand(capsys):
    rc, out, err = run_main(["-v", "models"], capsys)
    assert rc == 0 and "asr" in out
    rc, out, err = run_main(["--set", "ingest.fps=0", "models"], capsys)
    assert rc == 2 and "ingest.fps" in err and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["  "], "question is empty"),
    (["q", "-o", "only"], "at least two"),
    (["q", "-o", "a", "-o", "A"], "the same"),
    (["q", "--until", "-5"], "--until"),
    (["q", "--until", "nan"], "--until"),
])
def test_ask_rejects_bad_arguments_before_ingesting(args, message, video, no_ingest, capsys):
    rc, out, err = run_main(["ask", video, *args], capsys)
    assert rc == 2 and message in err and out == ""


@pytest.mark.parametrize("args, message", [
    (["--follow", "--rebuild"], "--rebuild"),
    (["--idle-timeout", "3"], "--follow"),
    (["--follow", "--idle-timeout", "-1"], "--idle-timeout"),
    (["--follow", "--idle-timeout", "inf"], "--idle-timeout"),
])
def test_ingest_flag_conflicts_are_usage_errors(args, message, video, no_ingest, capsys):
    rc, out, err = run_main(["ingest", video, *args], capsys)
    assert rc == 2 and message in err


def test_os_error_is_one_line_without_traceback(video, monkeypatch, capsys):
    from videomind.api import VideoMind

    def ingest(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/srv/library/talk-1234")

    monkeypatch.setattr(VideoMind, "ingest", ingest)
    rc, out, err = run_main(["ingest", video], capsys)
    assert rc == 1 and "Permission denied" in err and "/srv/library/talk-1234" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_library_that_is_a_file_names_the_key(video, tmp_path, no_ingest, capsys):
    (tmp_path / "lib").write_text("not a directory")
    rc, out, err = run_main(["ingest", video, "--set", f"library={tmp_path / 'lib'}"], capsys)
    assert rc == 2 and "'library'" in err


def test_interrupt_exits_130_with_one_line(video, monkeypatch, capsys):
    from videomind.api import VideoMind

    def ingest(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(VideoMind, "ingest", ingest)
    rc, out, err = run_main(["ingest", video], capsys)
    assert rc == 130 and "resume" in err and len(err.strip().splitlines()) == 1


def test_closed_stdout_is_not_a_traceback():
    # `videomind models | head -1`: the reader is gone before the output is written
    p = subprocess.Popen([sys.executable, "-m", "videomind", "models"], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    rc = p.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert rc in (0, 141)


def test_progress_to_a_file_is_plain_lines():
    f = io.StringIO()
    with ProgressBars(file=f) as bars:
        bars(ProgressEvent("probe", 1, 1, "426x240 60.0s with audio"))
        for t in (20, 40, 60):
            bars(ProgressEvent("decode", t, 60))
        bars(ProgressEvent("chunk", 1, 1, "0-60s: 8 texts, 19 keyframes, 5 shots"))
    text = f.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert text.splitlines() == ["probe 1/1: 426x240 60.0s with audio",
                                 "chunk 1/1: 0-60s: 8 texts, 19 keyframes, 5 shots"]


def test_model_libraries_show_no_bars_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)  # restored after the test
    assert run_main(["models"], capsys)[0] == 0
    assert os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") == "1"


def test_eval_runs_outside_the_checkout(tmp_path):
    r = subprocess.run([sys.executable, "-m", "videomind", "eval", "--help"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "run" in r.stdout, r.stderr


def test_version_and_help_texts(capsys):
    rc, out, err = run_main(["--version"], capsys)
    assert rc == 0 and out.startswith("videomind ")
    rc, out, err = run_main(["ask", "--help"], capsys)
    assert rc == 0 and "-o OPTION, --option OPTION" in out


def test_verbose_is_our_debug_not_every_librarys(tmp_path):
    """-v shows VideoMind's debug messages; third-party libraries (faiss's loader, the VAD) stay at INFO."""
    code = ("import logging, sys; from videomind import cli; cli.main(['-v', 'models']); "
            "print(logging.getLogger('videomind.api').getEffectiveLevel(), "
            "logging.getLogger('faiss.loader').getEffectiveLevel(), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "VIDEOMIND_HOME": str(tmp_path)})
    assert r.stderr.strip().splitlines()[-1] == f"{logging.DEBUG} {logging.INFO}", r.stderr


def test_ingest_of_a_truncated_file_says_what_the_memory_lacks(tmp_path, capsys, caplog):
    """A faststart MP4 cut at 60% decodes to 12 of its stated 20 s: the memory is complete but short, and ingest
    said only 'status: complete' (the chunk's note was stored and never shown)."""
    from tests.ingest.conftest import ffmpeg

    full, cut = tmp_path / "full.mp4", tmp_path / "download.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=20", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-movflags", "+faststart", str(full))
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with caplog.at_level(logging.WARNING, logger="videomind.api"):
        rc, out, _ = run_main(["ingest", str(cut), "--set", f"library={tmp_path / 'lib'}"], capsys)
    assert rc == 0 and "status: complete" in out
    notes = [line.strip() for line in out.splitlines() if line.strip().startswith("note:")]
    assert len(notes) == 2 and notes[0] == "note: audio missing: speech memory empty", out  # no audio track
    assert re.fullmatch(r"note: video frames end at 1\d\.\d s before the stated duration 20\.0 s \(truncated "
                        r"file\?\)", notes[1]), out
    assert any("truncated file?" in r.getMessage() and "download.mp4" in r.getMessage() for r in caplog.records)


def test_memories_lists_and_deletes_stores(tmp_path, capsys):
    from tests.memory.conftest import HashEmbedder, info_for, make_stream
    from videomind.config import Config
    from videomind.memory.library import Library

    lib = tmp_path / "lib"
    config = Config.from_dict({"library": str(lib)})
    mem = Library(lib).open_or_create(info_for(), config, HashEmbedder())
    mem.add_chunk(make_stream(duration=120)[0][0])
    key = mem.key
    mem.close()
    rc, out, _ = run_main(["memories", "--set", f"library={lib}"], capsys)
    assert rc == 0 and key in out and "incomplete (resumable)" in out
    # a store another process is writing is not deleted from under it
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from videomind.memory.lock import WriterLock; "
        f"assert WriterLock({str(lib / key)!r}).acquire() is None; print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, _, err = run_main(["memories", "--delete", key, "--set", f"library={lib}"], capsys)
        assert rc == 2 and "being ingested by another process" in err and (lib / key).is_dir()
    finally:
        holder.kill()
        holder.wait()
    rc, out, _ = run_main(["memories", "--delete", key, "--set", f"library={lib}"], capsys)
    assert rc == 0 and f"deleted {key}" in out and not (lib / key).exists()
    rc, _, err = run_main(["memories", "--delete", key, "--set", f"library={lib}"], capsys)
    assert rc == 2 and "no memory" in err
    rc, out, _ = run_main(["memories", "--set", f"library={lib}"], capsys)
    assert rc == 0 and "no memories in" in out


def test_an_unfinished_rebuild_is_listed_and_deleted_on_its_own(tmp_path, capsys):
    """A rebuild left by a killed `ingest --rebuild` was listed under the memory's own key, and `--delete KEY`
    deleted both without saying so."""
    from tests.memory.conftest import HashEmbedder, info_for, make_stream
    from videomind.config import Config
    from videomind.memory.library import Library

    lib = tmp_path / "lib"
    config = Config.from_dict({"library": str(lib)})
    chunks = make_stream(duration=120)[0]
    mem = Library(lib).open_or_create(info_for(), config, HashEmbedder())
    for c in chunks:
        mem.add_chunk(c)
    mem.finalize()
    key = mem.key
    mem.close()

    def left_rebuild():
        rebuild = Library(lib).open_or_create(info_for(), config, HashEmbedder(), rebuild=True)
        rebuild.add_chunk(chunks[0])
        rebuild.close()  # killed: nothing deleted it

    left_rebuild()
    rc, out, _ = run_main(["memories", "--set", f"library={lib}"], capsys)
    assert rc == 0 and [line.split()[0] for line in out.splitlines() if not line.startswith(" ")] == [
        f"{key}.rebuild", key], out
    assert "unfinished rebuild" in out and f"`videomind memories --delete {key}.rebuild` deletes only it" in out
    rc, out, _ = run_main(["memories", "--delete", f"{key}.rebuild", "--set", f"library={lib}"], capsys)
    assert rc == 0 and f"deleted {key}.rebuild: the rebuild of {key}" in out and f"the memory {key} is kept" in out
    assert (lib / key).is_dir() and not (lib / f".{key}.rebuild").exists()
    left_rebuild()
    rc, out, _ = run_main(["memories", "--delete", key, "--set", f"library={lib}"], capsys)
    assert rc == 0 and out.strip() == f"deleted {key}: the memory and its rebuild" and not list(lib.iterdir())


@pytest.mark.parametrize("raised, said", [
    (RebuildInterrupted("the rebuild had finished: the memory K is the rebuilt one"),
     "interrupted: the rebuild had finished: the memory K is the rebuilt one"),
    (KeyboardInterrupt(), "interrupted: the rebuild had not started storing; the memory stored before it (if any) is "
                          "unchanged")])
def test_an_interrupted_rebuild_says_what_it_kept(video, monkeypatch, capsys, raised, said):
    """What an interrupted rebuild left depends on how far it had got, which the API says (RebuildInterrupted);
    a Ctrl-C before it (probing, loading models) finds nothing stored yet."""
    from videomind.api import VideoMind

    def ingest(*args, **kwargs):
        raise raised

    monkeypatch.setattr(VideoMind, "ingest", ingest)
    rc, _, err = run_main(["ingest", video, "--rebuild"], capsys)
    assert rc == 130 and err.strip() == said
