"""Rehearsal playback: a decoded track played to the output device from a child process (`SupervisedStream`);
the playback position is the show clock, and what is played is also what is analysed.

The track, the position and the transport requests live in shared memory. The child's callback plays from the
position, copies the played block into the analysis ring and advances the position. When the device is lost
(unplugged, audio server stopped) or there is none, this process advances the position in real time itself and
feeds the same ring, so the rehearsal follows the track silently, and hands the clock back to a fresh child
when the device returns: the show clock never stops or jumps.
"""

from __future__ import annotations

import logging
from multiprocessing import shared_memory

import numpy as np

from vj.audio.stream import RingBuffer, device_arg
from vj.audio.supervised import SupervisedStream, serve_stream

log = logging.getLogger(__name__)

# Transport words (int64) at the start of the shared block.
POSITION, SEEK_TARGET, SEEKS_ASKED, SEEKS_DONE, PAUSED, ACTIVE, FINISHED, WORDS = 0, 1, 2, 3, 4, 5, 6, 8
STAMP_OFFSET = WORDS * 8                # two float64: DAC time of the last played block, its position (seconds)
RING_OFFSET = STAMP_OFFSET + 16


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

    def play(self, out: np.ndarray, dac_time: float | None, sample_rate: int) -> None:
        """Fills `out` [frames, channels] from the position, feeds the analysis, advances the position."""
        asked = int(self.words[SEEKS_ASKED])
        if asked != self.words[SEEKS_DONE]:  # the count is written after the target
            self.words[POSITION] = self.words[SEEK_TARGET]
            self.words[SEEKS_DONE], self.words[FINISHED] = asked, 0
        if self.words[PAUSED]:
            out.fill(0)
            return
        pos = int(self.words[POSITION])
        if dac_time is not None:
            self.stamp[0], self.stamp[1] = dac_time, pos / sample_rate
        chunk = self.samples[pos:pos + out.shape[0]]
        n = chunk.shape[0]
        out[:n] = chunk if out.shape[1] == chunk.shape[1] else chunk.mean(axis=1, keepdims=True)
        out[n:] = 0
        self.ring.write(out[:, 0] if out.shape[1] == 1 else out.mean(axis=1))
        self.words[POSITION] = pos + n
        if n < out.shape[0]:
            self.words[FINISHED] = 1

    def release(self) -> None:
        self.words = np.zeros(WORDS, dtype=np.int64)
        self.stamp = np.zeros(2)
        self.samples = np.zeros((0, 2), dtype=np.float32)
        self.ring.release()


def _play(shm_name: str, n_samples: int, channels: int, ring_capacity: int, device, sample_rate: int,
          block_size: int, ready) -> None:
    """Child process: open the output and play the shared track while the parent lets it; runs until killed."""
    import sounddevice

    shm = shared_memory.SharedMemory(name=shm_name)
    transport = _Transport(shm.buf, n_samples, channels, ring_capacity)

    def callback(outdata, frames, time_info, status) -> None:
        if not transport.words[ACTIVE]:  # not this child's turn yet: the parent still keeps the clock
            outdata.fill(0)
            return
        transport.play(outdata, time_info.outputBufferDacTime if time_info is not None else None, sample_rate)

    streams = []  # kept referenced for the life of the process

    def open_stream() -> str:
        dev = device_arg(device)
        info = sounddevice.query_devices(dev, "output")
        streams.append(sounddevice.OutputStream(device=dev, samplerate=sample_rate, blocksize=block_size,
                                                channels=channels, dtype="float32", callback=callback))
        streams[-1].start()
        return info["name"]

    serve_stream(open_stream, ready)


class Playback(SupervisedStream):
    """Plays `samples` [n, channels] float32 from `start` seconds; `clock` is the show clock, `ring` the analysis
    input."""

    def __init__(self, samples: np.ndarray, sample_rate: int, block_size: int, device: str | int | None = None,
                 start: float = 0.0, ring_seconds: float = 2.0):
        super().__init__(sample_rate, block_size)
        samples = np.ascontiguousarray(samples[:, :2], dtype=np.float32)
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
