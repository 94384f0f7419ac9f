"""CLIP for guidance: an open_clip model, its text embeddings cached per prompt, a differentiable image path.

`load_clip("ViT-B-32/openai")` (or `"ViT-B-32"` for the default tag, a local checkpoint `path/to/x.pt` with
`model.clip_arch`, or `"tiny"`: a 2-layer random model for tests and the offline demo).
The image path takes [B, 3, S, S] images in 0..1 already at the model's input size (the cutouts make them) and
applies the model's own mean/std; everything stays on the device, no host syncs.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import torch

from vj.errors import UserError

log = logging.getLogger(__name__)

HUB_HOST = "huggingface.co"             # where open_clip's pretrained weights come from
TINY = "tiny"
TINY_ARCH = "vj-tiny-clip"
_configs_added = False


class ClipLoadError(UserError):
    """CLIP weights that could not be had, with what to do about it."""


def _add_tiny_config() -> None:
    global _configs_added
    if not _configs_added:
        import open_clip

        open_clip.add_model_config(Path(__file__).parent / "clip_configs")
        _configs_added = True


def hub_reachable(host: str = HUB_HOST, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline_unless_reachable() -> Iterator[None]:
    """Without a route to the hub, huggingface_hub retries with back-off for about 45 s before failing. Offline
    mode makes it use the local cache only: cached weights load, missing ones fail at once. Only while vj loads:
    the setting is the whole process's."""
    if hub_reachable():
        yield
        return
    import huggingface_hub.constants

    before = huggingface_hub.constants.HF_HUB_OFFLINE
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    log.debug("%s is unreachable: CLIP weights come from the local cache only", HUB_HOST)
    try:
        yield
    finally:
        huggingface_hub.constants.HF_HUB_OFFLINE = before


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'ViT-B-32/openai' -> ('ViT-B-32', 'openai'); 'ViT-B-32' -> the openai tag; 'ViT-B-32/random' -> random
    weights (benchmarks); 'tiny' -> (tiny arch, None); a file -> ('ViT-B-32', path)."""
    if spec == TINY:
        return TINY_ARCH, None
    if Path(spec).suffix in (".pt", ".pth", ".bin", ".safetensors"):
        return "ViT-B-32", spec
    name, _, tag = spec.partition("/")
    return name, None if tag == "random" else (tag or "openai")


class ClipGuide(torch.nn.Module):
    """An open_clip model with a text-embedding cache and a batched, differentiable image encoder."""

    def __init__(self, model: torch.nn.Module, tokenizer, name: str, pretrained: str | None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.pretrained = pretrained
        visual = model.visual
        size = visual.image_size
        self.input_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        mean = getattr(visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)
        std = getattr(visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, 3, 1, 1), persistent=False)
        self._text_cache: dict[str, torch.Tensor] = {}
        self._dtype = self._image_tower_dtype()

    def _apply(self, fn, *args, **kwargs):
        # .to(), .half(), .float(), .cuda() all come through here: the compute type is read again after them.
        module = super()._apply(fn, *args, **kwargs)
        self._dtype = self._image_tower_dtype()
        return module

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def dtype(self) -> torch.dtype:
        """The type the image tower computes in (read once, and again when this module's parameters are converted:
        encode_image asks on every step)."""
        return self._dtype

    def _image_tower_dtype(self) -> torch.dtype:
        """That of the image tower's first convolution (open_clip's half precision keeps some parameters, such as
        the positional embedding, in float32)."""
        visual = self.model.visual
        conv = next((m for m in visual.modules() if isinstance(m, torch.nn.Conv2d)), None)
        return conv.weight.dtype if conv is not None else next(visual.parameters()).dtype

    @property
    def embed_dim(self) -> int:
        return int(self.encode_text(["x"]).shape[-1])

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """[P, D] unit-norm float32 embeddings; each prompt is encoded once and cached."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        if missing:
            tokens = self.tokenizer(missing).to(self.device)
            embedded = self.model.encode_text(tokens).float()
            for prompt, e in zip(missing, torch.nn.functional.normalize(embedded, dim=-1)):
                self._text_cache[prompt] = e
        if not prompts:
            return torch.zeros(0, 1, device=self.device)
        return torch.stack([self._text_cache[p] for p in prompts])

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, S, S] in 0..1 at input_size -> [B, D] unit-norm float32, differentiable."""
        x = (images.float() - self.mean) / self.std
        return torch.nn.functional.normalize(self.model.encode_image(x.to(self.dtype)).float(), dim=-1)


def load_clip(spec: str, device: torch.device | str = "cpu", precision: str = "fp32",
              cache_dir: Path | None = None, seed: int = 0) -> ClipGuide:
    """Loads CLIP by spec in precision 'fp32', 'fp16' or 'bf16' (any device: half precision on a CPU is slow but
    runs, for tests). Raises ClipLoadError when weights can't be had."""
    import open_clip

    name, pretrained = parse_spec(spec)
    hub = contextlib.nullcontext()
    if name == TINY_ARCH:
        _add_tiny_config()
    elif name not in open_clip.list_models():
        raise ClipLoadError(f"unknown CLIP model {name!r} (see open_clip.list_models(); e.g. ViT-B-32/openai)")
    elif pretrained and not Path(pretrained).is_file():
        hub = _hub_offline_unless_reachable()
    device = torch.device(device)
    if precision not in ("fp32", "fp16", "bf16"):
        raise ValueError(f"CLIP precision must be fp32, fp16 or bf16, got {precision!r}")
    # Random weights (tiny, or a named model without pretrained ones) come from the seed, on a forked generator:
    # loading leaves the process's random state as it was.
    with hub, torch.random.fork_rng(), _open_clip_logs_at_debug():
        torch.manual_seed(seed)
        try:
            model = open_clip.create_model(name, pretrained=pretrained, precision=precision, device=device,
                                           cache_dir=str(cache_dir) if cache_dir else None)
        except Exception as e:  # noqa: BLE001  hub and network errors come in many types; all mean "no weights"
            raise ClipLoadError(
                f"could not get CLIP weights {name}/{pretrained}: {type(e).__name__}: {e}. With network access, "
                f"`vj models fetch {name}/{pretrained}` downloads them once into the cache") from None
        tokenizer = open_clip.get_tokenizer(name)
    return ClipGuide(model, tokenizer, name, pretrained).to(device)


@contextlib.contextmanager
def _open_clip_logs_at_debug() -> Iterator[None]:
    """open_clip logs a dozen lines per load on the root logger (and an ERROR for weights it cannot download, which
    the caller reports in its own words): while it loads, they go to this module's log at DEBUG."""
    root = logging.getLogger()

    def to_debug(record: logging.LogRecord) -> bool:
        if record.name != "root":
            return True
        log.debug("open_clip: %s", record.getMessage())
        return False
    root.addFilter(to_debug)
    try:
        yield
    finally:
        root.removeFilter(to_debug)
