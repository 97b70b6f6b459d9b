"""The real bundled SmolLM2-135M-Instruct through transformers (first run converts the GGUF, ~40 s; cached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from videomind.backends.registry import backend_class, load_backend
from videomind.config import Config, default_home
from videomind.errors import ConfigError


@pytest.fixture(scope="module")
def offline():
    return load_backend(Config())


def test_offline_backend_loads_from_cache_and_chats(offline):
    assert (default_home() / "models" / "smollm2-135m-instruct" / "config.json").is_file()
    assert offline.weak and not offline.supports_images and offline.context_window >= 2048
    c = offline.chat([{"role": "user", "content": "What is the capital of France? One word."}], max_new_tokens=12)
    assert "paris" in c.text.lower()
    assert c.prompt_tokens > 5 and 0 < c.completion_tokens <= 12


def test_unknown_backend_names_the_key():
    with pytest.raises(ConfigError, match="agent.backend.*offline, transformers, openai"):
        backend_class("llama")


def test_cached_conversion_is_complete(offline):
    folder = Path(default_home() / "models" / "smollm2-135m-instruct")
    assert any(folder.glob("*.safetensors")) and (folder / "tokenizer_config.json").is_file()
    assert not list(folder.parent.glob("smollm2-135m-instruct.tmp*"))  # no half-written conversions left
