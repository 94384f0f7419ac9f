"""Builds pickles in the NVlabs persistent-object format, for tests, from our own modules.

The real files call `torch_utils.persistence._reconstruct_persistent_obj(meta)` with the defining module's
source in `meta['module_src']`, and hold `dnnlib.util.EasyDict` kwargs. Here stand-ins with those exact global
names are registered so `pickle` writes the same opcodes the official files contain.
"""

from __future__ import annotations

import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
import torch


def _module(name: str) -> types.ModuleType:
    if name not in sys.modules:
        sys.modules[name] = types.ModuleType(name)
    return sys.modules[name]


class EasyDict(dict):
    pass


def _reconstruct_persistent_obj(meta):  # never called: our loader maps this global to its own function
    raise AssertionError("the reference reconstruct hook must not run")


EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
_reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
_module("dnnlib")
_module("dnnlib.util").EasyDict = EasyDict
_module("torch_utils")
_module("torch_utils.persistence")._reconstruct_persistent_obj = _reconstruct_persistent_obj


class Persistent:
    def __init__(self, meta: dict):
        self.meta = meta

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


def persistent(module: torch.nn.Module, class_name: str, module_src: str, init_kwargs: dict | None = None) -> Persistent:
    """A module as the reference pickles it: class name, module source, and its __dict__ (nested modules too)."""
    state = {
        "training": False,
        "_parameters": OrderedDict((k, v) for k, v in module._parameters.items()),
        "_buffers": OrderedDict((k, v) for k, v in module._buffers.items()),
        "_non_persistent_buffers_set": set(module._non_persistent_buffers_set),
        "_modules": OrderedDict((k, persistent(m, type(m).__name__, module_src)) for k, m in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": EasyDict(init_kwargs or {}),
        # plain attributes the reference keeps, numpy types included
        "size_example": np.asarray([36, 36]),
        "rate_example": np.float64(16.0),
        "_orig_module_src": module_src,
        "_orig_class_name": class_name,
    }
    return Persistent({"type": "class", "version": 4, "module_src": module_src, "class_name": class_name,
                       "state": state})


def snapshot_pickle(G: torch.nn.Module, init_kwargs: dict, module_src: str, network_only: bool = False) -> bytes:
    g = persistent(G, "Generator", module_src, init_kwargs)
    if network_only:
        data = {"G_ema": g}
    else:
        disc = persistent(torch.nn.Linear(2, 2), "Discriminator", module_src, {"c_dim": 0})
        data = {"G": g, "D": disc, "G_ema": g, "augment_pipe": None,
                "training_set_kwargs": EasyDict(path="~/datasets/x.zip", resolution=64)}
    return pickle.dumps(data, protocol=4)
