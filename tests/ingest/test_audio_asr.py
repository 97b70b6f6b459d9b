"""Audio extraction (16 kHz mono from any stream) and the ASR windowing that never splits a segment."""

from __future__ import annotations

import numpy as np
import pytest

from videomind.ingest.asr import load_whisper, quietest_point, speech_windows
from videomind.ingest.audio import SAMPLE_RATE, AudioBlock, iter_audio, read_audio
from videomind.ingest.probe import probe
from videomind.types import TimedText


def test_nasa_audio_is_16k_mono_from_the_16k_track(nasa):
    info = probe(nasa)
    blocks = list(iter_audio(info, block_seconds=5.0))
    assert [round(b.start, 2) for b in blocks][:3] == [0.0, 5.0, 10.0]
    audio = np.concatenate([b.samples for b in blocks])
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) / SAMPLE_RATE == pytest.approx(info.duration, abs=0.15)
    assert 0.01 < float(np.abs(audio).max()) <= 1.5


def test_audio_from_the_middle(jfk_video):
    info = probe(jfk_video)
    full = read_audio(info)
    part = read_audio(info, 4.0, 6.0)
    assert len(part) == 2 * SAMPLE_RATE
    # same samples as the full decode at that offset (AAC frames realign after the seek; allow a tiny lag)
    ref = full[4 * SAMPLE_RATE: 6 * SAMPLE_RATE]
    lag = int(np.argmax(np.correlate(part[4000:8000], ref[3000:9000], "valid"))) - 1000
    assert abs(lag) <= 2


def test_no_audio_yields_nothing(silent_video):
    assert list(iter_audio(probe(silent_video))) == []


def _blocks(audio: np.ndarray, seconds: float = 7.0):
    n = int(seconds * SAMPLE_RATE)
    for i in range(0, len(audio), n):
        yield AudioBlock(i / SAMPLE_RATE, audio[i:i + n])


def test_speech_windows_cut_in_silence_and_assign_each_segment_once():
    # 25 s of "speech" (noise) with silences at 9.5-10.8 s and 21-21.6 s; chunks of 10 s
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(25 * SAMPLE_RATE) * 0.3).astype(np.float32)
    for a, b in ((9.5, 10.8), (21.0, 21.6)):
        audio[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)] = 0
    calls, made = [], []

    def fake(samples, offset):
        calls.append((round(offset, 2), round(offset + len(samples) / SAMPLE_RATE, 2)))
        # one "segment" per 3 s of audio, starting where each 3 s piece starts
        dur = len(samples) / SAMPLE_RATE
        starts = np.arange(0, dur - 0.5, 3.0)
        made.extend(f"seg@{offset + s:.1f}" for s in starts)
        return [TimedText(offset + s, min(offset + s + 2.5, offset + dur), f"seg@{offset + s:.1f}", "speech")
                for s in starts]

    out = list(speech_windows(_blocks(audio), [0.0, 10.0, 20.0, 25.0], fake))
    assert [i for i, _ in out] == [0, 1, 2]
    # window 0 ends inside the 10-10.8 s silence (quietest point after the edge), window 1 in 21-21.6 s
    assert 10.0 <= calls[0][1] <= 10.8 and 21.0 <= calls[1][1] <= 21.6 and calls[2][1] == pytest.approx(25.0)
    assert [c[0] for c in calls[1:]] == [calls[0][1], calls[1][1]]
    for i, segs in out:
        t0, t1 = [0.0, 10.0, 20.0, 25.0][i:i + 2]
        assert all(t0 <= s.start < t1 for s in segs)
    texts = [s.text for _, segs in out for s in segs]
    assert sorted(texts) == sorted(made) and len(texts) == len(set(texts))  # each segment exactly once


def test_speech_windows_without_audio():
    out = list(speech_windows(iter([]), [0.0, 5.0, 8.0], lambda s, o: []))
    assert out == [(0, [])]  # then nothing: later chunks have no speech


def test_speech_windows_with_endless_edges():
    import itertools

    audio = np.zeros(12 * SAMPLE_RATE, np.float32)

    def fake(samples, offset):
        return [TimedText(offset + 1.0, offset + 2.0, f"at {offset + 1.0:.0f}", "speech")] if len(samples) else []

    out = list(speech_windows(_blocks(audio, 3.0), (5.0 * k for k in itertools.count()), fake))
    # chunk 0's window ends in the (silent) 5-10 s lookahead; chunk 1 takes the rest; then the audio is over
    assert [(i, [x.text for x in s]) for i, s in out] == [(0, ["at 1"]), (1, ["at 6"])]


def test_quietest_point():
    a = np.ones(5 * SAMPLE_RATE, np.float32)
    a[int(3.2 * SAMPLE_RATE):int(3.4 * SAMPLE_RATE)] = 0
    assert 3.2 <= quietest_point(a, 0.0, 2.0, 4.5) <= 3.4


def test_whisper_loaded_once():
    assert load_whisper("whisper-tiny.en", "cpu") is load_whisper("whisper-tiny.en", "cpu")


def test_speech_windows_spanning_several_chunks():
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal(25 * SAMPLE_RATE) * 0.3).astype(np.float32)
    audio[int(21.0 * SAMPLE_RATE):int(21.6 * SAMPLE_RATE)] = 0
    calls = []

    def fake(samples, offset):
        calls.append((round(offset, 2), round(offset + len(samples) / SAMPLE_RATE, 2)))
        return [TimedText(offset + s, offset + s + 1.0, f"seg@{offset + s:.1f}", "speech")
                for s in np.arange(0.5, len(samples) / SAMPLE_RATE - 1.0, 4.0)]

    edges = [0.0, 10.0, 20.0, 25.0]
    out = list(speech_windows(_blocks(audio), edges, fake, window=20.0))
    assert len(calls) == 2 and 21.0 <= calls[0][1] <= 21.6  # one call for chunks 0 and 1, one for chunk 2
    assert [i for i, _ in out] == [0, 1, 2]
    for i, segs in out:
        assert segs and all(edges[i] <= s.start < edges[i + 1] for s in segs)


def test_drop_heard_keeps_only_words_after_the_stored_speech():
    """A resumed run re-hears a second before the stored speech ends; what was stored must not be stored twice."""
    from videomind.ingest.asr import drop_heard

    def seg(words):
        return TimedText(words[0][0], words[-1][0] + 0.3, " ".join(w for _, w in words), "speech", 0.9,
                         {"words": [{"start": t, "end": t + 0.3, "word": w} for t, w in words]})

    old = seg([(44.0, "and"), (44.7, "so"), (45.4, "fellow")])
    straddling = seg([(45.1, "my"), (45.4, "fellow"), (45.8, "Americans"), (46.5, "ask")])
    later = seg([(47.0, "not"), (47.5, "what")])
    out = drop_heard([old, straddling, later], until=45.75)
    assert [(s.start, s.text) for s in out] == [(45.8, "Americans ask"), (47.0, "not what")]
    assert [w["word"] for w in out[0].meta["words"]] == ["Americans", "ask"] and out[0].end == straddling.end


def test_transcriber_times_are_plain_floats(monkeypatch):
    """faster-whisper gives segment and word times as numpy float64 (a float subclass whose repr and pickles
    differ); a TimedText must hold plain floats whatever the model returns."""
    from types import SimpleNamespace

    import videomind.ingest.asr as asr

    f = np.float64
    word = SimpleNamespace(start=f(0.5), end=f(0.9), word=" ask", probability=f(0.8))
    seg = SimpleNamespace(start=f(0.5), end=f(1.25), text=" ask not", words=[word], avg_logprob=f(-0.1),
                          no_speech_prob=f(0.01))
    model = SimpleNamespace(transcribe=lambda *a, **kw: (iter([seg]), SimpleNamespace(language="en")))
    monkeypatch.setattr(asr, "load_whisper", lambda *a, **kw: model)
    [out] = asr.Transcriber()(np.zeros(SAMPLE_RATE, np.float32), offset=f(2.0))
    assert (out.start, out.end) == (2.5, 3.25)
    assert type(out.start) is float and type(out.end) is float and type(out.confidence) is float
    w = out.meta["words"][0]
    assert type(w["start"]) is float and type(w["end"]) is float and type(w["prob"]) is float


def test_whisper_runs_on_the_gpu_cuda_n_names(monkeypatch):
    """CTranslate2 names a GPU as device="cuda" plus device_index (it refuses "cuda:1"); cuda:1 ran Whisper on the
    CPU. Without a GPU every cuda form runs on the CPU, as cuda always did."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    import videomind.errors
    from videomind.ingest import asr

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 2)
    assert asr.pick_device("cuda:1") == ("cuda", 1, "float16")
    assert asr.pick_device("cuda") == asr.pick_device("auto") == ("cuda", 0, "float16")
    assert asr.pick_device("cpu") == ("cpu", 0, "int8")
    seen = {}
    fake = type("FakeFasterWhisper", (), {"WhisperModel": staticmethod(lambda path, **kw: seen.update(kw))})
    monkeypatch.setattr(videomind.errors, "require", lambda *a: fake)
    monkeypatch.setattr(asr, "_MODELS", {})
    load_whisper("whisper-tiny.en", "cuda:1")
    assert seen["device"] == "cuda" and seen["device_index"] == 1 and seen["compute_type"] == "float16"
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)
    assert asr.pick_device("cuda:1") == asr.pick_device("cuda") == asr.pick_device("auto") == ("cpu", 0, "int8")
