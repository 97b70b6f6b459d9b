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


def without_thinking(text: str) -> str:
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
    visible = without_thinking(text)
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
# One reader for the agent's answer and for benchmark replies (eval.benchmarks.base.extract_choice), so a fix to
# one reaches both. The patterns run on the value without markdown emphasis; labels are A-J (ten options at most).
_DIGITS = re.compile(r"\(?\s*([0-9]{1,3})\s*[).:]?")  # a whole value that is an index: "1", "(1)", "2." (<= 3 digits)
# "Answer: C", "the answer is (B)", "the answer is option B"; a lowercase letter only at the end ("answer: b"),
# never "answer is a"
_ANSWER_IS = re.compile(
    r"(?i:answer|option|choice)(?:\s+is)?\s*[:=]?\s*(?:(?i:option)\s*)?\(?([A-J]\b|[a-j](?=[).]?\s*$))")
_PAREN = re.compile(r"\(([A-Ja-j])\)")  # "(B)" anywhere
_LEADING = re.compile(r"^\(?\s*([A-Ja-j])(?:\s*[).:,]|\s*$|\s+-)")  # "B", "(b)", "B) pineapple", "C. because", "D - "
# any capital letter written as an option label: "(B)", "B)", "B.", "B:", "B," or last; "A man" is an article
_LABEL = re.compile(r"(?<![\w'])\(?([A-J])(?:\)|[.:,;](?!\w)|\s*$)")


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def _options_named(text: str, options: list[str]) -> set[int]:
    """Options whose text occurs in ``text`` as whole words; of two nested ones ("balloon", "red balloon") the
    longer, so naming one option is not read as naming both."""
    padded = f" {_norm(text)} "
    found = [i for i, o in enumerate(options) if _norm(o) and f" {_norm(o)} " in padded]
    return {i for i in found if not any(j != i and f" {_norm(options[i])} " in f" {_norm(options[j])} "
                                        for j in found)}


def option_index(value: Any, options: list[str], *, digits_are_indices: bool = True) -> int | None:
    """The 0-based option that ``value`` (the agent's "choice" or "text", or a benchmark's free-text reply) names.

    In order: an int is an index; a value that is one option's text as a whole is that option (before letters: an
    option may itself be "A"); a stated answer ("Answer: C", "the answer is option (B)") is the answer even when the
    reply goes on to mention others ("The answer is B, not A"); a label ("B", "(b)", "B) pineapple") or the text of
    one option inside the value counts only when nothing else in it names another option. A value that names several
    ("B and C", "(A) or (B)", "B) apple", "apple, not pineapple", the options restated) names none, and True is not
    option 1, 1.9 or NaN is malformed (not to be rounded): the caller falls back, or scores it wrong, never guesses.

    Args:
        value: what to read; anything that is not an int, an integral float or a str names nothing.
        options: the option texts in the order shown.
        digits_are_indices: whether a value that is only a number ("2", "(2)", "2.") is the 0-based index. The agent
            prompt lists options as "0. apple", so for the agent it is; a benchmark reply "2" may count from 1 as
            people do, so extract_choice passes False and a number is then only an option's text ("2 dogs").
    Returns:
        the index, or None when the value names no option or several.
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
    text = re.sub(r"[*`]", "", value).strip()  # markdown emphasis: "**B**", "`C`"
    if digits_are_indices and (m := _DIGITS.fullmatch(text)) and int(m.group(1)) < n:
        return int(m.group(1))
    exact = [i for i, o in enumerate(options) if _norm(o) and _norm(o) == _norm(text)]
    if len(exact) == 1:
        return exact[0]

    def named(letters: list[str]) -> set[int]:  # a letter past the last option is a word ("I think"), not a label
        return {i for i in (ord(c.upper()) - ord("A") for c in letters) if i < n}

    if stated := named(_ANSWER_IS.findall(text)):
        return stated.pop() if len(stated) == 1 else None
    picks = named(_PAREN.findall(text) + _LEADING.findall(text))
    if picks:  # one label in use: any other written as a label is a second option named ("A) Paris\nB) London")
        picks |= named(_LABEL.findall(text))
    picks |= _options_named(text, options)
    return picks.pop() if len(picks) == 1 else None
