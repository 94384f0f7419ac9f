"""The per-frame latent optimiser: a few CLIP-guided steps on a normalised W latent, and a smoothed display latent.

The latent is optimised as q = (w - w_avg) / w_std, with w_std estimated once from mapped samples, so one step
size suits every generator. The update is AdamW with beta1 = 0 (no momentum: a cue change turns the image at
once instead of coasting), written as plain tensor ops.

A step is one pure function of tensors (`guided_step`): latent, optimiser state, learning rate, the random draws
for the cutouts, the input transform. Random numbers are drawn outside it into preallocated buffers, prompts sit
in a fixed number of slots (unused slots weigh 0), and nothing in it branches on tensor values or syncs with the
host, so it compiles with `torch.compile(fullgraph=True)` and, on CUDA, replays as a CUDA graph
(`optimizer.compile = "auto"`: compiled on CUDA, eager on CPU where compiling measured slower; eager is the
fallback if compiling fails).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from vj.config import OptimizerConfig
from vj.cues.prompts import WeightedPrompt
from vj.engine.guidance import make_cutouts, prompt_loss
from vj.models.clip import ClipGuide
from vj.models.stylegan3 import Generator

log = logging.getLogger(__name__)

MAX_PROMPTS = 8                         # prompt slots per step
W_STD_SAMPLES = 1024                    # mapped samples for the w_std estimate
CUTOUT_NOISE = 0.02                     # std of the noise added to each cutout


@dataclass
class StepResult:
    loss: torch.Tensor                  # [] weighted guidance loss of the step (before the update)
    per_prompt: torch.Tensor            # [MAX_PROMPTS] spherical distance to each slot


def learning_rate(cfg: OptimizerConfig, since_cue_change: float, envelope: float) -> float:
    """Base rate x cue boost (decaying after a change) x audio multiplier (onset/beat envelope 0..1)."""
    boost = 1.0 + (cfg.cue_boost - 1.0) * math.exp(-max(since_cue_change, 0.0) / max(cfg.cue_boost_decay_s, 1e-3))
    return cfg.lr * boost * (1.0 + cfg.audio_gain * min(max(envelope, 0.0), 1.0))


class LatentOptimizer:
    def __init__(
        self,
        G: Generator,
        clip: ClipGuide,
        cfg: OptimizerConfig,
        seed: int = 0,                  # start latent (as the reference's seeds) and cutout randomness
        truncation_psi: float = 0.7,    # start latent's pull towards w_avg
    ):
        if cfg.latent_space not in ("w", "w+"):
            raise ValueError(f"optimizer.latent_space must be 'w' or 'w+', got {cfg.latent_space!r}")
        self.G, self.clip, self.cfg = G, clip, cfg
        self.device = clip.device
        self.num_ws = G.num_ws
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.uniforms = torch.empty(cfg.cutouts, 4, device=self.device)  # cutout draws, refilled every step
        self.noise = torch.empty(cfg.cutouts, 3, clip.input_size, clip.input_size, device=self.device)
        self.transform = torch.eye(3, device=self.device)  # the generator's input transform (set per step)
        with torch.no_grad():
            samples = torch.from_numpy(np.random.RandomState(seed + 1).randn(W_STD_SAMPLES, G.z_dim)).float()
            mapped = G.mapping(samples.to(self.device), None)[:, 0]  # [S, w_dim]
            self.w_avg = G.mapping.w_avg.detach().clone()
            self.w_std = mapped.std(0).clamp(min=1e-3)
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float().to(self.device)
            w0 = G.mapping(z, None, truncation_psi=truncation_psi)  # [1, num_ws, w_dim]
        layers = 1 if cfg.latent_space == "w" else self.num_ws
        self.q = ((w0[:, :layers] - self.w_avg) / self.w_std).contiguous()  # [1, L, w_dim]
        self.v = torch.zeros_like(self.q)
        self.q_good = self.q.clone()  # the last finite latent, restored if a step produces NaN/inf
        self.restores = torch.zeros((), device=self.device)  # how often that happened (read rarely: a sync)
        self.steps_taken = torch.zeros((), device=self.device)
        self.display_w = w0.clone()  # [1, num_ws, w_dim]
        self.slot_embeds = torch.zeros(MAX_PROMPTS, clip.embed_dim, device=self.device)
        self.slot_weights = torch.zeros(MAX_PROMPTS, device=self.device)
        self._prompts: tuple[WeightedPrompt, ...] | None = None  # the mix in the slots
        self.lr = torch.tensor(cfg.lr, device=self.device)
        self._step_fn = self.guided_step
        self.compiled = False
        if cfg.compile == "on" or (cfg.compile == "auto" and self.device.type == "cuda"):
            mode = "reduce-overhead" if self.device.type == "cuda" else None  # CUDA graphs on CUDA
            self._step_fn = torch.compile(self.guided_step, fullgraph=True, mode=mode)
            self.compiled = True
        elif cfg.compile not in ("auto", "off"):
            raise ValueError(f"optimizer.compile must be auto, on or off, got {cfg.compile!r}")

    # -- prompts ----------------------------------------------------------------------------------------
    def set_prompts(self, prompts: tuple[WeightedPrompt, ...] | list[WeightedPrompt]) -> None:
        """Fills the prompt slots from a mix (the largest |weight| first if there are too many); an unchanged mix
        changes nothing."""
        if tuple(prompts) == self._prompts:
            return
        self._prompts = tuple(prompts)
        prompts = sorted(prompts, key=lambda p: -abs(p.weight))
        if len(prompts) > MAX_PROMPTS:
            log.warning("%d prompts in the mix; guiding with the %d strongest", len(prompts), MAX_PROMPTS)
            prompts = prompts[:MAX_PROMPTS]
        self.slot_weights.zero_()
        if prompts:
            self.slot_embeds[: len(prompts)] = self.clip.encode_text([p.text for p in prompts])
            self.slot_weights[: len(prompts)] = torch.tensor([p.weight for p in prompts], device=self.device)

    def set_cutouts(self, cutouts: int) -> None:
        """Changes the number of cutouts per step (new buffers; a compiled step recompiles on its next call)."""
        cutouts = max(1, int(cutouts))
        self.uniforms = torch.empty(cutouts, 4, device=self.device)
        self.noise = torch.empty(cutouts, 3, self.clip.input_size, self.clip.input_size, device=self.device)

    @property
    def cutouts(self) -> int:
        return self.uniforms.shape[0]

    # -- the hot loop -----------------------------------------------------------------------------------
    def latent_w(self, q: torch.Tensor) -> torch.Tensor:
        return (self.w_avg + q * self.w_std).expand(1, self.num_ws, -1)  # [1, num_ws, w_dim]

    def loss(self, q: torch.Tensor, uniforms: torch.Tensor, noise: torch.Tensor,
             transform: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(total loss, (guidance loss, per-prompt distances)) of latent q; differentiable in q."""
        image = self.G.synthesis(self.latent_w(q), transform=transform)  # [1, 3, H, W] in about -1..1
        cuts = make_cutouts((image + 1) / 2, self.clip.input_size, self.cfg.cut_pow, uniforms, noise)
        guidance, per_prompt = prompt_loss(self.clip.encode_image(cuts), self.slot_embeds, self.slot_weights)
        return guidance + self.cfg.latent_reg * q.square().mean(), (guidance, per_prompt)

    def guided_step(self, q: torch.Tensor, v: torch.Tensor, t: torch.Tensor, lr: torch.Tensor,
                    uniforms: torch.Tensor, noise: torch.Tensor,
                    transform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step, in place on q, v and t; returns (guidance loss, per-prompt distances) before the update."""
        grad, (guidance, per_prompt) = torch.func.grad(self.loss, has_aux=True)(q, uniforms, noise, transform)
        _adamw_beta1_zero(q, v, grad, t, lr)
        _keep_finite(q, v, self.q_good, self.restores)
        return guidance, per_prompt

    def step(self, lr: float | None = None, transform: torch.Tensor | None = None) -> StepResult:
        """One guided step at learning rate lr (None = the last one set) with the given input transform."""
        if lr is not None:
            self.lr.fill_(lr)
        if transform is not None:
            self.transform.copy_(transform)
        torch.rand(self.uniforms.shape, generator=self.generator, out=self.uniforms)
        torch.randn(self.noise.shape, generator=self.generator, out=self.noise)
        self.noise.mul_(CUTOUT_NOISE)
        args = (self.q, self.v, self.steps_taken, self.lr, self.uniforms, self.noise, self.transform)
        try:
            guidance, per_prompt = self._step_fn(*args)
        except Exception as e:  # noqa: BLE001  a compiler failure must not stop the show: run eagerly
            if not self.compiled:
                raise
            log.warning("compiled guided step failed (%s: %s); running eagerly from now on", type(e).__name__, e)
            self._step_fn, self.compiled = self.guided_step, False
            guidance, per_prompt = self._step_fn(*args)
        return StepResult(guidance.detach().clone(), per_prompt.detach().clone())

    def render_frame(self, prompts: tuple[WeightedPrompt, ...], steps: int, lr: float,
                     transform: np.ndarray) -> tuple[np.ndarray, StepResult | None]:
        """One displayed frame, as live and offline make it: the prompt mix, `steps` guided steps at lr through the
        input transform [3, 3], then the display latent as [H, W, 3] uint8 (and the last step's result)."""
        self.set_prompts(prompts)
        matrix = torch.from_numpy(transform).to(self.device)
        result = None
        for _ in range(steps):
            result = self.step(lr, matrix)
        image = self.frame(matrix)
        return (image.permute(1, 2, 0) * 255 + 0.5).to("cpu").numpy().astype(np.uint8), result

    def frame(self, transform: torch.Tensor | None = None) -> torch.Tensor:
        """Moves the display latent towards the optimised one and renders it: [3, H, W] in 0..1."""
        with torch.no_grad():
            target = self.latent_w(self.q)
            self.display_w.lerp_(target, 1.0 - self.cfg.display_ema)
            image = self.G.synthesis(self.display_w, transform=self.transform if transform is None else transform)
        return ((image[0] + 1) / 2).clamp(0, 1)


def _keep_finite(q: torch.Tensor, v: torch.Tensor, q_good: torch.Tensor, restores: torch.Tensor) -> None:
    """In place, without a host sync: a non-finite latent or optimiser state goes back to the last good latent
    (and a fresh optimiser state); a finite one becomes the new last good one."""
    ok = torch.isfinite(q).all() & torch.isfinite(v).all()
    q.copy_(torch.where(ok, q, q_good))
    v.copy_(torch.where(ok, v, torch.zeros_like(v)))
    q_good.copy_(q)
    restores.add_((~ok).to(restores.dtype))


def _adamw_beta1_zero(q: torch.Tensor, v: torch.Tensor, grad: torch.Tensor, t: torch.Tensor, lr: torch.Tensor,
                      beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0) -> None:
    """In place: v <- EMA of grad^2; q <- q * (1 - lr * wd) - lr * grad / (sqrt(v_hat) + eps)."""
    t.add_(1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    v_hat = v / (1 - torch.pow(beta2, t))
    q.mul_(1 - lr * weight_decay).sub_(lr * grad / (v_hat.sqrt() + eps))
