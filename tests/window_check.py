"""Run by test_window.py under Xvfb: a real glfw window draws the compositor's output, reads it back, resizes,
draws the HUD, and closes. Prints one JSON line of what it saw."""

from __future__ import annotations

import json
import time

import glfw
import numpy as np

from vj.render.compositor import Compositor, EffectInputs
from vj.render.hud import Hud
from vj.render.window import Window


def draw(window: Window, compositor: Compositor, hud: Hud | None = None) -> np.ndarray:
    window.present(compositor.render(EffectInputs()).color_attachments[0])
    if hud is not None:
        hud.draw(window.ctx.screen, window.framebuffer_size)
    pixels = window.read()
    window.swap()
    return pixels


def main() -> None:
    out = {}
    window = Window(320, 240, "vj test", vsync=False)
    out["size"] = list(window.framebuffer_size)
    compositor = Compositor(window.ctx, *window.framebuffer_size, [], fit="contain")
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[:, :32] = (255, 0, 0)
    frame[:, 32:] = (0, 0, 255)
    compositor.upload(frame)
    compositor.upload(frame)
    pixels = draw(window, compositor)
    out["left"] = pixels[120, 120].tolist()    # inside the letterboxed square, left half
    out["right"] = pixels[120, 200].tolist()
    out["letterbox"] = pixels[120, 10].tolist()
    glfw.set_window_size(window.handle, 400, 200)
    deadline = time.time() + 5
    while window.framebuffer_size == (320, 240) and time.time() < deadline:
        window.poll()
        time.sleep(0.02)
    out["resized"] = list(window.framebuffer_size)
    compositor.release()
    compositor = Compositor(window.ctx, *window.framebuffer_size, [], fit="contain")
    compositor.upload(frame)
    compositor.upload(frame)
    plain = draw(window, compositor)
    out["resized_centre"] = plain[100, 180].tolist()
    hud = Hud(window.ctx)
    hud.set_lines(["cue 3: a neon city", "60.0 fps"])
    with_hud = draw(window, compositor, hud)
    out["hud_changed_corner"] = bool(np.abs(with_hud[:30, :100].astype(int) - plain[:30, :100]).sum() > 1000)
    out["hud_left_rest_alone"] = bool(np.array_equal(with_hud[150:, 300:], plain[150:, 300:]))
    hud.release()
    compositor.release()
    window.close()
    out["closed"] = True
    print(json.dumps(out))


if __name__ == "__main__":
    main()
