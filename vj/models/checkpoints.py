"""Loads official StyleGAN3 `.pkl` checkpoints without running any code stored in them.

The reference loader executes the Python source embedded in each pickle. Ours unpickles with an allow-list of
globals (the ones the official files use, each mapped to a safe stand-in), turns every persistent object into
plain data (`PersistentObject`), rebuilds a state dict from it and loads it into our own `Generator`.
Tensor storages stored as nested torch files are read with `torch.load(weights_only=True)`.

Our own export (`convert`) is a `.safetensors` file of the state dict plus a `.json` of the init kwargs; a load of
`X.pkl` takes `X.safetensors` instead when the export exists and is newer.
"""

from __future__ import annotations

import io
import json
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vj.errors import UserError
from vj.models.stylegan3 import Generator

try:  # numpy 2 moved the pickling helpers; files written with either name resolve here
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]


class CheckpointError(UserError):
    """A checkpoint that cannot be loaded, with the reason in words."""


class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: a plain dict as far as we are concerned."""


@dataclass
class PersistentObject:
    """What the reference pickles as a persistent object, kept as data: its class name and its __dict__."""

    class_name: str
    state: dict[str, Any] = field(default_factory=dict)


def _reconstruct_persistent_obj(meta: dict) -> PersistentObject:
    # The module source in `meta` is the code the reference would execute; we only keep the class name.
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise CheckpointError("malformed persistent object in checkpoint")
    return PersistentObject(class_name=str(meta.get("class_name")), state=dict(meta["state"]))


def _load_storage_from_bytes(data: bytes) -> Any:
    # torch.storage._load_from_bytes would call torch.load(weights_only=False) on these bytes.
    if not isinstance(data, (bytes, bytearray)):
        raise CheckpointError("malformed tensor storage in checkpoint")
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001  torch's readers raise anything (even AssertionError) on corrupt bytes
        raise CheckpointError(f"a tensor storage is unreadable (truncated or corrupt?): {type(e).__name__}: "
                              f"{str(e)[:200]}") from None


def _numpy_scalar(dtype: np.dtype, *args: Any) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise CheckpointError("checkpoint holds a numpy object scalar, which is refused")
    return _multiarray.scalar(dtype, *args)


SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals; anything else is refused before it can be called."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(f"checkpoint refers to the global '{module}.{name}', which is not allowed "
                                  f"(only StyleGAN3 network data is loaded; nothing in the file is executed)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError("checkpoint uses persistent ids, which the official StyleGAN3 pickles do not")


def read_pickle(path: str | Path) -> Any:
    """Unpickles an official checkpoint into plain data (dicts, tensors, PersistentObject)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, MemoryError, UnicodeDecodeError, OverflowError) as e:
        raise CheckpointError(f"{path}: not a readable StyleGAN3 checkpoint (truncated or corrupt?): "
                              f"{type(e).__name__}: {e}") from None


def generator_record(data: Any, path: str | Path = "<checkpoint>") -> PersistentObject:
    """The generator in unpickled checkpoint data: `G_ema` if present, else `G`."""
    if isinstance(data, PersistentObject):
        record = data
    elif isinstance(data, dict):
        record = data.get("G_ema", data.get("G"))
    else:
        record = None
    if not isinstance(record, PersistentObject):
        raise CheckpointError(f"{path}: holds no StyleGAN generator (expected a dict with 'G_ema' or 'G')")
    if record.class_name != "Generator":
        raise CheckpointError(f"{path}: the generator's class is {record.class_name!r}, expected 'Generator'")
    return record


def _plain(value: Any, where: str) -> Any:
    """Init kwargs as plain Python values (EasyDict to dict, numpy scalars to numbers); anything else refused."""
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(f"init argument {where} has unsupported type {type(value).__name__}")


def _state_dict_of(record: PersistentObject, prefix: str = "") -> dict[str, torch.Tensor]:
    state = record.state
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    out: dict[str, torch.Tensor] = {}
    for kind in ("_parameters", "_buffers"):
        for name, tensor in (state.get(kind) or {}).items():
            if tensor is None or (kind == "_buffers" and name in non_persistent):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"{prefix}{name} is a {type(tensor).__name__}, not a tensor")
            out[prefix + name] = tensor.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise CheckpointError(f"sub-module {prefix}{name} is not a network object")
        out.update(_state_dict_of(child, f"{prefix}{name}."))
    return out


def generator_from_record(record: PersistentObject, path: str | Path = "<checkpoint>") -> Generator:
    kwargs = _plain(record.state.get("_init_kwargs") or {}, "init_kwargs")
    if record.state.get("_init_args"):
        raise CheckpointError(f"{path}: positional init arguments are not supported")
    return build_generator(kwargs, _state_dict_of(record), path)


def build_generator(init_kwargs: dict, state_dict: dict[str, torch.Tensor], path: str | Path = "<checkpoint>") -> Generator:
    """Our Generator from reference init kwargs and a reference-named state dict (strict load)."""
    try:
        G = Generator(**init_kwargs)
    except TypeError as e:
        raise CheckpointError(f"{path}: unsupported generator arguments: {e}") from None
    try:
        G.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the generator they describe: {e}") from None
    return G.eval().requires_grad_(False)


def export_paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def convert(path: str | Path) -> tuple[Path, Path]:
    """Writes `X.safetensors` (state dict) and `X.json` (init kwargs) next to `X.pkl`; returns their paths."""
    from safetensors.torch import save_file

    G = generator_from_record(generator_record(read_pickle(path), path), path)
    weights, config = export_paths(path)
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(weights))
    config.write_text(json.dumps({"format": "vj-stylegan3", "init_kwargs": G.init_kwargs}, indent=1))
    return weights, config


def load_exported(weights: str | Path, config: str | Path | None = None) -> Generator:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = Path(weights)
    config = Path(config) if config else weights.with_suffix(".json")
    try:
        meta = json.loads(config.read_text())
        init_kwargs = meta["init_kwargs"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{config}: not a vj generator config: {e}") from None
    try:
        state = load_file(str(weights))
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"{weights}: not a readable safetensors file: {e}") from None
    return build_generator(init_kwargs, state, weights)


def load_generator(path: str | Path) -> Generator:
    """Loads a generator from `.pkl` (official), or `.safetensors` (our export). Takes the export when newer."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_exported(path)
    weights, config = export_paths(path)
    if path.exists() and weights.exists() and config.exists() and weights.stat().st_mtime >= path.stat().st_mtime:
        return load_exported(weights, config)
    return generator_from_record(generator_record(read_pickle(path), path), path)
