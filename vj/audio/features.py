"""Causal audio features, fed one block at a time: RMS, bands, spectral-flux onsets, envelopes.

`FeatureExtractor(sample_rate, ...)(block) -> AudioFeatures` is pure numpy and deterministic; the live input,
file playback and offline render all call it the same way, so a rehearsal looks like the show. Values are
normalised to 0..1 by an automatic gain that follows the loudest recent level and slowly lets go, so a quiet
room and a loud club both use the full range.

Latency, in blocks: RMS, bands, flux and onsets see a block as soon as it is complete (0 blocks after the
block; an onset is flagged in the block that contains it, or the next when it falls at the very end). The FFT
window covers the last `fft_size` samples, so band energies lag a change by up to fft_size/2 samples. The beat
(`is_beat`, `beat_phase`, `bpm`) is predicted from the tempo and phase estimated over the last seconds, so once the
tracker has locked (a few seconds) beats are reported in the block where they fall, not after them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vj.audio.beat import TEMPO_RANGE, BeatTracker


@dataclass(frozen=True)
class AudioFeatures:
    t: float = 0.0                      # seconds of audio analysed (end of the last block)
    rms: float = 0.0                    # loudness, 0..1 (auto-gained)
    bands: tuple[float, ...] = ()       # energy per band (default bass, mid, high), 0..1 (auto-gained)
    onset: float = 0.0                  # onset envelope: jumps to 1 on an onset, releases
    is_onset: bool = False              # an onset was detected in the last block
    flux: float = 0.0                   # spectral flux, 0..1 (auto-gained)
    bpm: float = 0.0                    # tempo estimate; 0 = unknown
    beat_phase: float = 0.0             # 0..1 position within the beat; 0 when the tempo is unknown
    is_beat: bool = False               # a (predicted) beat falls in the last block
    beat: float = 0.0                   # beat envelope: jumps to 1 on each beat, releases
    beat_confidence: float = 0.0        # 0..1: how clearly the recent onsets keep the beat (low in a breakdown)

    @property
    def bass(self) -> float:
        return self.bands[0] if self.bands else 0.0


SILENCE = AudioFeatures()


class AutoGain:
    """Divides by a peak follower (per element) that rises at once and decays over `release_s`."""

    def __init__(self, rate_hz: float, release_s: float = 8.0, floor: float = 1e-4):
        self.decay = float(np.exp(-1.0 / (rate_hz * release_s)))
        self.floor = floor
        self.peak: np.ndarray | float = floor

    def __call__(self, value: np.ndarray | float) -> np.ndarray | float:
        value = np.asarray(value, dtype=np.float64)
        self.peak = np.maximum(np.maximum(value, self.peak * self.decay), self.floor)
        return np.clip(value / self.peak, 0.0, 1.0)


class FeatureExtractor:
    def __init__(
        self,
        sample_rate: int,               # Hz
        block_size: int = 256,          # samples per call (the hop)
        fft_size: int = 1024,           # analysis window in samples
        band_edges: tuple[float, ...] = (20.0, 250.0, 4000.0, 16000.0),  # Hz, n+1 edges for n bands
        attack_s: float = 0.005,        # envelope rise time
        release_s: float = 0.25,        # envelope fall time
        onset_threshold: float = 1.5,   # flux must exceed this many times its recent median
        onset_floor: float = 0.25,      # ... and this fraction of the recent loudest flux
        onset_window_s: float = 0.5,    # length of that recent history
        min_onset_gap_s: float = 0.05,  # onsets closer than this are one onset
        tempo_range: tuple[float, float] = TEMPO_RANGE,  # BPM the beat tracker may choose
    ):
        if fft_size < block_size:
            raise ValueError(f"fft_size ({fft_size}) must be at least block_size ({block_size})")
        self.sample_rate = sample_rate
        self.block_size = block_size
        self.fft_size = fft_size
        rate = sample_rate / block_size
        self.window = np.hanning(fft_size).astype(np.float32)
        freqs = np.fft.rfftfreq(fft_size, 1.0 / sample_rate)
        self.band_bins = [np.flatnonzero((freqs >= lo) & (freqs < hi)) for lo, hi in zip(band_edges[:-1], band_edges[1:])]
        # The beat tracker's bands: kick and bass, snare and clap, hats.
        self.beat_bins = [np.flatnonzero(freqs < 150.0), np.flatnonzero((freqs >= 300.0) & (freqs < 5000.0)),
                          np.flatnonzero(freqs >= 5000.0)]
        self.buffer = np.zeros(fft_size, dtype=np.float32)
        self.prev_mag = np.zeros(freqs.shape[0], dtype=np.float32)
        self.flux_history = np.zeros(max(3, int(onset_window_s * rate)), dtype=np.float32)
        self.history_pos = 0
        self.onset_threshold = onset_threshold
        self.onset_floor = onset_floor
        self.min_gap_blocks = max(1, int(min_onset_gap_s * rate))
        self.blocks_since_onset = self.min_gap_blocks
        self.attack = float(np.exp(-1.0 / max(rate * attack_s, 1e-6)))
        self.release = float(np.exp(-1.0 / max(rate * release_s, 1e-6)))
        self.rms_gain, self.band_gain, self.flux_gain = AutoGain(rate), AutoGain(rate), AutoGain(rate)
        self.beat_gain = AutoGain(rate)
        self.onset_env = 0.0
        self.beat_env = 0.0
        # A rise shows in the flux when it is about halfway into the window: that late after it happened.
        self.tracker = BeatTracker(rate, tempo_range, delay_s=0.5 * fft_size / sample_rate)
        self.samples_seen = 0

    @classmethod
    def from_config(cls, audio, sample_rate: int) -> "FeatureExtractor":
        """From an `AudioConfig` ([audio] in the config), at the source's sample rate."""
        return cls(sample_rate, audio.block_size, audio.fft_size, tuple(audio.band_edges), audio.attack_s,
                   audio.release_s, tempo_range=tuple(audio.tempo_range))

    def __call__(self, block: np.ndarray) -> AudioFeatures:
        """block: [block_size] mono float samples (or [block_size, channels], mixed down)."""
        if block.ndim == 2:
            block = block.mean(axis=1)
        n = block.shape[0]
        self.buffer = np.roll(self.buffer, -n)
        self.buffer[-n:] = block[-self.fft_size:]
        self.samples_seen += n

        rms = float(np.sqrt(np.mean(np.square(block)))) if n else 0.0
        mag = np.abs(np.fft.rfft(self.buffer * self.window)).astype(np.float32)
        bands = np.array([np.sqrt(np.mean(np.square(mag[b]))) if b.size else 0.0 for b in self.band_bins])
        # Log-magnitude flux: rises in any band count, level changes of the whole mix matter less.
        log_mag = np.log1p(mag)
        rises = np.maximum(log_mag - self.prev_mag, 0.0)
        flux = float(np.sum(rises))
        beat_flux = np.array([np.sum(rises[b]) for b in self.beat_bins])
        self.prev_mag = log_mag

        if self.samples_seen < self.fft_size:
            # Warm-up: the window still holds the zeros it started with, so its flux says nothing. Seed the
            # history with it, so the threshold starts from the signal's own level rather than from zero.
            self.flux_history[:] = flux
            return AudioFeatures(t=self.samples_seen / self.sample_rate, rms=float(self.rms_gain(rms)),
                                 bands=tuple(float(v) for v in self.band_gain(bands)), flux=0.0)
        median = float(np.median(self.flux_history))
        self.flux_history[self.history_pos] = flux
        self.history_pos = (self.history_pos + 1) % self.flux_history.shape[0]
        self.blocks_since_onset += 1
        flux_level = float(self.flux_gain(flux))  # flux / recent peak
        is_onset = bool(flux > self.onset_threshold * median + 1e-3 and flux_level > self.onset_floor
                        and self.blocks_since_onset >= self.min_gap_blocks)
        if is_onset:
            self.blocks_since_onset = 0
        self.onset_env = self._envelope(self.onset_env, is_onset)
        beat = self.tracker(self.beat_gain(beat_flux), self.samples_seen / self.sample_rate)
        self.beat_env = self._envelope(self.beat_env, beat.is_beat)

        return AudioFeatures(
            t=self.samples_seen / self.sample_rate,
            rms=float(self.rms_gain(rms)),
            bands=tuple(float(v) for v in self.band_gain(bands)),
            onset=self.onset_env,
            is_onset=is_onset,
            flux=flux_level,
            bpm=beat.bpm,
            beat_phase=beat.phase,
            is_beat=beat.is_beat,
            beat=self.beat_env,
            beat_confidence=beat.confidence,
        )

    def _envelope(self, value: float, hit: bool) -> float:
        target = 1.0 if hit else 0.0
        coeff = self.attack if target > value else self.release
        return target + (value - target) * coeff
