"""Subtitles: embedded mov_text / SubRip / WebVTT / ASS streams and sidecar .srt / .vtt files."""

from __future__ import annotations

import pytest

from tests.ingest.conftest import ffmpeg
from videomind.ingest.subtitles import clean, find_sidecar, parse_srt_vtt, read_embedded, read_subtitles

SRT = """1
00:00:00,500 --> 00:00:02,000
Hello <i>there</i>,
general

2
00:00:02,500 --> 00:00:04,250
{\\an8}The password is swordfish.
"""

VTT = """WEBVTT

NOTE a comment

intro
00:00.500 --> 00:02.000 align:start
Hello there

00:00:02.500 --> 00:00:04.250
The password is <b>swordfish</b>.
"""


def test_parse_srt_and_vtt():
    for doc in (SRT, VTT):
        cues = parse_srt_vtt(doc)
        assert [(c.start, c.end) for c in cues] == [(0.5, 2.0), (2.5, 4.25)]
        assert cues[1].text == "The password is swordfish." and cues[1].source == "subtitle"
    assert parse_srt_vtt(SRT)[0].text == "Hello there, general"
    assert parse_srt_vtt("garbage\n\nmore garbage") == []


def test_clean():
    assert clean("{\\i1}Hi{\\i0}\\Nthere  <font color=red>you</font>") == "Hi there you"


def test_nasa_embedded_mov_text(nasa):
    cues = read_embedded(nasa)
    assert len(cues) == 4 and cues[0].start == pytest.approx(0.21) and cues[0].end == pytest.approx(4.26)
    assert cues[2].text == "at NASA\u2019s Goddard Space Flight Center in Greenbelt, Maryland."
    assert cues[0].meta["codec"] == "mov_text"


@pytest.mark.parametrize("codec,ext", [("srt", "mkv"), ("webvtt", "mkv"), ("ass", "mkv"), ("mov_text", "mp4")])
def test_embedded_codecs(tmp_path, codec, ext):
    srt = tmp_path / "in.srt"
    srt.write_text(SRT)
    out = tmp_path / f"v.{ext}"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=160x120:rate=5:d=5", "-i", str(srt), "-map", "0", "-map", "1",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:s", codec, str(out))
    cues = read_embedded(out)
    assert [c.text for c in cues] == ["Hello there, general", "The password is swordfish."], codec
    assert cues[1].start == pytest.approx(2.5, abs=0.02) and cues[1].end == pytest.approx(4.25, abs=0.02)


def test_sidecar_wins_over_embedded(tmp_path, nasa):
    video = tmp_path / "talk.mp4"
    video.symlink_to(nasa)
    assert find_sidecar(video) is None
    assert len(read_subtitles(video)) == 4
    (tmp_path / "talk.en.vtt").write_text(VTT)
    assert find_sidecar(video) == tmp_path / "talk.en.vtt"
    assert [c.text for c in read_subtitles(video)][-1] == "The password is swordfish."


@pytest.mark.parametrize("names, found", [
    (["talk.en.srt"], "talk.en.srt"),
    (["talk.eng.srt"], "talk.eng.srt"),
    (["talk.pt_BR.srt"], "talk.pt_BR.srt"),
    (["talk.zh-Hans.vtt"], "talk.zh-Hans.vtt"),
    (["talk.es-419.srt", "talk.en-US.vtt"], "talk.en-US.vtt"),   # English first
    (["talk.en.forced.srt"], "talk.en.forced.srt"),
    (["talk.encore.srt"], None),                                 # another video's (talk.encore.mp4, elsewhere)
    (["talk.part2.srt", "talk.part2.mp4"], None),
    (["talk.fr.srt", "talk.fr.mkv"], None),                      # a language tag, but that video's own
    (["talk.en.sdh.srt", "talk.en.mp4", "talk.de.vtt"], "talk.de.vtt"),
])
def test_a_sidecar_is_the_video_stem_and_a_language(tmp_path, nasa, names, found):
    """``<stem>.<anything>.srt`` was taken as the sidecar: beside Webb.mp4, Webb.part2.srt (of Webb.part2.mp4)
    replaced Webb's own embedded subtitles with Webb.part2's."""
    video = tmp_path / "talk.mp4"
    video.symlink_to(nasa)
    for name in names:
        if name.endswith((".srt", ".vtt")):
            (tmp_path / name).write_text(VTT if name.endswith(".vtt") else SRT)
        else:
            (tmp_path / name).symlink_to(nasa)
    assert find_sidecar(video) == (tmp_path / found if found else None)
    texts = [c.text for c in read_subtitles(video)]
    assert texts[-1] == "The password is swordfish." if found else len(texts) == 4  # else its own, embedded
