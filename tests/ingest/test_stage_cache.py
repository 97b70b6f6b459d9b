"""Stage cache: a config change re-runs only the model stages whose own settings changed (real Whisper and OCR)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tests.ingest.conftest import ffmpeg, media, signs_filter
from videomind.config import Config
from videomind.ingest import ocr as ocr_mod
from videomind.ingest.asr import Transcriber
from videomind.ingest.cache import StageCache, settings_key, stage_key
from videomind.ingest.pipeline import IngestPipeline


# ------------------------------------------------------------------------------------------------------ unit
def test_round_trips_texts_and_vectors(tmp_path):
    texts = [{"start": 1.0, "end": 2.5, "text": "ask not", "source": "speech", "confidence": 0.91,
              "meta": {"words": [{"start": 1.0, "end": 1.2, "word": "ask", "prob": 0.99}]}}]
    vec = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    with StageCache(tmp_path / "c.sqlite") as cache:
        assert cache.get("asr", "k1") is None
        cache.put("asr", "k1", texts)
        cache.put("asr", "empty", [])
        cache.put("visual_embed", "k1", vec)  # same key, other stage: another row
        assert cache.get("asr", "k1") == texts
        assert cache.get("asr", "empty") == []  # an empty transcript is a hit, not a miss
        got = cache.get("visual_embed", "k1")
        assert got.dtype == np.float32 and np.array_equal(got, vec) and got.flags.writeable
        assert cache.stats == {"asr": {"hit": 2, "miss": 1}, "visual_embed": {"hit": 1, "miss": 0}}
        assert len(cache) == 3
    with StageCache(tmp_path / "c.sqlite") as again:  # committed: a new connection sees every row
        assert again.get("asr", "k1") == texts and len(again) == 3


def test_keys_are_stable_and_follow_the_stage_settings():
    a, b = Config(), Config()
    assert settings_key({"x": 1, "y": [1, 2]}) == settings_key({"y": [1, 2], "x": 1})
    call = {"offset": 0.0, "samples": 16000}
    assert stage_key(a, "asr", **call) == stage_key(b, "asr", **call)
    assert stage_key(a, "asr", **call) != stage_key(a, "asr", offset=0.0, samples=16001)
    assert stage_key(a, "asr", **call) != stage_key(a, "ocr", **call)
    b.memory.clip_seconds = 5.0
    b.ingest.chunk_seconds = 30.0
    assert all(stage_key(a, s, t=1.0) == stage_key(b, s, t=1.0) for s in ("asr", "ocr", "visual_embed"))
    assert stage_key(a, "captions", t=1.0) != stage_key(b, "captions", t=1.0)
    for section, name, value, changed in [("ingest", "asr_vad", False, "asr"), ("models", "asr", "whisper-x", "asr"),
                                          ("ingest", "asr_language", "de", "asr"),
                                          ("ingest", "ocr_min_confidence", 0.5, "ocr"),
                                          ("ingest", "fps", 2.0, "ocr"), ("ingest", "frame_size", 512, "visual_embed"),
                                          ("models", "visual_embed", "ViT-B-32:openai", "visual_embed")]:
        c = Config()
        setattr(getattr(c, section), name, value)
        differs = {s for s in ("asr", "ocr", "visual_embed") if stage_key(a, s, t=1.0) != stage_key(c, s, t=1.0)}
        assert changed in differs and (changed == "asr") == ("asr" in differs), (name, differs)


def test_corrupt_cache_file_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "v.sqlite"
    path.write_bytes(b"this is not a database " * 200)
    with caplog.at_level(logging.WARNING, logger="videomind.ingest.cache"):
        cache = StageCache(path)
    assert "unreadable" in caplog.text
    assert (tmp_path / "v.sqlite.corrupt").read_bytes().startswith(b"this is not")
    assert cache.enabled and cache.get("ocr", "k") is None
    cache.put("ocr", "k", [{"text": "EXIT B", "confidence": 0.9, "box": [[0, 0]]}])
    assert cache.get("ocr", "k")[0]["text"] == "EXIT B"
    cache.close()


def test_unusable_cache_is_switched_off(tmp_path, caplog):
    (tmp_path / "file").write_text("x")
    with caplog.at_level(logging.WARNING, logger="videomind.ingest.cache"):
        cache = StageCache(tmp_path / "file" / "v.sqlite")  # its directory cannot be created
    assert not cache.enabled and "without it" in caplog.text
    cache.put("asr", "k", [])
    assert cache.get("asr", "k") is None and len(cache) == 0
    ok = StageCache(tmp_path / "ok.sqlite")
    ok.put("asr", "k", [1])
    ok._db.execute("UPDATE stage_cache SET payload = x'00ff'")  # a damaged row reads as a miss
    assert ok.get("asr", "k") is None and ok.stats["asr"] == {"hit": 0, "miss": 1}
    ok.close()


# ----------------------------------------------------------------------------------------------- integration
@pytest.fixture(scope="module")
def talk_with_signs(media_dir):
    """The JFK speech (11 s) over white frames showing 'GATE 42 CLOSED' (1-4 s), then 'EXIT B' (4-11 s)."""
    out = media_dir / "talk_signs.mp4"
    if not out.exists():
        vf = signs_filter([("GATE 42 CLOSED", 1, 3.99), ("EXIT B", 4, 11)])
        ffmpeg("-f", "lavfi", "-i", "color=c=white:size=640x360:rate=10:d=11", "-i", str(media("jfk.flac")),
               "-vf", vf, "-t", "11", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out))
    return out


@pytest.fixture
def spy(monkeypatch):
    """Records every IngestPipeline run by VideoMind.ingest and counts the real Whisper and OCR calls."""
    seen = {"pipes": [], "whisper": 0, "ocr": 0}
    run, call, read = IngestPipeline.run, Transcriber.__call__, ocr_mod.read_text

    def recording_run(self, *a, **kw):
        seen["pipes"].append(self)
        yield from run(self, *a, **kw)

    def counting_call(self, *a, **kw):
        seen["whisper"] += 1
        return call(self, *a, **kw)

    def counting_read(*a, **kw):
        seen["ocr"] += 1
        return read(*a, **kw)

    monkeypatch.setattr(IngestPipeline, "run", recording_run)
    monkeypatch.setattr(Transcriber, "__call__", counting_call)
    monkeypatch.setattr(ocr_mod, "read_text", counting_read)
    return seen


def _ingest(vm, path, seen):
    seen["whisper"] = seen["ocr"] = 0
    mem = vm.ingest(path)
    return mem, seen["pipes"][-1].cache_stats, seen["whisper"], seen["ocr"]


def _texts(mem, source):
    return [(t.start, t.end, t.text) for t in mem.texts_between(0, 1e9, [source])]


def test_config_change_recomputes_only_affected_stages(config, talk_with_signs, spy):
    from videomind.api import VideoMind

    vm = VideoMind(config)
    first, stats, whisper, ocr = _ingest(vm, talk_with_signs, spy)
    assert stats["asr"] == {"hit": 0, "miss": 1} and whisper == 1
    assert stats["ocr"]["hit"] == 0 and stats["ocr"]["miss"] == ocr >= 2
    speech, signs = _texts(first, "speech"), _texts(first, "ocr")
    assert "ask not what your country" in " ".join(t for _, _, t in speech).lower()
    assert [t for _, _, t in signs] == ["GATE 42 CLOSED", "EXIT B"]
    cache_file = vm.library.stage_cache_path(first.info.content_hash)
    assert cache_file.is_file() and cache_file.parent.parent == config.library_dir

    config.memory.clip_seconds = 5.0  # memory only: a new store, every model stage reused
    second, stats, whisper, ocr = _ingest(vm, talk_with_signs, spy)
    assert second.directory != first.directory and second.is_complete
    assert whisper == 0 and ocr == 0
    assert stats["asr"] == {"hit": 1, "miss": 0} and stats["ocr"]["miss"] == 0 and stats["ocr"]["hit"] >= 2
    assert _texts(second, "speech") == speech and _texts(second, "ocr") == signs
    assert "visual_embed" not in stats  # the perceptual descriptor is recomputed, never cached

    config.ingest.asr_vad = False  # an ASR setting: Whisper runs again, OCR is still reused
    third, stats, whisper, ocr = _ingest(vm, talk_with_signs, spy)
    assert third.directory not in (first.directory, second.directory)
    assert stats["asr"] == {"hit": 0, "miss": 1} and whisper == 1
    assert stats["ocr"]["miss"] == 0 and ocr == 0 and _texts(third, "ocr") == signs
    third.close()

    spy["whisper"] = 0  # a rebuild recomputes everything: it drops the video's stage cache
    third = vm.ingest(talk_with_signs, rebuild=True)
    stats = spy["pipes"][-1].cache_stats
    assert spy["whisper"] == 1 and stats["asr"]["hit"] == stats["ocr"]["hit"] == 0

    lib = vm.library  # the stage cache goes with the video's last store
    keys = [m["key"] for m in lib.list()]
    assert len(keys) == 3
    for mem in (first, second, third):
        mem.close()
    for i, key in enumerate(keys):
        assert lib.delete(key)
        assert cache_file.exists() == (i < 2)


def test_image_vectors_and_captions_are_reused(tmp_path, silent_video, monkeypatch):
    """The CLIP and VLM stages, with stand-ins for the models (no weights offline): called once, then reused."""
    from videomind.ingest import visual

    calls = {"images": 0, "captions": 0}
    failures = [RuntimeError("VLM timed out")]  # the first call fails: that window is skipped, and not cached

    class MeanColour:  # an image encoder: one unit vector per image
        dim = 3

        def embed_images(self, images):
            calls["images"] += len(images)
            v = np.stack([im.reshape(-1, 3).mean(0) + 1.0 for im in images]).astype(np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    def caption(images, transcript):
        calls["captions"] += 1
        if failures:
            raise failures.pop()
        return f"{len(images)} coloured frames"

    monkeypatch.setattr(visual, "make_embedder", lambda *a, **kw: MeanColour())
    cfg = Config()
    cfg.ingest.ocr, cfg.models.vlm, cfg.models.visual_embed = False, "a-vlm", "mean-colour"

    def run():
        calls.update(images=0, captions=0)
        with StageCache(tmp_path / "v.sqlite") as cache:
            pipe = IngestPipeline(cfg, captioner=caption, cache=cache)
            chunks = list(pipe.run(silent_video))
        kfs = [(k.t, k.embedding) for c in chunks for k in c.keyframes]
        caps = [(t.start, t.text) for c in chunks for t in c.texts if t.source == "caption"]
        return kfs, caps, dict(calls), pipe.cache_stats

    kfs, caps, n, stats = run()
    assert n["images"] == len(kfs) >= 2 and stats["visual_embed"] == {"hit": 0, "miss": len(kfs)}
    assert n["captions"] == 1 and caps == [] and stats["captions"] == {"hit": 0, "miss": 1}
    kfs2, caps2, n, stats = run()  # the failed captions are retried; the vectors come from the cache
    assert n["images"] == 0 and stats["visual_embed"] == {"hit": len(kfs), "miss": 0}
    assert [t for t, _ in kfs2] == [t for t, _ in kfs]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(kfs, kfs2))
    assert n["captions"] == 1 and caps2 and stats["captions"] == {"hit": 0, "miss": 1}
    _, caps3, n, stats = run()
    assert n == {"images": 0, "captions": 0} and caps3 == caps2 and stats["captions"] == {"hit": 1, "miss": 0}
