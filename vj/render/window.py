"""The live window: glfw + moderngl, windowed or full screen on a chosen monitor. It only draws and reports keys;
the show loop decides what to draw."""

from __future__ import annotations

import logging

import glfw
import moderngl

from vj.render.compositor import load_triton_before_gl

log = logging.getLogger(__name__)


class WindowError(RuntimeError):
    """No window could be opened (no display, no OpenGL 3.3)."""


class Window:
    def __init__(self, width: int, height: int, title: str = "vj", fullscreen: bool = False, monitor: int = 0,
                 vsync: bool = True):
        load_triton_before_gl()
        if not glfw.init():
            raise WindowError("glfw could not initialise: is there a display? (set DISPLAY, or run under Xvfb)")
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        target = None
        if fullscreen:
            monitors = glfw.get_monitors() or []
            target = monitors[min(monitor, len(monitors) - 1)] if monitors else None
            if target is not None:
                mode = glfw.get_video_mode(target)
                width, height = mode.size.width, mode.size.height
        self.handle = glfw.create_window(width, height, title, target, None)
        if not self.handle:
            glfw.terminate()
            raise WindowError("could not open an OpenGL 3.3 window")
        glfw.make_context_current(self.handle)
        glfw.swap_interval(1 if vsync else 0)
        self.ctx = moderngl.create_context()
        self.keys: list[int] = []  # pressed since the last poll
        glfw.set_key_callback(self.handle, self._on_key)
        log.info("window %dx%d on %s", *self.framebuffer_size, self.ctx.info["GL_RENDERER"])

    def _on_key(self, window, key, scancode, action, mods) -> None:
        if action == glfw.PRESS:
            self.keys.append(key)

    @property
    def framebuffer_size(self) -> tuple[int, int]:
        return glfw.get_framebuffer_size(self.handle)

    def poll(self) -> list[int]:
        glfw.poll_events()
        keys, self.keys = self.keys, []
        return keys

    @property
    def should_close(self) -> bool:
        return bool(glfw.window_should_close(self.handle))

    def set_title(self, title: str) -> None:
        glfw.set_window_title(self.handle, title)

    def swap(self) -> None:
        glfw.swap_buffers(self.handle)

    def close(self) -> None:
        self.ctx.release()
        glfw.destroy_window(self.handle)
        glfw.terminate()
