"""Filtered leaky ReLU for StyleGAN3: bias, FIR up-sample, leaky ReLU, clamp, FIR down-sample.

Two implementations with one signature (`impl=`):
- "ref": the operation as defined (zero insertion, full-rate filtering, then striding). Slow, obviously correct;
  it exists to test the fast path against.
- "fast": polyphase up-sampling (each output phase is a short convolution at the input rate) and strided
  down-sampling (outputs that would be thrown away are never computed), one axis at a time for separable
  filters. Pure PyTorch, static shapes, no data-dependent Python branches, so it compiles with
  `torch.compile(fullgraph=True)` and captures in CUDA graphs.

Filter convention (as the NVlabs reference): `f` is applied as a convolution (flipped for correlation);
a 1-D filter is separable and applied to both axes, a 2-D filter is applied as is; `None` is the identity.
Padding is `[x0, x1, y0, y1]` relative to the up-sampled image; negative padding crops.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F

Impl = Literal["fast", "ref"]


def filtered_lrelu(
    x: torch.Tensor,                    # [N, C, H, W]
    fu: torch.Tensor | None,            # up-sampling filter: [K], [K, K] or None
    fd: torch.Tensor | None,            # down-sampling filter: [K], [K, K] or None
    b: torch.Tensor | None,             # bias: [C] or None
    up: int = 1,                        # up-sampling factor
    down: int = 1,                      # down-sampling factor
    padding: Sequence[int] = (0, 0, 0, 0),  # [x0, x1, y0, y1] on the up-sampled image
    gain: float = math.sqrt(2),         # scale after the activation
    slope: float = 0.2,                 # negative slope of the leaky ReLU (1 = linear)
    clamp: float | None = None,         # clamp the activation to [-clamp, clamp]
    impl: Impl = "fast",
) -> torch.Tensor:
    """Returns [N, C, H', W'] in x's dtype."""
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up * up, impl=impl)
    x = _lrelu_gain_clamp(x, gain, slope, clamp)
    return upfirdn2d(x, fd, down=down, impl=impl)


def _lrelu_gain_clamp(x: torch.Tensor, gain: float, slope: float, clamp: float | None) -> torch.Tensor:
    if slope != 1:
        x = F.leaky_relu(x, slope)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def upfirdn2d(
    x: torch.Tensor,                    # [N, C, H, W]
    f: torch.Tensor | None,             # [K], [K, K] or None
    up: int = 1,
    down: int = 1,
    padding: Sequence[int] = (0, 0, 0, 0),  # [x0, x1, y0, y1] on the up-sampled image
    gain: float = 1.0,                  # total gain (spread over both axes for a separable filter)
    impl: Impl = "fast",
) -> torch.Tensor:
    """Up-sample by zero insertion, pad, FIR filter, down-sample: the reference's upfirdn2d."""
    px0, px1, py0, py1 = (int(p) for p in padding)
    if f is None:
        f = torch.ones(1, dtype=torch.float32, device=x.device)
    f = f.to(x.dtype)
    if impl == "ref":
        return _upfirdn2d_ref(x, f, up, down, px0, px1, py0, py1, gain)
    if f.ndim == 1:
        f = f * math.sqrt(gain)
        x = _resample_axis(x, f, up, down, px0, px1, dim=3)
        return _resample_axis(x, f, up, down, py0, py1, dim=2)
    # A 2-D filter (the radial down-sampling filters of StyleGAN3-R) is only ever used without up-sampling.
    if up != 1:
        raise ValueError("a 2-D filter with up > 1 is not supported by the fast path; use impl='ref'")
    x = F.pad(x, [px0, px1, py0, py1])
    weight = (f * gain).flip([0, 1]).expand(x.shape[1], 1, *f.shape)  # [C, 1, K, K]
    return F.conv2d(x, weight, stride=down, groups=x.shape[1])


def _resample_axis(x: torch.Tensor, f: torch.Tensor, up: int, down: int, pad0: int, pad1: int, dim: int) -> torch.Tensor:
    """upfirdn along one axis (dim 2 = height, 3 = width) with a 1-D filter f [K]."""
    taps = f.shape[0]
    if taps == 1 and up == 1 and down == 1:
        return _pad_axis(x * f[0], pad0, pad1, dim) if (pad0 or pad1) else x * f[0]
    if up > 1:
        if down != 1:
            raise ValueError("up and down at once along one axis is not needed by StyleGAN3")
        return _upsample_axis(x, f, up, pad0, pad1, dim)
    x = _pad_axis(x, pad0, pad1, dim)
    kernel = f.flip(0)
    weight = kernel.reshape(1, 1, 1, taps) if dim == 3 else kernel.reshape(1, 1, taps, 1)
    stride = (1, down) if dim == 3 else (down, 1)
    return F.conv2d(x, weight.expand(x.shape[1], 1, *weight.shape[2:]), stride=stride, groups=x.shape[1])


def _upsample_axis(x: torch.Tensor, f: torch.Tensor, up: int, pad0: int, pad1: int, dim: int) -> torch.Tensor:
    """Polyphase up-sampling: output phase r is x convolved with f[r::up], then the phases interleave."""
    taps = f.shape[0]
    if taps % up:
        f = F.pad(f, [0, up - taps % up])  # trailing zero taps change nothing
    phase_taps = f.shape[0] // up
    n, c, h, w = x.shape
    length = x.shape[dim]
    # Phase filters as correlation kernels: [up, M], one output channel per phase.
    phases = f.reshape(phase_taps, up).t().flip(1)
    if dim == 3:
        xp = F.pad(x, [phase_taps - 1, phase_taps - 1])
        weight = phases.reshape(up, 1, 1, phase_taps).repeat(c, 1, 1, 1)  # [C*up, 1, 1, M]
        y = F.conv2d(xp, weight, groups=c)  # [N, C*up, H, L]
        full = y.reshape(n, c, up, h, -1).permute(0, 1, 3, 4, 2).reshape(n, c, h, -1)
    else:
        xp = F.pad(x, [0, 0, phase_taps - 1, phase_taps - 1])
        weight = phases.reshape(up, 1, phase_taps, 1).repeat(c, 1, 1, 1)  # [C*up, 1, M, 1]
        y = F.conv2d(xp, weight, groups=c)  # [N, C*up, L, W]
        full = y.reshape(n, c, up, -1, w).permute(0, 1, 3, 2, 4).reshape(n, c, -1, w)
    # `full` is the full convolution of the zero-inserted signal with f; the reference's output j is full[j + K-1 - pad0].
    out_len = length * up + pad0 + pad1 - taps + 1
    start = taps - 1 - pad0
    return _pad_axis(full, -start, out_len + start - full.shape[dim], dim)


def _pad_axis(x: torch.Tensor, pad0: int, pad1: int, dim: int) -> torch.Tensor:
    """Zero-pad (positive) or crop (negative) one axis."""
    return F.pad(x, [pad0, pad1] if dim == 3 else [0, 0, pad0, pad1])


def _upfirdn2d_ref(x: torch.Tensor, f: torch.Tensor, up: int, down: int,
                   px0: int, px1: int, py0: int, py1: int, gain: float) -> torch.Tensor:
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [px0, px1, py0, py1])
    f = (f * gain ** (f.ndim / 2)).flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f.expand(c, 1, *f.shape), groups=c)
    else:
        x = F.conv2d(x, f.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        x = F.conv2d(x, f.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return x[:, :, ::down, ::down]
