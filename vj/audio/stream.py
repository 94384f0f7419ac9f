"""Live audio: input from a device, or a file played to the speakers; both feed the same causal analysis.

The sounddevice callbacks only copy samples into a preallocated ring buffer and return (no allocation, no locks,
no printing). An analysis thread drains the ring into a `FeatureExtractor` and publishes each `AudioFeatures`
snapshot by plain assignment, so readers never wait on the audio thread. Overruns and dropped blocks are
counted, never raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np

from vj.audio.features import SILENCE, AudioFeatures, FeatureExtractor

log = logging.getLogger(__name__)


class RingBuffer:
    """Single-producer, single-consumer ring of mono float32 samples. The producer never blocks: when the
    consumer falls behind by more than the capacity, the oldest samples are overwritten and counted as dropped."""

    def __init__(self, capacity: int):
        self.data = np.zeros(capacity, dtype=np.float32)
        self.capacity = capacity
        self.written = 0                # total samples ever written (only the producer changes it)
        self.read_pos = 0               # total samples ever read (only the consumer changes it)
        self.dropped = 0

    def write(self, samples: np.ndarray) -> None:
        n = samples.shape[0]
        start = self.written % self.capacity
        first = min(n, self.capacity - start)
        self.data[start:start + first] = samples[:first]
        self.data[: n - first] = samples[first:]
        self.written += n

    def read(self, n: int) -> np.ndarray | None:
        """The next n samples, or None if fewer are available."""
        lag = self.written - self.read_pos
        if lag > self.capacity:  # overwritten before we got to them
            self.dropped += lag - self.capacity
            self.read_pos = self.written - self.capacity
        if self.written - self.read_pos < n:
            return None
        start = self.read_pos % self.capacity
        idx = (start + np.arange(n)) % self.capacity
        self.read_pos += n
        return self.data[idx]


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


class LiveInput:
    """An input device, mixed (channel -1) or one channel, copied into a ring by the callback.

    A watchdog notices when the callback stops (the device vanished, the audio server died): the input is then
    `lost`, silence is fed to the analysis at the real rate so the show keeps moving, and `status` says why.
    The dead stream is abandoned, not closed: closing a stream whose JACK server died blocks forever, and
    PortAudio cannot be re-initialised in the same process after that (its JACK host asserts), so reopening
    once the device returns needs the stream in a child process (not done yet)."""

    STALL_S = 0.5                       # no callback for this long = the input is lost

    def __init__(self, device: str | int | None, sample_rate: int, block_size: int, channel: int = -1,
                 ring_seconds: float = 2.0):
        self.device = device if device not in ("", None) else None
        self.sample_rate, self.block_size, self.channel = sample_rate, block_size, channel
        self.ring = RingBuffer(int(sample_rate * ring_seconds))
        self.overruns = 0
        self.stream = None
        self.lost = False
        self.status = "not started"
        self.last_callback = 0.0
        self._mix = np.zeros(block_size * 8, dtype=np.float32)  # the callback mixes into this, no allocation
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="vj-audio-watchdog", daemon=True)

    def _callback(self, indata, frames, time_info, status) -> None:
        self.last_callback = time.perf_counter()
        if status.input_overflow:
            self.overruns += 1
        if self.channel >= 0:
            self.ring.write(indata[:, self.channel])
        elif frames <= self._mix.shape[0]:
            self.ring.write(np.mean(indata, axis=1, out=self._mix[:frames]))
        else:
            self.ring.write(indata.mean(axis=1))

    def start(self) -> "LiveInput":
        import sounddevice

        device = int(self.device) if isinstance(self.device, str) and self.device.isdigit() else self.device
        info = sounddevice.query_devices(device, "input")
        channels = max(1, min(int(info["max_input_channels"]), 2 if self.channel < 0 else self.channel + 1))
        self.stream = sounddevice.InputStream(device=device, samplerate=self.sample_rate, blocksize=self.block_size,
                                              channels=channels, dtype="float32", callback=self._callback)
        self.last_callback = time.perf_counter()
        self.stream.start()
        self.status = f"listening to {info['name']}"
        log.info("listening to %s (%d ch, %d Hz, %d-sample blocks)", info["name"], channels, self.sample_rate,
                 self.block_size)
        self._watchdog.start()
        return self

    def _watch(self) -> None:
        silence = np.zeros(self.block_size, dtype=np.float32)
        block_s = self.block_size / self.sample_rate
        next_time = time.perf_counter()
        while not self._stop.is_set():
            stalled = time.perf_counter() - self.last_callback > self.STALL_S
            if stalled and not self.lost:
                self.lost, self.status = True, "audio input lost (device gone or audio server stopped): silence"
                log.warning("%s", self.status)
                _skip_portaudio_terminate()
            elif not stalled and self.lost:
                self.lost, self.status = False, "audio input back"
                log.warning("%s", self.status)
            if self.lost:  # real-time silence, so features decay instead of freezing on the last loud block
                self.ring.write(silence)
                next_time += block_s
                time.sleep(max(0.0, next_time - time.perf_counter()))
            else:
                next_time = time.perf_counter()
                self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        if self.stream is not None and not self.lost:
            self.stream.close()
        self.stream = None


def _skip_portaudio_terminate() -> None:
    """After a stream died with its audio server, sounddevice's exit handler (Pa_Terminate) aborts the process
    in PortAudio's JACK host; without it the process ends normally and the OS reclaims the dead stream."""
    import atexit

    import sounddevice

    handler = getattr(sounddevice, "_exit_handler", None)
    if handler is not None:
        atexit.unregister(handler)


class FilePlayback:
    """Plays decoded samples to an output device; the playback position is the show clock. What is heard is
    also what is analysed (the callback copies the played block into the ring)."""

    def __init__(self, samples: np.ndarray, sample_rate: int, block_size: int, device: str | int | None = None,
                 start: float = 0.0):
        self.samples = np.ascontiguousarray(samples[:, :2], dtype=np.float32)
        self.sample_rate, self.block_size = sample_rate, block_size
        self.device = device if device not in ("", None) else None
        self.position = int(start * sample_rate)  # next sample to play; only the callback advances it
        self.paused = False
        self.ring = RingBuffer(int(sample_rate * 2))
        self.underruns = 0
        self.stream = None
        self.finished = threading.Event()

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

        device = int(self.device) if isinstance(self.device, str) and self.device.isdigit() else self.device
        self.stream = sounddevice.OutputStream(device=device, samplerate=self.sample_rate, blocksize=self.block_size,
                                               channels=self.samples.shape[1], dtype="float32", callback=self._callback)
        self.stream.start()
        return self

    def stop(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
