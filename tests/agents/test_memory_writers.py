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
