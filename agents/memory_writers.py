"""LLM-written memory: episodic summaries and entity extraction, used when a capable backend is configured.

Memory accepts them as plain callables (it never imports agents); on any failure it falls back to its offline
extractive summaries and keyphrase entities, so a bad reply never loses an observation.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Callable, Sequence

from videomind.errors import ModelOutputError


def _prompt(name: str) -> str:
    return resources.files("videomind.agents").joinpath(f"prompts/{name}.txt").read_text()


def make_summarizer(backend, max_new_tokens: int = 160) -> Callable[[str, str], str]:
    """``summarize(event_text, scale) -> summary`` with ``backend`` (a ChatBackend)."""
    template = _prompt("summarize")

    def summarize(text: str, scale: str) -> str:
        prompt = template.replace("{scale}", scale).replace("{text}", text[:6000])
        return backend.chat([{"role": "user", "content": prompt}], max_new_tokens=max_new_tokens).text.strip()

    return summarize


def parse_entities(reply: str) -> list[tuple[str, str]]:
    """The first JSON array of [name, kind] pairs in a reply. Raises ModelOutputError when there is none."""
    match = re.search(r"\[.*\]", reply, re.S)
    if not match:
        raise ModelOutputError("no JSON array in the entity reply")
    try:
        items = json.loads(match.group(0))
    except json.JSONDecodeError as e:
        raise ModelOutputError(f"entity reply is not JSON: {e}") from e
    out = []
    for item in items:
        if isinstance(item, (list, tuple)) and item and isinstance(item[0], str) and item[0].strip():
            out.append((item[0].strip(), str(item[1]) if len(item) > 1 else "term"))
        elif isinstance(item, str) and item.strip():
            out.append((item.strip(), "term"))
    return out


def make_entity_extractor(backend, max_new_tokens: int = 160) -> Callable[[str, str], Sequence[tuple[str, str]]]:
    """``extract(text, source) -> [(name, kind)]`` with ``backend``."""
    template = _prompt("entities")

    def extract(text: str, source: str) -> list[tuple[str, str]]:
        prompt = template.replace("{source}", source).replace("{text}", text[:4000])
        return parse_entities(backend.chat([{"role": "user", "content": prompt}],
                                           max_new_tokens=max_new_tokens).text)

    return extract


def make_captioner(vlm, max_new_tokens: int = 96) -> Callable[[Sequence, str], str]:
    """``caption(images, transcript) -> caption`` of one clip with ``vlm`` (a ChatBackend that takes images);
    the ingest pipeline stores the reply as a timed ``caption`` text (see videomind.ingest.captions)."""
    template = _prompt("caption")

    def caption(images: Sequence, transcript: str) -> str:
        prompt = template.replace("{speech}", transcript[:2000] or "(none)")
        return vlm.chat([{"role": "user", "content": prompt}], images=list(images),
                        max_new_tokens=max_new_tokens).text.strip()

    return caption
