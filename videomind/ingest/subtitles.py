"""Subtitles -> TimedText(source="subtitle"): embedded text streams (mov_text, SubRip, WebVTT, ASS/SSA) via PyAV,
and sidecar ``.srt`` / ``.vtt`` files next to the video (``talk.mp4`` -> ``talk.srt``, ``talk.en.vtt``, ...).

Only one subtitle track is used (several tracks are usually translations or duplicates): the sidecar when there is
one, else the first text stream whose language matches ``language`` (default English), else the first text stream.
Bitmap subtitles (PGS, DVB) carry no text and are skipped.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from videomind.ingest.probe import open_container, start_offset
from videomind.types import VIDEO_SUFFIXES, TimedText

logger = logging.getLogger(__name__)

TEXT_CODECS = {"mov_text", "subrip", "srt", "webvtt", "ass", "ssa", "text"}
_TAG = re.compile(r"\{[^}]*\}|<[^>]+>")
_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")
SIDECAR_SUFFIXES = (".srt", ".vtt")
# The language part of a sidecar's name: a 2-3 letter code with up to two script/region subtags (en-US, pt_BR,
# zh-Hans, es-419), then optionally the kind of track as media servers name it (en.forced, en.sdh).
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:[-_](?:[a-z]{4}|[a-z]{2}|\d{3})){0,2}(?:\.(?:forced|sdh|cc|hi))?", re.I)


def clean(text: str) -> str:
    """Drop ASS override blocks ``{\\...}`` and HTML-ish tags, turn ``\\N`` into spaces, squeeze whitespace."""
    text = _TAG.sub("", text.replace("\\N", " ").replace("\\n", " ").replace("\\h", " "))
    return " ".join(text.split())


def _ass_text(line: str) -> str:
    # libavcodec hands subtitles over as ASS events: ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text
    return line.split(",", 8)[8] if line.count(",") >= 8 else line


def pick_stream(container, language: str | None = "eng") -> int | None:
    """Index (within ``container.streams``) of the subtitle stream to use, or None."""
    cands = [s for s in container.streams.subtitles if s.codec_context.name in TEXT_CODECS]
    if not cands:
        return None
    lang = (language or "").lower()[:2]
    for s in cands:
        if lang and (s.metadata.get("language") or "").lower().startswith(lang):
            return s.index
    return cands[0].index


def read_embedded(path: str | os.PathLike, language: str | None = "eng") -> list[TimedText]:
    """All cues of the chosen embedded text subtitle stream, in time order (demuxes the subtitle stream only)."""
    import av

    out: list[TimedText] = []
    with open_container(path) as c:
        idx = pick_stream(c, language)
        if idx is None:
            return []
        st = c.streams[idx]
        offset = start_offset(c)
        try:
            for packet in c.demux(st):
                if packet.pts is None or packet.size == 0:
                    continue
                start = max(0.0, float(packet.pts * st.time_base) - offset)
                dur = float(packet.duration * st.time_base) if packet.duration else 0.0
                for sub in st.decode(packet):
                    rects = sub if hasattr(sub, "__iter__") else [sub]  # PyAV < 14 yields SubtitleSets
                    for r in rects:
                        raw = getattr(r, "ass", b"") or getattr(r, "text", b"") or b""
                        raw = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
                        text = clean(_ass_text(raw) if getattr(r, "ass", None) else raw)
                        if text:
                            out.append(TimedText(round(start, 3), round(start + (dur or 2.0), 3), text, "subtitle",
                                                 None, {"stream": idx, "codec": st.codec_context.name}))
        except av.error.FFmpegError as e:  # a damaged tail: keep the cues read so far
            logger.warning("subtitle stream of %s stopped early: %s", path, e)
    return sorted(out, key=lambda s: s.start)


def _ts(s: str) -> float:
    m = _TIME.search(s)
    if not m:
        raise ValueError(s)
    h, mi, se, frac = m.groups()
    return int(h or 0) * 3600 + int(mi) * 60 + int(se) + int(frac.ljust(3, "0")) / 1000


def parse_srt_vtt(text: str) -> list[TimedText]:
    """Cues of an SRT or WebVTT document (numbering, WEBVTT header, NOTE/STYLE blocks and cue settings ignored)."""
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")):
        lines = [ln for ln in block.strip().split("\n") if ln.strip()]
        arrow = next((i for i, ln in enumerate(lines) if "-->" in ln), None)
        if arrow is None:
            continue
        a, _, b = lines[arrow].partition("-->")
        try:
            start, end = _ts(a), _ts(b)
        except ValueError:
            continue
        body = clean(" ".join(lines[arrow + 1:]))
        if body:
            out.append(TimedText(round(start, 3), round(end, 3), body, "subtitle", None, {"sidecar": True}))
    return sorted(out, key=lambda s: s.start)


def find_sidecar(video: str | os.PathLike) -> Path | None:
    """``<stem>.srt`` / ``<stem>.vtt`` next to the video, else ``<stem>.<language>.srt`` / ``.vtt`` (English
    preferred): ``talk.en.srt``, ``talk.eng.srt``, ``talk.pt-BR.vtt``, ``talk.zh-Hans.srt``, ``talk.en.forced.srt``.

    The middle part must be a language tag, and no video beside it may have that longer stem: ``talk.encore.srt``,
    or ``Webb.part2.srt`` beside ``Webb.part2.mp4``, belongs to another video, and taking it replaced this video's
    own (embedded) subtitles with that one's."""
    p = Path(video)
    found = next((c for c in (p.with_suffix(ext) for ext in SIDECAR_SUFFIXES) if c.is_file()), None)
    if found is not None:
        return found
    try:
        siblings = list(p.parent.iterdir())
    except OSError:
        return None
    videos = {c.stem for c in siblings if c.suffix.lower() in VIDEO_SUFFIXES}
    prefix = p.stem + "."
    tagged = []
    for c in siblings:
        if c.suffix not in SIDECAR_SUFFIXES or not c.name.startswith(prefix):
            continue
        middle = c.name[len(prefix):-len(c.suffix)]
        parts = middle.split(".")
        stems = {prefix + ".".join(parts[:k]) for k in range(1, len(parts) + 1)}  # talk.en, talk.en.forced
        if not _LANGUAGE.fullmatch(middle) or stems & videos:
            continue
        if c.is_file():
            tagged.append((not middle.lower().startswith("en"), SIDECAR_SUFFIXES.index(c.suffix), c.name, c))
    return min(tagged)[-1] if tagged else None


def read_subtitles(video: str | os.PathLike, language: str | None = "eng") -> list[TimedText]:
    """The sidecar's cues when there is one, else the embedded stream's; [] when neither (or unreadable)."""
    side = find_sidecar(video)
    if side is not None:
        try:
            cues = parse_srt_vtt(side.read_text(encoding="utf-8", errors="replace"))
            if cues:
                return cues
        except OSError as e:
            logger.warning("cannot read subtitle file %s: %s", side, e)
    return read_embedded(video, language)
