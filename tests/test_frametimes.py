"""The render loop's pacing (display.max_fps where nothing else paces it), on a simulated clock: a real sleep's
overshoot and a frame's work are what decide whether a 60 Hz cap gives 60 frames a second."""

from __future__ import annotations

import numpy as np

from vj.render.frametimes import FramePacer


class SimulatedTime:
    """A monotonic clock whose sleeps overshoot as the OS's do."""

    def __init__(self, overshoot: float):
        self.now, self.overshoot = 100.0, overshoot

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds + self.overshoot


def _frame_starts(pacer: FramePacer, t: SimulatedTime, work: list[float]) -> np.ndarray:
    starts = []
    for seconds in work:
        starts.append(t.now)
        t.now += seconds
        pacer.wait()
    return np.array(starts)


def test_frames_come_at_the_cap_on_average_though_every_sleep_overshoots():
    t = SimulatedTime(overshoot=0.0007)
    pacer = FramePacer(60, t.clock, t.sleep)
    intervals = np.diff(_frame_starts(pacer, t, [0.004] * 600))
    assert abs(intervals.mean() - 1 / 60) < 1e-5  # not 1/60 + the overshoot: the display keeps its 60 Hz
    assert intervals.max() < 1 / 60 + 0.001


def test_after_a_slow_frame_the_pacing_starts_again_without_a_burst():
    t = SimulatedTime(overshoot=0.0)
    pacer = FramePacer(50, t.clock, t.sleep)
    work = [0.002] * 10 + [0.2] + [0.002] * 10  # a 200 ms frame: ten periods late
    intervals = np.diff(_frame_starts(pacer, t, work))
    after = intervals[11:]
    assert np.allclose(after, 0.02)  # back on a 20 ms period at once, not ten frames squeezed in to catch up


def test_no_cap_only_yields():
    t = SimulatedTime(overshoot=0.0)
    pacer = FramePacer(0, t.clock, t.sleep)
    starts = _frame_starts(pacer, t, [0.001] * 5)
    assert np.allclose(np.diff(starts), 0.001)
