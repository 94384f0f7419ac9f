"""Live audio plumbing: the ring buffer, the analysis thread, and file playback (the rehearsal clock).

The sounddevice callbacks only copy samples into a preallocated ring buffer and return (no locks, no printing).
An analysis thread drains the ring into a `FeatureExtractor` and publishes each `AudioFeatures` snapshot by plain
assignment, so readers never wait on the audio thread. Overruns and dropped blocks are counted, never raised.
Live input runs in a child process (`vj.audio.capture`), so a dead device can be recovered from.
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

    def release(self) -> None:
        """Drops the views of a shared buffer, so it can be closed."""
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
        self._thread.join(timeout=1.0)


class FilePlayback:
    """Plays decoded samples to an output device; the playback position is the show clock. What is heard is
    also what is analysed (the callback copies the played block into the ring)."""

    def __init__(self, samples: np.ndarray, sample_rate: int, block_size: int, device: str | int | None = None,
                 start: float = 0.0):
        self.samples = np.ascontiguousarray(samples[:, :2], dtype=np.float32)
        self.sample_rate, self.block_size = sample_rate, block_size
        self.device = device_arg(device)
        self.position = int(start * sample_rate)  # next sample to play; only the callback advances it
        self.paused = False
        self.ring = RingBuffer(int(sample_rate * 2))
        self.underruns = 0
        self.stream = None
        self.finished = threading.Event()
        # The device's clock at the last callback: (DAC time of its first sample, our clock for that sample).
        # Read by the sync benchmark; both change together in the callback.
        self.device_stamp: tuple[float, float] = (0.0, 0.0)

    @property
    def clock(self) -> float:
        return self.position / self.sample_rate

    def seek(self, seconds: float) -> None:
        self.position = int(min(max(seconds, 0.0), self.samples.shape[0] / self.sample_rate) * self.sample_rate)

    def _callback(self, outdata, frames, time_info, status) -> None:
        if status.output_underflow:
            self.underruns += 1
        if self.paused:
            outdata.fill(0)
            return
        pos = self.position
        if time_info is not None:
            self.device_stamp = (time_info.outputBufferDacTime, pos / self.sample_rate)
        chunk = self.samples[pos:pos + frames]
        n = chunk.shape[0]
        outdata[:n] = chunk if outdata.shape[1] == chunk.shape[1] else chunk.mean(axis=1, keepdims=True)
        outdata[n:] = 0
        self.ring.write(outdata[:, 0] if outdata.shape[1] == 1 else outdata.mean(axis=1))
        self.position = pos + n
        if n < frames:
            self.finished.set()

    def start(self) -> "FilePlayback":
        import sounddevice

        self.stream = sounddevice.OutputStream(device=self.device, samplerate=self.sample_rate, blocksize=self.block_size,
                                               channels=self.samples.shape[1], dtype="float32", callback=self._callback)
        self.stream.start()
        return self

    def stop(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


class SilentPlayback(FilePlayback):
    """File playback without an output device (rehearsing on a machine with no sound): a timer thread runs the
    same callback into a scratch buffer at real time, so the clock and the analysis behave as with a device."""

    def __init__(self, samples: np.ndarray, sample_rate: int, block_size: int, start: float = 0.0):
        super().__init__(samples, sample_rate, block_size, start=start)
        self._running = True
        self._thread = threading.Thread(target=self._tick, name="vj-silent-playback", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        out = np.zeros((self.block_size, self.samples.shape[1]), dtype=np.float32)
        status = type("Status", (), {"output_underflow": False})()
        next_time = time.perf_counter()
        while self._running:
            self._callback(out, self.block_size, None, status)
            next_time += self.block_size / self.sample_rate
            time.sleep(max(0.0, next_time - time.perf_counter()))

    def stop(self) -> None:
        self._running = False
