"""Writes a synthesised demo track (kick, snare, hats, a bass line) so the demo ships no copyrighted music.

    python examples/make_beat.py examples/demo.wav --seconds 16 --bpm 120
"""

from __future__ import annotations

import argparse

import numpy as np
import soundfile


def beat(seconds: float = 16.0, bpm: float = 120.0, sample_rate: int = 48000, seed: int = 0) -> np.ndarray:
    """[n, 2] float32 stereo: four-on-the-floor kick, snare on 2 and 4, off-beat hats, a bass line in A minor."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    out = np.zeros(n, dtype=np.float64)
    beat_len = 60.0 / bpm

    def place(sound: np.ndarray, at: float, gain: float) -> None:
        start = int(at * sample_rate)
        end = min(n, start + sound.shape[0])
        if start < n:
            out[start:end] += gain * sound[: end - start]

    t = np.arange(int(0.35 * sample_rate)) / sample_rate
    kick = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t * 30)) / 30)) * np.exp(-t * 9)
    snare = rng.standard_normal(t.shape[0]) * np.exp(-t * 22) + 0.4 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 15)
    th = t[: int(0.06 * sample_rate)]
    hat = np.diff(rng.standard_normal(th.shape[0] + 1)) * np.exp(-th * 70)
    bass_notes = [55.0, 55.0, 65.41, 49.0]  # A1 A1 C2 G1, one per bar
    for i in range(int(seconds / beat_len) + 1):
        at = i * beat_len
        place(kick, at, 0.9)
        if i % 4 in (1, 3):
            place(snare, at, 0.35)
        place(hat, at + beat_len / 2, 0.25)
        freq = bass_notes[(i // 4) % len(bass_notes)]
        tb = np.arange(int(beat_len * 0.9 * sample_rate)) / sample_rate
        place(np.tanh(2 * np.sin(2 * np.pi * freq * tb)) * np.exp(-tb * 3), at, 0.25)
    out /= max(1e-9, np.max(np.abs(out))) / 0.9
    return np.stack([out, out], axis=1).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output .wav path")
    parser.add_argument("--seconds", type=float, default=16.0, help="length in seconds (default 16)")
    parser.add_argument("--bpm", type=float, default=120.0, help="tempo (default 120)")
    parser.add_argument("--sample-rate", type=int, default=48000, help="Hz (default 48000)")
    args = parser.parse_args()
    soundfile.write(args.out, beat(args.seconds, args.bpm, args.sample_rate), args.sample_rate)


if __name__ == "__main__":
    main()
