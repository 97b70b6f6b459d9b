"""Open questions (no options): the answer quotes what was said or shown, not a row memory wrote about it."""

import shutil
import subprocess

import numpy as np
import pytest

from videomind.agents.heuristic import DIRECT, HeuristicPolicy
from videomind.agents.tools import Toolbox
from videomind.config import Config
from videomind.types import Answer, Chunk, Keyframe, Shot, TimedText, VideoInfo

# one ~10 s clip of three sentences (separate ASR segments), then another clip
SPEECH = [
    (60.0, 62.0, "Welcome back to the garden tour with Margaret Olsen."),
    (62.5, 65.5, "Margaret Olsen says you should water the tomatoes every morning before sunrise."),
    (66.0, 68.5, "After that we walk over to the big greenhouse."),
    (75.0, 78.0, "The greenhouse holds orchids from Peru."),
]


def _run(toolbox, question):
    items = list(HeuristicPolicy().run(toolbox, question))
    assert isinstance(items[-1], Answer)
    return items[-1]


@pytest.fixture(scope="module")
def garden(tmp_path_factory, embedder):
    from videomind.memory.store import VideoMemory

    info = VideoInfo("garden.mp4", 120.0, 320, 180, 25.0, True, content_hash="garden")
    mem = VideoMemory.create(tmp_path_factory.mktemp("mem") / "garden", info, Config(), embedder)
    rng = np.random.default_rng(0)
    for i, c0 in enumerate((0.0, 60.0)):
        texts = [TimedText(a, b, s, "speech") for a, b, s in SPEECH if c0 <= a < c0 + 60]
        emb = rng.normal(size=16).astype(np.float32)
        kfs = [Keyframe(c0 + 1, i, rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), emb / np.linalg.norm(emb))]
        mem.add_chunk(Chunk(i, c0, c0 + 60.0, texts, kfs, [Shot(i, c0, c0 + 60.0)]))
    mem.finalize()
    return mem


def test_answer_is_the_relevant_sentence_timed_where_it_was_said(garden):
    ans = _run(Toolbox(garden), "How often should Margaret Olsen's tomatoes be watered?")
    assert ans.text == SPEECH[1][2], ans.text
    used = ans.evidence[0]
    assert used.source == "speech" and used.text == ans.text
    assert (used.start, used.end) == (62.5, 65.5), used
    assert "extractive" in ans.policy


def test_entity_rows_are_cited_but_not_quoted(garden):
    # the semantic memory holds 'Margaret Olsen: mentioned 2x, ...', which ranked first for this question
    tb = Toolbox(garden)
    assert any(e.source == "entity" for e in tb.search_semantic("Who is Margaret Olsen?").evidence)
    ans = _run(tb, "Who is Margaret Olsen?")
    assert "mentioned" not in ans.text and ans.evidence[0].source in DIRECT, ans
    assert "Margaret Olsen" in ans.text


def test_time_gate_still_holds(garden):
    ans = _run(Toolbox(garden, until=70.0), "What does the greenhouse hold?")
    assert "Peru" not in ans.text and all(e.end <= 70.0 for e in ans.evidence), ans


def test_speech_over_video_answers_with_what_was_said(shared_data, tmp_path, config):
    """The reported case: JFK's line over a NASA clip; the entity row 'Americans: mentioned 1x, ...' was the
    answer."""
    from videomind.api import VideoMind

    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is missing: run `make test` or apt-get install ffmpeg")
    media = shared_data / "media"
    video = tmp_path / "jfk_over_nasa.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(media / "nasa_13013.mp4"),
                    "-i", str(media / "jfk.flac"), "-map", "0:v:0", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                    "-shortest", str(video)], check=True)
    vm = VideoMind(config)
    ans = vm.ask(vm.ingest(video), "What should you ask, according to the speaker?")
    assert "ask what you can do for your country" in ans.text.lower(), ans.text
    assert "mentioned" not in ans.text
    assert ans.evidence[0].source == "speech" and ans.evidence[0].start < 9.0 < ans.evidence[0].end
