"""3x3 convolution by Winograd's minimal filtering F(4x4, 3x3), for the CPU.

On a CPU the 3x3 modulated convolutions are most of StyleGAN3's time, and oneDNN's direct convolution already runs
close to the cores' peak (BENCHMARKS.md), so the way down is fewer products: F(4x4, 3x3) computes each 4x4 output
tile from a 6x6 input tile with 36 products per channel pair instead of 144, as 36 independent GEMMs, between
cheap linear transforms of the input and output tiles (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2015). Each single convolution is less exact than a direct one (errors near 1e-5 of its largest output
in fp32, against 1e-6), but demodulation keeps StyleGAN3's activations near unit scale and the whole network's
image stays within 2e-6 of the direct convolutions' (measured at T-256). F(2x2, 3x3) was measured too: as exact
as the direct convolution but with 1.8x the GEMM work and more transform traffic. On CUDA cuDNN chooses Winograd
by itself: this path is for the CPU.

Everything per sample that is linear in the weights is folded into the transformed weights: StyleGAN3's style
modulation, demodulation and input gain then cost no pass over the activations, and the bias is added while the
output tiles are written out. The backward (guided steps) is a Winograd convolution too. Layout: channels-last
in, channels-last out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TILE = 4                                # outputs per tile along each axis
TAPS = TILE + 2                         # inputs per tile along each axis
# Weight transform G (6x3) as the Kronecker product G (x) G: [36, 9], applied to the 9 taps of each kernel.
_G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                   [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
_G2 = torch.kron(_G, _G).float()
# Output transform A^T (4x6) as A^T (x) A^T: [16, 36], from the 6x6 products of a tile to its 4x4 outputs.
_AT = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                   dtype=torch.float64)
_AT2 = torch.kron(_AT, _AT).float()
# Input transform B^T (6x6): along the height as one GEMM over each tile row's 6 input rows, along the width by
# `_transform_input` (the layout the 36 GEMMs need rules out a GEMM there).
_BT = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                    [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=torch.float32)


def suits(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `modulated_conv3x3` is the faster way for this convolution: 3x3 kernels, fp32, on the CPU, eager,
    and no gradient wanted for the weight (vj optimises latents, never weights).

    Not while torch.compile traces: the unrolled transforms make inductor take minutes to compile a network
    (3.5 min for the 64-pixel test model on 2 cores), and compiled code on the CPU is not the fast path anyway.
    """
    weight_grad = torch.is_grad_enabled() and weight.requires_grad
    return (x.device.type == "cpu" and x.dtype == torch.float32 and tuple(weight.shape[-2:]) == (3, 3)
            and not weight_grad and not torch.compiler.is_compiling())


def modulated_conv3x3(
    x: torch.Tensor,                    # [N, I, H, W]
    weight: torch.Tensor,               # [O, I, 3, 3], no gradient
    scale_in: torch.Tensor,             # [N, I]: style (and input gain) per input channel
    scale_out: torch.Tensor | None,     # [N, O]: demodulation per output channel, or None
    bias: torch.Tensor | None,          # [O]
    padding: int,                       # 0 to 2
) -> torch.Tensor:                      # [N, O, H + 2p - 2, W + 2p - 2], channels-last
    """conv(x * scale_in, weight) * scale_out + bias, with both scales folded into per-sample transformed weights.

    Differentiable in x, the scales and the bias by a backward of its own: the input's gradient is again a 3x3
    convolution (flipped kernel, in and out swapped, padding 2 - p) and goes through Winograd too, where autograd
    through the transforms' many passes measured slower than the direct convolution.
    """
    return _ModulatedConv3x3.apply(x, weight, scale_in, scale_out, bias, padding)


class _ModulatedConv3x3(torch.autograd.Function):
    @staticmethod
    def forward(x, weight, scale_in, scale_out, bias, padding):  # type: ignore[override]
        scales = scale_in[:, None, :] if scale_out is None else scale_out[:, :, None] * scale_in[:, None, :]
        return conv3x3(x, transform_weight(weight.unsqueeze(0) * scales[..., None, None]), bias, padding)

    @staticmethod
    def setup_context(ctx, inputs, output):  # separate from forward, as torch.func.grad (guided steps) needs
        x, weight, scale_in, scale_out, bias, padding = inputs
        ctx.save_for_backward(x, weight, scale_in, scale_out, bias, output)
        ctx.padding = padding

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):  # type: ignore[override]
        x, weight, scale_in, scale_out, bias, y = ctx.saved_tensors
        want_x, _, want_in, want_out, want_bias, _ = ctx.needs_input_grad
        grad_sum = grad_y.sum((2, 3))  # [N, O]
        grad_bias = grad_sum.sum(0) if want_bias else None
        grad_out = None
        if want_out:
            # d/d scale_out of (conv * scale_out) sums grad_y * conv, and conv = (y - bias) / scale_out.
            grad_out = (grad_y * y).sum((2, 3)) - (grad_sum * bias if bias is not None else 0)
            grad_out = grad_out / scale_out
        grad_x = grad_in = None
        if want_x or want_in:
            # The gradient of (x * scale_in) is the transposed convolution of grad_y * scale_out.
            transposed = weight.flip(2, 3).transpose(0, 1).unsqueeze(0)  # [1, I, O, 3, 3]
            if scale_out is not None:
                transposed = transposed * scale_out[:, None, :, None, None]
            grad_scaled = conv3x3(grad_y, transform_weight(transposed), None, 2 - ctx.padding)
            grad_x = grad_scaled * scale_in[:, :, None, None] if want_x else None
            grad_in = (grad_scaled * x).sum((2, 3)) if want_in else None
        return grad_x, None, grad_in, grad_out, grad_bias, None


def transform_weight(weight: torch.Tensor) -> torch.Tensor:
    """[O, I, 3, 3] or per sample [N, O, I, 3, 3] -> [N, 36, O, I] (N = 1 for a shared weight)."""
    if weight.ndim == 4:
        weight = weight.unsqueeze(0)
    n, o, i = weight.shape[:3]
    return torch.matmul(_G2.to(weight), weight.reshape(n, o * i, 9).transpose(1, 2)).view(n, TAPS * TAPS, o, i)


def conv3x3(
    x: torch.Tensor,                    # [N, I, H, W]
    u: torch.Tensor,                    # [N or 1, 36, O, I] from transform_weight
    bias: torch.Tensor | None = None,   # [O]
    padding: int = 1,                   # zeros on every side
) -> torch.Tensor:                      # [N, O, H + 2p - 2, W + 2p - 2], channels-last
    n, _, h, w = x.shape
    out_h, out_w = h + 2 * padding - 2, w + 2 * padding - 2
    tiles_h, tiles_w = -(-out_h // TILE), -(-out_w // TILE)
    # `out=` writes save a copy in eager mode, but autograd cannot record them and the compiler drops their layout.
    functional = torch.compiler.is_compiling() or (
        torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, u, bias)))

    # Input tiles: 6x6 windows at stride 4 over the padded input, transformed by B^T d B one axis at a time.
    nhwc = x.permute(0, 2, 3, 1)
    extra_h, extra_w = TILE * tiles_h - out_h, TILE * tiles_w - out_w
    padded = F.pad(nhwc, [0, 0, padding, padding + extra_w, padding, padding + extra_h]).contiguous()
    windows = padded.unfold(1, TAPS, TILE).permute(0, 1, 4, 2, 3)  # [N, th, 6, Wp, I], overlapping rows
    rows = torch.matmul(_BT.to(x), windows.reshape(n, tiles_h, TAPS, -1)).view(n, tiles_h, TAPS, *padded.shape[2:])
    rows = rows.unbind(2)  # 6 x [N, th, Wp, I]
    if functional:
        v = torch.stack([t for r in rows for t in _transform_input(_column_taps(r, tiles_w))])
    else:
        v = x.new_empty(TAPS * TAPS, n, tiles_h, tiles_w, x.shape[1])
        for i, r in enumerate(rows):
            _transform_input(_column_taps(r, tiles_w), out=v[TAPS * i:TAPS * (i + 1)].unbind(0))
    v = v.view(TAPS * TAPS, n * tiles_h * tiles_w, -1)  # [36, N*T, I]

    # The 36 GEMMs: one per product position, each over all tiles of the batch (or per sample with its own weight).
    if u.shape[0] == 1:
        m = torch.matmul(v, u[0].transpose(-1, -2))  # [36, N*T, O]
    else:
        per_sample = v.view(TAPS * TAPS, n, tiles_h * tiles_w, -1).transpose(0, 1)  # [N, 36, T, I]
        m = torch.matmul(per_sample, u.transpose(-1, -2)).transpose(0, 1)
    out_channels = m.shape[-1]
    # Output transform as one GEMM over the 36 products of each tile, then the tiles' 4x4 outputs are written in
    # place (bias added, the overhang of the last tiles dropped) in one pass.
    y = torch.matmul(_AT2.to(m), m.reshape(TAPS * TAPS, -1)).view(TILE, TILE, n, tiles_h, tiles_w, out_channels)
    y = y.permute(2, 3, 0, 4, 1, 5)  # [N, th, 4, tw, 4, O]
    if functional:
        y = y.reshape(n, TILE * tiles_h, TILE * tiles_w, out_channels)[:, :out_h, :out_w]
        y = (y + bias if bias is not None else y).contiguous()
    else:
        y = _write_tiles(y, x.new_empty(n, out_h, out_w, out_channels), bias)
    return y.permute(0, 3, 1, 2)


def _write_tiles(tiles: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Copies [N, th, 4, tw, 4, O] tile outputs into out [N, H, W, O] (+ bias); the last tiles may overhang."""
    full_h, rest_h = divmod(out.shape[1], TILE)
    full_w, rest_w = divmod(out.shape[2], TILE)
    for t0, t1, rows in ((0, full_h, TILE), (full_h, full_h + 1, rest_h)):
        for s0, s1, cols in ((0, full_w, TILE), (full_w, full_w + 1, rest_w)):
            if t1 == t0 or s1 == s0 or rows == 0 or cols == 0:
                continue
            src = tiles[:, t0:t1, :rows, s0:s1, :cols]
            dst = out[:, TILE * t0:TILE * t0 + (t1 - t0) * rows, TILE * s0:TILE * s0 + (s1 - s0) * cols]
            dst = dst.view(out.shape[0], t1 - t0, rows, s1 - s0, cols, out.shape[3])
            if bias is not None:
                torch.add(src, bias, out=dst)
            else:
                dst.copy_(src)
    return out


def _column_taps(rows: torch.Tensor, tiles_w: int) -> list[torch.Tensor]:
    """The 6 taps of every tile along the width: 6 x [N, th, tw, I] strided views."""
    return [rows[:, :, k:k + TILE * tiles_w:TILE] for k in range(TAPS)]


def _transform_input(d: list[torch.Tensor], out: tuple[torch.Tensor, ...] | None = None) -> list[torch.Tensor]:
    """B^T applied along one axis, 6 taps to 6 values, in 12 passes with the usual shared terms:
    (4d0 - 5d2 + d4, -4d1 - 4d2 + d3 + d4, 4d1 - 4d2 - d3 + d4, -2d1 - d2 + 2d3 + d4, 2d1 - d2 - 2d3 + d4,
    4d1 - 5d3 + d5)."""
    def into(k: int) -> dict:
        return {} if out is None else {"out": out[k]}

    a = torch.add(d[4], d[2], alpha=-4)     # d4 - 4 d2
    b = torch.add(d[3], d[1], alpha=-4)     # d3 - 4 d1
    c = d[4] - d[2]
    e = d[3] - d[1]
    t0 = torch.add(d[4], d[0], alpha=4, **into(0))
    t0.add_(d[2], alpha=-5)
    t1 = torch.add(a, b, **into(1))
    t2 = torch.sub(a, b, **into(2))
    t3 = torch.add(c, e, alpha=2, **into(3))
    t4 = torch.add(c, e, alpha=-2, **into(4))
    t5 = torch.add(d[5], d[1], alpha=4, **into(5))
    t5.add_(d[3], alpha=-5)
    return [t0, t1, t2, t3, t4, t5]
