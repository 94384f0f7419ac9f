"""The latent bank: prompt-matched starts and cue snaps.

After the networks load, N mapped samples of the generator are rendered and embedded with CLIP (the whole
picture, at CLIP's input size), and cached on disk per (generator, CLIP, N, seed, truncation, picture size), so a
second load takes a moment. A show starts at the sample nearest its first prompt (best of N, as the StyleGAN3+CLIP
notebooks start), and a cue whose snap is "nearest" glides the latent towards the sample nearest its prompt over
its crossfade while the guided steps keep working: the cue lands in about its transition instead of many seconds.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from vj.cues.prompts import WeightedPrompt
from vj.engine.director import FramePlan
from vj.engine.guidance import make_cutouts, spherical_distance
from vj.engine.optimizer import LatentOptimizer
from vj.models.clip import ClipGuide
from vj.models.stylegan3 import Generator

log = logging.getLogger(__name__)

BATCH = 8                               # samples rendered at once while building
CUTOUTS = 8                             # crops per sample, drawn as the guided steps draw them


@dataclass
class LatentBank:
    ws: torch.Tensor                    # [N, w_dim] mapped (truncated) latents
    embeds: torch.Tensor                # [N, CUTOUTS, D] unit CLIP embeddings of crops of their pictures
    draws: torch.Tensor                 # [CUTOUTS, 4] where those crops are (make_cutouts' uniforms)

    def nearest(self, clip: ClipGuide, prompts: tuple[WeightedPrompt, ...]) -> tuple[int, float]:
        """(sample, its loss): the sample with the lowest guidance loss for the prompt mix, the loss the guided
        steps lower, measured on the sample's crops (best of N)."""
        losses = self._losses(clip, self.embeds, prompts)
        best = int(losses.argmin())
        return best, float(losses[best])

    def loss(self, clip: ClipGuide, image: torch.Tensor, prompts: tuple[WeightedPrompt, ...]) -> float:
        """The same loss for a picture [1, 3, H, W] in 0..1, on the same crops: comparable with `nearest`'s."""
        crops = make_cutouts(image, clip.input_size, 1.0, self.draws.to(image.device))
        return float(self._losses(clip, clip.encode_image(crops).unsqueeze(0), prompts)[0])

    @staticmethod
    def _losses(clip: ClipGuide, embeds: torch.Tensor, prompts: tuple[WeightedPrompt, ...]) -> torch.Tensor:
        texts = clip.encode_text([p.text for p in prompts]).to(embeds.device)
        weights = torch.tensor([p.weight for p in prompts], device=embeds.device)
        return spherical_distance(embeds.unsqueeze(2), texts).mean(1) @ weights  # [N]


def bank_size(setting: int, device: torch.device) -> int:
    """model.latent_bank: -1 = 256 samples on CUDA, 32 on a CPU; 0 = no bank."""
    return setting if setting >= 0 else 256 if device.type == "cuda" else 32


def bank_path(cache: Path, G: Generator, clip: ClipGuide, n: int, seed: int, psi: float) -> Path:
    """The cache file for this pair of networks: named by a fingerprint of their weights, not their names, so a
    fallback or a replaced file never reads another network's bank."""
    h = hashlib.sha256()
    for tensor in (G.mapping.w_avg, G.synthesis.input.freqs, clip.encode_text(["vj latent bank"])):
        h.update(np.round(tensor.detach().float().cpu().numpy(), 4).tobytes())
    h.update(repr((n, seed, round(psi, 6), G.synthesis.image_size)).encode())
    return cache / "banks" / f"bank-{h.hexdigest()[:16]}.safetensors"


@torch.no_grad()
def build_bank(G: Generator, clip: ClipGuide, n: int, seed: int = 0, psi: float = 0.7,
               progress: bool = True) -> LatentBank:
    """Renders and embeds n samples (z from the seed, as the reference draws them) in batches."""
    device = clip.device
    random = np.random.RandomState(seed + 2)
    z = torch.from_numpy(random.randn(n, G.z_dim)).float().to(device)
    draws = torch.from_numpy(random.rand(CUTOUTS, 4)).float().to(device)  # the same crops for every sample
    ws, embeds = [], []
    for start in tqdm(range(0, n, BATCH), desc="latent bank", unit="batch", disable=not progress, leave=False):
        w = G.mapping(z[start:start + BATCH], None, truncation_psi=psi)  # [B, num_ws, w_dim]
        images = (G.synthesis(w) * 0.5 + 0.5).clamp(0, 1)
        crops = make_cutouts(images, clip.input_size, 1.0, draws.repeat(images.shape[0], 1))
        ws.append(w[:, 0].float())
        embeds.append(clip.encode_image(crops).reshape(images.shape[0], CUTOUTS, -1))
    return LatentBank(torch.cat(ws), torch.cat(embeds), draws)


def load_or_build_bank(G: Generator, clip: ClipGuide, n: int, cache: Path, seed: int = 0, psi: float = 0.7,
                       progress: bool = True) -> LatentBank:
    """The cached bank, or a new one built and cached; either way the time it took is logged."""
    started = time.perf_counter()
    path = bank_path(cache, G, clip, n, seed, psi)
    if path.is_file():
        try:
            tensors = load_file(str(path), device=str(clip.device))
            bank = LatentBank(tensors["ws"], tensors["embeds"], tensors["draws"])
            log.info("latent bank: %d samples read from the cache in %.2f s (%s)", n, time.perf_counter() - started,
                     path)
            return bank
        except Exception as e:  # noqa: BLE001  a damaged cache file is rebuilt, never fatal
            log.warning("latent bank cache %s unreadable (%s): building it again", path, e)
    bank = build_bank(G, clip, n, seed, psi, progress)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        save_file({name: getattr(bank, name).contiguous().cpu() for name in ("ws", "embeds", "draws")}, str(part))
        part.replace(path)
    except OSError as e:
        log.warning("latent bank not cached (%s): it is built again next time", e)
    log.info("latent bank: %d samples built in %.2f s", n, time.perf_counter() - started)
    return bank


class CueSnap:
    """Per generated frame, before its guided steps: the show's first prompt starts at its nearest sample (the
    picture too), and a snapping cue moves the latent by the way to its nearest sample (measured when the cue
    starts) in step with its crossfade, added to what the guided steps do, so their work is kept. A sample that
    is no nearer the prompt than the picture already is (by the same loss on the same crops) is not gone to."""

    def __init__(self, bank: LatentBank, optimizer: LatentOptimizer):
        self.bank, self.optimizer = bank, optimizer
        self.started = False
        self._cue, self._offset, self._fade = -1, None, 1.0  # the cue glided into, the way to go, progress

    def __call__(self, plan: FramePlan) -> None:
        if not self.started:
            if plan.prompts:
                self.started, self._cue = True, plan.cue
                offset = self._way_to_nearest(plan.prompts)
                if offset is not None:
                    self.optimizer.shift(offset, 1.0, display_too=True)
            return
        if plan.cue != self._cue:
            self._cue, self._fade = plan.cue, 0.0
            self._offset = self._way_to_nearest(plan.snap_to) if plan.snap_to else None
        if self._offset is not None and plan.fade > self._fade:
            self.optimizer.shift(self._offset, plan.fade - self._fade)
            self._fade = plan.fade
            if plan.fade >= 1.0:
                self._offset = None

    def _way_to_nearest(self, prompts: tuple[WeightedPrompt, ...]) -> torch.Tensor | None:
        clip = self.optimizer.clip
        index, loss = self.bank.nearest(clip, prompts)
        if loss >= self.bank.loss(clip, self.optimizer.picture(), prompts):
            log.debug("cue snap: the picture is already nearer %s than the bank's best", prompts[0].text)
            return None
        return self.optimizer.offset_to(self.bank.ws[index])
