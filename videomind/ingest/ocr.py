"""On-screen text: rapidocr-onnxruntime (PP-OCRv4, bundled) on keyframes, de-duplicated over time.

Text that stays on screen across consecutive OCR'd frames becomes ONE TimedText(source="ocr") whose start is the
first frame it was read on and whose end is the first frame it was gone from (or the chunk end). Lines are matched
by a normalised form (case, punctuation and spaces ignored) with a fuzzy ratio, so an OCR wobble of a character or
two does not split a record. Lines under ``min_confidence`` are dropped.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from videomind.types import TimedText

logger = logging.getLogger(__name__)

_ENGINES: dict[tuple, object] = {}
_LOCK = threading.Lock()


@dataclass
class OcrLine:
    text: str
    confidence: float
    box: list[list[float]]  # 4 corner points [x, y], in the frame's pixels


def load_engine(name: str = "rapidocr"):
    """A cached RapidOCR engine for ``models.ocr``: the PP-OCRv4 ONNX models inside the rapidocr wheel
    ("rapidocr"), or the detection and recognition (and text direction) models of a folder, with the character
    dictionary beside them when the recognition model does not embed one (``registry.ocr_models``).

    Detection runs at the size :func:`read_text` gives it (rapidocr's default upscales a 384-pixel frame to a
    736-pixel *minimum* side: ~3.4x the pixels).

    Raises:
        ModelNotFoundError: the wheel is missing, or the folder lacks a detection or recognition model.
        CapabilityUnavailable: the folder's models do not load in ONNX Runtime.
    """
    from videomind.errors import CapabilityUnavailable, require
    from videomind.models.registry import ocr_models, resolve

    r = resolve(name, "ocr")
    # The wheel's own models are rapidocr's defaults; a folder's are passed in their place.
    models = {} if r.kind == "bundled" else ocr_models(Path(r.path))[0]
    key = (r.path,)
    with _LOCK:
        if key not in _ENGINES:
            mod = require("rapidocr_onnxruntime", "offline")
            paths = {f"{role}_model_path": str(p) for role, p in models.items() if role != "keys"}
            if "keys" in models:
                paths["rec_keys_path"] = str(models["keys"])
            try:
                # One ONNX Runtime thread: OCR runs beside Whisper and decoding, and an idle intra-op pool spins,
                # stealing their CPU (a 10-minute speech-dense ingest on 2 cores used 26% less CPU with one thread).
                _ENGINES[key] = mod.RapidOCR(det_limit_side_len=32, det_limit_type="min", print_verbose=False,
                                             intra_op_num_threads=1, inter_op_num_threads=1, **paths)
            except Exception as e:  # ONNX Runtime's errors for a file that is no model have no common base
                if not models:
                    raise
                hint = ("the recognition model embeds no character list: put its dictionary (en_dict.txt, "
                        "ppocr_keys_v1.txt) beside it" if "character must not be None" in str(e) else
                        "give PP-OCR detection and recognition models exported to ONNX, or models.ocr=rapidocr")
                raise CapabilityUnavailable(f"models.ocr={name!r}: the models in {r.path} do not load in rapidocr "
                                            f"({type(e).__name__}: {e}); {hint}") from e
        return _ENGINES[key]


def _lines(pairs, boxes, scale: float, min_confidence: float) -> list[OcrLine]:
    lines = []
    for (text, score), box in zip(pairs, boxes):
        text = " ".join(str(text).split())
        if text and float(score) >= min_confidence:
            lines.append(OcrLine(text, float(score), [[float(x) / scale, float(y) / scale] for x, y in box]))
    lines.sort(key=lambda ln: (ln.box[0][1], ln.box[0][0]))
    return lines


def _resized_bgr(image: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    if scale != 1:
        h, w = image.shape[:2]
        image = np.asarray(Image.fromarray(image).resize((round(w * scale), round(h * scale)), Image.BICUBIC))
    return np.ascontiguousarray(image[..., ::-1])  # RapidOCR expects BGR like cv2


def read_text(engine, image: np.ndarray, min_confidence: float = 0.6, upscale_below: int = 640,
              det_scale: float = 1.5, rec_scale: float = 2.0) -> list[OcrLine]:
    """OCR one RGB uint8 frame [H, W, 3] -> lines with confidence >= ``min_confidence``, top-to-bottom.

    Small frames (longest side < ``upscale_below``) are upscaled: boxes are detected at ``det_scale`` (at 1x the
    boxes of small text on a busy background clip characters; rapidocr's own default, a 736-pixel minimum side,
    costs ~2x more for the same boxes) and recognised from crops at ``rec_scale`` (a 1x crop loses word spacing:
    "GATE42CLOSED"). A frame where a 1x pass finds no text at all stops there. Boxes are in ``image`` pixels.
    """
    if max(image.shape[:2]) >= upscale_below:
        det_scale = rec_scale = 1.0
    if not all(hasattr(engine, a) for a in ("auto_text_det", "get_crop_img_list", "text_rec")):
        result, _ = engine(_resized_bgr(image, rec_scale), use_cls=False)  # another rapidocr version: public call
        result = result or []
        return _lines([(r[1], r[2]) for r in result], [r[0] for r in result], rec_scale, min_confidence)
    # Most frames show no text: a detection pass at 1x (~half the cost of one at det_scale) settles those.
    boxes, _ = engine.auto_text_det(_resized_bgr(image, 1.0))
    if boxes is None or len(boxes) == 0:
        return []
    if det_scale != 1.0:
        boxes, _ = engine.auto_text_det(_resized_bgr(image, det_scale))
        if boxes is None or len(boxes) == 0:
            return []
    big_boxes = [np.asarray(bx, np.float32) * (rec_scale / det_scale) for bx in boxes]
    rec, _ = engine.text_rec(engine.get_crop_img_list(_resized_bgr(image, rec_scale), big_boxes))
    return _lines([(r[0], r[1]) for r in rec], big_boxes, rec_scale, min_confidence)


def normalise(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())


@dataclass
class _Open:
    text: str
    key: str
    start: float
    last: float
    conf: list[float] = field(default_factory=list)
    box: list[list[float]] | None = None
    frames: int = 0


class OcrTracker:
    """Turns per-frame OCR lines into de-duplicated records. Feed frames in time order; flush at chunk ends."""

    def __init__(self, similarity: float = 0.8):
        self.similarity = similarity
        self.open: list[_Open] = []

    def _match(self, key: str, taken: set[int]) -> int | None:
        best, best_r = None, self.similarity
        for i, o in enumerate(self.open):
            if i in taken:
                continue
            r = 1.0 if o.key == key else difflib.SequenceMatcher(None, o.key, key).ratio()
            if r >= best_r:
                best, best_r = i, r
        return best

    def update(self, t: float, lines: list[OcrLine]) -> list[TimedText]:
        """Record the lines read at ``t``; return the records that ended (their text is gone at ``t``)."""
        seen: set[int] = set()
        fresh = []
        for ln in lines:
            key = normalise(ln.text)
            if len(key) < 2:
                continue
            j = self._match(key, seen)
            if j is None:
                fresh.append(_Open(ln.text, key, t, t, [ln.confidence], ln.box, 1))
            else:
                o = self.open[j]
                o.last, o.frames = t, o.frames + 1
                o.conf.append(ln.confidence)
                if ln.confidence >= max(o.conf[:-1] or [0.0]):  # keep the best reading's spelling
                    o.text, o.box = ln.text, ln.box
                seen.add(j)
        ended = [self._record(o, t) for i, o in enumerate(self.open) if i not in seen]
        self.open = [o for i, o in enumerate(self.open) if i in seen] + fresh
        return ended

    def flush(self, end: float) -> list[TimedText]:
        """Close every open record at ``end`` (a chunk boundary); text still there reopens in the next chunk."""
        out = [self._record(o, end) for o in self.open]
        self.open = []
        return out

    @staticmethod
    def _record(o: _Open, end: float) -> TimedText:
        return TimedText(round(o.start, 3), round(max(end, o.last), 3), o.text, "ocr", round(float(np.mean(o.conf)), 3),
                         {"box": o.box, "frames": o.frames})
