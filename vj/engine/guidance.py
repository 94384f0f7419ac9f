"""Guidance: random cutouts of the generated image and the weighted spherical-distance loss against prompts.

Cutouts are one `grid_sample` with a random affine per crop, so every step has the same shapes whatever the
crop sizes (static shapes for CUDA graphs / torch.compile). Sizes follow the `cut_pow` distribution of the
CLIP-guided notebooks: size = min + (max - min) * u ** cut_pow, u uniform; a random horizontal flip and a little
noise are the cheap augmentations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def make_cutouts(
    images: torch.Tensor,               # [B, 3, H, W] in 0..1
    size: int,                          # output side in pixels (CLIP input size)
    cut_pow: float,                     # >1 favours small crops
    uniforms: torch.Tensor,             # [B * cutouts, 4] uniform 0..1 draws: size, x, y, flip
    noise: torch.Tensor | None = None,  # [B * cutouts, 3, size, size] added as is (already scaled), or None
    min_frac: float = 0.25,             # smallest crop as a fraction of the image's shorter side
) -> torch.Tensor:                      # [B * cutouts, 3, size, size] float32
    """Random crops as one grid_sample. The random numbers come in as tensors, drawn by the caller into
    preallocated buffers, so this function is pure: same shapes every step, nothing to sync, graph-capturable."""
    n = uniforms.shape[0]
    cutouts = n // images.shape[0]
    height, width = images.shape[2:]
    side = min_frac + (1.0 - min_frac) * uniforms[:, 0].pow(cut_pow)  # crop side / the image's shorter side
    # Square crops in pixels anywhere over the image, wide or tall (grid coordinates span each axis as 2).
    scale_x, scale_y = side * (min(width, height) / width), side * (min(width, height) / height)
    offset_x = (uniforms[:, 1] * 2 - 1) * (1 - scale_x)                # keep the crop inside the image
    offset_y = (uniforms[:, 2] * 2 - 1) * (1 - scale_y)
    flip = torch.where(uniforms[:, 3] < 0.5, -1.0, 1.0)
    zero = torch.zeros_like(side)
    theta = torch.stack([scale_x * flip, zero, offset_x, zero, scale_y, offset_y], 1).reshape(n, 2, 3)
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    # Sampled in float32 whatever the image's type: a grid rounded to bf16 misplaces a crop by up to half a pixel
    # at width 512, and grid_sample wants one type for both. The cutouts' encoder casts them to its own.
    source = images.float()
    # One image (the engine's batch) is sampled by every cutout without copying it once per cutout.
    source = source.expand(n, -1, -1, -1) if images.shape[0] == 1 else source.repeat_interleave(cutouts, dim=0)
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out if noise is None else out + noise


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between unit vectors, broadcast over leading dims (0 = same, ~2.47 = opposite)."""
    return (a - b).norm(dim=-1).div(2).clamp(max=1).arcsin().pow(2).mul(2)


def prompt_loss(
    image_embeds: torch.Tensor,         # [N, D] unit-norm (cutouts)
    text_embeds: torch.Tensor,          # [P, D] unit-norm (prompt slots)
    weights: torch.Tensor,              # [P] mix weights; 0 for unused slots, negative pushes away
) -> tuple[torch.Tensor, torch.Tensor]:  # (weighted loss [], per-prompt distance [P])
    per_prompt = spherical_distance(image_embeds.unsqueeze(1), text_embeds.unsqueeze(0)).mean(0)
    return (per_prompt * weights).sum(), per_prompt
