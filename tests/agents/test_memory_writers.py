"""Parsing the entity replies of an LLM memory writer (memory falls back to its offline extractor on an error)."""

import pytest

from videomind.agents.memory_writers import parse_entities
from videomind.errors import ModelOutputError


@pytest.mark.parametrize("reply, expected", [
    ('[["Ada Lovelace", "person"], ["Paris", "place"]]', [("Ada Lovelace", "person"), ("Paris", "place")]),
    ('Entities: [["Ada", "person"]]. See [1] for details.', [("Ada", "person")]),  # greedy [.*] spanned to "[1]"
    ('[{"name": "Ada Lovelace", "kind": "person"}, {"name": "loom", "type": "object"}]',
     [("Ada Lovelace", "person"), ("loom", "object")]),  # objects were skipped: [] read as "no entities"
    ('```json\n["GATE 42"]\n```', [("GATE 42", "term")]),
    ("[]", []),
])
def test_entity_replies(reply, expected):
    assert parse_entities(reply) == expected


@pytest.mark.parametrize("reply", ["none found", "[1, 2, 3]", '[{"label": 3}]'])
def test_unreadable_entity_replies_raise_so_memory_falls_back(reply):
    with pytest.raises(ModelOutputError):
        parse_entities(reply)


class _Replies:
    """A backend that answers with a fixed text (what a reasoning model's server sends back)."""

    def __init__(self, text):
        self.text = text

    def chat(self, messages, *, max_new_tokens=256, temperature=0.0, images=None, **kw):
        from videomind.backends.base import Completion

        return Completion(self.text)


def test_memory_writers_store_the_answer_not_the_reasoning():
    """A reasoning model's <think> block was stored as the summary (and caption); a reply cut off while thinking
    was stored whole, so the extractive fallback never ran."""
    from videomind.agents.memory_writers import make_captioner, make_entity_extractor, make_summarizer

    thought = "<think>The user wants a summary. The clip mentions Paris [see 1].</think>\n"
    assert make_summarizer(_Replies(thought + "The guide greets the group."))("text", "segment") == \
        "The guide greets the group."
    assert make_entity_extractor(_Replies(thought + '[["Paris", "place"]]'))("text", "speech") == [("Paris", "place")]
    assert make_captioner(_Replies(thought + "A red bus."))([], "") == "A red bus."
    for make, args in ((make_summarizer, ("text", "segment")), (make_entity_extractor, ("text", "speech")),
                       (make_captioner, ([], ""))):
        with pytest.raises(ModelOutputError, match="all reasoning"):
            make(_Replies("<think>Let me think about the entities. First, Paris"))(*args)  # ran out of tokens
