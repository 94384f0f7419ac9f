"""OSC in (python-osc): routes `/vj/...` addresses to the show state; a bad message is a counted warning.

Routing (a python-osc Dispatcher) is apart from transport (a UDP server on its own thread), so tests can feed
raw datagrams. python-osc traps handled here (`ShowDispatcher`): an unparseable packet is silently dropped by
python-osc and a malformed string raises `UnicodeDecodeError` past it (both counted here); a bundle time-tagged in
the future makes it sleep in the server thread (here it is applied at once; scheduling on the show clock comes
with the full OSC layer); since 1.9 a handler's return value is sent back to the sender (nothing is returned).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from pythonosc import osc_packet
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from vj.control.state import PARAMS, ControlError, ShowState

log = logging.getLogger(__name__)

ADDRESSES = {
    "/vj/prompt": "s: live prompt (weighted syntax `a:1 | b:0.5`) replacing the cue's; empty string clears it",
    "/vj/param/<name>": "f: set a parameter (see `vj osc` / README for names and ranges)",
    "/vj/freeze": "i/f: 1 holds the image, 0 releases",
    "/vj/blackout": "i/f: 1 outputs black, 0 releases",
    "/vj/quit": "(no arguments): end the show",
}


class ShowDispatcher(Dispatcher):
    """A Dispatcher that never sleeps, never replies, and reports packets it cannot parse."""

    def __init__(self, on_malformed) -> None:
        super().__init__()
        self.on_malformed = on_malformed

    def call_handlers_for_packet(self, data: bytes, client_address: tuple[str, int]) -> list:
        try:
            messages = osc_packet.OscPacket(data).messages
        except (osc_packet.ParseError, UnicodeDecodeError, ValueError, IndexError) as e:
            self.on_malformed(client_address, e)
            return []
        for timed in messages:
            for handler in self.handlers_for_address(timed.message.address):
                handler.invoke(client_address, timed.message)
        return []


class OscControl:
    def __init__(self, state: ShowState, host: str = "127.0.0.1", port: int = 9010):
        self.state = state
        self.warnings: Counter[str] = Counter()
        self.received = 0
        self.dispatcher = ShowDispatcher(self._malformed)
        self.dispatcher.map("/vj/prompt", self._guard(self._prompt))
        self.dispatcher.map("/vj/param/*", self._guard(self._param))
        for flag in ("freeze", "blackout", "quit"):
            self.dispatcher.map(f"/vj/{flag}", self._guard(self._flag))
        self.dispatcher.set_default_handler(self._unknown)
        self.server = BlockingOSCUDPServer((host, port), self.dispatcher)
        self.server.handle_error = self._datagram_error  # malformed datagrams raise outside the dispatcher
        accepts = self.server.verify_request  # drops what starts with neither "/" nor "#bundle", silently

        def verify(request, client_address) -> bool:
            if accepts(request, client_address):
                return True
            self._malformed(client_address, ValueError("not an OSC message or bundle"))
            return False

        self.server.verify_request = verify
        self.address = self.server.server_address
        self._thread = threading.Thread(target=self.server.serve_forever, name="vj-osc", daemon=True)

    def start(self) -> "OscControl":
        self._thread.start()
        log.info("OSC listening on %s:%d", *self.address)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _warn(self, key: str, message: str) -> None:
        self.warnings[key] += 1
        log.warning("OSC: %s", message)

    def _guard(self, handler):
        def wrapped(address: str, *args) -> None:
            self.received += 1
            try:
                handler(address, *args)
            except (ControlError, TypeError, ValueError, IndexError) as e:
                self._warn(address, f"{address} {list(args)!r}: {e}")
            return None
        return wrapped

    def _unknown(self, address: str, *args) -> None:
        self.received += 1
        self._warn("unknown", f"unknown address {address} (known: {', '.join(ADDRESSES)})")

    def _malformed(self, client_address: tuple[str, int], error: Exception) -> None:
        self._warn("malformed", f"malformed packet from {client_address[0]}:{client_address[1]} ignored: {error}")

    def _datagram_error(self, request, client_address) -> None:
        self._malformed(client_address, RuntimeError("unreadable datagram"))

    def _prompt(self, address: str, *args) -> None:
        if len(args) != 1 or not isinstance(args[0], str):
            raise ControlError("expects one string argument")
        self.state.set_prompt(args[0], "osc")

    def _param(self, address: str, *args) -> None:
        name = address.rsplit("/", 1)[-1]
        if name not in PARAMS:
            raise ControlError(f"unknown parameter {name!r}")
        if len(args) != 1 or isinstance(args[0], (str, bytes)):
            raise ControlError("expects one number")
        self.state.set(name, args[0], "osc")

    def _flag(self, address: str, *args) -> None:
        flag = address.rsplit("/", 1)[-1]
        on = True if not args else bool(float(args[0]))
        self.state.set_flag(flag, on, "osc")
