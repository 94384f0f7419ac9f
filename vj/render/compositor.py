"""The compositor: newest generated frame -> temporal blend -> upscale -> ordered GLSL effect chain -> output.

One compositor serves the live window and the offline render (a headless EGL context). Each pass is a
full-screen triangle drawing into one of two ping-pong framebuffers; the final image is also kept as the
"history" texture that feedback effects read on the next frame. The generated frame (256-1024 px) reaches the
output size (often 1080p), placed by `display.fit`, either stretched bilinearly in the blend pass or ("sharp")
blended at its own size, then upscaled edge-adaptively (`easu.frag`) and sharpened (`rcas.frag`), after the ideas
of AMD FSR 1. Shaders live one per file in `vj/render/shaders/`; `reload_changed()` recompiles edited ones, and a
shader that fails to compile keeps the last good program and leaves the compiler's message in `errors`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import moderngl
import numpy as np

from vj.audio.features import AudioFeatures
from vj.config import EFFECT_NAMES, FIT_NAMES, UPSCALE_NAMES
from vj.control.state import PARAMS, ShowSnapshot

log = logging.getLogger(__name__)

SHADER_DIR = Path(str(resources.files("vj.render") / "shaders"))  # package data: in a wheel too
EFFECTS = EFFECT_NAMES  # in chain order; the names live with the config, which checks them when it is read
UPSCALES = UPSCALE_NAMES  # display.upscale
FITS = FIT_NAMES  # display.fit
SHARPNESS = 0.87  # rcas.frag's strength, 0..1: 0.2 stops below the strongest, in FSR's units (2^-0.2)


@dataclass
class EffectInputs:
    """What drives the effects on one displayed frame."""

    time: float = 0.0                   # show time in seconds
    rms: float = 0.0                    # audio features, 0..1
    bass: float = 0.0
    mid: float = 0.0
    high: float = 0.0
    onset: float = 0.0
    beat: float = 0.0
    blend: float = 1.0                  # 0 = previous generated frame, 1 = newest
    amounts: dict[str, float] = field(default_factory=dict)  # per-effect strength; missing = 1


def _source(path: Path) -> str:
    """A shader file with `#include "x"` lines replaced by the included file (one level, from the same folder)."""
    text = path.read_text(encoding="utf-8")
    return re.sub(r'^#include "([^"]+)"\s*$', lambda m: (path.parent / m.group(1)).read_text(encoding="utf-8"),
                  text, flags=re.M)


def fit_scale(out_size: tuple[int, int], frame_size: tuple[int, int], fit: str) -> tuple[float, float]:
    """How much of the frame's uv range the output spans, per axis, around the centre: (1, 1) fills it ("stretch"),
    above 1 leaves black bars ("contain"), below 1 crops ("cover")."""
    wider = (out_size[0] / out_size[1]) / (frame_size[0] / frame_size[1])  # > 1: the output is wider than the frame
    if fit == "stretch":
        return (1.0, 1.0)
    if fit == "contain":
        return (max(wider, 1.0), max(1.0 / wider, 1.0))
    return (min(wider, 1.0), min(1.0 / wider, 1.0))


def magnifies(out_size: tuple[int, int], frame_size: tuple[int, int], scale: tuple[float, float]) -> bool:
    """Whether the fitted frame is shown larger than its own size along either axis: only then is there anything
    for easu + rcas to do (easu is no downscaler; at its own size or smaller, the blend pass samples the frame)."""
    return any(out > frame * s + 1e-3 for out, frame, s in zip(out_size, frame_size, scale))


class Compositor:
    def __init__(self, ctx: moderngl.Context, width: int, height: int, effects: list[str] | tuple[str, ...],
                 shader_dir: Path = SHADER_DIR, *,
                 upscale: str = "sharp",        # frame -> output size: one of UPSCALES
                 fit: str = "cover"):           # frame aspect vs output aspect: one of FITS
        unknown = [e for e in effects if e not in EFFECTS]
        if unknown:
            raise ValueError(f"unknown effect(s) {', '.join(unknown)}; known: {', '.join(EFFECTS)}")
        if upscale not in UPSCALES or fit not in FITS:
            raise ValueError(f"upscale must be one of {UPSCALES} and fit one of {FITS}, got {upscale!r}, {fit!r}")
        self.ctx = ctx
        self.size = (width, height)
        self.effects = list(effects)
        self.upscale = upscale
        self.fit = fit
        self.shader_dir = shader_dir
        self.errors: dict[str, str] = {}
        self.programs: dict[str, moderngl.Program] = {}
        self.vaos: dict[str, moderngl.VertexArray] = {}
        self.mtimes: dict[str, float] = {}
        for name in ["blend", *(("easu", "rcas") if upscale == "sharp" else ()), *self.effects]:
            self._compile(name, first=True)
        self.targets = [self._target() for _ in range(2)]
        self.history = self._target()
        self.frame_tex: moderngl.Texture | None = None
        self.frame_prev_tex: moderngl.Texture | None = None
        self.blended: moderngl.Framebuffer | None = None  # "sharp": the blend at the frame's size

    def _target(self, size: tuple[int, int] | None = None) -> moderngl.Framebuffer:
        tex = self.ctx.texture(size or self.size, 3)
        tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        tex.repeat_x = tex.repeat_y = False
        return self.ctx.framebuffer(color_attachments=[tex])

    def _compile(self, name: str, first: bool = False) -> None:
        path = self.shader_dir / f"{name}.frag"
        try:
            self.mtimes[name] = path.stat().st_mtime
            program = self.ctx.program(vertex_shader=_source(self.shader_dir / "fullscreen.vert"),
                                       fragment_shader=_source(path))
        except (OSError, moderngl.Error) as e:
            if first:
                raise
            self.errors[name] = str(e).strip()
            log.warning("shader %s failed to compile; keeping the last good one:\n%s", path, self.errors[name])
            return
        self.errors.pop(name, None)
        if name in self.vaos:
            self.vaos[name].release()
            self.programs[name].release()
        self.programs[name] = program
        self.vaos[name] = self.ctx.vertex_array(program, [])

    def reload_changed(self) -> list[str]:
        """Recompiles shaders whose files changed (logged); returns their names."""
        changed = []
        for name in list(self.programs):
            try:
                mtime = (self.shader_dir / f"{name}.frag").stat().st_mtime
            except OSError:
                continue
            if mtime != self.mtimes.get(name):
                self._compile(name)
                changed.append(name)
                failed = " (failed: kept the last good one)" if name in self.errors else ""
                log.info("shader %s reloaded%s", name, failed)
        return changed

    def upload(self, frame: np.ndarray) -> None:
        """frame [H, W, 3] uint8 (top row first). The previous upload becomes the blend's older frame."""
        h, w = frame.shape[:2]
        if self.frame_tex is None or self.frame_tex.size != (w, h):
            for tex in (self.frame_tex, self.frame_prev_tex):
                if tex is not None:
                    tex.release()
            self.frame_tex, self.frame_prev_tex = self.ctx.texture((w, h), 3), self.ctx.texture((w, h), 3)
            for tex in (self.frame_tex, self.frame_prev_tex):
                tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
            if self.upscale == "sharp":
                self._release_fbos([self.blended])
                self.blended = self._target((w, h))
            self.frame_tex.write(np.ascontiguousarray(frame, dtype=np.uint8))
        self.frame_tex, self.frame_prev_tex = self.frame_prev_tex, self.frame_tex
        self.frame_tex.write(np.ascontiguousarray(frame, dtype=np.uint8))

    def _set(self, program: moderngl.Program, name: str, value) -> None:
        if name in program:
            program[name].value = value

    def _draw(self, name: str, target: moderngl.Framebuffer, inputs: list[moderngl.Texture],
              uniforms: dict[str, object]) -> None:
        """One full-screen pass of shader `name` into target; inputs bound to texture units 0, 1, ..."""
        program = self.programs[name]
        target.use()
        for unit, tex in enumerate(inputs):
            tex.use(unit)
        for uniform, value in uniforms.items():
            self._set(program, uniform, value)
        self.vaos[name].render(moderngl.TRIANGLES, vertices=3)

    def render(self, inputs: EffectInputs) -> moderngl.Framebuffer:
        """Runs the chain; returns the framebuffer holding the output (valid until the next call)."""
        if self.frame_tex is None:
            raise RuntimeError("upload a frame before rendering")
        fit = fit_scale(self.size, self.frame_tex.size, self.fit)
        sharp = self.upscale == "sharp" and magnifies(self.size, self.frame_tex.size, fit)
        self._draw("blend", self.blended if sharp else self.targets[0], [self.frame_tex, self.frame_prev_tex],
                   {"u_frame": 0, "u_frame_prev": 1, "u_blend": float(inputs.blend),
                    "u_fit_scale": (1.0, 1.0) if sharp else fit})
        current = 0
        if sharp:
            self._draw("easu", self.targets[0], [self.blended.color_attachments[0]], {"u_input": 0, "u_fit_scale": fit})
            self._draw("rcas", self.targets[1], [self.targets[0].color_attachments[0]],
                       {"u_input": 0, "u_sharpness": SHARPNESS})
            current = 1
        for name in self.effects:
            out = 1 - current
            self._draw(name, self.targets[out],
                       [self.targets[current].color_attachments[0], self.history.color_attachments[0]],
                       {"u_input": 0, "u_history": 1, "u_resolution": self.size, "u_time": float(inputs.time),
                        "u_audio": (inputs.rms, inputs.bass, inputs.mid, inputs.high), "u_onset": float(inputs.onset),
                        "u_beat": float(inputs.beat), "u_amount": float(inputs.amounts.get(name, 1.0))})
            current = out
        self.ctx.copy_framebuffer(self.history, self.targets[current])
        return self.targets[current]

    def read(self, fbo: moderngl.Framebuffer) -> np.ndarray:
        """The framebuffer's pixels as [H, W, 3] uint8, top row first."""
        data = fbo.read(components=3, alignment=1)
        return np.frombuffer(data, dtype=np.uint8).reshape(self.size[1], self.size[0], 3)[::-1]

    @staticmethod
    def _release_fbos(fbos: list[moderngl.Framebuffer | None]) -> None:
        for fbo in fbos:
            if fbo is not None:
                fbo.color_attachments[0].release()
                fbo.release()

    def release(self) -> None:
        self._release_fbos([*self.targets, self.history, self.blended])
        for obj in [*self.vaos.values(), *self.programs.values(), self.frame_tex, self.frame_prev_tex]:
            if obj is not None:
                obj.release()


def load_triton_before_gl() -> None:
    """Triton (imported by torch.compile, and by torchvision through open_clip) carries its own LLVM. Loaded after
    Mesa's llvmpipe has loaded the system LLVM, it crashes the process (segfault); loaded first, both work. Every
    GL context in vj is created after this call."""
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


def headless_context() -> moderngl.Context:
    """A standalone OpenGL 3.3+ context through EGL (no window, no display)."""
    load_triton_before_gl()
    return moderngl.create_context(standalone=True, backend="egl")


class IdleEffects:
    """Says, once per parameter per show, when a performer sets an effect's amount (OSC, MIDI) while the effect is
    not in `display.effects`: the fader then does nothing, and the README and both bundled MIDI mappings offer the
    kaleidoscope, which the default chain leaves out. Called every frame: it looks only when the state changed."""

    def __init__(self, effects: list[str] | tuple[str, ...]):
        self.effects = tuple(effects)
        self._said: set[str] = set()
        self._version = -1

    def __call__(self, snapshot: ShowSnapshot) -> list[str]:
        """The warnings new with this snapshot (each also logged)."""
        if snapshot.version == self._version:
            return []
        self._version = snapshot.version
        said = []
        for name, source in snapshot.sources.items():
            if name in EFFECTS and name not in self.effects and name not in self._said:
                self._said.add(name)
                chain = ", ".join(f'"{e}"' for e in EFFECTS if e in self.effects or e == name)
                said.append(f"{name} set by {source} does nothing: the {name} effect is not in display.effects; "
                            f"add it there (--set 'display.effects=[{chain}]')")
                log.warning("%s", said[-1])
        return said


def effect_inputs(t: float, features: AudioFeatures, snapshot: ShowSnapshot, blend: float = 1.0) -> EffectInputs:
    """What drives the effect chain: the audio, and each effect's amount from the show state."""
    bands = tuple(features.bands) + (0.0, 0.0, 0.0)
    return EffectInputs(time=t, rms=features.rms, bass=bands[0], mid=bands[1], high=bands[2],
                        onset=features.onset, beat=features.beat, blend=blend,
                        amounts={name: snapshot.values[name] for name in EFFECTS if name in PARAMS})
