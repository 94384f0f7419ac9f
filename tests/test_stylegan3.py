"""Our StyleGAN3 against the NVlabs reference outputs (../shared/fixtures), and the fast ops against the plain ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import load_fixture_generator
from vj.models.filtered_ops import filtered_lrelu, upfirdn2d
from vj.models.stylegan3 import Generator, design_lowpass_filter

TOL = 1e-4


@pytest.mark.parametrize("name", ["sg3t_64", "sg3r_64"])
@pytest.mark.parametrize("psi", ["1.0", "0.5"])
def test_matches_reference_outputs(name, psi):
    G, cases = load_fixture_generator(name)
    with torch.no_grad():
        ws = G.mapping(cases["z"], None, truncation_psi=float(psi))
        assert (ws - cases[f"ws_psi{psi}"]).abs().max() <= TOL
        img = G.synthesis(cases[f"ws_psi{psi}"])
    assert img.shape == cases[f"img_psi{psi}"].shape
    assert (img - cases[f"img_psi{psi}"]).abs().max() <= TOL


def test_whole_network_on_the_reference_ops_matches_too():
    G, cases = load_fixture_generator("sg3t_64")
    G.set_impl("ref")
    with torch.no_grad():
        img = G.synthesis(cases["ws_psi1.0"][:2])
    assert (img - cases["img_psi1.0"][:2]).abs().max() <= TOL


@pytest.mark.parametrize("name", ["sg3t_64", "sg3r_64"])
def test_transform_as_buffer_and_as_argument_match_reference(name):
    G, cases = load_fixture_generator(name)
    expected = cases["img_psi1.0_transformed"]
    with torch.no_grad():
        by_argument = G.synthesis(cases["ws_psi1.0"], transform=cases["transform"])
        per_sample = G.synthesis(cases["ws_psi1.0"], transform=cases["transform"].expand(4, 3, 3))
        G.synthesis.input.transform.copy_(cases["transform"])
        by_buffer = G.synthesis(cases["ws_psi1.0"])
        G.synthesis.input.transform.copy_(torch.eye(3))
    for img in (by_argument, per_sample, by_buffer):
        assert (img - expected).abs().max() <= TOL
    # and the transform really moves the picture
    assert (expected - cases["img_psi1.0"]).abs().max() > 0.05


def test_generator_call_equals_mapping_then_synthesis(fixture_t):
    G, cases = fixture_t
    with torch.no_grad():
        assert (G(cases["z"], None, truncation_psi=0.5) - cases["img_psi0.5"]).abs().max() <= TOL


def test_reference_state_dict_names_load_strictly(fixture_t):
    G, _ = fixture_t
    names = set(G.state_dict())
    for expected in ("mapping.fc0.weight", "mapping.w_avg", "synthesis.input.freqs", "synthesis.input.transform",
                     "synthesis.L4_52_128.affine.weight", "synthesis.L4_52_128.magnitude_ema",
                     "synthesis.L4_52_128.up_filter", "synthesis.L14_64_3.weight"):
        assert expected in names
    fresh = Generator(**G.init_kwargs)
    fresh.load_state_dict(G.state_dict(), strict=True)


@pytest.mark.parametrize("up,down,taps_up,taps_down,padding,radial", [
    (2, 2, 12, 12, [9, 8, 9, 8], False),
    (4, 2, 24, 12, [-6, -9, -6, -9], False),
    (2, 2, 12, 12, [-11, -12, -11, -12], False),
    (2, 2, 12, 12, [9, 8, 9, 8], True),
    (2, 2, 12, 12, [3, 1, 2, 5], False),  # asymmetric padding, beyond what StyleGAN3 uses
])
@pytest.mark.parametrize("impl", ["conv", "banded"])
def test_fast_filtered_lrelu_matches_reference(up, down, taps_up, taps_down, padding, radial, impl):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 40, 40) * 3
    b = torch.randn(5)
    fu = design_lowpass_filter(taps_up, 4, 2, 16 * up)
    fd = design_lowpass_filter(taps_down, 4, 2, 16 * up, radial=radial)
    args = dict(up=up, down=down, padding=padding, gain=np.sqrt(2), slope=0.2, clamp=2.0)
    ref = filtered_lrelu(x, fu, fd, b, impl="ref", **args)
    fast = filtered_lrelu(x, fu, fd, b, impl=impl, **args)
    assert fast.shape == ref.shape
    assert (fast - ref).abs().max() <= 1e-5
    assert ref.abs().max() > 0.1  # not trivially zero


def test_fast_upfirdn_differentiable_like_reference():
    torch.manual_seed(1)
    f = design_lowpass_filter(12, 4, 2, 32)
    grads = []
    for impl in ("ref", "conv", "banded"):
        x = torch.randn(1, 3, 12, 12, requires_grad=True)
        torch.manual_seed(2)
        x.data = torch.randn(1, 3, 12, 12)
        upfirdn2d(x, f, up=2, padding=[9, 8, 9, 8], gain=4, impl=impl).square().sum().backward()
        grads.append(x.grad)
    assert (grads[0] - grads[1]).abs().max() <= 1e-4 and (grads[0] - grads[2]).abs().max() <= 1e-4


@pytest.mark.parametrize("up,down,padding", [(1, 2, [3, 0, -2, 5]), (2, 3, [4, 7, 1, 0]), (3, 1, [0, 0, 0, 0])])
def test_banded_upfirdn_matches_reference_in_any_combination(up, down, padding):
    """Up-sampling, padding or cropping, and down-sampling together in one call (the reference allows it)."""
    torch.manual_seed(3)
    x = torch.randn(2, 4, 17, 23)
    f = design_lowpass_filter(8, 3, 2, 16)
    ref = upfirdn2d(x, f, up=up, down=down, padding=padding, gain=up * up, impl="ref")
    banded = upfirdn2d(x, f, up=up, down=down, padding=padding, gain=up * up, impl="banded")
    assert banded.shape == ref.shape and (banded - ref).abs().max() <= 1e-5


def test_synthesis_is_the_same_picture_through_every_filter_implementation(fixture_t):
    G, cases = fixture_t
    ws = cases["ws_psi1.0"][:1]
    pictures = {}
    with torch.no_grad():
        for impl in ("conv", "banded"):
            G.set_impl(impl)
            pictures[impl] = G.synthesis(ws)
    G.set_impl("fast")
    assert (pictures["banded"] - pictures["conv"]).abs().max() <= TOL


def test_compiled_synthesis_matches_eager(fixture_t):
    G, cases = fixture_t
    ws = cases["ws_psi1.0"][:2]
    compiled = torch.compile(G.synthesis, fullgraph=True)
    with torch.no_grad():
        eager = G.synthesis(ws)
        out = compiled(ws)
    assert (out - eager).abs().max() <= TOL


def test_guidance_gradient_flows_to_latent(fixture_t):
    G, cases = fixture_t
    ws = cases["ws_psi1.0"][:1].clone().requires_grad_(True)
    G.synthesis(ws).square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["sg3t_64", "sg3r_64"])
@pytest.mark.parametrize("aspect, size", [(16 / 9, (114, 64)), (9 / 16, (64, 114)), (2.0, (128, 64))])
def test_a_wide_render_is_a_wider_view_of_the_same_picture(name, aspect, size):
    """Widening the Fourier-feature grid and every layer shows more of the same world: the centre of the wide render
    is the square render. They differ only where the square network's last layers (which have no margin) padded
    its edges with zeros; that reaches inwards through the filters' tails and fades, so the bound is 1% of the
    picture's spread over the whole square and tighter away from its edges (measured: T 0.07% mean and 0.3% at
    most beyond 8 pixels; R ten times less)."""
    G, cases = load_fixture_generator(name)
    ws = cases["ws_psi1.0"][:2]
    with torch.no_grad():
        square = G.synthesis(ws)
        assert G.synthesis.set_aspect(aspect) == size
        wide = G.synthesis(ws)
        G.synthesis.set_aspect(1.0)
        again = G.synthesis(ws)
    assert tuple(wide.shape[2:]) == (size[1], size[0]) and torch.equal(again, square)
    x0, y0 = (size[0] - 64) // 2, (size[1] - 64) // 2
    difference = (wide[:, :, y0:y0 + 64, x0:x0 + 64] - square).abs() / square.std()
    inner = difference[..., 8:-8] if aspect > 1 else difference[..., 8:-8, :]
    assert difference.mean() < 0.01 and inner.max() < 0.01
    outside = wide[..., :x0] if aspect > 1 else wide[..., :y0, :]
    assert outside.std() > 0.5 * square.std()  # the new area holds a picture, not padding
