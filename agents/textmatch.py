"""Small lexical helpers for evidence scoring: tokens without stop words, numbers spoken or written alike.

Words are letters and digits of any script ("café", "Zürich", "नमस्ते"), as memory's tokenizer reads them; runs of
a script written without spaces (Chinese, Japanese, Thai, ...) become overlapping character bigrams, so a word
inside a run ("タワー" in "東京タワーは夜に光る") is covered without a dictionary.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from videomind.memory.text import UNSPACED_RUN

STOP = frozenset(
    "a an the is are was were be been of to in on at for and or but with by from as that this these those it its "
    "what which who whom when where why how does did do done has have had can could would should will shall may "
    "might must not no yes there their they them he she his her we our you your i me my mine than then so such "
    "into onto about over under after before during while video said say says shown show shows screen "
    # the commonest function words of German, French, Spanish, Italian and Portuguese ('die', 'den', 'war', 'son'
    # are left out: English content words)
    "der das dem des ein eine einer einem einen und oder ist sind im am zum zur von mit auf für nicht wer wie wo "
    "le la les un une du et ou est sont au aux dans pour par sur qui que quoi ce cette il elle nous vous je "
    "el los las una y es del al en por para con qué lo il gli della di che è os um uma do da em não".split()
)
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
        "seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD_VALUE = {w: i for i, w in enumerate(_ONES)} | {w: 10 * i for i, w in enumerate(_TENS) if w != "_"}

@functools.cache
def _word_re() -> re.Pattern:
    """memory/text.py's letters and digits (``[^\\W_]``) plus combining marks inside a word: Python's ``\\w``
    leaves out the vowel signs and viramas of Indic scripts and Thai ("नमस्ते" would be "नमस", "त"). Hyphens
    and apostrophes separate words here ("fifty-eight", "l'hôtel"). Built on first use (a scan of the
    first two planes, ~0.2 s)."""
    marks, start, prev = [], None, None
    for cp in range(0x20000):
        if unicodedata.category(chr(cp))[0] == "M" and not chr(cp).isalnum():
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            marks.append(f"{chr(start)}-{chr(prev)}")
            start = None
    cls = "".join(marks)
    return re.compile(f"[^\\W_](?:[^\\W_]|[{cls}])*")


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


def _split_unspaced(words: list[str]) -> list[str]:
    """Each run of an unspaced script becomes its overlapping bigrams (a run of one character stays itself);
    the other parts of a word that mixes scripts stay words ("iphone手机" -> "iphone", "手机")."""
    out: list[str] = []
    for w in words:
        if not UNSPACED_RUN.search(w):
            out.append(w)
            continue
        pos = 0
        for m in UNSPACED_RUN.finditer(w):
            if m.start() > pos:
                out.append(w[pos:m.start()])
            run = m.group()
            out += [run[i:i + 2] for i in range(len(run) - 1)] or [run]
            pos = m.end()
        if pos < len(w):
            out.append(w[pos:])
    return out


def tokens(text: str) -> list[str]:
    """Lower-case content tokens of any script; numbers, written or spelled out in English, become one token of
    digits; unspaced scripts become character bigrams. Text is NFKC-normalised first, so composed and decomposed
    accents and full-width digits ("４２") read alike."""
    words = _word_re().findall(unicodedata.normalize("NFKC", text).casefold())
    return [w for w in _split_unspaced(_merge_number_words(words)) if w not in STOP]


def coverage(needle: str, haystack: str) -> float:
    """Fraction of the needle's content tokens that occur in the haystack (0 when the needle has none).

    A needle token that is a single character of an unspaced script ("京") counts when the haystack has that
    character anywhere in such a run (the haystack's tokens are bigrams)."""
    n = _token_set(needle)
    if not n:
        return 0.0
    hay = _token_set(haystack)
    return sum(t in hay or (len(t) == 1 and UNSPACED_RUN.match(t) is not None and any(t in h for h in hay))
               for t in n) / len(n)


@functools.lru_cache(maxsize=8192)
def _token_set(text: str) -> frozenset[str]:
    """tokens() as a set, cached: the scorer matches every option against every evidence row."""
    return frozenset(tokens(text))
