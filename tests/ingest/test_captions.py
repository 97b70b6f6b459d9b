"""Clip captions: keyframes fall at scene changes, so the VLM must be told when they were taken."""

import numpy as np
import pytest

from videomind.agents.memory_writers import make_captioner
from videomind.ingest.captions import Frames, caption_chunk
from videomind.types import Chunk, Keyframe, TimedText

TIMES = (10.4, 13.1, 13.9, 18.2, 19.0, 25.0)  # scene changes; the first five in the window 10-20 s


def _chunk():
    rng = np.random.default_rng(0)
    kfs = [Keyframe(t, i, rng.integers(0, 256, (84, 112, 3), dtype=np.uint8)) for i, t in enumerate(TIMES)]
    return Chunk(1, 10.0, 30.0, [TimedText(12.0, 14.0, "look at the bridge", "speech")], kfs[::-1])


class RecordingVLM:
    """The local engine's chat signature; records what each call got."""

    def __init__(self):
        self.calls = []

    def chat(self, messages, *, max_new_tokens=256, temperature=0.0, images=None, fps=1.0):
        from videomind.backends.base import Completion

        self.calls.append({"messages": messages, "images": list(images), "fps": fps})
        return Completion("a stone bridge over a river", 1, 1, 0.0)


def test_frames_carry_their_times_and_mean_rate():
    f = Frames(["a", "b", "c"], [1.0, 2.0, 5.0])
    assert f == ["a", "b", "c"] and f.times == [1.0, 2.0, 5.0] and f.fps == 0.5
    assert Frames(["a"], [3.0]).fps is None and Frames(["a", "b"], [3.0, 3.0]).fps is None
    with pytest.raises(ValueError):
        Frames(["a"], [])


def test_caption_chunk_passes_keyframe_times_in_order():
    seen = []

    def cap(images, transcript):
        seen.append((images.times, len(images), transcript))
        return "x"

    caption_chunk(_chunk(), cap, clip_seconds=10.0, max_images=4)
    # five keyframes in 10-20 s, spread to four; the keyframe list was given out of order
    assert seen == [([10.4, 13.1, 18.2, 19.0], 4, "look at the bridge"), ([25.0], 1, "")]


def test_local_vlm_gets_the_keyframes_real_rate():
    vlm = RecordingVLM()
    out = caption_chunk(_chunk(), make_captioner(vlm), clip_seconds=10.0)
    assert [c.text for c in out] == ["a stone bridge over a river"] * 2
    first, second = vlm.calls
    assert first["fps"] == pytest.approx(3 / (19.0 - 10.4)) and len(first["images"]) == 4
    assert second["fps"] == 1.0  # one frame: no rate to give, the default stands
    assert "look at the bridge" in first["messages"][-1]["content"]


def test_openai_compatible_backend_gets_times_in_the_prompt(monkeypatch):
    from videomind.backends.openai_compat import OpenAIChat

    sent = []
    chat = OpenAIChat("http://localhost:9/v1", "some-vlm", supports_images=True)
    monkeypatch.setattr(chat, "_post", lambda payload: sent.append(payload) or
                        {"choices": [{"message": {"content": "a bridge"}}]})
    out = caption_chunk(_chunk(), make_captioner(chat), clip_seconds=10.0)
    assert [c.text for c in out] == ["a bridge", "a bridge"]
    parts = sent[0]["messages"][-1]["content"]
    assert parts[0]["text"].startswith("The frames were taken at 0:10, 0:13, 0:18, 0:19.")
    assert len(parts) == 5  # the prompt and four images


def test_plain_image_lists_still_caption():
    vlm = RecordingVLM()
    assert make_captioner(vlm)([np.zeros((8, 8, 3), np.uint8)] * 2, "") == "a stone bridge over a river"
    assert vlm.calls[0]["fps"] == 1.0


def test_tiny_qwen_vl_places_the_keyframes_at_their_rate(monkeypatch):
    """The real engine (random weights): the captioner's call builds the prompt at the keyframes' rate, and the
    video's temporal positions are those of that rate, not of frames 1 s apart."""
    pytest.importorskip("transformers")
    from tests.tiny_qwen_vl import tiny_model, tiny_tokenizer
    from videomind.backends.hf_vlm import TransformersVLM
    from videomind.config import VLMConfig

    vlm = TransformersVLM(tiny_model(), tiny_tokenizer(), "tiny-random-qwen2.5-vl",
                          VLMConfig(frame_pixels=84 * 112, token_budget=100_000, redundancy=2.0))
    built, build = [], vlm.build_prompt
    monkeypatch.setattr(vlm, "build_prompt", lambda m, v, fps=1.0: built.append((m, v, fps)) or build(m, v, fps))
    caption_chunk(_chunk(), make_captioner(vlm, max_new_tokens=2), clip_seconds=10.0)
    messages, visual, fps = built[0]
    assert fps == pytest.approx(3 / 8.6)
    t_span = lambda p: int(p.positions[0, p.modality == 2].max() - p.positions[0, p.modality == 2].min())  # noqa
    assert t_span(build(messages, visual, fps)) > t_span(build(messages, visual, 1.0))


def test_the_pipeline_hands_the_times_to_the_captioner(tmp_path, speech_video):
    """Through the ingest pipeline's own caption wrapper (and its cache) to the VLM call."""
    from videomind.config import Config
    from videomind.ingest.pipeline import IngestPipeline

    cfg = Config.from_dict({"library": str(tmp_path)}, ["models.vlm=some-local-vlm", "ingest.asr=false"])
    vlm, times = RecordingVLM(), []
    captioner = make_captioner(vlm)
    chunks = list(IngestPipeline(cfg, captioner=lambda images, text: times.append(images.times) or
                                 captioner(images, text)).run(speech_video))
    keyframes = {k.t for c in chunks for k in c.keyframes}
    assert len(times) == len(vlm.calls) > 0 and any(len(t) > 1 for t in times)
    for t, call in zip(times, vlm.calls):
        assert set(t) <= keyframes and t == sorted(t) and len(t) == len(call["images"])
        assert call["fps"] == pytest.approx((len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 1.0)
