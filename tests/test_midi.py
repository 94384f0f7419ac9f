"""MIDI: the mapping and router on raw bytes, then real ports on a JACK dummy server (input, learn, reconnect)."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from conftest import CC, NOTE_ON, REPO, run_vj, virtual_out, wait_for
from vj.control.midi import (CcRow, MidiInput, MidiMapping, MidiMappingError, MidiRouter, NoteRow,
                           bundled_mappings, learn, load_mapping)
from vj.control.state import ShowState


def router(*rows, bank=("neon rain", "deep ocean")):
    state = ShowState()
    cc = tuple(r for r in rows if isinstance(r, CcRow))
    notes = tuple(r for r in rows if isinstance(r, NoteRow))
    return state, MidiRouter(state, MidiMapping(cc, notes), list(bank))


def test_cc_sets_parameter_through_range_and_curve():
    state, route = router(CcRow(21, "hue_shift"), CcRow(22, "audio_gain", curve="exp"),
                          CcRow(23, "steps_per_frame", channel=2, low=0, high=8))
    route([CC, 21, 127])
    route([CC, 22, 64])
    route([CC | 1, 23, 127])   # channel 2
    route([CC, 23, 0])         # channel 1: not mapped
    values = state.snapshot().values
    assert values["hue_shift"] == 1.0
    assert values["audio_gain"] == pytest.approx(4.0 * (64 / 127) ** 2)
    assert values["steps_per_frame"] == 8.0
    assert state.snapshot().sources["hue_shift"] == "midi"


def test_soft_takeover_after_another_source_moved_the_parameter():
    state, route = router(CcRow(21, "hue_shift"))
    route([CC, 21, 20])
    state.set("hue_shift", 0.8, "osc")        # the OSC surface moved it
    route([CC, 21, 30])                       # the knob is far below 0.8: no jump
    assert state.snapshot().values["hue_shift"] == 0.8
    route([CC, 21, 90])                       # still below (0.71)
    assert state.snapshot().values["hue_shift"] == 0.8
    route([CC, 21, 110])                      # sweeps across 0.8: picked up
    assert state.snapshot().values["hue_shift"] == pytest.approx(110 / 127)
    route([CC, 21, 10])                       # now it follows at once
    assert state.snapshot().values["hue_shift"] == pytest.approx(10 / 127)


def test_notes_trigger_actions_and_prompt_slots():
    state, route = router(NoteRow(36, "cue_next"), NoteRow(37, "freeze"), NoteRow(38, "prompt", slot=1),
                          NoteRow(39, "prompt", slot=5), NoteRow(40, "downbeat"))
    route([NOTE_ON, 36, 100])
    route([NOTE_ON, 40, 100])
    route([NOTE_ON, 36, 0])      # note-on with velocity 0 is a note-off
    route([NOTE_ON, 37, 100])
    route([NOTE_ON, 38, 100])
    route([NOTE_ON, 39, 100])    # empty slot: a counted warning
    route([0xF8])                # clock byte: ignored here
    route([])
    assert [e.kind for e in state.drain_events()] == ["cue_next", "downbeat"]
    snap = state.snapshot()
    assert snap.freeze and snap.prompt_override == "deep ocean"
    assert route.warnings == 1


def test_example_mappings_load_by_path_and_by_name():
    assert set(bundled_mappings()) == {"akai-apc-mini", "novation-launchcontrol-xl"}
    for name, path in bundled_mappings().items():
        mapping = load_mapping(path)
        assert mapping.cc and mapping.notes and load_mapping(name) == mapping


@pytest.mark.parametrize("text,needle", [
    ("[[cc]]\ncontrol = 21\nparam = \"nope\"\n", r"\[\[cc\]\] #1: param must be one of"),
    ("[[cc]]\ncontrol = 200\nparam = \"hue_shift\"\n", "control must be a whole number 0..127"),
    ("[[note]]\nnote = 1\naction = \"explode\"\n", r"\[\[note\]\] #1: action must be one of"),
    ("[[cc]]\ncontrol = 1\nparam = \"hue_shift\"\ncurve = \"wavy\"\n", "curve must be one of"),
    ("[[cc]]\ncontrol = 1\nparam = \"hue_shift\"\nspeed = 3\n", "unknown key"),
    ("[pads]\n", "unknown table"),
    ("[[cc]\n", "not valid TOML"),
])
def test_bad_mapping_files_name_file_and_row(tmp_path, text, needle):
    path = tmp_path / "map.toml"
    path.write_text(text)
    with pytest.raises(MidiMappingError, match=needle):
        load_mapping(path)


# -- real ports through JACK ---------------------------------------------------------------------------------

def test_real_port_input_and_reconnect(jack):
    state, route = router(CcRow(21, "rgb_split"), NoteRow(40, "blackout"))
    out = virtual_out("vj-test-controller")
    midi = MidiInput("test-controller", route, poll_s=0.2).start()
    try:
        assert wait_for(lambda: len(midi.ports) == 1)
        time.sleep(0.3)
        out.send_message([CC, 21, 64])
        assert wait_for(lambda: state.snapshot().values["rgb_split"] == pytest.approx(64 / 127))
        out.close_port()
        out.delete()
        assert wait_for(lambda: not midi.ports), "the vanished port was not noticed"
        out = virtual_out("vj-test-controller")  # plugged back in
        assert wait_for(lambda: midi.reconnects == 1 and len(midi.ports) == 1)
        time.sleep(0.3)
        out.send_message([NOTE_ON, 40, 127])
        assert wait_for(lambda: state.snapshot().blackout)
    finally:
        midi.stop()
        out.delete()


def test_midi_learn_writes_the_mapping(jack, tmp_path):
    out = virtual_out("vj-learn-source")
    mapping = tmp_path / "learned.toml"
    env = {"JACK_NO_START_SERVER": "1"}
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "vj.cli", "midi", "learn", "learn-source", "--mapping", str(mapping),
                             "--param", "kaleidoscope", "--timeout", "20"], cwd=REPO, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline:
            out.send_message([CC | 3, 74, 10])  # channel 4, CC 74
            time.sleep(0.3)
        output = proc.communicate(timeout=30)[0]
    finally:
        proc.kill()
        out.delete()
    assert proc.returncode == 0, output
    learned = load_mapping(mapping)
    assert learned.cc == (CcRow(74, "kaleidoscope", channel=4),)
    run_vj("midi", "ports", env=env)


def test_learn_says_at_once_when_no_port_matches(jack, tmp_path):
    started = time.time()
    with pytest.raises(MidiMappingError, match="no MIDI input port matches 'NoSuchPort'; there are: "):
        learn("NoSuchPort", tmp_path / "m.toml", param="hue_shift", timeout=20)
    assert time.time() - started < 5  # not the 20 s timeout


def test_learn_asks_again_after_an_unknown_parameter(jack, tmp_path):
    out = virtual_out("vj-learn-retry")
    answers, questions = iter(["hue_shfit", "hue_shift"]), []

    def ask(question: str) -> str:
        questions.append(question)
        return next(answers)

    mapping = tmp_path / "m.toml"
    sender = threading.Thread(target=lambda: [out.send_message([CC, 21, 5]) or time.sleep(0.2) for _ in range(25)],
                              daemon=True)
    sender.start()
    try:
        learn("learn-retry", mapping, timeout=20, ask=ask)
    finally:
        sender.join()
        out.delete()
    assert len(questions) == 2 and "'hue_shfit' is not one of them" in questions[1]
    assert load_mapping(mapping).cc == (CcRow(21, "hue_shift", channel=1),)  # MIDI channel 0 is channel 1
