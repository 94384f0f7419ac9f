"""The HUD draws prompts in any language, and says so when a character has no font on this machine."""

from __future__ import annotations

import numpy as np
import pytest

from vj.render.fonts import PROBE, FontChain, _drawn
from vj.render.hud import Hud


@pytest.fixture(scope="module")
def fonts():
    return FontChain(16)


@pytest.mark.parametrize("text", ["café", "Ωμέγα", "ночь", "日本の夜", "北京", "🎛🔥"])
def test_every_script_has_a_font(fonts, text):
    assert fonts.missing(text) == ""
    for char in text:  # drawn as a glyph, not as the font's missing-glyph box
        font = fonts.font_for(char)
        drawn = _drawn(font, char)
        assert any(drawn) and drawn != _drawn(font, PROBE), char


def test_the_default_font_alone_would_draw_boxes():
    """Why the chain exists: Pillow's own font has no Japanese."""
    only_pillow = FontChain(16, paths=[])
    assert only_pillow.missing("日本の夜") == "日本の夜" and only_pillow.missing("cafe") == ""


def _text_pixels(hud: Hud) -> np.ndarray:
    data = np.frombuffer(hud.texture.read(), np.uint8).reshape(*hud.texture.size[::-1], 4)
    return data[..., :3].max(axis=2) > 128


def test_hud_draws_japanese_and_names_what_it_cannot_draw(gl_context):
    hud = Hud(gl_context)
    try:
        hud.set_lines(["日本の夜"])
        assert _text_pixels(hud).sum() > 50 and hud.texture.size[1] < 60  # one line, drawn
        hud.set_lines(["a prompt \U000f0000"])  # supplementary private use: no font has it
        assert hud.texture.size[1] > 40  # a second line: the warning
        assert FontChain(16).missing("a prompt \U000f0000") == "\U000f0000"
    finally:
        hud.release()
