"""The tools' time gate and argument checks over a real memory store."""

import pytest

from videomind.agents.tools import Toolbox


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
    vlm = _RecordingVLM(streams=True)
    vlm.max_frames = 600
    Toolbox(memory, vlm=vlm, frames=_frames).inspect(0, 7200, "q")
    _, seconds, kw = vlm.calls[0]
    assert kw == {"fps": 600 / 7200} and len(seconds) == 600


def test_spread_with_sparse_frames_takes_each_once():
    from videomind.agents.tools import spread

    frames = [(0.0, "a"), (30.0, "b"), (31.0, "c"), (36.0, "d")]  # marks every 5 s: 0, 5, ..., 35
    assert spread(iter(frames), 0.0, 40.0, 8) == [(0.0, "a"), (30.0, "b"), (36.0, "d")]
    assert spread(iter(frames), 5.0, 5.0, 8) == [(30.0, "b")]


def test_the_schema_says_whether_inspect_can_see_frames(memory):
    assert "no VLM is configured" in Toolbox(memory).schema()
    seeing = Toolbox(memory, vlm=_RecordingVLM(streams=True), frames=_frames).schema()
    assert "a VLM is configured" in seeing and "no VLM" not in seeing
