"""StyleGAN3 generator (alias-free GAN) in plain PyTorch, with the NVlabs reference's names and calls.

A reference state dict loads with `strict=True`, `G.mapping(z, c, truncation_psi=...)`, `G.synthesis(ws)` and
`G(z, c)` behave as the reference's, so code written against it ports by changing one import. Differences, all
for speed or for the live engine:
- no custom CUDA extensions: the filtered leaky ReLU is `filtered_ops.filtered_lrelu` (polyphase, separable);
- 3x3 modulated convolutions on the CPU run as Winograd F(4x4, 3x3) with the modulation folded into the
  transformed weights (`winograd.py`); elsewhere modulation scales activations instead of building one weight
  per sample, so a batch runs as one plain conv;
- precision is chosen inside each layer (`Generator.set_precision`): "auto" is the reference's (fp16 in the
  `use_fp16` layers on CUDA, fp32 elsewhere); "fp16" / "bf16" run those layers in that type on any device (the
  CPU tests reach the half-precision branches this way); "fp32" everywhere;
- the input transform can be passed per call (`G.synthesis(ws, transform=M)`, M [3, 3] or [N, 3, 3]), so the
  engine animates rotation/translation without touching module state;
- no data-dependent Python branches in forward: `torch.compile(fullgraph=True)` works.
"""

from __future__ import annotations

import math
import typing
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from vj.models import winograd
from vj.models.filtered_ops import Impl, filtered_lrelu

Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
HALF_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class FullyConnectedLayer(torch.nn.Module):
    def __init__(
        self,
        in_features: int,               # input width
        out_features: int,              # output width
        activation: str = "linear",     # "linear" or "lrelu"
        bias: bool = True,              # add a bias before the activation
        lr_multiplier: float = 1.0,     # equalised learning-rate multiplier (scales weights at run time)
        weight_init: float = 1.0,       # initial std of the weights
        bias_init: float | list[float] = 0.0,  # initial bias, scalar or per output
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        bias_value = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
        self.bias = torch.nn.Parameter(torch.from_numpy(bias_value / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, in] -> [N, out]
        w = self.weight.to(x.dtype) * self.weight_gain
        if self.bias is None:
            x = x.matmul(w.t())
        else:
            b = self.bias.to(x.dtype) * self.bias_gain
            x = torch.addmm(b.unsqueeze(0), x, w.t())
        if self.activation == "lrelu":
            x = F.leaky_relu(x, 0.2) * math.sqrt(2)
        return x

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(1, keepdim=True) + eps).rsqrt()


class MappingNetwork(torch.nn.Module):
    def __init__(
        self,
        z_dim: int,                     # input latent (Z) width
        c_dim: int,                     # conditioning label width, 0 = unconditional
        w_dim: int,                     # intermediate latent (W) width
        num_ws: int,                    # how many W vectors to broadcast to (one per synthesis input)
        num_layers: int = 2,            # mapping layers
        lr_multiplier: float = 0.01,    # learning-rate multiplier of the mapping layers
        w_avg_beta: float = 0.998,      # decay of the running mean of W (training only)
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        self.embed = FullyConnectedLayer(c_dim, w_dim) if c_dim > 0 else None
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor,                # [N, z_dim]
        c: torch.Tensor | None,         # [N, c_dim] or None
        truncation_psi: float = 1.0,    # 1 = no truncation, 0 = always w_avg
        truncation_cutoff: int | None = None,  # truncate only the first N ws (None = all)
        update_emas: bool = False,      # update w_avg (training only)
    ) -> torch.Tensor:                  # [N, num_ws, w_dim]
        x = _normalize_2nd_moment(z.to(torch.float32))
        if self.embed is not None:
            if c is None:
                raise ValueError(f"this generator is conditional: pass c with shape [N, {self.c_dim}]")
            y = _normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_emas:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            head = self.w_avg.lerp(x[:, :cutoff], truncation_psi)
            x = torch.cat([head, x[:, cutoff:]], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


class SynthesisInput(torch.nn.Module):
    """Fourier features at the first layer's rate, rotated/translated by the first W and the user transform."""

    def __init__(
        self,
        w_dim: int,                     # intermediate latent width
        channels: int,                  # output channels (= number of frequencies)
        size: int,                      # output size in pixels (square)
        sampling_rate: float,           # output sampling rate
        bandwidth: float,               # cutoff of the drawn frequencies
    ):
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        # Python floats: numpy scalars used in forward become tensors under torch.compile and break its guards.
        self.sampling_rate = float(sampling_rate)
        self.bandwidth = float(bandwidth)

        # Frequencies drawn from a disc of radius `bandwidth` (overwritten when weights load).
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        phases = torch.rand([channels]) - 0.5

        self.weight = torch.nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))  # user inverse transform of the image
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)
        self.register_buffer("grid", torch.empty(0), persistent=False)
        self.resize(size)

    def resize(self, size: int | tuple[int, int]) -> None:
        """Samples the features over `size` = (width, height) pixels at the same rate: a bigger grid is a wider view
        of the same features, not a stretched one. The grid depends only on the size and is not in the state dict."""
        self.size = np.broadcast_to(np.asarray(size), [2])
        theta = torch.tensor([[0.5 * self.size[0] / self.sampling_rate, 0, 0],
                              [0, 0.5 * self.size[1] / self.sampling_rate, 0]], dtype=torch.float32)
        grid = F.affine_grid(theta.unsqueeze(0), [1, 1, int(self.size[1]), int(self.size[0])], align_corners=False)
        self.grid = grid.to(self.freqs.device)  # [1, H, W, 2]

    def forward(self, w: torch.Tensor, transform: torch.Tensor | None = None) -> torch.Tensor:
        """w [N, w_dim], transform [3, 3] or [N, 3, 3] (None = the buffer) -> [N, C, H, W]."""
        batch = w.shape[0]
        user = self.transform if transform is None else transform.to(torch.float32)
        user = user.expand(batch, 3, 3)

        t = self.affine(w)  # (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        cos, sin, tx, ty = t.unbind(1)
        zero, one = torch.zeros_like(cos), torch.ones_like(cos)
        m_r = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], 1).reshape(batch, 3, 3)
        m_t = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], 1).reshape(batch, 3, 3)
        transforms = m_r @ m_t @ user  # rotate the image, then translate, then the user transform

        freqs = self.freqs.unsqueeze(0)  # [1, C, 2]
        phases = self.phases.unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = freqs @ transforms[:, :2, :2]  # [N, C, 2]
        # Fade out frequencies that the user transform pushed beyond the band.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        x = (self.grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [N, H, W, C]
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (np.pi * 2)) * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)  # [N, C, H, W], channels-last in memory

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={list(self.size)}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False) -> torch.Tensor | None:
    """Kaiser-windowed low-pass: separable sinc [numtaps], or radially symmetric jinc [numtaps, numtaps]."""
    import scipy.signal
    import scipy.special

    if numtaps == 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs), dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f *= np.outer(window, window)
    f /= np.sum(f)
    return torch.as_tensor(f, dtype=torch.float32)


class SynthesisLayer(torch.nn.Module):
    def __init__(
        self,
        w_dim: int,                     # intermediate latent width
        is_torgb: bool,                 # the final ToRGB layer (1x1, linear, no resampling)
        is_critically_sampled: bool,    # cutoff at Nyquist (the last layers)
        use_fp16: bool,                 # may run in half precision (see `precision`)
        in_channels: int,
        out_channels: int,
        in_size: int,                   # input size in pixels, margin included
        out_size: int,                  # output size in pixels, margin included
        in_sampling_rate: int,          # s of the input
        out_sampling_rate: int,         # s of the output
        in_cutoff: float,               # f_c of the input
        out_cutoff: float,              # f_c of the output
        in_half_width: float,           # f_h of the input transition band
        out_half_width: float,          # f_h of the output transition band
        conv_kernel: int = 3,           # conv size (1 for StyleGAN3-R); ToRGB is always 1
        filter_size: int = 6,           # low-pass taps relative to the lower rate
        lrelu_upsampling: int = 2,      # how much faster than the output rate the lrelu runs
        use_radial_filters: bool = False,  # radially symmetric down filter (R), not for critical layers
        conv_clamp: float | None = 256, # clamp pre-filter activations to [-X, X] (protects fp16)
        magnitude_ema_beta: float = 0.999,  # decay of the input magnitude average (training only)
    ):
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.in_sampling_rate = in_sampling_rate
        self.out_sampling_rate = out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff = in_cutoff
        self.out_cutoff = out_cutoff
        self.in_half_width = in_half_width
        self.out_half_width = out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta
        self.precision: Precision = "auto"  # what use_fp16 means; Generator.set_precision sets it

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        self.up_factor = int(np.rint(self.tmp_sampling_rate / in_sampling_rate))
        assert in_sampling_rate * self.up_factor == self.tmp_sampling_rate
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.register_buffer("up_filter", design_lowpass_filter(
            numtaps=self.up_taps, cutoff=in_cutoff, width=in_half_width * 2, fs=self.tmp_sampling_rate))

        self.down_factor = int(np.rint(self.tmp_sampling_rate / out_sampling_rate))
        assert out_sampling_rate * self.down_factor == self.tmp_sampling_rate
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer("down_filter", design_lowpass_filter(
            numtaps=self.down_taps, cutoff=out_cutoff, width=out_half_width * 2, fs=self.tmp_sampling_rate,
            radial=self.down_radial))

        self.resize(in_size, out_size)
        self.impl: Impl = "fast"

    def resize(self, in_size: int | tuple[int, int], out_size: int | tuple[int, int]) -> None:
        """Sizes (width, height) in pixels, margins included; the padding follows them. The weights do not change:
        the layer works alike on any size."""
        self.in_size = np.broadcast_to(np.asarray(in_size), [2])
        self.out_size = np.broadcast_to(np.asarray(out_size), [2])
        # Padding so that output samples sit where the symmetric interpretation puts them (paper, App. C.3).
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])]

    def forward(
        self,
        x: torch.Tensor,                # [N, in_channels, in_size, in_size]
        w: torch.Tensor,                # [N, w_dim]
        noise_mode: str = "random",     # accepted for compatibility; StyleGAN3 has no noise
        force_fp32: bool = False,       # run in fp32 even where use_fp16
        update_emas: bool = False,      # update magnitude_ema (training only)
    ) -> torch.Tensor:                  # [N, out_channels, out_size, out_size]
        if update_emas:
            with torch.no_grad():
                magnitude = x.detach().to(torch.float32).square().mean()
                self.magnitude_ema.copy_(magnitude.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()

        styles = self.affine(w)  # [N, I]
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel ** 2))
        dtype = torch.float32 if force_fp32 else self.compute_dtype(x.device)
        x = modulated_conv2d(x.to(dtype), self.weight, styles, demodulate=not self.is_torgb,
                             padding=self.conv_kernel - 1, input_gain=input_gain, bias=self.bias)
        return filtered_lrelu(
            x, self.up_filter, self.down_filter, None, up=self.up_factor, down=self.down_factor,
            padding=self.padding, gain=1 if self.is_torgb else math.sqrt(2), slope=1 if self.is_torgb else 0.2,
            clamp=self.conv_clamp, impl=self.impl)

    def compute_dtype(self, device: torch.device) -> torch.dtype:
        """The type this layer's convolution and filters run in on `device`."""
        if not self.use_fp16 or self.precision == "fp32":
            return torch.float32
        if self.precision == "auto":
            return torch.float16 if device.type == "cuda" else torch.float32
        return HALF_DTYPES[self.precision]

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, is_torgb={self.is_torgb}, is_critically_sampled={self.is_critically_sampled}, "
                f"use_fp16={self.use_fp16}, in_size={list(self.in_size)}, out_size={list(self.out_size)}, "
                f"in_channels={self.in_channels}, out_channels={self.out_channels}")


def modulated_conv2d(
    x: torch.Tensor,                    # [N, I, H, W]
    weight: torch.Tensor,               # [O, I, k, k]
    styles: torch.Tensor,               # [N, I]
    demodulate: bool = True,            # normalise each output channel to unit variance
    padding: int = 0,
    input_gain: torch.Tensor | None = None,  # scalar or [I] scale of the inputs
    bias: torch.Tensor | None = None,   # [O], added to the output
) -> torch.Tensor:                      # [N, O, H', W']
    """Modulated convolution as the reference defines it, plus the layer's bias.

    3x3 on the CPU: Winograd (`winograd.py`) with modulation and demodulation folded into its transformed
    per-sample weights. Elsewhere (CUDA, 1x1, while compiling): the input is scaled by the style and the
    output by the demodulation coefficient, which equals convolving with a per-sample modulated weight but keeps
    one weight for the whole batch: one plain conv instead of a grouped one. The style normalisation uses the mean
    over the whole batch, as the reference's does.
    """
    scale_in = styles if input_gain is None else styles * input_gain  # [N, I]
    scale_out = None                                                    # [N, O]
    if demodulate:
        # The reference normalises the weight, modulates it, then normalises each output channel again. All three
        # are per-channel scales, so they are computed from the squared weight once and applied as two vectors.
        weight_sq = weight.square().sum([2, 3])                         # [O, I]
        weight_gain = (weight_sq.mean(1) / (weight.shape[2] * weight.shape[3])).rsqrt()  # [O]
        style_gain = styles.square().mean().rsqrt()
        scale_in = scale_in * style_gain
        dcoefs = ((styles * style_gain).square() @ (weight_sq * weight_gain[:, None].square()).t() + 1e-8).rsqrt()
        scale_out = dcoefs * weight_gain
    if winograd.suits(x, weight):
        return winograd.modulated_conv3x3(x, weight, scale_in, scale_out, bias, padding)
    if scale_out is not None and x.dtype == torch.float16:
        # Before demodulation the conv's outputs are ~sqrt(fan-in) times its inputs, which can pass fp16's 65504
        # (activations are clamped at 256 only after the conv). A factor shared by the batch moves to the weight.
        fan_in_gain = (weight_gain * (weight[0].numel() ** -0.5))[:, None, None, None]  # [O, 1, 1, 1]
        weight, scale_out = weight * fan_in_gain, dcoefs * weight[0].numel() ** 0.5
    x = x * scale_in.to(x.dtype).reshape(*scale_in.shape, 1, 1)
    x = F.conv2d(x, weight.to(x.dtype), padding=padding)
    bias = None if bias is None else bias.to(x.dtype).reshape(1, -1, 1, 1)
    if scale_out is not None:
        scale_out = scale_out.to(x.dtype).reshape(*scale_out.shape, 1, 1)
        return x * scale_out if bias is None else torch.addcmul(bias, x, scale_out)
    return x if bias is None else x + bias


class SynthesisNetwork(torch.nn.Module):
    def __init__(
        self,
        w_dim: int,                     # intermediate latent width
        img_resolution: int,            # output resolution
        img_channels: int,              # output colour channels
        channel_base: int = 32768,      # overall channel multiplier
        channel_max: int = 512,         # most channels in any layer
        num_layers: int = 14,           # layers, excluding the Fourier input and ToRGB
        num_critical: int = 2,          # critically sampled layers at the end
        first_cutoff: float = 2,        # f_c of the first layer
        first_stopband: float = 2 ** 2.1,  # f_t of the first layer
        last_stopband_rel: float = 2 ** 0.3,  # f_t of the last layer relative to its cutoff
        margin_size: int = 10,          # extra pixels around the image
        output_scale: float = 0.25,     # scale of the output image
        num_fp16_res: int = 4,          # half precision for the N highest resolutions
        **layer_kwargs: Any,            # SynthesisLayer arguments
    ):
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res

        # Cutoffs and stopbands progress geometrically up to the critically sampled tail.
        last_cutoff = img_resolution / 2
        last_stopband = last_cutoff * last_stopband_rel
        exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
        stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
        sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
        half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
        self.sampling_rates = sampling_rates  # per layer, input first
        sizes = sampling_rates + margin_size * 2
        sizes[-2:] = img_resolution
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels

        self.input = SynthesisInput(w_dim=w_dim, channels=int(channels[0]), size=int(sizes[0]),
                                    sampling_rate=sampling_rates[0], bandwidth=cutoffs[0])
        self.layer_names: list[str] = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim, is_torgb=idx == num_layers, is_critically_sampled=idx >= num_layers - num_critical,
                use_fp16=bool(sampling_rates[idx] * 2 ** num_fp16_res > img_resolution),
                in_channels=int(channels[prev]), out_channels=int(channels[idx]),
                in_size=int(sizes[prev]), out_size=int(sizes[idx]),
                in_sampling_rate=int(sampling_rates[prev]), out_sampling_rate=int(sampling_rates[idx]),
                in_cutoff=cutoffs[prev], out_cutoff=cutoffs[idx],
                in_half_width=half_widths[prev], out_half_width=half_widths[idx],
                **layer_kwargs)
            name = f"L{idx}_{layer.out_size[0]}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

        self.image_size = (img_resolution, img_resolution)  # (width, height) of the output: set_aspect widens it
        self._crop = (0, 0)  # pixels cut from each side (left/right, top/bottom) to reach image_size

    def set_aspect(self, aspect: float) -> tuple[int, int]:
        """Renders a wider (aspect > 1) or taller (< 1) view of the same world: the Fourier-feature grid and every
        layer grow on one axis, at their own sampling rates, so the picture's scale stays as trained (translation
        equivariance makes the new area as good as the old, for T and R alike). The longer side becomes
        img_resolution x aspect (rounded to even pixels); aspect 1 is the checkpoint's own square. Each layer grows
        by an even number of samples, so the centre's samples sit where the square network puts them; the network
        renders up to a few samples more and the output is cropped to size. Returns (width, height)."""
        res = self.img_resolution
        long_side = max(2, 2 * round(res * max(aspect, 1 / aspect) / 2))
        extra_first = 2 * math.ceil((long_side - res) * self.sampling_rates[0] / res / 2)  # even, at the input's rate
        grow = extra_first / self.sampling_rates[0]  # extra world width per unit of sampling rate
        wide = aspect >= 1

        def size(rate: float, base: float) -> tuple[int, int]:
            grown = int(round(base + rate * grow))
            return (grown, int(base)) if wide else (int(base), grown)

        sizes = [size(rate, rate + self.margin_size * 2) for rate in self.sampling_rates]
        sizes[-2:] = [size(res, res)] * 2
        self.input.resize(sizes[0])
        for idx, name in enumerate(self.layer_names):
            getattr(self, name).resize(sizes[max(idx - 1, 0)], sizes[idx])
        crop = (sizes[-1][0 if wide else 1] - long_side) // 2
        self._crop = (crop, 0) if wide else (0, crop)
        self.image_size = (long_side, res) if wide else (res, long_side)
        return self.image_size

    def forward(
        self,
        ws: torch.Tensor,               # [N, num_ws, w_dim]
        transform: torch.Tensor | None = None,  # [3, 3] or [N, 3, 3] inverse image transform; None = buffer
        **layer_kwargs: Any,            # noise_mode, force_fp32, update_emas
    ) -> torch.Tensor:                  # [N, img_channels, height, width] (image_size), float32
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws_list = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws_list[0], transform)
        for name, w in zip(self.layer_names, ws_list[1:]):
            x = getattr(self, name)(x, w, **layer_kwargs)
        if self.output_scale != 1:
            x = x * self.output_scale
        crop_x, crop_y = self._crop
        if crop_x or crop_y:
            x = x[:, :, crop_y:x.shape[2] - crop_y, crop_x:x.shape[3] - crop_x]
        return x.to(torch.float32).contiguous()

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, num_layers={self.num_layers}, num_critical={self.num_critical}")


class Generator(torch.nn.Module):
    def __init__(
        self,
        z_dim: int,                     # input latent (Z) width
        c_dim: int,                     # conditioning label width, 0 = unconditional
        w_dim: int,                     # intermediate latent (W) width
        img_resolution: int,            # output resolution
        img_channels: int,              # output colour channels
        mapping_kwargs: dict | None = None,  # MappingNetwork arguments
        **synthesis_kwargs: Any,        # SynthesisNetwork (and SynthesisLayer) arguments
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs or {}), **synthesis_kwargs)
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **(mapping_kwargs or {}))

    @property
    def precision(self) -> Precision:
        return self._layers()[0].precision

    def set_precision(self, precision: Precision) -> "Generator":
        """What the `use_fp16` layers run in: "auto" (fp16 on CUDA, fp32 elsewhere, as the reference), "fp32", or
        "fp16" / "bf16" on any device."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        for layer in self._layers():
            layer.precision = precision
        return self

    def compute_dtype(self, device: torch.device) -> torch.dtype:
        """The half type the `use_fp16` layers run in on `device` (float32 if none does)."""
        dtypes = {layer.compute_dtype(device) for layer in self._layers()} - {torch.float32}
        return dtypes.pop() if dtypes else torch.float32

    def _layers(self) -> list[SynthesisLayer]:
        return [m for m in self.modules() if isinstance(m, SynthesisLayer)]

    def set_impl(self, impl: Impl) -> None:
        """Choose the filtered-lrelu implementation of every layer (filtered_ops.IMPLS; "fast" picks the device's)."""
        for layer in self._layers():
            layer.impl = impl

    def forward(
        self,
        z: torch.Tensor,                # [N, z_dim]
        c: torch.Tensor | None,         # [N, c_dim] or None
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
        **synthesis_kwargs: Any,        # transform, noise_mode, force_fp32
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
