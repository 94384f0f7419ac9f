"""The engine on a CUDA device: graphs captured and replayed, warm-up without a trace, precision, frame transfer,
no host sync in a frame, the order of fallbacks.

The tiny random StyleGAN3-T (not the reference fixtures: ../shared does not travel to a lent device)."""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest
import torch

from vj.config import OptimizerConfig
from vj.cues.prompts import WeightedPrompt
from vj.engine.optimizer import MAX_PROMPTS, LatentOptimizer
from vj.models.clip import load_clip
from vj.models.loading import resolve_precision, tiny_generator

CFG = OptimizerConfig(cutouts=4, lr=0.05, latent_reg=0.0, display_smoothing_s=0.0, compile="off")
DEVICE = torch.device("cuda")


@pytest.fixture(scope="module")
def networks():
    G = tiny_generator(seed=0).to(DEVICE).set_precision("fp32")
    ws = G.mapping(torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(0)).to(DEVICE), None)
    return G, load_clip("tiny", DEVICE, "fp32", seed=0), ws


def _optimizer(networks, **changes) -> LatentOptimizer:
    G, clip, _ = networks
    opt = LatentOptimizer(G, clip, dataclasses.replace(CFG, **changes), seed=3)
    opt.set_prompts([WeightedPrompt("a red sunset over the sea"), WeightedPrompt("text", -0.3)])
    return opt


def test_guided_steps_replay_graphs_and_match_eager(networks):
    _replays_and_matches_eager(networks, "off")


def _replays_and_matches_eager(networks, compile: str) -> None:
    captured = _optimizer(networks, cuda_graphs=True, compile=compile)
    eager = _optimizer(networks, cuda_graphs=False)
    start = captured.q.clone()
    captured.warm_up([4, 2])
    assert captured.graphs is not None and captured.graphs.captures == 3  # two cutout counts and the frame
    assert torch.equal(captured.q, start) and int(captured.steps_taken) == 0  # warm-up leaves no trace
    replays = captured.graphs.replays
    for _ in range(5):
        a, b = captured.step(0.05), eager.step(0.05)
        assert abs(float(a.loss) - float(b.loss)) < 1e-3
    assert captured.graphs.replays == replays + 5 and captured.graphs.captures == 3  # replayed, nothing new
    assert not captured.fallbacks and captured.compiled == (compile == "on")
    assert (captured.q - eager.q).abs().max() < 1e-3 and not torch.equal(captured.q, start)
    captured.set_cutouts(2)
    captured.step()
    assert captured.graphs.captures == 3  # a warmed-up count needs no capture in the show


def test_frame_pixels_come_back_as_uint8(networks):
    opt = _optimizer(networks, cuda_graphs=True)
    pixels = opt.frame_pixels(None)
    with torch.no_grad():
        image = opt.G.synthesis(opt.latent_w(opt.q), transform=opt.transform)[0].cpu()
    expected = ((image.permute(1, 2, 0) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    assert pixels.dtype.name == "uint8" and pixels.shape == expected.shape
    assert abs(pixels.astype(int) - expected.astype(int)).max() <= 1


@contextlib.contextmanager
def no_host_syncs():
    """Any synchronising CUDA call (a blocking copy, .item() of a device tensor) raises inside. An event's wait
    (the one a frame makes for its pixels) is not one of them."""
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_a_crossfading_frame_makes_no_host_sync_and_brings_its_loss_along(networks):
    """What the worker does each frame (prompt weights up, steps, pixels and loss down) after the warm-up, with
    the weights changing every frame as in a crossfade: no host sync, and the same losses as eager steps."""
    captured = _optimizer(networks, cuda_graphs=True)
    eager = _optimizer(networks, cuda_graphs=False)
    captured.warm_up([4])
    texts, transform = ("a red sunset over the sea", "text"), np.eye(3, dtype=np.float32)
    for fade in np.linspace(0.0, 1.0, 5):
        mix = (WeightedPrompt(texts[0], 1 - fade), WeightedPrompt(texts[1], fade))
        with no_host_syncs():
            pixels, result = captured.render_frame(mix, 2, 0.05, transform, 0.1)
            loss, per_prompt = float(result.loss), result.per_prompt.tolist()  # as the worker reads it
        _, expected = eager.render_frame(mix, 2, 0.05, transform, 0.1)
        assert result.loss.device.type == "cpu" and pixels.shape == (64, 64, 3)
        assert abs(loss - float(expected.loss)) < 1e-3
        assert np.allclose(per_prompt, expected.per_prompt.tolist(), atol=1e-3)
        ordered = sorted(mix, key=lambda p: -abs(p.weight))
        weights = [p.weight for p in ordered] + [0.0] * (MAX_PROMPTS - 2)
        assert np.allclose(captured.slot_weights.cpu().numpy(), weights)
    assert captured.graphs.replays >= 15 and captured.graphs.captures == 2 and not captured.fallbacks


@pytest.mark.parametrize("eager_captures", [True, False])
def test_a_step_failing_under_capture_drops_compiling_first_and_graphs_only_then(networks, eager_captures):
    """A compiled step that runs but fails under capture is dropped for eager code, and the graphs stay (captured
    from eager code and replayed); only if eager code cannot be captured either do the graphs go."""
    opt = _optimizer(networks, cuda_graphs=True)
    eager = _optimizer(networks, cuda_graphs=False)
    step = opt.guided_step

    def uncapturable(*args):
        if torch.cuda.is_current_stream_capturing():
            raise RuntimeError("cannot be captured")
        return step(*args)

    opt._step_fn, opt.compiled = uncapturable, True  # as compiled code that fails under capture
    if not eager_captures:
        opt.guided_step = uncapturable  # the eager step that falling back brings in fails the same way
    for _ in range(3):
        a, b = opt.step(0.05), eager.step(0.05)
        assert abs(float(a.loss) - float(b.loss)) < 1e-3
    failure = "RuntimeError: capturing ('step', 4) failed: RuntimeError: cannot be captured"
    assert not opt.compiled
    if eager_captures:
        assert opt.fallbacks == [f"compiled code: {failure}"]
        assert opt.graphs is not None and opt.graphs.captures == 1 and opt.graphs.replays == 3
    else:
        assert opt.fallbacks == [f"compiled code: {failure}", f"CUDA graphs: {failure}"] and opt.graphs is None
    assert (opt.q - eager.q).abs().max() < 1e-3


def test_auto_precision_is_bf16_where_the_gpu_has_it():
    expected = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    assert resolve_precision("auto", DEVICE) == expected


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_the_device(networks, precision):
    G, _, ws = networks
    with torch.no_grad():
        full = G.set_precision("fp32").synthesis(ws)
        half = G.set_precision(precision).synthesis(ws)
    assert float((half - full).norm() / full.norm()) < {"fp16": 0.01, "bf16": 0.08}[precision]
    clip = load_clip("tiny", DEVICE, precision, seed=0)
    opt = LatentOptimizer(G, clip, dataclasses.replace(CFG, cuda_graphs=True), seed=3)
    opt.set_prompts([WeightedPrompt("a red sunset over the sea", 1e-6)])  # small gradients: fp16 needs scaling
    before = _fixed_draw_loss(opt)  # the steps' own draws are random: the loss is compared on one fixed set
    for _ in range(20):
        opt.step()
    after = _fixed_draw_loss(opt)
    G.set_precision("fp32")
    assert after < before and int(opt.skipped) == 0 and not opt.fallbacks


def _fixed_draw_loss(opt: LatentOptimizer) -> float:
    uniforms = torch.rand(32, 4, generator=torch.Generator(DEVICE).manual_seed(123), device=DEVICE)
    with torch.no_grad():
        return float(opt.loss(opt.q, uniforms, None, opt.transform)[1][0])


# Last in the file: inductor compiles for a while, and the device check's time limit then costs only this test.
def test_compiled_step_captures_and_matches_eager(networks):
    _replays_and_matches_eager(networks, "on")
