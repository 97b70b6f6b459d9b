"""Multi-scale roll-up: spans tile the video, boundaries follow shot cuts, streaming equals batch."""

from __future__ import annotations

import pytest

from tests.memory.conftest import HashEmbedder, info_for, make_stream
from videomind.config import Config
from videomind.memory.episodic import plan_clips, plan_groups
from videomind.memory.library import Library
from videomind.types import Chunk


def tiles(events, start, end):
    assert events[0]["start"] == pytest.approx(start) and events[-1]["end"] == pytest.approx(end)
    for a, b in zip(events, events[1:]):
        assert a["end"] == pytest.approx(b["start"])


def test_rollup_spans(built_store):
    _, mem, _, shots = built_store
    cfg = mem.config
    cuts = [s.start for s in shots[1:]]
    clips, segs, chaps = (mem.events(s) for s in ("clip", "segment", "chapter"))
    for evs in (clips, segs, chaps):
        tiles(evs, 0.0, 600.0)
    for c in clips[:-1]:
        assert 0.5 * cfg.clip_seconds - 1e-6 <= c["end"] - c["start"] <= 1.5 * cfg.clip_seconds + 1e-6
    for s in segs[:-1]:
        assert 0.75 * cfg.segment_seconds - 1e-6 <= s["end"] - s["start"] <= 1.25 * cfg.segment_seconds + 1e-6
    assert 1 < len(chaps) < len(segs) < len(clips)
    # every clip/segment/chapter has a parent except chapters; children tile their parent exactly
    for parent in segs + chaps:
        kids = mem.children(parent["id"])
        assert kids and kids[0]["start"] == parent["start"] and kids[-1]["end"] == parent["end"]
        assert parent["n_children"] == len(kids)
    assert all(c["parent"] is not None for c in clips + segs)
    # clip ends snap to a shot cut when one lies in the window
    on_cut = sum(any(abs(c["end"] - x) < 1e-6 for x in cuts) for c in clips)
    assert on_cut >= len(cuts) - 2
    # events carry text, keyframes and a summary
    with_needle = [s for s in segs if "pineapple" in s["transcript"]]
    assert len(with_needle) == 1 and with_needle[0]["summary"]
    assert any("ROSALIND" in s["onscreen"] for s in segs)
    assert sum(len(c["keyframes"]) for c in clips) == len(mem.keyframes_between(0, 600))


def _events(mem):
    return [(e["scale"], round(e["start"], 6), round(e["end"], 6), e["transcript"], e["onscreen"], e["summary"])
            for sc in ("clip", "segment", "chapter") for e in mem.events(sc)]


def test_incremental_equals_batch(tmp_path):
    chunks, _ = make_stream(duration=900, chunk_s=60, seed=3)
    cfg = Config()
    lib = Library(tmp_path)
    a = lib.open_or_create(info_for("a.mp4", 900, "aaa"), cfg, HashEmbedder())
    for c in chunks:
        a.add_chunk(c)
    a.finalize()
    chunks2, _ = make_stream(duration=900, chunk_s=60, seed=3)
    big = Chunk(0, 0.0, 900.0, [t for c in chunks2 for t in c.texts], [k for c in chunks2 for k in c.keyframes],
                [s for c in chunks2 for s in c.shots])
    b = lib.open_or_create(info_for("b.mp4", 900, "bbb"), cfg, HashEmbedder())
    b.add_chunk(big)
    b.finalize()
    assert _events(a) == _events(b)
    def key(hits):
        return [(h.scale, h.source, h.start, h.end, h.text) for h in hits]

    assert key(a.search("pineapple password", 5)) == key(b.search("pineapple password", 5))


def test_streaming_closes_events_before_finalize(tmp_path):
    chunks, _ = make_stream(duration=900, chunk_s=60)
    mem = Library(tmp_path).open_or_create(info_for(duration=900), Config(), HashEmbedder())
    for c in chunks[:7]:
        mem.add_chunk(c)
    assert mem.events("clip") and mem.events("segment")  # rolled up while streaming
    seg_ids = [e["id"] for e in mem.events("segment")]
    mem.add_chunk(chunks[7])
    assert [e["id"] for e in mem.events("segment")][: len(seg_ids)] == seg_ids  # not rebuilt
    assert not mem.is_complete


def test_plan_clips_snaps_to_cuts():
    assert plan_clips(0, 100, 10, [], final=False) == [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60),
                                                       (60, 70), (70, 80), (80, 90)]
    out = plan_clips(0, 30, 10, [12.0, 14.0], final=True)
    assert out[0] == (0, 12.0) and out[-1][1] == 30
    assert plan_clips(0, 12, 10, [], final=True) == [(0, 12)]  # a short tail is absorbed


def test_plan_groups_prefers_cuts():
    children = [(i * 10.0, (i + 1) * 10.0) for i in range(20)]
    groups = plan_groups(children, 60, [50.0], final=False)
    assert groups[0] == (0, 4)  # ends on the cut at 50 (within [45, 75])
    assert plan_groups(children[:5], 60, [], final=False) == []  # not enough seen yet
    assert plan_groups(children[:5], 60, [], final=True) == [(0, 4)]


def test_cuts_survive_chunk_splits_and_renumbering(tmp_path):
    from videomind.types import Shot

    mem = Library(tmp_path).open_or_create(info_for(duration=180), Config(), HashEmbedder())
    # shot 1 spans the chunk boundary at 60 (no cut there); a resumed run renumbers from 0 at 120 (a cut)
    mem.add_chunk(Chunk(0, 0, 60, shots=[Shot(0, 0, 33), Shot(1, 33, 60)]))
    mem.add_chunk(Chunk(1, 60, 120, shots=[Shot(1, 60, 95), Shot(2, 95, 120)]))
    mem.add_chunk(Chunk(2, 120, 180, shots=[Shot(0, 120, 150), Shot(1, 150, 180)]))
    assert mem._episodic.cuts() == [33, 95, 120, 150]
