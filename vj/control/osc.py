"""OSC in (python-osc): routes `/vj/...` addresses to the show state; a bad message is a counted warning.

Routing (a Dispatcher) is apart from transport (a UDP server on its own thread), so tests can feed raw datagrams.
python-osc traps handled in `ShowDispatcher`: an unparseable packet is silently dropped by python-osc and a
malformed string raises `UnicodeDecodeError` past it, and a message whose arguments do not fill it as its type
tags say is read anyway (a number cut short padded with zeros; all three counted as malformed here); a bundle
time-tagged in the future makes python-osc sleep in the server thread (here it is scheduled on a timer, at most
`MAX_AHEAD_S` ahead, and the server keeps serving); since 1.9 a handler's return value is sent back to the sender
(nothing is returned here).
Feedback (cue, prompt, tempo, beat, what is held for the beat grid, fps) goes to a configured client so a TouchOSC
or TouchDesigner surface can show state: cue, prompt, tempo, transport and held changes as soon as they change, the
beat on each beat, every state message once a second (a surface started later learns the state).
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
import logging
import math
import threading
import time
from collections import Counter
from typing import Callable, Sequence

from pythonosc import osc_packet
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from vj.config import host_port, ip_networks
from vj.control.state import MAX_SEEK_S, PARAMS, ControlError, ShowState
from vj.control.tempo import Tempo
from vj.cues.prompts import PromptError, WeightedPrompt, format_prompts, parse_prompts
from vj.cues.timeline import Timeline

log = logging.getLogger(__name__)

MAX_AHEAD_S = 4.0                       # a bundle further in the future than this is applied at this horizon
MAX_STRING = 1000                       # longest prompt accepted (characters)
BPM_STEP = 0.05                         # a tempo that moved this much is sent at once (a tracker's wobble is not)
LOGGED_PER_KIND = 5                     # bad messages of one kind logged in full before only every 100th is

ADDRESSES: dict[str, tuple[str, str]] = {
    "/vj/prompt": ("s", "live prompt (weighted syntax `a:1 | b:0.5`) replacing the cue's; \"\" returns to the cues"),
    "/vj/prompt/weighted": ("s f [s f ...]", "live prompt as text/weight pairs"),
    "/vj/param/<name>": ("f", "set a parameter, clamped to its range (`vj osc` lists them)"),
    "/vj/start": ("", "start cue: the show clock (and the cue sheet) from 0"),
    "/vj/cue/next": ("", "jump to the next cue"),
    "/vj/cue/prev": ("", "jump to the previous cue"),
    "/vj/cue/goto": ("i", "jump to cue N (0-based, as `vj cues check` numbers them; one not in the sheet is refused)"),
    "/vj/downbeat": ("", "the beat nearest now is a bar's first: bars for vj's own tracker (Link's, a clock's stay)"),
    "/vj/seek": ("f", f"move the show clock to T seconds, 0 to {MAX_SEEK_S:.0f} (rehearse: the playback position)"),
    "/vj/freeze": ("i", "1 holds the image (no guided steps), 0 releases"),
    "/vj/blackout": ("i", "1 outputs black, 0 releases"),
    "/vj/quit": ("", "end the show"),
}
FEEDBACK = {
    "/vj/state/cue": "i: the show's cue (the cue sheet at the show clock; -1 = none), at once when it changes",
    "/vj/state/prompt": "s: the prompt on stage (live, or the cue sheet's mix; texts), at once when it changes",
    "/vj/state/bpm": "f: the show's tempo (0 = none yet), at once when it moves by 0.05 or more",
    "/vj/state/playing": "i: 1 while the tempo source's grid runs (its transport plays), 0 stopped; at once",
    "/vj/state/beat": "f: on each beat, the beat in the bar when sent (0 = downbeat; Link's and MIDI clock's bars)",
    "/vj/state/tempo": "s: where the tempo comes from: audio, link or midi_clock (control.tempo_source)",
    "/vj/state/held": "s: what waits for the beat grid (\"held for the bar: next cue (midi)\"; \"\": nothing), at once",
    "/vj/state/fps": "f: displayed frames per second",
}


def address_table() -> str:
    lines = ["address                  args             effect"]
    lines += [f"{a:24s} {args:16s} {text}" for a, (args, text) in ADDRESSES.items()]
    lines.append("")
    lines.append("parameters (/vj/param/<name>):")
    lines += [f"  {p.name:16s} {p.low:g}..{p.high:g} (default {p.default:g}) {p.help}" for p in PARAMS.values()]
    lines.append("")
    lines.append("feedback sent to control.osc_feedback (host:port), every state message once a second:")
    lines += [f"  {a:22s} {text}" for a, text in FEEDBACK.items()]
    return "\n".join(lines)


class ShowDispatcher(Dispatcher):
    """A Dispatcher that never sleeps, never replies, schedules future bundles, and reports bad packets."""

    def __init__(self, on_malformed: Callable[[tuple, Exception], None],
                 schedule: Callable[[float, Callable[[], None]], None]) -> None:
        super().__init__()
        self.on_malformed = on_malformed
        self.schedule = schedule
        self.scheduled = 0              # messages of time-tagged bundles put off until their time

    def call_handlers_for_packet(self, data: bytes, client_address: tuple[str, int]) -> list:
        try:
            messages = osc_packet.OscPacket(data).messages
        except (osc_packet.ParseError, UnicodeDecodeError, ValueError, IndexError) as e:
            self.on_malformed(client_address, e)
            return []
        problem = bundle_mismatch(data)
        if problem:
            self.on_malformed(client_address, ValueError(problem))
            return []
        for timed in messages:  # one bad message refuses the whole packet: a bundle is applied whole or not at all
            problem = arguments_mismatch(timed.message.dgram)
            if problem:
                self.on_malformed(client_address, ValueError(f"{_shorten(timed.message.address)}: {problem}"))
                return []
        now = time.time()
        for timed in messages:
            for handler in self.handlers_for_address(timed.message.address):
                call = lambda h=handler, m=timed.message: h.invoke(client_address, m)  # noqa: E731
                if timed.time > now + 1e-3:
                    self.scheduled += 1
                    self.schedule(min(timed.time, now + MAX_AHEAD_S), call)
                else:
                    call()
        return []


# Bytes an argument of each fixed-size OSC type tag takes on the wire (OSC 1.0 and its common extensions);
# "s"/"S" (strings) and "b" (blobs) carry their own length.
TAG_SIZES = {"i": 4, "f": 4, "c": 4, "r": 4, "m": 4, "h": 8, "d": 8, "t": 8, "T": 0, "F": 0, "N": 0, "I": 0,
             "[": 0, "]": 0}


def bundle_mismatch(data: bytes) -> str | None:
    """Why a bundle's elements do not fill it exactly (python-osc ignores bytes after the last whole element);
    None for a message, or a bundle that they do fill."""
    if not data.startswith(b"#bundle\x00"):
        return None
    pos = 16  # "#bundle\0" and the time tag
    while pos < len(data):
        if pos + 4 > len(data):
            return f"{len(data) - pos} byte(s) after the bundle's last element"
        size = int.from_bytes(data[pos:pos + 4], "big", signed=True)
        if size < 0 or pos + 4 + size > len(data):
            return f"a bundle element of {size} bytes where {len(data) - pos - 4} are left"
        problem = bundle_mismatch(data[pos + 4:pos + 4 + size])
        if problem:
            return problem
        pos += 4 + size
    return None


def arguments_mismatch(dgram: bytes) -> str | None:
    """Why a message's arguments do not fill its datagram exactly as its type tags say; None when they do.

    python-osc pads a number cut short with zeros (a truncated `/vj/param/feedback ,f` set feedback to 2.35e-38),
    drops bytes after the last argument and skips unknown tags; OSC 1.0 says to discard such messages."""
    address_end = _string_end(dgram, 0)
    if address_end is None:
        return "the address has no end"
    if address_end == len(dgram):
        return None  # no type tag string: an old-style sender, and no arguments
    index = _string_end(dgram, address_end)
    if index is None or dgram[address_end:address_end + 1] != b",":
        return "no type tag string where the arguments begin"
    tags = dgram[address_end + 1:dgram.index(b"\0", address_end)].decode("ascii", "replace")
    for tag in tags:
        if tag in TAG_SIZES:
            index += TAG_SIZES[tag]
        elif tag in "sS":
            end = _string_end(dgram, index)
            if end is None:
                return f"type tags ,{tags}: a string argument has no end"
            index = end
        elif tag == "b":
            size = int.from_bytes(dgram[index:index + 4], "big", signed=True) if index + 4 <= len(dgram) else -1
            if size < 0:
                return f"type tags ,{tags}: a blob has no size"
            index += 4 + size + (-size % 4)
        else:
            return f"unknown type tag {tag!r} in ,{tags} (its argument's size cannot be known)"
        if index > len(dgram):
            return f"type tags ,{tags}: the arguments end {index - len(dgram)} byte(s) short"
    if index != len(dgram):
        return f"type tags ,{tags}: {len(dgram) - index} byte(s) after the last argument"
    return None


def _string_end(dgram: bytes, start: int) -> int | None:
    """Where an OSC-string starting at start ends (its NUL padded to 4 bytes); None if it runs past the data."""
    nul = dgram.find(b"\0", start)
    end = nul + 4 - (nul - start) % 4 if nul >= 0 else -1
    return end if 0 <= end <= len(dgram) else None


class Scheduler:
    """Runs callables at wall-clock times on one thread (for time-tagged bundles)."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._count = 0
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="vj-osc-scheduler", daemon=True)
        self._thread.start()

    def add(self, when: float, call: Callable[[], None]) -> None:
        with self._wake:
            self._count += 1
            heapq.heappush(self._queue, (when, self._count, call))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stop and (not self._queue or self._queue[0][0] > time.time()):
                    self._wake.wait(timeout=None if not self._queue else max(0.0, self._queue[0][0] - time.time()))
                if self._stop:
                    return
                _, _, call = heapq.heappop(self._queue)
            call()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()


class OscControl:
    def __init__(self, state: ShowState, host: str = "127.0.0.1", port: int = 9010, feedback: str = "",
                 allow: Sequence[str] = (), port_search: int = 0):
        self.state = state
        self.allow = _networks(allow)
        self.feedback = _feedback_client(feedback)  # before listening: a bad target leaves no socket behind
        self.warnings: Counter[str] = Counter()
        self.received = 0
        self.scheduler = Scheduler()
        self.dispatcher = ShowDispatcher(self._malformed, self.scheduler.add)
        routes = {
            "/vj/prompt": self._prompt, "/vj/prompt/weighted": self._weighted, "/vj/param/*": self._param,
            "/vj/start": self._event("start"),
            "/vj/cue/next": self._event("cue_next"), "/vj/cue/prev": self._event("cue_prev"),
            "/vj/cue/goto": self._goto, "/vj/seek": self._seek, "/vj/downbeat": self._event("downbeat"),
            "/vj/freeze": self._flag, "/vj/blackout": self._flag, "/vj/quit": self._flag,
        }
        for address, handler in routes.items():
            self.dispatcher.map(address, self._guard(address, handler))
        self.dispatcher.set_default_handler(self._unknown)
        self.server = self._listen(host, port, port_search)
        self.server.handle_error = lambda request, client: self._malformed(client, RuntimeError("unreadable"))
        accepts = self.server.verify_request  # drops what starts with neither "/" nor "#bundle", silently

        def verify(request, client_address) -> bool:
            if self.allow and not any(ipaddress.ip_address(client_address[0]) in net for net in self.allow):
                self._warn("refused", f"packet from {client_address[0]} refused: not in control.osc_allow")
                return False
            if accepts(request, client_address):
                return True
            self._malformed(client_address, ValueError("not an OSC message or bundle"))
            return False

        self.server.verify_request = verify
        self.address = self.server.server_address
        self._last_feedback: dict[str, object] = {}
        self._last_beat: int | None = None  # the grid's beat the beat feedback was last sent in
        self._thread = threading.Thread(target=self.server.serve_forever, name="vj-osc", daemon=True)

    def _listen(self, host: str, port: int, port_search: int) -> BlockingOSCUDPServer:
        """The server on port, or with port_search > 0 the first free one of the next port_search ports."""
        for candidate in range(port, min(port + max(0, port_search), 65535) + 1):
            try:
                server = BlockingOSCUDPServer((host, candidate), self.dispatcher)
            except OSError as e:
                error = e
                continue
            if candidate != port:
                log.warning("OSC port %d is taken; listening on %d instead", port, candidate)
            return server
        self.scheduler.stop()
        tried = f"{port}" if port_search <= 0 else f"{port} to {min(port + port_search, 65535)}"
        raise ControlError(f"cannot listen for OSC on {host}:{tried}: {error.strerror or error} "
                           f"(another program uses the port? set control.osc_port, or control.osc_port_search "
                           f"to take the next free one)") from None

    def start(self) -> "OscControl":
        self._thread.start()
        log.info("OSC listening on %s:%d", *self.address)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever(), forever if it never ran
            self.server.shutdown()
        self.server.server_close()
        self.scheduler.stop()

    # -- feedback ---------------------------------------------------------------------------------------------
    def send_feedback(self, cue: int, prompt: str, fps: float | None = None, held: str | None = None,
                      force: bool = False) -> None:
        """Sends each value given that changed, or with force every value given, to the feedback client (if one is
        configured). The show calls it each frame with cue and prompt (`show_cue`), so a change goes out at once,
        and once a second with everything and force, so a surface started later (or one that lost a datagram)
        learns the state."""
        values: dict[str, object] = {"/vj/state/cue": int(cue), "/vj/state/prompt": prompt}
        if fps is not None:
            values["/vj/state/fps"] = round(float(fps), 1)
        if held is not None:
            values["/vj/state/held"] = held
        self._send({a: v for a, v in values.items() if force or self._last_feedback.get(a) != v})

    def send_tempo(self, reading: Tempo, force: bool = False) -> None:
        """The tempo source's reading, each frame: its tempo when it moved by `BPM_STEP` or more since the last one
        sent, its transport and source when they change, and on the first call in each beat of a running grid the
        beat in the bar at the moment of sending (a surface's beat light; the tracker's bars are vj's own count).
        With force, the tempo, transport and source all go (the once-a-second repeat)."""
        if self.feedback is None:
            return
        playing = int(reading.running)
        values: dict[str, object] = {}
        beat = reading.beat_at(time.perf_counter())
        if playing and math.floor(beat) != self._last_beat:
            self._last_beat = math.floor(beat)
            values["/vj/state/beat"] = float(beat % reading.quantum)  # first: sent microseconds after it was read
        sent_bpm = self._last_feedback.get("/vj/state/bpm")
        if force or sent_bpm is None or abs(reading.bpm - sent_bpm) >= BPM_STEP:
            values["/vj/state/bpm"] = round(float(reading.bpm), 2)  # OSC floats are float32: no noise digits
        for address, value in (("/vj/state/playing", playing), ("/vj/state/tempo", reading.source)):
            if force or self._last_feedback.get(address) != value:
                values[address] = value
        self._send(values)

    def _send(self, values: dict[str, object]) -> None:
        """Sends each address its value, noting what was sent: a failed send is retried with the next once-a-second
        repeat, not on every frame."""
        if self.feedback is None or not values:
            return
        self._last_feedback.update(values)
        for address, value in values.items():
            try:
                self.feedback.send_message(address, value)
            except OSError as e:
                self._warn("feedback", f"feedback to {self.feedback._address}:{self.feedback._port} failed: {e}")
                return

    # -- handlers -----------------------------------------------------------------------------------------------
    def _warn(self, key: str, message: str) -> None:
        """Counts a bad message under key (a route, not the raw address: the counter stays small whatever arrives)
        and logs the first few of each kind, then every 100th, so a flood cannot drown the log."""
        self.warnings[key] += 1
        count = self.warnings[key]
        if count <= LOGGED_PER_KIND or count % 100 == 0:
            log.warning("OSC: %s%s", message, f" ({count} of this kind so far)" if count > 1 else "")

    def _guard(self, route: str, handler):
        def wrapped(address: str, *args) -> None:
            self.received += 1
            try:
                handler(address, *args)
            except (ControlError, TypeError, ValueError, IndexError, OverflowError) as e:
                self._warn(route, f"{address} {_shorten(repr(list(args)))}: {e}")
            return None
        return wrapped

    def _unknown(self, address: str, *args) -> None:
        self.received += 1
        self._warn("unknown", f"unknown address {_shorten(address)} (`vj osc` lists the known ones)")

    def _malformed(self, client_address: tuple[str, int], error: Exception) -> None:
        self._warn("malformed", f"malformed packet from {client_address[0]}:{client_address[1]} ignored: {error}")

    def _prompt(self, address: str, *args) -> None:
        if len(args) != 1 or not isinstance(args[0], str):
            raise ControlError("expects one string argument")
        if len(args[0]) > MAX_STRING:
            raise ControlError(f"prompt longer than {MAX_STRING} characters")
        self.state.request_prompt(args[0], "osc")

    def _weighted(self, address: str, *args) -> None:
        if not args or len(args) % 2 or len(args) > 16:
            raise ControlError("expects 1 to 8 text/weight pairs")
        prompts = []
        for text, weight in zip(args[::2], args[1::2]):
            if not isinstance(text, str) or isinstance(weight, (str, bytes)) or not math.isfinite(float(weight)):
                raise ControlError("expects text (s) then weight (f) pairs")
            prompts.append(WeightedPrompt(" ".join(text.replace("|", " ").split()), float(weight)))
        self.state.request_prompt(format_prompts(prompts), "osc")

    def _param(self, address: str, *args) -> None:
        name = address.rsplit("/", 1)[-1]
        if name not in PARAMS:
            raise ControlError(f"unknown parameter {name!r}")
        if len(args) != 1 or isinstance(args[0], (str, bytes)):
            raise ControlError("expects one number")
        self.state.set(name, args[0], "osc")

    def _event(self, kind: str):
        def handler(address: str, *args) -> None:
            self.state.post(kind, 0.0, "osc")
        return handler

    def _goto(self, address: str, *args) -> None:
        if len(args) != 1 or isinstance(args[0], (str, bytes)) or float(args[0]) != int(args[0]):
            raise ControlError("expects one whole number (the cue index)")
        cue, count = int(args[0]), self.state.cue_count
        if cue < 0:
            raise ControlError("cues are numbered from 0")
        if count is not None and cue >= count:
            raise ControlError(f"no cue {cue}: the cue sheet has cues 0 to {count - 1}" if count else
                               "there is no cue sheet to go to a cue of")
        self.state.post("cue_goto", cue, "osc")

    def _seek(self, address: str, *args) -> None:
        if len(args) != 1 or isinstance(args[0], (str, bytes)):
            raise ControlError("expects one number (seconds)")
        seconds = float(args[0])
        if not 0.0 <= seconds <= MAX_SEEK_S:  # NaN too
            raise ControlError(f"expects a show time from 0 to {MAX_SEEK_S:.0f} s ({MAX_SEEK_S / 3600:g} h)")
        self.state.post("seek", seconds, "osc")

    def _flag(self, address: str, *args) -> None:
        flag = address.rsplit("/", 1)[-1]
        if args and (isinstance(args[0], (str, bytes)) or not math.isfinite(float(args[0]))):
            raise ControlError("expects 1 or 0")
        self.state.set_flag(flag, True if not args else bool(float(args[0])), "osc")


def show_cue(timeline: Timeline | None, t: float, live_prompt: str | None) -> tuple[int, str]:
    """What feedback says is on stage at show time t: the cue sheet's cue there (-1: none), and the prompt, the live
    one if set, else the cue sheet's mix. Prompts are sent as their texts: the crossfade's weights change on every
    frame, and a change is what feedback sends at once."""
    cue_state = timeline.at(t) if timeline is not None else None
    cue = cue_state.index if cue_state is not None else -1
    if live_prompt:
        return cue, _prompt_texts(live_prompt)
    return cue, " | ".join(p.text for p in cue_state.prompts) if cue_state is not None else ""


@functools.lru_cache(maxsize=16)  # called every frame with the same few live prompts
def _prompt_texts(text: str) -> str:
    try:
        return " | ".join(p.text for p in parse_prompts(text))
    except PromptError:
        return text  # the engine ignores it and keeps the cue's prompt; the surface sees what was sent


def _feedback_client(target: str) -> SimpleUDPClient | None:
    """The client feedback goes to. A target that is not host:port with a port in range is a ControlError (the
    config check says the same when it is read); a host that does not resolve is said once and nothing is sent, as a
    surface that is not there yet must not stop the show."""
    if not target:
        return None
    try:
        host, port = host_port(target)
    except ValueError as e:
        raise ControlError(f"control.osc_feedback: {e}") from None
    try:
        return SimpleUDPClient(host, port)  # resolves the host, once: a name lookup can take seconds
    except OSError as e:
        log.warning("OSC feedback to %s: the host %s cannot be resolved (%s); not sending feedback", target, host,
                    e.strerror or e)
        return None


def _networks(allow: Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """control.osc_allow as networks; a bad entry is a ControlError (the config check says the same earlier)."""
    try:
        return ip_networks(allow)
    except ValueError as e:
        raise ControlError(f"control.osc_allow: {e}") from None


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
