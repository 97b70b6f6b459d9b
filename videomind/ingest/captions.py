"""Optional VLM captions per clip (SiLVR / WorldMM style): keyframes of a window plus its transcript -> a caption.

The pipeline calls :func:`caption_chunk` only when a VLM is configured (``models.vlm``) and a caption callable was
given; otherwise captions are skipped without a note. The callable is the backend's business (the lead's
``videomind.backends``): ``caption(images, transcript) -> str``. ``images`` is a :class:`Frames`, a list of
keyframes that also carries their times: keyframes fall at scene changes, not at a steady rate, and a VLM that
spaces frames by time must be told when they were taken (``agents.memory_writers.make_captioner`` does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from videomind.types import Chunk, TimedText

logger = logging.getLogger(__name__)

CaptionFn = Callable[[Sequence[np.ndarray], str], str]


class Frames(list):
    """Keyframe images [H, W, 3] in time order, with ``times`` (seconds in the video, one per image).

    A plain list to a captioner that only looks at the pictures, so ``caption(images, transcript)`` keeps its
    signature; one that places frames in time reads ``times`` or :attr:`fps`."""

    def __init__(self, images: Sequence[np.ndarray] = (), times: Sequence[float] = ()):
        super().__init__(images)
        self.times = [float(t) for t in times]
        if len(self.times) != len(self):
            raise ValueError(f"{len(self)} images but {len(self.times)} times")

    @property
    def fps(self) -> float | None:
        """The frames' mean rate over their span, (n - 1) / (last - first): shown at it, the first and the last
        frame fall at their real times. None for one frame or frames all at one time (no rate to give)."""
        if len(self.times) < 2 or not self.times[-1] > self.times[0]:
            return None
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def caption_chunk(chunk: Chunk, caption: CaptionFn, clip_seconds: float = 10.0, max_images: int = 4) -> list[TimedText]:
    """One TimedText(source="caption") per ``clip_seconds`` window of ``chunk`` that has a keyframe image; the
    window's keyframes (at most ``max_images``, spread over it) go to ``caption`` as :class:`Frames`.

    A failing caption call is logged and that window skipped: captions are an optional extra, never fatal.
    """
    out: list[TimedText] = []
    t = chunk.start
    while t < chunk.end:
        t1 = min(chunk.end, t + clip_seconds)
        keys = sorted((k for k in chunk.keyframes if t <= k.t < t1 and k.image is not None), key=lambda k: k.t)
        if len(keys) > max_images:
            keys = [keys[i] for i in np.linspace(0, len(keys) - 1, max_images).round().astype(int)]
        images = Frames([k.image for k in keys], [k.t for k in keys])
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
