"""LLM-written memory: episodic summaries and entity extraction, used when a capable backend is configured.

Memory accepts them as plain callables (it never imports agents); on any failure it falls back to its offline
extractive summaries and keyphrase entities, so a bad reply never loses an observation.
"""

from __future__ import annotations

import inspect
import json
import re
from importlib import resources
from typing import Callable, Sequence

from videomind.agents.parsing import without_thinking
from videomind.errors import ModelOutputError
from videomind.types import format_time


def _prompt(name: str) -> str:
    return resources.files("videomind.agents").joinpath(f"prompts/{name}.txt").read_text()


def _reply(backend, prompt: str, max_new_tokens: int, **kwargs) -> str:
    """What ``backend`` answers to ``prompt``, without the <think> reasoning that reasoning models (and servers
    without a reasoning parser) put first. A reply that is all reasoning (cut off by ``max_new_tokens`` while
    thinking) is no answer: ModelOutputError, so memory falls back to its offline summary or entities."""
    reply = backend.chat([{"role": "user", "content": prompt}], max_new_tokens=max_new_tokens, **kwargs).text
    text = without_thinking(reply).strip()
    if not text and reply.strip():
        raise ModelOutputError(f"the reply was all reasoning, no answer ({len(reply)} characters)")
    return text


def make_summarizer(backend, max_new_tokens: int = 160) -> Callable[[str, str], str]:
    """``summarize(event_text, scale) -> summary`` with ``backend`` (a ChatBackend)."""
    template = _prompt("summarize")

    def summarize(text: str, scale: str) -> str:
        prompt = template.replace("{scale}", scale).replace("{text}", text[:6000])
        return _reply(backend, prompt, max_new_tokens)

    return summarize


def parse_entities(reply: str) -> list[tuple[str, str]]:
    """The first JSON array in a reply as (name, kind) pairs: of [name, kind] pairs, names, or the objects
    {"name": ..., "kind"/"type": ...} that models often write instead. Raises ModelOutputError when there is none.

    The array is decoded where it starts, so prose after it ("see [1]") does not spoil it; an empty list here
    means the model found no entities (memory then stores none for the text), so a reply we cannot read must
    raise instead, and memory falls back to its offline extractor.
    """
    decoder = json.JSONDecoder()
    items = None
    for m in re.finditer(r"\[", reply):
        try:
            items, _ = decoder.raw_decode(reply, m.start())
        except ValueError:
            continue
        if isinstance(items, list):
            break
        items = None
    if items is None:
        raise ModelOutputError("no JSON array in the entity reply")
    out = []
    for item in items:
        if isinstance(item, dict):
            item = [item.get("name") or item.get("entity"), item.get("kind") or item.get("type")]
        if isinstance(item, (list, tuple)) and item and isinstance(item[0], str) and item[0].strip():
            out.append((item[0].strip(), str(item[1] or "term") if len(item) > 1 else "term"))
        elif isinstance(item, str) and item.strip():
            out.append((item.strip(), "term"))
    if items and not out:
        raise ModelOutputError(f"entity reply holds no names: {reply[:120]!r}")
    return out


def make_entity_extractor(backend, max_new_tokens: int = 160) -> Callable[[str, str], Sequence[tuple[str, str]]]:
    """``extract(text, source) -> [(name, kind)]`` with ``backend``."""
    template = _prompt("entities")

    def extract(text: str, source: str) -> list[tuple[str, str]]:
        prompt = template.replace("{source}", source).replace("{text}", text[:4000])
        return parse_entities(_reply(backend, prompt, max_new_tokens))

    return extract


def _takes_fps(chat: Callable) -> bool:
    try:
        params = inspect.signature(chat).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable without a signature: do not guess
        return False
    return any(p.name == "fps" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def make_captioner(vlm, max_new_tokens: int = 96) -> Callable[[Sequence, str], str]:
    """``caption(images, transcript) -> caption`` of one clip with ``vlm`` (a ChatBackend that takes images);
    the ingest pipeline stores the reply as a timed ``caption`` text (see videomind.ingest.captions).

    Keyframes are taken at scene changes, not at a steady rate. When ``images`` carries their ``times`` (the
    pipeline's ``Frames``), a backend whose ``chat`` takes ``fps`` (the local engine, which spaces frames by
    time in its positions and would otherwise put them 1 s apart) gets their mean rate; one that does not (an
    OpenAI-compatible server, shown separate stills) is told their times in the prompt instead."""
    template = _prompt("caption")
    takes_fps = _takes_fps(vlm.chat)

    def caption(images: Sequence, transcript: str) -> str:
        prompt = template.replace("{speech}", transcript[:2000] or "(none)")
        times, fps = getattr(images, "times", None), getattr(images, "fps", None)
        kwargs = {}
        if takes_fps and fps is not None:
            kwargs["fps"] = fps
        elif not takes_fps and times and len(times) == len(images):
            prompt = f"The frames were taken at {', '.join(format_time(t) for t in times)}.\n{prompt}"
        return _reply(vlm, prompt, max_new_tokens, images=list(images), **kwargs)

    return caption
