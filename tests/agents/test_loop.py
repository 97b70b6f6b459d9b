"""The LLM agent loop driven by a scripted fake backend (a real model cannot be scripted) over a real memory."""

from __future__ import annotations

import json

import pytest

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
    assert steps[0].model_input.endswith("---\n" + backend.seen[1][-1]["content"])  # and is on the record
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
    assert ans.text == "It is pineapple." and ans.evidence == []  # nothing searched: no evidence to attach


def test_uncited_answer_gets_scored_evidence_and_says_so(memory):
    """The product promises timestamped evidence: an answer that cites no valid id gets the pool rows that support
    it, and the policy says the scorer chose them."""
    ans, steps, _ = run(memory, [act("search_episodic", query="password"),
                                 act("answer", text="It is pineapple.", evidence=["nope"])], options=None)
    assert ans.text == "It is pineapple." and ans.evidence
    assert "pineapple" in ans.evidence[0].text.lower() and "evidence chosen by scorer" in ans.policy
    assert steps[-1].evidence_ids == [e.id for e in ans.evidence]
    ans, _, _ = run(memory, [act("search_episodic", query="password"), act("answer", choice=1)])
    assert ans.choice == 1 and "pineapple" in ans.evidence[0].text.lower()
    assert "evidence chosen by scorer" in ans.policy


def test_policy_choice():
    weak = ScriptedBackend([])
    weak.weak = True
    assert isinstance(choose_policy(weak, AgentConfig()), HeuristicPolicy)
    assert isinstance(choose_policy(weak, AgentConfig(policy="llm")), LLMPolicy)
    assert isinstance(choose_policy(ScriptedBackend([]), AgentConfig()), LLMPolicy)
    assert isinstance(choose_policy(None, AgentConfig()), HeuristicPolicy)


@pytest.mark.parametrize("reply", [
    '{{"tool": "answer"}}',
    '{"tool":"answer","args":{"choice":' + "[" * 5000 + "]" * 5000 + "}}",
])
def test_unreadable_reply_is_reasked_not_raised(memory, reply):
    ans, steps, backend = run(memory, [reply, act("answer", choice=1, text="pineapple")])
    assert "unparseable" in steps[0].retried and "not valid" in backend.seen[1][-1]["content"]
    assert ans.choice == 1


def test_odd_answer_arguments_do_not_crash(memory):
    ans, _, _ = run(memory, [act("search_episodic", query="password"), '{"tool":"answer","args":{"choice":1e400}}'])
    assert ans.choice == 1 and "invalid choice inf" in ans.policy
    ans, _, _ = run(memory, [act("search_episodic", query="password"), act("answer", choice=1, evidence=5)])
    assert ans.choice == 1 and ans.evidence


def test_non_finite_tool_argument_is_fed_back(memory):
    ans, steps, backend = run(memory, [
        '{"tool":"inspect","args":{"t0":0,"t1":1e400,"question":"q"}}', act("answer", choice=1)])
    assert steps[0].tool == "inspect" and "finite" in steps[0].error
    assert "ERROR: ValueError" in backend.seen[1][-1]["content"]
    assert ans.choice == 1


def test_overflow_inside_a_tool_is_fed_back(memory):
    """Numbers the model sends can overflow deep inside a tool (int(inf) when formatting a time): its mistake."""
    def overflowing(**_):
        raise OverflowError("cannot convert float infinity to integer")

    toolbox = Toolbox(memory)
    toolbox.tools["inspect"] = overflowing
    policy = LLMPolicy(ScriptedBackend([act("inspect", t0=0, t1=1), act("answer", choice=1)]),
                       AgentConfig(policy="llm", max_steps=4))
    items = list(policy.run(toolbox, Q, OPTIONS))
    assert "OverflowError" in items[0].error and items[-1].choice == 1


@pytest.mark.parametrize("choice, expected", [
    (1, 1), (1.0, 1), ("1", 1), (" 2 ", 2), ("B", 1), ("b", 1), ("(B)", 1), ("B.", 1), ("e", 4),
])
def test_choice_as_index_digits_or_letter(memory, choice, expected):
    ans, _, _ = run(memory, [act("answer", choice=choice, text="x")])
    assert ans.choice == expected and ans.policy == "llm:scripted", ans.policy


@pytest.mark.parametrize("choice", [True, False, 1.9, float("nan"), -1, 5, "F", "Z", "AB", "", [1], "9" * 5000])
def test_choice_that_is_not_an_option_falls_back(memory, choice):
    ans, _, _ = run(memory, [act("search_episodic", query="password"), act("answer", choice=choice)])
    assert "invalid choice" in ans.policy and ans.choice == 1  # evidence scoring decided


@pytest.mark.parametrize("args, expected", [
    ({"choice": "Answer: B"}, 1),
    ({"choice": "B) pineapple"}, 1),
    ({"choice": "pineapple"}, 1),
    ({"choice": None, "text": "The answer is pineapple."}, 1),
    ({"choice": 9, "text": "mango"}, 3),
])
def test_the_models_choice_is_read_from_labels_and_option_text(memory, args, expected):
    """What the model said is its answer; evidence scoring is only for when it named no option."""
    ans, _, _ = run(memory, [act("search_episodic", query="password"), act("answer", **args)])
    assert ans.choice == expected and "evidence scoring" not in ans.policy, ans.policy


@pytest.mark.parametrize("args", [{"choice": None, "text": "2"}, {"text": "2"}, {"choice": "two", "text": "2"}])
def test_a_number_in_the_answer_text_is_that_option_not_an_index(memory, args):
    """Options "1", "2", "3": a choice field "2" is the index the prompt lists, a text "2" is the option "2"."""
    ans, _, _ = run(memory, [act("answer", **args)], options=["1", "2", "3"])
    assert ans.choice == 1 and ans.text == "2" and "read from its answer text" in ans.policy, ans.policy


def test_a_forced_answer_is_recorded_as_what_happened(memory):
    """At the budget a model that calls a search again is answered for: the step says so and does not show an
    answer with the search's arguments."""
    ans, steps, _ = run(memory, [act("search_episodic", query=f"password {i}") for i in range(3)], max_steps=2)
    last = steps[-1]
    assert last.tool == "answer" and last.args == {} and "query" not in last.summary()
    assert "step budget" in last.error and "search_episodic" in last.error
    assert '"search_episodic"' in last.model_output  # what the model really replied stays on the record
    assert json.loads(json.dumps(ans.to_dict()))["steps"][-1] == last.to_dict()
