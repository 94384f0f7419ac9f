"""Measurements behind `vj bench` and `scripts/bench_*.py`: each returns plain dicts of figures, never asserts.

Timings are wall-clock medians after warm-up; on CUDA they are taken between synchronisations (not inside the
measured work), so they include everything a frame pays for.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vj.cpu_memory import keep_freed_memory

# Architectures as `train.py --cfg` builds them: T with cbase 32768 / cmax 512; R doubles both and uses 1x1 convs
# with radial filters. "published-256" is the FFHQ-U 256x256 checkpoints' --cbase=16384.
ARCHS: dict[str, dict] = {
    "T": dict(channel_base=32768, channel_max=512),
    "R": dict(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True),
    "T-published-256": dict(channel_base=16384, channel_max=512),
    "R-published-256": dict(channel_base=32768, channel_max=1024, conv_kernel=1, use_radial_filters=True),
}


def machine() -> dict:
    info = {"glibc_keeps_freed_memory": keep_freed_memory(), "python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or
            platform.machine(), "threads": torch.get_num_threads(), "date": datetime.now(timezone.utc).isoformat()}
    if torch.cuda.is_available():
        info["cuda"] = torch.cuda.get_device_name(0)
    return info


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1, cuda: bool = False) -> dict:
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return {"ms_median": round(statistics.median(times), 2), "ms_min": round(min(times), 2), "runs": repeats}


def generator(arch: str, resolution: int, device: str = "cpu", dtype: str = "fp32", compiled: bool = False,
              repeats: int = 3) -> dict:
    """Synthesis ms/frame at batch 1 with random weights."""
    from vj.models.stylegan3 import Generator

    torch.manual_seed(0)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                  mapping_kwargs={"num_layers": 2}, **ARCHS[arch]).eval().requires_grad_(False).to(device)
    if dtype == "bf16":
        G.half_dtype = torch.bfloat16
    ws = G.mapping(torch.randn(1, 512, device=device), None)
    synthesis = torch.compile(G.synthesis, fullgraph=True) if compiled else G.synthesis
    force_fp32 = dtype == "fp32"
    with torch.no_grad():
        result = timed(lambda: synthesis(ws, force_fp32=force_fp32), repeats, cuda=device.startswith("cuda"))
    params = sum(p.numel() for p in G.synthesis.parameters())
    return {"what": "synthesis", "arch": arch, "resolution": resolution, "device": device, "dtype": dtype,
            "compiled": compiled, "batch": 1, "params_M": round(params / 1e6, 2), **result}


def guidance(resolution: int = 256, cutouts: int = 8, generator_arch: str = "T", clip: str = "tiny",
             device: str = "cpu", repeats: int = 3, precision: str = "fp32", compile: str = "off") -> dict:
    """Guided steps per second (forward through G and CLIP, backward, update) with random weights."""
    from vj.config import OptimizerConfig
    from vj.cues.prompts import WeightedPrompt
    from vj.engine.optimizer import LatentOptimizer
    from vj.models.clip import load_clip
    from vj.models.stylegan3 import Generator

    torch.manual_seed(0)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                  mapping_kwargs={"num_layers": 2}, **ARCHS[generator_arch]).eval().requires_grad_(False).to(device)
    if precision == "bf16":
        G.half_dtype = torch.bfloat16
    # Random weights for a named architecture: open_clip builds it without downloading anything.
    guide = load_clip(clip if clip == "tiny" else f"{clip}/random", device, precision)
    optimizer = LatentOptimizer(G, guide, OptimizerConfig(cutouts=cutouts, compile=compile))
    optimizer.set_prompts([WeightedPrompt("a neon city at night")])
    result = timed(lambda: optimizer.step(), repeats, cuda=device.startswith("cuda"))
    return {"what": "guided step", "generator": f"{generator_arch} @ {resolution}", "clip": clip, "cutouts": cutouts,
            "device": device, "precision": precision, "compiled": optimizer.compiled, **result,
            "steps_per_s": round(1000 / result["ms_median"], 2)}


def compositor(width: int, height: int, frame_size: int = 512, repeats: int = 20) -> dict:
    """Effect chain ms/frame and CPU upload ms/frame on the headless EGL context."""
    from vj.render.compositor import EFFECTS, Compositor, EffectInputs, headless_context

    ctx = headless_context()
    comp = Compositor(ctx, width, height, list(EFFECTS))
    frame = np.random.default_rng(0).integers(0, 255, (frame_size, frame_size, 3), dtype=np.uint8)
    comp.upload(frame)

    def chain() -> None:
        comp.render(EffectInputs(time=1.0, onset=0.5))
        ctx.finish()

    def upload() -> None:
        comp.upload(frame)
        ctx.finish()

    out = {"what": "compositor", "renderer": ctx.info["GL_RENDERER"], "size": f"{width}x{height}",
           "effects": len(EFFECTS), "chain": timed(chain, repeats), "upload_cpu": timed(upload, repeats)}
    comp.release()
    ctx.release()
    return out


def quick(what: str = "all", out: str | None = None) -> dict:
    """A short run of each measurement (what `vj bench` prints)."""
    results: dict = {"machine": machine(), "results": []}
    if what in ("all", "generator"):
        results["results"].append(generator("T-published-256", 256, repeats=2))
    if what in ("all", "guidance"):
        results["results"].append(guidance(resolution=256, cutouts=8, generator_arch="T-published-256", repeats=2))
    if what in ("all", "compositor"):
        results["results"].append(compositor(1024, 1024, repeats=5))
    if out:
        write_json(results, out)
    return results


def write_json(data: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1))
