"""CLIP guidance and the latent optimiser, on the reference fixture generator and a tiny random CLIP."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from vj.config import OptimizerConfig
from vj.cues.prompts import WeightedPrompt
from vj.engine.guidance import make_cutouts, spherical_distance
from vj.engine.director import learning_rate
from vj.engine.optimizer import MAX_PROMPTS, LatentOptimizer

CFG = OptimizerConfig(cutouts=4, lr=0.05, latent_reg=0.0, display_smoothing_s=0.0)


def rate(since_cue_change: float, envelope: float, cue_boost: float = 3.0) -> float:
    return learning_rate(CFG.lr, cue_boost, 2.0, 1.0, since_cue_change, envelope)


@pytest.fixture()
def optimizer(fixture_t, tiny_clip):
    G, _ = fixture_t
    return LatentOptimizer(G, tiny_clip, CFG, seed=3)


def test_steps_lower_the_loss_for_a_prompt(optimizer):
    optimizer.set_prompts([WeightedPrompt("a red sunset over the sea")])
    losses = [float(optimizer.step().loss) for _ in range(8)]
    assert losses[-1] < losses[0]


def test_switching_prompt_then_steps_lower_the_new_loss(optimizer):
    optimizer.set_prompts([WeightedPrompt("a red sunset")])
    for _ in range(6):
        optimizer.step()
    optimizer.set_prompts([WeightedPrompt("green forest moss")])
    after_switch = [float(optimizer.step().loss) for _ in range(8)]
    assert after_switch[-1] < after_switch[0]


def test_same_seed_same_latents(fixture_t, tiny_clip):
    G, _ = fixture_t
    runs = []
    for _ in range(2):
        opt = LatentOptimizer(G, tiny_clip, CFG, seed=11)
        opt.set_prompts([WeightedPrompt("a cat")])
        for _ in range(3):
            opt.step()
        runs.append(opt.q.clone())
    assert torch.equal(runs[0], runs[1])


def test_negative_weight_pushes_away(optimizer):
    optimizer.set_prompts([WeightedPrompt("text, watermark", -1.0)])
    distances = [float(optimizer.step().per_prompt[0]) for _ in range(8)]
    assert distances[-1] > distances[0]


def test_stronger_envelope_gives_larger_step(fixture_t, tiny_clip):
    G, _ = fixture_t
    assert rate(10.0, 1.0) > rate(10.0, 0.2) > rate(10.0, 0.0)
    deltas = []
    for envelope in (0.0, 1.0):
        opt = LatentOptimizer(G, tiny_clip, CFG, seed=5)
        opt.set_prompts([WeightedPrompt("a cat")])
        before = opt.q.clone()
        opt.step(rate(10.0, envelope))
        deltas.append(float((opt.q - before).norm()))
    assert deltas[1] > deltas[0]


def test_cue_boost_decays():
    assert rate(0.0, 0.0, cue_boost=3.0) == pytest.approx(CFG.lr * 3.0)
    assert rate(30.0, 0.0, cue_boost=3.0) == pytest.approx(CFG.lr, rel=1e-3)


def test_w_plus_latent_has_one_vector_per_layer(fixture_t, tiny_clip):
    G, _ = fixture_t
    opt = LatentOptimizer(G, tiny_clip, dataclasses.replace(CFG, latent_space="w+"), seed=0)
    assert opt.q.shape == (1, G.num_ws, G.w_dim)
    opt.set_prompts([WeightedPrompt("a cat")])
    opt.step()
    assert opt.frame().shape == (64, 64, 3)


def test_cutouts_have_static_shape_and_stay_in_range():
    torch.manual_seed(0)
    img = torch.rand(1, 3, 64, 64)
    for cut_pow in (0.5, 1.0, 3.0):
        cuts = make_cutouts(img, 32, cut_pow, torch.rand(6, 4))
        assert cuts.shape == (6, 3, 32, 32)
        assert cuts.min() >= 0 and cuts.max() <= 1


@pytest.mark.parametrize("height, width", [(64, 114), (114, 64)])
def test_cutouts_of_a_wide_or_tall_image_are_square_and_reach_every_part(height, width):
    """Channel 0 is x / width, channel 1 is y / height: a crop square in pixels spans them in the ratio
    height : width, and the crops' centres reach both ends of the long side."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    img = torch.stack([xs, ys, torch.zeros_like(xs)]).unsqueeze(0)
    u = torch.rand(400, 4, generator=torch.Generator().manual_seed(1))
    u[:, 3] = 1.0  # no flips: the x span keeps its sign
    cuts = make_cutouts(img, 16, 1.0, u)
    span_x = cuts[:, 0, :, -1].mean(1) - cuts[:, 0, :, 0].mean(1)
    span_y = cuts[:, 1, -1, :].mean(1) - cuts[:, 1, 0, :].mean(1)
    assert torch.allclose(span_x / span_y, torch.full_like(span_x, height / width), rtol=0.05)
    centres = (cuts[:, 0].mean((1, 2)), cuts[:, 1].mean((1, 2)))
    long_axis = centres[0] if width > height else centres[1]
    assert long_axis.min() < 0.2 and long_axis.max() > 0.8


def test_cut_pow_favours_small_crops():
    # A bright dot in the centre: small crops around it are mostly bright, whole-image crops mostly dark.
    img = torch.zeros(1, 3, 64, 64)
    img[..., 28:36, 28:36] = 1
    u = torch.rand(256, 4, generator=torch.Generator().manual_seed(0))
    u[:, 1:3] = 0.5  # centred
    big = make_cutouts(img, 16, 0.3, u).mean()
    small = make_cutouts(img, 16, 4.0, u).mean()
    assert small > big


def test_mix_lowers_both_terms(optimizer):
    optimizer.set_prompts([WeightedPrompt("a red sunset", 0.5), WeightedPrompt("green forest moss", 0.5)])
    first = optimizer.step().per_prompt[:2].clone()
    for _ in range(10):
        last = optimizer.step().per_prompt[:2]
    assert (last < first).all()


def test_step_compiles_with_fullgraph_and_matches_eager(fixture_t, tiny_clip):
    G, _ = fixture_t
    results = []
    for mode in ("off", "on"):
        opt = LatentOptimizer(G, tiny_clip, dataclasses.replace(CFG, compile=mode), seed=9)
        opt.set_prompts([WeightedPrompt("a cat", 1.0), WeightedPrompt("a dog", -0.3)])
        losses = [float(opt.step(0.05).loss) for _ in range(3)]
        assert opt.compiled == (mode == "on")
        results.append((losses, opt.q.clone()))
    (eager_losses, eager_q), (compiled_losses, compiled_q) = results
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-3, abs=1e-5)
    assert (compiled_q - eager_q).abs().max() < 1e-3


def test_spherical_distance():
    a = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    assert spherical_distance(a, a).abs().max() < 1e-3
    assert spherical_distance(a, -a).min() > 2.4


def test_nan_latent_is_restored_without_stopping(optimizer):
    optimizer.set_prompts([WeightedPrompt("a cat")])
    optimizer.step()
    good = optimizer.q.clone()
    optimizer.q[0, 0, :5] = float("nan")
    optimizer.step()
    assert torch.isfinite(optimizer.q).all()
    assert int(optimizer.restores) == 1
    assert torch.equal(optimizer.q, good)  # the step from a poisoned latent is discarded as a whole
    optimizer.step(float("nan"))          # a NaN step size poisons the update: restored too
    assert torch.isfinite(optimizer.q).all() and int(optimizer.restores) == 2
    assert torch.isfinite(optimizer.frame()).all()


def test_cutouts_can_change_between_steps(optimizer):
    optimizer.set_prompts([WeightedPrompt("a cat")])
    optimizer.set_cutouts(2)
    assert optimizer.cutouts == 2 and torch.isfinite(optimizer.step().loss)


def test_warm_up_leaves_no_trace(fixture_t, tiny_clip):
    """A warmed-up optimiser computes exactly what a cold one does: the show's first frames and a render agree."""
    G, _ = fixture_t
    runs = []
    for warm in (False, True):
        opt = LatentOptimizer(G, tiny_clip, CFG, seed=4)
        opt.set_prompts([WeightedPrompt("a cat")])
        if warm:
            opt.warm_up([4, 2, 1])
            assert opt.cutouts == 4
        runs.append(([float(opt.step(0.05).loss) for _ in range(3)], opt.q.clone(), opt.frame_pixels(0.1)))
    (cold_losses, cold_q, cold_pixels), (warm_losses, warm_q, warm_pixels) = runs
    assert warm_losses == cold_losses and torch.equal(warm_q, cold_q) and (warm_pixels == cold_pixels).all()


def test_display_follows_by_time_not_by_frame(fixture_t, tiny_clip):
    """One second of frames moves the picture as far at 10 fps as at 40 fps (a render and a rehearsal agree)."""
    G, _ = fixture_t
    cfg = dataclasses.replace(CFG, display_smoothing_s=0.5)
    shown = []
    for fps in (10, 40):
        opt = LatentOptimizer(G, tiny_clip, cfg, seed=6)
        start = opt.display_w.clone()
        opt.q.add_(1.0)  # the optimised latent moved away: the display follows it
        target = opt.latent_w(opt.q)
        for _ in range(fps):
            opt.frame(1 / fps)
        shown.append(opt.display_w.clone())
        expected = target + (start - target) * math.exp(-1.0 / 0.5)
        assert (opt.display_w - expected).abs().max() < 1e-4
    assert (shown[0] - shown[1]).abs().max() < 1e-4


def test_frame_pixels_are_the_rounded_image(fixture_t, tiny_clip):
    G, _ = fixture_t
    opt = LatentOptimizer(G, tiny_clip, CFG, seed=2)
    pixels = opt.frame_pixels()
    with torch.no_grad():
        image = G.synthesis(opt.latent_w(opt.q), transform=opt.transform)[0]
    expected = ((image.permute(1, 2, 0) + 1) / 2).clamp(0, 1).mul(255).add(0.5).floor()
    assert pixels.dtype == np.uint8 and pixels.shape == (64, 64, 3)
    assert np.abs(pixels.astype(int) - expected.numpy().astype(int)).max() <= 1


def test_a_failing_compiled_step_falls_back_to_eager_and_says_so(fixture_t, tiny_clip):
    """What the engine does when compiled code (or, on CUDA, a graph capture) fails: the show goes on."""
    G, _ = fixture_t
    opt = LatentOptimizer(G, tiny_clip, CFG, seed=1)
    opt.set_prompts([WeightedPrompt("a cat")])

    def broken(*args):
        raise RuntimeError("inductor could not compile this")

    opt._step_fn, opt.compiled = broken, True
    result = opt.step()
    assert torch.isfinite(result.loss) and not opt.compiled and opt._step_fn == opt.guided_step
    assert opt.fallbacks == ["compiled code: RuntimeError: inductor could not compile this"]


def test_half_precision_images_are_cropped_where_float32_ones_are():
    # A checkerboard of 8-pixel squares, exact in bf16: a crop grid rounded to bf16 (half a pixel at width 512)
    # moves the squares' edges, so its cutouts differ from float32's by up to half the contrast along every edge.
    ys, xs = torch.meshgrid(torch.arange(512), torch.arange(512), indexing="ij")
    board = (((ys // 8) + (xs // 8)) % 2).float().expand(1, 3, 512, 512)
    u = torch.rand(16, 4, generator=torch.Generator().manual_seed(0))
    reference = make_cutouts(board, 224, 1.0, u)
    for dtype in (torch.bfloat16, torch.float16):
        half = make_cutouts(board.to(dtype), 224, 1.0, u)
        assert half.dtype == torch.float32
        assert (half - reference).abs().max() < 1e-4, dtype


def test_one_image_cut_without_copies_has_the_gradient_of_copies():
    image = torch.rand(1, 3, 40, 56, requires_grad=True)
    u = torch.rand(5, 4, generator=torch.Generator().manual_seed(2))
    weights = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    (make_cutouts(image, 16, 1.0, u) * weights).sum().backward()
    copies = image.detach().repeat(2, 1, 1, 1).requires_grad_(True)  # two images: the copying path
    (make_cutouts(copies, 16, 1.0, u.repeat(2, 1)) * weights.repeat(2, 1, 1, 1)).sum().backward()
    for copy in copies.grad:
        assert torch.allclose(image.grad[0], copy, atol=1e-5)


class _Replayed:
    """What the optimizer asks of `CapturedCalls` (`run(key, fn)`), without CUDA: a capture that always works runs
    fn itself; one that never works fails as a capture does."""

    def __init__(self, captures: bool):
        self.captures, self.replays = captures, 0

    def run(self, key, fn):
        if not self.captures:
            raise RuntimeError(f"capturing {key!r} failed")
        outputs = fn()
        self.replays += 1
        return outputs


@pytest.mark.parametrize("eager_captures", [True, False])
def test_compiled_code_goes_first_and_graphs_only_if_eager_code_fails_in_them(fixture_t, tiny_clip, eager_captures):
    """Compiled code that fails (as inductor's can under capture) gives way to eager code, graphs kept; only when
    eager code fails in the graphs too do they go."""
    G, _ = fixture_t
    opt = LatentOptimizer(G, tiny_clip, CFG, seed=1)
    twin = LatentOptimizer(G, tiny_clip, CFG, seed=1)
    for o in (opt, twin):
        o.set_prompts([WeightedPrompt("a cat")])

    def broken(*args):
        raise RuntimeError("inductor could not compile this")

    graphs = _Replayed(captures=eager_captures)
    opt._step_fn, opt.compiled, opt.graphs = broken, True, graphs
    assert float(opt.step().loss) == float(twin.step().loss)
    assert not opt.compiled and opt._step_fn == opt.guided_step
    if eager_captures:
        assert opt.graphs is graphs and graphs.replays == 1
        assert opt.fallbacks == ["compiled code: RuntimeError: inductor could not compile this"]
    else:
        assert opt.graphs is None
        assert opt.fallbacks == ["compiled code: RuntimeError: capturing ('step', 4) failed",
                                 "CUDA graphs: RuntimeError: capturing ('step', 4) failed"]


def test_step_result_is_the_loss_before_the_update_written_in_place(optimizer):
    """Each step's result equals the loss computed afresh (eagerly) at the latent before it, with the step's own
    draws; the result lives in the optimizer's own tensors, so a step allocates none."""
    optimizer.set_prompts([WeightedPrompt("a red sunset", 1.0), WeightedPrompt("text", -0.3)])
    results, losses = [], []
    for _ in range(3):
        q = optimizer.q.clone()
        result = optimizer.step(0.05)
        with torch.no_grad():  # the draws of the step are still in their buffers
            _, (loss, per_prompt) = optimizer.loss(q, optimizer.uniforms, optimizer.noise, optimizer.transform)
        assert float(result.loss) == pytest.approx(float(loss), rel=1e-5)
        assert torch.allclose(result.per_prompt, per_prompt, rtol=1e-5) and float(result.per_prompt[2]) > 0
        results.append(result)
        losses.append(float(result.loss))
    assert len(set(losses)) == 3  # three different steps, not one result read three times
    assert {r.loss.data_ptr() for r in results} == {optimizer.result.loss.data_ptr()}
    assert {r.per_prompt.data_ptr() for r in results} == {optimizer.result.per_prompt.data_ptr()}


def test_render_frame_returns_the_last_step_of_the_frame(fixture_t, tiny_clip):
    G, _ = fixture_t
    rendered, stepped = (LatentOptimizer(G, tiny_clip, CFG, seed=8) for _ in range(2))
    prompts, transform = (WeightedPrompt("a cat"),), np.eye(3, dtype=np.float32)
    for _ in range(2):
        _, result = rendered.render_frame(prompts, 3, 0.05, transform, 0.1)
        stepped.set_prompts(prompts)
        losses = [float(stepped.step(0.05).loss) for _ in range(3)]
        assert float(result.loss) == losses[-1] != losses[0]
    assert rendered.render_frame(prompts, 0, 0.05, transform, 0.1)[1] is None


def test_a_crossfade_leaves_the_requested_weights_with_their_texts(optimizer, tiny_clip):
    """Weights change every frame of a crossfade; when the stronger prompt changes, so does the slots' order."""
    a, b = "a red sunset", "green forest moss"
    mixes = [[(a, 1 - f), (b, f)] for f in np.linspace(0, 1, 7)] + [[(b, 0.5)], [], [(a, -0.2), (b, 0.1)]]
    for mix in mixes:
        optimizer.set_prompts([WeightedPrompt(text, weight) for text, weight in mix])
        ordered = sorted(mix, key=lambda p: -abs(p[1]))
        weights = torch.zeros(MAX_PROMPTS)
        weights[: len(ordered)] = torch.tensor([w for _, w in ordered])
        assert torch.equal(optimizer.slot_weights, weights), mix
        if ordered:
            embeds = tiny_clip.encode_text([text for text, _ in ordered])
            assert torch.equal(optimizer.slot_embeds[: len(ordered)], embeds), mix
