"""Keeps freed memory in the process for reuse, for networks running on the CPU (glibc only).

Each frame allocates and frees the same large activations. glibc serves blocks above its mmap threshold (at most
32 MiB by default) straight from the kernel and unmaps them on free, so every frame page-faults its whole working
set in again: about a quarter of StyleGAN3-T's CPU time at 256x256 (BENCHMARKS.md). Raising the mmap and trim
thresholds makes freed blocks stay in the heap for the next frame, which is what jemalloc or tcmalloc would
give. The cost is that the process keeps its peak working set; a show process wants that anyway.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1                   # glibc mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
_applied = False


def keep_freed_memory() -> bool:
    """Applies the setting once per process; returns whether it is in effect (False off glibc)."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        _applied = bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (musl, ...): keep the defaults
        return False
    log.debug("glibc keeps freed memory for reuse: %s", _applied)
    return _applied
