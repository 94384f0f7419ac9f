"""Adaptive quality: keeps a generated frame within its time budget.

When frames run long the governor first takes guided steps away (down to one per frame), then halves the
cutouts (down to a floor); with headroom it gives cutouts back first, then steps. Cutouts move in powers of two
of the configured count, so a compiled step sees only a few shapes. Each change waits a few frames for the
smoothed time to show its effect, so the quality does not hunt.
"""

from __future__ import annotations

from dataclasses import dataclass

SLOW = 1.15                             # frame time above budget x SLOW: lower the quality
FAST = 0.6                              # below budget x FAST: raise it
SETTLE_FRAMES = 4                       # frames to wait after a change


@dataclass(frozen=True)
class Quality:
    step_cap: int                       # at most this many guided steps per frame
    cutouts: int                        # CLIP crops per step
    max_cutouts: int                    # what the config asks for (or what memory allows)

    def describe(self, steps_asked: int) -> str:
        steps = min(steps_asked, self.step_cap)
        limited = steps < steps_asked or self.cutouts < self.max_cutouts
        return f"{steps}/{steps_asked} steps x {self.cutouts}/{self.max_cutouts} cutouts" + (" (auto)" if limited else "")


class QualityGovernor:
    def __init__(self, budget_s: float, max_cutouts: int, min_cutouts: int = 4, max_steps: int = 16):
        self.budget_s = budget_s        # 0 = off: always full quality
        self.max_cutouts = max(1, max_cutouts)
        self.min_cutouts = max(1, min(min_cutouts, self.max_cutouts))
        self.max_steps = max_steps
        self.step_cap = max_steps
        self.cutouts = self.max_cutouts
        self.frame_s: float | None = None  # smoothed time of a frame at the current quality
        self._wait = 0

    @property
    def quality(self) -> Quality:
        return Quality(self.step_cap, self.cutouts, self.max_cutouts)

    def cutout_counts(self) -> list[int]:
        """Every cutout count the governor can choose from here on (largest first): the shapes to warm up."""
        seen, todo = set(), [self.cutouts]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += [max(self.min_cutouts, n // 2), min(self.max_cutouts, n * 2)]
        return sorted(seen, reverse=True)

    def update(self, frame_s: float, steps_asked: int) -> Quality:
        """After a frame that took frame_s seconds while the show asked for steps_asked steps: the next quality."""
        if self.budget_s <= 0 or steps_asked <= 0:  # holding the image says nothing about step cost
            return self.quality
        self.frame_s = frame_s if self.frame_s is None else 0.7 * self.frame_s + 0.3 * frame_s
        if self._wait > 0:
            self._wait -= 1
            return self.quality
        steps = min(steps_asked, self.step_cap)
        if self.frame_s > self.budget_s * SLOW:
            if steps > 1:
                self.step_cap = steps - 1
            elif self.cutouts > self.min_cutouts:
                self.cutouts = max(self.min_cutouts, self.cutouts // 2)
            else:
                return self.quality  # as low as it goes
        elif self.frame_s < self.budget_s * FAST:
            if self.cutouts < self.max_cutouts:
                self.cutouts = min(self.max_cutouts, self.cutouts * 2)
            elif self.step_cap < steps_asked:
                self.step_cap += 1
            elif self.step_cap < self.max_steps:
                self.step_cap = self.max_steps  # no longer binding: lift it
            else:
                return self.quality
        else:
            return self.quality
        self._wait, self.frame_s = SETTLE_FRAMES, None
        return self.quality

    def lower_cutouts(self) -> Quality:
        """After an out-of-memory error: half the cutouts, now, whatever the budget."""
        self.cutouts = max(1, self.cutouts // 2)
        self.max_cutouts = self.cutouts  # memory does not come back by itself: this is the new ceiling
        self.min_cutouts = min(self.min_cutouts, self.cutouts)
        self._wait, self.frame_s = SETTLE_FRAMES, None
        return self.quality
