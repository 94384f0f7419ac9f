"""The per-frame latent optimiser: a few CLIP-guided steps on a normalised W latent, and a smoothed display latent.

The latent is optimised as q = (w - w_avg) / w_std, with w_std estimated once from mapped samples, so one step
size suits every generator. The update is AdamW with beta1 = 0 (no momentum: a cue change turns the image at
once instead of coasting), written as plain tensor ops.

A step is one function of tensors the optimizer allocates once and changes only in place (`guided_step`):
latent, optimiser state, learning rate, the random draws for the cutouts (one buffer pair per cutout count), the
input transform, the loss scale, the step's result. Random numbers are drawn outside it, prompts sit in a fixed
number of slots (unused slots weigh 0), and nothing in it branches on tensor values or syncs with the host, so it
compiles with `torch.compile(fullgraph=True)` (`optimizer.compile = "auto"`: compiled on CUDA, eager on CPU where
compiling measured slower; eager is the fallback if compiling fails) and, on CUDA, is captured as one CUDA graph
per cutout count and replayed (`optimizer.cuda_graphs`, `graphs.py`); the displayed frame too. `warm_up` compiles
and captures every shape ahead of the show, leaving the optimiser's state as it found it. Around the step nothing
syncs either: prompt weights and the transform go up through pinned memory, and a frame's one wait, for its
pixels, brings the last step's loss down with them (`render_frame`).

Precision: the latent and the optimiser state are always float32; the networks run in what `model.precision`
chose. When anything runs in fp16, the loss is scaled before the backward pass (dynamically, as a GradScaler
does, on the device) so that small image gradients do not underflow to zero on their way back through CLIP.

The displayed latent follows the optimised one with a time constant (`optimizer.display_smoothing_s`), not a
per-frame factor, so the picture moves alike at any frame rate: a render and a rehearsal of a track agree.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch

from vj.config import OptimizerConfig
from vj.cues.prompts import WeightedPrompt
from vj.engine.guidance import make_cutouts, prompt_loss
from vj.models.clip import ClipGuide
from vj.engine.graphs import CapturedCalls
from vj.models.stylegan3 import Generator

log = logging.getLogger(__name__)

MAX_PROMPTS = 8                         # prompt slots per step
W_STD_SAMPLES = 1024                    # mapped samples for the w_std estimate
CUTOUT_NOISE = 0.02                     # std of the noise added to each cutout
LOSS_SCALE_INIT = 2.0 ** 16             # fp16: first loss scale (halved on each overflow, as GradScaler starts)
LOSS_SCALE_GROWTH_STEPS = 200           # fp16: finite steps in a row before the scale doubles
LOSS_SCALE_MAX = 2.0 ** 24


@dataclass
class StepResult:
    """A guided step's outcome, in tensors the optimizer allocates once: the next step (or, for `render_frame`'s
    host copy, the next frame) overwrites them. Read or copy the values before that."""
    loss: torch.Tensor                  # [] weighted guidance loss of the step (before the update)
    per_prompt: torch.Tensor            # [MAX_PROMPTS] spherical distance to each slot


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
        if cfg.compile not in ("auto", "on", "off"):
            raise ValueError(f"optimizer.compile must be auto, on or off, got {cfg.compile!r}")
        self.G, self.clip, self.cfg = G, clip, cfg
        self.device = clip.device
        self.num_ws = G.num_ws
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._draws: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # cutout count -> (uniforms, noise)
        self.set_cutouts(cfg.cutouts)
        self.transform = torch.eye(3, device=self.device)  # the generator's input transform (set per frame)
        with torch.no_grad():
            samples = torch.from_numpy(np.random.RandomState(seed + 1).randn(W_STD_SAMPLES, G.z_dim)).float()
            mapped = G.mapping(samples.to(self.device), None)[:, 0]  # [S, w_dim]
            self.w_avg = G.mapping.w_avg.detach().clone()
            self.w_std = mapped.std(0).clamp(min=1e-3)
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float().to(self.device)
            w0 = G.mapping(z, None, truncation_psi=truncation_psi)  # [1, num_ws, w_dim]
        layers = 1 if cfg.latent_space == "w" else self.num_ws
        self.q = ((w0[:, :layers] - self.w_avg) / self.w_std).contiguous()  # [1, L, w_dim] float32
        self.v = torch.zeros_like(self.q)
        self.q_good = self.q.clone()  # the last finite latent, restored if a step produces NaN/inf
        self.restores = torch.zeros((), device=self.device)  # how often that happened (read rarely: a sync)
        self.steps_taken = torch.zeros((), device=self.device)  # updates applied (AdamW's bias correction)
        self.skipped = torch.zeros((), device=self.device)  # steps whose scaled gradient overflowed (fp16)
        self.display_w = w0.clone()  # [1, num_ws, w_dim]
        self.display_alpha = torch.ones((), device=self.device)  # how far the display moves this frame
        self.slot_embeds = torch.zeros(MAX_PROMPTS, clip.embed_dim, device=self.device)
        self.slot_weights = torch.zeros(MAX_PROMPTS, device=self.device)
        self._prompts: tuple[WeightedPrompt, ...] | None = None  # the mix in the slots
        self._slot_texts: tuple[str, ...] = ()  # the texts whose embeddings are in the slots, in order
        # The last step's outcome, written by the step itself (inside its graph on CUDA): no allocation per step.
        self.result = StepResult(torch.zeros((), device=self.device), torch.zeros(MAX_PROMPTS, device=self.device))
        # ... and its copy on the host, which render_frame fills alongside the frame's pixels (pinned on CUDA: the
        # copy is asynchronous, and the one wait for the pixels covers it).
        self._host_result = self.result if self.device.type != "cuda" else StepResult(
            torch.zeros((), pin_memory=True), torch.zeros(MAX_PROMPTS, pin_memory=True))
        self.lr = torch.tensor(cfg.lr, device=self.device)
        # fp16 anywhere on the gradient's path: scale the loss so that small gradients survive the backward pass.
        self.loss_scaling = torch.float16 in (clip.dtype, G.compute_dtype(self.device))
        self.loss_scale = torch.tensor(LOSS_SCALE_INIT if self.loss_scaling else 1.0, device=self.device)
        self.finite_in_a_row = torch.zeros((), device=self.device)
        self._step_fn = self.guided_step
        self._frame_fn = self._display_frame
        self.compiled = False
        if cfg.compile == "on" or (cfg.compile == "auto" and self.device.type == "cuda"):
            # Static shapes: each cutout count gets its own specialised kernels (and, on CUDA, its own graph).
            self._step_fn = torch.compile(self.guided_step, fullgraph=True, dynamic=False)
            self._frame_fn = torch.compile(self._display_frame, fullgraph=True, dynamic=False)
            self.compiled = True
        self.graphs = CapturedCalls(self.device, self._snapshot) \
            if cfg.cuda_graphs and self.device.type == "cuda" else None
        self.fallbacks: list[str] = []  # what failed and was given up (graphs, compiled code), in words

    # -- prompts and shapes -----------------------------------------------------------------------------
    def set_prompts(self, prompts: tuple[WeightedPrompt, ...] | list[WeightedPrompt]) -> None:
        """Fills the prompt slots from a mix (the largest |weight| first if there are too many); an unchanged mix
        changes nothing. A crossfade changes the weights every frame: they go up from pinned memory without making
        the host wait, and the embeddings are rewritten only when the slots' texts change (from CLIP's cache, on
        the device, unless a text is new)."""
        if tuple(prompts) == self._prompts:
            return
        self._prompts = tuple(prompts)
        prompts = sorted(prompts, key=lambda p: -abs(p.weight))
        if len(prompts) > MAX_PROMPTS:
            log.warning("%d prompts in the mix; guiding with the %d strongest", len(prompts), MAX_PROMPTS)
            prompts = prompts[:MAX_PROMPTS]
        texts = tuple(p.text for p in prompts)
        if texts != self._slot_texts:
            if texts:
                self.slot_embeds[: len(texts)] = self.clip.encode_text(list(texts))
            self._slot_texts = texts
        weights = np.zeros(MAX_PROMPTS, np.float32)  # unused slots weigh 0
        weights[: len(prompts)] = [p.weight for p in prompts]
        self._upload(self.slot_weights, weights)

    def set_cutouts(self, cutouts: int) -> None:
        """Changes the number of cutouts per step. Each count keeps its own draw buffers (a captured step reads
        them at fixed addresses); a new count compiles and captures on its next step unless warmed up."""
        cutouts = max(1, int(cutouts))
        if cutouts not in self._draws:
            size = self.clip.input_size
            self._draws[cutouts] = (torch.full((cutouts, 4), 0.5, device=self.device),
                                    torch.zeros(cutouts, 3, size, size, device=self.device))
        self.uniforms, self.noise = self._draws[cutouts]

    @property
    def cutouts(self) -> int:
        return self.uniforms.shape[0]

    def warm_up(self, cutout_counts: Iterable[int], progress: Callable[[int, int], None] | None = None) -> None:
        """Compiles (and on CUDA captures) the guided step at each cutout count and the display frame, before the
        show: none of that cost then lands in a timed frame. The optimiser's state is left as it was."""
        counts = list(dict.fromkeys(max(1, int(n)) for n in cutout_counts))
        current, restore = self.cutouts, self._snapshot()
        try:
            for done, n in enumerate(counts):
                if progress is not None:
                    progress(done, len(counts) + 1)
                self.set_cutouts(n)
                self.step()
            if progress is not None:
                progress(len(counts), len(counts) + 1)
            self.frame()
        finally:
            self.set_cutouts(current)
            restore()
        if progress is not None:
            progress(len(counts) + 1, len(counts) + 1)

    def _snapshot(self) -> Callable[[], None]:
        """A function that puts the optimiser's state back as it is now (in place: captured graphs keep their
        addresses), random generator included."""
        tensors = (self.q, self.v, self.q_good, self.restores, self.steps_taken, self.skipped, self.display_w,
                   self.loss_scale, self.finite_in_a_row)
        saved, rng = [t.clone() for t in tensors], self.generator.get_state()

        def restore() -> None:
            for tensor, value in zip(tensors, saved):
                tensor.copy_(value)
            self.generator.set_state(rng)
        return restore

    # -- the hot loop -----------------------------------------------------------------------------------
    @torch.no_grad()
    def picture(self) -> torch.Tensor:
        """The optimised latent's picture as the steps see it: [1, 3, H, W] in 0..1 (eager: for rare checks)."""
        return (self.G.synthesis(self.latent_w(self.q), transform=self.transform) * 0.5 + 0.5).clamp(0, 1)

    def offset_to(self, w: torch.Tensor) -> torch.Tensor:
        """The way from the optimised latent to w [w_dim], in the optimiser's normalised units (no sync)."""
        return ((w.to(self.device) - self.w_avg) / self.w_std).expand_as(self.q) - self.q

    def shift(self, offset: torch.Tensor, amount: float, display_too: bool = False) -> None:
        """Moves the optimised latent by amount x offset (in place: captured steps keep their addresses), on top of
        whatever the guided steps do; with `display_too` the displayed latent jumps there as well (a show's start)."""
        self.q.add_(offset, alpha=amount)
        self.q_good.copy_(self.q)
        if display_too:
            self.display_w.copy_(self.latent_w(self.q))

    def latent_w(self, q: torch.Tensor) -> torch.Tensor:
        return (self.w_avg + q * self.w_std).expand(1, self.num_ws, -1)  # [1, num_ws, w_dim]

    def loss(self, q: torch.Tensor, uniforms: torch.Tensor, noise: torch.Tensor,
             transform: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(total loss x loss scale, (guidance loss, per-prompt distances)) of latent q; differentiable in q."""
        image = self.G.synthesis(self.latent_w(q), transform=transform)  # [1, 3, H, W] in about -1..1
        cuts = make_cutouts((image + 1) / 2, self.clip.input_size, self.cfg.cut_pow, uniforms, noise)
        guidance, per_prompt = prompt_loss(self.clip.encode_image(cuts), self.slot_embeds, self.slot_weights)
        total = guidance + self.cfg.latent_reg * q.square().mean()
        return total * self.loss_scale, (guidance, per_prompt)

    def guided_step(self, q: torch.Tensor, v: torch.Tensor, t: torch.Tensor, lr: torch.Tensor,
                    uniforms: torch.Tensor, noise: torch.Tensor,
                    transform: torch.Tensor) -> None:
        """One step, in place on q, v and t; the guidance loss and per-prompt distances before the update go into
        `self.result`."""
        grad, (guidance, per_prompt) = torch.func.grad(self.loss, has_aux=True)(q, uniforms, noise, transform)
        self.result.loss.copy_(guidance)
        self.result.per_prompt.copy_(per_prompt)
        finite = torch.isfinite(grad).all()
        grad = torch.where(finite, grad / self.loss_scale, torch.zeros_like(grad))  # float32, unscaled
        _adamw_beta1_zero(q, v, grad, t, lr, finite)
        self.skipped.add_((~finite).to(self.skipped.dtype))
        if self.loss_scaling:
            _update_loss_scale(self.loss_scale, self.finite_in_a_row, finite)
        _keep_finite(q, v, self.q_good, self.restores)

    def step(self, lr: float | None = None, transform: torch.Tensor | None = None) -> StepResult:
        """One guided step at learning rate lr (None = the last one set) with the given input transform (None =
        the one set for the frame). Its result is `self.result`, overwritten by the next step."""
        if lr is not None:
            self.lr.fill_(lr)
        if transform is not None:
            self.transform.copy_(transform)
        torch.rand(self.uniforms.shape, generator=self.generator, out=self.uniforms)
        torch.randn(self.noise.shape, generator=self.generator, out=self.noise)
        self.noise.mul_(CUTOUT_NOISE)
        self._call(("step", self.cutouts), self._step_call)
        return self.result

    def _step_call(self) -> tuple[torch.Tensor, ...]:
        self._step_fn(self.q, self.v, self.steps_taken, self.lr, self.uniforms, self.noise, self.transform)
        return ()  # everything it makes is in the optimizer's own tensors

    def _call(self, key: tuple, fn: Callable[[], tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
        """fn through its CUDA graph (when graphs are on), compiled (when compiling is on) or eagerly. A failure
        while compiled drops the compiled code and tries again, graphs kept: compiled code that cannot be captured
        is the likelier culprit, and eager code replayed from a graph is still most of the speed. Only a failure
        of eager code through graphs drops the graphs. The show goes on, and `fallbacks` says what happened."""
        try:
            return self.graphs.run(key, fn) if self.graphs is not None else fn()
        except Exception as e:  # noqa: BLE001  a compiler or capture failure must not stop the show
            if not (self.compiled or self.graphs is not None) or isinstance(e, torch.OutOfMemoryError):
                raise
            what = "compiled code" if self.compiled else "CUDA graphs"
            self.fallbacks.append(f"{what}: {type(e).__name__}: {e}")
            log.warning("%s failed in the engine (%s); going on without", what, type(e).__name__, exc_info=True)
        if self.compiled:
            self._step_fn, self._frame_fn, self.compiled = self.guided_step, self._display_frame, False
        else:
            self.graphs = None
        # Tried again outside the handler: a failure of the retry is its own, not chained to this one (a failed
        # capture reports the exception's context as its cause).
        return self._call(key, fn)

    def set_transform(self, transform: np.ndarray) -> None:
        """The frame's input transform [3, 3], uploaded without making the host wait (through pinned memory)."""
        self._upload(self.transform, transform)

    def _upload(self, tensor: torch.Tensor, values: np.ndarray) -> None:
        """values into the float32 device tensor in place, without making the host wait: on CUDA from a fresh pinned
        buffer, which torch keeps until the copy is done (a reused one could be rewritten while a copy is queued)."""
        source = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        if self.device.type == "cuda":
            source = source.pin_memory()
        tensor.copy_(source, non_blocking=True)

    def render_frame(self, prompts: tuple[WeightedPrompt, ...], steps: int, lr: float,
                     transform: np.ndarray, dt: float) -> tuple[np.ndarray, StepResult | None]:
        """One displayed frame, as live and offline make it: the prompt mix, `steps` guided steps at lr through the
        input transform [3, 3], then the display latent, moved towards the optimised one for dt seconds, as
        [H, W, 3] uint8 on the host, and the last step's result (None without steps) on the host too: it comes
        with the pixels, so reading it makes the host wait for nothing more. That result is overwritten by the
        next frame."""
        self.set_prompts(prompts)
        self.set_transform(transform)
        for _ in range(steps):
            self.step(lr)
        return self._to_host(self.frame(dt), self.result if steps > 0 else None)

    def frame(self, dt: float | None = None) -> torch.Tensor:
        """Moves the display latent towards the optimised one for dt seconds (None: all the way) and renders it:
        [H, W, 3] uint8 on the device."""
        tau = self.cfg.display_smoothing_s
        self.display_alpha.fill_(1.0 if dt is None or tau <= 0 else 1.0 - math.exp(-max(dt, 0.0) / tau))
        (pixels,) = self._call(("frame",), lambda: (self._frame_fn(self.q, self.display_w, self.display_alpha,
                                                                   self.transform),))
        return pixels

    def frame_pixels(self, dt: float | None = None) -> np.ndarray:
        """`frame` copied to the host: on CUDA into pinned memory, asynchronously, waiting only for that copy."""
        pixels, _ = self._to_host(self.frame(dt))
        return pixels

    def _to_host(self, pixels: torch.Tensor, result: StepResult | None = None) -> tuple[np.ndarray, StepResult | None]:
        """pixels [H, W, 3] uint8 (and a step's result) on the host. On CUDA the copies are queued into pinned
        memory and the host waits once, for all of them; the pixels get a buffer of their own (the render loop
        keeps a frame while the next is made), the result the optimizer's one host copy."""
        if self.device.type != "cuda":
            return pixels.numpy(), result
        host = torch.empty(pixels.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(pixels, non_blocking=True)
        if result is not None:
            self._host_result.loss.copy_(result.loss, non_blocking=True)
            self._host_result.per_prompt.copy_(result.per_prompt, non_blocking=True)
            result = self._host_result
        done = torch.cuda.Event()
        done.record()  # after every copy above: its completion means all of them are done
        done.synchronize()
        return host.numpy(), result

    @torch.no_grad()
    def _display_frame(self, q: torch.Tensor, display_w: torch.Tensor, alpha: torch.Tensor,
                       transform: torch.Tensor) -> torch.Tensor:
        display_w.lerp_(self.latent_w(q), alpha)
        image = self.G.synthesis(display_w, transform=transform)[0]  # [3, H, W] in about -1..1
        return ((image.permute(1, 2, 0) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).contiguous()


def _update_loss_scale(scale: torch.Tensor, finite_in_a_row: torch.Tensor, finite: torch.Tensor) -> None:
    """In place, on the device: halve the scale after an overflow; double it after a run of finite steps."""
    run = torch.where(finite, finite_in_a_row + 1, torch.zeros_like(finite_in_a_row))
    grow = run >= LOSS_SCALE_GROWTH_STEPS
    scale.copy_(torch.where(finite, torch.where(grow, scale * 2, scale), scale * 0.5).clamp(1.0, LOSS_SCALE_MAX))
    finite_in_a_row.copy_(torch.where(grow, torch.zeros_like(run), run))


def _keep_finite(q: torch.Tensor, v: torch.Tensor, q_good: torch.Tensor, restores: torch.Tensor) -> None:
    """In place, without a host sync: a non-finite latent or optimiser state goes back to the last good latent
    (and a fresh optimiser state); a finite one becomes the new last good one."""
    ok = torch.isfinite(q).all() & torch.isfinite(v).all()
    q.copy_(torch.where(ok, q, q_good))
    v.copy_(torch.where(ok, v, torch.zeros_like(v)))
    q_good.copy_(q)
    restores.add_((~ok).to(restores.dtype))


def _adamw_beta1_zero(q: torch.Tensor, v: torch.Tensor, grad: torch.Tensor, t: torch.Tensor, lr: torch.Tensor,
                      apply: torch.Tensor, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0) -> None:
    """In place, where `apply` (a step whose gradient overflowed changes nothing):
    v <- EMA of grad^2; q <- q * (1 - lr * wd) - lr * grad / (sqrt(v_hat) + eps)."""
    t.add_(apply.to(t.dtype))
    v.copy_(torch.where(apply, v * beta2 + (1 - beta2) * grad.square(), v))
    v_hat = v / (1 - torch.pow(beta2, t.clamp(min=1)))
    update = q * (lr * weight_decay) + lr * grad / (v_hat.sqrt() + eps)
    q.sub_(torch.where(apply, update, torch.zeros_like(update)))
