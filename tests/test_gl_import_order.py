"""A GL context and Triton in one process: vj's contexts must survive a later torch.compile / open_clip import."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_triton_after_headless_context_does_not_crash():
    code = ("from vj.render.compositor import headless_context\n"
            "ctx = headless_context()\n"
            "import torch._dynamo, open_clip\n"
            "print('alive')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0 and "alive" in proc.stdout, proc.stderr[-2000:]
