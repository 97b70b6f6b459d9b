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
