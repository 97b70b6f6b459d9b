"""Small lexical helpers for evidence scoring: tokens without stop words, numbers spoken or written alike."""

from __future__ import annotations

import re

STOP = frozenset(
    "a an the is are was were be been of to in on at for and or but with by from as that this these those it its "
    "what which who whom when where why how does did do done has have had can could would should will shall may "
    "might must not no yes there their they them he she his her we our you your i me my mine than then so such "
    "into onto about over under after before during while video said say says shown show shows screen".split()
)
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
        "seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


_WORD_VALUE = {w: i for i, w in enumerate(_ONES)} | {w: 10 * i for i, w in enumerate(_TENS) if w != "_"}


def _merge_number_words(words: list[str]) -> list[str]:
    """'fifty', 'eight' -> '58' and 'three hundred two' -> '302', so spoken and written numbers are one token
    (two numbers that share a word, like 58 and 38, must not half-match)."""
    out: list[str] = []
    i = 0
    while i < len(words):
        if words[i] not in _WORD_VALUE:
            out.append(words[i])
            i += 1
            continue
        value = _WORD_VALUE[words[i]]
        i += 1
        if i < len(words) and words[i] == "hundred":
            value *= 100
            i += 1
            if i < len(words) and words[i] in _WORD_VALUE and _WORD_VALUE[words[i]] < 100:
                value += _WORD_VALUE[words[i]]
                i += 1
        if value % 10 == 0 and 20 <= value % 100 and i < len(words) and words[i] in _WORD_VALUE \
                and 0 < _WORD_VALUE[words[i]] < 10:
            value += _WORD_VALUE[words[i]]
            i += 1
        out.append(str(value))
    return out


def tokens(text: str) -> list[str]:
    """Lower-case content tokens; numbers, written or spelled out, become one token of digits."""
    words = re.findall(r"[a-z0-9]+", text.lower().replace("-", " "))
    return [w for w in _merge_number_words(words) if w not in STOP]


def coverage(needle: str, haystack: str) -> float:
    """Fraction of the needle's content tokens that occur in the haystack (0 when the needle has none)."""
    n = set(tokens(needle))
    if not n:
        return 0.0
    return len(n & set(tokens(haystack))) / len(n)
