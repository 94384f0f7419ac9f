"""Fuzzing every parser and handler that takes outside input (hypothesis): each either accepts the input or ends
in the project's own clear error or a counted warning; no other exception escapes, and the show state stays valid.

LRC cue sheets are fuzzed in test_cues.py; here: OSC (raw bytes and structured messages and bundles, through the
dispatcher and through the real UDP server), MIDI byte streams, config files and overrides, MIDI mapping files,
control logs, StyleGAN3 checkpoints (mutated reference pickles) and safetensors exports.
"""

from __future__ import annotations

import math
import os
import socket
import struct
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from conftest import free_port, load_fixture_generator, wait_for
from reference_pickle import snapshot_pickle
from vj import config
from vj.control.midi import CcRow, MidiMapping, MidiMappingError, MidiRouter, NoteRow, load_mapping
from vj.control.osc import OscControl
from vj.control.showlog import ShowLogError, read_show_log
from vj.control.state import PARAMS, ShowState
from vj.models.checkpoints import CheckpointError, load_exported, load_generator

EXAMPLES = int(os.environ.get("VJ_FUZZ_EXAMPLES", "200"))  # more for a long hunt: VJ_FUZZ_EXAMPLES=5000
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KNOWN = ["/vj/prompt", "/vj/prompt/weighted", "/vj/param/hue_shift", "/vj/param/steps_per_frame", "/vj/param/nope",
         "/vj/start", "/vj/cue/next", "/vj/cue/prev", "/vj/cue/goto", "/vj/seek", "/vj/freeze", "/vj/blackout",
         "/vj/*", "/vj/param/*", "/vj/[a-z]*", "/vj/{prompt,seek}", "/elsewhere", "/"]


def assert_state_valid(state: ShowState) -> None:
    snap = state.snapshot()
    assert set(snap.values) == set(PARAMS)
    for name, value in snap.values.items():
        assert math.isfinite(value) and PARAMS[name].low <= value <= PARAMS[name].high, (name, value)
    assert snap.prompt_override is None or isinstance(snap.prompt_override, str)
    for event in list(state.events):
        assert math.isfinite(event.value)


# -- OSC ---------------------------------------------------------------------------------------------------------

def osc_string(data: bytes) -> bytes:
    return data + b"\0" * (4 - len(data) % 4)


osc_args = st.one_of(  # (type tag, encoded argument)
    st.integers(-2**31, 2**31 - 1).map(lambda v: (b"i", struct.pack(">i", v))),
    st.integers(-2**63, 2**63 - 1).map(lambda v: (b"h", struct.pack(">q", v))),
    st.floats(width=32).map(lambda v: (b"f", struct.pack(">f", v))),
    st.floats().map(lambda v: (b"d", struct.pack(">d", v))),
    st.text(max_size=40).map(lambda v: (b"s", osc_string(v.encode("utf-8", "surrogatepass")))),
    st.binary(max_size=16).map(lambda v: (b"b", struct.pack(">i", len(v)) + v + b"\0" * (-len(v) % 4))),
    st.sampled_from([(b"T", b""), (b"F", b""), (b"N", b""), (b"I", b""), (b"r", b"\0\0\0\0"), (b"z", b"")]),
)


@st.composite
def osc_messages(draw) -> bytes:
    """A message as it goes on the wire, encoded here (python-osc's builder refuses what is odd, but a sender
    need not): any address, any type tags, including unknown ones and invalid UTF-8."""
    address = draw(st.one_of(st.sampled_from(KNOWN), st.text(min_size=1, max_size=30).map(lambda s: "/" + s)))
    args = draw(st.lists(osc_args, max_size=6))
    return (osc_string(address.encode("utf-8", "surrogatepass")) + osc_string(b"," + b"".join(t for t, _ in args))
            + b"".join(v for _, v in args))


@st.composite
def osc_packets(draw) -> bytes:
    """Raw bytes, a message, a bundle (immediate or timed, possibly nested), or one of those with bytes flipped
    or cut."""
    kind = draw(st.sampled_from(["raw", "message", "bundle", "mutated"]))
    if kind == "raw":
        return draw(st.one_of(st.binary(max_size=64), st.binary(max_size=32).map(lambda b: b"#bundle\0" + b)))
    if kind == "message":
        return draw(osc_messages())
    if kind == "bundle":
        offset = draw(st.sampled_from([None, -10.0, 0.2, 1e6]))  # None: immediately; 1e6: far future (clamped)
        dgram = b"#bundle\0" + osc_types.write_date(IMMEDIATELY if offset is None else time.time() + offset)
        for message in draw(st.lists(osc_messages(), min_size=0, max_size=3)):
            dgram += struct.pack(">i", len(message)) + message
        return dgram
    data = bytearray(draw(osc_messages()))
    for _ in range(draw(st.integers(1, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@pytest.fixture(scope="module")
def osc_server():
    state = ShowState()
    control = OscControl(state, "127.0.0.1", free_port()).start()
    yield state, control
    control.stop()


@FUZZ
@given(packet=osc_packets())
def test_osc_packets_end_in_a_counted_warning_or_a_valid_change(osc_server, packet):
    state, control = osc_server
    def counted() -> int:  # refused, heard, or put off until a bundle's time
        return sum(control.warnings.values()) + control.received + control.dispatcher.scheduled

    before = counted()
    control.dispatcher.call_handlers_for_packet(packet, ("127.0.0.1", 9))  # must not raise
    empty_bundle = packet.startswith(b"#bundle\x00") and len(packet) == 16  # valid OSC, and nothing in it
    assert counted() > before or empty_bundle
    assert_state_valid(state)


@settings(max_examples=max(EXAMPLES * 3 // 4, 1), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(packets=st.lists(osc_packets(), min_size=1, max_size=10))
def test_osc_server_survives_any_datagrams(osc_server, packets):
    state, control = osc_server
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for packet in packets:
            s.sendto(packet, control.address)
        marker = f"still listening {len(packets)} {sum(map(len, packets))}"
        s.sendto(_prompt(marker), control.address)
    # Seen in the change record: a fuzzed bundle scheduled for later may overwrite the prompt itself at any moment.
    assert wait_for(lambda: any(change[3] == marker for change in list(state.changes)), timeout=5)
    assert_state_valid(state)


def _prompt(text: str) -> bytes:
    builder = OscMessageBuilder("/vj/prompt")
    builder.add_arg(text)
    return builder.build().dgram


# -- MIDI --------------------------------------------------------------------------------------------------------

@FUZZ
@given(messages=st.lists(st.lists(st.integers(0, 255), max_size=6), max_size=40))
def test_midi_byte_streams_never_raise(messages):
    state = ShowState()
    mapping = MidiMapping((CcRow(21, "hue_shift"), CcRow(22, "steps_per_frame", curve="exp", low=0, high=16),
                           CcRow(23, "lr_scale", channel=2, low=4.0, high=0.0)),
                          (NoteRow(36, "cue_next"), NoteRow(37, "freeze"), NoteRow(38, "prompt", slot=3),
                           NoteRow(39, "start"), NoteRow(40, "blackout")))
    route = MidiRouter(state, mapping, ["one", "two"])
    for message in messages:
        route(message)
    assert_state_valid(state)
    assert len(route.seen) <= 64


# -- files -------------------------------------------------------------------------------------------------------

toml_values = st.recursive(
    st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(), st.booleans(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
SECTIONS = {f.name: list(config.typing.get_type_hints(type(getattr(config.Config(), f.name))))
            for f in config.dataclasses.fields(config.Config)}


@st.composite
def config_tables(draw) -> dict:
    data = {}
    for section in draw(st.lists(st.one_of(st.sampled_from(list(SECTIONS)), st.text(max_size=8)), max_size=3)):
        keys = SECTIONS.get(section, []) + ["bogus"]
        value = draw(st.one_of(st.dictionaries(st.sampled_from(keys), toml_values, max_size=4), toml_values))
        data[section] = value
    return data


@FUZZ
@given(data=config_tables())
def test_config_tables_load_or_name_the_bad_key(data):
    try:
        cfg = config.from_dict(data, "fuzz.toml")
    except config.ConfigError as e:
        assert str(e).startswith("fuzz.toml: ")
        return
    assert isinstance(cfg, config.Config)


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_config_files_of_any_bytes(tmp_path, text):
    path = tmp_path / "any.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        config.load(path)
    except config.ConfigError as e:
        assert str(path) in str(e)


@FUZZ
@given(item=st.text(max_size=60))
def test_config_overrides_of_any_text(item):
    try:
        config.apply_override(config.Config(), item)
    except config.ConfigError as e:
        assert str(e).startswith("--set ")


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.builds(
    lambda rows: "\n".join(rows), st.lists(st.sampled_from([
        "[[cc]]", "[[note]]", "control = 21", "control = 300", 'param = "hue_shift"', 'param = 5', "channel = 17",
        'action = "prompt"', 'action = "start"', "slot = -1", "note = 36", 'curve = "exp"', "min = 1e400", "[pads]",
        "max = nan", "= broken"]), max_size=12))))
def test_midi_mapping_files(tmp_path, text):
    path = tmp_path / "map.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_mapping(path)
    except MidiMappingError as e:
        assert str(path) in str(e) or "[[" in str(e)


HEADER = '{"wall": 0, "t": 0, "source": "vj", "what": "show", "value": {"format": 1}}\n'


@FUZZ
@given(lines=st.lists(st.one_of(
    st.text(max_size=60),
    st.fixed_dictionaries({"wall": toml_values, "t": toml_values, "source": toml_values, "what": st.sampled_from(
        ["hue_shift", "prompt", "freeze", "clock", "end", "show", "seek", "x"]), "value": toml_values}).map(
        lambda d: __import__("json").dumps(d))), max_size=6))
def test_control_logs_read_or_name_the_line(tmp_path, lines):
    from vj.control.showlog import ControlReplay

    path = tmp_path / "show.controls.jsonl"
    path.write_text(HEADER + "\n".join(lines), encoding="utf-8", errors="surrogatepass")
    try:
        show = read_show_log(path)
    except ShowLogError as e:
        assert str(path) in str(e)
        return
    state, replay = ShowState(), ControlReplay(show)
    replay.apply_until(state, math.inf)  # bad values: counted, never raised
    assert math.isfinite(replay.show_time(1e6))
    assert_state_valid(state)


# -- checkpoints -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> tuple[bytes, Path]:
    G, _ = load_fixture_generator("sg3t_64")
    canary = tmp_path_factory.mktemp("canary") / "ran"
    source = f"open({str(canary)!r}, 'w').write('ran')\nclass Generator: pass\n"
    return snapshot_pickle(G, G.init_kwargs, source), canary


@settings(max_examples=max(EXAMPLES * 3 // 5, 1), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_checkpoints_load_or_give_a_checkpoint_error(checkpoint_bytes, tmp_path, edits, cut):
    data, canary = checkpoint_bytes
    mutated = bytearray(data)
    for where, value in edits:
        mutated[int(where * len(mutated))] = value
    if cut is not None:
        mutated = mutated[: int(cut * len(mutated))]
    path = tmp_path / "fuzzed.pkl"
    path.write_bytes(bytes(mutated))
    try:
        load_generator(path)
    except CheckpointError as e:
        assert str(path) in str(e)
    assert not canary.exists(), "code stored in the checkpoint ran"


@settings(max_examples=max(EXAMPLES * 2 // 5, 1), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.floats(0, 1)), header_len=st.one_of(st.none(), st.integers(0, 2**64 - 1)))
def test_mutated_safetensors_exports_load_or_give_a_checkpoint_error(tmp_path_factory, tmp_path, edits, cut,
                                                                     header_len):
    import json

    from safetensors.torch import save_file

    G, _ = load_fixture_generator("sg3t_64")
    weights, meta = tmp_path / "g.safetensors", tmp_path / "g.json"
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(weights))
    meta.write_text(json.dumps({"format": "vj-stylegan3", "init_kwargs": G.init_kwargs}))
    data = bytearray(weights.read_bytes())
    if header_len is not None:
        data[:8] = struct.pack("<Q", header_len)
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    weights.write_bytes(bytes(data))
    try:
        load_exported(weights, meta)
    except CheckpointError as e:
        assert str(weights) in str(e)
