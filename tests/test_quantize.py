"""Cue jumps held to the tempo grid (pure: a Tempo reading and perf_counter times)."""

from __future__ import annotations

import pytest

from vj.control.quantize import Quantizer
from vj.control.state import Event
from vj.control.tempo import Tempo

JUMP = Event("cue_next", 0.0, "osc")


def test_a_jump_mid_bar_waits_for_the_next_downbeat_less_the_lookahead():
    tempo = Tempo(bpm=120.0, beat=5.0, at=100.0, playing=True, source="link")  # 0.5 s a beat; beat 8 at 101.5 s
    held = Quantizer("bar", lookahead_s=0.05)
    held.offer(JUMP, tempo, now=100.2)
    assert held.due(101.44) == [] and held.due(101.45) == [JUMP] and held.due(200.0) == []


@pytest.mark.parametrize("quantize, due_at", [("beat", 100.5), ("2bars", 101.5), ("4bars", 105.5), ("off", 100.2)])
def test_each_quantum(quantize, due_at):
    tempo = Tempo(bpm=120.0, beat=5.0, at=100.0, playing=True, source="midi_clock")
    held = Quantizer(quantize)
    held.offer(JUMP, tempo, now=100.2)
    assert held.due(due_at - 0.001) == [] and held.due(due_at) == [JUMP]


def test_no_grid_means_at_once_and_order_is_kept():
    stopped = Tempo(bpm=120.0, beat=5.0, at=100.0, playing=False, source="link")
    unknown = Tempo(bpm=0.0, beat=0.0, at=100.0, playing=True, source="audio")
    held = Quantizer("bar")
    first, second = Event("cue_goto", 3.0, "midi"), Event("seek", 10.0, "key")
    held.offer(first, stopped, now=100.0)
    held.offer(second, unknown, now=100.0)
    assert held.due(100.0) == [first, second]


def test_a_boundary_just_passed_is_not_taken_twice():
    tempo = Tempo(bpm=120.0, beat=8.0, at=100.0, playing=True, source="link")  # a downbeat right now
    held = Quantizer("bar")
    held.offer(JUMP, tempo, now=100.0)
    assert held.due(100.0) == [JUMP]  # on the boundary: now, not a bar later


def test_the_config_accepts_exactly_the_quanta():
    from vj import config
    from vj.control.tempo import QUANTA

    for name in QUANTA:
        assert config.load(None, [f"cues.quantize={name}"]).cues.quantize == name
    with pytest.raises(config.ConfigError, match="cues.quantize"):
        config.load(None, ["cues.quantize=8bars"])
