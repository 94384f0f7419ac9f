"""`vj models sample`: one PNG per seed, following the reference `gen_images.py` conventions exactly.

z = RandomState(seed).randn(1, z_dim); the transform is the reference's `make_transform(translate, angle)`,
inverted; pixels are (img * 127.5 + 128).clamp(0, 255). So these PNGs can be compared with the reference's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vj.models.checkpoints import load_generator
from vj.models.stylegan3 import Generator


def make_transform(translate: tuple[float, float], angle_deg: float) -> np.ndarray:
    """The reference's image transform (rotate, then translate) as a 3x3 matrix, before inversion."""
    s, c = np.sin(np.radians(angle_deg)), np.cos(np.radians(angle_deg))
    return np.array([[c, s, translate[0]], [-s, c, translate[1]], [0, 0, 1]], dtype=np.float64)


def sample(G: Generator, seed: int, psi: float = 0.7, translate: tuple[float, float] = (0.0, 0.0),
           rotate: float = 0.0) -> np.ndarray:
    """[H, W, 3] uint8 image for one seed."""
    device = G.mapping.w_avg.device
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).to(device)
    c = torch.zeros([1, G.c_dim], device=device) if G.c_dim else None
    transform = torch.from_numpy(np.linalg.inv(make_transform(translate, rotate))).float().to(device)
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=psi)
        img = G.synthesis(ws, transform=transform, noise_mode="const")
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].cpu().numpy()


def sample_images(checkpoint: str | Path, seeds: list[int], out_dir: str | Path, psi: float = 0.7,
                  translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0) -> list[Path]:
    G = load_generator(checkpoint)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        path = out_dir / f"seed{seed:04d}.png"
        Image.fromarray(sample(G, seed, psi, translate, rotate), "RGB").save(path)
        paths.append(path)
    return paths
