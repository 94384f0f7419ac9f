"""Fonts for the HUD: text in any language, each character drawn with the first font that has it.

Prompts are typed in every language (café, 日本の夜, emoji), and no one font covers them all. The candidates are the
system's (DejaVu for Latin, Greek and Cyrillic; Droid Sans Fallback or Noto CJK for Chinese, Japanese and Korean;
Symbola for emoji, in outline), then Pillow's own. Whether a font has a character is read from what it draws: a
font without it draws its "missing glyph" box, the same picture it draws for a private-use code point.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".local/share/fonts",
             Path("/Library/Fonts"), Path("/System/Library/Fonts"), Path("C:/Windows/Fonts"))
# Preferred files, in order (file names as Debian, macOS and Windows ship them).
PREFERRED = ("DejaVuSans.ttf", "NotoSans-Regular.ttf", "Arial.ttf", "arial.ttf", "DroidSansFallbackFull.ttf",
             "NotoSansCJK-Regular.ttc", "wqy-zenhei.ttc", "msgothic.ttc", "Arial Unicode.ttf", "Symbola_hint.ttf",
             "Symbola.ttf", "seguisym.ttf", "seguiemj.ttf")
PROBE = "\ue000"                        # private use: no font draws a real glyph for it
INSTALL_HINT = "fonts-noto-cjk or fonts-droid-fallback, fonts-symbola"


def _find(name: str) -> Path | None:
    for folder in FONT_DIRS:
        if folder.is_dir():
            found = next(folder.rglob(name), None)
            if found is not None:
                return found
    return None


def _drawn(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, char: str) -> bytes:
    size = (64, 64)
    image = Image.new("L", size)
    ImageDraw.Draw(image).text((8, 8), char, font=font, fill=255)
    return image.tobytes()


class FontChain:
    """Fonts in order of preference at one size; `font_for(char)` is the first that has the character."""

    def __init__(self, size: int, paths: list[Path] | None = None):
        paths = [p for p in (paths if paths is not None else map(_find, PREFERRED)) if p is not None]
        self.fonts: list = []
        for path in dict.fromkeys(paths):
            try:
                self.fonts.append(ImageFont.truetype(str(path), size))
            except OSError as e:
                log.debug("font %s unusable: %s", path, e)
        self.fonts.append(ImageFont.load_default(size=size))  # always there, Latin only
        self._missing = [_drawn(font, PROBE) for font in self.fonts]

    @functools.lru_cache(maxsize=4096)
    def _index(self, char: str) -> int | None:
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf"):  # nothing to draw
            return 0
        for i, font in enumerate(self.fonts):
            drawn = _drawn(font, char)
            if drawn != self._missing[i] and any(drawn):
                return i
        return None

    def font_for(self, char: str):
        """The font to draw `char` with (the first one if none has it)."""
        index = self._index(char)
        return self.fonts[0 if index is None else index]

    def missing(self, text: str) -> str:
        """The characters of `text` that no font here can draw."""
        return "".join(dict.fromkeys(c for c in text if self._index(c) is None))

    def runs(self, text: str) -> list[tuple[str, object]]:
        """`text` cut into (piece, font) runs of characters drawn with the same font."""
        pieces: list[tuple[str, object]] = []
        for char in text:
            font = self.font_for(char)
            if pieces and pieces[-1][1] is font:
                pieces[-1] = (pieces[-1][0] + char, font)
            else:
                pieces.append((char, font))
        return pieces

    def length(self, text: str) -> float:
        return sum(font.getlength(piece) for piece, font in self.runs(text))

    def draw(self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill) -> None:
        """Draws `text` with its top-left at xy; every run sits on the first font's baseline."""
        x, baseline = xy[0], xy[1] + self.fonts[0].getmetrics()[0]
        for piece, font in self.runs(text):
            draw.text((x, baseline), piece, font=font, fill=fill, anchor="ls")
            x += font.getlength(piece)
