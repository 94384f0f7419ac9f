"""Every precision path on the CPU: the fixture generator and a guided step in fp32, fp16 and bf16.

The half-precision branches are reached through explicit arguments (`Generator.set_precision`, `load_clip(...,
precision)`), exactly the code CUDA runs, only slower. Tolerances come from the unit roundoff u of each type
(fp16: 2^-11 = 4.9e-4, bf16: 2^-8 = 3.9e-3): each of the fixture's 15 layers rounds its activations about five
times (conv input and output, up-sampled, activated, down-sampled) and independent rounding errors add in
quadrature, so the image's relative RMS error should be near sqrt(75) u = 8.7 u: 0.4% for fp16, 3.4% for bf16
(measured 0.2% and 4%). The bounds allow about twice that.
"""

from __future__ import annotations

import pytest
import torch

from vj.config import OptimizerConfig
from vj.cues.prompts import WeightedPrompt
from vj.engine.optimizer import LatentOptimizer
from vj.models.clip import load_clip
from vj.models.loading import tiny_generator

from conftest import load_fixture_generator

RELATIVE_RMS = {"fp16": 0.01, "bf16": 0.08}
CFG = OptimizerConfig(cutouts=4, lr=0.05, latent_reg=0.0, display_smoothing_s=0.0)
PRECISIONS = ["fp32", "fp16", "bf16"]


@pytest.fixture(scope="module")
def generator():
    G, cases = load_fixture_generator("sg3t_64")
    yield G, cases
    G.set_precision("auto")


def relative_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_image_close_to_fp32(generator, precision):
    G, cases = generator
    ws = cases["ws_psi1.0"]
    with torch.no_grad():
        full = G.set_precision("fp32").synthesis(ws)
        half = G.set_precision(precision).synthesis(ws)
    assert G.compute_dtype(torch.device("cpu")) == {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert 0 < relative_rms(half, full) < RELATIVE_RMS[precision]


def test_auto_precision_is_the_reference_behaviour(generator):
    G, _ = generator
    G.set_precision("auto")
    assert G.compute_dtype(torch.device("cpu")) == torch.float32
    assert G.compute_dtype(torch.device("cuda")) == torch.float16  # decided from the device, nothing runs there
    with pytest.raises(ValueError, match="precision"):
        G.set_precision("fp8")


def _optimizer(G, precision: str, weight: float = 1.0) -> LatentOptimizer:
    G.set_precision(precision)
    clip = load_clip("tiny", "cpu", precision, seed=0)
    assert clip.dtype == {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    opt = LatentOptimizer(G, clip, CFG, seed=3)
    opt.set_prompts([WeightedPrompt("a red sunset over the sea", weight)])
    return opt


def _latent_gradient(opt: LatentOptimizer) -> torch.Tensor:
    draws = torch.Generator().manual_seed(1)
    uniforms = torch.rand(4, 4, generator=draws)
    noise = torch.randn(4, 3, 64, 64, generator=draws) * 0.02
    grad, _ = torch.func.grad(opt.loss, has_aux=True)(opt.q, uniforms, noise, opt.transform)
    return grad / opt.loss_scale


# A prompt weighted 1e-6 makes the image gradients as small as a full-size CLIP's can be: in fp16 they underflow
# to zero on the way back through CLIP unless the loss is scaled.
@pytest.mark.parametrize("weight", [1.0, 1e-6])
def test_latent_gradient_in_each_precision_points_as_fp32s(generator, weight):
    G, _ = generator
    reference = _latent_gradient(_optimizer(G, "fp32", weight))
    for precision in ("fp16", "bf16"):
        opt = _optimizer(G, precision, weight)
        assert opt.loss_scaling == (precision == "fp16")  # bf16 has fp32's range: nothing to scale
        grad = _latent_gradient(opt)
        assert grad.dtype == torch.float32 and grad.abs().max() > 0, precision
        cosine = torch.nn.functional.cosine_similarity(grad.flatten(), reference.flatten(), dim=0)
        assert cosine >= 0.99, (precision, float(cosine))


def test_unscaled_fp16_gradient_underflows(generator):
    """Why the loss is scaled: the same small gradient without scaling is exactly zero in fp16."""
    G, _ = generator
    opt = _optimizer(G, "fp16", 1e-6)
    opt.loss_scale.fill_(1.0)
    assert _latent_gradient(opt).abs().max() == 0


# Twenty steps and more run on the tiny generator: half precision on a CPU is slow (its kernels are not optimised).
@pytest.mark.parametrize("precision", PRECISIONS)
def test_guidance_loss_falls_over_20_steps_in_each_precision(precision):
    opt = _optimizer(tiny_generator(0), precision, 1e-6)  # tiny gradients: fp16 moves only through the scaled loss
    start = opt.q.clone()
    losses = [float(opt.step().loss) for _ in range(20)]
    assert sum(losses[-5:]) < sum(losses[:5]) * 0.97, losses
    assert opt.q.dtype == torch.float32 and opt.v.dtype == torch.float32 and not torch.equal(opt.q, start)
    assert int(opt.skipped) == 0 and int(opt.restores) == 0


def test_fp16_loss_scale_backs_off_after_overflow_and_guidance_goes_on():
    opt = _optimizer(tiny_generator(0), "fp16")
    opt.loss_scale.fill_(2.0 ** 24)  # far too large for gradients of this size: the scaled backward overflows
    start = opt.q.clone()
    losses = [float(opt.step().loss) for _ in range(10)]
    assert int(opt.skipped) > 0 and float(opt.loss_scale) < 2.0 ** 24
    assert int(opt.steps_taken) == 10 - int(opt.skipped)  # skipped steps left the optimiser's state alone
    assert torch.isfinite(opt.q).all() and not torch.equal(opt.q, start) and int(opt.restores) == 0
    assert losses[-1] < losses[0]


def test_clip_dtype_follows_a_conversion_of_its_parameters():
    """CLIP's compute type is read once, not on every step: a conversion after loading must still show in it."""
    clip = load_clip("tiny", "cpu", "fp32", seed=0)
    images = torch.rand(2, 3, clip.input_size, clip.input_size, generator=torch.Generator().manual_seed(0))
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        clip.to(dtype)
        assert clip.dtype == dtype
        embedded = clip.encode_image(images)  # runs in that type: a stale one would be a dtype mismatch
        assert embedded.dtype == torch.float32 and torch.isfinite(embedded).all()
