"""The one engine builder: networks (loaded, or given) and the latent optimiser, as live, render and replay use
them."""

from __future__ import annotations

from vj.config import Config
from vj.engine.optimizer import LatentOptimizer
from vj.models.loading import Models, load_models


def build_engine(cfg: Config, models: Models | None = None, seed: int | None = None) -> tuple[Models, LatentOptimizer]:
    """(networks, optimiser) for `cfg`; `models` skips loading (tests, benchmarks), `seed` overrides model.seed."""
    models = models or load_models(cfg.model)
    optimizer = LatentOptimizer(models.G, models.clip, cfg.optimizer, seed=cfg.model.seed if seed is None else seed,
                                truncation_psi=cfg.model.truncation_psi)
    return models, optimizer
