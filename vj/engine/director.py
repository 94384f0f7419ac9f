"""What each generated frame should be: the prompt mix, the number of guided steps, the step size and the
generator's view, from the show state, the cue sheet and the audio.

The live engine worker, the offline render and `vj replay` all ask one `Director`, so a render of a cue sheet
and a replay of a recorded show follow the same rules as the show itself. A cue's own settings apply when the cue
starts: `{steps=N}` sets the show's `steps_per_frame` (as if a performer had turned it, so a later turn still
wins) from that cue on, `{boost=X}` is that cue's step-size boost. When the show moves back before a `{steps}`
cue (Home, a seek, a cue jump, a loop), the steps become what they were there (the earlier cue's setting, or
the value before the sheet set any), so a rewound rehearsal looks like the render, unless the performer has
turned the knob since the last cue set it: then their value stands.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from vj.audio.features import AudioFeatures
from vj.config import DirectorConfig
from vj.control.state import ShowSnapshot, ShowState
from vj.cues.prompts import PromptError, WeightedPrompt, format_prompts, parse_prompts
from vj.cues.timeline import CueState
from vj.engine.motion import Motion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FramePlan:
    cue: int                            # live cue index (-1 = none)
    prompts: tuple[WeightedPrompt, ...]
    steps: int                          # guided steps for this frame (0 = hold the image)
    lr: float                           # step size
    transform: np.ndarray               # [3, 3] float32 generator input transform
    snapshot: ShowSnapshot              # the show state the plan was made from (effects read it too)
    fade: float = 1.0                   # 0..1 progress of the crossfade into the live cue
    snap_to: tuple[WeightedPrompt, ...] = ()  # the live cue's prompts when its start glides to the latent bank

    def as_record(self) -> dict:
        """The plan as a frames log writes it (JSON-ready, rounded)."""
        return {"cue": self.cue, "prompts": [{"text": p.text, "weight": round(p.weight, 6)} for p in self.prompts],
                "mix": format_prompts(list(self.prompts)), "steps": self.steps, "lr": round(self.lr, 6),
                "params": {k: round(v, 6) for k, v in self.snapshot.values.items()},
                "freeze": self.snapshot.freeze, "blackout": self.snapshot.blackout}


def learning_rate(lr: float, cue_boost: float, boost_decay_s: float, audio_gain: float, since_cue_change: float,
                  envelope: float) -> float:
    """The base rate lr x the cue boost (decaying after a change) x the audio multiplier (onset/beat envelope 0..1)."""
    boost = 1.0 + (cue_boost - 1.0) * math.exp(-max(since_cue_change, 0.0) / max(boost_decay_s, 1e-3))
    return lr * boost * (1.0 + audio_gain * min(max(envelope, 0.0), 1.0))


class Director:
    def __init__(self, cfg: DirectorConfig, lr: float, state: ShowState, snap: str = "off"):
        self.cfg, self.lr, self.state = cfg, lr, state  # lr: the optimiser's base step size
        self.snap_mode = snap  # cues.snap: how a cue without its own {snap} starts
        self.motion = Motion()
        self._steps_cue: tuple[int, int | None] = (-1, None)  # (cue, its {steps}) whose steps are in force
        self._steps_before = cfg.steps_per_frame        # the steps before the sheet set any (undone to on a rewind)
        self._override: tuple[str, tuple[WeightedPrompt, ...] | None] = ("", None)  # last live prompt, parsed

    def plan(self, t: float, features: AudioFeatures, cue_state: CueState | None) -> FramePlan:
        """The plan for the frame at show time t. Call once per generated frame, in order (motion integrates)."""
        index = cue_state.index if cue_state else -1
        steps_cue = (cue_state.steps_from, cue_state.steps) if cue_state else (-1, None)
        if steps_cue != self._steps_cue:
            self._follow_cue_steps(steps_cue)
        snap = self.state.snapshot()
        prompts = self._live_prompts(snap.prompt_override) or (cue_state.prompts if cue_state else ())
        values = snap.values
        cue = cue_state.cue if cue_state else None
        boost = cue.boost if cue is not None and cue.boost is not None else self.cfg.cue_boost
        since = cue_state.since_change if cue_state else float("inf")
        lr = learning_rate(self.lr, boost, self.cfg.cue_boost_decay_s, values["audio_gain"], since, features.onset) \
            * values["lr_scale"]
        transform = self.motion(t, features, values["motion_rotate"], values["motion_drift"])
        steps = 0 if snap.freeze else int(values["steps_per_frame"])
        snapping = cue is not None and (cue.snap or self.snap_mode) == "nearest" and not snap.prompt_override
        return FramePlan(index, prompts, steps, lr, transform, snap, cue_state.fade if cue_state else 1.0,
                         cue_state.target if snapping else ())

    def _follow_cue_steps(self, steps_cue: tuple[int, int | None]) -> None:
        """The sheet's {steps} in force changed: a later cue's setting applies (over a turned knob, as a cue
        does); moving back (or an edited sheet) restores the sheet's value there unless the knob was turned since."""
        index, steps = steps_cue
        snap = self.state.snapshot()
        if self._steps_cue[0] < 0:  # the sheet takes over: remember what it replaces
            self._steps_before = snap.values["steps_per_frame"]
        if index > self._steps_cue[0] or snap.sources.get("steps_per_frame") == "cue":
            self.state.set("steps_per_frame", self._steps_before if steps is None else steps, "cue")
        self._steps_cue = steps_cue

    def _live_prompts(self, text: str | None) -> tuple[WeightedPrompt, ...] | None:
        """The live prompt override, parsed once per text; a bad one is logged once and the cue's prompt stays."""
        if not text:
            return None
        if self._override[0] != text:
            try:
                self._override = (text, tuple(parse_prompts(text)))
            except PromptError as e:
                log.warning("live prompt ignored: %s", e)
                self._override = (text, None)
        return self._override[1]
