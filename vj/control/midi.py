"""MIDI in (python-rtmidi): controller CCs to parameters, notes to actions, through a TOML mapping file.

A mapping is table rows, not code:

    [[cc]]                  # a knob or fader
    control = 21            # CC number
    channel = 0             # 1-16, 0 = any
    param = "hue_shift"     # a show parameter (`vj osc` lists them)
    min = 0.0               # optional: the range the control sweeps (default: the parameter's range)
    max = 1.0
    curve = "linear"        # "linear", "exp" (fine control at the low end) or "log" (at the high end)

    [[note]]                # a pad or key
    note = 36
    channel = 0
    action = "cue_next"     # "start", "cue_next", "cue_prev", "downbeat", "freeze", "blackout", or "prompt"
    slot = 0                # for "prompt": index into control.prompt_bank

Continuous controls keep their last value; notes are discrete events. Soft takeover: after anything else moved a
parameter, its CC changes nothing until the physical control passes the current value, so the picture never jumps.
Ports are matched by name substring ("*" = all) and reopened when they come back after being unplugged.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vj.config import ControlConfig, packaged, read_toml
from vj.control.state import PARAMS, ControlError, ShowState
from vj.errors import UserError

log = logging.getLogger(__name__)

ALSA_SEQUENCER = "/dev/snd/seq"        # ALSA's MIDI needs it

ACTIONS = ("start", "cue_next", "cue_prev", "downbeat", "freeze", "blackout", "prompt")
CURVES = ("linear", "exp", "log")
PICKUP = 2 / 127                        # soft takeover: "close enough" as a fraction of the control's range


class MidiMappingError(UserError, ValueError):
    """A mapping file that cannot be used: file, row and reason."""


@dataclass(frozen=True)
class CcRow:
    control: int
    param: str
    channel: int = 0
    low: float | None = None
    high: float | None = None
    curve: str = "linear"

    def value(self, data: int) -> float:
        x = data / 127.0
        x = x * x if self.curve == "exp" else math.sqrt(x) if self.curve == "log" else x
        p = PARAMS[self.param]
        low = p.low if self.low is None else self.low
        high = p.high if self.high is None else self.high
        return low + (high - low) * x


@dataclass(frozen=True)
class NoteRow:
    note: int
    action: str
    channel: int = 0
    slot: int = 0


@dataclass(frozen=True)
class MidiMapping:
    cc: tuple[CcRow, ...] = ()
    notes: tuple[NoteRow, ...] = ()


def _int(row: dict, key: str, low: int, high: int, where: str, default: int | None = None) -> int:
    value = row.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MidiMappingError(f"{where}: {key} must be a whole number {low}..{high}, got {value!r}")
    return value


def _rows(data: dict, table: str, path: Path) -> list[dict]:
    rows = data.get(table, [])
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise MidiMappingError(f"{path}: {table} must be [[{table}]] tables, got {type(rows).__name__} {rows!r:.40}")
    return rows


def bundled_mappings() -> dict[str, Path]:
    """The example mappings shipped with vj, by name (`akai-apc-mini`, ...)."""
    return {p.stem: p for p in sorted(packaged("midi").glob("*.toml"))}


def load_mapping(path: str | Path) -> MidiMapping:
    """A mapping file, or a bundled mapping by name (a file of that name wins)."""
    path = Path(path)
    if not path.exists() and str(path) in bundled_mappings():
        path = bundled_mappings()[str(path)]
    data = read_toml(path, MidiMappingError)
    unknown = set(data) - {"cc", "note", "device"}
    if unknown:
        raise MidiMappingError(f"{path}: unknown table(s) {', '.join(sorted(unknown))} (known: cc, note, device)")
    cc_rows, note_rows = [], []
    for i, row in enumerate(_rows(data, "cc", path)):
        where = f"{path}: [[cc]] #{i + 1}"
        extra = set(row) - {"control", "channel", "param", "min", "max", "curve"}
        if extra:
            raise MidiMappingError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        if not isinstance(row.get("param"), str) or row["param"] not in PARAMS:
            raise MidiMappingError(f"{where}: param must be one of {', '.join(PARAMS)}, got {row.get('param')!r}")
        if row.get("curve", "linear") not in CURVES:
            raise MidiMappingError(f"{where}: curve must be one of {', '.join(CURVES)}")
        for key in ("min", "max"):
            if key in row and (isinstance(row[key], bool) or not isinstance(row[key], (int, float))
                               or not math.isfinite(row[key])):
                raise MidiMappingError(f"{where}: {key} must be a finite number")
        cc_rows.append(CcRow(_int(row, "control", 0, 127, where), row["param"], _int(row, "channel", 0, 16, where, 0),
                             row.get("min"), row.get("max"), row.get("curve", "linear")))
    for i, row in enumerate(_rows(data, "note", path)):
        where = f"{path}: [[note]] #{i + 1}"
        extra = set(row) - {"note", "channel", "action", "slot"}
        if extra:
            raise MidiMappingError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        if not isinstance(row.get("action"), str) or row["action"] not in ACTIONS:
            raise MidiMappingError(f"{where}: action must be one of {', '.join(ACTIONS)}, got {row.get('action')!r}")
        note_rows.append(NoteRow(_int(row, "note", 0, 127, where), row["action"],
                                 _int(row, "channel", 0, 16, where, 0), _int(row, "slot", 0, 127, where, 0)))
    return MidiMapping(tuple(cc_rows), tuple(note_rows))


class MidiRouter:
    """Applies raw MIDI messages to the show state through a mapping (pure logic, no ports: testable with bytes)."""

    def __init__(self, state: ShowState, mapping: MidiMapping, prompt_bank: list[str] | tuple[str, ...] = ()):
        self.state, self.mapping, self.prompt_bank = state, mapping, list(prompt_bank)
        self.warnings = 0
        self._last_cc: dict[CcRow, float] = {}  # each control's last position, to see it sweep across a value
        self.seen: deque[tuple[str, int, int]] = deque(maxlen=64)  # (kind "cc"/"note", channel, number), for learn

    def __call__(self, message: list[int]) -> None:
        try:
            self._route(message)
        except (ControlError, IndexError, ValueError, TypeError) as e:
            self.warnings += 1
            if self.warnings <= 5 or self.warnings % 100 == 0:  # a hammered pad must not drown the log
                log.warning("MIDI %s ignored: %s (%d so far)", message[:4], e, self.warnings)

    def _route(self, message: list[int]) -> None:
        if not message or message[0] < 0x80 or message[0] >= 0xF0:
            return  # running status fragments and system messages (clock handled elsewhere)
        kind, channel = message[0] & 0xF0, (message[0] & 0x0F) + 1
        if kind == 0xB0 and len(message) >= 3:
            self.seen.append(("cc", channel, message[1]))
            for row in self.mapping.cc:
                if row.control == message[1] and row.channel in (0, channel):
                    self._cc(row, message[2])
        elif kind == 0x90 and len(message) >= 3 and message[2] > 0:
            self.seen.append(("note", channel, message[1]))
            for row in self.mapping.notes:
                if row.note == message[1] and row.channel in (0, channel):
                    self._note(row)

    def _cc(self, row: CcRow, data: int) -> None:
        target = row.value(data)
        snap = self.state.snapshot()
        previous, self._last_cc[row] = self._last_cc.get(row), target
        if snap.sources.get(row.param, "midi") != "midi":
            # Soft takeover: another source (OSC, keys, a cue) set this parameter last. Take it back only when
            # the physical control reaches the current value (or sweeps across it), so the picture never jumps.
            current = snap.values[row.param]
            low, high = row.value(0), row.value(127)
            crossed = previous is not None and (previous - current) * (target - current) <= 0
            if abs(target - current) > PICKUP * (abs(high - low) or 1.0) and not crossed:
                return
        self.state.set(row.param, target, "midi")

    def _note(self, row: NoteRow) -> None:
        if row.action in ("start", "cue_next", "cue_prev", "downbeat"):
            self.state.post(row.action, 0.0, "midi")
        elif row.action in ("freeze", "blackout"):
            self.state.set_flag(row.action, not getattr(self.state.snapshot(), row.action), "midi")
        elif row.action == "prompt":
            if row.slot >= len(self.prompt_bank):
                raise ControlError(f"prompt slot {row.slot} is empty (control.prompt_bank has {len(self.prompt_bank)})")
            self.state.request_prompt(self.prompt_bank[row.slot], "midi")


def _apis() -> list[int]:
    import rtmidi

    preferred = [rtmidi.API_LINUX_ALSA, rtmidi.API_UNIX_JACK, rtmidi.API_MACOSX_CORE, rtmidi.API_WINDOWS_MM]
    if not os.path.exists(ALSA_SEQUENCER):  # no sequencer: ALSA has no ports to give, only a line on stderr
        preferred.remove(rtmidi.API_LINUX_ALSA)
    return [api for api in preferred if api in rtmidi.get_compiled_api()]


class MidiInput:
    """Opens every input port whose name contains `port_match` ("*" = all) and keeps them open: a watcher
    thread reopens a port that comes back after it vanished. Messages go to `handler` on rtmidi's thread; clock
    and the other timing messages only with `timing` (rtmidi leaves them out unless asked: MIDI clock in)."""

    def __init__(self, port_match: str, handler: Callable[[list[int]], None], poll_s: float = 1.0,
                 api: int | None = None, timing: bool = False):
        self.port_match, self.handler, self.poll_s = port_match, handler, poll_s
        self.api, self.timing = api, timing
        self.ports: dict[str, object] = {}  # name -> rtmidi.MidiIn
        self.vanished: set[str] = set()     # ports that went away while open
        self.reconnects = 0                 # how many of those came back and were reopened
        self._probe_port = None             # one client that lists ports, kept: opening a JACK client holds the GIL
        self._probe_api: int | None = None  # for tens of milliseconds (far longer on a busy server), once a second
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="vj-midi-watch", daemon=True)

    def _probe(self):
        import rtmidi

        if self._probe_port is None:
            for api in ([self.api] if self.api is not None else _apis()):
                try:
                    self._probe_port, self._probe_api = rtmidi.MidiIn(rtapi=api), api
                    break
                except rtmidi.SystemError:
                    continue
        return self._probe_port, self._probe_api

    def _list_ports(self) -> tuple[list[str] | None, int | None]:
        """The ports there are now, or None when no MIDI system answers; a probe client that stopped answering
        (its server went away) is dropped and a fresh one tried."""
        import rtmidi

        for _ in range(2):
            probe, api = self._probe()
            if probe is None:
                return None, None
            try:
                return probe.get_ports(), api
            except rtmidi.RtMidiError:
                self._drop_probe()
        return None, None

    def _drop_probe(self) -> None:
        if self._probe_port is not None:
            self._probe_port.delete()
        self._probe_port = None

    def scan(self) -> None:
        """Opens matching ports that are not open; closes ones that vanished."""
        import rtmidi

        available, api = self._list_ports()
        if available is None:
            return
        wanted = [p for p in available if self.port_match == "*" or self.port_match.lower() in p.lower()]
        for name in list(self.ports):
            if name not in available:
                log.warning("MIDI port %r vanished; will reopen it when it returns", name)
                self.ports.pop(name).close_port()
                self.vanished.add(name)
        for name in wanted:
            if name in self.ports:
                continue
            port = rtmidi.MidiIn(rtapi=api)
            port.ignore_types(sysex=True, timing=not self.timing, active_sense=True)
            port.set_callback(lambda event, _data: self.handler(event[0]))
            port.open_port(available.index(name))
            self.ports[name] = port
            if name in self.vanished:
                self.vanished.discard(name)
                self.reconnects += 1
            log.info("MIDI input: %s", name)

    def start(self) -> "MidiInput":
        self.scan()
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.scan()
            except Exception as e:  # noqa: BLE001  a driver hiccup must not end the watcher
                log.warning("MIDI port scan failed: %s", e)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():  # the watcher must be done with the probe before it goes
            self._thread.join(timeout=2 * self.poll_s + 1.0)
        for port in self.ports.values():
            port.close_port()
        self.ports.clear()
        self._drop_probe()


def learn(port_match: str, mapping_path: str | Path, param: str | None = None, action: str | None = None,
          slot: int = 0, timeout: float = 30.0, ask: Callable[[str], str] = input) -> str:
    """Waits for the first CC or note on the matching port(s), asks (or takes) what it should drive, and writes
    the row into the mapping file (replacing an earlier row for the same control). Returns the row as text."""
    router = MidiRouter(ShowState(), MidiMapping())  # maps nothing; it only records what arrives
    midi = MidiInput(port_match, router, poll_s=0.2).start()
    deadline = time.time() + timeout
    try:
        if not midi.ports:  # say so now rather than after the timeout
            available, _ = midi._list_ports()
            if available is None:
                raise MidiMappingError("no MIDI system answers (is the audio/MIDI server running?)")
            raise MidiMappingError(f"no MIDI input port matches {port_match!r}; there are: "
                                   f"{', '.join(available) or 'none'}")
        while not router.seen and time.time() < deadline:
            time.sleep(0.02)
    finally:
        midi.stop()
    seen = router.seen
    if not seen:
        raise MidiMappingError(f"no CC or note arrived within {timeout:g} s on ports matching {port_match!r}")
    kind, channel, number = seen[0]
    if kind == "cc":
        if param is not None and param not in PARAMS:
            raise MidiMappingError(f"unknown parameter {param!r} (known: {', '.join(PARAMS)})")
        param = param or _ask_until(ask, f"CC {number} on channel {channel}: which parameter", tuple(PARAMS))
        row = f"[[cc]]\ncontrol = {number}\nchannel = {channel}\nparam = \"{param}\"\n"
    else:
        if action is not None and action not in ACTIONS:
            raise MidiMappingError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
        action = action or _ask_until(ask, f"note {number} on channel {channel}: which action", tuple(ACTIONS))
        row = f"[[note]]\nnote = {number}\nchannel = {channel}\naction = \"{action}\"\n"
        if action == "prompt":
            row += f"slot = {slot}\n"
    _write_row(Path(mapping_path), kind, channel, number, row)
    return row


def _ask_until(ask: Callable[[str], str], question: str, choices: tuple[str, ...]) -> str:
    """Asks until the answer is one of the choices (a typo asks again; no more input ends the learning)."""
    prompt = f"{question} ({', '.join(choices)})? "
    while True:
        try:
            answer = ask(prompt).strip()
        except EOFError:
            raise MidiMappingError("no answer (end of input): nothing was written") from None
        if answer in choices:
            return answer
        prompt = f"{answer!r} is not one of them. {question} ({', '.join(choices)})? "


def _write_row(path: Path, kind: str, channel: int, number: int, row: str) -> None:
    """Appends the row, dropping an earlier row for the same control/note and channel."""
    mapping = load_mapping(path) if path.exists() else MidiMapping()
    keep = []
    for r in mapping.cc:
        if not (kind == "cc" and r.control == number and r.channel == channel):
            extra = "".join(f"{k} = {v}\n" for k, v in (("min", r.low), ("max", r.high)) if v is not None)
            keep.append(f"[[cc]]\ncontrol = {r.control}\nchannel = {r.channel}\nparam = \"{r.param}\"\n"
                        f"{extra}curve = \"{r.curve}\"\n")
    for r in mapping.notes:
        if not (kind == "note" and r.note == number and r.channel == channel):
            keep.append(f"[[note]]\nnote = {r.note}\nchannel = {r.channel}\naction = \"{r.action}\"\nslot = {r.slot}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# vj MIDI mapping (written by `vj midi learn`; see vj/control/midi.py for the format)\n\n"
                    + "\n".join([*keep, row]), encoding="utf-8")


def open_midi(cfg: ControlConfig, state: ShowState) -> MidiInput | None:
    """The show's MIDI input as `control` configures it (None: no port asked for); a bad mapping raises at once."""
    if not cfg.midi_port:
        return None
    mapping = load_mapping(cfg.midi_mapping) if cfg.midi_mapping else MidiMapping()
    return MidiInput(cfg.midi_port, MidiRouter(state, mapping, cfg.prompt_bank)).start()
