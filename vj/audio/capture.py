"""Live audio input in a child process (`SupervisedStream`): the child's callback copies each block into a
shared-memory ring that the analysis reads; when the device is lost the ring gets real-time silence, so the
features decay and the show runs on, until a fresh child has the device again."""

from __future__ import annotations

from multiprocessing import shared_memory

import numpy as np

from vj.audio.stream import RingBuffer, device_arg
from vj.audio.supervised import SupervisedStream, serve_stream


def _capture(shm_name: str, capacity: int, device, sample_rate: int, block_size: int, channel: int, ready) -> None:
    """Child process: open the input and copy every block into the shared ring (once the parent says this child
    is the one writing); runs until killed."""
    import sounddevice

    shm = shared_memory.SharedMemory(name=shm_name)
    ring = RingBuffer(capacity, shm.buf)
    active = np.ndarray((1,), dtype=np.int64, buffer=shm.buf, offset=RingBuffer.nbytes(capacity))
    mix = np.zeros(block_size * 8, dtype=np.float32)

    def callback(indata, frames, time_info, status) -> None:
        if not active[0]:
            return
        if channel >= 0:
            ring.write(indata[:, channel])
        elif frames <= mix.shape[0]:
            ring.write(np.mean(indata, axis=1, out=mix[:frames]))
        else:
            ring.write(indata.mean(axis=1))

    streams = []  # kept referenced for the life of the process

    def open_stream() -> str:
        dev = device_arg(device)
        info = sounddevice.query_devices(dev, "input")
        channels = max(1, min(int(info["max_input_channels"]), 2 if channel < 0 else channel + 1))
        streams.append(sounddevice.InputStream(device=dev, samplerate=sample_rate, blocksize=block_size,
                                               channels=channels, dtype="float32", callback=callback))
        streams[-1].start()
        return f"{info['name']} ({channels} ch, {sample_rate} Hz)"

    serve_stream(open_stream, ready)


class LiveInput(SupervisedStream):
    """Live input through a child process; `ring` is read by the analysis like any other source's."""

    def __init__(self, device: str | int | None, sample_rate: int, block_size: int, channel: int = -1,
                 ring_seconds: float = 2.0):
        super().__init__(sample_rate, block_size)
        self.device, self.channel = device_arg(device), channel
        capacity = int(sample_rate * ring_seconds)
        self.shm = shared_memory.SharedMemory(create=True, size=RingBuffer.nbytes(capacity) + 8)
        self.ring = RingBuffer(capacity, self.shm.buf)
        self._active = np.ndarray((1,), dtype=np.int64, buffer=self.shm.buf, offset=RingBuffer.nbytes(capacity))
        self._active[0] = 0
        self._silence = np.zeros(block_size, dtype=np.float32)

    def _child_target(self):
        return _capture, (self.shm.name, self.ring.capacity, self.device, self.sample_rate, self.block_size,
                          self.channel)

    def _progress(self) -> int:
        return self.ring.written

    def _fill_in(self) -> None:
        self.ring.write(self._silence)  # one producer at a time: the child writes only while active

    def _on_lost(self) -> None:
        self._active[0] = 0

    def _on_back(self) -> None:
        self._active[0] = 1

    def _message(self, event: str, detail: str = "") -> str:
        return {"open": f"listening to {detail}", "back": f"audio input back: {detail}",
                "unavailable": f"no audio input ({detail}); running on silence",
                "lost": "audio input lost (device gone or audio server stopped): silence until it returns"}[event]

    def stop(self) -> None:
        super().stop()
        self._active = np.zeros(1, dtype=np.int64)
        self.ring.release()
        self.shm.close()
        self.shm.unlink()
