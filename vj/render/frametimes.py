"""Display pacing: frames held to display.max_fps where nothing else paces them (no vsync, Xvfb, offscreen), and
measured over a whole show in constant memory: the intervals between displayed frames in a fixed histogram (1 ms
bins), so a 3-hour set can still say its p99 and its worst stall."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

STALL_MS = 100.0                        # an interval this long is a stall the audience can see


class FrameTimes:
    def __init__(self, max_ms: int = 2000):
        self.counts = np.zeros(max_ms + 1, np.int64)  # intervals in whole ms; the last bin holds everything longer
        self.frames = 0
        self.worst_ms = 0.0
        self.stalls = 0                 # intervals of STALL_MS or more
        self._last: float | None = None

    def tick(self, now: float) -> None:
        """A frame was displayed at `now` (seconds, monotonic)."""
        if self._last is not None:
            ms = (now - self._last) * 1000
            self.counts[min(int(ms), self.counts.size - 1)] += 1
            self.worst_ms = max(self.worst_ms, ms)
            self.stalls += ms >= STALL_MS
        self._last = now
        self.frames += 1

    def pause(self) -> None:
        """The next interval is not the display's fault (the show was held on purpose)."""
        self._last = None

    def percentile(self, q: float) -> float:
        total = int(self.counts.sum())
        if total == 0:
            return 0.0
        return float(np.searchsorted(np.cumsum(self.counts), q / 100 * total) + 0.5)  # bin centre, ms

    def summary(self) -> str:
        return (f"display: {self.frames} frames, frame time p50 {self.percentile(50):.1f} ms, "
                f"p99 {self.percentile(99):.1f} ms, worst {self.worst_ms:.1f} ms, "
                f"{self.stalls} stall(s) of {STALL_MS:.0f} ms or more")


class FramePacer:
    """Holds the render loop to `max_fps` (0: no cap) on deadlines one period apart. Sleeping a period after each
    frame's start instead would add the sleep's overshoot to every frame, so the display would run below the cap
    and every frame would miss a 60 Hz budget. After a frame later than a period the deadlines start again from
    now: no burst of short frames to catch up."""

    def __init__(self, max_fps: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep):
        self.period = 1.0 / max_fps if max_fps > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self._due = clock()

    def wait(self) -> None:
        """Sleeps until the next frame may start (at least yielding, so the engine's threads get the CPU)."""
        self._due += self.period
        if self.clock() - self._due > self.period:
            self._due = self.clock()
        self.sleep(max(0.0, self._due - self.clock()))
