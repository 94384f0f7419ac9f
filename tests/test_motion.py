"""Camera motion: the generator's input transform follows the beat and the bass, and really moves the picture."""

from __future__ import annotations

import numpy as np
import torch

from vj.audio.features import AudioFeatures
from vj.engine.motion import Motion


def test_no_motion_is_identity():
    m = Motion()
    for t in np.arange(0, 2, 0.1):
        assert np.allclose(m(float(t), AudioFeatures(beat=1.0, bands=(1.0, 0.0, 0.0), is_beat=True), 0.0, 0.0), np.eye(3), atol=1e-6)


def test_beat_rotates_and_alternates():
    m = Motion()
    beat = AudioFeatures(beat=1.0, is_beat=True)
    first = m(0.0, beat, 1.0, 0.0)
    second = m(0.5, beat, 1.0, 0.0)
    # a rotation matrix: opposite sine terms on alternate beats
    assert abs(first[0, 1]) > 0.05 and np.sign(first[0, 1]) == -np.sign(second[0, 1])
    rest = m(1.0, AudioFeatures(beat=0.0), 1.0, 0.0)
    assert np.allclose(rest[:2, :2], np.eye(2), atol=1e-6)


def test_bass_drifts_faster():
    def travel(bass):
        m = Motion()
        for t in np.arange(0, 5, 0.1):
            m(float(t), AudioFeatures(bands=(bass, 0.0, 0.0)), 0.0, 1.0)
        return m.travel

    assert travel(1.0) > 3 * travel(0.0)


def test_transform_moves_the_generated_picture(fixture_t):
    G, cases = fixture_t
    m = Motion()
    m(0.0, AudioFeatures(), 1.0, 1.0)
    moved = torch.from_numpy(m(0.5, AudioFeatures(beat=1.0, is_beat=True, bands=(1.0, 0, 0)), 1.0, 1.0))
    with torch.no_grad():
        still = G.synthesis(cases["ws_psi1.0"][:1])
        shifted = G.synthesis(cases["ws_psi1.0"][:1], transform=moved)
    assert (still - shifted).abs().mean() > 0.01
