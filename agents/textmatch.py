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


def number_words(n: int) -> str:
    """0..999 as English words ('42' -> 'forty two'), so '42' on screen matches 'forty-two' in speech."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    rest = n % 100
    return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))


def tokens(text: str) -> list[str]:
    """Lower-case content tokens; numbers below 1000 are spelled out."""
    out: list[str] = []
    for tok in re.findall(r"[a-z0-9]+", text.lower().replace("-", " ")):
        if tok.isdigit() and len(tok) <= 3:
            out.extend(number_words(int(tok)).split())
        elif tok not in STOP:
            out.append(tok)
    return out


def coverage(needle: str, haystack: str) -> float:
    """Fraction of the needle's content tokens that occur in the haystack (0 when the needle has none)."""
    n = set(tokens(needle))
    if not n:
        return 0.0
    return len(n & set(tokens(haystack))) / len(n)
