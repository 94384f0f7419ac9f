"""A PortAudio stream in a child process, watched from this one, so a vanished device or a dead audio server can
be recovered from.

PortAudio cannot recover in the process that had the stream: closing a stream whose JACK server died blocks
forever, and re-initialising PortAudio aborts in its JACK host. So each stream (the live input, the rehearsal
playback) lives in a child process that does nothing but move samples between its callback and shared memory.
A watchdog thread here sees the stream's progress counter stop, kills the child (it may be stuck inside
PortAudio), keeps the show going without the device (`_fill_in`: silence for the input, the track followed by the
clock for the playback), and starts a fresh child every `RETRY_S` (doubling to `MAX_RETRY_S`) until one gets the
device again.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
import time
from typing import Callable

from vj.native_noise import quiet_native_libraries

log = logging.getLogger(__name__)


def serve_stream(open_stream: Callable[[], str], ready) -> None:
    """A child's life: open and start its stream (`open_stream` returns the device's name for the log), tell the
    parent "ok: <name, rate>" or "error: <why>", then keep the stream alive until the parent kills the process, or
    ends without doing so (a crash): then the child ends too, rather than hold the device for nobody. Either way
    it ends at once (os._exit): an ordinary exit would close its views of the shared memory while arrays still
    point into it, and print a BufferError from SharedMemory.__del__ for every failed attempt."""
    parent = os.getppid()
    quiet_native_libraries()  # a fresh process: PortAudio's JACK and ALSA would print on each attempt
    try:
        name = open_stream()
    except Exception as e:  # noqa: BLE001  reported to the parent, which decides what to do
        ready.send(f"error: {type(e).__name__}: {e}")  # written to the pipe before send returns
        os._exit(0)
    ready.send(f"ok: {name}")
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


class SupervisedStream:
    STALL_S = 0.5                       # no progress for this long = the device is lost
    RETRY_S = 1.0                       # first retry delay while lost; doubles up to MAX_RETRY_S
    MAX_RETRY_S = 5.0                   # (each retry starts a Python process: not free on a small machine)
    OPEN_TIMEOUT_S = 5.0                # a child that neither opens the device nor fails by then is killed

    def __init__(self, sample_rate: int, block_size: int):
        self.sample_rate, self.block_size = sample_rate, block_size
        self.lost = False
        self.reopened = 0               # times the device came back after being lost
        self.status = "not started"
        self._ctx = mp.get_context("spawn")  # no fork: PortAudio's threads must not be copied
        self._child: mp.process.BaseProcess | None = None
        self._ready = None
        self._spawned_at = 0.0
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="vj-audio-watchdog", daemon=True)

    # -- what a stream kind provides ---------------------------------------------------------------------------
    def _child_target(self) -> tuple[Callable, tuple]:
        """The child's function and arguments; it sends "ok: <device>" or "error: <why>" through its last
        argument (a pipe end) and then runs until killed."""
        raise NotImplementedError

    def _progress(self) -> int:
        """A counter the child's callback advances while the stream runs."""
        raise NotImplementedError

    def _expects_progress(self) -> bool:
        return True

    def _fill_in(self) -> None:
        """Called every block while the device is lost: keep the show going without it."""

    def _on_lost(self) -> None:
        """The child is gone (killed or never opened): this process takes over until one is back."""

    def _on_back(self) -> None:
        """A child has the device again: hand back to it."""

    def _message(self, event: str, detail: str = "") -> str:
        return f"{event} {detail}".strip()

    # -- the child ----------------------------------------------------------------------------------------------
    def _spawn(self) -> None:
        self._spawned_at = time.perf_counter()
        receive, send = self._ctx.Pipe(duplex=False)
        self._ready = receive
        target, args = self._child_target()
        self._child = self._ctx.Process(target=target, name="vj-audio-device", daemon=True, args=(*args, send))
        self._child.start()

    def _kill(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.join(timeout=2)
            self._child = None

    def _lose(self, status: str) -> None:
        self._kill()
        self.lost, self.status = True, status
        self._on_lost()
        log.warning("%s", status)

    def start(self, timeout: float = 10.0) -> "SupervisedStream":
        self._spawn()
        if self._ready.poll(timeout):
            message = self._ready.recv()
            if message.startswith("error"):
                self._lose(self._message("unavailable", message[7:]))
            else:
                self.status = self._message("open", message[4:])
                self._on_back()
                log.info("%s, %d-sample blocks", self.status, self.block_size)
        else:
            self._lose(self._message("unavailable", "the device did not open in time"))
        self._watchdog.start()
        return self

    def _watch(self) -> None:
        block_s = self.block_size / self.sample_rate
        last_progress, last_moved, next_retry = self._progress(), time.perf_counter(), 0.0
        retry_s = self.RETRY_S
        next_block = time.perf_counter()
        while not self._stop.is_set():
            now = time.perf_counter()
            if self.lost:
                if self._child is not None and self._ready.poll():
                    message = self._ready.recv()
                    if message.startswith("ok"):
                        self.lost, self.reopened = False, self.reopened + 1
                        self.status = self._message("back", message[4:])
                        self._on_back()
                        log.warning("%s", self.status)
                        last_progress, last_moved, retry_s = self._progress(), now, self.RETRY_S
                        continue
                    self._kill()
                elif self._child is not None and now - self._spawned_at > self.OPEN_TIMEOUT_S:
                    self._kill()  # stuck opening the device
                if self._child is None and now >= next_retry:
                    next_retry = now + retry_s
                    retry_s = min(2 * retry_s, self.MAX_RETRY_S)
                    self._spawn()
                # Until a child has the device, this thread keeps time: one block's worth per block.
                self._fill_in()
                next_block += block_s
                if next_block < now - 0.1:  # fell far behind (a suspended machine): do not race to catch up
                    next_block = now
                time.sleep(max(0.0, next_block - time.perf_counter()))
                continue
            progress = self._progress()
            if progress != last_progress or not self._expects_progress():
                last_progress, last_moved = progress, now
            elif now - last_moved > self.STALL_S:
                self._lose(self._message("lost"))
                next_retry, next_block = now + self.RETRY_S, now
                continue
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._watchdog.is_alive():
            self._watchdog.join(timeout=2)
        self._kill()
