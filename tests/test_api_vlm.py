"""The local VLM engine through the public API: captions while ingesting, frames for inspect(), model checks.

The VLM is a tiny Qwen2.5-VL with RANDOM weights saved as a model folder (tests/tiny_qwen_vl.py): its captions
and replies are meaningless word ids. What is checked is the wiring -- that a configured local VLM is loaded from
its folder, captions each clip into the memory, and is shown every frame of an inspected span.
"""
from __future__ import annotations

import json

import pytest

from videomind import Config, VideoMind
from videomind.errors import CapabilityUnavailable

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def vlm_folder(tmp_path_factory):
    from tests.tiny_qwen_vl import save_tiny_vlm

    return save_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


def _config(tmp_path, vlm, *more):
    return Config.from_dict({"library": str(tmp_path)}, [f"models.vlm={vlm}", "ingest.asr=false", *more])


def test_ingest_captions_each_clip_with_the_local_vlm(tmp_path, vlm_folder, speech_video):
    memory = VideoMind(_config(tmp_path, vlm_folder)).ingest(speech_video)
    caps = memory.texts_between(0, float("inf"), ["caption"])
    assert caps and all(c.text.strip() for c in caps)
    assert [c.start for c in caps] == sorted(c.start for c in caps) and caps[-1].end <= 40.0 + 1e-6
    again = VideoMind(_config(tmp_path, vlm_folder, "ingest.captions=false")).ingest(speech_video)
    assert not again.texts_between(0, float("inf"), ["caption"])  # its own store: no VLM asked


def test_inspect_streams_the_span_to_the_local_vlm(tmp_path, vlm_folder, speech_video, monkeypatch):
    from tests.agents.test_loop import ScriptedBackend, act
    import videomind.backends.hf_vlm as hf_vlm

    shown, encode = [], hf_vlm.TransformersVLM.encode_frames

    def counting(self, frames):
        frames = list(frames)
        shown.append(len(frames))
        return encode(self, frames)

    monkeypatch.setattr(hf_vlm.TransformersVLM, "encode_frames", counting)
    cfg = _config(tmp_path, vlm_folder, "ingest.captions=false")
    planner = ScriptedBackend([act("inspect", t0=0, t1=30, question="What is on screen?"),
                               act("answer", text="blue", evidence=[])])
    vm = VideoMind(cfg, backend=planner)
    ans = vm.ask(vm.ingest(speech_video), "What is on screen?")
    assert [s.tool for s in ans.steps] == ["inspect", "answer"]
    assert shown == [30]  # every frame of [0, 30) at 1 fps, not the first eight
    assert "(caption)" in ans.steps[0].observation


def test_a_vlm_folder_of_another_model_is_refused_before_any_store(tmp_path, speech_video):
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "llm" / "model.safetensors").write_bytes(b"")  # weights, of a model the engine does not run
    lib = tmp_path / "lib"
    with pytest.raises(CapabilityUnavailable, match="'llama' model"):
        VideoMind(_config(lib, tmp_path / "llm")).ingest(speech_video)
    assert not any(lib.glob("*/manifest.json"))


def test_the_heuristic_policy_loads_no_vlm(tmp_path, vlm_folder, speech_video, monkeypatch):
    """The default policy never inspects frames, so asking with a VLM configured must not load one."""
    import videomind.backends.hf_vlm as hf_vlm

    cfg = _config(tmp_path, vlm_folder, "ingest.captions=false", "agent.policy=heuristic")
    vm = VideoMind(cfg)
    memory = vm.ingest(speech_video)
    monkeypatch.setattr(hf_vlm.TransformersVLM, "from_config", classmethod(lambda *a: pytest.fail("VLM loaded")))
    assert vm.ask(memory, "What is the secret password?").steps


def test_agent_backend_vlm_plans_and_looks_with_one_model(tmp_path, vlm_folder, speech_video):
    """agent.backend=vlm: the local VLM is the planner, the captioner and the inspector, loaded once. Its
    replies are random word ids, so the loop has to survive them (re-ask, safe fallbacks, a forced answer)."""
    from videomind.models.registry import describe

    cfg = _config(tmp_path, vlm_folder, "agent.backend=vlm", "agent.max_steps=2", "agent.max_new_tokens=8")
    vm = VideoMind(cfg)
    memory = vm.ingest(speech_video)
    assert memory.texts_between(0, float("inf"), ["caption"])  # captioned by the same model
    ans = vm.ask(memory, "What is the secret password?")
    assert ans.steps and ans.policy.startswith("llm:")
    assert vm._load_backend() is vm._vlm_backend() and vm._vlm is None  # one model, not a second copy
    rows = {r.capability: r for r in describe(cfg.models, cfg.agent)}
    assert rows["llm"].available and "agent.backend=vlm" in rows["llm"].detail and rows["llm"].name == vlm_folder


def test_a_folder_whose_template_lives_with_the_processor_loads(tmp_path, vlm_folder):
    """The Qwen2.5-VL releases keep the chat template in the processor's chat_template.json, which the
    tokenizer does not read."""
    import shutil

    from videomind.backends.hf_vlm import TransformersVLM

    folder = tmp_path / "vlm"
    shutil.copytree(vlm_folder, folder)
    template = (folder / "chat_template.jinja").read_text()
    (folder / "chat_template.jinja").unlink()
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    vlm = TransformersVLM.from_config(Config.from_dict({}, [f"models.vlm={folder}"]))
    assert vlm.tokenizer.chat_template == template
    (folder / "chat_template.json").unlink()
    with pytest.raises(CapabilityUnavailable, match="no chat template"):
        TransformersVLM.from_config(Config.from_dict({}, [f"models.vlm={folder}"]))


def test_a_cuda_device_without_a_gpu_is_a_config_error(vlm_folder):
    import torch

    from videomind.backends.hf_vlm import TransformersVLM
    from videomind.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        TransformersVLM.from_config(Config.from_dict({}, [f"models.vlm={vlm_folder}", "models.device=cuda"]))
