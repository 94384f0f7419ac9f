"""Synthesised drum patterns with their beat and onset times: the demo track, test signals and benchmark data.

No recorded music ships with vj; these patterns are made here, so their annotations are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pattern:
    samples: np.ndarray                 # [n, 2] float32 stereo in -0.9..0.9
    sample_rate: int
    beats: np.ndarray                   # beat times in seconds (quarter notes)
    onsets: np.ndarray                  # every drum hit's start time in seconds, sorted


def _voices(sample_rate: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(int(0.35 * sample_rate)) / sample_rate
    kick = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t * 30)) / 30)) * np.exp(-t * 9)
    snare = rng.standard_normal(t.shape[0]) * np.exp(-t * 22) + 0.4 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 15)
    th = t[: int(0.06 * sample_rate)]
    hat = np.diff(rng.standard_normal(th.shape[0] + 1)) * np.exp(-th * 70)
    return {"kick": kick, "snare": snare, "hat": hat}


def drum_pattern(
    bpm: float = 120.0,                 # tempo
    seconds: float = 16.0,              # length
    sample_rate: int = 48000,
    swing: float = 0.0,                 # 0..0.5: how late the off-beat eighth hats come (fraction of a beat / 2)
    fills: bool = False,                # a snare fill of sixteenths in the last beat of every fourth bar
    noise: float = 0.0,                 # white noise level relative to the drums
    bass: bool = True,                  # a bass line in A minor under the drums
    seed: int = 0,
) -> Pattern:
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    out = np.zeros(n, dtype=np.float64)
    beat_len = 60.0 / bpm
    voices = _voices(sample_rate, rng)
    onsets: list[float] = []

    def place(sound: np.ndarray, at: float, gain: float) -> None:
        start = int(round(at * sample_rate))
        if start >= n:
            return
        end = min(n, start + sound.shape[0])
        out[start:end] += gain * sound[: end - start]
        onsets.append(start / sample_rate)

    beats = np.arange(0.0, seconds, beat_len)
    bass_notes = [55.0, 55.0, 65.41, 49.0]  # A1 A1 C2 G1, one per bar
    for i, at in enumerate(beats):
        bar, position = divmod(i, 4)
        fill = fills and bar % 4 == 3 and position == 3
        place(voices["kick"], at, 0.9)
        if position in (1, 3) and not fill:
            place(voices["snare"], at, 0.35)
        if fill:
            for k in range(4):
                place(voices["snare"], at + k * beat_len / 4, 0.3 + 0.05 * k)
        place(voices["hat"], at + beat_len / 2 * (1 + 2 * swing), 0.25)
        if bass:
            tb = np.arange(int(beat_len * 0.9 * sample_rate)) / sample_rate
            freq = bass_notes[bar % len(bass_notes)]
            start = int(round(at * sample_rate))
            end = min(n, start + tb.shape[0])
            out[start:end] += 0.25 * (np.tanh(2 * np.sin(2 * np.pi * freq * tb)) * np.exp(-tb * 3))[: end - start]
    if noise > 0:
        out += noise * 0.3 * rng.standard_normal(n)
    out /= max(1e-9, np.max(np.abs(out))) / 0.9
    stereo = np.stack([out, out], axis=1).astype(np.float32)
    return Pattern(stereo, sample_rate, beats, np.unique(np.round(np.array(onsets), 6)))


# A small step sequencer for the grooves real music has and a plain drum pattern lacks: an off-beat bassline, a
# dotted lead, a half-time groove, a breakdown, a DJ's cut. Each part is a bar of 16 steps ("x" a hit, "." a rest),
# or several bars' worth, repeated.
FOUR_ON_THE_FLOOR = "x...x...x...x..."
BACKBEAT = "....x.......x..."
OFF_BEATS = "..x...x...x...x."
SIXTEENTHS = "x" * 16
DOTTED_EIGHTHS = "x.." * 16             # three bars: a pluck every three sixteenths, across the bar lines


def _tone(sample_rate: int, freq: float, seconds: float, decay: float, harmonics: int, attack_s: float = 0.002,
          ) -> np.ndarray:
    """A band-limited sawtooth with a short attack and an exponential decay (bass, lead, pad voices)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, harmonics + 1) if freq * k < sample_rate / 2.2)
    envelope = np.minimum(t / attack_s, 1.0) * np.exp(-t * decay)
    return wave * envelope


def groove(
    bpm: float,
    sections: list[tuple[int, dict[str, str]]],  # (bars, {voice: 16-step pattern}) in order
    sample_rate: int = 48000,
    swing: float = 0.0,                 # 0..0.5: how late the odd sixteenths come (fraction of a step)
    gains: dict[str, float] | None = None,
    seed: int = 0,
) -> Pattern:
    """Voices: kick, snare, hat, open_hat, bass (a saw bass note an eighth long), lead (a bright pluck), pad (a
    chord held for the bar, slow attack: no transient); and other timbres of a kick and a hat: sweep_kick (a sine
    falling from 150 to 45 Hz, no click), noise_hat (a burst of white noise: it reaches every band) and tone_hat (an
    8 kHz tone, switched on hard). Beats are the quarter notes, from 0."""
    rng = np.random.default_rng(seed)
    step = 60.0 / bpm / 4
    bars = sum(count for count, _ in sections)
    n = int(bars * 16 * step * sample_rate)
    out = np.zeros(n + sample_rate, dtype=np.float64)
    drums = _voices(sample_rate, rng)
    th = np.arange(int(0.25 * sample_rate)) / sample_rate
    sounds = {
        "kick": drums["kick"], "snare": drums["snare"], "hat": drums["hat"],
        "open_hat": np.diff(rng.standard_normal(th.shape[0] + 1)) * np.exp(-th * 12),
        "bass": _tone(sample_rate, 55.0, step * 1.8, 6.0, 12, 0.003),
        "lead": _tone(sample_rate, 880.0, step * 2.5, 9.0, 10),
        "pad": _tone(sample_rate, 220.0, step * 16, 0.2, 6, 0.6) + _tone(sample_rate, 277.2, step * 16, 0.2, 6, 0.6)
        + _tone(sample_rate, 329.6, step * 16, 0.2, 6, 0.6),
        **_other_timbres(sample_rate, rng),
    }
    level = {"kick": 0.9, "snare": 0.4, "hat": 0.2, "open_hat": 0.12, "bass": 0.35, "lead": 0.3, "pad": 0.08,
             "sweep_kick": 0.9, "noise_hat": 0.28, "tone_hat": 0.28, **(gains or {})}  # the hats 10 dB under
    onsets: list[float] = []
    bar = 0
    for count, parts in sections:
        for _ in range(count):
            for voice, steps in parts.items():
                first = (bar * 16) % len(steps)
                for i, hit in enumerate(steps[first:first + 16]):
                    if hit != "x":
                        continue
                    at = (bar * 16 + i + (swing if i % 2 else 0.0)) * step
                    start = int(round(at * sample_rate))
                    sound = sounds[voice]
                    out[start:start + sound.shape[0]] += level[voice] * sound[: out.shape[0] - start]
                    if voice != "pad":
                        onsets.append(start / sample_rate)
            bar += 1
    out = out[:n]
    out /= max(1e-9, np.max(np.abs(out))) / 0.9
    stereo = np.stack([out, out], axis=1).astype(np.float32)
    beats = np.arange(bars * 4) * step * 4
    return Pattern(stereo, sample_rate, beats, np.unique(np.round(np.array(onsets), 6)))


def _other_timbres(sample_rate: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(int(0.3 * sample_rate)) / sample_rate
    pitch = 45.0 + 105.0 * np.exp(-t / 0.05)  # Hz: 150 falling to 45
    sweep_kick = np.sin(2 * np.pi * np.cumsum(pitch) / sample_rate) * np.exp(-t / 0.12) * np.minimum(1.0, t / 0.002)
    th = t[: int(0.05 * sample_rate)]
    noise_hat = rng.standard_normal(th.shape[0]) * np.exp(-th / 0.02) / 2.5  # about the kick's peak, then 10 dB down
    tone_hat = np.sin(2 * np.pi * 8000.0 * th) * np.exp(-th / 0.02)
    return {"sweep_kick": sweep_kick, "noise_hat": noise_hat, "tone_hat": tone_hat}


def cut(first: Pattern, second: Pattern) -> Pattern:
    """A DJ's hard cut: `second` starts where `first` ends (same sample rate), each keeping its own beats."""
    offset = first.samples.shape[0] / first.sample_rate
    return Pattern(np.concatenate([first.samples, second.samples]), first.sample_rate,
                   np.concatenate([first.beats, second.beats + offset]),
                   np.concatenate([first.onsets, second.onsets + offset]))
