"""`vj audio analyze`: the live analysis run over a file, block by block, exactly as it would run on stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vj.audio.features import FeatureExtractor
from vj.audio.files import read_audio


@dataclass
class Analysis:
    duration: float
    onsets: list[float] = field(default_factory=list)      # seconds
    beats: list[float] = field(default_factory=list)       # seconds (predicted beats, as the show sees them)
    tempo: list[tuple[float, float]] = field(default_factory=list)  # (seconds, bpm) whenever the estimate moves

    def to_json(self) -> dict:
        return {"duration": round(self.duration, 6), "onsets": [round(t, 4) for t in self.onsets],
                "beats": [round(t, 4) for t in self.beats], "tempo": [[round(t, 3), round(b, 2)] for t, b in self.tempo]}


def analyze_samples(samples: np.ndarray, sample_rate: int, block_size: int = 256, fft_size: int = 1024) -> Analysis:
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    extractor = FeatureExtractor(sample_rate, block_size, fft_size)
    result = Analysis(duration=mono.shape[0] / sample_rate)
    last_bpm = 0.0
    for start in range(0, mono.shape[0] - block_size + 1, block_size):
        f = extractor(mono[start:start + block_size])
        if f.is_onset:
            result.onsets.append(f.t)
        if f.is_beat:
            result.beats.append(f.t)
        if f.bpm and abs(f.bpm - last_bpm) >= 0.5:
            result.tempo.append((f.t, f.bpm))
            last_bpm = f.bpm
    return result


def analyze_file(path: str | Path, block_size: int = 256, fft_size: int = 1024) -> Analysis:
    samples, rate = read_audio(path)
    return analyze_samples(samples, rate, block_size, fft_size)
