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

from videomind.agents.heuristic import HeuristicPolicy, supporting_evidence
from videomind.agents.parsing import option_index, parse_action
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
                if attempt:
                    break
                again = f"That was not valid: {e}. Reply with one JSON object only."
                step.model_input += "\n---\n" + again  # the trace shows all the model was told, as model_output does
                messages = messages + [{"role": "assistant", "content": c.text}, {"role": "user", "content": again}]
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
            if force and step.tool != "answer":  # the trace must not show an answer(query=...) that never was
                why = "the step budget is spent" if i == self.config.max_steps - 1 else "two rounds found nothing new"
                step.error = f"told to answer ({why}) but called {step.tool}; answered from the evidence instead"
                step.tool, step.args = "answer", {}
            if step.tool == "answer":
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
            except (KeyError, TypeError, ValueError, ArithmeticError) as e:  # the model's mistake: fed back
                step.error = f"{type(e).__name__}: {e}"
                empty_streak += 1
            step.seconds = time.perf_counter() - t0
            steps.append(step)
            yield step

    def _answer(self, question: str, options: list[str] | None, args: dict, pool: dict[str, Evidence],
                toolbox: Toolbox) -> Answer:
        """Validate the model's answer; when it is unusable, fall back to evidence scoring over the pool.

        Every answer promises timestamped evidence: when the model cites no id from the pool, the scorer attaches
        the pool rows that support its answer, and the policy says they were not cited by the model.
        """
        raw = args.get("evidence")
        ids = [i for i in raw if isinstance(i, str)] if isinstance(raw, list) else []
        cited = [pool[i] for i in dict.fromkeys(ids) if i in pool]
        policy = self.name
        if options:
            choice = option_index(args.get("choice"), options)
            # a number in the choice field is the index the prompt lists; in the text it is the answer ("2" of
            # options "1", "2", "3" is the option "2")
            if choice is None and (choice := option_index(args.get("text"), options,
                                                          digits_are_indices=False)) is not None:
                policy += f" (choice {args.get('choice')!r:.40} read from its answer text)"
            if choice is None:
                fallback = HeuristicPolicy().decide(toolbox, question, options, list(pool.values()))
                fallback.policy = f"{self.name} (invalid choice {args.get('choice')!r:.40}; evidence scoring used)"
                return fallback
            text = options[choice]
        else:
            choice, text = None, str(args.get("text") or "").strip()
            if not text:
                fallback = HeuristicPolicy().decide(toolbox, question, [], list(pool.values()))
                fallback.policy = f"{self.name} (empty answer; extractive fallback)"
                return fallback
        if not cited:
            cited = supporting_evidence(toolbox, question, text, list(pool.values()))
            if cited:
                policy += " (no valid evidence cited; evidence chosen by scorer)"
        return Answer(question, text, choice, options or None, cited, [], policy)


def choose_policy(backend, config: AgentConfig):
    """``auto`` gives weak models (e.g. the bundled 135M) the heuristic policy; ``llm``/``heuristic`` force one."""
    if config.policy == "heuristic" or (config.policy == "auto" and (backend is None or backend.weak)):
        return HeuristicPolicy()
    return LLMPolicy(backend, config)
