"""Stills from a render: one PNG per cue (its last frame, the most converged image) and a contact sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


class StillsWriter:
    """Fed every frame with its cue index; writes `cueNN.png` when a cue ends, and `contact.png` at close."""

    def __init__(self, out_dir: str | Path, cue_texts: list[str]):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.cue_texts = cue_texts
        self.current: int | None = None
        self.last_frame: np.ndarray | None = None
        self.written: list[tuple[int, Path]] = []

    def add(self, cue: int, frame: np.ndarray) -> None:
        if self.current is not None and cue != self.current:
            self._write()
        self.current, self.last_frame = cue, frame

    def _write(self) -> None:
        if self.last_frame is None or self.current is None or self.current < 0:
            return
        path = self.out_dir / f"cue{self.current:02d}.png"
        Image.fromarray(self.last_frame).save(path)
        self.written.append((self.current, path))

    def close(self) -> Path | None:
        """Writes the last cue's still and the contact sheet; returns the sheet's path (None if no cue)."""
        self._write()
        if not self.written:
            return None
        tiles = [Image.open(path).convert("RGB") for _, path in self.written]
        tile_w, tile_h = tiles[0].size
        columns = min(4, len(tiles))
        rows = -(-len(tiles) // columns)
        caption = 22
        sheet = Image.new("RGB", (columns * tile_w, rows * (tile_h + caption)), (0, 0, 0))
        draw = ImageDraw.Draw(sheet)
        font = ImageFont.load_default(size=14)
        for k, ((cue, _), tile) in enumerate(zip(self.written, tiles)):
            x, y = (k % columns) * tile_w, (k // columns) * (tile_h + caption)
            sheet.paste(tile, (x, y))
            text = self.cue_texts[cue] if cue < len(self.cue_texts) else ""
            draw.text((x + 4, y + tile_h + 3), f"{cue}: {text}"[: max(8, tile_w // 8)], font=font, fill=(230, 230, 230))
        path = self.out_dir / "contact.png"
        sheet.save(path)
        return path
