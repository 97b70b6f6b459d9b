"""Times written in questions and options: "at 12:30", "between 1:00 and 2:30", "after 1:00 but before 2:00",
"in the first 5 minutes", "in the second half", "(B) 00:15:23-00:16:10".

A planning model reads these itself and passes t0/t1 to the tools; the heuristic policy cannot, so without this a
question about "what is shown at 12:30" was answered from whichever moment best matched its words. Clock times
are video times (m:ss, h:mm:ss, mm:ss.s); "3:00 pm" is a time of day, not a video time, and is ignored.

A question may name several times ("what is shown at 1:30 and at 4:00?", "at 0:45 and between 2:00 and 2:30"):
each is a window of its own, so the evidence of every moment named is searched where it is.
"""

from __future__ import annotations

import re

_CLOCK = r"(?<![\d:.])(\d{1,2}(?::\d{2}){1,2}(?:\.\d+)?)(?!\s*[ap]\.?m\b)(?!:?\d)"
_UNIT = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60, "minute": 60,
         "minutes": 60, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600}
_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10, "fifteen": 15,
          "twenty": 20, "thirty": 30}


def _alternatives(words) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


# "5 minutes", "90s", "two hours", "half an hour" and "the first minute" (no number: one). A number in words takes
# a whole unit word after a space: "first as the guests arrived" is not "the first 1 s".
_AMOUNT = (rf"(?:(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>{_alternatives(_UNIT)})"
           rf"|(?P<word>{_alternatives(_WORDS)})\s+(?P<word_unit>{_alternatives(u for u in _UNIT if len(u) > 1)})"
           rf"|(?P<half>half\s+(?:an\s+)?hour)|(?P<bare>second|minute|hour))\b")
_UNTIL_END = r"(?:\s+(?:on|onwards?|forward)\b|\s+(?:to|until|till)\s+the\s+end\b)"

_TO = r"(?:-|–|—|\bto\b|\buntil\b)"
# "and" joins the ends of a range only after "between": "between 2:10 and 7:45" is the span from one to the other
# (what changes between them happens in it), "at 1:30 and 4:00" two moments
_RANGE = re.compile(rf"(?:\bbetween\s+{_CLOCK}\s*(?:{_TO}|\band\b)|(?:\bfrom\s+)?{_CLOCK}\s*{_TO})\s*{_CLOCK}", re.I)
# "at 1:30", and the times listed after it: "at 0:45, 2:10 and at 3:00", "around 1:00 or 1:20"
_AT = re.compile(rf"\b(?:at|around|near|about)\s+(?:the\s+)?(?:time\s+|timestamp\s+|moment\s+)?{_CLOCK}"
                 rf"(?:\s*(?:,\s*(?:and\b|or\b)?|\band\b|\bor\b)\s*(?:at\s+)?{_CLOCK})*", re.I)
_CLOCKS = re.compile(_CLOCK)
# "at 90 seconds", "at minute 3", "at the 5-minute mark": a moment given as an amount of time into the video
_AT_AMOUNT = re.compile(r"\bat\s+(?:(\d+(?:\.\d+)?)\s*(seconds?|secs?|minutes?|mins?)(?!\s+(?:later|earlier|"
                        r"before|after|ago|long))\b|(minute|second)\s+(\d+(?:\.\d+)?)\b)", re.I)
_MARK = re.compile(r"\b(\d+(?:\.\d+)?)[\s-]*(second|minute|hour)s?\s+mark\b", re.I)
_AFTER = re.compile(rf"\b(?:after|since|past)\s+{_CLOCK}|\bfrom\s+{_CLOCK}{_UNTIL_END}", re.I)
_BEFORE = re.compile(rf"\b(?:before|until|till|up\s+to|by)\s+{_CLOCK}", re.I)
_FIRST = re.compile(rf"\b(?:first|opening|initial)\s+{_AMOUNT}", re.I)
_LAST = re.compile(rf"\b(?:last|final|closing)\s+{_AMOUNT}", re.I)
_AFTER_AMOUNT = re.compile(rf"\bafter\s+(?:the\s+first\s+)?{_AMOUNT}", re.I)
_HALF = re.compile(r"\b(first|second|last|latter|final)\s+half\b(?!\s+(?:an\s+)?hour)", re.I)
_OPTION_SPAN = re.compile(rf"^\W*(?:\(?[A-J][).:]\s*)?(?:at\s+|from\s+)?{_CLOCK}\s*(?:(?:-|–|—|to)\s*{_CLOCK})?\W*$",
                          re.I)
_BOUNDS = (_AFTER, _BEFORE, _AFTER_AMOUNT, _FIRST, _LAST, _HALF)
_PHRASES = (_RANGE, _AT, _AT_AMOUNT, _MARK) + _BOUNDS

AT_PAD = 15.0  # "at 12:30": the clip-scale moments around it (clips are ~10 s)

Window = tuple[float | None, float | None]


def clock_seconds(text: str) -> float:
    """ "12:30" -> 750, "1:02:03" -> 3723, "00:00:07.5" -> 7.5."""
    parts = [float(p) for p in text.split(":")]
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def _amount(m: re.Match) -> float:
    """Seconds of an _AMOUNT match."""
    if m["bare"]:
        return float(_UNIT[m["bare"].lower()])
    if m["half"]:
        return 1800.0
    if m["word"]:
        return _WORDS[m["word"].lower()] * _UNIT[m["word_unit"].lower()]
    return float(m["number"]) * _UNIT[m["unit"].lower()]


def _moment(t: float) -> Window:
    return (max(t - AT_PAD, 0.0), t + AT_PAD)


def _bounds(question: str, end: float | None) -> tuple[float | None, float | None]:
    """The lower and upper bound a question sets apart ("after 1:00", "before 2:00", "after the first minute",
    "from 2:00 onwards", "in the second half"); both may be set ("after 1:00 but before 2:00")."""
    lower = upper = None
    if m := _AFTER.search(question):
        lower = clock_seconds(m.group(1) or m.group(2))
    elif m := _AFTER_AMOUNT.search(question):  # before _FIRST: "after the first minute"
        lower = _amount(m)
    if m := _BEFORE.search(question):
        upper = clock_seconds(m.group(1))
    if lower is None and upper is None:
        if m := _FIRST.search(question):
            lower, upper = 0.0, _amount(m)
        elif (m := _LAST.search(question)) and end:
            lower, upper = max(end - _amount(m), 0.0), end
        elif (m := _HALF.search(question)) and end:
            lower, upper = (0.0, end / 2) if m.group(1).lower() == "first" else (end / 2, end)
    return lower, upper


def _range(m: re.Match) -> list[Window]:
    a, b = sorted(clock_seconds(t) for t in m.groups() if t)
    return [(a, b)]


def _at(m: re.Match) -> list[Window]:
    """Each time an _AT phrase lists: "at 0:45, 2:10 and 3:00" is three moments."""
    return [_moment(clock_seconds(t)) for t in _CLOCKS.findall(m.group(0))]


def _at_amount(m: re.Match) -> list[Window]:
    if m.group(1):
        return [_moment(float(m.group(1)) * _UNIT[m.group(2).lower()])]
    return [_moment(float(m.group(4)) * _UNIT[m.group(3).lower()])]


def _mark(m: re.Match) -> list[Window]:
    return [_moment(float(m.group(1)) * _UNIT[m.group(2).lower()])]


_NAMED = ((_RANGE, _range), (_AT, _at), (_AT_AMOUNT, _at_amount), (_MARK, _mark))  # ranges first: see _named_times


def _blanked(text: str, patterns) -> str:
    """``text`` with the phrases of ``patterns`` (in turn) replaced by as many spaces, so the rest keeps its
    positions."""
    for pattern in patterns:
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return text


def _named_times(question: str) -> list[tuple[int, Window]]:
    """Each range and moment a question names, as (where it is named, window). Every phrase is read once, ranges
    first: in "at 1:00 until 1:30" the 1:00 starts the range and is no moment of its own."""
    found, rest = [], question
    for pattern, read in _NAMED:
        found += [(m.start(), w) for m in pattern.finditer(rest) for w in read(m)]
        rest = _blanked(rest, [pattern])
    return found


def _bounds_window(text: str, end: float | None) -> tuple[int, Window] | None:
    """The one window the bounds of ``text`` set (see _bounds), with where its first phrase is; None without a
    bound, or where the bounds leave no span ("after 2:00 and before 1:00": not a reading to confine a search to)."""
    lower, upper = _bounds(text, end)
    if (lower is None and upper is None) or (lower is not None and upper is not None and upper <= lower):
        return None
    return min(m.start() for p in _BOUNDS if (m := p.search(text))), (lower, upper)


def question_windows(question: str, end: float | None = None) -> list[Window]:
    """The spans of the video a question points at, each (t0, t1) with either end None for open, in the order the
    question names them, each once; [] when it names no time. A moment ("at 12:30", "at 90 seconds", "at the
    5-minute mark") is the AT_PAD seconds either side of it; "at 1:30 and 4:00" is two of them, "between 2:10
    and 7:45" one range. The bounds a question sets ("after 1:00 but before 2:00", "in the first 5 minutes")
    make one window. ``end`` is where the readable video ends when known (its duration, or the answer-as-of
    time, or how far a recording still being followed has been ingested): "the last 5 minutes" and "the second
    half" are read from it, and a window starting after it is no video time ("at 12:30" of a 5-minute video is
    a time of day), so it is left out."""
    named = _named_times(question)
    if bounds := _bounds_window(_blanked(question, [p for p, _ in _NAMED]), end):
        named.append(bounds)
    windows = [w for _, w in sorted(named, key=lambda n: n[0])]
    return [w for w in dict.fromkeys(windows) if not (end and w[0] is not None and w[0] >= end)]


def without_times(question: str) -> str:
    """The question with the time phrases removed, for reading the rest of it: in "what is said after 3:20?" the
    "after" is no question about order."""
    for pattern in _PHRASES:
        question = pattern.sub(" ", question)
    return " ".join(question.split())


def option_span(option: str) -> tuple[float, float] | None:
    """The span an option names when it is only a time or a time range ("00:15:23-00:16:10", "(B) 2:05",
    "from 1:00 to 1:30"), else None. A single time is a moment (t, t)."""
    m = _OPTION_SPAN.match(option.strip())
    if not m:
        return None
    a = clock_seconds(m.group(1))
    b = clock_seconds(m.group(2)) if m.group(2) else a
    return (min(a, b), max(a, b))
