"""Turns the [model] config into ready networks on a device: generator and CLIP, with the offline fallback.

`model.generator` is a known name (downloaded into the cache), a checkpoint URL (the same, cached by URL), a local
path, or "tiny". With no cached weights and no network, `offline_fallback` runs tiny random-initialised networks
instead and says so in a warning, naming the checkpoint and how to get it. Tests ask for "tiny" directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vj.config import ModelConfig
from vj.cpu_memory import keep_freed_memory
from vj.errors import UserError
from vj.models import registry
from vj.models.checkpoints import CheckpointError, load_generator
from vj.models.clip import TINY, ClipGuide, ClipLoadError, load_clip
from vj.models.stylegan3 import PRECISIONS, Generator

log = logging.getLogger(__name__)

# A small StyleGAN3-T: 64x64, a few hundred thousand parameters; runs a guided step in well under a second on CPU.
TINY_GENERATOR = dict(z_dim=64, c_dim=0, w_dim=64, img_resolution=64, img_channels=3,
                      mapping_kwargs=dict(num_layers=2), channel_base=1024, channel_max=32, num_layers=6)


class ModelError(UserError):
    """Networks that cannot be had, with the reason and what to do."""


@dataclass
class Models:
    G: Generator
    clip: ClipGuide
    device: torch.device
    notes: list[str] = field(default_factory=list)  # what fell back, in words for the user


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"model.device = {name!r} but no CUDA device is available (try \"auto\" or \"cpu\")")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """"auto": bf16 on a CUDA device that has it (fp32's range, so no gradient underflows), fp16 on older ones
    (the optimizer then scales its loss), fp32 on a CPU. An explicit choice is kept, on a CPU too."""
    if name not in PRECISIONS:
        raise ModelError(f"model.precision must be auto, fp32, fp16 or bf16, got {name!r}")
    if name != "auto":
        return name
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"


def tiny_generator(seed: int = 0) -> Generator:
    """The tiny StyleGAN3-T with weights from `seed` (on a forked generator: the process's random state stays)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(**TINY_GENERATOR).eval().requires_grad_(False)


def _generator(spec: str, cache: Path, fallback: bool, seed: int, notes: list[str]) -> Generator:
    if spec == TINY:
        return tiny_generator(seed)
    remote = spec in registry.GENERATORS or registry.is_url(spec)  # a download away; a path is the user's own
    try:
        if not remote:
            return load_generator(spec)
        G = load_generator(registry.fetch_generator(spec, cache))
    except (registry.DownloadError, CheckpointError) as e:
        if not fallback or not remote:
            raise ModelError(str(e)) from None
        log.debug("generator %s: %s", spec, e)
        problem = ("is not here and cannot be downloaded now" if isinstance(e, registry.DownloadError) else
                   "is damaged in the cache (delete it)")
        notes.append(f"generator {spec} {problem}: running a tiny random one (its pictures are noise). "
                     f"Fix: `vj models fetch {spec}` with network.")
        return tiny_generator(seed)
    if spec in registry.GENERATORS and (unlike := registry.unlike_registry(registry.GENERATORS[spec], G.init_kwargs)):
        log.warning("generator %s: %s", spec, unlike)
    return G


def _clip(spec: str, cache: Path, device: torch.device, precision: str, fallback: bool, seed: int,
          notes: list[str]) -> ClipGuide:
    try:
        return load_clip(spec, device, precision, registry.clip_cache_dir(cache), seed=seed)
    except ClipLoadError as e:
        if not fallback:
            raise ModelError(str(e)) from None
        log.debug("CLIP %s: %s", spec, e)
        notes.append(f"CLIP {spec} is not here and cannot be downloaded now: running a tiny random one (prompts "
                     f"will not steer the picture). Fix: `vj models fetch {spec}` with network.")
        return load_clip(TINY, device, "fp32", seed=seed)


def load_models(cfg: ModelConfig) -> Models:
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        keep_freed_memory()
    precision = resolve_precision(cfg.precision, device)
    cache = registry.cache_dir(cfg.cache_dir or None)
    notes: list[str] = []
    G = _generator(cfg.generator, cache, cfg.offline_fallback, cfg.seed, notes).to(device).set_precision(precision)
    clip = _clip(cfg.clip, cache, device, precision, cfg.offline_fallback, cfg.seed, notes)
    for note in notes:
        log.warning(note)
    return Models(G, clip, device, notes)
