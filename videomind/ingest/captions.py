"""Optional VLM captions per clip (SiLVR / WorldMM style): keyframes of a window plus its transcript -> a caption.

The pipeline calls :func:`caption_chunk` only when a VLM is configured (``models.vlm``) and a caption callable was
given; otherwise captions are skipped without a note. The callable is the backend's business (the lead's
``videomind.backends``): ``caption(images, transcript) -> str``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from videomind.types import Chunk, TimedText

logger = logging.getLogger(__name__)

CaptionFn = Callable[[Sequence[np.ndarray], str], str]


def caption_chunk(chunk: Chunk, caption: CaptionFn, clip_seconds: float = 10.0, max_images: int = 4) -> list[TimedText]:
    """One TimedText(source="caption") per ``clip_seconds`` window of ``chunk`` that has a keyframe image.

    A failing caption call is logged and that window skipped: captions are an optional extra, never fatal.
    """
    out: list[TimedText] = []
    t = chunk.start
    while t < chunk.end:
        t1 = min(chunk.end, t + clip_seconds)
        images = [k.image for k in chunk.keyframes if t <= k.t < t1 and k.image is not None]
        if len(images) > max_images:
            images = [images[i] for i in np.linspace(0, len(images) - 1, max_images).round().astype(int)]
        if images:
            speech = " ".join(x.text for x in chunk.texts if x.source in ("speech", "subtitle") and t <= x.start < t1)
            try:
                text = (caption(images, speech) or "").strip()
            except Exception as e:  # noqa: BLE001 - a flaky VLM must not stop ingestion
                logger.warning("caption failed for %.1f-%.1f s: %s", t, t1, e)
                text = ""
            if text:
                out.append(TimedText(round(t, 3), round(t1, 3), text, "caption", None, {"images": len(images)}))
        t = t1
    return out
