"""The control log of a recorded show, and its replay.

JSON lines, one per change: `{"wall": 12.5, "t": 42.0, "source": "osc", "what": "hue_shift", "value": 0.75}`, where
`wall` is seconds since the show began (the recording's time axis: the audience's time) and `t` the show time then
(the cue sheet's clock, which seeks, cue jumps and a start cue move). The first line (`what = "show"`) holds what a
replay needs to rebuild the show: the config, the cue sheet's path, how the show ran; `clock` lines say where the
show clock stood whenever it was set (and whether it was running); the last (`what = "end"`) when the show ended.
Cue changes the timeline made are logged for people (`source = "timeline"` or `"cue"`) and re-derived from the
cue sheet on replay; where the show's tempo came from is logged for people too (`what = "tempo"`: audio, link
or midi_clock; a replay takes its beat from the audio). The places of the cue sheet's `{q=...}` cues on the show's
tempo grid are not re-derived (a replay has no Link peer or clock to ask): `cue_starts` lines say, each time they
change, where the show started each held cue (`{"3": 41.02}`: cue 3 at sheet time 41.02 s).

`ControlReplay` applies the logged changes to a `ShowState` as wall time passes and gives the show time at each
moment, so `vj replay` renders the show through the same `Director` as the live engine, cue jumps included.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from vj.config import Config, ConfigError, from_dict
from vj.control.state import EVENTS, PARAMS, ControlError, ShowState
from vj.cues.timeline import Timeline
from vj.errors import UserError

log = logging.getLogger(__name__)

FORMAT = 1
DERIVED_SOURCES = ("timeline", "cue")    # re-derived from the cue sheet on replay
FLAGS = ("freeze", "blackout", "quit")
MOVED_S = 0.001                         # a held cue's start that moved less than this is not logged again


class ShowLogError(UserError, ValueError):
    """A control log that cannot be replayed; the message names the file and line."""


class ControlLogWriter:
    """Writes the control log. A live show calls `begin` when it starts, then, once per displayed frame,
    `follow(state, show_time)` (the show state's new changes, each at the time it happened) and `cue(...)`.

    The render loop never waits on the file: lines go to a thread of its own (`vj-control-log`), which writes and
    flushes whatever has queued up, so a crash keeps all but the last moment. Within one frame only the last change
    a source (OSC, MIDI, a key) made to a parameter is kept: a replay renders frames, and no frame ever showed the
    values in between (a fader swept by 10 000 OSC messages a second is 60 lines a second, not 10 000). A write that fails (a full disk) stops the log
    there, said by `trouble`; the show goes on."""

    def __init__(self, path: str | Path, header: dict[str, Any]):
        self.path = Path(path)
        self._file = open(self.path, "w", encoding="utf-8")
        self.trouble: str | None = None  # why the log stopped, None while it is written
        self._lines: queue.SimpleQueue[str | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="vj-control-log", daemon=True)
        self._thread.start()
        self.write(0.0, 0.0, "vj", "show", {"format": FORMAT, **header})
        self._began_epoch = 0.0         # time.time() when the show began: wall time 0
        self._changes = 0               # how many of the show state's changes are logged
        self._cue: int | None = None    # the cue logged last
        self._tempo: str | None = None  # the tempo source logged last
        self._starts: dict[int, float] = {}  # the held cues' starts logged last

    def begin(self, began_epoch: float, show_time: float, running: bool) -> None:
        self._began_epoch = began_epoch
        self.clock(0.0, show_time, running)

    def follow(self, state: ShowState, show_now: float) -> None:
        """Logs the changes made to `state` since the last call, at the wall and show time each was made."""
        ago = time.time() - self._began_epoch
        changes, self._changes = state.changes_since(self._changes)
        last = {(source, what): i for i, (_, source, what, _) in enumerate(changes) if what in PARAMS}
        for i, (when, source, what, value) in enumerate(changes):
            if what in PARAMS and last[source, what] != i:
                continue  # the same hand moved it again within this frame: never shown
            at = max(0.0, when - self._began_epoch)  # when it happened, not when it was logged
            self.write(at, max(0.0, show_now - (ago - at)), source, what, value)

    def cue(self, wall: float, show_time: float, cue: int) -> None:
        """A cue change the timeline made (logged for people; a replay derives cues from the sheet)."""
        if cue != self._cue:
            self.write(wall, show_time, "timeline", "cue", cue)
            self._cue = cue

    def tempo(self, wall: float, show_time: float, source: str) -> None:
        """Where the tempo comes from, when that changes (for people; a replay takes its beat from the audio)."""
        if source != self._tempo:
            self.write(wall, show_time, "vj", "tempo", source)
            self._tempo = source

    def cue_starts(self, wall: float, show_time: float, starts: Mapping[int, float]) -> None:
        """Where the show starts its held `{q}` cues (cue -> sheet time), when that changes: a replay takes them as
        they were, since it cannot ask the show's tempo source again."""
        if starts.keys() != self._starts.keys() or any(abs(starts[i] - self._starts[i]) >= MOVED_S for i in starts):
            self._starts = dict(starts)
            self.write(wall, show_time, "vj", "cue_starts", {str(i): round(start, 4) for i, start in starts.items()})

    def write(self, wall: float, show_time: float, source: str, what: str, value: Any) -> None:
        if self.trouble is not None:  # stopped: nothing more is written
            return
        self._lines.put(json.dumps({"wall": round(wall, 4), "t": round(show_time, 4), "source": source, "what": what,
                                    "value": value}, default=str) + "\n")

    def _drain(self) -> None:
        """The writer thread: everything queued, then one flush (a crash keeps what happened up to it)."""
        while True:
            lines = [self._lines.get()]
            while not self._lines.empty():
                lines.append(self._lines.get())
            done = lines[-1] is None
            if self.trouble is None:
                try:
                    self._file.write("".join(line for line in lines if isinstance(line, str)))
                    self._file.flush()
                except OSError as e:
                    self.trouble = f"control log stopped: {e.strerror or e}"
                    log.error("%s (%s); the show goes on", self.trouble, self.path)
            for line in lines:
                if isinstance(line, threading.Event):
                    line.set()
            if done:
                return

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until what was logged so far is in the file (or the log has stopped); False if that took longer."""
        written = threading.Event()
        self._lines.put(written)
        return written.wait(timeout)

    def clock(self, wall: float, show_time: float, running: bool) -> None:
        self.write(wall, show_time, "vj", "clock", {"show": round(show_time, 4), "running": running})

    def close(self, wall: float, show_time: float) -> None:
        """Logs the show's end, waits for the writer (briefly: a stuck disk must not keep vj from quitting)."""
        self.write(wall, show_time, "vj", "end", None)
        self._lines.put(None)
        self._thread.join(timeout=5.0)
        try:
            self._file.close()
        except OSError as e:  # the last flush failed: what was written before stays
            self.trouble = self.trouble or f"control log stopped: {e.strerror or e}"


def show_header(cfg: Config, mode: str, lrc: str | Path | None = None, audio: str | Path | None = None) -> dict:
    return {"mode": mode, "lrc": str(Path(lrc).resolve()) if lrc else None,
            "audio": str(Path(audio).resolve()) if audio else None, "config": dataclasses.asdict(cfg)}


@dataclass(frozen=True)
class Entry:
    wall: float                         # seconds since the show began
    t: float                            # show time then
    source: str
    what: str
    value: Any


@dataclass(frozen=True)
class ClockAnchor:
    wall: float
    show: float                         # the show clock was set to this at wall
    running: bool                       # and ran on from there (False: held, waiting for a start cue)


@dataclass
class ShowLog:
    path: Path
    header: dict[str, Any]
    entries: list[Entry]                # control changes in wall-time order (stable for equal times)
    clock: list[ClockAnchor]            # where the show clock was set, in wall-time order
    cue_starts: list[tuple[float, dict[int, float]]]  # (wall, held cue -> its start) as the show placed them
    end: float | None                   # wall time the show ended at (None: the log was cut short)

    def config(self, base: Config | None = None) -> Config:
        """The config the show ran with (on top of base)."""
        try:
            return from_dict(self.header.get("config") or {}, f"{self.path} (recorded config)", base)
        except ConfigError as e:
            raise ShowLogError(str(e)) from None


def read_show_log(path: str | Path) -> ShowLog:
    """Reads a control log; a bad line is an error naming file and line, except the last one: a show that crashed
    mid-write leaves its last line cut short, and the log is replayed up to it (with a warning)."""
    path = Path(path)
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as e:
        raise ShowLogError(f"{path}: cannot read the control log: {e}") from None
    last = max((i for i, line in enumerate(lines, 1) if line.strip()), default=0)
    header: dict[str, Any] | None = None
    entries, clock, cue_starts, end, reached = [], [], [], None, 0.0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw.decode("utf-8"))  # line by line: a damaged last line is not the whole file
            entry = Entry(float(item["wall"]), float(item["t"]), str(item["source"]), str(item["what"]),
                          item.get("value"))
            if not (math.isfinite(entry.wall) and math.isfinite(entry.t)):
                raise ValueError("times must be finite numbers")
            if entry.what == "clock" and entry.source == "vj":
                clock.append(ClockAnchor(entry.wall, float(entry.value["show"]), bool(entry.value["running"])))
            if entry.what == "cue_starts" and entry.source == "vj":
                cue_starts.append((entry.wall, _starts(entry.value)))
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # UnicodeDecodeError is a ValueError
            if number == last and header is not None:
                log.warning("%s:%d: the last line is cut short (the show stopped mid-write?): replaying the "
                            "changes logged before it (up to %.2f s)", path, number, reached)
                break
            raise ShowLogError(f"{path}:{number}: not a control log line ({type(e).__name__}: {e})") from None
        reached = entry.wall
        if entry.what == "show" and entry.source == "vj":
            if not isinstance(entry.value, dict) or entry.value.get("format") != FORMAT:
                raise ShowLogError(f"{path}:{number}: show header of an unknown format (expected format {FORMAT})")
            header = entry.value
        elif entry.what == "end" and entry.source == "vj":
            end = entry.wall
        elif entry.source != "vj":
            entries.append(entry)
    if header is None:
        raise ShowLogError(f"{path}: no show header line: not a vj control log (vj live/rehearse --record writes one)")
    entries.sort(key=lambda e: e.wall)
    clock.sort(key=lambda a: a.wall)
    cue_starts.sort(key=lambda item: item[0])
    return ShowLog(path, header, entries, clock, cue_starts, end)


def _starts(value: Any) -> dict[int, float]:
    """A `cue_starts` line's value: cue numbers to finite sheet times."""
    if not isinstance(value, dict):
        raise TypeError("cue_starts must map cue numbers to times")
    starts = {int(cue): float(start) for cue, start in value.items()}
    if any(cue < 0 or not math.isfinite(start) for cue, start in starts.items()):
        raise ValueError("cue_starts: cue numbers from 0, finite times")
    return starts


class ControlReplay:
    """Applies a show log's changes to a show state in wall-time order, and gives the show time at a wall time."""

    def __init__(self, show_log: ShowLog):
        self.log = show_log
        self._next = 0
        self.ignored = 0                # entries that could not be applied (named in the log)
        self._held: tuple[Timeline, dict[int, float], Timeline] | None = None  # held(): the last answer

    def apply_until(self, state: ShowState, wall: float) -> None:
        entries = self.log.entries
        while self._next < len(entries) and entries[self._next].wall <= wall:
            self._apply(state, entries[self._next])
            self._next += 1

    def show_time(self, wall: float) -> float:
        """Where the show clock stood at wall time `wall` (a log without clock lines ran from 0)."""
        anchor = ClockAnchor(0.0, 0.0, True)
        for candidate in self.log.clock:  # a handful per show
            if candidate.wall > wall:
                break
            anchor = candidate
        return anchor.show + (wall - anchor.wall if anchor.running else 0.0)

    def held(self, timeline: Timeline, wall: float) -> Timeline:
        """`timeline` with its `{q}` cues where the recorded show had placed them at wall time `wall` (before the
        first `cue_starts` line, or with none: each cue at its own time)."""
        i = bisect.bisect_right(self.log.cue_starts, wall, key=lambda item: item[0]) - 1  # a line per tempo wobble
        starts = self.log.cue_starts[i][1] if i >= 0 else {}
        if self._held is None or self._held[0] is not timeline or self._held[1] != starts:
            self._held = (timeline, starts, timeline.held(starts))
        return self._held[2]

    def _apply(self, state: ShowState, entry: Entry) -> None:
        if entry.source in DERIVED_SOURCES:
            return
        try:
            if entry.what in PARAMS:
                state.set(entry.what, entry.value, entry.source)
            elif entry.what == "prompt":
                state.set_prompt(None if entry.value is None else str(entry.value), entry.source)
            elif entry.what in FLAGS:
                if entry.what != "quit":  # the end of the log ends the replay
                    state.set_flag(entry.what, bool(entry.value), entry.source)
            elif entry.what in EVENTS:
                pass  # what a jump did to the show clock is in the clock lines
            else:
                raise ControlError(f"unknown change {entry.what!r}")
        except ControlError as e:
            self.ignored += 1
            log.warning("%s: at %.2f s: %s; ignored", self.log.path, entry.t, e)
