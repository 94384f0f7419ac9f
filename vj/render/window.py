"""The live window: glfw + moderngl, windowed or full screen on a chosen monitor. It only draws and reports keys;
the show loop decides what to draw. `OffscreenWindow` is the same surface without a display (EGL and a framebuffer):
the live benchmark and the device check run the whole show with it."""

from __future__ import annotations

import logging

import glfw
import moderngl
import numpy as np

from vj.errors import UserError
from vj.render.compositor import SHADER_DIR, _source, load_triton_before_gl

log = logging.getLogger(__name__)


class WindowError(UserError, RuntimeError):
    """No window could be opened (no display, no OpenGL 3.3)."""


def _monitor(index: int):
    """The glfw monitor `display.monitor` names, or the last there is, with a warning naming those found: going full
    screen on the performer's own screen by surprise is worse than a line in the log (None: no monitor at all)."""
    monitors = glfw.get_monitors() or []
    if not monitors:
        log.warning("no monitor to go full screen on")
        return None
    if index < len(monitors):
        return monitors[index]
    found = ", ".join(f"{i}: {_monitor_name(m)}" for i, m in enumerate(monitors))
    log.warning("display.monitor=%d, but %d monitor(s) found (%s): full screen on monitor %d instead; plug in the "
                "projector (and check its cable), or set display.monitor", index, len(monitors), found,
                len(monitors) - 1)
    return monitors[-1]


def _monitor_name(monitor) -> str:
    name = glfw.get_monitor_name(monitor) or b"?"
    mode = glfw.get_video_mode(monitor)
    return f"{name.decode(errors='replace') if isinstance(name, bytes) else name} {mode.size.width}x{mode.size.height}"


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
            target = _monitor(monitor)
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
        self._windowed = (0, 0, width, height)  # x, y, w, h to return to from full screen
        glfw.set_key_callback(self.handle, self._on_key)
        # ctx.screen keeps the size it was created with; drawing through a pass at the current size survives resizes.
        self._presenter = _Presenter(self.ctx)
        log.info("window %dx%d on %s", *self.framebuffer_size, self.ctx.info["GL_RENDERER"])

    @property
    def screen(self) -> moderngl.Framebuffer:
        """What present() and the HUD draw into."""
        return self.ctx.screen

    def _on_key(self, window, key, scancode, action, mods) -> None:
        if action == glfw.PRESS:
            self.keys.append(key)

    def present(self, texture: moderngl.Texture | None) -> None:
        """Draws the texture over the whole window (black if None); the HUD may draw on top before swap()."""
        self._presenter.present(self.screen, self.framebuffer_size, texture)

    def read(self) -> np.ndarray:
        """What the window shows now, [H, W, 3] uint8, top row first (before swap())."""
        return self._presenter.read(self.screen, self.framebuffer_size)

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

    def toggle_fullscreen(self, monitor: int = 0) -> None:
        """Windowed <-> full screen on the given monitor (the windowed size and place are remembered)."""
        current = glfw.get_window_monitor(self.handle)
        if current:
            x, y, w, h = self._windowed
            glfw.set_window_monitor(self.handle, None, x, y, w, h, 0)
            return
        target = _monitor(monitor)
        if target is None:
            return
        self._windowed = (*glfw.get_window_pos(self.handle), *glfw.get_window_size(self.handle))
        mode = glfw.get_video_mode(target)
        glfw.set_window_monitor(self.handle, target, 0, 0, mode.size.width, mode.size.height, mode.refresh_rate)

    def set_title(self, title: str) -> None:
        glfw.set_window_title(self.handle, title)

    def swap(self) -> None:
        glfw.swap_buffers(self.handle)

    def close(self) -> None:
        self._presenter.release()
        self.ctx.release()
        glfw.destroy_window(self.handle)
        glfw.terminate()


class OffscreenWindow:
    """A window's interface over an EGL context and a framebuffer: no display, no keys; swap() waits for the GPU
    to finish the frame, as a swap with vsync off would."""

    def __init__(self, width: int, height: int, title: str = "vj", *_: object, **__: object):
        from vj.render.compositor import headless_context

        self.ctx = headless_context()
        self.screen = self.ctx.simple_framebuffer((width, height), components=4)
        self.framebuffer_size = (width, height)
        self.title = title
        self.should_close = False
        self._presenter = _Presenter(self.ctx)
        log.info("offscreen %dx%d on %s", width, height, self.ctx.info["GL_RENDERER"])

    def present(self, texture: moderngl.Texture | None) -> None:
        self._presenter.present(self.screen, self.framebuffer_size, texture)

    def read(self) -> np.ndarray:
        return self._presenter.read(self.screen, self.framebuffer_size)

    def poll(self) -> list[int]:
        return []

    def toggle_fullscreen(self, monitor: int = 0) -> None:
        pass

    def set_title(self, title: str) -> None:
        self.title = title

    def swap(self) -> None:
        self.ctx.finish()

    def close(self) -> None:
        self._presenter.release()
        self.screen.release()
        self.ctx.release()


class _Presenter:
    """Draws a texture over a whole framebuffer (black where there is none) and reads it back: what both windows
    show."""

    def __init__(self, ctx: moderngl.Context):
        self.ctx = ctx
        self.program = ctx.program(vertex_shader=_source(SHADER_DIR / "fullscreen.vert"),
                                   fragment_shader=_source(SHADER_DIR / "present.frag"))
        self.vao = ctx.vertex_array(self.program, [])

    def present(self, screen: moderngl.Framebuffer, size: tuple[int, int], texture: moderngl.Texture | None) -> None:
        screen.use()
        screen.viewport = (0, 0, *size)
        self.ctx.clear(0.0, 0.0, 0.0)
        if texture is not None:
            texture.use(0)
            self.program["u_input"].value = 0
            self.vao.render(moderngl.TRIANGLES, vertices=3)

    @staticmethod
    def read(screen: moderngl.Framebuffer, size: tuple[int, int]) -> np.ndarray:
        """[H, W, 3] uint8, top row first."""
        w, h = size
        data = screen.read(viewport=(0, 0, w, h), components=3, alignment=1)
        return np.frombuffer(data, np.uint8).reshape(h, w, 3)[::-1]

    def release(self) -> None:
        self.vao.release()
        self.program.release()
