"""The Gradio app's handlers over the real API (no browser), its upload checks and capability banner."""

from __future__ import annotations

import pytest

import app
from videomind import Config, VideoMindError


def test_banner_names_unavailable_capabilities():
    md = app.capability_banner(Config())
    assert "| asr |" in md and "**unavailable**" in md and "models.vlm" in md


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
    assert "Ingested" in s.ingest(str(speech_video), progress=lambda f, desc="": seen.append(f))
    assert seen and 0 <= min(seen) and max(seen) <= 1.0
    updates = list(s.ask("What is the secret password?", "apple\npineapple\nbanana"))
    assert len(updates) > 1 and updates[0][1] == "_thinking..._"
    trace, answer, rows, thumbs = updates[-1]
    assert "(B) pineapple" in answer and "heuristic" in answer
    assert rows and rows[0][1] == "speech" and "pineapple" in rows[0][3].lower()
    *_, (trace, answer, rows, thumbs) = s.ask("What is the secret password?", "apple\npineapple\nbanana", 0.0)
    assert rows == [] and thumbs == []          # as of 0 s nothing is known yet (0 is a time, not "unset")


def test_blocks_wire_the_handlers_to_the_widgets():
    """The page has the banner, the inputs and outputs each handler needs, and handler errors reach the user as
    gr.Error (building alone proves nothing)."""
    import gradio as gr

    demo = app.build_app(Config())
    markdown = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert any("| vlm |" in (m or "") and "**unavailable**" in m for m in markdown)
    fns = {f.fn.__name__: f for f in demo.fns.values() if f.fn is not None}
    kinds = {name: ([type(x).__name__ for x in f.inputs], [type(x).__name__ for x in f.outputs])
             for name, f in fns.items()}
    assert kinds["on_ingest"] == (["State", "Video"], ["Markdown"])
    assert kinds["on_ask"] == (["State", "Textbox", "Textbox", "Number"], ["Markdown", "Markdown", "Dataframe",
                                                                            "Gallery"])
    with pytest.raises(gr.Error, match="ingest a video first"):
        list(fns["on_ask"].fn(app.Session(Config()), "what?", "", None))
    with pytest.raises(gr.Error, match="no video uploaded"):
        fns["on_ingest"].fn(app.Session(Config()), None, progress=None)
