"""The beat tracker on the grooves real music has and a plain drum pattern lacks (issue 16's failure modes), each
built here with exact beats. The tracker before the three-band one fails every test here but the offset at 96 BPM
(checked by running this file against it): on longer versions of these grooves an off-beat bassline took the phase
(F 0.04), a dotted pluck took the tempo (170 for 128, F 0.22), a DJ's cut never relocked (F 0.59), a breakdown
slipped (F 0.82), half-time hip-hop was read at double tempo (F 0.65), and its beats came 13 ms late at 174 BPM."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest

from vj.audio.analyze import analyze_samples
from vj.audio.testsignals import BACKBEAT, FOUR_ON_THE_FLOOR, OFF_BEATS, SIXTEENTHS, Pattern, cut, groove

RATE = 48000
HOUSE = {"kick": FOUR_ON_THE_FLOOR, "hat": OFF_BEATS, "snare": BACKBEAT, "bass": OFF_BEATS}


def beat_f(pattern: Pattern, beats: list[float], start: float = 5.0, end: float = 1e9) -> float:
    """mir_eval's F (70 ms) over the reference and estimated beats between start and end."""
    ref = pattern.beats[(pattern.beats >= start) & (pattern.beats < end)]
    est = np.array(beats)
    return mir_eval.beat.f_measure(ref, est[(est >= start) & (est < end)])


def tempo_at(analysis, t: float) -> float:
    return [bpm for at, bpm in analysis.tempo if at <= t][-1]


def test_an_off_beat_bassline_louder_than_the_kick_does_not_take_the_beat():
    trance = {"kick": FOUR_ON_THE_FLOOR, "bass": OFF_BEATS, "open_hat": OFF_BEATS, "hat": SIXTEENTHS,
              "snare": BACKBEAT}
    pattern = groove(138, [(16, trance)], RATE, gains={"bass": 0.9, "kick": 0.6, "snare": 0.15})
    analysis = analyze_samples(pattern.samples, RATE)
    assert beat_f(pattern, analysis.beats) >= 0.9
    assert abs(tempo_at(analysis, 20.0) - 138) < 2


def test_a_dotted_pluck_and_bassline_do_not_take_the_tempo():
    dotted = "x..x..x..x..x.x."  # 3+3+3+3+2+2 sixteenths: the pluck of progressive house and trance
    parts = {"kick": FOUR_ON_THE_FLOOR, "lead": dotted, "bass": dotted, "hat": OFF_BEATS, "snare": BACKBEAT}
    pattern = groove(128, [(12, parts)], RATE, gains={"lead": 1.0, "bass": 0.8, "kick": 0.5})
    analysis = analyze_samples(pattern.samples, RATE)
    assert abs(tempo_at(analysis, 20.0) - 128) < 2  # not 170 (4/3) nor 85 (2/3)
    assert beat_f(pattern, analysis.beats) >= 0.9


def test_a_djs_cut_from_128_to_170_is_followed_and_the_phase_relocks():
    dnb = {"kick": "x.........x.....", "snare": BACKBEAT, "hat": "x.x.x.x.x.x.x.x.", "bass": "x.....x.....x..."}
    first = groove(128, [(10, HOUSE)], RATE)
    pattern = cut(first, groove(170, [(16, dnb)], RATE))
    at = first.samples.shape[0] / RATE
    analysis = analyze_samples(pattern.samples, RATE)
    assert abs(tempo_at(analysis, at + 4.0) - 170) < 3
    assert beat_f(pattern, analysis.beats, start=at + 5.0) >= 0.9
    assert beat_f(pattern, analysis.beats, end=at) >= 0.9


def test_the_beat_coasts_through_an_eight_bar_breakdown():
    pad = {"pad": "x..............."}
    pattern = groove(128, [(8, {**HOUSE, **pad}), (8, pad), (4, {**HOUSE, **pad})], RATE)
    start, end = 8 * 4 * 60 / 128, 16 * 4 * 60 / 128
    analysis = analyze_samples(pattern.samples, RATE)
    assert beat_f(pattern, analysis.beats, start=start, end=end) >= 0.9  # no drums at all in there
    assert beat_f(pattern, analysis.beats, start=end) >= 0.9


def test_half_time_hip_hop_is_read_at_87_not_174():
    hiphop = {"kick": "x.....x...x.....", "snare": BACKBEAT, "hat": "x.x.x.x.x.x.x.x.", "bass": "x.......x.x....."}
    pattern = groove(87, [(12, hiphop)], RATE, swing=0.3)
    analysis = analyze_samples(pattern.samples, RATE)
    assert beat_f(pattern, analysis.beats) >= 0.9
    assert abs(tempo_at(analysis, 10.0) - 87) < 2  # the first lock may take the eighths; settled by then
    assert all(abs(bpm - 87) < 2 for at, bpm in analysis.tempo if at > 10.0)


@pytest.mark.parametrize("bpm", [96, 174])
def test_beats_are_reported_at_their_true_time(bpm):
    pattern = groove(bpm, [(12, HOUSE)], RATE)
    analysis = analyze_samples(pattern.samples, RATE)
    ref = pattern.beats[pattern.beats > 5.0]
    offsets = [b - ref[np.argmin(np.abs(ref - b))] for b in analysis.beats if b > 5.0]
    offsets = [d for d in offsets if abs(d) < 0.07]
    assert len(offsets) > 0.9 * len(ref)
    assert abs(np.median(offsets)) < 0.010  # the detector's window was 10-22 ms late before


@pytest.mark.parametrize("bpm, hat", [(126, "noise_hat"), (140, "noise_hat"), (110, "tone_hat")])
def test_a_kick_on_every_beat_is_the_beat_whatever_fills_the_bands_between(bpm, hat):
    """Four on the floor from a clickless sine-sweep kick, with off-beat hats that reach the mid band (white noise,
    or a tone switched on hard): the beats used to land on the hats, half a beat off, for the whole track (issue
    29). A soft pad under it, as in the issue's grooves. (At 100 BPM these grooves are still read at 200: the
    kick and the hats make one pulse of eighths.)"""
    parts = {"sweep_kick": FOUR_ON_THE_FLOOR, hat: OFF_BEATS, "pad": "x..............."}
    pattern = groove(bpm, [(14, parts)], RATE)
    analysis = analyze_samples(pattern.samples, RATE)
    assert beat_f(pattern, analysis.beats) >= 0.95
    assert abs(tempo_at(analysis, 15.0) - bpm) < 2
