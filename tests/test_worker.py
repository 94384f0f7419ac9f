"""The engine worker keeps the picture coming through failures of a guided step, each frame with its loss."""

from __future__ import annotations

import time

import pytest
import torch

from conftest import wait_for
from vj.audio.features import SILENCE
from vj.config import DirectorConfig, GovernorConfig, OptimizerConfig
from vj.control.state import ShowState
from vj.cues.prompts import WeightedPrompt
from vj.engine.director import Director
from vj.engine.optimizer import LatentOptimizer
from vj.engine.worker import EngineWorker


ONE_STEP = DirectorConfig(steps_per_frame=1)


def one_step(state: ShowState | None = None) -> Director:
    """A director that asks for one guided step per frame."""
    return Director(ONE_STEP, 0.03, state or ShowState.from_config(ONE_STEP))


def test_out_of_memory_halves_cutouts_and_the_show_goes_on(fixture_t, tiny_clip):
    G, _ = fixture_t
    optimizer = LatentOptimizer(G, tiny_clip, OptimizerConfig(cutouts=8), seed=0)
    real_step, failures = optimizer.step, [2]  # the next two steps run out of memory, then it recovers

    def step(*args, **kwargs):
        if failures[0]:
            failures[0] -= 1
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_step(*args, **kwargs)

    optimizer.step = step
    state = ShowState.from_config(ONE_STEP)
    state.set_prompt("a cat", "test")
    worker = EngineWorker(optimizer, one_step(state), GovernorConfig(), clock=time.perf_counter,
                          features=lambda: SILENCE)
    worker.start().go()
    try:
        assert wait_for(lambda: worker.frames.latest()[0] >= 3, timeout=60)
    finally:
        worker.stop()
    assert worker.errors == 2 and optimizer.cutouts == 2
    seq, frame = worker.frames.latest()
    assert frame.image.shape == (64, 64, 3) and frame.prompt == "a cat"


def test_any_step_error_is_counted_and_frames_keep_coming(fixture_t, tiny_clip):
    G, _ = fixture_t
    optimizer = LatentOptimizer(G, tiny_clip, OptimizerConfig(cutouts=2), seed=0)
    optimizer.set_prompts([WeightedPrompt("x")])
    calls = [0]
    real_step = optimizer.step

    def flaky(*args, **kwargs):
        calls[0] += 1
        if calls[0] % 2:
            raise RuntimeError("injected failure")
        return real_step(*args, **kwargs)

    optimizer.step = flaky
    worker = EngineWorker(optimizer, one_step(), GovernorConfig(), clock=time.perf_counter,
                          features=lambda: SILENCE).start()
    worker.go()
    try:
        assert wait_for(lambda: worker.frames.latest()[0] >= 2 and worker.errors >= 2, timeout=60)
    finally:
        worker.stop()


def test_warm_up_comes_before_the_clock_and_the_governor_never_sees_it(fixture_t, tiny_clip):
    G, _ = fixture_t
    optimizer = LatentOptimizer(G, tiny_clip, OptimizerConfig(cutouts=8), seed=0)
    warmed, real_warm_up = [], optimizer.warm_up

    def slow_warm_up(counts, progress=None):  # a compile that takes a while, as on a GPU
        warmed.append(list(counts))
        time.sleep(0.5)
        real_warm_up(counts, progress)

    optimizer.warm_up = slow_warm_up
    clock_reads = []
    governor = GovernorConfig(min_cutouts=2, frame_budget_ms=20.0)  # 0.5 s would be 25 budgets over
    worker = EngineWorker(optimizer, one_step(), governor,
                          clock=lambda: clock_reads.append(1) or 0.0, features=lambda: SILENCE).start()
    try:
        assert worker.warming_up is not None
        assert worker.ready.wait(30)
        assert warmed == [[8, 4, 2]] and worker.warming_up is None
        time.sleep(0.2)
        assert not clock_reads and worker.frames.latest()[0] == 0  # nothing runs before the show's go
        assert worker.governor.frame_s is None and worker.governor.quality.cutouts == 8
        worker.go()
        assert wait_for(lambda: worker.frames.latest()[0] >= 1, timeout=30)
    finally:
        worker.stop()


def test_the_published_loss_is_the_last_step_of_its_frame(fixture_t, tiny_clip):
    """Two steps a frame: each frame's loss is its second step's, as a twin optimiser taking the same steps finds."""
    G, _ = fixture_t
    two_steps = DirectorConfig(steps_per_frame=2)

    def engine() -> tuple[LatentOptimizer, Director]:
        state = ShowState.from_config(two_steps)
        state.set_prompt("a cat", "test")
        return LatentOptimizer(G, tiny_clip, OptimizerConfig(cutouts=2), seed=0), Director(two_steps, 0.03, state)

    optimizer, director = engine()
    worker = EngineWorker(optimizer, director, GovernorConfig(frame_budget_ms=0.0), clock=lambda: 0.0,
                          features=lambda: SILENCE, warm_up=False)  # no budget: two steps every frame
    worker.start().go()
    try:
        assert wait_for(lambda: worker.frames.latest()[0] >= 3, timeout=60)
    finally:
        worker.stop()
    frames, published = worker.frames.latest()
    assert worker.errors == 0
    twin, twin_director = engine()
    for _ in range(frames):
        plan = twin_director.plan(0.0, SILENCE, None)
        twin.set_prompts(plan.prompts)
        twin.set_transform(plan.transform)
        losses = [float(twin.step(plan.lr).loss) for _ in range(plan.steps)]
    # The worker runs torch on fewer threads (it leaves a core to the display): sums add up in another order, and
    # the latents part by about 1e-5 over a few frames; a frame's two steps differ by far more.
    assert len(losses) == 2 and published.loss == pytest.approx(losses[1], rel=1e-4)
    assert losses[0] != pytest.approx(losses[1], rel=1e-4)
