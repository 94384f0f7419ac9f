"""Winograd F(2x2, 3x3) convolution and the modulated convolution built on it, against torch's direct conv."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vj.models import winograd
from vj.models.stylegan3 import modulated_conv2d


@pytest.mark.parametrize("batch,height,width,padding", [(1, 8, 8, 2), (2, 7, 10, 2), (1, 9, 5, 1), (3, 6, 6, 0)])
def test_conv3x3_matches_direct_convolution(batch, height, width, padding):
    torch.manual_seed(0)
    x = torch.randn(batch, 6, height, width).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(5, 6, 3, 3)
    bias = torch.randn(5)
    with torch.no_grad():
        out = winograd.conv3x3(x, winograd.transform_weight(weight), bias, padding)
    expected = F.conv2d(x, weight, bias, padding=padding)
    assert out.shape == expected.shape
    assert (out - expected).abs().max() <= 1e-5 * expected.abs().max()


def test_conv3x3_per_sample_weights_and_plain_layout():
    torch.manual_seed(1)
    x = torch.randn(3, 4, 9, 9)  # NCHW, not channels-last
    weights = torch.randn(3, 7, 4, 3, 3)
    with torch.no_grad():
        out = winograd.conv3x3(x, winograd.transform_weight(weights), None, 2)
    expected = torch.cat([F.conv2d(x[i:i + 1], weights[i], padding=2) for i in range(3)])
    assert (out - expected).abs().max() <= 1e-5 * expected.abs().max()


def test_conv3x3_gradients_match_direct_convolution():
    torch.manual_seed(2)
    grads = []
    for conv in ("winograd", "direct"):
        x = torch.randn(2, 3, 7, 7, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
        weight = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(4)).requires_grad_(True)
        bias = torch.zeros(4, requires_grad=True)
        if conv == "winograd":
            out = winograd.conv3x3(x, winograd.transform_weight(weight), bias, 2)
        else:
            out = F.conv2d(x, weight, bias, padding=2)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads.append((x.grad, weight.grad, bias.grad))
    for fast, direct in zip(*grads):
        assert (fast - direct).abs().max() <= 1e-4 * direct.abs().max()


def _modulated_conv_as_defined(x, weight, styles, demodulate, padding, input_gain, bias):
    """The reference's definition: one modulated (and demodulated) weight per sample, a grouped convolution."""
    batch, out_channels = x.shape[0], weight.shape[0]
    if demodulate:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    w = weight.unsqueeze(0) * styles[:, None, :, None, None]
    if demodulate:
        w = w * (w.square().sum([2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    w = w * input_gain
    out = F.conv2d(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, *w.shape[2:]), padding=padding, groups=batch)
    return out.reshape(batch, out_channels, *out.shape[2:]) + bias.reshape(1, -1, 1, 1)


@pytest.mark.parametrize("kernel", [3, 1])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv2d_matches_its_definition(kernel, demodulate):
    torch.manual_seed(5)
    x = torch.randn(2, 8, 10, 10).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(6, 8, kernel, kernel)
    styles = torch.randn(2, 8) + 1
    bias = torch.randn(6)
    gain = torch.tensor(0.7)
    with torch.no_grad():
        out = modulated_conv2d(x, weight, styles, demodulate, kernel - 1, gain, bias)
    expected = _modulated_conv_as_defined(x, weight, styles, demodulate, kernel - 1, gain, bias)
    assert out.shape == expected.shape
    assert (out - expected).abs().max() <= 1e-5 * expected.abs().max()


def test_conv3x3_error_at_stylegan_channel_counts():
    # F(4x4, 3x3) is less exact than a direct convolution; at 512 channels it must stay close to fp64.
    torch.manual_seed(6)
    x = torch.randn(1, 512, 16, 16).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(512, 512, 3, 3) / (512 * 9) ** 0.5
    with torch.no_grad():
        out = winograd.conv3x3(x, winograd.transform_weight(weight), None, 2)
        direct = F.conv2d(x, weight, padding=2)
    exact = F.conv2d(x.double(), weight.double(), padding=2)
    scale = exact.abs().max()
    assert (direct - exact).abs().max() <= 2e-6 * scale
    assert (out - exact).abs().max() <= 2e-5 * scale


def test_winograd_serves_the_cpu_unless_the_weight_wants_a_gradient():
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    weight = torch.randn(4, 4, 3, 3)
    assert winograd.suits(x, weight)
    assert not winograd.suits(x, weight.clone().requires_grad_(True))
    assert not winograd.suits(x, torch.randn(4, 4, 1, 1))
    assert not winograd.suits(x.double(), weight.double())


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv2d_gradients_match_its_definition(demodulate):
    weight = torch.randn(6, 8, 3, 3, generator=torch.Generator().manual_seed(7))
    grads = []
    for conv in (modulated_conv2d, _modulated_conv_as_defined):
        seeds = torch.Generator().manual_seed(8)
        x = torch.randn(2, 8, 10, 10, generator=seeds).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        styles = (torch.randn(2, 8, generator=seeds) + 1).requires_grad_(True)
        bias = torch.randn(6, generator=seeds).requires_grad_(True)
        out = conv(x, weight, styles, demodulate, 2, torch.tensor(0.7), bias)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads.append((x.grad, styles.grad, bias.grad))
    for fast, defined in zip(*grads):
        assert (fast - defined).abs().max() <= 1e-4 * defined.abs().max()


def test_latent_gradients_through_the_network_match_direct_convolutions(fixture_t, monkeypatch):
    G, cases = fixture_t
    ws = cases["ws_psi1.0"][:2]
    loss = lambda w: G.synthesis(w).square().mean()  # noqa: E731
    by_func = torch.func.grad(loss)(ws)  # as the latent optimiser takes its gradients
    grads = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(winograd, "suits", lambda x, weight: False)
        leaf = ws.clone().requires_grad_(True)
        loss(leaf).backward()
        grads.append(leaf.grad)
    assert grads[1].abs().max() > 0
    for fast in (grads[0], by_func):
        assert (fast - grads[1]).abs().max() <= 1e-4 * grads[1].abs().max()
