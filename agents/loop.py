"""The agent loop (WorldMM-style): each round the model searches a memory at a scale of its choice, inspects a
span, or answers. A generator of Steps ending with the Answer; short enough to read in one screen.

A mistake of the model (unparseable action, unknown tool, bad argument) is recorded on its step and fed back;
the loop re-asks once with the parse error, then falls back to a safe action. At the step budget, or after
repeated empty results, the model is forced to answer.
"""

from __future__ import annotations

import logging
import time
from importlib import resources
from typing import Iterator

from videomind.agents.heuristic import HeuristicPolicy
from videomind.agents.parsing import parse_action
from videomind.agents.steps import Step
from videomind.agents.tools import Toolbox, render
from videomind.config import AgentConfig
from videomind.errors import ModelOutputError
from videomind.types import Answer, Evidence

logger = logging.getLogger(__name__)
MAX_EVIDENCE_CHARS = 4000  # keeps even a 2K-token model's prompt within its window


def _system_prompt(toolbox: Toolbox) -> str:
    text = resources.files("videomind.agents").joinpath("prompts/system.txt").read_text()
    return text.replace("{tools}", toolbox.schema())


def _user_prompt(question: str, options: list[str] | None, steps: list[Step], pool: list[Evidence],
                 force: bool) -> str:
    parts = [f"Question: {question}"]
    if options:
        parts += [f"  {i}. {o}" for i, o in enumerate(options)]
    if steps:
        parts.append("Previous rounds:\n" + "\n".join(s.summary()[:300] for s in steps))
    if pool:
        ranked = sorted(pool, key=lambda e: -e.score)
        text = ""
        for e in ranked:  # best first, truncated to the budget
            line = render([e])
            if len(text) + len(line) > MAX_EVIDENCE_CHARS:
                break
            text += line + "\n"
        parts.append("Evidence so far:\n" + text.rstrip())
    parts.append('You must answer now: {"tool": "answer", "args": {"choice": ..., "text": ..., "evidence": [...]}}'
                 if force else "Next action (one JSON object):")
    return "\n".join(parts)


class LLMPolicy:
    """An LLM chooses each action. ``backend`` is a ChatBackend."""

    def __init__(self, backend, config: AgentConfig):
        self.backend, self.config = backend, config
        self.name = f"llm:{backend.name}"

    def _ask(self, messages: list[dict[str, str]], step: Step) -> dict | None:
        """Query the model; on a parse error re-ask once with the error. None when both replies are unusable."""
        for attempt in range(2):
            c = self.backend.chat(messages, max_new_tokens=self.config.max_new_tokens,
                                  temperature=self.config.temperature)
            step.model_output += ("\n---\n" if attempt else "") + c.text
            step.prompt_tokens += c.prompt_tokens
            step.completion_tokens += c.completion_tokens
            try:
                return parse_action(c.text)
            except ModelOutputError as e:
                step.retried = f"unparseable action: {e}"
                messages = messages + [{"role": "assistant", "content": c.text},
                                       {"role": "user", "content": f"That was not valid: {e}. Reply with one JSON "
                                                                   f"object only."}]
        return None

    def run(self, toolbox: Toolbox, question: str, options: list[str] | None = None) -> Iterator[Step | Answer]:
        steps: list[Step] = []
        pool: dict[str, Evidence] = {}
        empty_streak = 0
        system = _system_prompt(toolbox)
        for i in range(self.config.max_steps):
            force = i == self.config.max_steps - 1 or empty_streak >= 2
            step = Step(i, "error")
            t0 = time.perf_counter()
            user = _user_prompt(question, options, steps, list(pool.values()), force)
            step.model_input = user
            action = self._ask([{"role": "system", "content": system}, {"role": "user", "content": user}], step)
            if action is None:  # safe fallback: search once, then answer from evidence
                step.error = step.retried
                action = {"tool": "answer", "args": {}} if pool or force else \
                    {"tool": "search_episodic", "args": {"query": question}}
            step.tool, step.args = action["tool"], action["args"]
            if step.tool == "answer" or force:
                step.tool = "answer"
                answer = self._answer(question, options, step.args, pool, toolbox)
                step.observation, step.evidence_ids = answer.text, [e.id for e in answer.evidence]
                step.seconds = time.perf_counter() - t0
                steps.append(step)
                yield step
                answer.steps = steps
                yield answer
                return
            try:
                obs = toolbox.call(step.tool, step.args)
                step.observation, step.evidence_ids = obs.text, [e.id for e in obs.evidence]
                new = [e for e in obs.evidence if e.id not in pool]
                pool.update({e.id: e for e in obs.evidence})
                empty_streak = 0 if new else empty_streak + 1
            except (KeyError, TypeError, ValueError) as e:  # the model's mistake: shown to it next round
                step.error = f"{type(e).__name__}: {e}"
                empty_streak += 1
            step.seconds = time.perf_counter() - t0
            steps.append(step)
            yield step

    def _answer(self, question: str, options: list[str] | None, args: dict, pool: dict[str, Evidence],
                toolbox: Toolbox) -> Answer:
        """Validate the model's answer; when it is unusable, fall back to evidence scoring over the pool."""
        choice = args.get("choice")
        cited = [pool[i] for i in args.get("evidence", []) or [] if isinstance(i, str) and i in pool]
        if options:
            try:
                choice = int(choice)
                if not 0 <= choice < len(options):
                    raise ValueError
            except (TypeError, ValueError):
                fallback = HeuristicPolicy().decide(toolbox, question, options, list(pool.values()))
                fallback.policy = f"{self.name} (invalid choice {args.get('choice')!r}; evidence scoring used)"
                return fallback
            return Answer(question, options[choice], choice, options, cited, [], self.name)
        text = str(args.get("text") or "").strip()
        if not text:
            fallback = HeuristicPolicy().decide(toolbox, question, [], list(pool.values()))
            fallback.policy = f"{self.name} (empty answer; extractive fallback)"
            return fallback
        return Answer(question, text, None, None, cited, [], self.name)


def choose_policy(backend, config: AgentConfig):
    """``auto`` gives weak models (e.g. the bundled 135M) the heuristic policy; ``llm``/``heuristic`` force one."""
    if config.policy == "heuristic" or (config.policy == "auto" and (backend is None or backend.weak)):
        return HeuristicPolicy()
    return LLMPolicy(backend, config)
