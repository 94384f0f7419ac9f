"""The live window under Xvfb: a real glfw/GLX window draws, reads back, resizes, shows the HUD, closes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO


def test_window_draws_resizes_and_closes(x_display):
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "window_check.py")], cwd=REPO, timeout=120,
                          env={**os.environ, "DISPLAY": x_display}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["size"] == [320, 240]
    assert seen["left"][0] > 200 and seen["left"][2] < 50      # red half of the frame
    assert seen["right"][2] > 200 and seen["right"][0] < 50    # blue half
    assert seen["letterbox"] == [0, 0, 0]                      # 4:3 window, square frame: black bars
    assert seen["resized"] == [400, 200]
    assert max(seen["resized_centre"]) > 200
    assert seen["hud_changed_corner"] and seen["hud_left_rest_alone"]
    assert seen["closed"]
