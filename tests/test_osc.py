"""OSC control: raw datagrams into our server, and a real client that is not ours (liblo's oscsend)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from conftest import free_port
from vj.control.osc import OscControl
from vj.control.state import ShowState


@pytest.fixture()
def osc():
    state = ShowState()
    control = OscControl(state, "127.0.0.1", free_port()).start()
    yield state, control
    control.stop()


def send(address, datagram: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(datagram, address)


def message(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for a in args:
        builder.add_arg(a)
    return builder.build().dgram


def wait_for(predicate, timeout=3.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_prompt_param_and_flags(osc):
    state, control = osc
    send(control.address, message("/vj/prompt", "neon rain:1 | fog:0.5"))
    send(control.address, message("/vj/param/hue_shift", 0.75))
    send(control.address, message("/vj/param/lr_scale", 99.0))  # clamped to the range
    send(control.address, message("/vj/freeze", 1))
    assert wait_for(lambda: state.snapshot().freeze)
    snap = state.snapshot()
    assert snap.prompt_override == "neon rain:1 | fog:0.5"
    assert snap.values["hue_shift"] == 0.75 and snap.values["lr_scale"] == 4.0
    assert snap.last_change[1] == "osc"


def test_bad_messages_are_counted_never_fatal(osc):
    state, control = osc
    version = state.snapshot().version
    send(control.address, message("/vj/param/hue_shift", "loud"))
    send(control.address, message("/vj/param/hue_shift", float("nan")))
    send(control.address, message("/vj/param/nope", 1.0))
    send(control.address, message("/not/ours", 1))
    send(control.address, b"/vj/prompt\x00\x00,s\x00\x00\xff\xfe\x00\x00")  # a malformed string
    send(control.address, b"\x00\x01garbage")
    assert wait_for(lambda: sum(control.warnings.values()) >= 6)
    assert state.snapshot().version == version
    send(control.address, message("/vj/param/hue_shift", 0.5))
    assert wait_for(lambda: state.snapshot().values["hue_shift"] == 0.5)


def test_oscsend_from_liblo(osc):
    state, control = osc
    oscsend = shutil.which("oscsend")
    if oscsend is None:
        pytest.fail("oscsend (liblo-tools) is not installed; scripts/system_deps.sh installs it")
    host, port = control.address
    subprocess.run([oscsend, host, str(port), "/vj/prompt", "s", "a glass city"], check=True)
    subprocess.run([oscsend, host, str(port), "/vj/param/rgb_split", "f", "0.25"], check=True)
    assert wait_for(lambda: state.snapshot().values["rgb_split"] == 0.25)
    assert state.snapshot().prompt_override == "a glass city"
