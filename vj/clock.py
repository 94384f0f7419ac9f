"""The show clock: one object for the time the cue sheet, the features and the engine are looked up at.

`vj live` runs on the wall clock from the moment the show starts (or from a start cue), `vj rehearse` on the
playback position, a test or a benchmark on a clock it sets by hand. Whoever moves the show (a cue jump, a seek)
moves the clock; everyone else only reads it (moderngl-window's `timer=` is the model).
"""

from __future__ import annotations

import time
from typing import Callable, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Show time in seconds (0 until the clock runs)."""

    def seek(self, t: float) -> None:
        """Moves the show to t seconds (and starts a clock waiting for its start cue)."""

    @property
    def running(self) -> bool:
        """Whether the show time moves (False while waiting for a start cue)."""


class WallClock:
    """Seconds of wall time since the show started; `start()` starts it, or the start cue (a seek to 0) does."""

    def __init__(self) -> None:
        self._origin: float | None = None  # perf_counter at show time 0; None: not started

    def start(self) -> None:
        self._origin = time.perf_counter()

    def now(self) -> float:
        return 0.0 if self._origin is None else time.perf_counter() - self._origin

    def seek(self, t: float) -> None:
        self._origin = time.perf_counter() - max(0.0, t)

    @property
    def running(self) -> bool:
        return self._origin is not None


class FollowingClock:
    """A clock kept by something else: a rehearsal's playback position, which seeks move."""

    def __init__(self, position: Callable[[], float], seek: Callable[[float], None]):
        self._position, self._seek = position, seek

    def now(self) -> float:
        return self._position()

    def seek(self, t: float) -> None:
        self._seek(t)

    running = True


class ManualClock:
    """A clock that shows what it is set to (tests, benchmarks that script the show time)."""

    def __init__(self, t: float = 0.0):
        self.t = t

    def now(self) -> float:
        return self.t

    def seek(self, t: float) -> None:
        self.t = max(0.0, t)

    running = True
