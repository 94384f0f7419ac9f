"""What the benchmark and soak scripts need to run a show without a screen: an X server (Xvfb) when there is no
display. Imported by the scripts beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path


def start_xvfb(size: str = "1920x1080") -> subprocess.Popen | None:
    """An X server for the window when there is no display (DISPLAY is set to it); None when there is one."""
    if os.environ.get("DISPLAY"):
        return None
    number = next(n for n in range(120, 170) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    proc = subprocess.Popen([shutil.which("Xvfb") or "Xvfb", f":{number}", "-screen", "0", f"{size}x24",
                             "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.environ["DISPLAY"] = f":{number}"
    return proc
