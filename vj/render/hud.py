"""The HUD: a few lines of status text over the picture, for the performer (off for the audience).

Text is drawn with Pillow into an RGBA image only when it changes, uploaded into one texture, and composited in
the top-left corner with alpha blending: one small quad per displayed frame, no per-frame text rendering. Each
character is drawn with the first font that has it (`fonts.py`); one that no font here has is named in a line of
its own, with the fonts to install.
"""

from __future__ import annotations

import moderngl
import numpy as np
from PIL import Image, ImageDraw

from vj.render.compositor import SHADER_DIR, _source
from vj.render.fonts import INSTALL_HINT, FontChain

FONT_SIZE = 16
PADDING = 8


class Hud:
    def __init__(self, ctx: moderngl.Context, max_width: int = 720):
        self.ctx = ctx
        self.max_width = max_width
        self.fonts = FontChain(FONT_SIZE)
        self.program = ctx.program(vertex_shader=_source(SHADER_DIR / "fullscreen.vert"),
                                   fragment_shader=_source(SHADER_DIR / "hud.frag"))
        self.vao = ctx.vertex_array(self.program, [])
        self.texture: moderngl.Texture | None = None
        self.lines: tuple[str, ...] = ()

    def set_lines(self, lines: list[str] | tuple[str, ...]) -> None:
        """Redraws the text texture if the lines changed."""
        lines = tuple(lines)
        if lines == self.lines:
            return
        self.lines = lines
        missing = self.fonts.missing("".join(lines))
        if missing:
            lines += (f"! no font here for {' '.join(missing[:8])} (install {INSTALL_HINT})",)
        line_height = FONT_SIZE + 4
        width = min(self.max_width, max([int(self.fonts.length(line)) for line in lines] + [1]) + 2 * PADDING)
        height = line_height * max(len(lines), 1) + 2 * PADDING
        image = Image.new("RGBA", (width, height), (0, 0, 0, 150))
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(lines):
            colour = (255, 120, 100, 255) if line.startswith("!") else (235, 235, 235, 255)
            self.fonts.draw(draw, (PADDING, PADDING + i * line_height), line, colour)
        if self.texture is None or self.texture.size != image.size:
            if self.texture is not None:
                self.texture.release()
            self.texture = self.ctx.texture(image.size, 4)
        self.texture.write(np.asarray(image).tobytes())

    def draw(self, framebuffer: moderngl.Framebuffer, size: tuple[int, int] | None = None) -> None:
        """Blends the text over the top-left corner of the framebuffer (size: its current size, for the screen)."""
        if self.texture is None or not self.lines:
            return
        width, height = self.texture.size
        fb_width, fb_height = size or framebuffer.size
        framebuffer.use()
        self.ctx.enable(moderngl.BLEND)
        self.ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        framebuffer.viewport = (0, max(0, fb_height - height), min(width, fb_width), min(height, fb_height))
        self.texture.use(0)
        self.program["u_text"].value = 0
        self.vao.render(moderngl.TRIANGLES, vertices=3)
        framebuffer.viewport = (0, 0, fb_width, fb_height)
        self.ctx.disable(moderngl.BLEND)

    def release(self) -> None:
        for obj in (self.vao, self.program, self.texture):
            if obj is not None:
                obj.release()
