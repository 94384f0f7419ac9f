"""`vj live` and `vj rehearse`: wires audio, control, cues, the engine worker and the window, then runs the
render loop on the main thread.

Threads: the audio callback (copies into a ring), the audio analysis thread, the OSC server thread, the engine
worker (guided steps, publishes frames), and the main thread (draws at the display rate, never waits for the
engine: it blends towards the newest published frame and applies audio effects on every displayed frame).
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import glfw

from vj.audio.features import FeatureExtractor
from vj.audio.files import read_audio
from vj.audio.capture import LiveInput
from vj.audio.playback import Playback
from vj.audio.stream import AudioAnalyzer, RingBuffer
from vj.clock import Clock, FollowingClock, WallClock
from vj.config import Config
from vj.control.midi import open_midi
from vj.control.osc import OscControl, show_cue
from vj.control.showlog import show_header
from vj.control.state import Event, ShowState
from vj.control.quantize import Quantizer, SheetQuantizer
from vj.control.tempo import open_tempo
from vj.cues.timeline import Timeline, WatchedTimeline
from vj.render.compositor import Compositor, EffectInputs, IdleEffects, effect_inputs
from vj.ratelog import RateLimitedLog
from vj.render.frametimes import FramePacer, FrameTimes
from vj.render.hud import Hud, hud_lines, show_warnings, status_line, with_held
from vj.render.outputs import configured, open_outputs
from vj.render.recorder import Recording, prepare_recording_path
from vj.render.window import OffscreenWindow, Window

if TYPE_CHECKING:
    from vj.engine.worker import EngineWorker, PublishedFrame
    from vj.models.loading import Models

log = logging.getLogger(__name__)


def _timeline(cfg: Config, lrc_path: str | Path | None) -> WatchedTimeline | None:
    return WatchedTimeline(lrc_path, cfg.cues.transition_s, cfg.cues.lenient, cfg.cues.loop_s) if lrc_path else None


def run_live(cfg: Config, lrc_path: str | Path | None = None, duration: float | None = None,
             record: str | Path | None = None, headless: bool = False) -> int:
    """`headless`: no window (EGL), the picture only through the outputs and the recording; OSC controls it."""
    if headless and not configured(cfg.output) and not record:
        log.warning("headless with no output.stream, output.ndi or --record: nobody will see the picture")
    timeline = _timeline(cfg, lrc_path)
    source = LiveInput(cfg.audio.device, cfg.audio.sample_rate, cfg.audio.block_size, cfg.audio.channel)
    analyzer = AudioAnalyzer(source.ring, FeatureExtractor.from_config(cfg.audio, cfg.audio.sample_rate))
    clock = WallClock()  # a start cue (a seek to 0) starts it too

    def begin() -> None:
        source.start()  # no input device does not stop the show: it runs on silence and keeps trying
        analyzer.start()
        if cfg.cues.live_start == "now":
            clock.start()
        else:
            log.info("waiting for the start cue (OSC /vj/start, a MIDI note mapped to start, or the Home key)")

    try:
        return run_show(cfg, clock, lambda: analyzer.features, timeline, duration, begin=begin,
                         record=record, header=show_header(cfg, "live", lrc_path), offscreen=headless,
                         sound=(source.ring, cfg.audio.sample_rate),
                         audio_warning=lambda: source.status if source.lost else None)
    finally:
        analyzer.stop()
        source.stop()


def run_rehearsal(cfg: Config, audio_path: str | Path, lrc_path: str | Path, duration: float | None = None,
                  start: float = 0.0, record: str | Path | None = None, loop: bool = False) -> int:
    """Plays the track from `start` and follows its cue sheet; ends when playback reaches the end of the track
    (or start + duration seconds of it), wherever seeks took it; with `loop`, plays it again from `start`."""
    timeline = _timeline(cfg, lrc_path)
    samples, rate = read_audio(audio_path)
    # No output device, or one that goes away: the track is followed silently, and played again when it is back.
    player = Playback(samples, rate, cfg.audio.block_size, cfg.audio.output_device, start=start)
    analyzer = AudioAnalyzer(player.ring, FeatureExtractor.from_config(cfg.audio, rate))

    def begin() -> None:
        player.start()
        analyzer.start()

    end = samples.shape[0] / rate if duration is None else min(samples.shape[0] / rate, start + duration)
    try:
        return run_show(cfg, FollowingClock(lambda: player.clock, player.seek), lambda: analyzer.features, timeline,
                        None, ended=lambda: player.ended(end, start if loop else None), begin=begin,
                        sound=(player.ring, rate), record=record,
                        header=show_header(cfg, "rehearse", lrc_path, audio_path),
                        audio_warning=lambda: player.status if player.lost else None)
    finally:
        analyzer.stop()
        player.stop()


# Keys that act on the show (as OSC and MIDI do: through the show state); H and F act on the window.
SHOW_KEYS: dict[int, Callable[[ShowState, float], None]] = {
    glfw.KEY_ESCAPE: lambda state, t: state.set_flag("quit", True, "key"),
    glfw.KEY_Q: lambda state, t: state.set_flag("quit", True, "key"),
    glfw.KEY_SPACE: lambda state, t: state.set_flag("freeze", not state.snapshot().freeze, "key"),
    glfw.KEY_B: lambda state, t: state.set_flag("blackout", not state.snapshot().blackout, "key"),
    glfw.KEY_LEFT: lambda state, t: state.post("seek", max(0.0, t - 5.0), "key"),
    glfw.KEY_RIGHT: lambda state, t: state.post("seek", t + 5.0, "key"),
    glfw.KEY_HOME: lambda state, t: state.post("start", 0.0, "key"),
    glfw.KEY_PAGE_UP: lambda state, t: state.post("cue_prev", 0.0, "key"),
    glfw.KEY_PAGE_DOWN: lambda state, t: state.post("cue_next", 0.0, "key"),
    glfw.KEY_D: lambda state, t: state.post("downbeat", 0.0, "key"),
}


def _jump_target(event: Event, timeline: Timeline | None, now: float) -> float | None:
    """The show time a seek, a start cue or a cue jump moves the show to (None: nowhere to go)."""
    if event.kind in ("seek", "start"):
        return event.value if event.kind == "seek" else 0.0
    return timeline.jump(event.kind, event.value, now) if timeline is not None and timeline.cues else None


def run_show(cfg: Config, clock: Clock, features, watched: WatchedTimeline | None, duration: float | None,
              begin: Callable[[], None] = lambda: None,
              audio_warning: Callable[[], str | None] = lambda: None,
              record: str | Path | None = None, header: dict | None = None,
              on_frame: Callable[[float, EffectInputs | None, PublishedFrame | None], None] | None = None,
              offscreen: bool = False, models: Models | None = None,
              ended: Callable[[], bool] = lambda: False,
              sound: tuple[RingBuffer, int] | None = None) -> int:
    """Opens control and the window, loads the networks, warms the engine up, calls `begin` (audio starts, the
    clock runs), then draws. `on_frame(perf_counter after the swap, effect inputs or None, newest engine frame or
    None)` is called for every displayed frame; `offscreen` draws into an EGL framebuffer instead of a window
    (benchmarks, the device check); `models` are preloaded networks (None: from cfg.model). The show ends on quit,
    after `duration` seconds of wall time, or when `ended()` says so (a rehearsal's track). `sound` = (the audio ring
    the analysis reads, its sample rate) goes into a recording."""
    state = ShowState.from_config(cfg.director)
    c = cfg.control
    # What can go wrong in a second comes first (the recording's path, the OSC port, the MIDI mapping, the window,
    # the shaders), so a mistake is said before the networks spend a minute loading.
    if record:
        prepare_recording_path(record)
    osc = OscControl(state, c.osc_host, c.osc_port, c.osc_feedback, c.osc_allow, c.osc_port_search).start()
    midi = open_midi(c, state)
    tempo = open_tempo(c, features)  # control.tempo_source: the beat from the audio, Ableton Link or MIDI clock
    # On the beat grid: performers' cue jumps and live prompts (cues.quantize), the cue sheet's {q=...} cues
    quantizer = Quantizer(cfg.cues.quantize, cfg.cues.lookahead_ms / 1000)
    state.hold_prompts = cfg.cues.quantize != "off"
    sheet_grid = SheetQuantizer(cfg.cues.lookahead_ms / 1000)
    rate = sound[1] if sound else cfg.audio.sample_rate  # the analysis's rate (a rehearsal: the track's)
    features = tempo.features(features, cfg.audio.block_size / rate, cfg.audio.release_s)
    d = cfg.display
    window = (OffscreenWindow if offscreen else Window)(d.width, d.height, "vj", d.fullscreen, d.monitor, d.vsync)
    compositor = Compositor(window.ctx, *window.framebuffer_size, d.effects, upscale=d.upscale, fit=d.fit)
    hud_overlay = Hud(window.ctx)
    outputs = open_outputs(cfg.output, window.framebuffer_size, d.max_fps)  # video out: vj.render.outputs
    if models is None:
        hud_overlay.show_alone(window, "loading the networks")
    from vj.app.engine import build_engine  # torch, seconds to import: after the checks above
    from vj.engine.worker import EngineWorker

    engine = build_engine(cfg, state, window.framebuffer_size, models)
    # SIGTERM (a launcher, a service manager) ends the show as the quit key does: the recording is finished.
    previous_sigterm = signal.signal(signal.SIGTERM, lambda signum, frame: state.set_flag("quit", True, "signal"))
    sheet_grid.place(watched.timeline if watched else None, clock.now(), clock.running, tempo.read(),
                     time.perf_counter())

    def current_timeline() -> Timeline | None:
        return sheet_grid.timeline  # the cue sheet, its {q} cues held to the beat grid

    worker = EngineWorker(engine.optimizer, engine.director, cfg.governor, clock.now, features, current_timeline,
                          snap=engine.snap)
    recording = Recording(record, window.framebuffer_size, cfg.render.crf, sound, header or {}) if record else None
    worker.start()
    if not _wait_for_warm_up(window, hud_overlay, worker, state):
        state.set_flag("quit", True, "key")
    begin()
    began = time.perf_counter()  # the show's wall-time origin (recording, control log)
    log.info("the show starts")
    if recording:
        recording.begin(clock)
    worker.go()
    hud, shown_seq, displayed = d.hud, 0, 0
    hud_base, held = [], ""  # the HUD's lines as of its last once-a-second update; what waits for the grid
    frame_interval, frame_shown_at = 0.5, time.perf_counter()  # seconds between engine frames; when the newest came
    last_report = time.perf_counter()
    pacing, pacer = FrameTimes(), FramePacer(d.max_fps)
    idle_effects = IdleEffects(d.effects)
    jumps_log = RateLimitedLog(log)  # a flood of /vj/cue/next must not write thousands of lines a second
    try:
        while not window.should_close and not state.snapshot().quit:
            now = time.perf_counter()
            if (duration is not None and now - began >= duration) or ended():
                break
            for key in window.poll():
                if key in SHOW_KEYS:
                    SHOW_KEYS[key](state, clock.now())
                elif key == glfw.KEY_H:
                    hud = not hud
                elif key == glfw.KEY_F:
                    window.toggle_fullscreen(d.monitor)
            reading = tempo.read()  # the tempo source's grid for this frame
            for event in state.drain_events():
                if event.kind == "downbeat":  # a tap on the one: never held, it moves the grid itself
                    log.info("downbeat from %s: %s", event.source, tempo.mark_downbeat(now))
                    reading = tempo.read()
                    quantizer.regrid(reading, now)  # what was held goes to the new bars
                    continue
                quantizer.offer(event, reading, now)  # cues.quantize: held to the beat grid, or at once
            for event in quantizer.due(now):
                if event.kind == "prompt":
                    state.set_prompt(event.text, event.source)
                    continue
                target = _jump_target(event, current_timeline(), clock.now())
                if target is not None:
                    clock.seek(target)
                    sheet_grid.reset()
                    jumps_log.info("%s from %s: show time %.2f s", event.kind, event.source, target)
                    if recording:
                        recording.clock(time.perf_counter() - began, target, clock.running)
            if (waiting := quantizer.waiting()) != held:  # a press taken and held, or landed: shown at once
                held = waiting
                if held:
                    log.info("%s", held)
                hud_overlay.set_lines(with_held(hud_base, held))
            sheet_grid.place(watched.timeline if watched else None, clock.now(), clock.running, reading, now)
            state.cue_count = len(watched.timeline.cues) if watched else 0  # what OSC's cue jumps may ask for
            if window.framebuffer_size != compositor.size and all(window.framebuffer_size):
                compositor.release()
                compositor = Compositor(window.ctx, *window.framebuffer_size, d.effects, upscale=d.upscale, fit=d.fit)
                shown_seq = 0
            seq, frame = worker.frames.latest()
            if frame is not None and seq != shown_seq:
                frame_interval = 0.8 * frame_interval + 0.2 * max(now - frame_shown_at, 1e-3)
                frame_shown_at = now
                compositor.upload(frame.image)
                shown_seq = seq
            snap, inputs = state.snapshot(), None
            idle_effects(snap)  # an amount set for an effect not in the chain: said once
            # The show's cue, not the engine frame's (which lags, and skips cues passed quickly), as soon as it changes.
            osc.send_feedback(*show_cue(current_timeline(), clock.now(), snap.prompt_override), held=held)
            osc.send_tempo(reading)  # a tempo change or a stop as soon as it is read, the beat on each beat
            if shown_seq and not snap.blackout:
                blend = min(1.0, (now - frame_shown_at) / frame_interval)
                inputs = effect_inputs(clock.now(), features(), snap, blend)
                window.present(compositor.render(inputs).color_attachments[0])
            else:
                window.present(None)
            if recording or outputs:  # what the audience sees: before the HUD, read back once for all who take it
                wall, shown = time.perf_counter() - began, window.read()
                outputs.offer(wall, shown)
            if recording:
                shown_sheet = current_timeline()
                recording.frame(wall, shown, state, clock, frame, tempo.source,
                                shown_sheet.starts if shown_sheet else {})
            if hud:
                hud_overlay.draw(window.screen, window.framebuffer_size)
            window.swap()
            swapped = time.perf_counter()
            pacing.tick(swapped)
            if on_frame is not None:
                on_frame(swapped, inputs, frame)
            displayed += 1
            pacer.wait()  # without vsync (or under Xvfb) the loop would spin and starve the engine of CPU
            if now - last_report >= 1.0:
                fps = displayed / (now - last_report)
                on_stage = show_cue(current_timeline(), clock.now(), state.snapshot().prompt_override)
                status = status_line(clock.now(), on_stage, frame, fps)
                window.set_title(status if hud else "vj")
                log.info(status)
                heard = features()
                warnings = show_warnings(audio_warning(), c.midi_port, osc, midi, worker, compositor, watched,
                                         outputs) + (recording.warnings() if recording else [])
                hud_base = hud_lines(clock, current_timeline(), frame, fps, heard.bpm, state.snapshot(), warnings,
                                     tempo.source, heard.beat_confidence, reading.playing)
                lines = with_held(hud_base, held)
                hud_overlay.set_lines(lines)
                log.debug("HUD | %s", " | ".join(lines))
                # every state message once a second, for a surface started later
                osc.send_feedback(*on_stage, fps, held, force=True)
                osc.send_tempo(reading, force=True)
                compositor.reload_changed()  # edited shaders and cue sheets take effect (and are logged)
                if watched:
                    watched.reload_if_changed()
                displayed, last_report = 0, now
    finally:
        ended_at = time.perf_counter() - began  # the show's end, before the threads take their time to stop
        log.info("%s", pacing.summary())
        signal.signal(signal.SIGTERM, previous_sigterm)
        worker.stop()
        osc.stop()
        tempo.close()
        outputs.close()
        if recording:
            recording.close(ended_at, state, clock)
        if midi is not None:
            midi.stop()
        compositor.release()
        hud_overlay.release()
        window.close()
    return 0


def _wait_for_warm_up(window: Window | OffscreenWindow, hud: Hud, worker: EngineWorker, state: ShowState) -> bool:
    """Draws black with the warm-up's progress until the engine is ready; False if the show was quit meanwhile."""
    while not worker.ready.wait(0.05):
        quit_keys = [k for k in window.poll() if k in (glfw.KEY_ESCAPE, glfw.KEY_Q)]
        if window.should_close or state.snapshot().quit or quit_keys:
            return False
        hud.show_alone(window, worker.warming_up or "")
    return True
