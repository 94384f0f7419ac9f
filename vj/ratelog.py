"""Log lines that a flood of control messages could repeat thousands of times a second: a few a second are
written, and how many more there were is said with the next one written."""

from __future__ import annotations

import logging
import time
from typing import Callable


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, per_second: int = 5, clock: Callable[[], float] = time.monotonic):
        self.logger, self.per_second, self.clock = logger, per_second, clock
        self._second = -1               # the whole second the count is for
        self._count = 0                 # lines offered in it
        self.suppressed = 0             # lines not written since the last one written

    def info(self, message: str, *args: object) -> None:
        second = int(self.clock())
        if second != self._second:
            self._second, self._count = second, 0
        self._count += 1
        if self._count > self.per_second:
            self.suppressed += 1
            return
        if self.suppressed:
            message, args = message + " (%d more like it not logged)", (*args, self.suppressed)
            self.suppressed = 0
        self.logger.info(message, *args)
