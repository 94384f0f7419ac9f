"""3x3 convolution by Winograd's minimal filtering F(2x2, 3x3), for the CPU.

On a CPU the 3x3 modulated convolutions are most of StyleGAN3's time, and oneDNN's direct convolution already runs
close to the cores' peak (BENCHMARKS.md), so the way down is fewer products: F(2x2, 3x3) computes each 2x2 output
tile from a 4x4 input tile with 16 products per channel pair instead of 36, as 16 independent GEMMs, between cheap
linear transforms of the input and output tiles (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
2015). Its transforms are exact in binary floating point (0, +-1, 1/2), so it is as accurate as the direct
convolution; F(4x4, 3x3) would need fewer products still but measured errors of 1e-4 in fp32, too much for a
network of 15 layers. On CUDA cuDNN chooses Winograd by itself: this path is for the CPU.

Everything per sample that is linear in the weights is folded into the transformed weights: StyleGAN3's style
modulation, demodulation and input gain then cost no pass over the activations, and the bias is added while the
output tiles are written out. Layout: channels-last in, channels-last out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Weight transform G (4x3) as the Kronecker product G (x) G: [16, 9], applied to the 9 taps of each kernel.
_G = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
_G2 = torch.kron(_G, _G)
# Output transform A^T (2x4) as A^T (x) A^T: [4, 16], from the 4x4 products of a tile to its 2x2 outputs.
_AT = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]])
_AT2 = torch.kron(_AT, _AT)


def suits(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `conv3x3` is the faster way for this convolution: 3x3 kernels, fp32, on the CPU."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and tuple(weight.shape[-2:]) == (3, 3)


def transform_weight(weight: torch.Tensor) -> torch.Tensor:
    """[O, I, 3, 3] or per sample [N, O, I, 3, 3] -> [N, 16, O, I] (N = 1 for a shared weight)."""
    if weight.ndim == 4:
        weight = weight.unsqueeze(0)
    n, o, i = weight.shape[:3]
    return torch.matmul(_G2.to(weight), weight.reshape(n, o * i, 9).transpose(1, 2)).view(n, 16, o, i)


def conv3x3(
    x: torch.Tensor,                    # [N, I, H, W]
    u: torch.Tensor,                    # [N or 1, 16, O, I] from transform_weight
    bias: torch.Tensor | None = None,   # [O]
    padding: int = 1,                   # zeros on every side
) -> torch.Tensor:                      # [N, O, H + 2p - 2, W + 2p - 2], channels-last
    n, _, h, w = x.shape
    out_h, out_w = h + 2 * padding - 2, w + 2 * padding - 2
    tiles_h, tiles_w = (out_h + 1) // 2, (out_w + 1) // 2
    # `out=` writes save a copy in eager mode, but autograd cannot record them and the compiler drops their layout.
    functional = torch.compiler.is_compiling() or (
        torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, u, bias)))

    # Input tiles: 4x4 windows at stride 2 over the padded input, transformed by B^T d B one axis at a time.
    nhwc = x.permute(0, 2, 3, 1)
    padded = F.pad(nhwc, [0, 0, padding, padding + 2 * tiles_w - out_w, padding, padding + 2 * tiles_h - out_h]).contiguous()
    rows = _transform_input([padded[:, k:k + 2 * tiles_h:2] for k in range(4)])  # 4 x [N, th, Wp, I]
    if functional:
        v = torch.stack([t for r in rows for t in _transform_input(_column_taps(r, tiles_w))])
    else:
        v = x.new_empty(16, n, tiles_h, tiles_w, x.shape[1])
        for i, r in enumerate(rows):
            _transform_input(_column_taps(r, tiles_w), out=v[4 * i:4 * i + 4].unbind(0))
    v = v.view(16, n * tiles_h * tiles_w, -1)  # [16, N*T, I]

    # The 16 GEMMs: one per product position, each over all tiles of the batch (or per sample with its own weight).
    if u.shape[0] == 1:
        m = torch.matmul(v, u[0].transpose(-1, -2))  # [16, N*T, O]
    else:
        m = torch.matmul(v.view(16, n, tiles_h * tiles_w, -1).transpose(0, 1), u.transpose(-1, -2)).transpose(0, 1)
    out_channels = m.shape[-1]
    # Output transform as one GEMM over the 16 products of each tile, then interleave the 2x2 outputs of each tile
    # (and add the bias) in a single pass.
    y = torch.matmul(_AT2.to(m), m.reshape(16, -1)).view(2, 2, n, tiles_h, tiles_w, out_channels)
    y = y.permute(2, 3, 0, 4, 1, 5)  # [N, th, 2, tw, 2, O]
    if functional:
        y = (y + bias if bias is not None else y).contiguous()
    else:
        out = x.new_empty(n, tiles_h, 2, tiles_w, 2, out_channels)
        if bias is not None:
            torch.add(y, bias, out=out)
        else:
            out.copy_(y)
        y = out
    y = y.view(n, 2 * tiles_h, 2 * tiles_w, out_channels)[:, :out_h, :out_w]
    return y.permute(0, 3, 1, 2)


def _column_taps(rows: torch.Tensor, tiles_w: int) -> list[torch.Tensor]:
    """The 4 taps of every tile along the width: 4 x [N, th, tw, I] strided views."""
    return [rows[:, :, k:k + 2 * tiles_w:2] for k in range(4)]


def _transform_input(d: list[torch.Tensor], out: tuple[torch.Tensor, ...] | None = None) -> list[torch.Tensor]:
    """B^T applied along one axis: (d0 - d2, d1 + d2, d2 - d1, d1 - d3)."""
    if out is None:
        return [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]
    torch.sub(d[0], d[2], out=out[0])
    torch.add(d[1], d[2], out=out[1])
    torch.sub(d[2], d[1], out=out[2])
    torch.sub(d[1], d[3], out=out[3])
    return list(out)
