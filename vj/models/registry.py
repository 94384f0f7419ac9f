"""Known public checkpoints, the local cache, and downloads with progress.

StyleGAN3 pickles come from NVIDIA's public model files; CLIP weights come through open_clip's own download
(its `cache_dir` pointed into our cache). Nothing is downloaded at import or without being asked.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from vj.errors import UserError

NVIDIA_BASE = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files"


@dataclass(frozen=True)
class KnownCheckpoint:
    name: str                           # what users type: `vj models fetch NAME`, `model.generator = "NAME"`
    url: str                            # where the file is published
    resolution: int                     # output size in pixels (square)
    config: str                         # "T" (translation equivariant) or "R" (rotation equivariant)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _nvidia(cfg: str, dataset: str, resolution: int) -> KnownCheckpoint:
    name = f"stylegan3-{cfg.lower()}-{dataset}-{resolution}x{resolution}"
    return KnownCheckpoint(name, f"{NVIDIA_BASE}/{name}.pkl", resolution, cfg)


GENERATORS: dict[str, KnownCheckpoint] = {
    c.name: c for c in (
        _nvidia(cfg, dataset, res)
        for cfg in ("T", "R")
        for dataset, res in (("ffhq", 1024), ("ffhqu", 1024), ("ffhqu", 256), ("afhqv2", 512),
                             ("metfaces", 1024), ("metfacesu", 1024))
    )
}
DEFAULT_GENERATOR = "stylegan3-t-ffhqu-256x256"

# open_clip (model name, pretrained tag) pairs we name in docs and configs; any open_clip pair works.
CLIP_MODELS: dict[str, tuple[str, str]] = {
    "ViT-B-32/openai": ("ViT-B-32", "openai"),
    "ViT-B-16/openai": ("ViT-B-16", "openai"),
    "ViT-L-14/openai": ("ViT-L-14", "openai"),
}
DEFAULT_CLIP = "ViT-B-32/openai"


class DownloadError(UserError):
    """A download that failed, with what to do about it."""


def cache_dir(configured: str | os.PathLike | None = None) -> Path:
    """The cache folder: the configured one, else $VJ_CACHE, else $XDG_CACHE_HOME/vj, else ~/.cache/vj."""
    if configured:
        return Path(configured).expanduser()
    if os.environ.get("VJ_CACHE"):
        return Path(os.environ["VJ_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "vj"


def cached_path(name: str, cache: Path) -> Path:
    return cache / "stylegan3" / GENERATORS[name].filename


def is_cached(name: str, cache: Path) -> bool:
    return cached_path(name, cache).is_file()


def clip_cache_dir(cache: Path) -> Path:
    return cache / "clip"


def download(url: str, dest: Path, timeout: float = 30.0, quiet: bool = False) -> Path:
    """Downloads url to dest with a progress bar; the file appears only when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            got = 0
            with open(part, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                                               disable=quiet, leave=False) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        if total is not None and got != total:
            raise DownloadError(f"download of {url} stopped after {got} of {total} bytes; run the command again")
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        part.unlink(missing_ok=True)
        reason = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", None) or e
        raise DownloadError(
            f"could not download {url}: {reason}. Check the network, or download the file by other means and "
            f"put it at {dest}") from None
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return dest


def fetch_generator(name: str, cache: Path, quiet: bool = False, base_url: str | None = None) -> Path:
    """The cached file of a known generator, downloaded first if missing."""
    if name not in GENERATORS:
        raise KeyError(f"unknown checkpoint {name!r}; known: {', '.join(GENERATORS)}")
    dest = cached_path(name, cache)
    if dest.is_file():
        return dest
    known = GENERATORS[name]
    url = f"{base_url.rstrip('/')}/{known.filename}" if base_url else known.url
    return download(url, dest, quiet=quiet)
