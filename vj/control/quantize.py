"""Cue changes on the beat: a performer's cue jump (OSC, MIDI, keys) waits for the next boundary of the tempo
grid (`cues.quantize`: a beat, a bar, 2 or 4 bars), taken `cues.lookahead_ms` early to cover the time a frame
takes to reach the screen, so the picture turns on the downbeat. With no grid (no tempo yet, transport stopped)
a jump takes effect at once: a performer is never left waiting on a clock that is not there."""

from __future__ import annotations

from vj.control.state import Event
from vj.control.tempo import QUANTA, Tempo


class Quantizer:
    def __init__(self, quantize: str = "off", lookahead_s: float = 0.0):
        if quantize not in QUANTA:
            raise ValueError(f"cues.quantize must be one of {', '.join(QUANTA)}, got {quantize!r}")
        self.beats, self.lookahead_s = QUANTA[quantize], lookahead_s
        self.pending: list[tuple[float, Event]] = []  # (perf_counter time it is due, the event), in order

    def offer(self, event: Event, tempo: Tempo, now: float) -> None:
        """Holds the event until its boundary (at once when quantize is off or there is no grid)."""
        boundary = tempo.next_boundary(now + self.lookahead_s, self.beats) - self.lookahead_s
        self.pending.append((max(now, boundary), event))

    def due(self, now: float) -> list[Event]:
        """The held events whose time has come, in the order they were offered."""
        ready = [event for at, event in self.pending if at <= now]
        self.pending = [(at, event) for at, event in self.pending if at > now]
        return ready
