"""Progress events that ingestion reports through a callback (the CLI draws bars from them, the app a status)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """``stage`` made ``done`` units of progress out of ``total`` (None: unknown). Units for the per-stage events
    (decode, asr, ocr, visual, chunk) are seconds of video; ``message`` is human-readable detail."""

    stage: str
    done: float
    total: float | None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)
