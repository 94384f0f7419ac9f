"""Weighted prompts: `a city at night:1 | neon rain:0.5 | text, watermark:-0.5`.

Prompts are separated by `|`; a prompt may end in `:weight` (a number, negative pushes the image away from it);
without one its weight is 1. A colon followed by anything but a number is part of the text (`time: 4am`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_WEIGHT = re.compile(r"^(?P<text>.*?)\s*:\s*(?P<weight>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$", re.S)


class PromptError(ValueError):
    """A prompt that cannot be used; the message says which part and why."""


@dataclass(frozen=True)
class WeightedPrompt:
    text: str                           # what CLIP reads
    weight: float = 1.0                 # >0 pulls towards, <0 pushes away


def parse_prompts(text: str) -> list[WeightedPrompt]:
    """Parses `a:1 | b:0.5`; empty parts are skipped; returns [] for empty text."""
    prompts = []
    for part in text.split("|"):
        part = " ".join(part.split())
        if not part:
            continue
        match = _WEIGHT.match(part)
        if match and match.group("text").strip():
            weight = float(match.group("weight"))
            if not math.isfinite(weight):
                raise PromptError(f"prompt {part!r}: weight must be a finite number")
            prompts.append(WeightedPrompt(match.group("text").strip(), weight))
        elif match:
            raise PromptError(f"prompt {part!r}: a weight needs text before it")
        else:
            prompts.append(WeightedPrompt(part, 1.0))
    return prompts


def format_prompts(prompts: list[WeightedPrompt]) -> str:
    return " | ".join(f"{p.text}:{p.weight:g}" for p in prompts)
