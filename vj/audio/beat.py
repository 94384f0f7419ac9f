"""Causal tempo and beat tracking from onset strength in three bands, one value each per audio block.

`BeatTracker(rate_hz)(strengths, t) -> Beat`, where strengths are the block's onset strength in the low band (kick,
bass), the mid band (snare, clap) and the high band (hats). Every `update_s` it looks back over `history_s`:
- tempo: each band's autocorrelation (the last few seconds weighing most, so a DJ's cut shows within seconds)
  votes for the beat period with a comb over its first multiples; a band counts as much as any other, so a loud
  bassline cannot outvote the kick, snare and hats agreeing. A prior over DJ tempos (log-normal around 128 BPM)
  inside `tempo_range` weighs the votes. Then which multiple is the beat:
  - a pick that the onsets divide in three (118 in a 177 drum & bass track whose every eighth is busy) gives way
    to two or four of its thirds: dance music divides the beat in two;
  - a kick on every beat (four on the floor) at the pick or its half says it outright (when both: the likelier
    DJ tempo); else a snare's backbeat (the mid band repeating at even multiples more than at odd ones) picks the
    fastest level it clearly marks (87 for hip-hop, not 174); else the odd multiples decide, as for hats;
- phase: the offset where a train of that period finds the most snare and kick, and lone hats half a period later
  (hats between the beats say where the beat is not), recent beats weighing more, each onset spread over a few
  blocks so a slow snare counts as much as a sharp hat;
- a beat clock runs between estimates and is nudged towards each confident phase measurement (and its period
  towards the tempo); a clear, lasting tempo change restarts it, with the phase found from the onsets after the
  change only (twice or half the tempo, once settled, must last four seconds: mostly the same music heard at
  another level); while the onsets are weak (a breakdown) it coasts at the tempo it had.
Beats are reported in the block where the clock's *predicted* beat falls, with the onset detector's own delay
taken off (`delay_s`), so an effect on the beat lands with it rather than after it. Nothing looks ahead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TEMPO_RANGE = (60.0, 200.0)             # BPM: anything a DJ plays, half-time dubstep counted at 140


@dataclass(frozen=True)
class Beat:
    bpm: float = 0.0                    # 0 until the tempo is known
    phase: float = 0.0                  # 0..1 through the current beat
    is_beat: bool = False               # a predicted beat falls in this block
    confidence: float = 0.0             # 0..1, how clearly the recent onsets keep the beat


class BeatTracker:
    def __init__(
        self,
        rate_hz: float,                 # calls per second (sample rate / block size)
        tempo_range: tuple[float, float] = TEMPO_RANGE,
        history_s: float = 8.0,         # how much onset strength the estimates look at
        update_s: float = 0.25,         # how often tempo and phase are re-estimated
        delay_s: float = 0.0,           # how long after an onset the strengths show it (the detector's window)
        prior_bpm: float = 128.0,       # centre of the tempo prior
        prior_octaves: float = 1.0,     # its width (log2 standard deviation)
        min_confidence: float = 0.15,   # below this the clock coasts (and the tempo is unknown before any lock)
    ):
        self.rate = rate_hz
        self.delay = delay_s
        self.tempo_memory = 3.0         # seconds: the time constant of the tempo estimate's weighting
        low, high = sorted(tempo_range)
        self.min_lag = max(2, int(math.floor(60.0 * rate_hz / high)))
        self.max_lag = int(math.ceil(60.0 * rate_hz / low))
        self.size = max(int(history_s * rate_hz), 2 * self.max_lag + 2)
        self.history = np.zeros((3, self.size), dtype=np.float64)
        self.filled = 0
        self.update_every = max(1, int(update_s * rate_hz))
        self.calls = 0
        self.lags = np.arange(self.min_lag, self.max_lag + 1)
        self.prior = np.exp(-0.5 * (np.log2(60.0 * rate_hz / self.lags / prior_bpm) / prior_octaves) ** 2)
        self.min_confidence = min_confidence
        self.confidence = 0.0
        self.period: float | None = None      # the clock's beat period, seconds
        self.next_beat: float | None = None   # the clock's next beat, seconds
        self.last_beat: float | None = None   # the last beat reported
        self.candidate: float | None = None   # a different period the estimates keep finding (a tempo change)
        self.candidate_count = 0
        self.since_change = 0                 # samples of history since the last tempo change
        self.off_count = 0                    # confident phase measurements in a row far from the clock
        self.locked_at = 0.0                  # when the clock last (re)started
        self.kick_on_every_beat = False       # the last tempo estimate heard four on the floor

    def __call__(self, strengths: np.ndarray | tuple[float, float, float], t: float) -> Beat:
        self.history[:, :-1] = self.history[:, 1:]
        self.history[:, -1] = strengths
        self.filled = min(self.filled + 1, self.size)
        self.since_change += 1
        self.calls += 1
        if self.calls % self.update_every == 0 and self.filled >= 2 * self.max_lag:
            self._update(t)
        is_beat = False
        if self.next_beat is not None and t >= self.next_beat - 0.5 / self.rate:
            is_beat = True
            self.last_beat = self.next_beat
            self.next_beat += self.period
        if self.period is None or self.last_beat is None:
            return Beat(0.0, 0.0, False, self.confidence)
        phase = ((t - self.last_beat) / self.period) % 1.0
        return Beat(60.0 / self.period, phase, is_beat, self.confidence)

    # --- estimates ---

    def _update(self, t: float) -> None:
        x = self.history[:, -self.filled:]
        x = np.maximum(x - _moving_average(x, 9), 0.0)  # the peaks, not the level
        # The last few seconds weigh most, so a DJ's cut to a new tempo wins within seconds.
        age = np.arange(x.shape[1])[::-1] / self.rate
        lag, confidence = self._tempo(x, np.exp(-age / self.tempo_memory))
        self.confidence = confidence
        if lag is None or confidence < self.min_confidence:
            return  # a breakdown, silence: the clock coasts
        period = lag / self.rate
        if self.period is None:
            self._restart(x, period, t)
            return
        if abs(period / self.period - 1.0) > 0.04:
            # A different tempo: believed when it holds for a second (a DJ's cut), else one estimate's noise.
            if self.candidate is not None and abs(period / self.candidate - 1.0) < 0.04:
                self.candidate_count += 1
            else:
                self.candidate, self.candidate_count = period, 1
            # Twice or half a tempo held for a while is mostly the same music heard at another level: believed after
            # four seconds. A first lock is still settling: corrected within a second.
            octave = abs(abs(math.log2(period / self.period)) - 1.0) < 0.05
            settled = t - self.locked_at > 8.0
            if self.candidate_count >= (16 if octave and settled else 4):
                locked_at = self.locked_at
                self._restart(x, period, t)
                if octave:  # the same music: a flip back is no sooner believed than this one was
                    self.locked_at = locked_at
            return
        self.candidate, self.candidate_count = None, 0
        self.period += 0.25 * (period - self.period)
        measured, strength = self._phase(x, self.period * self.rate, t)
        if strength <= 0.0:
            return
        error = (measured - self.next_beat + 0.5 * self.period) % self.period - 0.5 * self.period
        if abs(error) > 0.2 * self.period:
            self.off_count += 1
            if self.off_count >= 4:  # a second of onsets elsewhere: the clock is on the wrong beat, jump there
                self.next_beat += error
                self.off_count = 0
            return
        self.off_count = 0
        self.next_beat += 0.3 * error
        self.period += 0.02 * error

    def _restart(self, x: np.ndarray, period: float, t: float) -> None:
        """A new lock: the phase from the onsets since the tempo changed (at least two beats' worth)."""
        self.period = period
        self.candidate, self.candidate_count, self.off_count = None, 0, 0
        self.since_change = min(self.since_change, int(4 * period * self.rate))
        keep = max(int(2 * period * self.rate) + 1, min(self.since_change, x.shape[1]))
        measured, _ = self._phase(x[:, -keep:], period * self.rate, t)
        upcoming = measured
        while upcoming < t - 0.5 / self.rate:
            upcoming += period
        if self.last_beat is not None and upcoming - self.last_beat < 0.5 * period:
            upcoming += period  # never a beat twice
        self.next_beat = upcoming
        self.since_change = 0
        self.locked_at = t

    def _tempo(self, x: np.ndarray, weights: np.ndarray) -> tuple[float | None, float]:
        n = x.shape[1]
        spectrum = np.fft.rfft(x * weights, 2 * n, axis=1)
        raw = np.fft.irfft(spectrum * np.conj(spectrum), axis=1)[:, :n]
        energy = raw[:, :1]
        if not np.any(energy > 0):
            return None, 0.0
        ac = np.where(energy > 0, raw / np.maximum(energy, 1e-12), 0.0)
        # Unbiased: divided by the weights' own autocorrelation, so a long lag (a slow tempo) is not worth less
        # for having fewer, older pairs of samples.
        window = np.fft.rfft(weights, 2 * n)
        overlap = np.fft.irfft(window * np.conj(window))[:n]
        ac = ac * (overlap[0] / np.maximum(overlap, 1e-3 * overlap[0]))
        ac = np.maximum(ac, 0.0)
        # Each band's comb over the beat's first multiples, bands equal. An integer lag is up to half a sample off
        # the true period, so its k-th multiple up to k/2 samples: the slack grows with k.
        lags = self.lags
        comb = np.zeros((3, lags.shape[0]))
        counts = np.zeros(lags.shape[0])
        peak = _widen(ac, 1)
        widened = {1: peak, 2: _widen(ac, 2)}  # slack for k = 1, 2 and k = 3, 4
        for k in range(1, 5):
            at = k * lags
            inside = at < 0.75 * n
            comb += np.where(inside, widened[(k + 1) // 2][:, np.minimum(at, n - 1)], 0.0)
            counts += inside
        comb /= np.maximum(counts, 1)
        score = comb.mean(axis=0) * self.prior
        if self.period is not None:  # hysteresis: a tempo change has to win clearly
            current = self.period * self.rate
            score *= 1.0 + 0.2 * np.exp(-0.5 * ((lags - current) / 2.0) ** 2)
        best = self._octave(self._binary(int(np.argmax(score)), score, peak), score, peak, n)
        lag = self._refine(score, best)
        confidence = float(np.clip(comb[:, best].max(), 0.0, 1.0))
        pairs = _adjacent_pairs(ac)
        # Whether a kick falls on every beat chosen, however it was chosen (the phase then follows the kick). On
        # pairs of lags, so that a period between two lags is not halved at its odd multiples; measured on grooves
        # with exact beats, a kick on every beat scores 0.8-1.2 there, half-time hip-hop's kick and bass 0.4-0.7.
        self.kick_on_every_beat = _four_on_the_floor(pairs[0], lag, n, level=0.75)
        return lag, confidence

    def _refine(self, score: np.ndarray, best: int) -> float:
        """The lag at index best, refined to a fraction of a sample by a parabola through its neighbours."""
        lag = float(self.lags[best])
        if 0 < best < len(score) - 1:
            a, b, c = score[best - 1], score[best], score[best + 1]
            if a - 2 * b + c < 0:
                lag += 0.5 * (a - c) / (a - 2 * b + c)
        return lag

    def _binary(self, best: int, score: np.ndarray, ac: np.ndarray) -> int:
        """Dance music divides the beat in two: a pick that the onsets divide in three (three eighths: 118 in a 177
        drum & bass track whose every eighth is busy; three sixteenths: a dotted figure) is not the beat. Then the
        beat is two or four of those thirds, whichever the comb and the prior like better."""
        lag = self._refine(score, best)
        both = ac.sum(axis=0)
        third, half, whole = both[int(round(lag / 3))], both[int(round(lag / 2))], both[int(round(lag))]
        if third <= 1.2 * half or third < 0.7 * whole:  # the thirds must be a pulse as clear as the pick itself
            return best
        options = [i for f in (2 / 3, 4 / 3) if (i := self._index(f * lag)) is not None]
        return max(options, key=lambda i: score[i]) if options else best

    def _octave(self, best: int, score: np.ndarray, ac: np.ndarray, n: int) -> int:
        """The comb cannot tell the beat from half or twice it (their multiples coincide). A snare's backbeat can:
        the mid band repeats at twice the beat, not at the beat. Without one, the odd multiples decide: a period
        whose odd multiples correlate as well as its even ones is the beat, one whose odd multiples are weak is half
        of it (eighth-note hats at 85 BPM)."""
        lag = self._refine(score, best)
        choices = {i: f * lag for f in (0.5, 1.0, 2.0) if (i := self._index(f * lag)) is not None}
        # A kick on every beat (four on the floor) says it outright, whatever else repeats by the bar.
        kicks = [i for i in choices if choices[i] <= lag and _four_on_the_floor(ac[0], choices[i], n)]
        if kicks:  # the pick or its half: when both, the likelier DJ tempo (170 drum & bass, not 85)
            return max(kicks, key=lambda i: self.prior[i])
        backbeat = {i: self._backbeat(ac[1], choices[i], n) for i in choices}
        strongest = max(backbeat.values())
        if strongest > 0.15:
            # Anything that repeats by the bar also repeats more at even multiples of two beats than at odd ones:
            # the faster level wins unless the slower one's backbeat is clearly the stronger.
            return min((i for i in choices if backbeat[i] >= 0.6 * strongest), key=lambda i: choices[i])
        both = ac[0] + ac[2]
        half = self._index(lag / 2)
        if half is not None and _odd_even(both, lag / 2, n) >= 0.6:
            return half
        double = self._index(lag * 2)
        if double is not None and _odd_even(both, lag, n) < 0.6:
            return double
        return best

    def _index(self, lag: float) -> int | None:
        i = int(round(lag)) - self.lags[0]
        return i if 0 <= i < self.lags.shape[0] else None

    @staticmethod
    def _backbeat(mid: np.ndarray, lag: float, n: int) -> float:
        """How much the mid band repeats at even multiples of lag (2, 4) more than at odd ones (1, 3): a snare on
        every other beat."""
        if 4 * lag >= 0.75 * n:
            return 0.0
        at = [mid[int(round(k * lag))] for k in (1, 2, 3, 4)]  # mid: adjacent lags paired
        return float((at[1] + at[3]) / 2 - (at[0] + at[2]) / 2)

    def _phase(self, x: np.ndarray, lag: float, t: float) -> tuple[float, float]:
        """The time of the most recent beat the onsets place (seconds) and how clearly they place it (0 = not)."""
        n = x.shape[1]
        # Spread each onset over a few samples: a snare's flux rises over several blocks, a hat's in one, and a
        # train sampling single blocks would favour whichever is sharper.
        smooth = _moving_average(x, 5)
        # Basslines crowd the low band, and a snare or clap is the surer mark; but where a kick falls on every
        # beat, the kick is the beat, and whatever fills the mid band between kicks (noisy hats reach it) is not.
        accent = smooth[0] + 0.5 * smooth[1] if self.kick_on_every_beat else 0.5 * smooth[0] + smooth[1]
        hats = np.maximum(smooth[2] - smooth[1], 0.0)  # hats alone: a snare rises in the high band too, on the beat
        beats_back = max(1, int((n - 1 - lag / 2) // lag))
        weights = 0.85 ** np.arange(beats_back)
        offsets = np.arange(int(math.ceil(lag)))
        positions = n - 1 - offsets[:, None] - np.round(np.arange(beats_back)[None, :] * lag).astype(int)
        half = positions + int(round(lag / 2))
        on = np.where(positions >= 0, accent[np.clip(positions, 0, n - 1)], 0.0)
        at_beat = hats[np.clip(positions, 0, n - 1)]
        off = np.where((positions >= 0) & (half < n), hats[np.clip(half, 0, n - 1)] - at_beat, 0.0)
        scores = ((on + 0.5 * off) * weights).sum(axis=1)
        offset = int(np.argmax(scores))
        spread = float(scores.max() - np.median(scores))
        strength = spread / max(float(weights.sum()), 1e-12)
        return t - self.delay - offset / self.rate, strength


def _four_on_the_floor(low: np.ndarray, lag: float, n: int, level: float = 0.3) -> bool:
    """The low band repeats at lag (its correlation there at least `level`), and as much at its odd multiples as
    at its even ones."""
    return 2 * lag < 0.75 * n and low[int(round(lag))] >= level and _odd_even(low, lag, n) >= 0.65


def _odd_even(ac: np.ndarray, lag: float, n: int) -> float:
    """Correlation at the odd multiples of lag over that at the even ones (within the first six); NaN (no move
    either way) when the history holds too few multiples to say."""
    ks = np.arange(1, 7)
    ks = ks[ks * lag < 0.75 * n]
    if ks.size < 2:
        return math.nan
    values = ac[np.round(ks * lag).astype(int)]
    return float(values[ks % 2 == 1].mean() / max(values[ks % 2 == 0].mean(), 1e-12))


def _widen(ac: np.ndarray, half_width: int) -> np.ndarray:
    """The largest value within half_width samples each way (along the last axis)."""
    out = ac.copy()
    for shift in range(1, half_width + 1):
        out[..., :-shift] = np.maximum(out[..., :-shift], ac[..., shift:])
        out[..., shift:] = np.maximum(out[..., shift:], ac[..., :-shift])
    return out


def _adjacent_pairs(ac: np.ndarray) -> np.ndarray:
    """At each lag, the larger sum of it and one neighbour (along the last axis): a period that is not a whole
    number of samples splits its repeats between two lags, and a pair catches both halves."""
    left, right = ac.copy(), ac.copy()
    left[..., 1:] += ac[..., :-1]
    right[..., :-1] += ac[..., 1:]
    return np.maximum(left, right)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    kernel = np.ones(width) / width
    return np.stack([np.convolve(row, kernel, mode="same") for row in x])
