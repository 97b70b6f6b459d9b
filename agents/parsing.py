"""Robust parsing of JSON actions from small or chatty models.

Accepts fenced blocks, leading/trailing prose, single quotes, Python literals (True/None) and trailing commas.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from videomind.errors import ModelOutputError

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


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
        return ast.literal_eval(cleaned)
    except (ValueError, SyntaxError):
        return None


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
    candidates = [m.strip() for m in _FENCE.findall(text)] + _balanced_objects(text)
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
