"""OSC control: raw datagrams into our server, and a real client that is not ours (liblo's oscsend)."""

from __future__ import annotations

import logging
import shutil
import socket
import struct
import subprocess
import time

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from conftest import free_port, wait_for
from vj.control.osc import OscControl
from vj.control.state import ShowState
from vj.control.tempo import Tempo


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


def test_weighted_prompt_cue_events_and_seek(osc):
    state, control = osc
    send(control.address, message("/vj/prompt/weighted", "neon | rain", 1.0, "fog", -0.5))
    send(control.address, message("/vj/cue/next"))
    send(control.address, message("/vj/cue/goto", 3))
    send(control.address, message("/vj/seek", 12.5))
    send(control.address, message("/vj/cue/goto", 1.5))  # not a whole number: refused
    send(control.address, message("/vj/downbeat"))
    assert wait_for(lambda: len(state.events) == 4 and control.warnings["/vj/cue/goto"] == 1)
    assert state.snapshot().prompt_override == "neon rain:1 | fog:-0.5"
    assert [(e.kind, e.value) for e in state.drain_events()] == [("cue_next", 0.0), ("cue_goto", 3.0), ("seek", 12.5),
                                                                 ("downbeat", 0.0)]


def test_seeks_and_cue_jumps_out_of_range_are_refused_in_one_counted_line(osc, caplog):
    """A seek past a day (1e30 s froze the show clock), before 0 or to no time at all, and a cue jump to a cue the
    sheet does not have, are each one counted warning naming address and argument, and never reach the show (nor
    its control log); the ends of the ranges are taken."""
    state, control = osc
    state.cue_count = 5                                   # the show loop keeps it: cues 0 to 4
    refused = [("/vj/seek", 1e30), ("/vj/seek", -10.0), ("/vj/seek", float("inf")), ("/vj/cue/goto", 99999),
               ("/vj/cue/goto", -5)]
    with caplog.at_level(logging.WARNING, logger="vj.control.osc"):
        for address, value in refused + [("/vj/seek", 86400.0), ("/vj/cue/goto", 4), ("/vj/seek", 0.0)]:
            send(control.address, message(address, value))
        assert wait_for(lambda: len(state.events) == 3 and sum(control.warnings.values()) == 5)
    assert [(e.kind, e.value) for e in state.drain_events()] == [("seek", 86400.0), ("cue_goto", 4.0), ("seek", 0.0)]
    assert [what for _, _, what, _ in state.changes] == ["seek", "cue_goto", "seek"]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 5 and control.warnings == {"/vj/seek": 3, "/vj/cue/goto": 2}, said
    assert "/vj/seek [1.0000000150474662e+30]: expects a show time from 0 to 86400 s" in said[0]
    assert "/vj/seek [-10.0]" in said[1]
    assert "/vj/cue/goto [99999]: no cue 99999: the cue sheet has cues 0 to 4" in said[3]
    assert "/vj/cue/goto [-5]: cues are numbered from 0" in said[4]


def bundle(when: float, *messages: bytes) -> bytes:
    from pythonosc.osc_bundle_builder import OscBundleBuilder
    from pythonosc.osc_message import OscMessage

    builder = OscBundleBuilder(when)
    for m in messages:
        builder.add_content(OscMessage(m))
    return builder.build().dgram


def test_future_bundle_is_scheduled_without_blocking_the_server(osc):
    state, control = osc
    due = time.time() + 2.0
    send(control.address, bundle(due, message("/vj/param/vignette", 0.25)))
    send(control.address, message("/vj/param/hue_shift", 0.5))  # must not wait behind the bundle
    assert wait_for(lambda: state.snapshot().values["hue_shift"] == 0.5, timeout=1.5)
    assert state.snapshot().values["vignette"] == 1.0 and time.time() < due
    assert wait_for(lambda: state.snapshot().values["vignette"] == 0.25, timeout=5.0)
    assert time.time() >= due - 0.05


def test_far_future_bundle_is_clamped(osc):
    state, control = osc
    send(control.address, bundle(time.time() + 3600, message("/vj/param/vignette", 0.5)))
    assert wait_for(lambda: state.snapshot().values["vignette"] == 0.5, timeout=8.0)


def test_feedback_reaches_a_real_osc_server():
    import select

    oscdump = shutil.which("oscdump")
    if oscdump is None:
        pytest.fail("oscdump (liblo-tools) is not installed; scripts/system_deps.sh installs it")
    port = free_port()
    dump = subprocess.Popen([oscdump, "-L", str(port)], stdout=subprocess.PIPE, text=True)
    control = OscControl(ShowState(), "127.0.0.1", free_port(), feedback=f"127.0.0.1:{port}")
    text = ""
    try:
        deadline = time.time() + 10
        wanted = ("/vj/state/cue", "/vj/state/prompt", "/vj/state/bpm", "/vj/state/playing", "/vj/state/beat",
                  "/vj/state/fps", "/vj/state/tempo", "/vj/state/held")
        bar = 0
        while not all(address in text for address in wanted) and time.time() < deadline:
            control.send_feedback(2, "neon rain", 59.7, "held for the bar: next cue (midi)", force=True)  # UDP:
            # resend until oscdump is up
            bar += 1  # the beat goes once in each beat of the grid: beat 2 (the third) of a new bar each time
            control.send_tempo(Tempo(124.0, 4.0 * bar + 2.0, time.perf_counter(), True, "link"), force=True)
            while select.select([dump.stdout], [], [], 0.2)[0]:
                text += dump.stdout.readline()
    finally:
        control.stop()
        dump.terminate()
    assert "/vj/state/cue i 2" in text and '/vj/state/prompt s "neon rain"' in text
    assert "/vj/state/fps f 59.7" in text and '/vj/state/tempo s "link"' in text
    assert "/vj/state/bpm f 124" in text and "/vj/state/playing i 1" in text and "/vj/state/beat f 2.0" in text
    assert '/vj/state/held s "held for the bar: next cue (midi)"' in text


def test_feedback_bpm_is_rounded_to_hundredths():
    """A tempo source's 140.00013732910156 (Link's float noise) reaches a surface as 140.0, not as float noise
    (#26 item 12). OSC floats are float32, so a value with hundredths arrives as the float32 nearest it: within 1e-4
    of the rounded value, and 140.0 exactly."""
    from pythonosc.osc_message import OscMessage

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as surface:
        surface.bind(("127.0.0.1", 0))
        surface.settimeout(2.0)
        control = OscControl(ShowState(), "127.0.0.1", free_port(),
                             feedback=f"127.0.0.1:{surface.getsockname()[1]}")
        heard = []
        try:
            for bpm in (140.00013732910156, 128.3712345):
                control.send_tempo(Tempo(bpm, 0.5, time.perf_counter(), False, "link"), force=True)
                while True:
                    m = OscMessage(surface.recv(65536))
                    if m.address == "/vj/state/bpm":
                        heard.append(m.params[0])
                        break
        finally:
            control.stop()
    assert heard[0] == 140.0 and repr(heard[0]) == "140.0", heard
    assert abs(heard[1] - 128.37) < 1e-4, heard


def test_port_already_taken_is_a_clear_error():
    from vj.control.state import ControlError

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(ControlError, match=f"cannot listen for OSC on 127.0.0.1:{port}"):
            OscControl(ShowState(), "127.0.0.1", port)


def test_port_taken_with_port_search_takes_the_next_free_one():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        control = OscControl(ShowState(), "127.0.0.1", port, port_search=8)
        try:
            assert port < control.address[1] <= port + 8
        finally:
            control.stop()


def test_allow_list_refuses_other_sources_and_counts_them():
    from vj.control.state import ControlError

    state = ShowState()
    control = OscControl(state, "127.0.0.1", free_port(), allow=["127.0.0.2"]).start()
    try:
        for source, text in (("127.0.0.1", "from a stranger"), ("127.0.0.2", "from the desk")):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((source, 0))
                s.sendto(message("/vj/prompt", text), control.address)
        assert wait_for(lambda: state.snapshot().prompt_override == "from the desk")
        assert control.warnings["refused"] == 1 and control.received == 1
    finally:
        control.stop()
    with pytest.raises(ControlError, match="control.osc_allow: 'the desk' is not an IP address"):
        OscControl(ShowState(), "127.0.0.1", free_port(), allow=["the desk"])


def test_vj_osc_prints_the_table():
    from conftest import run_vj

    out = run_vj("osc").stdout
    for address in ("/vj/prompt", "/vj/param/<name>", "/vj/cue/goto", "/vj/seek", "/vj/state/cue", "hue_shift"):
        assert address in out


# -- packets whose arguments do not match their type tags (issue 18, point 4) ------------------------------------

def osc_string(data: bytes) -> bytes:
    return data + b"\0" * (4 - len(data) % 4)


def raw(address: bytes, tags: bytes, args: bytes = b"") -> bytes:
    return osc_string(address) + osc_string(tags) + args


MISMATCHED = {  # python-osc reads each of these as a message: a short float is padded with zeros, extra bytes dropped
    "a float cut to one byte": raw(b"/vj/param/feedback", b",f", b"\x01"),  # was feedback = 2.35e-38
    "a float missing": raw(b"/vj/param/hue_shift", b",f"),
    "two floats tagged, one sent": raw(b"/vj/param/kaleidoscope", b",ff", struct.pack(">f", 0.5)),
    "bytes after the arguments": raw(b"/vj/param/vignette", b",f", struct.pack(">f", 0.5) + b"\0\0\0\x01"),
    "an unknown type tag": raw(b"/vj/param/rgb_split", b",zf", struct.pack(">f", 0.5)),
    "an int cut short": raw(b"/vj/blackout", b",i", b"\0\0"),
    "a blob longer than the packet": raw(b"/vj/prompt", b",b", struct.pack(">i", 64) + b"abcd"),
    "a string with no end": raw(b"/vj/prompt", b",s", b"abcd"),
    "a cut message in a bundle": b"#bundle\0" + struct.pack(">Q", 1) + struct.pack(">i", 25)
                                 + raw(b"/vj/param/zoom_pulse", b",f", b"\x3f"),  # the bundle's size is right
    "bytes after a bundle's last element": b"#bundle\0" + struct.pack(">Q", 1)
                                           + struct.pack(">i", 28) + raw(b"/vj/param/zoom_pulse", b",f",
                                                                         struct.pack(">f", 0.5)) + b"\x01",
}


def test_packets_whose_arguments_do_not_match_their_type_tags_are_refused_and_counted(osc):
    state, control = osc
    before = state.snapshot()
    for datagram in MISMATCHED.values():
        send(control.address, datagram)
    send(control.address, message("/vj/prompt", "still listening"))  # UDP keeps order on loopback
    assert wait_for(lambda: state.snapshot().prompt_override == "still listening")
    assert state.snapshot().values == before.values
    assert control.warnings["malformed"] == len(MISMATCHED), control.warnings
    assert control.received == 1


def test_every_argument_type_that_matches_its_tags_is_read():
    """The strict check refuses nothing well-formed: each OSC 1.0 type (and the common extensions) passes through
    to routing (an unknown address here, so it is counted as unknown, not as malformed)."""
    state = ShowState()
    control = OscControl(state, "127.0.0.1", free_port()).start()
    try:
        args = (struct.pack(">i", 7) + struct.pack(">f", 0.5) + osc_string(b"text") + struct.pack(">i", 3)
                + b"abc\0" + struct.pack(">q", 1) + struct.pack(">d", 0.25) + struct.pack(">Q", 1) + b"\0\0\0\x41"
                + b"\xff\0\0\xff" + b"\x00\x90\x40\x7f" + osc_string(b"sym") + struct.pack(">i", 1)
                + struct.pack(">i", 2))  # i f s b h d t c r m S T F N I [i i]
        send(control.address, raw(b"/not/ours", b",ifsbhdtcrmSTFNI[ii]", args))
        send(control.address, osc_string(b"/vj/start"))  # no type tag string at all: an old sender, no arguments
        assert wait_for(lambda: control.received == 2)
        assert control.warnings == {"unknown": 1}
        assert [e.kind for e in state.drain_events()] == ["start"]
    finally:
        control.stop()


# -- feedback (issue 18, points 5 and 6) ---------------------------------------------------------------------------

def test_an_unresolvable_feedback_host_warns_once_and_sends_nothing(caplog):
    control = OscControl(ShowState(), "127.0.0.1", free_port(), feedback="vj-no-such-host.invalid:9000")
    try:
        for _ in range(3):
            control.send_feedback(1, "a cue", 60.0)
            control.send_tempo(Tempo(120.0, 0.0, time.perf_counter(), True, "audio"))
    finally:
        control.stop()
    said = [r.getMessage() for r in caplog.records if "vj-no-such-host.invalid" in r.getMessage()]
    assert len(said) == 1 and "not sending feedback" in said[0], said


def test_tempo_feedback_goes_at_once_on_a_change_and_the_beat_once_a_beat():
    """send_tempo with readings as a tempo source would give them, a real UDP socket as the surface: the tempo goes
    when it moved by 0.05 BPM or more (not for a tracker's wobble), the transport when it starts or stops, the beat
    in the bar once in each beat of a running grid."""
    from pythonosc.osc_message import OscMessage

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as surface:
        surface.bind(("127.0.0.1", 0))
        surface.settimeout(0.3)
        control = OscControl(ShowState(), "127.0.0.1", free_port(), feedback=f"127.0.0.1:{surface.getsockname()[1]}")
        try:
            readings = [(128.0, 4.5, True), (128.03, 4.6, True), (128.03, 5.01, True), (128.1, 5.2, True),
                        (128.1, 5.3, False), (128.1, 6.3, False), (128.1, 6.4, True)]
            for bpm, beat, playing in readings:
                control.send_tempo(Tempo(bpm, beat, time.perf_counter(), playing, "link"))
        finally:
            control.stop()
        heard = []
        try:
            while True:
                m = OscMessage(surface.recv(65536))
                heard.append((m.address.removeprefix("/vj/state/"), m.params[0]))
        except socket.timeout:
            pass
    beats = [round(value, 2) for address, value in heard if address == "beat"]
    assert beats == [0.5, 1.01, 2.4], heard  # the beat in the bar, once a beat and not while stopped
    assert [(a, round(v, 2) if isinstance(v, float) else v) for a, v in heard if a != "beat"] == [
        ("bpm", 128.0), ("playing", 1), ("tempo", "link"), ("bpm", 128.1), ("playing", 0), ("playing", 1)], heard


def test_a_feedback_port_out_of_range_is_a_clear_error_before_the_show():
    from vj.control.state import ControlError

    for target in ("127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1", ":9000"):
        with pytest.raises(ControlError, match="control.osc_feedback"):
            OscControl(ShowState(), "127.0.0.1", free_port(), feedback=target).stop()


def test_show_feedback_follows_the_show_cue_and_repeats_every_state_each_second(tmp_path, monkeypatch, caplog):
    """The show (tiny networks, offscreen, an engine made slow so its frames lag the show) with a real UDP receiver
    as the surface: one started late still learns the cue in about a second, and a fast cue sequence 0-1-3-1-2-3-4
    (the show clock jumping) is sent cue by cue, although the engine never drew most of them."""
    import threading

    from pythonosc.osc_message import OscMessage

    from vj import config
    from vj.audio.features import AudioFeatures
    from vj.clock import ManualClock
    from vj.cues.timeline import WatchedTimeline
    from vj.app.show import run_show
    from vj.engine.optimizer import LatentOptimizer
    from vj.models.loading import load_models
    from slow_vj import slowed_render_frame

    sheet = tmp_path / "cues.lrc"
    sheet.write_text("".join(f"[00:{10 * i:02d}.00]cue {i}\n" for i in range(5)))  # cue i at 10 i seconds
    surface_port, osc_port = free_port(), free_port()
    cfg = config.load(None, ["model.generator=tiny", "model.clip=tiny", "display.width=64", "display.height=64",
                             "display.hud=false", "display.vsync=false", "display.max_fps=30", "cues.transition_s=0",
                             f"control.osc_port={osc_port}",
                             f'control.osc_feedback="127.0.0.1:{surface_port}"'])
    monkeypatch.setattr(LatentOptimizer, "render_frame", slowed_render_frame(1.0))  # a second per guided step
    clock = ManualClock()  # the surface below moves the show as a performer's cue jumps would
    running = threading.Event()
    heard: list[tuple[float, str, object]] = []  # (when, address, value) as the surface received them
    failure: list[BaseException] = []

    def surface() -> None:
        try:
            running.wait(120)
            time.sleep(1.5)  # the show has run a while (and sent cue 0 once) before the panel starts
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", surface_port))
                s.settimeout(0.05)
                started = time.time()
                script = [(started + 2.0 + 0.4 * i, 10.0 * cue) for i, cue in enumerate((1, 3, 1, 2, 3, 4))]
                while time.time() < started + 2.0 + 0.4 * len(script) + 2.5:
                    while script and time.time() >= script[0][0]:
                        clock.seek(script.pop(0)[1])
                    try:
                        data = s.recv(65536)
                    except socket.timeout:
                        continue
                    m = OscMessage(data)
                    heard.append((time.time() - started, m.address, m.params[0]))
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            failure.append(e)
        finally:
            send(("127.0.0.1", osc_port), message("/vj/cue/goto", 5))  # the sheet has cues 0 to 4
            time.sleep(0.2)
            send(("127.0.0.1", osc_port), message("/vj/quit", 1))

    driver = threading.Thread(target=surface, daemon=True)
    driver.start()
    caplog.set_level(logging.INFO, logger="vj")
    run_show(cfg, clock, lambda: AudioFeatures(), WatchedTimeline(sheet, 0.0), duration=120.0,
             on_frame=lambda *_: running.set(), offscreen=True, models=load_models(cfg.model))
    driver.join(5)
    assert not failure, failure
    assert "/vj/cue/goto [5]: no cue 5: the cue sheet has cues 0 to 4" in caplog.text  # the show keeps the count
    # the log's once-a-second status line says the show's cue too, not the lagging engine frame's (#26 item 11)
    at_the_end = [line for line in caplog.messages if line.startswith("vj  t=  40.0s")]  # after the last jump
    assert at_the_end and all("  cue 4 " in line and line.endswith("  cue 4") for line in at_the_end), caplog.messages

    first_second = {address: value for when, address, value in heard if when < 1.5}  # a second, and some slack
    assert first_second == {"/vj/state/cue": 0, "/vj/state/prompt": "cue 0", "/vj/state/bpm": 0.0,
                            "/vj/state/playing": 0, "/vj/state/fps": first_second.get("/vj/state/fps"),
                            "/vj/state/tempo": "audio", "/vj/state/held": ""}, heard
    assert isinstance(first_second["/vj/state/fps"], float)

    def changes(address: str) -> list:
        values = [value for _, a, value in heard if a == address]
        return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]

    assert changes("/vj/state/cue") == [0, 1, 3, 1, 2, 3, 4], heard
    assert changes("/vj/state/prompt") == [f"cue {i}" for i in (0, 1, 3, 1, 2, 3, 4)], heard
    end = max(when for when, _, _ in heard)
    for address in ("/vj/state/cue", "/vj/state/prompt", "/vj/state/bpm", "/vj/state/playing", "/vj/state/fps",
                    "/vj/state/tempo", "/vj/state/held"):
        assert sum(1 for when, a, _ in heard if a == address and when > end - 2.2) >= 2, (address, heard)


def test_show_cue_is_the_cue_sheet_at_the_show_clock_or_the_live_prompt():
    from vj.control.osc import show_cue
    from vj.cues.lrc import parse_lrc
    from vj.cues.timeline import Timeline

    timeline = Timeline(parse_lrc("[00:10.00]neon rain:1 | fog:0.5\n[00:20.00]a deep blue ocean\n"), 2.0)
    assert show_cue(timeline, 5.0, None) == (-1, "")
    assert show_cue(timeline, 12.0, "") == (0, "neon rain | fog")
    assert show_cue(timeline, 21.0, None) == (1, "neon rain | fog | a deep blue ocean")  # crossfading: all texts
    assert show_cue(timeline, 25.0, None) == (1, "a deep blue ocean")
    assert show_cue(timeline, 25.0, "a glass city:1 | smoke:-0.3") == (1, "a glass city | smoke")
    assert show_cue(None, 25.0, None) == (-1, "")


def test_an_effect_amount_set_for_an_effect_not_in_the_chain_is_said_once(caplog):
    """The README's `/vj/param/kaleidoscope` (and both bundled MIDI mappings' fader) with the default effect chain,
    which leaves the kaleidoscope out: the show (tiny networks, offscreen) says once that it does nothing and how to
    add it; an effect in the chain says nothing (#26 item 7)."""
    import threading

    from vj import config
    from vj.app.show import run_show
    from vj.audio.features import AudioFeatures
    from vj.clock import ManualClock
    from vj.models.loading import load_models

    osc_port = free_port()
    cfg = config.load(None, ["model.generator=tiny", "model.clip=tiny", "display.width=64", "display.height=64",
                             "display.hud=false", "display.vsync=false", "display.max_fps=30",
                             f"control.osc_port={osc_port}"])
    assert "kaleidoscope" not in cfg.display.effects and "hue_shift" in cfg.display.effects
    running = threading.Event()

    def performer() -> None:
        try:
            running.wait(120)
            for value in (0.8, 0.2, 0.9):  # a fader moved: frames apart, and two in one frame
                send(("127.0.0.1", osc_port), message("/vj/param/kaleidoscope", value))
                send(("127.0.0.1", osc_port), message("/vj/param/hue_shift", value))
                time.sleep(0.3 if value != 0.2 else 0.0)
        finally:
            time.sleep(0.3)
            send(("127.0.0.1", osc_port), message("/vj/quit", 1))

    driver = threading.Thread(target=performer, daemon=True)
    driver.start()
    run_show(cfg, ManualClock(), lambda: AudioFeatures(), None, duration=60.0,
             on_frame=lambda *_: running.set(), offscreen=True, models=load_models(cfg.model))
    driver.join(5)
    said = [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "display.effects" in r.getMessage()]
    assert said == ["kaleidoscope set by osc does nothing: the kaleidoscope effect is not in display.effects; add it "
                    """there (--set 'display.effects=["feedback", "zoom_pulse", "hue_shift", "rgb_split", """
                    """"kaleidoscope", "vignette"]')"""], caplog.text
