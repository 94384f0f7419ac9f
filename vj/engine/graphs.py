"""CUDA graphs for the engine's hot calls: each captured once over static tensors, then replayed.

A guided step is hundreds of small kernels; launched one by one from Python they cost more than they compute at
batch 1. Captured as a CUDA graph they replay with one launch. A graph reads and writes fixed addresses, so
everything a captured call touches (latent, optimiser state, prompt slots, random draws, input transform) is a
tensor that the engine allocates once and then only changes in place; each shape (the guided step at each cutout
count the quality governor can choose) has its own graph.

`torch.compile(mode="reduce-overhead")` would capture graphs too, but it skips capture for a function that mutates
its plain-tensor arguments, as the step does; capturing here makes replay certain and countable (`replays`).
"""

from __future__ import annotations

import gc
import logging
from typing import Callable, Hashable, Sequence

import torch

log = logging.getLogger(__name__)

WARMUP_CALLS = 3                        # eager calls on a side stream before capture (cuDNN/cuBLAS choose kernels)


class CapturedCalls:
    """Zero-argument callables captured as CUDA graphs, one per key, replayed by `run(key)`.

    `run` captures a key on its first use; `capture` does it ahead (the show's warm-up). The callable's own state
    changes during the warm-up calls that capture needs: `snapshot()` returns a function that puts that state back,
    so a capture leaves no trace in what the engine computes.
    """

    def __init__(self, device: torch.device, snapshot: Callable[[], Callable[[], None]]):
        self.device = device
        self.snapshot = snapshot
        self._graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, Sequence[torch.Tensor]]] = {}
        self.replays = 0                # graph launches so far (the device check reads it as proof of replay)
        self.captures = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._graphs

    def capture(self, key: Hashable, fn: Callable[[], Sequence[torch.Tensor]]) -> None:
        """Warms fn up on a side stream, then captures it. A failed capture raises with its real cause (torch
        reports the capture's end failing instead) and leaves the stream and the state as they were."""
        restore = self.snapshot()
        stream = torch.cuda.current_stream(self.device)
        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(stream)
            with torch.cuda.stream(side):
                for _ in range(WARMUP_CALLS):
                    fn()
            stream.wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # Garbage collected in this thread during the capture would break it: an unreachable object holding a
            # CUDA graph (an optimizer dropped earlier) destroys that graph, a call not permitted while capturing.
            # It is collected now, and nothing is collected until the capture ends.
            collecting = gc.isenabled()
            gc.collect()
            gc.disable()
            try:
                # thread_local: CUDA calls of other threads (the render loop freeing a pinned frame) are not
                # mistaken for part of this capture
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    outputs = fn()
            except Exception as e:
                torch.cuda.set_stream(stream)  # the graph's __exit__ did not get to it
                cause = e.__context__ or e
                raise RuntimeError(f"capturing {key!r} failed: {type(cause).__name__}: {cause}") from cause
            finally:
                if collecting:
                    gc.enable()
        finally:
            restore()
        self._graphs[key] = (graph, outputs)
        self.captures += 1
        log.debug("captured a CUDA graph for %r", key)

    def run(self, key: Hashable, fn: Callable[[], Sequence[torch.Tensor]]) -> Sequence[torch.Tensor]:
        """The outputs of fn, by replaying its graph (captured now if new). The outputs are the graph's own tensors,
        overwritten by the next replay: copy what must outlive it."""
        if key not in self._graphs:
            self.capture(key, fn)
        graph, outputs = self._graphs[key]
        graph.replay()
        self.replays += 1
        return outputs
