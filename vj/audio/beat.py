"""Causal tempo and beat tracking from an onset-strength signal, one value per audio block.

`BeatTracker(rate_hz)(strength, t) -> Beat`. Every `update_s` it looks back over `history_s` of onset strength:
- the beat period is the autocorrelation lag that scores best between min_bpm and max_bpm, scored as a comb over
  its first multiples, weighted by a broad prior around 120 BPM and by a preference for the period it already has;
  then an octave check: a period whose odd multiples correlate as well as its even ones is the beat, one whose odd
  multiples are weak is half of it (eighth-note hats at 85 BPM), so the pick moves down or up an octave until
  that holds (the comb alone takes 170 for 85 and 90 for 180, as both fit its multiples about as well);
- the phase is the offset at which a pulse train of that period best matches the recent onsets (recent beats
  weigh more).
Between updates it runs a beat clock from that estimate and reports a beat in the block where the *predicted* beat
falls, so an effect on the beat lands with it instead of a detection delay after it. Nothing looks ahead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Beat:
    bpm: float = 0.0                    # 0 until the tempo is known
    phase: float = 0.0                  # 0..1 through the current beat
    is_beat: bool = False               # a predicted beat falls in this block
    confidence: float = 0.0             # 0..1, how periodic the recent onsets are


class BeatTracker:
    def __init__(
        self,
        rate_hz: float,                 # calls per second (sample rate / block size)
        min_bpm: float = 70.0,
        max_bpm: float = 180.0,
        history_s: float = 6.0,         # how much onset strength the estimates look at
        update_s: float = 0.25,         # how often tempo and phase are re-estimated
        prior_bpm: float = 120.0,       # centre of the tempo prior
        prior_octaves: float = 2.0,     # its width (log2 standard deviation): broad, the comb decides
        min_confidence: float = 0.1,    # below this the tempo is reported unknown
        octave_ratio: float = 0.6,      # odd/even multiple correlation at or above which a period is the beat
    ):
        self.rate = rate_hz
        self.min_lag = int(math.floor(60.0 * rate_hz / max_bpm))
        self.max_lag = int(math.ceil(60.0 * rate_hz / min_bpm))
        self.size = max(int(history_s * rate_hz), 2 * self.max_lag + 2)
        self.history = np.zeros(self.size, dtype=np.float64)
        self.filled = 0
        self.update_every = max(1, int(update_s * rate_hz))
        self.calls = 0
        lags = np.arange(self.min_lag, self.max_lag + 1)
        self.lags = lags
        self.prior = np.exp(-0.5 * (np.log2(60.0 * rate_hz / lags / prior_bpm) / prior_octaves) ** 2)
        self.min_confidence = min_confidence
        self.octave_ratio = octave_ratio
        self.period: float | None = None  # seconds
        self.confidence = 0.0
        self.next_beat: float | None = None  # predicted time of the next beat
        self.last_beat: float | None = None  # time of the last reported beat

    def __call__(self, strength: float, t: float) -> Beat:
        self.history = np.roll(self.history, -1)
        self.history[-1] = strength
        self.filled = min(self.filled + 1, self.size)
        self.calls += 1
        if self.calls % self.update_every == 0 and self.filled >= 2 * self.max_lag:
            self._estimate(t)
        is_beat = False
        if self.period is not None and self.next_beat is not None and t >= self.next_beat - 0.5 / self.rate:
            is_beat = True
            self.last_beat = self.next_beat
            self.next_beat += self.period
        if self.period is None or self.last_beat is None:
            return Beat(0.0, 0.0, False, self.confidence)
        phase = ((t - self.last_beat) / self.period) % 1.0
        return Beat(60.0 / self.period, phase, is_beat, self.confidence)

    def _estimate(self, t: float) -> None:
        x = self.history[-self.filled:]
        x = np.maximum(x - np.convolve(x, np.ones(9) / 9, mode="same"), 0.0)  # keep the peaks, drop the level
        if not np.any(x):
            return
        n = x.shape[0]
        spectrum = np.fft.rfft(x, 2 * n)
        raw = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
        if raw[0] <= 0:
            return
        ac = raw / raw[0]
        # A comb over the first multiples of each lag: the true period has peaks at all of them, while half of it
        # (kick against off-beat hat) scores only at every other one.
        score = np.zeros(self.lags.shape[0])
        for k in range(1, 5):
            score += np.where(k * self.lags < n, ac[np.minimum(k * self.lags, n - 1)], 0.0) / k
        score *= self.prior
        if self.period is not None:  # hysteresis: a tempo change has to win clearly
            current = self.period * self.rate
            score *= 1.0 + 0.3 * np.exp(-0.5 * ((self.lags - current) / 2.0) ** 2)
        best = int(np.argmax(score))
        lag = float(self.lags[best])
        if 0 < best < len(score) - 1:  # parabolic refinement to a fractional lag
            a, b, c = score[best - 1], score[best], score[best + 1]
            if a - 2 * b + c < 0:
                lag += 0.5 * (a - c) / (a - 2 * b + c)
        self.confidence = float(np.clip(ac[self.lags[best]], 0.0, 1.0))
        if self.confidence < self.min_confidence:
            return
        unbiased = raw / (n - np.arange(n))  # the same correlation without its decay with the lag
        lag = self._octave(unbiased, lag, n)
        self.period = lag / self.rate
        self._estimate_phase(x, lag, t)

    def _octave(self, ac: np.ndarray, lag: float, n: int) -> float:
        """Moves the period down an octave while its half is still the beat, else up while it is half the beat."""
        moved = False
        while lag / 2 >= self.min_lag and self._odd_even(ac, lag / 2, n) >= self.octave_ratio:
            lag, moved = lag / 2, True
        while not moved and 2 * lag <= self.max_lag and self._odd_even(ac, lag, n) < self.octave_ratio:
            lag *= 2
        return lag

    @staticmethod
    def _odd_even(ac: np.ndarray, lag: float, n: int) -> float:
        """Correlation at the odd multiples of lag over that at the even ones (within the first six); NaN (no move
        either way) when the history holds too few multiples to say."""
        ks = np.arange(1, 7)
        ks = ks[ks * lag < 0.75 * n]
        if ks.size < 2:
            return math.nan
        values = ac[np.round(ks * lag).astype(int)]
        return float(values[ks % 2 == 1].mean() / max(values[ks % 2 == 0].mean(), 1e-12))

    def _estimate_phase(self, x: np.ndarray, lag: float, t: float) -> None:
        n = x.shape[0]
        beats_back = int((n - 1) // lag)
        weights = 0.8 ** np.arange(beats_back)
        offsets = np.arange(int(math.ceil(lag)))
        positions = n - 1 - offsets[:, None] - np.round(np.arange(beats_back)[None, :] * lag).astype(int)
        valid = positions >= 0
        scores = (np.where(valid, x[np.clip(positions, 0, n - 1)], 0.0) * weights).sum(axis=1)
        offset = int(np.argmax(scores))
        beat = t - offset / self.rate  # the most recent beat, as the onsets place it
        upcoming = beat + self.period
        while upcoming < t - 0.5 / self.rate:
            upcoming += self.period
        # Do not report a beat twice: the new estimate's next beat must be well after the last one reported.
        if self.last_beat is not None and upcoming - self.last_beat < 0.5 * self.period:
            upcoming += self.period
        self.next_beat = upcoming
