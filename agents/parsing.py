"""Robust parsing of JSON actions from small or chatty models.

Accepts fenced blocks, leading/trailing prose, single quotes, Python literals (True/None) and trailing commas,
and skips the <think>...</think> reasoning of reasoning models. Also reads which option an answer names.
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

from videomind.errors import ModelOutputError

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S)  # an unclosed block ran out of tokens: all of it is thought


def _visible(text: str) -> str:
    """The reply without its reasoning. Thought often drafts calls it then rejects ("I could call {...}, but"),
    so the action is what follows it. A template that opens <think> in the prompt leaves only the closing tag."""
    if "</think>" in text and "<think>" not in text.split("</think>", 1)[0]:
        text = text.split("</think>", 1)[1]
    return _THINK.sub("", text)


def _balanced_objects(text: str) -> list[str]:
    """Every top-level {...} substring, respecting strings."""
    out, depth, start, quote, escape = [], 0, -1, "", False
    for i, ch in enumerate(text):
        if quote:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'" and depth > 0:
            quote = ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                out.append(text[start:i + 1])
    return out


def _loads(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        pass
    cleaned = re.sub(r",\s*([}\]])", r"\1", candidate)
    try:
        return json.loads(cleaned)
    except json.JSONDecodeError:
        pass
    try:  # single quotes, True/False/None
        obj = ast.literal_eval(cleaned)
    except (ValueError, SyntaxError):
        return None
    try:  # sets, bytes, complex numbers are Python, not JSON: they would break the trace's JSON (samples.jsonl)
        json.dumps(obj)
    except TypeError as e:
        raise ModelOutputError(f"not JSON ({e}); use only strings, numbers, lists, objects, true/false/null") from e
    return obj


def _action(candidate: str) -> dict[str, Any] | None:
    """The action in one candidate object, None when it names no tool.

    Raises:
        ModelOutputError: it names a tool but its "tool" or "args" is unusable.
    """
    obj = _loads(candidate)
    if not isinstance(obj, dict):
        return None
    tool = obj.get("tool") or obj.get("action") or obj.get("name")
    if not isinstance(tool, str):
        return None
    if not tool.strip():
        raise ModelOutputError('"tool" is blank; name one of the tools')
    key = next((k for k in ("args", "arguments", "parameters") if k in obj), None)
    if key is None:  # the flat form {"tool": ..., "query": ...}
        args = {k: v for k, v in obj.items() if k not in ("tool", "action", "name", "thought", "reason")}
    else:  # "args": null means no arguments, not an argument named "args"
        args = {} if obj[key] is None else obj[key]
    if isinstance(args, str):
        args = _loads(args) or {}
    if not isinstance(args, dict):
        raise ModelOutputError(f'"args" must be an object, got {type(args).__name__}')
    return {"tool": tool.strip(), "args": args}


def parse_action(text: str) -> dict[str, Any]:
    """Extract the first JSON object with a "tool" (or "action") key from a model reply.

    Returns:
        {"tool": str, "args": dict}
    Raises:
        ModelOutputError: no usable object; the message says what was wrong, to be fed back to the model.
    """
    visible = _visible(text)
    candidates = [m.strip() for m in _FENCE.findall(visible)] + _balanced_objects(visible)
    if not candidates and "<think>" in text and not visible.strip():
        raise ModelOutputError("the reply was all reasoning (<think> never closed): think briefly, then reply "
                               "with the JSON object")
    if not candidates:
        raise ModelOutputError('no JSON object found; reply with one object like {"tool": "...", "args": {...}}')
    problems = []
    for cand in candidates:
        try:
            action = _action(cand)
        except ModelOutputError as e:
            problems.append(str(e))
        # Model text is untrusted: whatever the decoders raise on it ({{...}} makes ast build a set of dicts, deep
        # nesting overflows json's recursion) is the model's mistake to be fed back, never a crash of the loop.
        except Exception as e:  # noqa: BLE001
            problems.append(f"unreadable object ({type(e).__name__}: {str(e)[:80]})")
        else:
            if action is not None:
                return action
    if problems:
        raise ModelOutputError(problems[0])
    raise ModelOutputError('found JSON but no "tool" key; reply like {"tool": "search_episodic", "args": {...}}')


# -- which option an answer names ------------------------------------------------------------------------------
_INDEX = re.compile(r"\(?\s*([0-9]{1,3}|[A-Ja-j])\s*[).:]?")  # a whole value: "1", "B", "(b)", "B." (<= 3 digits)
# "Answer: C", "the answer is (B)", "option B"; a lowercase letter only at the end ("answer: b"), never "answer is a"
_NAMED = re.compile(r"(?i:answer|option|choice)(?:\s+is)?\s*[:=]?\s*\(?(?:([A-J])\b|([a-j])(?=[).]?\s*$))")
_LEADING = re.compile(r"^\(?([A-Ja-j])[).:]\s")  # "B) pineapple", "(b) ...", "C. because"
_PAREN = re.compile(r"\(([A-J])\)")


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def _options_named(text: str, options: list[str]) -> set[int]:
    """Options whose text occurs in ``text`` as whole words; of two nested ones ("balloon", "red balloon") the
    longer, so naming one option is not read as naming both."""
    padded = f" {_norm(text)} "
    found = [i for i, o in enumerate(options) if _norm(o) and f" {_norm(o)} " in padded]
    return {i for i in found if not any(j != i and f" {_norm(options[i])} " in f" {_norm(options[j])} "
                                        for j in found)}


def option_index(value: Any, options: list[str]) -> int | None:
    """The 0-based option that ``value`` (an answer's "choice", or its "text") names, or None.

    An int or a digit string is the index the prompt shows; a letter A-J is the label people and benchmarks use,
    also inside "Answer: C", "B) pineapple" or "option (B)"; otherwise the option whose text the value contains.
    True is not option 1, 1.9 or NaN is malformed (not to be rounded), and a value that names several options
    ("B and C", "apple, not pineapple") names none: the caller falls back instead of guessing.
    """
    n = len(options)
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return value if 0 <= value < n else None
    if not isinstance(value, str):
        return None
    text = re.sub(r"[*`]", "", value).strip()  # markdown emphasis: "**B**"
    if m := _INDEX.fullmatch(text):
        label = m.group(1)
        i = int(label) if label.isdigit() else ord(label.upper()) - ord("A")
        if 0 <= i < n:
            return i
    letters = [a or b for a, b in _NAMED.findall(text)] + _LEADING.findall(text) + _PAREN.findall(text)
    picks = {ord(c.upper()) - ord("A") for c in letters} | _options_named(text, options)
    return picks.pop() if len(picks) == 1 and 0 <= min(picks) < n else None
