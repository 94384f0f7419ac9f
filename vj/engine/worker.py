"""The engine worker: a thread that owns the networks, runs guided steps, and publishes frames.

Before the show clock starts, the worker warms up: it compiles (and on CUDA captures) the guided step at every
cutout count the quality governor may choose, so that no compile lands in a timed frame and the governor never
mistakes one for a slow GPU. The show waits for `ready`, starts its clock, then calls `go`.

Each iteration reads the newest snapshots (show time, audio features, show state), asks the `Director` for the
frame's plan, runs as many of its guided steps as the quality governor allows within the frame budget, renders
the display latent and publishes it into a `LatestSlot`: the render loop takes the newest frame whenever it
draws, and nothing queues up if either side is slow. An exception in a step is
logged and counted, and the loop carries on with the last good image.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

import numpy as np
import torch

from vj.audio.features import AudioFeatures
from vj.config import GovernorConfig
from vj.control.state import PARAMS
from vj.cues.timeline import Timeline
from vj.engine.director import Director, FramePlan
from vj.engine.optimizer import LatentOptimizer
from vj.engine.quality import QualityGovernor

log = logging.getLogger(__name__)
T = TypeVar("T")
ENGINE_NICE = 10                        # how much lower the engine thread's CPU priority is than the display's


class LatestSlot(Generic[T]):
    """One value, newest wins. Publishing is a single assignment, so neither side ever waits."""

    def __init__(self) -> None:
        self._item: tuple[int, T | None] = (0, None)

    def publish(self, value: T) -> None:
        self._item = (self._item[0] + 1, value)

    def latest(self) -> tuple[int, T | None]:
        return self._item


@dataclass(frozen=True)
class PublishedFrame:
    image: np.ndarray                   # [H, W, 3] uint8
    show_time: float                    # show clock when its steps started
    cue: int                            # live cue index (-1 = none)
    prompt: str                         # the prompt mix, as text
    loss: float                         # guidance loss of the last step (nan if no step ran)
    steps_per_second: float             # guided steps per second, recent average
    published_at: float                 # time.perf_counter() at publish
    quality: str = ""                   # steps and cutouts used, as the HUD shows them
    graph_replays: int = -1             # CUDA graph launches so far (-1: no graphs: off, on the CPU, or dropped)
    fallbacks: tuple[str, ...] = ()     # what the engine gave up (warm-up, graphs, compiled code), in words


class EngineWorker:
    def __init__(self, optimizer: LatentOptimizer, director: Director, governor: GovernorConfig,
                 clock: Callable[[], float], features: Callable[[], AudioFeatures],
                 timeline: Callable[[], Timeline | None] = lambda: None, warm_up: bool = True,
                 snap: Callable[[FramePlan], None] = lambda plan: None):
        self.optimizer, self.director, self.snap = optimizer, director, snap
        self.clock, self.features, self.timeline = clock, features, timeline
        self.frames: LatestSlot[PublishedFrame] = LatestSlot()
        self.governor = QualityGovernor(governor.frame_budget_ms / 1000, optimizer.cutouts, governor.min_cutouts,
                                        int(PARAMS["steps_per_frame"].high))
        self.errors = 0
        self.warm_up = warm_up
        self.warm_up_progress = (0, 0)  # (done, total) shapes while warming up
        self.ready = threading.Event()  # warmed up: the show may start its clock
        self._go = threading.Event()    # the show's clock runs: start making frames
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vj-engine", daemon=True)

    def start(self) -> "EngineWorker":
        self._thread.start()
        return self

    def go(self) -> None:
        """The show's clock runs: start making frames (after the warm-up)."""
        self._go.set()

    def stop(self) -> None:
        self._stop.set()
        self._go.set()
        self._thread.join(timeout=10.0)

    @property
    def warming_up(self) -> str | None:
        """What the HUD says while warming up, None once ready."""
        if self.ready.is_set():
            return None
        done, total = self.warm_up_progress
        return f"warming up the engine: {done}/{total} shapes compiled" if total else "warming up the engine"

    def _run(self) -> None:
        threads = torch.get_num_threads()  # torch's thread count is process-wide: given back when the show ends
        _yield_to_the_display(self.optimizer.device)
        try:
            if self.warm_up:
                self._warm_up()
            self.ready.set()
            self._go.wait()
            self._loop()
        finally:
            self.ready.set()
            torch.set_num_threads(threads)

    def _warm_up(self) -> None:
        """Every shape the governor may choose, before the clock runs; none of its time reaches the governor."""
        counts = self.governor.cutout_counts()
        log.info("warming up the engine: %d cutout counts (%s) and the display frame",
                 len(counts), ", ".join(map(str, counts)))
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            self.warm_up_progress = (done, total)
            if self._stop.is_set():
                raise _Stopped
        try:
            while True:
                try:
                    self.optimizer.warm_up(counts, progress)
                    break
                except torch.OutOfMemoryError:
                    self._out_of_memory()
                    counts = self.governor.cutout_counts()
            log.info("engine warmed up in %.1f s", time.perf_counter() - started)
        except _Stopped:
            pass
        except Exception as e:  # noqa: BLE001  the show goes on: shapes not warmed up compile when first used
            self.errors += 1
            self.optimizer.fallbacks.append(f"warm-up: {type(e).__name__}: {e}")
            log.exception("engine warm-up failed; going on without it")

    def _out_of_memory(self) -> None:
        """Frees what the failed step held, then carries on with half the cutouts (at least one)."""
        self.errors += 1
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.optimizer.set_cutouts(self.governor.lower_cutouts().cutouts)
        log.warning("out of memory in a guided step: now %d cutouts per step", self.optimizer.cutouts)

    def _graph_replays(self) -> int:
        graphs = self.optimizer.graphs
        return graphs.replays if graphs is not None else -1

    def _loop(self) -> None:
        rate, last = 0.0, time.perf_counter()
        previous: float | None = None  # when the previous frame started: the display latent moves by real time
        while not self._stop.is_set():
            try:
                started = time.perf_counter()
                dt, previous = (None if previous is None else started - previous), started
                t, features = self.clock(), self.features()
                timeline = self.timeline()  # the newest good sheet (reloaded by the show loop on edits)
                plan = self.director.plan(t, features, timeline.at(t) if timeline else None)
                self.snap(plan)  # the latent bank's start and cue glides, before the steps
                quality = self.governor.quality
                if quality.cutouts != self.optimizer.cutouts:
                    self.optimizer.set_cutouts(quality.cutouts)
                steps = min(plan.steps, quality.step_cap)
                pixels, result = self.optimizer.render_frame(plan.prompts, steps, plan.lr, plan.transform, dt)
                loss = float("nan") if result is None else float(result.loss)  # on the host already: no sync
                now = time.perf_counter()
                self.governor.update(now - started, plan.steps)
                rate = 0.8 * rate + 0.2 * (steps / max(now - last, 1e-6))
                last = now
                self.frames.publish(PublishedFrame(pixels, t, plan.cue, " | ".join(p.text for p in plan.prompts),
                                                   loss, rate, now, quality.describe(plan.steps),
                                                   self._graph_replays(), tuple(self.optimizer.fallbacks)))
            except torch.OutOfMemoryError:
                self._out_of_memory()
            except Exception:  # noqa: BLE001  the show goes on: log, count, keep the last good frame
                self.errors += 1
                log.exception("engine step failed (%d so far); keeping the last frame", self.errors)
                time.sleep(0.1)


class _Stopped(Exception):
    """The show ended during the warm-up."""


def _yield_to_the_display(device: torch.device) -> None:
    """On Linux, lowers this thread's CPU priority (and that of the compute threads it starts): when the machine is
    short of cores, the render loop, the audio and the control threads come first and the picture keeps moving;
    the engine takes what is left. On a CPU-only machine it also leaves one core to the display."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + ENGINE_NICE)
    except (OSError, AttributeError):  # not Linux, or not allowed: the show runs as before
        pass
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
