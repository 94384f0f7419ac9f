"""Audio capture in a child process, so a vanished device or a dead audio server can be recovered from.

PortAudio cannot recover in the process that had the stream: closing a stream whose JACK server died blocks
forever, and re-initialising PortAudio aborts in its JACK host. So the input stream lives in a child process
that does nothing but copy each callback's block into a shared-memory ring. When blocks stop coming, the parent
kills the child (it may be stuck inside PortAudio), feeds silence, and starts a fresh child every `retry_s` until
one gets the device again.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
import time
from multiprocessing import shared_memory

import numpy as np

from vj.audio.stream import RingBuffer, device_arg

log = logging.getLogger(__name__)


def _capture(shm_name: str, capacity: int, device, sample_rate: int, block_size: int, channel: int, ready) -> None:
    """Child process: open the input and copy every block into the shared ring; runs until killed."""
    import sounddevice

    shm = shared_memory.SharedMemory(name=shm_name)
    ring = RingBuffer(capacity, shm.buf)
    mix = np.zeros(block_size * 8, dtype=np.float32)

    def callback(indata, frames, time_info, status) -> None:
        if channel >= 0:
            ring.write(indata[:, channel])
        elif frames <= mix.shape[0]:
            ring.write(np.mean(indata, axis=1, out=mix[:frames]))
        else:
            ring.write(indata.mean(axis=1))

    try:
        dev = device_arg(device)
        info = sounddevice.query_devices(dev, "input")
        channels = max(1, min(int(info["max_input_channels"]), 2 if channel < 0 else channel + 1))
        stream = sounddevice.InputStream(device=dev, samplerate=sample_rate, blocksize=block_size,
                                         channels=channels, dtype="float32", callback=callback)
        stream.start()
    except Exception as e:  # noqa: BLE001  reported to the parent, which decides what to do
        ready.send(f"error: {type(e).__name__}: {e}")
        return
    ready.send(f"ok: {info['name']} ({channels} ch)")
    while True:
        time.sleep(3600)


class LiveInput:
    """Live input through a child process; `ring` is read by the analysis like any other source's."""

    STALL_S = 0.5                       # no new samples for this long = the input is lost
    RETRY_S = 1.0                       # first retry delay while the input is lost; doubles up to MAX_RETRY_S
    MAX_RETRY_S = 5.0                   # (each retry starts a Python process: not free on a small machine)
    OPEN_TIMEOUT_S = 5.0                # a child that neither opens the device nor fails by then is killed

    def __init__(self, device: str | int | None, sample_rate: int, block_size: int, channel: int = -1,
                 ring_seconds: float = 2.0):
        self.device = device_arg(device)
        self.sample_rate, self.block_size, self.channel = sample_rate, block_size, channel
        capacity = int(sample_rate * ring_seconds)
        self.shm = shared_memory.SharedMemory(create=True, size=RingBuffer.nbytes(capacity))
        self.ring = RingBuffer(capacity, self.shm.buf)
        self.lost = False
        self.reopened = 0               # times the input came back after being lost
        self.status = "not started"
        self._ctx = mp.get_context("spawn")  # no fork: PortAudio's threads must not be copied
        self._child: mp.process.BaseProcess | None = None
        self._ready = None
        self._spawned_at = 0.0
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="vj-audio-watchdog", daemon=True)

    def _spawn(self) -> None:
        self._spawned_at = time.perf_counter()
        receive, send = self._ctx.Pipe(duplex=False)
        self._ready = receive
        self._child = self._ctx.Process(
            target=_capture, name="vj-audio-capture", daemon=True,
            args=(self.shm.name, self.ring.capacity, self.device, self.sample_rate, self.block_size, self.channel,
                  send))
        self._child.start()

    def _kill(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.join(timeout=2)
            self._child = None

    def start(self, timeout: float = 10.0) -> "LiveInput":
        self._spawn()
        if self._ready.poll(timeout):
            message = self._ready.recv()
            if message.startswith("error"):
                self._kill()
                self.lost, self.status = True, f"no audio input ({message[7:]}); running on silence"
                log.warning("%s", self.status)
            else:
                self.status = f"listening to {message[4:]}"
                log.info("%s, %d Hz, %d-sample blocks", self.status, self.sample_rate, self.block_size)
        self._watchdog.start()
        return self

    def _watch(self) -> None:
        silence = np.zeros(self.block_size, dtype=np.float32)
        block_s = self.block_size / self.sample_rate
        last_written, last_progress, next_retry = self.ring.written, time.perf_counter(), 0.0
        retry_s = self.RETRY_S
        next_silence = time.perf_counter()
        while not self._stop.is_set():
            now = time.perf_counter()
            written = self.ring.written
            if self.lost:
                if self._child is not None and self._ready.poll():
                    message = self._ready.recv()
                    if message.startswith("ok"):
                        self.lost, self.reopened = False, self.reopened + 1
                        self.status = f"audio input back: {message[4:]}"
                        log.warning("%s", self.status)
                        last_written, last_progress, retry_s = self.ring.written, now, self.RETRY_S
                        continue
                    self._kill()
                    next_silence = now
                elif self._child is not None and now - self._spawned_at > self.OPEN_TIMEOUT_S:
                    self._kill()  # stuck opening the device
                    next_silence = now
                if self._child is None:
                    # Only the parent writes while no child lives: real-time silence, so features decay.
                    self.ring.write(silence)
                    next_silence += block_s
                    if now >= next_retry:
                        next_retry = now + retry_s
                        retry_s = min(2 * retry_s, self.MAX_RETRY_S)
                        self._spawn()
                    time.sleep(max(0.0, next_silence - time.perf_counter()))
                else:
                    self._stop.wait(0.02)
                continue
            if written != last_written:
                last_written, last_progress = written, now
            elif now - last_progress > self.STALL_S:
                self._kill()
                self.lost = True
                self.status = "audio input lost (device gone or audio server stopped): silence until it returns"
                log.warning("%s", self.status)
                next_retry, next_silence = now + self.RETRY_S, now
                continue
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._watchdog.is_alive():
            self._watchdog.join(timeout=2)
        self._kill()
        self.ring.release()
        self.shm.close()
        self.shm.unlink()
