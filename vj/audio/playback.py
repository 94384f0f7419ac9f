"""Rehearsal playback: a decoded track played to the output device from a child process (`SupervisedStream`);
the playback position is the show clock, and what is played is also what is analysed.

The track, the position and the transport requests live in shared memory. The child's callback plays from the
position, copies the played block into the analysis ring and advances the position. When the device is lost
(unplugged, audio server stopped) or there is none, this process advances the position in real time itself and
feeds the same ring, so the rehearsal follows the track silently, and hands the clock back to a fresh child
when the device returns: the show clock never stops or jumps.

A device that will not take the track's sample rate (a 48 kHz JACK server, a 44.1 kHz track) gets the track
resampled in the child (soxr, streaming); the position stays in the track's samples, moved to what the device has
played, and the analysis is fed the track's own samples, at its own rate. More than two channels are mixed down to
stereo here; a mono track is played on both sides of a stereo device.
"""

from __future__ import annotations

import logging
import math
from multiprocessing import shared_memory

import numpy as np

from vj.audio.stream import RingBuffer, device_arg
from vj.audio.supervised import SupervisedStream, serve_stream

log = logging.getLogger(__name__)

# Transport words (int64) at the start of the shared block.
POSITION, SEEK_TARGET, SEEKS_ASKED, SEEKS_DONE, PAUSED, ACTIVE, FINISHED, WORDS = 0, 1, 2, 3, 4, 5, 6, 8
STAMP_OFFSET = WORDS * 8                # two float64: DAC time of the last played block, its position (seconds)
RING_OFFSET = STAMP_OFFSET + 16


def to_stereo(samples: np.ndarray) -> np.ndarray:
    """[n, channels] -> [n, 1 or 2] float32. Mono and stereo stay as they are; more channels are mixed down as
    FFmpeg does by default (centre and surrounds at -3 dB into their sides, LFE left out, scaled so that no side can
    clip), taken in the WAV and FLAC order (FL FR FC LFE BL BR SL SR); past eight, an even mix into both sides."""
    channels = samples.shape[1]
    if channels <= 2:
        return np.ascontiguousarray(samples, dtype=np.float32)
    g = math.sqrt(0.5)
    left, right = np.ones(channels), np.ones(channels)
    if channels <= 8:
        left, right = np.array([1, 0, g, 0, g, 0, g, 0][:channels]), np.array([0, 1, g, 0, 0, g, 0, g][:channels])
    matrix = np.stack([left, right], axis=1) / max(left.sum(), right.sum())  # [channels, 2]
    return np.ascontiguousarray(samples @ matrix.astype(np.float32), dtype=np.float32)


def _fit(out: np.ndarray, chunk: np.ndarray) -> None:
    """Copies `chunk` [n, 1 or 2] into `out` [n, device channels]: as it is, mixed to mono, or mono on both sides."""
    out[:] = chunk if out.shape[1] == chunk.shape[1] else chunk.mean(axis=1, keepdims=True)


class _Transport:
    """Views of the shared block, and the one routine that plays a block (run by whoever has the clock)."""

    def __init__(self, buffer, n_samples: int, channels: int, ring_capacity: int):
        self.words = np.ndarray((WORDS,), dtype=np.int64, buffer=buffer, offset=0)
        self.stamp = np.ndarray((2,), dtype=np.float64, buffer=buffer, offset=STAMP_OFFSET)
        self.ring = RingBuffer(ring_capacity, buffer[RING_OFFSET:RING_OFFSET + RingBuffer.nbytes(ring_capacity)])
        samples_at = RING_OFFSET + RingBuffer.nbytes(ring_capacity)
        self.samples = np.ndarray((n_samples, channels), dtype=np.float32, buffer=buffer, offset=samples_at)

    @staticmethod
    def nbytes(n_samples: int, channels: int, ring_capacity: int) -> int:
        return RING_OFFSET + RingBuffer.nbytes(ring_capacity) + n_samples * channels * 4

    def take_seek(self) -> bool:
        """Moves the position to a seek asked and not yet taken; whether there was one."""
        asked = int(self.words[SEEKS_ASKED])
        if asked == self.words[SEEKS_DONE]:  # the count is written after the target
            return False
        self.words[POSITION] = self.words[SEEK_TARGET]
        self.words[SEEKS_DONE], self.words[FINISHED] = asked, 0
        return True

    def play(self, out: np.ndarray, dac_time: float | None, sample_rate: int) -> None:
        """Fills `out` [frames, channels] from the position, feeds the analysis, advances the position."""
        self.take_seek()
        if self.words[PAUSED]:
            out.fill(0)
            return
        pos = int(self.words[POSITION])
        if dac_time is not None:
            self.stamp[0], self.stamp[1] = dac_time, pos / sample_rate
        chunk = self.samples[pos:pos + out.shape[0]]
        n = chunk.shape[0]
        _fit(out[:n], chunk)
        out[n:] = 0
        self.ring.write(out[:, 0] if out.shape[1] == 1 else out.mean(axis=1))
        self.words[POSITION] = pos + n
        if n < out.shape[0]:
            self.words[FINISHED] = 1

    def analyse(self, start: int, count: int) -> None:
        """Feeds the analysis `count` samples of the track from `start`, in mono (silence past its end)."""
        chunk = self.samples[start:start + count]
        self.ring.write(chunk[:, 0] if chunk.shape[1] == 1 else chunk.mean(axis=1))
        if chunk.shape[0] < count:
            self.ring.write(np.zeros(count - chunk.shape[0], dtype=np.float32))

    def release(self) -> None:
        self.words = np.zeros(WORDS, dtype=np.int64)
        self.stamp = np.zeros(2)
        self.samples = np.zeros((0, 2), dtype=np.float32)
        self.ring.release()


class _Resampler:
    """The child's player for a device at another rate than the track's. soxr's stream resamples the track from
    `fed` a hop at a time into a queue the callback plays from. The position is moved to the track sample the
    device has just been given (what was fed, less what waits in the queue and inside the filter), and the analysis
    is fed the track's own samples up to there: the clock and the analysis follow what is heard, as they do when
    no resampling is needed. (soxr allocates its output: a few small arrays per block, which the callback's
    deadline, milliseconds, absorbs.)"""

    def __init__(self, transport: _Transport, track_rate: int, device_rate: int, frames: int):
        import soxr

        channels = transport.samples.shape[1]
        self.transport, self.track_rate = transport, track_rate
        self.ratio = device_rate / track_rate                  # device samples per track sample
        self.stream = soxr.ResampleStream(track_rate, device_rate, channels, dtype="float32", quality="HQ")
        self.hop = max(32, math.ceil(frames / self.ratio))      # track samples fed at a time: about one block
        # soxr answers in bursts (at HQ, some 900 samples every few hops): room for a few blocks and a burst.
        self.queue = np.zeros((4 * (frames + math.ceil(self.hop * self.ratio)) + 4096, channels), np.float32)
        self.silence = np.zeros((self.hop, channels), dtype=np.float32)
        self.queued = 0                                         # device samples waiting in the queue
        self.fed = -1                                           # next track sample to feed; -1: from the position
        self.heard = 0                                          # track samples given to the device (the position)

    def restart(self) -> None:
        """From the position on, with nothing of before queued (a seek, a hand-over from the parent)."""
        self.fed = -1

    def __call__(self, out: np.ndarray, dac_time: float | None) -> None:
        transport, words = self.transport, self.transport.words
        if transport.take_seek():
            self.restart()
        if words[PAUSED]:
            out.fill(0)
            return
        if self.fed < 0:
            self.stream.clear()
            self.queued, self.fed = 0, int(words[POSITION])
            self.heard = self.fed
        frames = out.shape[0]
        while self.queued < frames:
            block = transport.samples[self.fed:self.fed + self.hop]
            if block.shape[0] < self.hop:  # the end: silence after it, so that the filter plays the track out
                block = np.concatenate([block, self.silence[block.shape[0]:]])
            resampled = self.stream.resample_chunk(block)
            n = resampled.shape[0]
            if self.queued + n > self.queue.shape[0]:
                self.queue = np.concatenate([self.queue, np.zeros_like(self.queue)])
            self.queue[self.queued:self.queued + n] = resampled
            self.queued += n
            self.fed += self.hop
        _fit(out, self.queue[:frames])
        self.queue[:self.queued - frames] = self.queue[frames:self.queued]
        self.queued -= frames
        start = self.heard
        self.heard = max(start, round(self.fed - (self.queued + self.stream.delay()) / self.ratio))
        if dac_time is not None:
            transport.stamp[0], transport.stamp[1] = dac_time, start / self.track_rate
        transport.analyse(start, self.heard - start)
        n_samples = transport.samples.shape[0]
        words[POSITION] = min(self.heard, n_samples)
        if self.heard >= n_samples:
            words[FINISHED] = 1


def _play(shm_name: str, n_samples: int, channels: int, ring_capacity: int, device, sample_rate: int,
          block_size: int, ready) -> None:
    """Child process: open the output and play the shared track while the parent lets it; runs until killed.
    The device is opened at the track's rate when it takes it, else at its own, the track resampled to it."""
    import sounddevice

    shm = shared_memory.SharedMemory(name=shm_name)
    transport = _Transport(shm.buf, n_samples, channels, ring_capacity)
    resampler: list[_Resampler] = []  # one, when the device needs another rate

    def callback(outdata, frames, time_info, status) -> None:
        if not transport.words[ACTIVE]:  # not this child's turn yet: the parent still keeps the clock
            outdata.fill(0)
            for r in resampler:
                r.restart()
            return
        dac_time = time_info.outputBufferDacTime if time_info is not None else None
        if resampler:
            resampler[0](outdata, dac_time)
        else:
            transport.play(outdata, dac_time, sample_rate)

    streams = []  # kept referenced for the life of the process

    def open_stream() -> str:
        dev = device_arg(device)
        info = sounddevice.query_devices(dev, "output")
        out_channels = max(1, min(2, int(info["max_output_channels"])))  # a mono track on both sides
        rate = sample_rate
        try:
            sounddevice.check_output_settings(dev, channels=out_channels, dtype="float32", samplerate=sample_rate)
        except sounddevice.PortAudioError:  # "Invalid sample rate": a JACK server runs at one rate only
            rate = int(info["default_samplerate"])
            resampler.append(_Resampler(transport, sample_rate, rate, block_size))
        streams.append(sounddevice.OutputStream(device=dev, samplerate=rate, blocksize=block_size,
                                                channels=out_channels, dtype="float32", callback=callback))
        streams[-1].start()
        resampled = f": the track's {sample_rate} Hz resampled" if rate != sample_rate else ""
        return f"{info['name']} ({out_channels} ch, {rate} Hz{resampled})"

    serve_stream(open_stream, ready)


class Playback(SupervisedStream):
    """Plays `samples` [n, channels] float32 from `start` seconds (more than two channels mixed down to stereo);
    `clock` is the show clock, `ring` the analysis input, both at `sample_rate`, the track's."""

    def __init__(self, samples: np.ndarray, sample_rate: int, block_size: int, device: str | int | None = None,
                 start: float = 0.0, ring_seconds: float = 2.0):
        super().__init__(sample_rate, block_size)
        samples = to_stereo(samples)
        self.device, self.channels, self.n_samples = device_arg(device), samples.shape[1], samples.shape[0]
        self.ring_capacity = int(sample_rate * ring_seconds)
        self.shm = shared_memory.SharedMemory(create=True, size=_Transport.nbytes(self.n_samples, self.channels,
                                                                                  self.ring_capacity))
        self.transport = _Transport(self.shm.buf, self.n_samples, self.channels, self.ring_capacity)
        self.transport.samples[:] = samples
        self.transport.words[:] = 0
        self.transport.words[POSITION] = int(start * sample_rate)
        self.ring = self.transport.ring
        self._block = np.zeros((block_size, self.channels), dtype=np.float32)
        self._looping = False

    @property
    def clock(self) -> float:
        return int(self.transport.words[POSITION]) / self.sample_rate

    @property
    def finished(self) -> bool:
        return bool(self.transport.words[FINISHED])

    @property
    def device_stamp(self) -> tuple[float, float]:
        """(DAC time of the last played block's first sample, its position in seconds), for the sync benchmark."""
        return float(self.transport.stamp[0]), float(self.transport.stamp[1])

    def seek(self, seconds: float) -> None:
        target = int(min(max(seconds, 0.0), self.n_samples / self.sample_rate) * self.sample_rate)
        self.transport.words[SEEK_TARGET] = target
        self.transport.words[SEEKS_ASKED] += 1  # after the target: whoever plays next takes both

    def pause(self, paused: bool) -> None:
        self.transport.words[PAUSED] = int(paused)

    def ended(self, end: float, loop_from: float | None = None) -> bool:
        """Whether the track has played to `end` seconds, on its own clock (not the wall's: seeks and a slow device
        move it). With `loop_from`, it never ends: it is played again from there (one seek per pass)."""
        if not (self.finished or self.clock >= end):
            self._looping = False
            return False
        if loop_from is None:
            log.info("the track ended at %.1f s: the rehearsal is over", end)
            return True
        if not self._looping:  # a seek asked and not yet played is not asked again
            self._looping = True
            self.seek(loop_from)
            log.info("the track ended at %.1f s: playing it again from %.1f s", end, loop_from)
        return False

    def _child_target(self):
        return _play, (self.shm.name, self.n_samples, self.channels, self.ring_capacity, self.device,
                       self.sample_rate, self.block_size)

    def _progress(self) -> int:
        return self.ring.written

    def _expects_progress(self) -> bool:
        return not (self.transport.words[PAUSED] or self.transport.words[FINISHED])

    def _fill_in(self) -> None:
        self.transport.play(self._block, None, self.sample_rate)

    def _on_lost(self) -> None:
        self.transport.words[ACTIVE] = 0

    def _on_back(self) -> None:
        self.transport.words[ACTIVE] = 1

    def _message(self, event: str, detail: str = "") -> str:
        return {"open": f"playing to {detail}", "back": f"audio output back: {detail}",
                "unavailable": f"no audio output ({detail}); following the track silently",
                "lost": "audio output lost (device gone or audio server stopped): following the track silently "
                        "until it returns"}[event]

    def stop(self) -> None:
        super().stop()
        self.transport.release()
        self.shm.close()
        self.shm.unlink()
