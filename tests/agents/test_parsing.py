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


def test_reasoning_is_skipped_for_the_action_after_it():
    """Reasoning models draft calls in <think> and reject them; the action is the one after the thought."""
    draft = '{"tool": "inspect", "args": {"t0": 0, "t1": 5, "question": "q"}}'
    final = '{"tool": "search_episodic", "args": {"query": "gate"}}'
    assert parse_action(f"<think>I could call {draft}, but no.</think>\n{final}")["tool"] == "search_episodic"
    assert parse_action(f"drafting {draft} is wrong</think>{final}")["tool"] == "search_episodic"  # opened in prompt
    with pytest.raises(ModelOutputError, match="all reasoning"):
        parse_action(f"<think>maybe {draft} ... out of tokens")


def test_python_only_values_are_a_model_error_not_a_trace_that_cannot_be_saved():
    """literal_eval reads sets and bytes; a step holding one breaks json.dumps of the trace (samples.jsonl)."""
    with pytest.raises(ModelOutputError, match="not JSON"):
        parse_action("{'tool': 'answer', 'args': {'choice': {1}, 'text': b'x'}}")
    assert parse_action("{'tool': 'answer', 'args': {'choice': 1}}")["args"] == {"choice": 1}


OPTIONS = ["apple", "pineapple", "banana", "red balloon", "balloon"]


@pytest.mark.parametrize("value, expected", [
    (1, 1), ("1", 1), ("(B)", 1), ("b)", 1), ("**B**", 1), ("Answer: C", 2), ("The answer is b.", 1),
    ("option (B)", 1), ("B) pineapple", 1), ("pineapple", 1), ("PINEAPPLE!", 1), ("the answer is pineapple", 1),
    ("the answer is a pineapple", 1), ("a red balloon", 3), ("the balloon", 4),
    ("B and C", None), ("(A) or (B)", None), ("B) apple", None), ("apple, not pineapple", None),
    ("Answer: F", None), ("AB", None), ("", None), (True, None), (1.5, None), ([1], None),
])
def test_option_index_reads_labels_indices_and_option_text(value, expected):
    from videomind.agents.parsing import option_index

    assert option_index(value, OPTIONS) == expected


@pytest.mark.parametrize("value, options, expected", [
    ("A", ["B", "A", "C"], 1),  # an option's whole text before a letter: the prompt shows indices, not letters
    ("The answer is B, not apple", OPTIONS, 1),  # a stated answer speaks for the reply; the rest is commentary
    ("I pick (b)", OPTIONS, 1),
    ("A. mango, B. kiwi", OPTIONS, None),  # two labels, two options named
])
def test_option_index_reads_what_the_benchmark_reader_did(value, options, expected):
    """One reader serves the agent and the benchmarks (extract_choice); these were read only there before."""
    from videomind.agents.parsing import option_index

    assert option_index(value, options) == expected


def test_a_bare_number_is_an_index_only_where_the_prompt_shows_indices():
    from videomind.agents.parsing import option_index

    counts = ["1", "2", "3"]
    assert option_index("2", counts) == 2 and option_index("(1)", OPTIONS) == 1
    assert option_index("2", counts, digits_are_indices=False) == 1  # the option "2"
    assert option_index("1", OPTIONS, digits_are_indices=False) is None
