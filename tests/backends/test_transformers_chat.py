"""TransformersChat loads any local Hugging Face chat model folder. Here: a tiny RANDOMLY INITIALISED Llama
built from a real config, with the bundled SmolLM2 tokenizer, to exercise the real loading and generation code
(its replies are noise by construction; only their plumbing is checked)."""

from __future__ import annotations

import pytest

from videomind.backends.hf_local import TransformersChat
from videomind.config import Config
from videomind.errors import CapabilityUnavailable


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from videomind.backends.registry import load_backend

    offline = load_backend(Config())  # ensures the converted SmolLM2 tokenizer exists
    tok = offline.tokenizer
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    d = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    assert AutoTokenizer.from_pretrained(d).chat_template
    return d


def test_local_folder_loads_and_generates(tiny_folder):
    cfg = Config.from_dict({}, [f"models.llm={tiny_folder}", "agent.backend=transformers"])
    chat = TransformersChat.from_config(cfg)
    assert chat.context_window == 512 and not chat.weak
    c = chat.chat([{"role": "user", "content": "hello " * 600}], max_new_tokens=5)
    assert c.completion_tokens <= 5 and c.prompt_tokens <= 512 - 5  # prompt truncated to the window
    with pytest.raises(CapabilityUnavailable, match="text model"):
        chat.chat([{"role": "user", "content": "x"}], images=[object()])


def test_a_folder_that_is_not_a_chat_model_is_a_clear_error(tmp_path):
    """A folder with a config and a weights file but no tokenizer: CapabilityUnavailable naming the model and
    the fix, not transformers' own traceback (one without weights is refused by the registry)."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    cfg = Config.from_dict({}, [f"models.llm={tmp_path}", "agent.backend=transformers"])
    with pytest.raises(CapabilityUnavailable, match="(?s)cannot load the llm .* Point models.llm at"):
        TransformersChat.from_config(cfg)


def test_a_generation_budget_as_long_as_the_window_is_refused_by_name(tiny_folder):
    """max_new_tokens >= the context window left no room for the prompt; the slice -(512 - 600) then kept all
    but the first 88 tokens, i.e. no truncation at all."""
    from videomind.errors import ConfigError

    chat = TransformersChat.from_config(Config.from_dict({}, [f"models.llm={tiny_folder}",
                                                              "agent.backend=transformers"]))
    for n in (512, 600):
        with pytest.raises(ConfigError, match="agent.max_new_tokens.*512"):
            chat.chat([{"role": "user", "content": "hello " * 600}], max_new_tokens=n)


def test_greedy_replies_are_deterministic(tiny_folder):
    chat = TransformersChat.from_config(Config.from_dict({}, [f"models.llm={tiny_folder}",
                                                              "agent.backend=transformers"]))
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "hello"}]
    a, b = (chat.chat(msgs, max_new_tokens=8) for _ in range(2))
    assert a.text == b.text and a.completion_tokens == b.completion_tokens


# The generation-prompt part of Qwen3's chat template, whose enable_thinking switch pre-fills an empty thought
_THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}")


def test_reasoning_templates_are_told_not_to_think_unless_configured(tiny_folder):
    """A Qwen3 step thought through all of max_new_tokens (256) before its tool call, so every step failed;
    agent.thinking=false (the default) pre-fills the template's empty thought, true leaves it to the model."""
    msgs = [{"role": "user", "content": "hello"}]
    prompts = {}
    for thinking in ("false", "true"):
        chat = TransformersChat.from_config(Config.from_dict({}, [
            f"models.llm={tiny_folder}", "agent.backend=transformers", f"agent.thinking={thinking}"]))
        chat.tokenizer.chat_template = _THINKING_TEMPLATE
        prompts[thinking] = chat.tokenizer.decode(chat.encode(msgs)["input_ids"][0])
    assert prompts["false"].endswith("assistant\n<think>\n\n</think>\n\n")
    assert prompts["true"].endswith("assistant\n") and "<think>" not in prompts["true"]
    plain = TransformersChat.from_config(Config.from_dict({}, [f"models.llm={tiny_folder}",
                                                               "agent.backend=transformers"]))
    assert "<think>" not in plain.tokenizer.decode(plain.encode(msgs)["input_ids"][0])  # SmolLM2's: no switch


class _FakeModel:
    config = type("Cfg", (), {"max_position_embeddings": 2048})()

    def __init__(self, seen):
        self.seen = seen

    def to(self, device):
        self.seen["to"] = device
        return self

    def eval(self):
        return self


def test_a_gpu_index_loads_the_llm_on_that_gpu_in_its_own_dtype(monkeypatch):
    """models.device=cuda:1 loaded float32 weights (only "cuda" got dtype="auto"), double the GPU memory."""
    from types import SimpleNamespace

    from videomind.backends import hf_local
    from videomind.models.registry import ResolvedModel

    seen = {}
    fake = SimpleNamespace(
        AutoTokenizer=SimpleNamespace(from_pretrained=lambda path: SimpleNamespace(chat_template="{{ x }}")),
        AutoModelForCausalLM=SimpleNamespace(from_pretrained=lambda path, **kw: seen.update(kw) or _FakeModel(seen)))
    monkeypatch.setattr(hf_local, "require", lambda *a: fake)
    chat = TransformersChat(ResolvedModel("m", "llm", "path", "/nowhere"), device="cuda:1")
    assert chat.device == "cuda:1" and seen == {"dtype": "auto", "to": "cuda:1"}
    TransformersChat(ResolvedModel("m", "llm", "path", "/nowhere"), device="cpu")
    assert seen == {"dtype": None, "to": "cpu"}
