"""Causal audio features on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest

from vj.audio.features import FeatureExtractor
from vj.audio.files import features_at_frames, read_audio
from vj.audio.stream import RingBuffer

RATE = 48000


def clicks(times: list[float], seconds: float, noise: float = 0.002) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(int(seconds * RATE)) * noise
    burst = np.hanning(480) * rng.standard_normal(480)
    for t in times:
        start = int(t * RATE)
        x[start:start + 480] += burst
    return x.astype(np.float32)


def test_onsets_found_at_click_times_within_a_block_or_two():
    times = [0.5, 1.0, 1.25, 2.0, 2.6]
    signal = clicks(times, 3.0)
    fx = FeatureExtractor(RATE, block_size=256)
    found = []
    for i in range(0, signal.shape[0] - 255, 256):
        features = fx(signal[i:i + 256])
        if features.is_onset:
            found.append(features.t)
    assert len(found) == len(times)
    for t, f in zip(times, found):
        assert 0 <= f - t <= 2 * 256 / RATE + 1e-9  # causal: never before the click, within two blocks


def test_bands_follow_frequency_content():
    t = np.arange(RATE) / RATE
    fx = FeatureExtractor(RATE)
    low = (0.5 * np.sin(2 * np.pi * 80 * t)).astype(np.float32)
    for i in range(0, RATE - 255, 256):
        features = fx(low[i:i + 256])
    assert features.bands[0] > 0.5 and features.bands[2] < 0.1
    assert 0 <= features.rms <= 1


def test_offline_features_are_causal():
    signal = clicks([1.5], 3.0)
    quiet = signal.copy()
    quiet[int(1.2 * RATE):] = 0  # a different future must not change features before it
    a = list(features_at_frames(signal[:, None], RATE, 10, FeatureExtractor(RATE), 30))
    b = list(features_at_frames(quiet[:, None], RATE, 10, FeatureExtractor(RATE), 30))
    assert a[:13] == b[:13]
    assert all(f.t <= i / 10 + 1e-9 for i, f in enumerate(a))


def test_ring_buffer_wraps_and_counts_drops():
    ring = RingBuffer(8)
    ring.write(np.arange(5, dtype=np.float32))
    assert ring.read(3).tolist() == [0, 1, 2]
    ring.write(np.arange(5, 12, dtype=np.float32))  # 12 written, 3 read: 9 pending > 8
    assert ring.read(4).tolist() == [4, 5, 6, 7]
    assert ring.dropped == 1
    assert ring.read(8) is None


def test_read_audio_wav_and_mp3(tmp_path):
    import soundfile

    data = (0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.float32)
    soundfile.write(tmp_path / "a.wav", np.stack([data, data], 1), RATE)
    samples, rate = read_audio(tmp_path / "a.wav")
    assert rate == RATE and samples.shape == (RATE, 2)
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(tmp_path / "a.wav"), str(tmp_path / "a.mp3")], check=True)
    samples, rate = read_audio(tmp_path / "a.mp3")
    assert rate == RATE and abs(samples.shape[0] - RATE) < 0.1 * RATE


@pytest.mark.parametrize("bpm", [70, 85, 100, 128, 160, 180])  # 85 and 180: the octave traps (170 and 90)
def test_beats_land_on_a_steady_pattern(bpm):
    import mir_eval

    from vj.audio.analyze import analyze_samples
    from vj.audio.testsignals import drum_pattern

    pattern = drum_pattern(bpm, 20, seed=2)
    analysis = analyze_samples(pattern.samples, pattern.sample_rate)
    f = mir_eval.beat.f_measure(mir_eval.beat.trim_beats(pattern.beats),
                                mir_eval.beat.trim_beats(np.array(analysis.beats)))
    assert f >= 0.9, (bpm, f)
    assert abs(analysis.tempo[-1][1] - bpm) < 2


def test_beat_envelope_and_phase_follow_the_beat():
    from vj.audio.testsignals import drum_pattern

    pattern = drum_pattern(120, 12, seed=3)
    mono = pattern.samples.mean(1)
    fx = FeatureExtractor(RATE)
    phases_at_beats, envelope_after = [], []
    for i in range(0, mono.shape[0] - 255, 256):
        f = fx(mono[i:i + 256])
        if f.t > 8 and f.is_beat:
            phases_at_beats.append(f.beat_phase)
            envelope_after.append(f.beat)
    assert len(phases_at_beats) >= 6
    assert all(p < 0.05 or p > 0.95 for p in phases_at_beats)
    assert min(envelope_after) > 0.5


def test_silence_has_no_tempo():
    fx = FeatureExtractor(RATE)
    for _ in range(2000):
        f = fx(np.zeros(256, np.float32))
    assert f.bpm == 0.0 and not f.is_beat


def test_audio_analyze_json(tmp_path):
    import json
    import subprocess
    import sys

    from conftest import REPO, run_vj

    wav = tmp_path / "beat.wav"
    subprocess.run([sys.executable, str(REPO / "examples" / "make_beat.py"), str(wav), "--seconds", "10",
                    "--bpm", "120"], check=True)
    data = json.loads(run_vj("audio", "analyze", str(wav), "--json").stdout)
    assert set(data) >= {"onsets", "beats", "tempo"}
    assert len(data["beats"]) >= 10 and all(isinstance(t, float) for t in data["onsets"])
    assert abs(data["tempo"][-1][1] - 120) < 2
    late = [t for t in data["beats"] if t > 5]
    assert all(min(abs(t - k * 0.5) for k in range(25)) < 0.07 for t in late)


def test_surround_tracks_mix_down_to_stereo_for_rehearsal():
    """5.1 in the WAV order: the centre (a voice) on both sides at -3 dB, the LFE left out, the surrounds on their
    side; nothing can clip. Mono and stereo are played as they are."""
    from vj.audio.playback import to_stereo

    n = 8
    surround = np.zeros((n, 6), np.float32)
    surround[:, 2] = 1.0                               # FC
    surround[:, 3] = 1.0                               # LFE
    left, right = to_stereo(surround).T
    assert np.allclose(left, right) and left[0] > 0.2
    surround[:, 4] = 1.0                               # BL
    left, right = to_stereo(surround).T
    assert left[0] > right[0] and left[0] <= 1.0
    assert np.all(np.abs(to_stereo(np.ones((n, 6), np.float32))) <= 1.0)
    mono = np.ones((n, 1), np.float32)
    assert to_stereo(mono).shape == (n, 1) and to_stereo(np.ones((n, 2), np.float64)).dtype == np.float32
