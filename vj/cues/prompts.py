"""Weighted prompts: `a city at night:1 | neon rain:0.5 | text, watermark:-0.5`.

Prompts are separated by `|`; a prompt may end in `:weight`, a number written right after its text (no space
either side of the colon); negative pushes the image away from it; without one its weight is 1. Anything else
with a colon is text: `time: 4am`, `love me like you do :3` (a space before the colon), and a digit, colon, whole
number, as in times and ratios (`meet me at 10:30`, `16:9`); after a digit write the weight with a point or a
sign (`a city in 2077:2.0`), as `format_prompts` does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from vj.errors import UserError

# One way to match each number (no nested optional digits), so a failed match cannot backtrack for long.
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


class PromptError(UserError, ValueError):
    """A prompt that cannot be used; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class WeightedPrompt:
    text: str                           # what CLIP reads
    weight: float = 1.0                 # >0 pulls towards, <0 pushes away


def parse_prompts(text: str, notes: list[str] | None = None) -> list[WeightedPrompt]:
    """Parses `a:1 | b:0.5`; empty parts are skipped; returns [] for empty text. A part that ends in what looks
    like a weight but is kept as text adds a line to `notes` (a cue sheet's strict check shows them)."""
    if "|" not in text and ":" not in text:  # most lyric lines: one prompt, weight 1
        part = " ".join(text.split())
        return [WeightedPrompt(part if part != text else text)] if part else []  # text's own str: less memory
    prompts = []
    for part in text.split("|"):
        part = " ".join(part.split())
        if part:
            prompts.append(_weighted(part, notes))
    return prompts


def _weighted(part: str, notes: list[str] | None) -> WeightedPrompt:
    head, colon, tail = part.rpartition(":")
    if not colon or not _NUMBER.fullmatch(tail.strip()):
        return WeightedPrompt(part)
    if not head and tail == tail.strip():
        raise PromptError(f"prompt {part!r}: a weight needs text before it")
    time_or_ratio = head[-1:].isdigit() and tail.isdigit()  # 10:30, 16:9
    if not head or head[-1] in " :" or tail != tail.strip() or time_or_ratio:
        if notes is not None:
            notes.append(f"{part!r}: ':{tail.strip()}' kept as text (a weight is written right after its text, "
                         "as in 'rain:0.5')")
        return WeightedPrompt(part)
    weight = float(tail)
    if not math.isfinite(weight):
        raise PromptError(f"prompt {part!r}: weight must be a finite number")
    return WeightedPrompt(head, weight)


def format_prompts(prompts: list[WeightedPrompt]) -> str:
    """The weighted syntax `parse_prompts` reads back to the same prompts."""
    return " | ".join(f"{p.text}:{_weight_text(p)}" for p in prompts)


def _weight_text(prompt: WeightedPrompt) -> str:
    weight = f"{prompt.weight:g}"
    return f"{weight}.0" if prompt.text[-1:].isdigit() and weight.isdigit() else weight  # not read as a time
