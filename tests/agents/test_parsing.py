import pytest

from videomind.agents.parsing import parse_action
from videomind.errors import ModelOutputError


@pytest.mark.parametrize("text", [
    '{"tool": "search_episodic", "args": {"query": "gate", "scale": "clip"}}',
    'Sure! ```json\n{"tool": "search_episodic", "args": {"query": "gate", "scale": "clip"}}\n``` hope it helps',
    "I will search. {'tool': 'search_episodic', 'args': {'query': 'gate', 'scale': 'clip'}} Done.",
    '{"action": "search_episodic", "arguments": {"query": "gate", "scale": "clip",}}',
    '{"tool": "search_episodic", "query": "gate", "scale": "clip", "thought": "look"}',
])
def test_tolerant_forms(text):
    assert parse_action(text) == {"tool": "search_episodic", "args": {"query": "gate", "scale": "clip"}}


def test_braces_inside_strings_and_second_object():
    a = parse_action('{"note": "x"} then {"tool": "answer", "args": {"text": "a } b", "choice": None}}')
    assert a == {"tool": "answer", "args": {"text": "a } b", "choice": None}}


@pytest.mark.parametrize("text, msg", [
    ("I think the answer is B", "no JSON"),
    ('{"query": 1}', 'no "tool"'),
    ('{"tool": "answer", "args": [1, 2]}', "must be an object"),
])
def test_failures_explain_themselves(text, msg):
    with pytest.raises(ModelOutputError, match=msg):
        parse_action(text)


@pytest.mark.parametrize("text", [
    '{{"tool": "answer"}}',  # ast.literal_eval builds a set of dicts: TypeError, not a parse error
    '{"tool":"answer","args":{"choice":' + "[" * 5000 + "]" * 5000 + "}}",  # RecursionError inside json
])
def test_unreadable_objects_are_model_errors_not_crashes(text):
    with pytest.raises(ModelOutputError):
        parse_action(text)


def test_unreadable_object_does_not_hide_a_later_good_one():
    assert parse_action('{{"a": 1}} {"tool": "answer", "args": {"choice": 1}}') == \
        {"tool": "answer", "args": {"choice": 1}}


def test_null_args_is_empty_and_blank_tool_is_rejected():
    assert parse_action('{"tool": "search_episodic", "args": null}') == {"tool": "search_episodic", "args": {}}
    with pytest.raises(ModelOutputError, match="tool"):
        parse_action('{"tool": "   ", "args": {}}')
