"""Camera motion from the music: StyleGAN3's input transform, animated per frame.

A small rotation kicks in on each beat and eases back with the beat envelope (alternating direction, so the
picture rocks rather than spins), and the view drifts along a slow curve whose speed follows the bass. The
result is the inverse image transform the generator takes per call (as the reference `gen_images.py` builds it),
so nothing in the network's state changes. Fed once per frame in order, it is deterministic: a render and a
rehearsal of the same track move alike.
"""

from __future__ import annotations

import math

import numpy as np

from vj.audio.features import AudioFeatures
from vj.models.sample import make_transform

MAX_ANGLE_DEG = 8.0                     # rotation kick at full beat and motion_rotate = 1
MAX_DRIFT = 0.25                        # translation radius (in the generator's input units) at motion_drift = 1


class Motion:
    def __init__(self) -> None:
        self.travel = 0.0               # distance along the drift curve; grows faster with the bass
        self.direction = 1.0            # rotation direction, flipped on each beat
        self.last_t: float | None = None

    def __call__(self, t: float, features: AudioFeatures, rotate: float, drift: float) -> np.ndarray:
        """The 3x3 inverse transform for time t (float32)."""
        dt = 0.0 if self.last_t is None else max(0.0, t - self.last_t)
        self.last_t = t
        if features.is_beat:
            self.direction = -self.direction
        self.travel += dt * (0.05 + 0.4 * features.bass)
        angle = rotate * MAX_ANGLE_DEG * features.beat * self.direction
        radius = drift * MAX_DRIFT
        translate = (radius * math.sin(self.travel), radius * math.sin(0.73 * self.travel + 1.0))
        return np.linalg.inv(make_transform(translate, angle)).astype(np.float32)
