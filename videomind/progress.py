"""Terminal progress bars for ingestion: one tqdm bar per stage, fed by the pipeline's ProgressEvents.

Library code only emits events (stage, done, total, message); the CLI and scripts turn them into bars.
"""

from __future__ import annotations


class ProgressBars:
    """A progress callback: ``vm.ingest(path, progress=bars)``; call ``close()`` (or use as a context manager)."""

    def __init__(self):
        self.bars = {}

    def __call__(self, event) -> None:
        from tqdm import tqdm

        bar = self.bars.get(event.stage)
        if bar is None:
            bar = self.bars[event.stage] = tqdm(
                total=event.total, desc=f"{event.stage:<8}", unit="s", leave=True,
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
