"""Shot boundaries and keyframes from a stream of per-frame descriptors.

A cut is declared between consecutive sampled frames when their descriptor distance (1 - cosine) exceeds an
adaptive threshold: ``median + k * 1.4826 * MAD`` of the last ``window`` in-shot distances, clipped to
[floor, ceil] (a fixed ``scene_threshold`` > 0 overrides it). Keyframes: the first frame of every shot, plus
"novelty" extras when the picture drifts far from the last keyframe or one region of it changes strongly (a
caption or a sign appears: "local"), at most one per ``min_gap`` seconds (keyframes are what OCR reads, the
costly stage), plus one at least every ``max_gap`` seconds so a long static shot still gets looked at.
The detector is stateful across chunks: feed frames in time order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from videomind.types import Shot


@dataclass
class FrameDecision:
    """What the detector decided for one sampled frame."""

    t: float
    shot: int
    cut: bool  # first frame of a new shot
    keyframe: bool
    reason: str  # "shot" | "novelty" | "local" | "gap" | ""
    distance: float  # to the previous frame


class ShotDetector:
    """Streaming shot detector. ``push(t, desc)`` -> :class:`FrameDecision`; ``shots_in(t0, t1)`` -> shots."""

    def __init__(self, threshold: float = 0.0, floor: float = 0.25, ceil: float = 0.5, k: float = 3.0, window: int = 30,
                 novelty: float = 0.08, local: float = 0.15, max_gap: float = 8.0, min_gap: float = 3.0,
                 first_shot: int = 0):
        self.fixed = threshold
        self.floor, self.ceil, self.k = floor, ceil, k
        self.novelty, self.local, self.max_gap, self.min_gap = novelty, local, max_gap, min_gap
        self.recent: deque[float] = deque(maxlen=window)
        self.prev: np.ndarray | None = None
        self.last_kf: np.ndarray | None = None
        self.last_kf_t = -1e9
        self.last_kf_grid: np.ndarray | None = None
        self.shot = first_shot - 1
        self.shot_start = 0.0
        self.last_t = 0.0
        self.closed: list[Shot] = []

    def threshold(self) -> float:
        if self.fixed > 0:
            return self.fixed
        if len(self.recent) < 5:
            return 0.4
        d = np.asarray(self.recent)
        med = float(np.median(d))
        mad = float(np.median(np.abs(d - med)))
        # Clipped: a static stretch (distances ~0) must not make noise a cut, and a busy one (animation, camera
        # motion) must not hide a hard cut, whose distance is ~0.5-1.1 with this descriptor.
        return min(self.ceil, max(self.floor, med + self.k * 1.4826 * mad))

    def push(self, t: float, desc: np.ndarray, grid: np.ndarray | None = None) -> FrameDecision:
        """Decide for the frame at ``t`` with descriptor ``desc`` and (optional) luminance grid ``grid`` [g, g]:
        a strong change in part of the picture (a caption or sign appearing) makes a "local" keyframe."""
        if self.prev is None:
            dist, cut = 0.0, True
        else:
            dist = float(1.0 - np.dot(self.prev, desc))
            cut = dist > self.threshold()
            if not cut:  # cuts are outliers: keep them out of the statistics of ordinary motion
                self.recent.append(dist)
        if cut:
            if self.shot >= 0 and self.prev is not None:
                self.closed.append(Shot(self.shot, self.shot_start, t))
            self.shot += 1
            self.shot_start = t
        reason = ""
        if cut:
            reason = "shot"
        elif (self.last_kf is not None and t - self.last_kf_t >= self.min_gap
              and 1.0 - float(np.dot(self.last_kf, desc)) > self.novelty):
            reason = "novelty"
        elif (grid is not None and self.last_kf_grid is not None and t - self.last_kf_t >= self.min_gap
              and float(np.abs(grid - self.last_kf_grid).max()) > self.local):
            reason = "local"
        elif t - self.last_kf_t >= self.max_gap:
            reason = "gap"
        if reason:
            self.last_kf, self.last_kf_t, self.last_kf_grid = desc, t, grid
        self.prev, self.last_t = desc, t
        return FrameDecision(t, self.shot, cut, bool(reason), reason, dist)

    def shots_in(self, t0: float, t1: float, final: bool = False) -> list[Shot]:
        """Shots overlapping [t0, t1), clipped to it; the open shot is included (clipped at ``t1``).

        A shot spanning several chunks is reported in each, under the same index, with that chunk's part.
        """
        out = [Shot(s.index, max(s.start, t0), min(s.end, t1)) for s in self.closed if s.end > t0 and s.start < t1]
        if self.shot >= 0 and self.shot_start < t1:
            out.append(Shot(self.shot, max(self.shot_start, t0), t1))
        self.closed = [s for s in self.closed if s.end > t1]
        return [s for s in out if s.end > s.start or final]
