"""The one engine builder: networks (loaded, or given), the latent optimiser and the director, as live, render and
replay use them."""

from __future__ import annotations

from dataclasses import dataclass

from vj.config import Config
from vj.control.state import ShowState
from vj.engine.director import Director
from vj.engine.optimizer import LatentOptimizer
from vj.models.loading import Models, load_models


@dataclass
class Engine:
    models: Models
    optimizer: LatentOptimizer
    director: Director


def build_engine(cfg: Config, state: ShowState, models: Models | None = None, seed: int | None = None) -> Engine:
    """The engine for `cfg`, directed by `state`; `models` skips loading (tests, benchmarks), `seed` overrides
    model.seed."""
    models = models or load_models(cfg.model)
    optimizer = LatentOptimizer(models.G, models.clip, cfg.optimizer, seed=cfg.model.seed if seed is None else seed,
                                truncation_psi=cfg.model.truncation_psi)
    return Engine(models, optimizer, Director(cfg.director, cfg.optimizer.lr, state))
