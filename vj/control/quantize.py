"""Changes on the beat: a performer's cue jump or live prompt (OSC, MIDI, keys) waits for the next boundary of the
tempo grid (`cues.quantize`: a beat, a bar, 2 or 4 bars), and so does a cue sheet's `{q=...}` cue, each taken
`cues.lookahead_ms` early to cover the time a frame takes to reach the screen, so the picture turns on the
downbeat. With no grid (no tempo yet, transport stopped) a change takes effect at once: a performer is never left
waiting on a clock that is not there, and a sheet cue keeps its own time."""

from __future__ import annotations

import bisect

from vj.control.state import Event
from vj.control.tempo import QUANTA, Tempo
from vj.cues.timeline import Timeline

HORIZON_S = 0.5                         # sheet cues this close ahead are placed on the grid (longer than a frame)
BOUNDARIES = {"beat": "the beat", "bar": "the bar", "2bars": "the 2-bar line", "4bars": "the 4-bar line"}


def on_grid(tempo: Tempo, at: float, beats: float, lookahead_s: float) -> float:
    """perf_counter time of the grid's first multiple of `beats` at or after `at + lookahead_s`, less the lookahead;
    `at` itself with no grid (exactly: `at + lookahead_s - lookahead_s` can round a step later). Never before `at`."""
    if beats <= 0 or not tempo.running:
        return at
    return max(at, tempo.next_boundary(at + lookahead_s, beats) - lookahead_s)


class Quantizer:
    """Performers' changes (`Event`s: cue jumps, seeks, the start cue, live prompts) held to the grid."""

    def __init__(self, quantize: str = "off", lookahead_s: float = 0.0):
        if quantize not in QUANTA:
            raise ValueError(f"cues.quantize must be one of {', '.join(QUANTA)}, got {quantize!r}")
        self.quantize, self.beats, self.lookahead_s = quantize, QUANTA[quantize], lookahead_s
        self.pending: list[tuple[float, Event]] = []  # (perf_counter time it is due, the event), in order

    def offer(self, event: Event, tempo: Tempo, now: float) -> None:
        """Holds the event until its boundary (at once when quantize is off or there is no grid)."""
        self.pending.append((on_grid(tempo, now, self.beats, self.lookahead_s), event))

    def due(self, now: float) -> list[Event]:
        """The held events whose time has come, in the order they were offered."""
        ready = [event for at, event in self.pending if at <= now]
        self.pending = [(at, event) for at, event in self.pending if at > now]
        return ready

    def regrid(self, tempo: Tempo, now: float) -> None:
        """The grid moved (a downbeat tap): what is held goes to the new grid's next boundary (what is due already
        stays due)."""
        self.pending = [(at if at <= now else on_grid(tempo, now, self.beats, self.lookahead_s), event)
                        for at, event in self.pending]

    def waiting(self) -> str:
        """What waits for the grid, for people (the HUD, a control surface): "held for the bar: next cue (midi),
        prompt (osc)"; "" when nothing does. A performer who pressed a button sees it was taken."""
        if not self.pending:
            return ""
        return f"held for {BOUNDARIES.get(self.quantize, 'the grid')}: " + ", ".join(
            f"{_what(event)} ({event.source})" if event.source else _what(event) for _, event in self.pending)


def _what(event: Event) -> str:
    return {"cue_next": "next cue", "cue_prev": "previous cue", "cue_goto": f"cue {int(event.value)}",
            "seek": f"seek to {event.value:.1f} s", "start": "start", "prompt": "prompt"}.get(event.kind, event.kind)


class SheetQuantizer:
    """Places a cue sheet's `{q=...}` cues on the tempo grid: such a cue takes effect at the grid's first boundary
    at or after its own time, less the lookahead; one whose boundary comes after the next cue has started is passed
    over. The grid is in perf_counter time (a render's: the audio's time) and the sheet in show time: the show clock
    is taken to run at a second a second from the frame's `now`.

    Each displayed frame, `place` places afresh (with the newest tempo) the cues coming within `HORIZON_S` of sheet
    time; once the show reaches a cue's own time its place is kept until it has been passed. A jump of the show time
    (a seek, a cue jump) calls `reset`: a cue jumped to starts at once, since the jump was what was held to the
    grid. A loop coming round places its first cues afresh, from the places found before it came round."""

    def __init__(self, lookahead_s: float = 0.0):
        self.lookahead_s = lookahead_s
        self._base: Timeline | None = None  # the timeline the places are for
        self._view: Timeline | None = None  # ... with its cues held: what the engine, the HUD and feedback read
        self._reached: dict[int, float] = {}  # cue -> sheet time it starts, for cues whose own time has come
        self._ahead: dict[int, tuple[float, bool]] = {}  # cue -> (its start, in the loop's next pass), coming
        self._local = -1.0              # the sheet time last placed at (a loop coming round goes back)

    @property
    def timeline(self) -> Timeline | None:
        return self._view

    def reset(self) -> None:
        """The show time jumped: every cue at its own time until the next `place`."""
        self._view, self._reached, self._ahead, self._local = self._base, {}, {}, -1.0

    def place(self, timeline: Timeline | None, show_t: float, running: bool, tempo: Tempo,
              now: float) -> Timeline | None:
        """The timeline as the show sees it at show time `show_t`, perf_counter time `now`."""
        if timeline is not self._base:  # another sheet (an edit): places by cue index mean nothing for it
            self._base = timeline
            self.reset()
        if timeline is None or not timeline.quantized or not running:
            return self._view
        local = timeline.local(show_t)
        came_round = timeline.loop_s > 0 and local < self._local
        i = bisect.bisect_right(timeline.times, local) - 1  # the last cue whose own time has come
        candidates = {} if came_round else dict(self._reached)
        candidates.update((j, start) for j, (start, next_pass) in self._ahead.items() if next_pass == came_round)
        reached = {j: start for j, start in candidates.items() if j <= i}
        on = i
        while on >= 0 and reached.get(on, -1.0) > local:
            on -= 1
        self._reached = {j: start for j, start in reached.items() if start > local or j == on}
        self._ahead = self._coming(timeline, i, local, tempo, now)
        self._local = local
        starts = self._reached | {j: start for j, (start, next_pass) in self._ahead.items() if not next_pass}
        if starts != dict(self._view.starts):
            self._view = timeline.held(starts)
        return self._view

    def _coming(self, timeline: Timeline, i: int, local: float, tempo: Tempo,
                now: float) -> dict[int, tuple[float, bool]]:
        """The places of the `{q}` cues after cue i (by their own times) within the horizon, some perhaps in the
        loop's next pass: cue -> (the sheet time it starts, in the next pass)."""
        cues, times, loop, n = timeline.cues, timeline.times, timeline.loop_s, len(timeline.cues)
        places: dict[int, tuple[float, bool]] = {}
        for k in range(1, n + 1):
            j, next_pass = (i + k) % n, i + k >= n
            if next_pass and loop <= 0:
                break
            ahead = times[j] + (loop if next_pass else 0.0) - local  # sheet seconds to its own time
            if ahead > HORIZON_S:
                break
            beats = QUANTA.get(cues[j].quantize or "off", 0.0)
            start = on_grid(tempo, now + ahead, beats, self.lookahead_s) - now if beats else ahead
            if start > ahead:
                places[j] = (times[j] + start - ahead, next_pass)
        return places
