"""Filtered leaky ReLU for StyleGAN3: bias, FIR up-sample, leaky ReLU, clamp, FIR down-sample.

Implementations with one signature (`impl=`):
- "ref": the operation as defined (zero insertion, full-rate filtering, then striding). Slow, obviously correct;
  it exists to test the others against.
- "conv": transposed-convolution up-sampling (polyphase: no products with inserted zeros) and strided
  down-sampling (outputs that would be thrown away are never computed), one axis at a time for separable
  filters, as depthwise convolutions in channels-last layout: the fast way on a CPU (oneDNN).
- "banded": each axis's padding, up-sampling, filtering and down-sampling as one product with a banded matrix
  ([L, L'], built from the filter on the device). It multiplies many zeros, but on the tensor cores: on an H200
  T-512 synthesis took 23 ms this way against 81 ms with cuDNN's depthwise kernels (forward and backward 46 ms
  against 153 ms; BENCHMARKS.md).
- "fast": "banded" on CUDA, "conv" elsewhere.
All are pure PyTorch, static shapes, no data-dependent Python branches, so they compile with
`torch.compile(fullgraph=True)` and capture in CUDA graphs. A 2-D filter (StyleGAN3-R's radial down-sampling
filter) is one grouped convolution in every implementation but "ref".

Filter convention (as the NVlabs reference): `f` is applied as a convolution (flipped for correlation);
a 1-D filter is separable and applied to both axes, a 2-D filter is applied as is; `None` is the identity.
Padding is `[x0, x1, y0, y1]` relative to the up-sampled image; negative padding crops.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F

Impl = Literal["fast", "conv", "banded", "ref"]
IMPLS: tuple[Impl, ...] = ("fast", "conv", "banded", "ref")


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
    """Returns [N, C, H', W'] in x's dtype (channels-last memory layout from the fast path)."""
    given = x
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    if impl == "ref":
        x = upfirdn2d(x, fu, up=up, padding=padding, gain=up * up, impl="ref")
        if slope != 1:
            x = F.leaky_relu(x, slope)
        x = x * gain
        if clamp is not None:
            x = x.clamp(-clamp, clamp)
        return upfirdn2d(x, fd, down=down, impl="ref")
    impl = _resolve(impl, x)
    # Depthwise convolutions run several times faster channels-last on the CPU; banded products want rows.
    x = x.contiguous(memory_format=torch.channels_last if impl == "conv" else torch.contiguous_format)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up * up, impl=impl)
    # In place where the tensor is our own: a fresh full-rate buffer per op costs more in page faults than the
    # op itself on CPU. In-place leaky ReLU is autograd-safe (its backward uses the output); clamp_ is not.
    owned = x is not given
    if slope != 1:
        x = F.leaky_relu(x, slope, inplace=owned)
    # clamp(gain * y, c) == gain * clamp(y, c / gain): the gain moves into the (linear) down filter, one pass less.
    if clamp is not None:
        x = x.clamp_(-clamp / gain, clamp / gain) if owned and not torch.is_grad_enabled() \
            else x.clamp(-clamp / gain, clamp / gain)
    return upfirdn2d(x, fd, down=down, gain=gain, impl=impl)


def _resolve(impl: Impl, x: torch.Tensor) -> Impl:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    return ("banded" if x.is_cuda else "conv") if impl == "fast" else impl


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
    if impl == "ref":
        f = torch.ones(1, dtype=torch.float32, device=x.device) if f is None else f
        return _upfirdn2d_ref(x, f.to(x.dtype), up, down, px0, px1, py0, py1, gain)
    if f is None:
        x = x * gain if gain != 1 else x
        x = _pad_axis(_pad_axis(x, px0, px1, 3), py0, py1, 2)
        return x[:, :, ::down, ::down] if down > 1 else x
    f = f.to(x.dtype)
    if f.ndim == 1:
        f = f * math.sqrt(gain)
        if _resolve(impl, x) == "banded":
            x = _banded_axis(x, f, up, down, py0, py1, dim=2)
            return _banded_axis(x, f, up, down, px0, px1, dim=3)
        if up > 1:
            x = _upsample_axis(x, f, up, py0, py1, dim=2)
            return _upsample_axis(x, f, up, px0, px1, dim=3)
        x = _pad_axis(_pad_axis(x, px0, px1, 3), py0, py1, 2)
        return _downsample_axis(_downsample_axis(x, f, down, dim=3), f, down, dim=2)
    # A 2-D filter (the radial down-sampling filters of StyleGAN3-R) is only ever used without up-sampling.
    if up != 1:
        raise ValueError("a 2-D filter with up > 1 is not supported by the fast path; use impl='ref'")
    x = _pad_axis(_pad_axis(x, px0, px1, 3), py0, py1, 2)
    weight = (f * gain).flip([0, 1]).expand(x.shape[1], 1, *f.shape).contiguous()  # [C, 1, K, K]
    return F.conv2d(x, weight, stride=down, groups=x.shape[1])


def _banded_axis(x: torch.Tensor, f: torch.Tensor, up: int, down: int, pad0: int, pad1: int,
                 dim: int) -> torch.Tensor:
    """Zero-insert by `up`, pad, filter with f and keep every `down`-th sample along one axis (2 = height, 3 =
    width) as one matrix product: y = x @ B along that axis, B[i, j] the filter tap that input i gives output j.

    The zero-inserted, padded signal z has z[i * up + pad0] = x[i]; the full-rate output is
    (z * f)[m] = sum_i x[i] f[m - pad0 - i * up] for m = j * down + taps - 1 (the reference's valid convolution)."""
    taps, length = f.shape[0], x.shape[dim]
    out_len = (length * up + pad0 + pad1 - taps) // down + 1
    outputs = torch.arange(out_len, device=x.device) * down + (taps - 1 - pad0)
    tap = outputs[None, :] - torch.arange(length, device=x.device)[:, None] * up  # [L, L']
    band = torch.where((tap >= 0) & (tap < taps), f[tap.clamp(0, taps - 1)], torch.zeros((), dtype=f.dtype,
                                                                                         device=f.device))
    return x @ band if dim == 3 else torch.matmul(band.t(), x)


def _upsample_axis(x: torch.Tensor, f: torch.Tensor, up: int, pad0: int, pad1: int, dim: int) -> torch.Tensor:
    """Zero-insert, pad and filter one axis (2 = height, 3 = width) in one transposed convolution.

    conv_transpose2d with stride `up` is the full convolution of the zero-inserted signal with f, computed
    polyphase (no multiplications by the inserted zeros). The reference's output j is full[j + K-1 - pad0];
    the symmetric part of that crop is the transposed conv's own padding (StyleGAN3's crops are symmetric).
    """
    taps, channels, length = f.shape[0], x.shape[1], x.shape[dim]
    start = taps - 1 - pad0
    out_len = length * up + pad0 + pad1 - taps + 1
    end_crop = (length - 1) * up + taps - (start + out_len)
    crop = max(0, min(start, end_crop))
    kernel = f.reshape(1, 1, 1, taps) if dim == 3 else f.reshape(1, 1, taps, 1)
    y = F.conv_transpose2d(
        x, kernel.expand(channels, 1, *kernel.shape[2:]).contiguous(), groups=channels,
        stride=(1, up) if dim == 3 else (up, 1), padding=(0, crop) if dim == 3 else (crop, 0))
    return _pad_axis(y, crop - start, crop - end_crop, dim)


def _downsample_axis(x: torch.Tensor, f: torch.Tensor, down: int, dim: int) -> torch.Tensor:
    """Filter one axis and keep every `down`-th sample, computing only the kept ones."""
    taps = f.shape[0]
    kernel = f.flip(0).reshape(1, 1, 1, taps) if dim == 3 else f.flip(0).reshape(1, 1, taps, 1)
    return F.conv2d(x, kernel.expand(x.shape[1], 1, *kernel.shape[2:]).contiguous(), groups=x.shape[1],
                    stride=(1, down) if dim == 3 else (down, 1))


def _pad_axis(x: torch.Tensor, pad0: int, pad1: int, dim: int) -> torch.Tensor:
    """Zero-pad (positive) or crop (negative) one axis; no copy when there is nothing to do."""
    if pad0 == 0 and pad1 == 0:
        return x
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
