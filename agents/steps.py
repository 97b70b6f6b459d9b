"""One record per agent step: what the model saw, what it called, what came back, and what it cost.

The same list is the trace returned with the answer, the context of the next prompt and what the UI shows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Step:
    index: int
    tool: str  # search_episodic | search_semantic | search_visual | inspect | answer | error
    args: dict[str, Any] = field(default_factory=dict)
    observation: str = ""
    evidence_ids: list[str] = field(default_factory=list)
    model_input: str = ""  # the prompt (empty for the heuristic policy)
    model_output: str = ""  # the raw model reply
    error: str = ""  # a model mistake (unparseable action, unknown tool, bad argument), fed back next step
    retried: str = ""  # a parse error the model corrected when re-asked
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for prompts and the UI."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        head = f"[{self.index}] {self.tool}({args})"
        return f"{head} -> ERROR: {self.error}" if self.error else f"{head} -> {self.observation}"
