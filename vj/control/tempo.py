"""The show's tempo from one of several sources, as one reading: tempo, where the beat and the bar are, playing.

Sources: vj's own beat tracker (the audio), Ableton Link (a follower: it never changes the session's tempo unless
asked), MIDI clock in. Every source answers `read()` with a `Tempo` taken at one instant; the beat grid is
continuous (beats since the source's origin), so any later instant's beat is the reading's extrapolation, and a cue
can be held to the next beat, bar or phrase boundary (`next_boundary`).

`control.tempo_source` picks one (`open_tempo`), or "auto": Link while a peer is there, then MIDI clock while
clocks arrive, then the audio (`TempoSelector`). The audio features the engine and the effects see take their
beat from the source in use (`TempoSelector.features`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Protocol

from vj.audio.features import AudioFeatures
from vj.errors import UserError

if TYPE_CHECKING:
    from vj.config import ControlConfig

log = logging.getLogger(__name__)

LABELS = {"audio": "audio", "link": "Link", "midi_clock": "MIDI clock"}  # for people: HUD, log
AUTO_ORDER = ("link", "midi_clock")     # "auto": the first of these with a tempo, else the audio
QUANTA = {"off": 0.0, "beat": 1.0, "bar": 4.0, "2bars": 8.0, "4bars": 16.0}  # cues.quantize -> beats (4/4)


@dataclass(frozen=True)
class Tempo:
    bpm: float                          # beats per minute; 0 = unknown (no grid)
    beat: float                         # beats since the grid's origin at `at` (beat 0 is a downbeat)
    at: float                           # time.perf_counter() of the reading
    playing: bool                       # the source's transport runs (a tracker: it hears a beat)
    source: str                         # "audio", "link" or "midi_clock"
    quantum: float = 4.0                # beats per bar

    @property
    def running(self) -> bool:
        """A grid to follow: a tempo known and the transport playing."""
        return self.bpm > 0 and self.playing

    def beat_at(self, now: float) -> float:
        """The grid's beat at perf_counter time `now` (extrapolated at the reading's tempo)."""
        return self.beat + (now - self.at) * self.bpm / 60.0

    @property
    def beat_phase(self) -> float:
        """0..1 within the beat, at the reading."""
        return self.beat % 1.0

    @property
    def bar_phase(self) -> float:
        """0..1 within the bar, at the reading."""
        return (self.beat % self.quantum) / self.quantum

    def next_boundary(self, now: float, beats: float) -> float:
        """perf_counter time of the first multiple of `beats` on the grid at or after `now` (now itself when there
        is no grid: no tempo, stopped, or beats <= 0)."""
        if beats <= 0 or not self.running:
            return now
        beat = self.beat_at(now)
        target = math.ceil(beat / beats - 1e-9) * beats
        return now + (target - beat) * 60.0 / self.bpm


class TempoSource(Protocol):
    name: str

    def read(self) -> Tempo:
        """The newest reading; never blocks (the render loop asks once per displayed frame)."""
        ...

    def close(self) -> None:
        ...


class BeatCounter:
    """The beat tracker's readings as a continuous beat count (the tracker knows no bars: its beat 0 is not a
    downbeat). Between two readings the tempo says how far the beat moved on, the phase where it landed: the beats
    passed are the whole number that reconciles the two, so readings may come at any rate (a render at 5 fps of a
    track at 180 BPM reads less than twice a beat)."""

    def __init__(self) -> None:
        self._t, self._phase, self._beats = -1.0, 0.0, 0

    def reading(self, f: AudioFeatures, now: float) -> Tempo:
        """The tempo `f` says, read at time `now` (perf_counter live; the audio's time in a render)."""
        if f.t != self._t:
            if f.bpm > 0 and self._t >= 0:
                moved = (f.t - self._t) * f.bpm / 60.0  # beats, by the tempo
                self._beats += max(0, round(moved - (f.beat_phase - self._phase)))
            self._t, self._phase = f.t, f.beat_phase
        return Tempo(f.bpm, self._beats + f.beat_phase, now, f.bpm > 0, "audio")

    def shift(self, beats: int) -> None:
        """Moves the count by whole beats (where the bars start; the beat itself stays)."""
        self._beats += beats


class AudioTempo:
    """vj's own beat tracker as a `TempoSource`: the tempo and phase it hears, its beats counted (`BeatCounter`)."""

    name = "audio"

    def __init__(self, features: Callable[[], AudioFeatures]):
        self.features = features
        self._lock = threading.Lock()   # the render loop and the engine both read; nothing real-time waits on it
        self._counter = BeatCounter()

    def read(self) -> Tempo:
        f, now = self.features(), time.perf_counter()
        with self._lock:
            return self._counter.reading(f, now)

    def mark_downbeat(self, now: float, quantum: int = 4) -> bool:
        """The beat nearest `now` becomes the first of a bar (a performer's tap on the one): from then on the bars,
        and cues held to them, fall where the music's do. False while the tracker has no beat."""
        f = self.features()
        with self._lock:
            reading = self._counter.reading(f, time.perf_counter())
            if reading.bpm <= 0:
                return False
            self._counter.shift(-round(reading.beat_at(now)) % quantum)
            return True

    def close(self) -> None:
        pass


def with_tempo(features: AudioFeatures, tempo: Tempo, now: float, hop_s: float, release_s: float) -> AudioFeatures:
    """`features` with the beat of `tempo` at perf_counter time `now`, as the tracker gives it: `is_beat` when a
    beat fell within the last `hop_s` (an audio block), the envelope at 1 on the beat, releasing over `release_s`.
    With no grid (no tempo yet, the transport stopped, a clock that ran before its Start was heard) the beat stays
    the one the audio hears."""
    if not tempo.running:
        return replace(features, bpm=tempo.bpm)
    beat = tempo.beat_at(now)
    since = (beat % 1.0) * 60.0 / tempo.bpm  # seconds since the last beat
    envelope = math.exp(-since / release_s) if release_s > 0 else float(since < hop_s)
    return replace(features, bpm=tempo.bpm, beat_phase=beat % 1.0, is_beat=since < hop_s, beat=envelope)


class TempoSelector:
    """The tempo source `choice` names, or for "auto" the first of `AUTO_ORDER` that has a tempo, else the audio.
    `source` is the one read last; a change is logged."""

    def __init__(self, sources: dict[str, TempoSource], choice: str = "auto"):
        if choice != "auto" and choice not in sources:
            raise ValueError(f"tempo source {choice!r} is not open (open: {', '.join(sources)})")
        self.sources, self.choice = sources, choice
        self.source = "audio" if choice == "auto" else choice

    def read(self) -> Tempo:
        reading = None
        if self.choice != "auto":
            reading = self.sources[self.choice].read()
        else:
            for name in AUTO_ORDER:
                if name in self.sources and (candidate := self.sources[name].read()).bpm > 0:
                    reading = candidate
                    break
            reading = reading or self.sources["audio"].read()
        if reading.source != self.source:
            self.source = reading.source
            log.info("tempo from %s (%.1f bpm)", LABELS[reading.source], reading.bpm)
        return reading

    def mark_downbeat(self, now: float) -> str:
        """A performer's tap on the one at perf_counter time `now`; what came of it, for the log."""
        if self.source != "audio":
            return f"the bars come from {LABELS[self.source]}: a downbeat tap leaves them"
        if not self.sources["audio"].mark_downbeat(now):
            return "no beat heard yet: a downbeat tap needs one"
        return "bars counted from this beat"

    def features(self, features: Callable[[], AudioFeatures], hop_s: float,
                 release_s: float) -> Callable[[], AudioFeatures]:
        """`features` with the beat of the source in use (the audio's own when that is the audio)."""
        def read() -> AudioFeatures:
            raw, tempo = features(), self.read()
            return raw if tempo.source == "audio" else with_tempo(raw, tempo, time.perf_counter(), hop_s, release_s)
        return read

    def close(self) -> None:
        for source in self.sources.values():
            source.close()


def open_tempo(control: ControlConfig, features: Callable[[], AudioFeatures]) -> TempoSelector:
    """The sources `control.tempo_source` asks for, opened; a source asked for by name that cannot be had (aalink
    not installed, no MIDI port to take clock from) raises a `UserError` at once."""
    choice, sources = control.tempo_source, {"audio": AudioTempo(features)}
    if choice in ("link", "auto"):
        from vj.control.link import LinkFollower, LinkUnavailable  # aalink, when installed

        try:
            sources["link"] = LinkFollower()
        except LinkUnavailable as e:
            if choice == "link":
                raise
            log.info("tempo: no Link (%s)", e)
    port = control.midi_clock_port or control.midi_port
    if choice == "midi_clock" and not port:
        raise UserError("control.tempo_source = \"midi_clock\" needs a port: control.midi_clock_port (or "
                        "control.midi_port) names it")
    if choice in ("midi_clock", "auto") and port:
        from vj.control.clock_in import MidiClockIn

        sources["midi_clock"] = MidiClockIn(port)
    return TempoSelector(sources, choice)
