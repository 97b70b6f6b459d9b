"""The threads under the streaming pipeline: bounded producer queues that forward errors, and stage timers."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

END = object()  # what a worker puts after its last item


@dataclass
class StageTimes:
    """Seconds spent per stage (CPU-side work, summed over threads; queue waits excluded) and the wall time."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + dt


class Worker(threading.Thread):
    """Runs ``produce(put)`` into a bounded queue; an exception is forwarded to the consumer."""

    def __init__(self, name: str, produce: Callable, maxsize: int, stop: threading.Event):
        super().__init__(name=f"videomind-{name}", daemon=True)
        self.q: queue.Queue = queue.Queue(maxsize=maxsize)
        self.produce, self.stop = produce, stop

    def put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            self.produce(self.put)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises
            self.put(("__error__", e))
        self.put(END)

    def get(self, block: bool = True):
        """The next item (queue.Empty when ``block`` is false and none is ready); re-raises a worker's error."""
        item = self.q.get(block)
        if isinstance(item, tuple) and len(item) == 2 and item[0] == "__error__":
            raise item[1]
        return item
