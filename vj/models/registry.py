"""Known public checkpoints, the local cache, and downloads (mirrors in order, resume, checks) with progress.

StyleGAN3 pickles come from their publishers' URLs, tried in order; CLIP weights come through open_clip's own
download (its `cache_dir` pointed into our cache). Nothing is downloaded at import or without being asked.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from vj.errors import UserError

log = logging.getLogger(__name__)

NVIDIA_BASE = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files"
NVIDIA_LICENCE = "NVIDIA Source Code License: non-commercial use only"
RESUMES = 3                             # Range requests after a dropped connection, per URL, while the file grows


@dataclass(frozen=True)
class KnownCheckpoint:
    name: str                           # what users type: `vj models fetch NAME`, `model.generator = "NAME"`
    urls: tuple[str, ...]               # where the file is published, tried in order (publisher first, then mirrors)
    resolution: int                     # output size in pixels (square), as the registry believes
    config: str                         # "T" (translation equivariant) or "R" (rotation equivariant)
    size: int | None                    # bytes; None = unknown
    size_approximate: bool              # True when only a rounded published figure is known
    sha256: str | None                  # of the whole file, where published; checked after each download
    licence: str                        # one line: what the weights may be used for
    good_for: str                       # what a VJ would pick it for, and whose it is

    @property
    def filename(self) -> str:
        """The cached file's name: the first URL's."""
        return self.urls[0].rsplit("/", 1)[-1]

    @property
    def size_text(self) -> str:
        if self.size is None:
            return "size unknown"
        return f"{self.size / 1e6:.0f} MB{' (approx.)' if self.size_approximate else ''}"


def _nvidia(cfg: str, dataset: str, resolution: int, good_for: str, trained_on: str) -> KnownCheckpoint:
    name = f"stylegan3-{cfg.lower()}-{dataset}-{resolution}x{resolution}"
    return KnownCheckpoint(name, (f"{NVIDIA_BASE}/{name}.pkl",), resolution, cfg, size=None, size_approximate=False,
                           sha256=None, licence=NVIDIA_LICENCE,
                           good_for=f"{good_for} (NVIDIA, trained on {trained_on})")


_NVIDIA_DATASETS = (  # (dataset, resolution, good for, trained on)
    ("ffhq", 1024, "faces, aligned and centred", "FFHQ"),
    ("ffhqu", 1024, "faces, free to move in the frame", "FFHQ unaligned"),
    ("ffhqu", 256, "faces, free to move in the frame; fast", "FFHQ unaligned"),
    ("afhqv2", 512, "animal faces: cats, dogs, wild animals", "AFHQv2"),
    ("metfaces", 1024, "faces in paintings, aligned", "MetFaces"),
    ("metfacesu", 1024, "faces in paintings, free to move in the frame", "MetFaces unaligned"),
)

PINKNEY = (
    KnownCheckpoint(
        "lhq-256",
        ("https://huggingface.co/justinpinkney/stylegan3-t-lhq-256/resolve/main/lhq-256-stylegan3-t-25Mimg.pkl",
         "https://archive.org/download/lhq-256-stylegan3-t-25Mimg/lhq-256-stylegan3-t-25Mimg.pkl"),
        256, "T",
        size=343_000_000, size_approximate=True,  # "343 MB" on the Hugging Face page; the exact bytes are not given
        sha256="cdf396b1e68a7da77faa292b3360e97bab42d12f0817016616a2146b8ed4a10a",  # Hugging Face LFS details
        licence="MIT (per its Hugging Face model card)",
        good_for="landscapes: skies, water, fire, night (Justin Pinkney, trained on LHQ); fast"),
    KnownCheckpoint(
        "wikiart-1024",
        ("https://archive.org/download/wikiart-1024-stylegan3-t-17.2Mimg/wikiart-1024-stylegan3-t-17.2Mimg.pkl",),
        1024, "T",
        size=None, size_approximate=False, sha256=None,
        licence="not stated by the author (WikiArt images: check before commercial use)",
        good_for="paintings (Justin Pinkney, trained on WikiArt)"),
)

GENERATORS: dict[str, KnownCheckpoint] = {
    c.name: c for c in (
        *PINKNEY,
        *(_nvidia(cfg, *dataset) for cfg in ("T", "R") for dataset in _NVIDIA_DATASETS),
    )
}
DEFAULT_GENERATOR = "lhq-256"

# open_clip (model name, pretrained tag) pairs we name in docs and configs; any open_clip pair works.
CLIP_MODELS: dict[str, tuple[str, str]] = {
    "ViT-B-32/openai": ("ViT-B-32", "openai"),
    "ViT-B-16/openai": ("ViT-B-16", "openai"),
    "ViT-L-14/openai": ("ViT-L-14", "openai"),
}
DEFAULT_CLIP = "ViT-B-32/openai"


class DownloadError(UserError):
    """A download that failed, with what to do about it."""


class _UrlFailed(Exception):
    """One URL that did not give the file; the message says why, and the next URL is tried."""


class _Interrupted(_UrlFailed):
    """The body stopped early; `grew`: the .part file is longer than before, so resuming is worth a try."""

    def __init__(self, message: str, grew: bool):
        super().__init__(message)
        self.grew = grew


def cache_dir(configured: str | os.PathLike | None = None) -> Path:
    """The cache folder: the configured one, else $VJ_CACHE, else $XDG_CACHE_HOME/vj, else ~/.cache/vj."""
    if configured:
        return Path(configured).expanduser()
    if os.environ.get("VJ_CACHE"):
        return Path(os.environ["VJ_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "vj"


def is_url(spec: str) -> bool:
    return spec.startswith(("https://", "http://"))


def url_filename(url: str) -> str:
    """A cache file name for a checkpoint URL: its basename plus a short hash of the whole URL (two URLs that end
    in the same name do not share a file, and none collides with a known checkpoint's name)."""
    path = urllib.parse.urlparse(url).path
    if not path.endswith(".pkl"):
        raise UserError(f"model.generator: a URL must name an official StyleGAN3 .pkl file, got {url!r}")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(urllib.parse.unquote(path)).stem)[:80] or "checkpoint"
    return f"{stem}-{hashlib.sha256(url.encode()).hexdigest()[:10]}.pkl"


def cached_path(spec: str, cache: Path) -> Path:
    """Where a known checkpoint (by name) or a checkpoint URL is cached."""
    filename = url_filename(spec) if is_url(spec) else GENERATORS[spec].filename
    return cache / "stylegan3" / filename


def is_cached(spec: str, cache: Path) -> bool:
    return cached_path(spec, cache).is_file()


def clip_cache_dir(cache: Path) -> Path:
    return cache / "clip"


def config_of(init_kwargs: dict) -> str:
    """ "R" or "T" from a generator's init kwargs: the R config has 1x1 convolutions and radial filters."""
    return "R" if init_kwargs.get("conv_kernel", 3) == 1 or init_kwargs.get("use_radial_filters") else "T"


def unlike_registry(known: KnownCheckpoint, init_kwargs: dict) -> str | None:
    """What a checkpoint's own init kwargs say that the registry entry does not, in words; None when they agree."""
    found = (init_kwargs.get("img_resolution"), config_of(init_kwargs))
    if found == (known.resolution, known.config):
        return None
    return (f"the registry lists {known.name} as {known.resolution}x{known.resolution} StyleGAN3-{known.config}, "
            f"but the checkpoint is {found[0]}x{found[0]} StyleGAN3-{found[1]}; going by the checkpoint")


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """(first byte, total or None) from `bytes first-last/total`."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not match:
        return None
    return int(match[1]), None if match[2] == "*" else int(match[2])


def _fetch_once(url: str, part: Path, label: str, timeout: float, quiet: bool) -> None:
    """One request: the whole file into `part`, or the rest of it after what `part` holds (Range)."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "vj"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the kept part is no prefix of this file (as long or longer): start over
            part.unlink()
            return _fetch_once(url, part, label, timeout, quiet)
        raise _UrlFailed(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise _UrlFailed(str(e.reason)) from None
    except (OSError, http.client.HTTPException) as e:
        raise _UrlFailed(str(e) or type(e).__name__) from None
    with response:
        length = int(response.headers.get("Content-Length") or 0) or None
        resumed = _content_range(response.headers.get("Content-Range")) if response.status == 206 else None
        if offset and resumed is not None and resumed[0] == offset:
            start = offset
            total = resumed[1] or (offset + length if length else None)
        elif response.status == 200:  # the whole file (a server that ignores Range too): start over
            start, total = 0, length
        else:
            raise _UrlFailed(f"unexpected answer HTTP {response.status} (Content-Range "
                             f"{response.headers.get('Content-Range')!r} for bytes {offset}-)")
        got = start
        with open(part, "ab" if start else "wb") as out, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                                             desc=label, disable=quiet, leave=False) as bar:
            try:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as e:  # reset, timeout, IncompleteRead
                raise _Interrupted(f"connection lost after {got} of {total or '?'} bytes ({e or type(e).__name__})",
                                   grew=got > offset) from None
    if total is not None and got < total:
        raise _Interrupted(f"stopped after {got} of {total} bytes", grew=got > offset)


def _fetch_resuming(url: str, part: Path, label: str, timeout: float, quiet: bool) -> None:
    for resume in range(RESUMES + 1):
        try:
            return _fetch_once(url, part, label, timeout, quiet)
        except _Interrupted as e:
            if not e.grew or resume == RESUMES:
                raise
            log.info("%s: %s; resuming from byte %d", url, e, part.stat().st_size)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def download(urls: str | Sequence[str], dest: Path, sha256: str | None = None, timeout: float = 30.0,
             quiet: bool = False) -> Path:
    """Downloads the file at the first URL that gives it whole to dest, with a progress bar.

    The bytes go to `dest.part` first, and become `dest` only when complete (Content-Length) and, with `sha256`,
    when their hash matches. A dropped connection is resumed with a Range request from `dest.part` (here, and on
    the next call: the part is kept); a wrong hash deletes it. Mirrors of one checkpoint hold the same bytes, so a
    part begun at one URL may be finished from the next (the hash, where published, vouches for the result).
    """
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    for i, url in enumerate(urls):
        try:
            _fetch_resuming(url, part, dest.name, timeout, quiet)
            if sha256 and (got := _sha256(part)) != sha256.lower():
                part.unlink()
                raise _UrlFailed(f"SHA-256 {got[:16]}... is not the published {sha256[:16]}...: the file was refused")
        except _UrlFailed as e:
            failures.append(f"{url} ({e})")
            if i + 1 < len(urls):
                log.info("could not download %s: %s; trying %s", url, e, urls[i + 1])
            continue
        part.replace(dest)
        return dest
    kept = (f" The {part.stat().st_size} bytes received are kept in {part}: the next try resumes from there."
            if part.is_file() else "")
    where = (f"could not download {failures[0]}" if len(failures) == 1 else
             f"could not download {dest.name} from any of its {len(failures)} URLs: {'; '.join(failures)}")
    raise DownloadError(f"{where}. Check the network and run it again, or download the file by other means and put "
                        f"it at {dest}.{kept}")


def fetch_generator(spec: str, cache: Path, quiet: bool = False, base_url: str | None = None) -> Path:
    """The cached file of a known generator (by name) or of a checkpoint URL, downloaded first if missing.

    `base_url`: a mirror folder holding the known checkpoint under its usual file name, tried instead of its URLs.
    """
    if not is_url(spec) and spec not in GENERATORS:
        raise UserError(f"unknown checkpoint {spec!r}; known: {', '.join(GENERATORS)} (or a https://... .pkl URL)")
    dest = cached_path(spec, cache)
    if dest.is_file():
        return dest
    if is_url(spec):
        return download(spec, dest, quiet=quiet)
    known = GENERATORS[spec]
    urls = (f"{base_url.rstrip('/')}/{known.filename}",) if base_url else known.urls
    return download(urls, dest, sha256=known.sha256, quiet=quiet)
