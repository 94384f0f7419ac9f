"""Display pacing over a whole show in constant memory: the intervals between displayed frames in a fixed
histogram (1 ms bins), so a 3-hour set can still say its p99 and its worst stall."""

from __future__ import annotations

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
