"""The one engine builder: networks (loaded, or given), the latent optimiser, the director and the latent bank's
cue snaps, as live, render and replay use them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from vj.config import Config, aspect_ratio
from vj.control.state import ShowState
from vj.engine.bank import CueSnap, bank_size, load_or_build_bank
from vj.engine.director import Director, FramePlan
from vj.engine.optimizer import LatentOptimizer
from vj.models import registry
from vj.models.loading import Models, load_models

log = logging.getLogger(__name__)


@dataclass
class Engine:
    models: Models
    optimizer: LatentOptimizer
    director: Director
    snap: Callable[[FramePlan], None]   # called with each frame's plan before its steps (the latent bank's snaps)


def build_engine(cfg: Config, state: ShowState, output_size: tuple[int, int], models: Models | None = None,
                 seed: int | None = None) -> Engine:
    """The engine for `cfg`, directed by `state`, its picture shaped for `output_size` (width, height) as
    model.aspect says; `models` skips loading (tests, benchmarks), `seed` overrides model.seed."""
    models = models or load_models(cfg.model)
    seed = cfg.model.seed if seed is None else seed
    size = models.G.synthesis.set_aspect(aspect_ratio(cfg.model.aspect, output_size))  # before anything compiles
    log.info("generating %dx%d pictures", *size)
    optimizer = LatentOptimizer(models.G, models.clip, cfg.optimizer, seed=seed,
                                truncation_psi=cfg.model.truncation_psi)
    n = bank_size(cfg.model.latent_bank, models.device)
    cache = registry.cache_dir(cfg.model.cache_dir)
    snap = CueSnap(load_or_build_bank(models.G, models.clip, n, cache, seed, cfg.model.truncation_psi), optimizer) \
        if n else (lambda plan: None)
    return Engine(models, optimizer, Director(cfg.director, cfg.optimizer.lr, state, cfg.cues.snap), snap)
