"""The chat-model protocol every language-model backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Completion:
    """One model reply with its cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


class ChatBackend(Protocol):
    """A chat LLM (or VLM when ``supports_images``).

    ``messages`` are OpenAI-style dicts ({"role": "system"|"user"|"assistant", "content": str}); ``images`` are
    RGB uint8 arrays [H, W, 3] attached to the last user message (VLM backends only).
    """

    name: str  # the model, as the user configured it
    weak: bool  # too small to plan the agent loop: the heuristic policy is used instead
    supports_images: bool
    context_window: int  # tokens

    def chat(self, messages: list[dict[str, str]], *, max_new_tokens: int = 256, temperature: float = 0.0,
             images: list[Any] | None = None) -> Completion:
        ...
