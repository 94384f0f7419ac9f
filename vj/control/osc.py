"""OSC in (python-osc): routes `/vj/...` addresses to the show state; a bad message is a counted warning.

Routing (a python-osc Dispatcher) is apart from transport (a UDP server on its own thread), so tests can feed
raw datagrams. python-osc traps handled here: a malformed datagram raises past the dispatcher (we catch it in
the server's error hook), and since 1.9 a handler's return value is sent back to the sender (ours return None).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

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


class OscControl:
    def __init__(self, state: ShowState, host: str = "127.0.0.1", port: int = 9010):
        self.state = state
        self.warnings: Counter[str] = Counter()
        self.received = 0
        self.dispatcher = Dispatcher()
        self.dispatcher.map("/vj/prompt", self._guard(self._prompt))
        self.dispatcher.map("/vj/param/*", self._guard(self._param))
        for flag in ("freeze", "blackout", "quit"):
            self.dispatcher.map(f"/vj/{flag}", self._guard(self._flag))
        self.dispatcher.set_default_handler(self._unknown)
        self.server = BlockingOSCUDPServer((host, port), self.dispatcher)
        self.server.handle_error = self._datagram_error  # malformed datagrams raise outside the dispatcher
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

    def _datagram_error(self, request, client_address) -> None:
        self._warn("malformed", f"malformed datagram from {client_address[0]}:{client_address[1]} ignored")

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
