"""The tools' time gate and argument checks over a real memory store."""

import pytest

from videomind.agents.tools import Toolbox
from videomind.config import Config
from videomind.types import Chunk, Shot, TimedText, VideoInfo


def test_inspect_is_cut_at_the_time_gate(memory):
    obs = Toolbox(memory, until=100.0).inspect(60, 200, "what is said?")
    assert obs.text.startswith("[1:00-1:40]") and "pineapple" in obs.text
    assert obs.evidence and all(e.end <= 100.0 for e in obs.evidence)
    assert not any(w in obs.text.lower() for w in ("gate 42", "mountains", "balloon", "platform"))


def test_inspect_after_the_time_gate_is_refused_not_inverted(memory):
    with pytest.raises(ValueError, match="span starts after the answer-as-of time"):
        Toolbox(memory, until=100.0).inspect(200, 230, "q")


@pytest.mark.parametrize("t0, t1", [(0, float("inf")), (float("nan"), 10), (-float("inf"), 10)])
def test_inspect_rejects_non_finite_times(memory, t0, t1):
    with pytest.raises(ValueError, match="finite"):
        Toolbox(memory).inspect(t0, t1, "q")


class _RecordingVLM:
    """A VLM stand-in that records the frames it was shown (``streams_frames`` as configured)."""

    name, weak, supports_images, context_window = "recording", False, True, 8192

    def __init__(self, streams: bool):
        self.streams_frames, self.calls = streams, []

    def chat(self, messages, *, max_new_tokens=256, temperature=0.0, images=None, **kw):
        from videomind.backends.base import Completion

        self.calls.append((messages[-1]["content"], [int(img[0, 0, 0]) for img in images], kw))
        return Completion(" a red square ")


def _frames(t0, t1, fps):
    """``fps`` frames a second over [t0, t1); each frame's first pixel holds its second (mod 256)."""
    import numpy as np

    n = int((t1 - t0) * fps)
    return ((t0 + i / fps, np.full((4, 4, 3), int(t0 + i / fps) % 256, np.uint8)) for i in range(n))


def test_inspect_spreads_frames_across_a_long_span_for_a_plain_vlm(memory):
    vlm = _RecordingVLM(streams=False)
    obs = Toolbox(memory, vlm=vlm, frames=_frames).inspect(0, 160, "what is on screen?")
    prompt, seconds, kw = vlm.calls[0]
    assert seconds == [0, 20, 40, 60, 80, 100, 120, 140]  # not the first eight seconds
    assert "0:00 to 2:40 (at 0:00, 0:20, 0:40, 1:00, 1:20, 1:40, 2:00, 2:20)" in prompt and not kw
    assert prompt.endswith("what is on screen?")
    assert obs.evidence[0].source == "caption" and obs.evidence[0].text == "a red square"


def test_inspect_streams_every_frame_to_a_streaming_vlm(memory):
    vlm = _RecordingVLM(streams=True)
    Toolbox(memory, vlm=vlm, frames=_frames).inspect(10, 70, "q")
    assert vlm.calls[0][1] == list(range(10, 70)) and vlm.calls[0][2] == {"fps": 1.0}


def test_inspect_of_a_span_without_frames_asks_no_vlm(memory):
    for streams in (False, True):
        vlm = _RecordingVLM(streams)
        obs = Toolbox(memory, vlm=vlm, frames=lambda t0, t1, fps: iter(())).inspect(60, 80, "q")
        assert not vlm.calls and all(e.source != "caption" for e in obs.evidence)


def test_an_hours_long_span_is_sampled_to_the_vlms_frame_cap(memory):
    """A streaming VLM reading at most 600 frames sees all of a 2-hour span at 1 frame per 12 s."""
    import dataclasses

    class TwoHours:  # the session's memory, as if its video were two hours long
        info = dataclasses.replace(memory.info, duration=7200.0)

        def __getattr__(self, name):
            return getattr(memory, name)

    vlm = _RecordingVLM(streams=True)
    vlm.max_frames = 600
    Toolbox(TwoHours(), vlm=vlm, frames=_frames).inspect(0, 7200, "q")
    _, seconds, kw = vlm.calls[0]
    assert kw == {"fps": 600 / 7200} and len(seconds) == 600


def test_inspect_past_the_end_stops_at_the_end(memory):
    """The fixture's video is 4 minutes long: a span to 10:00 is read (and captioned) as 3:00-4:00, at the rate
    of that minute, and a span starting after the end is refused."""
    vlm = _RecordingVLM(streams=True)
    obs = Toolbox(memory, vlm=vlm, frames=_frames).inspect(180, 600, "q")
    assert obs.text.startswith("[3:00-4:00]") and obs.evidence[0].end == 240.0
    assert vlm.calls[0][1] == list(range(180, 240)) and vlm.calls[0][2] == {"fps": 1.0}
    with pytest.raises(ValueError, match="after the video ends"):
        Toolbox(memory).inspect(300, 400, "q")


def test_spread_with_sparse_frames_takes_each_once():
    from videomind.agents.tools import spread

    frames = [(0.0, "a"), (30.0, "b"), (31.0, "c"), (36.0, "d")]  # marks every 5 s: 0, 5, ..., 35
    assert spread(iter(frames), 0.0, 40.0, 8) == [(0.0, "a"), (30.0, "b"), (36.0, "d")]
    assert spread(iter(frames), 5.0, 5.0, 8) == [(30.0, "b")]


def test_the_schema_says_whether_inspect_can_see_frames(memory):
    assert "no VLM is configured" in Toolbox(memory).schema()
    seeing = Toolbox(memory, vlm=_RecordingVLM(streams=True), frames=_frames).schema()
    assert "a VLM is configured" in seeing and "no VLM" not in seeing


def test_search_time_arguments_are_read_or_refused_not_silently_empty(memory):
    """A model writes "90" for 90 s, and sometimes t1 before t0 or NaN: the first is read, the others are its
    mistakes to be told about, never "no results" (memory itself raised numpy's type error on strings)."""
    tb = Toolbox(memory)
    assert "pineapple" in tb.search_episodic("password", t0="60", t1="90").text
    assert "pineapple" in Toolbox(memory, until=100.0).search_episodic("password", t1="120").text
    for t0, t1, msg in [(120, 60, "must not be before"), (float("nan"), None, "finite"), ("soon", None, "number")]:
        with pytest.raises(ValueError, match=msg):
            tb.search_episodic("password", t0=t0, t1=t1)
    for query in (None, "  ", ["password"]):
        with pytest.raises(ValueError, match="query"):
            tb.search_episodic(query)


def test_semantic_search_under_a_gate_still_returns_k_visible_rows(memory):
    """The top k entities of the whole video are mostly after an early gate: the visible ones must not be cut
    to the few that happened to rank in that top k."""
    visible = [h for h in memory.search_semantic("password", k=100) if h.end <= 100.0]
    got = Toolbox(memory, until=100.0, k=3).search_semantic("password").evidence
    assert len(visible) >= 3 and [e.id for e in got] == [h.id for h in visible[:3]]


def test_visual_search_passes_the_gate_to_memory():
    """No CLIP encoder runs here, so a stand-in memory records what the tool asked it."""
    from videomind.memory.search import Hit

    class Frames:
        def search_visual(self, query, k=5, t0=None, t1=None):
            self.asked = (query, k, t1)
            return [Hit(f"frame:{i}", 1.0, "frame", "visual", t, t, "frame") for i, t in enumerate((10.0, 200.0))]

    mem = Frames()
    ev = Toolbox(mem, until=100.0, k=2).search_visual("a red balloon").evidence
    assert mem.asked[2] == 100.0 and [e.id for e in ev] == ["frame:0"]


def test_inspect_gives_each_line_of_a_slide_its_own_id(embedder, tmp_path):
    """The lines OCR reads from one slide share source and start; their ids must differ, or the agent's
    evidence pool keeps only the last line and a cited id is ambiguous."""
    from videomind.config import Config
    from videomind.memory.store import VideoMemory
    from videomind.types import Chunk, TimedText, VideoInfo

    mem = VideoMemory.create(tmp_path / "slides", VideoInfo("s.mp4", 60.0, 32, 32, 25.0, False, content_hash="s"),
                             Config(), embedder)
    lines = ["Quarterly results", "Revenue up 12%", "Costs flat"]
    mem.add_chunk(Chunk(0, 0.0, 60.0, [TimedText(10.0, 20.0, t, "ocr", 0.9) for t in lines]))
    mem.finalize()
    first = Toolbox(mem).inspect(0, 60, "q").evidence
    assert sorted(e.text for e in first) == sorted(lines) and len({e.id for e in first}) == 3
    assert [e.id for e in Toolbox(mem).inspect(5, 30, "q").evidence] == [e.id for e in first]  # stable ids


def test_inspect_before_the_start_is_from_the_start(memory):
    """A negative t0 must not become evidence timestamped before the video (nor frames asked for there)."""
    vlm = _RecordingVLM(streams=False)
    obs = Toolbox(memory, vlm=vlm, frames=_frames).inspect(-50, 10, "q")
    assert obs.evidence[0].source == "caption" and obs.evidence[0].start == 0.0
    assert "from 0:00 to 0:10" in vlm.calls[0][0] and min(vlm.calls[0][1]) >= 0


def test_an_entity_named_before_and_after_the_gate_is_found_as_of_before(tmp_path, embedder):
    """Asked as of 3:00, an entity named at 0:20 and again at 9:00 is found with its early mention only (the
    gate hid it: its whole-video row ended at 9:03, after the gate)."""
    from videomind.memory.store import VideoMemory

    info = VideoInfo("talk.mp4", 600.0, 320, 180, 25.0, True, content_hash="talk")
    mem = VideoMemory.create(tmp_path / "talk", info, Config(), embedder)
    mem.add_chunk(Chunk(0, 0.0, 600.0, [TimedText(20, 23, "Ada Lovelace wrote the first program.", "speech"),
                                         TimedText(540, 543, "Ada Lovelace is remembered today.", "speech")]))
    mem.finalize()
    ev = Toolbox(mem, until=180.0).search_semantic("Ada Lovelace").evidence
    ada = [e for e in ev if e.text.startswith("Ada Lovelace")]
    assert ada and (ada[0].start, ada[0].end) == (20, 23) and "remembered" not in ada[0].text
    windowed = Toolbox(mem).search_semantic("Ada Lovelace", t0="500").evidence
    assert [(e.start, e.end) for e in windowed if e.text.startswith("Ada")] == [(540, 543)]
    with pytest.raises(ValueError, match="must not be before"):
        Toolbox(mem).search_semantic("Ada", t0=100, t1=50)
    mem.close()


def test_a_clip_straddling_the_gate_keeps_the_sentences_said_before_it(tmp_path, embedder):
    """As of 1:40, a sentence said 1:31-1:35 is visible although its clip holds one that ends at 1:40.5 (the
    clip row ends then, and the whole row was hidden); the sentence still being said is not."""
    from videomind.memory.store import VideoMemory

    info = VideoInfo("meeting.mp4", 180.0, 320, 180, 25.0, True, content_hash="meeting")
    mem = VideoMemory.create(tmp_path / "meeting", info, Config(), embedder)
    said = [(5.0, "Welcome to the weekly meeting."), (41.0, "We reviewed the quarterly numbers."),
            (91.0, "The new office will open in Lisbon."), (96.5, "Next item on the agenda is hiring.")]
    mem.add_chunk(Chunk(0, 0.0, 180.0, [TimedText(t, t + 4.0, s, "speech") for t, s in said]))
    mem.finalize()
    row = next(h for h in mem.search("new office open", k=5) if "Lisbon" in h.text)
    assert row.end == 100.5 and "hiring" in row.text  # the clip row really straddles the gate
    ev = Toolbox(mem, until=100.0).search_episodic("new office open").evidence
    lisbon = [e for e in ev if "Lisbon" in e.text]
    assert lisbon and lisbon[0].id == row.id and (lisbon[0].start, lisbon[0].end) == (91.0, 95.0)
    assert all(e.end <= 100.0 and "hiring" not in e.text for e in ev)
    mem.close()


def test_text_on_screen_before_the_gate_is_visible_as_of_it(talk):
    """As of 0:12, the sign on screen since 0:00 (its row spans 0:00-0:13, the whole time it is shown) has been
    seen: it was hidden, its row ending after the gate. It is found and inspected, cut to end at the gate."""
    gated = Toolbox(talk, until=12.0)
    for scale in ("clip", None):
        signs = [e for e in gated.search_episodic("What text is shown on screen?", scale=scale).evidence
                 if e.source == "ocr"]
        assert [(e.text, e.start, e.end) for e in signs] == [("ASK NOT", 0.0, 12.0)], scale
    shown = [e for e in gated.inspect(0, 30, "what is shown?").evidence if e.source == "ocr"]
    assert [(e.text, e.start, e.end) for e in shown] == [("ASK NOT", 0.0, 12.0)]
    assert not [e for e in Toolbox(talk, until=0.0).inspect(0, 5, "q").evidence if e.source == "ocr"]


def test_a_sentence_still_being_said_at_the_gate_keeps_its_words_said_before_it(talk):
    """As of 0:04 the first sentence has been said up to 'ask not' (word times): that much is visible, marked
    unfinished and ending with its last word; its rest ('what your country ...') and the next sentence are not."""
    gated = Toolbox(talk, until=4.0)
    for ev in (gated.search_episodic("What is said?", scale="clip").evidence,
               gated.inspect(0, 4, "what is said?").evidence):
        said = [e for e in ev if e.source == "speech"]
        assert [(e.text, e.start, e.end) for e in said] == [("And so my fellow Americans ask not…", 0.0, 3.8)]
    assert not [e for e in Toolbox(talk, until=0.5).inspect(0, 0.5, "q").evidence if e.source == "speech"]


def test_a_clip_cut_at_the_gate_keeps_its_own_texts_only(tmp_path, embedder):
    """Two signs overlap the gate (0:15): 'EXIT' (0:02-0:16) in the first clip, 'ROOM 7' (0:09-0:30) in the next
    (each text joins the clip its middle falls in). Cut at the gate, each clip row keeps its own sign: the first
    also took 'ROOM 7', which starts in its span."""
    from videomind.memory.store import VideoMemory

    info = VideoInfo("signs.mp4", 40.0, 320, 180, 25.0, False, content_hash="signs")
    mem = VideoMemory.create(tmp_path / "signs", info, Config(), embedder)
    mem.add_chunk(Chunk(0, 0.0, 40.0, [TimedText(2.0, 16.0, "EXIT", "ocr", 0.9),
                                       TimedText(9.0, 30.0, "ROOM 7", "ocr", 0.9)]))
    mem.finalize()
    rows = sorted((h.start, h.end, h.text) for h in mem.search("EXIT ROOM 7", k=5, scale="clip"))
    assert rows == [(2.0, 16.0, "EXIT"), (9.0, 30.0, "ROOM 7")]  # the clip rows really straddle the gate
    ev = Toolbox(mem, until=15.0).search_episodic("EXIT ROOM 7", scale="clip").evidence
    assert sorted((e.start, e.end, e.text) for e in ev) == [(2.0, 15.0, "EXIT"), (9.0, 15.0, "ROOM 7")]
    mem.close()


def test_open_rows_straddling_the_gate_are_cut_as_clip_rows_are(tmp_path, embedder):
    """talk.mp4 being ingested: its texts are in no clip yet, so search finds them as open rows ('open:...'),
    which straddling the gate were hidden while clip rows were cut. As of 0:04 the sentence said up to 'ask not'
    (word times, read back from the store) and, as of 0:12, the sign on screen since 0:00 are found, cut at the
    gate; a sentence without word times is still hidden, as in a clip row."""
    from tests.agents.conftest import TALK_SIGN, TALK_SPEECH, _words
    from videomind.memory.store import VideoMemory

    info = VideoInfo("talk.mp4", 12.96, 320, 240, 25.0, True, content_hash="talk")
    mem = VideoMemory.create(tmp_path / "talk", info, Config(), embedder)
    (a, b, said), (c, d, untimed) = TALK_SPEECH
    texts = [TimedText(a, b, said, "speech", 0.75, {"words": _words(a, b, said)}),
             TimedText(c, d, untimed, "speech", 0.75), TimedText(*TALK_SIGN, "ocr", 0.99)]
    mem.add_chunk(Chunk(0, 0.0, 12.96, texts, [], [Shot(0, 0.0, 12.96)]))  # not finalized: no clip closed
    assert not mem.is_complete
    assert {h.id.split("@")[0] for h in mem.search("what is said and shown?", k=5, scale="clip")} == \
        {"open:speech", "open:ocr"}
    speech = [e for e in Toolbox(mem, until=4.0).search_episodic("What is said?", scale="clip").evidence
              if e.source == "speech"]
    assert [(e.text, e.start, e.end) for e in speech] == [("And so my fellow Americans ask not…", 0.0, 3.8)]
    assert speech[0].id.startswith("open:")
    signs = [e for e in Toolbox(mem, until=12.0).search_episodic("What text is shown on screen?",
                                                                  scale="clip").evidence if e.source == "ocr"]
    assert [(e.text, e.start, e.end) for e in signs] == [("ASK NOT", 0.0, 12.0)]
    speech = [e for e in Toolbox(mem, until=10.0).search_episodic("What is said?", scale="clip").evidence
              if e.source == "speech"]
    assert [(e.text, e.start, e.end) for e in speech] == [(said, a, b)]  # the untimed sentence (8.3-10.5) hidden
    mem.close()
