"""The one show state: named parameters with ranges, the live prompt override and flags, as immutable snapshots.

Writers (OSC, MIDI, keyboard, timeline) go through `set()`; it validates, clamps, builds a new snapshot and
swaps it in with one assignment. Readers (engine worker, render loop) take `snapshot()` without any lock, so a
burst of control messages can never stall a frame. Every change records who made it, for the HUD and logs.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

from vj.config import DirectorConfig
from vj.errors import UserError


@dataclass(frozen=True)
class Param:
    name: str
    default: float
    low: float
    high: float
    unit: str = ""
    help: str = ""

    def clamp(self, value: float) -> float:
        return min(self.high, max(self.low, value))


PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("steps_per_frame", 3, 0, 16, "steps", "guided steps per generated frame (0 = hold the image)"),
    Param("lr_scale", 1.0, 0.0, 4.0, "x", "multiplies the optimiser's step size"),
    Param("audio_gain", 1.0, 0.0, 4.0, "x", "how much the onset envelope raises the step size"),
    Param("feedback", 1.0, 0.0, 1.0, "", "trails effect amount"),
    Param("zoom_pulse", 1.0, 0.0, 1.0, "", "beat zoom effect amount"),
    Param("hue_shift", 0.3, 0.0, 1.0, "", "hue rotation amount"),
    Param("rgb_split", 1.0, 0.0, 1.0, "", "chromatic split amount"),
    Param("kaleidoscope", 0.0, 0.0, 1.0, "", "kaleidoscope mix"),
    Param("vignette", 1.0, 0.0, 1.0, "", "vignette amount"),
    Param("motion_rotate", 0.3, 0.0, 1.0, "", "rotation kick of the generator's view on each beat"),
    Param("motion_drift", 0.3, 0.0, 1.0, "", "how far the generator's view drifts (faster with the bass)"),
)}


CHANGES_KEPT = 4096                     # latest changes kept for the control log (it reads them every frame)
MAX_SEEK_S = 24 * 3600.0                # the furthest show time a seek may ask for: a day (1e30 s froze the clock)
EVENTS = ("start", "cue_next", "cue_prev", "cue_goto", "seek",  # discrete transport events (queued, not values)
          "downbeat")  # the beat nearest now is a bar's first (vj's own tracker knows no bars)


@dataclass(frozen=True)
class Event:
    kind: str                           # one of EVENTS, or "prompt" (a live prompt held to the beat grid)
    value: float = 0.0                  # cue index for cue_goto, seconds for seek; start: the show clock to 0
    source: str = ""                    # who sent it (osc, midi, key)
    text: str | None = None             # "prompt": the live prompt (None: back to the cue sheet's)


class ControlError(UserError, ValueError):
    """A control message that cannot be applied; the message says which parameter and why."""


@dataclass(frozen=True)
class ShowSnapshot:
    values: Mapping[str, float]         # every parameter's current value
    prompt_override: str | None = None  # live prompt text (weighted syntax) that replaces the cue's, or None
    freeze: bool = False                # hold the current image (no guided steps)
    blackout: bool = False              # output black
    quit: bool = False                  # the show should end
    last_change: tuple[str, str, float] = ("", "", 0.0)  # (what, source, wall time)
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # param -> who set it last
    version: int = 0


class ShowState:
    @classmethod
    def from_config(cls, cfg: DirectorConfig) -> "ShowState":
        """A show state whose live-changeable values start at the director's config."""
        return cls({"steps_per_frame": cfg.steps_per_frame, "audio_gain": cfg.audio_gain})

    def __init__(self, defaults: Mapping[str, float] | None = None):
        values = {name: p.default for name, p in PARAMS.items()}
        values.update(defaults or {})
        self._snapshot = ShowSnapshot(MappingProxyType(values))
        self._write_lock = threading.Lock()  # between writers only; readers never take it
        # (time, source, what, value) of the latest changes, for the control log; bounded, so a long show with
        # heavy control traffic does not grow without end. change_count counts every change ever made.
        self.changes: deque[tuple[float, str, str, object]] = deque(maxlen=CHANGES_KEPT)
        self.change_count = 0
        self.events: deque[Event] = deque(maxlen=256)  # appended by listeners, drained by the show loop
        self.hold_prompts = False       # live prompts wait in `events` for the show loop (cues.quantize: the beat)
        self.cue_count: int | None = None  # cues in the show's cue sheet, kept by the show loop (None: not known)

    def snapshot(self) -> ShowSnapshot:
        return self._snapshot

    def _swap(self, source: str, what: str, value: object, **updates) -> ShowSnapshot:
        with self._write_lock:
            now = time.time()
            current = self._snapshot
            self._snapshot = replace(current, last_change=(what, source, now), version=current.version + 1, **updates)
            self._record_change((now, source, what, value))
            return self._snapshot

    def _record_change(self, change: tuple[float, str, str, object]) -> None:  # under the write lock
        self.changes.append(change)
        self.change_count += 1

    def changes_since(self, count: int) -> tuple[list[tuple[float, str, str, object]], int]:
        """The changes after the first `count` ever made (those still kept), and the new count."""
        with self._write_lock:  # only the new ones are copied: under a flood of control messages this runs every
            total = self.change_count  # frame while the deque holds thousands
            new = min(total - count, len(self.changes))
            held = [self.changes[-i] for i in range(new, 0, -1)]
        return held, total

    def set(self, name: str, value: float, source: str) -> float:
        """Sets a parameter (clamped to its range); returns the value applied."""
        param = PARAMS.get(name)
        if param is None:
            raise ControlError(f"unknown parameter {name!r} (known: {', '.join(PARAMS)})")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ControlError(f"parameter {name} needs a number, got {value!r}") from None
        if not math.isfinite(value):
            raise ControlError(f"parameter {name} needs a finite number, got {value!r}")
        value = param.clamp(value)
        with self._write_lock:  # read-modify-write of the whole mapping: writers must not interleave
            current = self._snapshot
            values = dict(current.values)
            values[name] = value
            sources = dict(current.sources)
            sources[name] = source
            self._snapshot = replace(current, values=MappingProxyType(values), sources=MappingProxyType(sources),
                                     last_change=(name, source, time.time()), version=current.version + 1)
            self._record_change((time.time(), source, name, value))
        return value

    def set_prompt(self, text: str | None, source: str) -> None:
        """Puts a live prompt on stage now (None or "": back to the cue sheet's)."""
        self._swap(source, "prompt", text, prompt_override=text or None)

    def request_prompt(self, text: str | None, source: str) -> None:
        """A performer's live prompt (OSC, MIDI): on stage at once, or with `hold_prompts` queued as a "prompt"
        event for the show loop, which puts it on stage at the beat grid's boundary, as it does a cue jump. The
        control log has it when it goes on stage (`set_prompt`)."""
        if self.hold_prompts:
            self.events.append(Event("prompt", 0.0, source, text or None))
        else:
            self.set_prompt(text, source)

    def post(self, kind: str, value: float = 0.0, source: str = "") -> None:
        """Queues a discrete event (cue next/prev/goto, seek) for the show loop, which owns the clock."""
        if kind not in EVENTS:
            raise ControlError(f"unknown event {kind!r} (known: {', '.join(EVENTS)})")
        value = float(value)
        if not math.isfinite(value):
            raise ControlError(f"{kind} needs a finite number, got {value!r}")
        self.events.append(Event(kind, value, source))
        with self._write_lock:
            self._record_change((time.time(), source, kind, value))

    def drain_events(self) -> list[Event]:
        out = []
        while self.events:
            out.append(self.events.popleft())
        return out

    def set_flag(self, flag: str, on: bool, source: str) -> None:
        if flag not in ("freeze", "blackout", "quit"):
            raise ControlError(f"unknown flag {flag!r}")
        self._swap(source, flag, bool(on), **{flag: bool(on)})
