"""MIDI clock in: the tempo and beat of a drum machine, a DAW or a DJ mixer that sends MIDI clock, as `Tempo`.

24 clocks (0xF8) a quarter note. Start (0xFA) plays from beat 0 at the next clock, Continue (0xFB) from the song
position, Stop (0xFC) holds it there (many devices keep sending clock while stopped: the tempo stays known); Song
Position Pointer (0xF2, in sixteenths) moves it. Silence of a few clock periods counts as a Stop, since a Stop can
be lost (a cable pulled, a laptop asleep).

The tempo is the slope of a least-squares line through (clock number, arrival time) over the last `WINDOW` clocks:
the mean of clock intervals swings by several BPM at 120 under ordinary USB jitter, the fitted slope by a fraction
of one, and a clock held up on its way (a busy interpreter) is left out of the fit. When `RUNAWAY` clocks in a row
land off the line on the same side, either the tempo changed or every clock now comes later (or sooner) than
before: a stalled audio server, a resynchronised interface. The fit starts a new segment from them, and while the
new segment's slope agrees with the old one within their errors, both segments' clocks give the slope (one line's
slope, two offsets): a delay that stays costs no accuracy, and a new tempo is read within a beat or two instead of
a whole window. The beat is read off the fitted line, not off the newest arrival.

Arrival time: `time.perf_counter()` when the message reaches Python (rtmidi's thread), not rtmidi's delta times:
those are lost with every message rtmidi filters out, and JACK stamps them at its period anyway. The cost is the
wait for the interpreter lock, which the fit averages out. The callback only stamps and queues (with JACK it runs
on the server's cycle: a fit there made the server drop other clients' MIDI); a thread of its own
(`vj-midi-clock`) fits and publishes.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from vj.control.midi import MidiInput
from vj.control.tempo import Tempo

CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
CLOCKS_PER_BEAT = 24
WINDOW = 4 * CLOCKS_PER_BEAT            # clocks in the fit: 4 beats
MIN_FIT = 6                             # clocks before a tempo is given (a quarter of a beat)
RUNAWAY = 3                             # clocks in a row off the line, on the same side: a new segment
RUNAWAY_S = 0.003                       # ... off by more than this (or 15% of a clock period, if more)
OUTLIER_FLOOR_S = 0.0005                # clocks off the line by less than this are never left out of the fit
JITTER_FLOOR_S = 0.0002                 # the least timing noise a fit's error assumes
AGREE_SIGMAS = 4.0                      # segments' slopes this many standard errors apart: a new tempo
SILENCE_PERIODS = 3.0                   # clock periods without a clock that count as stopped ...
MIN_SILENCE_S = 0.25                    # ... but never less than this


@dataclass(frozen=True)
class ClockState:
    """What a reading needs, published by single assignment after each message (readers never wait)."""
    period: float = 0.0                 # seconds per clock from the fit; 0 = no tempo yet
    line_n: float = 0.0                 # the fitted line: clock number line_n arrives at line_t ...
    line_t: float = 0.0
    last_n: int = 0                     # the newest clock's number
    last_at: float = -1e9               # its arrival time (perf_counter)
    played: int | None = None           # song position (clocks) the newest clock played; None: none since Start
    position: int = 0                   # song position (clocks) the next clock plays
    running: bool = False               # between Start/Continue and Stop (or silence)
    armed_at: float = -1e9              # arrival of the newest Start or Continue

    def silence_s(self) -> float:
        return max(MIN_SILENCE_S, SILENCE_PERIODS * self.period)


@dataclass(frozen=True)
class Fit:
    """A least-squares line through (clock number, arrival time), as centred sums: clock numbers and perf_counter
    times both grow large over a show."""
    count: int
    mean_n: float
    mean_t: float
    snn: float                          # sum of (n - mean_n)^2
    snt: float                          # sum of (n - mean_n)(t - mean_t)
    noise: float                        # residual variance (s^2), at least JITTER_FLOOR_S^2

    @property
    def period(self) -> float:
        return self.snt / self.snn

    def at(self, n: float) -> float:
        """When clock number n arrives on this line."""
        return self.mean_t + (n - self.mean_n) * self.period


def _least_squares(points: list[tuple[int, float]]) -> Fit:
    n0, t0 = points[0]
    count = len(points)
    mean_n = sum(n - n0 for n, _ in points) / count
    mean_t = sum(t - t0 for _, t in points) / count
    snn = sum((n - n0 - mean_n) ** 2 for n, _ in points)
    snt = sum((n - n0 - mean_n) * (t - t0 - mean_t) for n, t in points)
    residuals = sum((t - t0 - mean_t - (n - n0 - mean_n) * snt / snn) ** 2 for n, t in points)
    noise = max(residuals / max(count - 2, 1), JITTER_FLOOR_S ** 2)
    return Fit(count, n0 + mean_n, t0 + mean_t, snn, snt, noise)


def fit_line(points: deque[tuple[int, float]] | list[tuple[int, float]]) -> Fit:
    """The least-squares line, fitted again without the clocks far off the first one: one clock held up 5 ms (a
    busy interpreter, a USB hiccup) near the end of the window would move 174 BPM by 0.15."""
    points = list(points)
    fit = _least_squares(points)
    if len(points) < 8:
        return fit
    residuals = [abs(t - fit.at(n)) for n, t in points]
    limit = max(4 * 1.4826 * sorted(residuals)[len(residuals) // 2], OUTLIER_FLOOR_S)  # 4 robust sigmas
    kept = [p for p, r in zip(points, residuals) if r <= limit]
    return _least_squares(kept) if len(points) > len(kept) >= len(points) // 2 else fit


def pooled_period(new: Fit, old: Fit | None) -> float | None:
    """The slope of one line through both segments, each at its own offset, if their slopes agree (None if not:
    a new tempo). A segment of a few clocks cannot tell yet: the old slope holds it."""
    if old is None:
        return new.period
    if new.count < MIN_FIT:
        return old.period
    noise = max(new.noise, old.noise)  # one device's jitter: a few clocks' scatter alone can look too small
    if abs(new.period - old.period) > AGREE_SIGMAS * (noise / new.snn + noise / old.snn) ** 0.5:
        return None
    return (new.snt + old.snt) / (new.snn + old.snn)


class ClockFollower:
    """MIDI clock bytes in (`feed(message, arrival time)`, from one thread), `Tempo` readings out (`reading(now)`,
    from any): pure logic, no ports, so the tests can feed it exact times."""

    name = "midi_clock"

    def __init__(self) -> None:
        self.state = ClockState()
        self._points: deque[tuple[int, float]] = deque(maxlen=WINDOW)  # the segment's clocks: (number, arrival)
        self._previous: Fit | None = None  # the segment before, while the slopes agree
        self._runaway: list[float] = []  # residuals of the clocks in a row off the line

    def feed(self, message: list[int], at: float) -> None:
        if not message or message[0] not in (CLOCK, START, CONTINUE, STOP, SONG_POSITION):
            return
        s = self.state
        if at - s.last_at > s.silence_s():
            # No clock for a while: stopped (a Stop may have been lost) unless started since; the tempo is read
            # afresh from the clocks to come
            self._points.clear()
            self._previous = None
            self._runaway.clear()
            s = replace(s, period=0.0, running=s.running and s.armed_at > s.last_at)
        kind = message[0]
        if kind == CLOCK:
            s = self._clock(s, at)
        elif kind == START:
            s = replace(s, running=True, position=0, played=None, armed_at=at)
        elif kind == CONTINUE:
            s = replace(s, running=True, played=None, armed_at=at)
        elif kind == STOP:
            s = replace(s, running=False)
        elif len(message) >= 3:  # song position: sixteenths, 6 clocks each
            s = replace(s, position=6 * (message[1] | message[2] << 7), played=None)
        self.state = s  # one assignment: readers see the old state or the new one

    def _clock(self, s: ClockState, at: float) -> ClockState:
        n = s.last_n + 1
        if len(self._points) >= MIN_FIT and s.period > 0:
            residual = at - (s.line_t + (n - s.line_n) * s.period)
            same_side = not self._runaway or residual * self._runaway[-1] > 0
            if abs(residual) > max(RUNAWAY_S, 0.15 * s.period) and same_side:
                self._runaway.append(residual)
            else:
                self._runaway.clear()
            if len(self._runaway) >= RUNAWAY:  # a new segment from the clocks off the line
                points = list(self._points)
                self._previous = fit_line(points[:1 - RUNAWAY])
                self._points.clear()
                self._points.extend(points[1 - RUNAWAY:])
                self._runaway.clear()
        self._points.append((n, at))
        if len(self._points) == WINDOW:
            self._previous = None  # the segment fills the window by itself
        period, line_n, line_t = s.period, s.line_n, s.line_t
        if len(self._points) >= 2:
            fit = fit_line(self._points)
            pooled = pooled_period(fit, self._previous)
            if pooled is None:  # a new tempo: the segment before has nothing more to say
                self._previous, pooled = None, fit.period
            if pooled > 0 and (fit.count >= MIN_FIT or s.period > 0):  # the first tempo from MIN_FIT clocks
                period, line_n, line_t = pooled, fit.mean_n, fit.mean_t
        played, position = (s.position, s.position + 1) if s.running else (s.played, s.position)
        return ClockState(period, line_n, line_t, n, at, played, position, s.running, s.armed_at)

    def reading(self, now: float) -> Tempo:
        s = self.state
        silent = now - s.last_at > s.silence_s()
        if silent or s.period <= 0:
            return Tempo(0.0, s.position / CLOCKS_PER_BEAT, now, False, self.name)
        bpm = 60.0 / (CLOCKS_PER_BEAT * s.period)
        if not s.running or s.played is None:  # stopped, or started and waiting for the first clock
            return Tempo(bpm, s.position / CLOCKS_PER_BEAT, now, False, self.name)
        fitted_last = s.line_t + (s.last_n - s.line_n) * s.period  # when the newest clock should have come
        beat = (s.played + (now - fitted_last) / s.period) / CLOCKS_PER_BEAT
        return Tempo(bpm, beat, now, True, self.name)


class MidiClockIn:
    """The `TempoSource` of MIDI clock on the input ports whose names contain `port_match` (reopened when they
    come back, as the controller input's are)."""

    name = "midi_clock"

    def __init__(self, port_match: str):
        self.follower = ClockFollower()
        self._queue: queue.SimpleQueue[tuple[float, list[int]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._follow, name="vj-midi-clock", daemon=True)
        self._thread.start()
        put = self._queue.put
        self.midi = MidiInput(port_match, lambda message: put((time.perf_counter(), message)), timing=True).start()

    def _follow(self) -> None:
        while (item := self._queue.get()) is not None:
            self.follower.feed(item[1], item[0])

    def read(self) -> Tempo:
        return self.follower.reading(time.perf_counter())

    def close(self) -> None:
        self.midi.stop()
        self._queue.put(None)
        self._thread.join(timeout=1.0)
