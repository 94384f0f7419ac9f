"""The cue timeline: which cue is live at time t, and the prompt mix with its crossfade weights.

Pure and clock-free: callers pass the show time (audio playback position, wall clock since the start cue, or
frame index / fps offline), so the same sheet gives the same mix live, in rehearsal and in a render. A live show
may hold a `{q=...}` cue past its own time, to the tempo grid's boundary: it places the cue (`held`, a copy of the
timeline that starts those cues later; the grid is the control layer's, `vj.control.quantize.SheetQuantizer`).
"""

from __future__ import annotations

import bisect
import copy
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from vj.cues.lrc import Cue, CueSheet, LrcError, read_lrc
from vj.cues.prompts import WeightedPrompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CueState:
    index: int                          # live cue (-1 before the first)
    prompts: tuple[WeightedPrompt, ...]  # the mix, weights already multiplied by the crossfade
    since_change: float                 # seconds since the live cue started (inf before the first)
    fade: float                         # 0..1 progress of the crossfade into the live cue
    cue: Cue | None = None              # the live cue
    next_cue: Cue | None = None         # the one after it, for preview
    steps_from: int = -1                # the cue whose {steps} is in force here (-1: none so far)
    steps: int | None = None            # ... and its value
    target: tuple[WeightedPrompt, ...] = ()  # what the crossfade goes to: the live cue's own (or held) prompts


def mix(a: tuple[WeightedPrompt, ...], b: tuple[WeightedPrompt, ...], alpha: float) -> tuple[WeightedPrompt, ...]:
    """(1 - alpha) * a + alpha * b, merging prompts with the same text; zero weights dropped."""
    weights: dict[str, float] = {}
    for prompts, scale in ((a, 1.0 - alpha), (b, alpha)):
        for p in prompts:
            weights[p.text] = weights.get(p.text, 0.0) + p.weight * scale
    return tuple(WeightedPrompt(text, w) for text, w in weights.items() if w != 0.0)


class Timeline:
    def __init__(self, sheet: CueSheet, transition_s: float = 1.0, loop_s: float = 0.0):
        self.sheet = sheet
        self.cues = sheet.cues
        self.transition_s = transition_s
        self.loop_s = loop_s  # > 0: the sheet repeats every loop_s seconds (a set that cycles)
        self.times = [c.time for c in self.cues]
        self.starts: Mapping[int, float] = MappingProxyType({})  # cue index -> when it starts, if not at its time
        self.quantized = any(c.quantize not in (None, "off") for c in self.cues)  # any {q=...} cue to place
        # What each cue shows: its own prompts, or the held prompts of the cue before (empty line), or none.
        self.effective: list[tuple[WeightedPrompt, ...]] = []
        # Which cue's {steps} is in force at each cue: the director undoes a setting when the show moves back.
        self.steps_from: list[int] = []
        held: tuple[WeightedPrompt, ...] = ()
        steps_from = -1
        for i, cue in enumerate(self.cues):
            held = () if cue.clear else (cue.prompts or held)
            self.effective.append(held)
            steps_from = i if cue.steps is not None else steps_from
            self.steps_from.append(steps_from)

    def index_at(self, t: float) -> int:
        t = self.local(t)
        i = bisect.bisect_right(self.times, t) - 1
        while i >= 0 and self.starts.get(i, -1.0) > t:  # held past its time: the one before it is still on
            i -= 1
        return i

    def held(self, starts: Mapping[int, float]) -> "Timeline":
        """This timeline with cue i starting at starts[i] (sheet time, at or after its own time; a cue held past
        the start of the next one is passed over). Shares the sheet: cheap."""
        view = copy.copy(self)
        view.starts = MappingProxyType(dict(starts))
        return view

    def start_of(self, i: int) -> float:
        """Sheet time at which cue i starts (its own time unless held)."""
        return self.starts.get(i, self.times[i])

    def jump(self, kind: str, value: float, now: float) -> float | None:
        """Where a cue jump at show time `now` goes: "cue_next", "cue_prev", or "cue_goto" cue `value` (0-based).
        None when there is no such cue."""
        i = self.index_at(now)
        target = {"cue_next": i + 1, "cue_prev": max(i - 1, 0), "cue_goto": int(value)}[kind]
        return self.cues[target].time if 0 <= target < len(self.cues) else None

    def local(self, t: float) -> float:
        """Show time to sheet time (wrapped when looping)."""
        return t % self.loop_s if self.loop_s > 0 else t

    def at(self, t: float) -> CueState:
        t = self.local(t)
        i = self.index_at(t)
        next_cue = self.cues[i + 1] if i + 1 < len(self.cues) else None
        if i < 0:
            return CueState(-1, (), float("inf"), 1.0, None, next_cue)
        cue = self.cues[i]
        since = t - self.start_of(i)
        transition = self.transition_s if cue.transition is None else cue.transition
        previous = self.effective[i - 1] if i > 0 else ()
        # Out of nothing (the first cue, or after a clear) a prompt takes hold at once; between prompts it fades.
        fade = 1.0 if transition <= 0 or not previous else min(1.0, since / transition)
        steps_from = self.steps_from[i]
        return CueState(i, mix(previous, self.effective[i], fade), since, fade, cue, next_cue, steps_from,
                        self.cues[steps_from].steps if steps_from >= 0 else None, self.effective[i])


class WatchedTimeline:
    """A timeline backed by a cue sheet file, reloaded when the file changes. The edit is parsed on a thread, so the
    render loop that asks never waits on a long sheet; a bad edit keeps the last good sheet and leaves the reason in
    `error` (for the HUD and log), so the show never stops on a typo. Skipped lines are logged as each sheet is
    taken in."""

    def __init__(self, path: str | Path, transition_s: float = 1.0, lenient: bool = True, loop_s: float = 0.0):
        self.path, self.transition_s, self.lenient, self.loop_s = Path(path), transition_s, lenient, loop_s
        self.error: str | None = None
        self._seen = self._version()    # the file version the sheet (or the parse under way) came from
        self.timeline = Timeline(read_lrc(self.path, lenient=lenient), transition_s, loop_s)  # a bad start: raises
        for warning in self.timeline.sheet.warnings:
            log.warning(warning)
        self._parsing: threading.Thread | None = None
        self._result: tuple[Timeline | None, str | None] | None = None  # set once by the parsing thread

    def _version(self) -> tuple[int, int]:
        info = self.path.stat()
        return info.st_mtime_ns, info.st_size

    def reload_if_changed(self) -> bool:
        """Takes in a finished parse and starts one for a newer edit; returns True when a new sheet took effect.
        A new sheet, its skipped lines and each new error are logged once. Never waits for a parse: call it as
        often as convenient."""
        reported, swapped = self.error, self._take_parse()
        if swapped:
            log.info("cue sheet %s reloaded (%d cues)", self.path, len(self.timeline.cues))
            for warning in self.timeline.sheet.warnings:
                log.warning(warning)
        elif self.error and self.error != reported:
            log.warning(self.error)
        return swapped

    def _take_parse(self) -> bool:
        swapped = False
        if self._parsing is not None and not self._parsing.is_alive():
            self._parsing.join()
            timeline, error = self._result or (None, "the parse ended without a result")
            self._parsing, self._result = None, None
            if timeline is not None:
                self.timeline, self.error, swapped = timeline, None, True
            else:
                self.error = f"{error}; keeping the last good cue sheet"
        if self._parsing is None:
            try:
                version = self._version()
            except OSError as e:
                self.error = f"{self.path}: {e.strerror or e}; keeping the last good cue sheet"
                return swapped
            if version != self._seen:
                self._seen = version
                self._parsing = threading.Thread(target=self._parse, name="vj-cue-sheet", daemon=True)
                self._parsing.start()
        return swapped

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for a parse under way (tests, tools); True when none is left running."""
        parsing = self._parsing
        if parsing is not None:
            parsing.join(timeout)
            return not parsing.is_alive()
        return True

    def _parse(self) -> None:  # on the parsing thread: its only write is the one assignment of _result
        try:
            sheet = read_lrc(self.path, lenient=self.lenient, require_cues=False)
            if not sheet.cues:  # a file caught half-saved, or emptied by mistake
                self._result = (None, f"{self.path}: the edit has no cues left")
            else:
                self._result = (Timeline(sheet, self.transition_s, self.loop_s), None)
        except LrcError as e:
            self._result = (None, str(e))
        except Exception as e:  # noqa: BLE001 - whatever an edit holds, the show goes on with the last good sheet
            self._result = (None, f"{self.path}: {type(e).__name__}: {e}")
