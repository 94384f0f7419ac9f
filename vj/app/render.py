"""The offline render: audio file + cue sheet -> guided frames -> shader chain -> MP4 with the audio muxed.

Frame i is made from the audio features and cues at t = i / fps (features are causal: only audio up to t),
so a render is deterministic for a seed and follows the same rules as the live show (the same `Director`; a
replay feeds it the recorded show's control changes as show time passes). A cue sheet's `{q=...}` cues wait for
the beat grid as in a rehearsal: the grid of vj's own tracker on the audio (no lookahead: a frame is seen at its
own time); a replay starts them where the recorded show did (its control log's `cue_starts`). The video has
ceil(duration * fps) frames, so it lasts as long as the audio to within one frame.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vj.app.engine import build_engine
from vj.audio.features import FeatureExtractor
from vj.audio.files import features_at_frames, read_audio
from vj.config import Config
from vj.cues.lrc import CueSheet, read_lrc
from vj.cues.timeline import Timeline
from vj.control.quantize import SheetQuantizer
from vj.control.showlog import ControlReplay
from vj.control.tempo import BeatCounter
from vj.control.state import ShowState
from vj.models.loading import Models
from vj.render.compositor import Compositor, effect_inputs, headless_context
from vj.render.stills import StillsWriter
from vj.render.video import VideoWriter, prepare_video_path

log = logging.getLogger(__name__)


@dataclass
class RenderResult:
    path: Path
    frames: int
    duration: float                     # seconds of audio
    notes: list[str]                    # fallbacks taken (tiny networks), in words
    interrupted: bool = False           # Ctrl-C: the video ends at the last frame written, the audio with it


def render_video(
    audio_path: str | Path,
    out_path: str | Path,
    cfg: Config,
    lrc_path: str | Path | None = None,
    frames_log: str | Path | None = None,
    stills_dir: str | Path | None = None,  # one PNG per cue and a contact sheet
    progress: bool = True,
    models: Models | None = None,      # preloaded networks (tests); None = from cfg.model
    controls: ControlReplay | None = None,  # a recorded show's control changes (vj replay)
    duration: float | None = None,     # seconds to render from the start (None = all the audio)
) -> RenderResult:
    r = cfg.render
    prepare_video_path(out_path)  # a path that cannot be written is said now, not after the networks load
    samples, sample_rate = read_audio(audio_path)
    if duration is not None:
        samples = samples[: max(1, round(duration * sample_rate))]
    duration = samples.shape[0] / sample_rate
    sheet = read_lrc(lrc_path, lenient=cfg.cues.lenient) if lrc_path else CueSheet()
    for warning in sheet.warnings:
        log.warning(warning)
    # A replayed live show loops its sheet as the show did; a render of a track plays it once.
    timeline = Timeline(sheet, cfg.cues.transition_s, cfg.cues.loop_s if controls else 0.0)
    state = ShowState.from_config(cfg.director)
    engine = build_engine(cfg, state, (r.width, r.height), models, seed=r.seed or cfg.model.seed)
    extractor = FeatureExtractor.from_config(cfg.audio, sample_rate)
    n_frames = max(1, math.ceil(duration * r.fps))
    ctx = headless_context()
    compositor = Compositor(ctx, r.width, r.height, cfg.display.effects, upscale=cfg.display.upscale,
                            fit=cfg.display.fit)
    log_file = open(frames_log, "w", encoding="utf-8", buffering=1) if frames_log else None  # each line as it comes
    stills = StillsWriter(stills_dir, [c.text for c in sheet.cues]) if stills_dir else None

    grid, beats = SheetQuantizer(), BeatCounter()  # {q} cues on the audio's beat
    if controls is not None and timeline.quantized and not controls.log.cue_starts:
        log.warning("%s has no cue_starts lines (recorded before vj kept them, or no {q} cue was reached): {q} cues "
                    "come at their own times", controls.log.path)

    def sheet_at(t: float, show_t: float, features) -> Timeline:
        """The timeline with its `{q}` cues placed: as the recorded show placed them, or on the audio's grid."""
        if controls is not None:
            return controls.held(timeline, t)
        return grid.place(timeline, show_t, True, beats.reading(features, t), t) or timeline

    def render_frame(i: int, features) -> np.ndarray:
        """Frame i: the plan at t = i / fps, its guided steps, the effect chain; one line in the frames log."""
        t = i / r.fps  # the audio's time; a replay's cue sheet runs on the show clock as it was set
        if controls is not None:
            controls.apply_until(state, t)
        show_t = controls.show_time(t) if controls else t
        plan = engine.director.plan(t, features, sheet_at(t, show_t, features).at(show_t))
        engine.snap(plan)
        frame, result = engine.optimizer.render_frame(plan.prompts, plan.steps, plan.lr, plan.transform, 1 / r.fps)
        compositor.upload(frame)
        if plan.snapshot.blackout:
            shown = np.zeros((r.height, r.width, 3), np.uint8)
        else:
            shown = compositor.read(compositor.render(effect_inputs(t, features, plan.snapshot)))
        if stills is not None:
            stills.add(plan.cue, shown)
        if log_file:
            log_file.write(json.dumps({"frame": i, "t": round(t, 6), "show_t": round(show_t, 6), **plan.as_record(),
                                       "loss": None if result is None else round(float(result.loss), 6),
                                       "onset": round(features.onset, 4)}) + "\n")
        return shown

    stop = _StopRequest()
    try:
        with VideoWriter(out_path, r.width, r.height, r.fps, samples, sample_rate, r.crf, r.audio_bitrate) as writer:
            frames = features_at_frames(samples, sample_rate, r.fps, extractor, n_frames)
            try:
                for i, features in enumerate(tqdm(frames, total=n_frames, desc="render", unit="frame",
                                                  disable=not progress, mininterval=1.0)):
                    if stop.is_set():
                        break
                    writer.write(render_frame(i, features))
                if stop.is_set():  # a playable file up to the last frame, the audio cut to match
                    writer.cut_audio()
                    log.warning("interrupted: %s ends after %d of %d frames (%.2f s), its audio cut to match",
                                out_path, writer.frames, n_frames, writer.frames / r.fps)
                    return RenderResult(Path(out_path), writer.frames, writer.frames / r.fps, engine.models.notes, True)
            finally:
                if stills is not None:
                    stills.close()
    finally:
        stop.restore()
        if log_file:
            log_file.close()
        compositor.release()
        ctx.release()
    return RenderResult(Path(out_path), n_frames, duration, engine.models.notes)


class _StopRequest(threading.Event):
    """Set by the first Ctrl-C, which the render then honours between frames (an interrupt inside the encoder
    could leave the file unwritable); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        super().__init__()
        self._previous = None
        if threading.current_thread() is threading.main_thread():  # signal handlers live on the main thread
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame) -> None:
        if self.is_set():
            raise KeyboardInterrupt
        self.set()

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
