"""The HUD: a few lines of status text over the picture, for the performer (off for the audience), and what
they say (`hud_lines` and the warnings the show gathers).

Text is drawn with Pillow into an RGBA image only when it changes, uploaded into one texture, and composited in
the top-left corner with alpha blending: one small quad per displayed frame, no per-frame text rendering. Each
character is drawn with the first font that has it (`fonts.py`); one that no font here has is named in a line of
its own, with the fonts to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import moderngl
import numpy as np
from PIL import Image, ImageDraw

from vj.control.tempo import LABELS
from vj.render.compositor import SHADER_DIR, Compositor, _source
from vj.render.fonts import INSTALL_HINT, FontChain

if TYPE_CHECKING:  # types only: the HUD reads these, it does not need them loaded
    from vj.clock import Clock
    from vj.control.midi import MidiInput
    from vj.control.osc import OscControl
    from vj.control.state import ShowSnapshot
    from vj.cues.timeline import Timeline, WatchedTimeline
    from vj.engine.worker import EngineWorker, PublishedFrame
    from vj.render.outputs import Outputs
    from vj.render.window import OffscreenWindow, Window

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

    def show_alone(self, window: Window | OffscreenWindow, status: str) -> None:
        """One black frame with a line of status in the window (before the show: loading, warming up)."""
        window.set_title(f"vj  {status}")
        self.set_lines([status])
        window.present(None)
        self.draw(window.screen, window.framebuffer_size)
        window.swap()

    def release(self) -> None:
        for obj in (self.vao, self.program, self.texture):
            if obj is not None:
                obj.release()


# -- what the HUD says ------------------------------------------------------------------------------------------
WAITING = "waiting for the start cue: OSC /vj/start, a MIDI note mapped to start, or Home"


def hud_lines(clock: Clock, timeline: Timeline | None, frame: PublishedFrame | None, fps: float, bpm: float,
              snap: ShowSnapshot, warnings: list[str], tempo_source: str = "audio", confidence: float = 0.0,
              playing: bool = True) -> list[str]:
    """What the performer sees: cue now and next, rates and the tempo (and where it comes from), who changed what
    last, then every warning ("! ...")."""
    t = clock.now()
    lines = [] if clock.running else [WAITING]
    if timeline is not None:
        cue_state = timeline.at(t)
        now = cue_state.cue.text if cue_state.cue else "(before the first cue)"
        lines.append(f"{t:7.1f}s  cue {cue_state.index}: {now[:70]}")
        if cue_state.next_cue is not None:
            lines.append(f"next at {cue_state.next_cue.time:.1f}s: {cue_state.next_cue.text[:60]}")
    if snap.prompt_override:
        lines.append(f"live prompt: {snap.prompt_override[:70]}")
    lines.append(f"{fps:5.1f} fps   {frame.steps_per_second if frame else 0:4.1f} guided steps/s   "
                 + tempo_text(bpm, tempo_source, confidence, playing)
                 + ("   FROZEN" if snap.freeze else "") + ("   BLACKOUT" if snap.blackout else ""))
    if frame is not None and frame.quality:
        lines.append(f"quality: {frame.quality}")
    what, source, _ = snap.last_change
    if what:
        lines.append(f"last: {what} by {source}")
    return lines + [f"! {warning}" for warning in warnings]


def with_held(lines: list[str], held: str) -> list[str]:
    """The HUD's lines with what waits for the beat grid (`Quantizer.waiting`), before the warnings."""
    if not held:
        return lines
    at = next((i for i, line in enumerate(lines) if line.startswith("! ")), len(lines))
    return [*lines[:at], held, *lines[at:]]


def tempo_text(bpm: float, source: str, confidence: float = 0.0, playing: bool = True) -> str:
    """The tempo and its source; the beat tracker's with how sure it is (low: a breakdown, it coasts); Link's or
    MIDI clock's "stopped" while their transport is (the beat grid, and cues held to it, wait)."""
    label = LABELS.get(source, source)
    if bpm > 0:
        sure = f", {confidence:.0%} sure" if source == "audio" else ""
        return f"{bpm:5.1f} bpm ({label}{sure}{'' if playing or source == 'audio' else ', stopped'})"
    return "tempo: listening" if source == "audio" else f"tempo: waiting for {label}"


def status_line(t: float, on_stage: tuple[int, str], frame: PublishedFrame | None, fps: float) -> str:
    """The show's once-a-second line, for the log and the window's title: the show's cue and prompt (`on_stage`, as
    `vj.control.osc.show_cue` gives them for feedback), not the newest engine frame's, which lags on a slow machine."""
    cue, prompt = on_stage
    return (f"vj  t={t:6.1f}s  cue {cue}  {fps:4.1f} fps  "
            f"{frame.steps_per_second if frame else 0:4.1f} steps/s  {prompt[:60]}")


def show_warnings(audio: str | None, midi_port: str, osc: OscControl, midi: MidiInput | None, worker: EngineWorker,
                  compositor: Compositor, watched: WatchedTimeline | None,
                  outputs: Outputs | None = None) -> list[str]:
    """Every warning the HUD shows: the audio's, MIDI's and the cue sheet's notices, then control and engine faults,
    then video out's."""
    notices = [audio, midi_notice(midi_port, midi), sheet_notice(watched)]
    return ([n for n in notices if n] + control_warnings(osc, midi) + engine_warnings(worker, compositor, watched)
            + (output_warnings(outputs) if outputs else []))


def output_warnings(outputs: Outputs) -> list[str]:
    """An output that cannot reach its receiver (not there yet, gone: it is tried again), or that dropped frames
    since the last look (its receiver, encoder or network is slower than the show)."""
    warnings = []
    for output, dropped, seconds in outputs.new_drops():
        name = output.name if len(output.name) <= 40 else output.name[:39] + "…"
        if output.trouble:
            warnings.append(f"{name}: {output.trouble[:70]} (trying again)")
        elif dropped:
            warnings.append(f"{name}: {dropped} frame(s) dropped in {seconds:.1f} s (receiver or encoder slower "
                            "than the show)")
    return warnings


def control_warnings(osc: OscControl, midi: MidiInput | None) -> list[str]:
    warnings = []
    ignored = sum(osc.warnings.values()) + (midi.handler.warnings if midi else 0)
    if ignored:
        warnings.append(f"{ignored} bad control message(s) ignored (see log)")
    if midi is not None and midi.vanished:
        warnings.append(f"MIDI port gone: {', '.join(sorted(midi.vanished))[:60]} (reopens when it is back)")
    return warnings


def midi_notice(port_match: str, midi: MidiInput | None) -> str | None:
    """A configured MIDI input that opened nothing: the performer's controller is not heard."""
    if midi is None or midi.ports or midi.vanished:
        return None
    what = "no MIDI input port" if port_match == "*" else f"no MIDI input port matches {port_match!r}"
    return f"{what} (`vj midi ports` lists them; one plugged in later is opened)"


def sheet_notice(watched: WatchedTimeline | None) -> str | None:
    """Lines of the cue sheet in use that were skipped (at the start or by a reload)."""
    warnings = watched.timeline.sheet.warnings if watched else []
    if not warnings:
        return None
    first = warnings[0].replace(str(watched.path), watched.path.name)  # the name is enough
    return f"cue sheet: {len(warnings)} line(s) skipped, first: {first}"[:110]


def engine_warnings(worker: EngineWorker, compositor: Compositor, watched: WatchedTimeline | None) -> list[str]:
    warnings = [f"engine errors: {worker.errors} (see log)"] if worker.errors else []
    warnings += [f"shader {name}: {error.splitlines()[-1][:70]}" for name, error in compositor.errors.items()]
    if watched and watched.error:
        warnings.append(watched.error.replace(str(watched.path), watched.path.name)[:110])  # the name is enough
    return warnings
