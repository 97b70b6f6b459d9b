"""On-screen text: rapidocr reads rendered text; text that stays on screen becomes one record with start/end."""

from __future__ import annotations

import re

import pytest

from tests.ingest.conftest import ffmpeg, signs_filter
from videomind.config import Config
from videomind.ingest.decode import iter_frames
from videomind.ingest.ocr import OcrLine, OcrTracker, load_engine, normalise, read_text
from videomind.ingest.pipeline import IngestPipeline
from videomind.ingest.probe import probe


@pytest.fixture(scope="module")
def sign_video(media_dir):
    """6 s, white; 'GATE 42 CLOSED' on screen from 1 s to 4 s (exclusive), then 'EXIT B' from 4 s to 6 s."""
    out = media_dir / "sign.mp4"
    if not out.exists():
        vf = signs_filter([("GATE 42 CLOSED", 1, 3.99), ("EXIT B", 4, 6)])
        ffmpeg("-f", "lavfi", "-i", "color=c=white:size=640x360:rate=10:d=6", "-vf", vf,
               "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out))
    return out


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.upper()).strip()


def test_read_text_on_a_frame(sign_video):
    frames = dict(iter_frames(probe(sign_video), 0, 6, fps=1, size=384))
    engine = load_engine("rapidocr")
    lines = read_text(engine, frames[2.0])
    assert [_norm(ln.text) for ln in lines] == ["GATE 42 CLOSED"]
    assert lines[0].confidence >= 0.6
    assert all(0 <= x <= 384 and 0 <= y <= 216 for x, y in lines[0].box)
    assert read_text(engine, frames[0.0]) == []


def test_tracker_dedupes_consecutive_frames():
    tr = OcrTracker()
    box = [[0, 0], [1, 0], [1, 1], [0, 1]]
    assert tr.update(1.0, [OcrLine("GATE 42 CLOSED", 0.9, box)]) == []
    assert tr.update(2.0, [OcrLine("GATE 42 CL0SED", 0.7, box)]) == []  # a one-character wobble
    assert tr.update(3.0, [OcrLine("Gate 42 closed.", 0.95, box), OcrLine("EXIT B", 0.9, box)]) == []
    ended = tr.update(4.0, [OcrLine("EXIT B", 0.9, box)])
    assert [(r.text, r.start, r.end, r.meta["frames"]) for r in ended] == [("Gate 42 closed.", 1.0, 4.0, 3)]
    assert ended[0].source == "ocr" and ended[0].confidence == pytest.approx(0.85)
    rest = tr.flush(5.0)
    assert [(r.text, r.start, r.end) for r in rest] == [("EXIT B", 3.0, 5.0)]
    assert tr.flush(6.0) == []
    assert normalise("Gate 42, closed!") == "gate42closed"


def test_pipeline_ocr_records(sign_video):
    cfg = Config()
    cfg.ingest.asr = False
    pipe = IngestPipeline(cfg)
    chunks = list(pipe.run(sign_video))
    ocr = [t for c in chunks for t in c.texts if t.source == "ocr"]
    assert [_norm(t.text) for t in ocr] == ["GATE 42 CLOSED", "EXIT B"], ocr
    gate, exit_ = ocr
    assert gate.start == pytest.approx(1.0) and gate.end == pytest.approx(4.0)
    assert exit_.start == pytest.approx(4.0) and exit_.end == pytest.approx(6.0, abs=0.1)


def _ocr_folder(folder, **files):
    """A models.ocr folder: each role's file a link to the wheel's model of that role, or the given bytes."""
    from videomind.models.registry import resolve

    wheel = {"det": "ch_PP-OCRv4_det_infer.onnx", "rec": "ch_PP-OCRv4_rec_infer.onnx"}
    bundled = resolve("rapidocr", "ocr").path
    folder.mkdir()
    for name, content in files.items():
        role = name.split("_")[-1]
        if content is None:
            (folder / f"{name}.onnx").symlink_to(f"{bundled}/{wheel[role]}")
        else:
            (folder / f"{name}.onnx").write_bytes(content)
    return str(folder)


def test_a_configured_ocr_folder_reads(tmp_path, sign_video):
    """A folder of PP-OCR models (named as PaddleOCR exports them) is an OCR engine of its own; that its files are
    the ones loaded is the next test's (models.ocr was resolved and then ignored: the bundled models read)."""
    folder = _ocr_folder(tmp_path / "mine", en_det=None, en_rec=None)
    engine = load_engine(folder)
    assert engine is not load_engine("rapidocr")
    frames = dict(iter_frames(probe(sign_video), 0, 6, fps=1, size=384))
    assert [_norm(ln.text) for ln in read_text(engine, frames[2.0])] == ["GATE 42 CLOSED"]


@pytest.mark.parametrize("junk", ["det", "rec"])
def test_an_ocr_folder_whose_model_does_not_load_says_which(tmp_path, junk):
    from videomind.errors import CapabilityUnavailable

    files = {"my_det": None, "my_rec": None, f"my_{junk}": b"not an onnx model"}
    folder = _ocr_folder(tmp_path / "mine", **files)
    with pytest.raises(CapabilityUnavailable, match=rf"models\.ocr=.*mine.*my_{junk}\.onnx"):
        load_engine(folder)
