"""Live audio plumbing: the ring buffer and the analysis thread.

The sounddevice callbacks only copy samples into a preallocated ring buffer and return (no locks, no printing).
An analysis thread drains the ring into a `FeatureExtractor` and publishes each `AudioFeatures` snapshot by plain
assignment, so readers never wait on the audio thread. Overruns and dropped blocks are counted, never raised.
Live input and rehearsal playback run in child processes (`vj.audio.capture`, `vj.audio.playback`), so a dead
device can be recovered from.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np

from vj.audio.features import SILENCE, AudioFeatures, FeatureExtractor

log = logging.getLogger(__name__)


def device_arg(device: str | int | None) -> str | int | None:
    """A configured device for sounddevice: "" = default, "3" = index 3, other text = a name substring."""
    if device in ("", None):
        return None
    return int(device) if isinstance(device, str) and device.isdigit() else device


class RingBuffer:
    """Single-producer, single-consumer ring of mono float32 samples. The producer never blocks: when the
    consumer falls behind by more than the capacity, the oldest samples are overwritten and counted as dropped.

    It can live in a shared buffer (`buffer`, `nbytes(capacity)` long: a 64-bit write counter, then the samples),
    so the producer can be another process. The counter is advanced only after the samples are in place."""

    def __init__(self, capacity: int, buffer=None):
        raw = buffer if buffer is not None else bytearray(self.nbytes(capacity))
        self._raw = raw
        self._counter = np.ndarray((1,), dtype=np.int64, buffer=raw, offset=0)
        self.data = np.ndarray((capacity,), dtype=np.float32, buffer=raw, offset=8)
        self.capacity = capacity
        self.read_pos = 0               # total samples ever read (only the consumer changes it)
        self.dropped = 0

    @staticmethod
    def nbytes(capacity: int) -> int:
        return 8 + 4 * capacity

    @property
    def written(self) -> int:
        """Total samples ever written (only the producer changes it)."""
        return int(self._counter[0])

    def write(self, samples: np.ndarray) -> None:
        n = samples.shape[0]
        written = self.written
        start = written % self.capacity
        first = min(n, self.capacity - start)
        self.data[start:start + first] = samples[:first]
        self.data[: n - first] = samples[first:]
        self._counter[0] = written + n

    def read(self, n: int) -> np.ndarray | None:
        """The next n samples, or None if fewer are available."""
        written = self.written
        lag = written - self.read_pos
        if lag > self.capacity:  # overwritten before we got to them
            self.dropped += lag - self.capacity
            self.read_pos = written - self.capacity
        if written - self.read_pos < n:
            return None
        start = self.read_pos % self.capacity
        idx = (start + np.arange(n)) % self.capacity
        self.read_pos += n
        return self.data[idx]

    def reader(self) -> "RingBuffer":
        """A second consumer of the same samples, from now on, with a read position of its own (the recorder
        reads what the analysis reads)."""
        other = RingBuffer(self.capacity, self._raw)
        other.read_pos = self.written
        return other

    def release(self) -> None:
        """Drops the views of a shared buffer, so it can be closed."""
        self._raw = bytearray(self.nbytes(0))
        self._counter = np.zeros(1, dtype=np.int64)
        self.data = np.zeros(0, dtype=np.float32)


class AudioAnalyzer:
    """Drains a ring into a FeatureExtractor on its own thread; `features` is the newest snapshot, and the times
    of recent onsets and beats are kept for the HUD, the log and tests."""

    def __init__(self, ring: RingBuffer, extractor: FeatureExtractor):
        self.ring, self.extractor = ring, extractor
        self.features: AudioFeatures = SILENCE
        self.onsets: deque[float] = deque(maxlen=256)  # analysis time of recent onsets
        self.beats: deque[float] = deque(maxlen=256)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vj-audio-analysis", daemon=True)

    def start(self) -> "AudioAnalyzer":
        self._thread.start()
        return self

    def _run(self) -> None:
        hop = self.extractor.block_size
        while not self._stop.is_set():
            block = self.ring.read(hop)
            if block is None:
                time.sleep(hop / self.extractor.sample_rate / 2)
                continue
            features = self.extractor(block)
            if features.is_onset:
                self.onsets.append(features.t)
            if features.is_beat:
                self.beats.append(features.t)
            self.features = features

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():  # the show may end before it began (a model that did not load)
            self._thread.join(timeout=1.0)
