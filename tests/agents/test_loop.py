"""The LLM agent loop driven by a scripted fake backend (a real model cannot be scripted) over a real memory."""

from __future__ import annotations

import json


from videomind.agents.loop import LLMPolicy, choose_policy
from videomind.agents.heuristic import HeuristicPolicy
from videomind.agents.tools import Toolbox
from videomind.backends.base import Completion
from videomind.config import AgentConfig
from videomind.types import Answer

OPTIONS = ["apple", "pineapple", "banana", "mango", "grape"]
Q = "What is the secret password?"


class ScriptedBackend:
    """Replies from a list, records what it was shown."""

    name, weak, supports_images, context_window = "scripted", False, False, 8192

    def __init__(self, replies):
        self.replies, self.seen = list(replies), []

    def chat(self, messages, *, max_new_tokens=256, temperature=0.0, images=None):
        self.seen.append(messages)
        text = self.replies.pop(0) if self.replies else '{"tool": "search_episodic", "args": {"query": "again"}}'
        return Completion(text, prompt_tokens=len(messages[-1]["content"]) // 4, completion_tokens=len(text) // 4)


def act(tool, **args):
    return json.dumps({"tool": tool, "args": args})


def run(memory, replies, options=OPTIONS, max_steps=6, question=Q):
    backend = ScriptedBackend(replies)
    items = list(LLMPolicy(backend, AgentConfig(policy="llm", max_steps=max_steps)).run(
        Toolbox(memory), question, options))
    assert isinstance(items[-1], Answer)
    return items[-1], items[:-1], backend


def test_search_inspect_answer(memory):
    hits = memory.search("secret password", k=3)
    ans, steps, backend = run(memory, [
        act("search_episodic", query="secret password", scale="clip"),
        act("inspect", t0=70, t1=85, question="what password is said?"),
        act("answer", choice=1, text="pineapple", evidence=[hits[0].id]),
    ])
    assert [s.tool for s in steps] == ["search_episodic", "inspect", "answer"]
    assert "pineapple" in steps[0].observation.lower() and "pineapple" in steps[1].observation.lower()
    assert ans.choice == 1 and [e.id for e in ans.evidence] == [hits[0].id]
    assert ans.policy == "llm:scripted"
    # the model saw the previous rounds and the evidence in its next prompt
    assert "search_episodic" in backend.seen[1][-1]["content"] and "pineapple" in backend.seen[2][-1]["content"]
    assert all(s.prompt_tokens > 0 and s.model_output for s in steps)


def test_malformed_json_is_reasked_once_then_recovers(memory):
    ans, steps, backend = run(memory, [
        "I think we should search for it!",
        act("search_episodic", query="password"),
        act("answer", choice=1, text="pineapple", evidence=[]),
    ])
    assert steps[0].tool == "search_episodic" and "unparseable" in steps[0].retried and not steps[0].error
    assert "not valid" in backend.seen[1][-1]["content"]  # the parse error was fed back
    assert ans.choice == 1


def test_twice_unparseable_falls_back_to_a_safe_search(memory):
    ans, steps, _ = run(memory, ["nope", "still nope", act("answer", choice=1, text="pineapple")])
    assert steps[0].tool == "search_episodic" and steps[0].args == {"query": Q}
    assert "unparseable" in steps[0].error
    assert ans.choice == 1


def test_unknown_tool_and_bad_arguments_are_fed_back(memory):
    ans, steps, backend = run(memory, [
        act("watch_video", t=3),
        act("search_episodic", query="password", scale="week"),
        act("answer", choice=1, text="pineapple"),
    ])
    assert "unknown tool 'watch_video'" in steps[0].error
    assert "scale must be one of" in steps[1].error
    assert "ERROR: KeyError" in backend.seen[1][-1]["content"]
    assert ans.choice == 1


def test_budget_exhaustion_forces_an_answer(memory):
    ans, steps, backend = run(memory, [act("search_episodic", query=f"password {i}") for i in range(10)], max_steps=3)
    assert len(steps) == 3 and steps[-1].tool == "answer"
    assert "You must answer now" in backend.seen[-1][-1]["content"]
    # the forced reply was a search, not a valid choice: evidence scoring decides, and says so
    assert ans.choice == 1 and "evidence scoring used" in ans.policy


def test_invalid_choice_falls_back_and_open_answer(memory):
    ans, _, _ = run(memory, [act("search_episodic", query="password"), act("answer", choice=9)])
    assert ans.choice == 1 and "invalid choice 9" in ans.policy
    ans, _, _ = run(memory, [act("answer", text="It is pineapple.", evidence=["nope"])], options=None)
    assert ans.text == "It is pineapple." and ans.evidence == []


def test_policy_choice():
    weak = ScriptedBackend([])
    weak.weak = True
    assert isinstance(choose_policy(weak, AgentConfig()), HeuristicPolicy)
    assert isinstance(choose_policy(weak, AgentConfig(policy="llm")), LLMPolicy)
    assert isinstance(choose_policy(ScriptedBackend([]), AgentConfig()), LLMPolicy)
    assert isinstance(choose_policy(None, AgentConfig()), HeuristicPolicy)
