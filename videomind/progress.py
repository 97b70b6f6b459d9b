"""Terminal progress bars for ingestion: one tqdm bar per stage, fed by the pipeline's ProgressEvents.

Library code only emits events (stage, done, total, message); the CLI and scripts turn them into bars.
"""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressBars:
    """A progress callback: ``vm.ingest(path, progress=bars)``; call ``close()`` (or use as a context manager).

    On a terminal, one bar per stage. Anywhere else (``2> ingest.log``, a pipe, CI) bars would leave carriage
    returns and cursor movements in the file, so only the events that carry a message (the probe, each finished
    chunk) are written, one plain line each.
    """

    def __init__(self, file: TextIO | None = None):
        self.file = file if file is not None else sys.stderr
        isatty = getattr(self.file, "isatty", None)
        self.lines = not (isatty is not None and isatty())
        self.bars = {}

    def __call__(self, event) -> None:
        if self.lines:
            if event.message:
                total = f"/{event.total:.0f}" if event.total else ""
                print(f"{event.stage} {event.done:.0f}{total}: {event.message}", file=self.file, flush=True)
            return
        from tqdm import tqdm

        bar = self.bars.get(event.stage)
        if bar is None:
            bar = self.bars[event.stage] = tqdm(
                total=event.total, desc=f"{event.stage:<8}", unit="s", leave=True, file=self.file,
                bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} [{elapsed}<{remaining}]{postfix}")
        if event.total and bar.total != event.total:
            bar.total = event.total
        bar.n = event.done
        if event.message:
            bar.set_postfix_str(event.message[:40], refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
