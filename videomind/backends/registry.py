"""Name -> backend class, imported on demand (an eager registry would import every heavy dependency)."""

from __future__ import annotations

import importlib

from videomind.backends.base import ChatBackend
from videomind.config import Config
from videomind.errors import ConfigError

BACKENDS: dict[str, str] = {
    "offline": "videomind.backends.hf_local:OfflineChat",
    "transformers": "videomind.backends.hf_local:TransformersChat",
    "openai": "videomind.backends.openai_compat:OpenAIChat",
    "vlm": "videomind.backends.hf_vlm:TransformersVLM",  # the local VLM (models.vlm) plans and looks
}


def backend_class(name: str) -> type:
    if name not in BACKENDS:
        raise ConfigError(f"config key 'agent.backend': unknown backend {name!r}; one of {', '.join(BACKENDS)}")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def load_backend(config: Config) -> ChatBackend:
    """Build the chat backend named by ``config.agent.backend`` for the model ``config.models.llm``."""
    return backend_class(config.agent.backend).from_config(config)
