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


MONITOR_CHECK = """
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
from vj.render.window import Window
window = Window(64, 64, "vj", fullscreen=True, monitor=1, vsync=False)
print("size", *window.framebuffer_size)
window.toggle_fullscreen(1)  # to windowed: nothing to say
window.toggle_fullscreen(1)  # full screen again, by the F key: said again
window.close()
"""


def test_a_monitor_that_is_not_there_is_named_in_a_warning(x_display):
    """display.monitor=1 with one monitor (Xvfb's) goes full screen on monitor 0, the performer's, and says so,
    naming the monitors found (#26 item 8)."""
    proc = subprocess.run([sys.executable, "-c", MONITOR_CHECK], cwd=REPO, timeout=120,
                          env={**os.environ, "DISPLAY": x_display}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "size 1280 720" in proc.stdout  # Xvfb's one screen, full screen
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 2, proc.stderr
    assert "display.monitor=1, but 1 monitor(s) found (0: screen 1280x720): full screen on monitor 0" in warnings[0]
