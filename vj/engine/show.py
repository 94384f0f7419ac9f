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
from typing import Callable

import glfw

from vj.audio.features import FeatureExtractor
from vj.audio.files import read_audio
from vj.audio.capture import LiveInput
from vj.audio.playback import Playback
from vj.audio.stream import AudioAnalyzer, RingBuffer
from vj.config import Config
from vj.control.midi import MidiInput, MidiMapping, MidiRouter, load_mapping
from vj.control.osc import OscControl, show_cue
from vj.control.showlog import show_header
from vj.control.state import ShowState
from vj.cues.timeline import Timeline, WatchedTimeline
from vj.engine.director import show_state
from vj.engine.optimizer import LatentOptimizer
from vj.engine.worker import EngineWorker, PublishedFrame
from vj.models.loading import Models, load_models
from vj.render.compositor import Compositor, EffectInputs
from vj.render.frametimes import FrameTimes
from vj.render.hud import Hud
from vj.render.recorder import ShowRecorder
from vj.render.offline import effect_inputs
from vj.render.window import OffscreenWindow, Window

log = logging.getLogger(__name__)


def _timeline(cfg: Config, lrc_path: str | Path | None) -> WatchedTimeline | None:
    if not lrc_path:
        return None
    watched = WatchedTimeline(lrc_path, cfg.cues.transition_s, cfg.cues.lenient, cfg.cues.loop_s)
    for warning in watched.timeline.sheet.warnings:
        log.warning(warning)
    return watched


def run_live(cfg: Config, lrc_path: str | Path | None = None, duration: float | None = None,
             record: str | Path | None = None) -> int:
    timeline = _timeline(cfg, lrc_path)
    source = LiveInput(cfg.audio.device, cfg.audio.sample_rate, cfg.audio.block_size, cfg.audio.channel)
    analyzer = AudioAnalyzer(source.ring, FeatureExtractor.from_config(cfg.audio, cfg.audio.sample_rate))
    origin: list[float | None] = [None]  # perf_counter at show time 0; None: waiting for the start cue

    def begin() -> None:
        source.start()  # no input device does not stop the show: it runs on silence and keeps trying
        analyzer.start()
        if cfg.cues.live_start == "now":
            origin[0] = time.perf_counter()
        else:
            log.info("waiting for the start cue (OSC /vj/start, a MIDI note mapped to start, or the Home key)")

    def seek(t: float) -> None:  # live: move the show clock's origin (a start cue is a seek to 0)
        origin[0] = time.perf_counter() - max(0.0, t)

    def clock() -> float:
        return 0.0 if origin[0] is None else time.perf_counter() - origin[0]

    try:
        return run_show(cfg, clock, lambda: analyzer.features, timeline, duration, seek=seek, begin=begin,
                         record=record, header=show_header(cfg, "live", lrc_path),
                         clock_running=lambda: origin[0] is not None, sound=(source.ring, cfg.audio.sample_rate),
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

    seeking_back = [False]  # a loop's seek is asked and not yet played

    def track_ended() -> bool:  # on the track's own clock, not the wall's: seeks and a slow device move it
        if not (player.finished or player.clock >= end):
            seeking_back[0] = False
            return False
        if loop:
            if not seeking_back[0]:
                seeking_back[0] = True
                player.seek(start)
                log.info("the track ended at %.1f s: playing it again from %.1f s", end, start)
            return False
        log.info("the track ended at %.1f s: the rehearsal is over", end)
        return True

    try:
        return run_show(cfg, lambda: player.clock, lambda: analyzer.features, timeline, None, ended=track_ended,
                        seek=player.seek, begin=begin, sound=(player.ring, rate),
                        record=record, header=show_header(cfg, "rehearse", lrc_path, audio_path),
                        audio_warning=lambda: player.status if player.lost else None)
    finally:
        analyzer.stop()
        player.stop()


def _cue_target(timeline: Timeline | None, kind: str, value: float, now: float) -> float | None:
    """The show time a cue event jumps to (None if there is nowhere to go)."""
    if kind == "start":
        return 0.0
    if timeline is None or not timeline.cues:
        return None
    i = timeline.index_at(now)
    target = {"cue_next": i + 1, "cue_prev": max(i - 1, 0), "cue_goto": int(value)}[kind]
    return timeline.cues[target].time if 0 <= target < len(timeline.cues) else None


def _midi(cfg: Config, state: ShowState) -> MidiInput | None:
    if not cfg.control.midi_port:
        return None
    mapping = load_mapping(cfg.control.midi_mapping) if cfg.control.midi_mapping else MidiMapping()
    return MidiInput(cfg.control.midi_port, MidiRouter(state, mapping, cfg.control.prompt_bank)).start()


def run_show(cfg: Config, clock: Callable[[], float], features, watched: WatchedTimeline | None,
              duration: float | None, seek: Callable[[float], None],
              begin: Callable[[], None] = lambda: None,
              audio_warning: Callable[[], str | None] = lambda: None,
              record: str | Path | None = None, header: dict | None = None,
              clock_running: Callable[[], bool] = lambda: True,
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
    state = show_state(cfg.optimizer)
    c = cfg.control
    # What can go wrong in a second comes first (the OSC port, the MIDI mapping, the window, the shaders), so a
    # mistake is said before the networks spend a minute loading.
    osc = OscControl(state, c.osc_host, c.osc_port, c.osc_feedback, c.osc_allow, c.osc_port_search).start()
    midi = _midi(cfg, state)
    d = cfg.display
    window = (OffscreenWindow if offscreen else Window)(d.width, d.height, "vj", d.fullscreen, d.monitor, d.vsync)
    compositor = Compositor(window.ctx, *window.framebuffer_size, d.effects)
    hud_overlay = Hud(window.ctx)
    if models is None:
        _show_status(window, hud_overlay, "loading the networks")
        models = load_models(cfg.model)
    optimizer = LatentOptimizer(models.G, models.clip, cfg.optimizer, seed=cfg.model.seed,
                                truncation_psi=cfg.model.truncation_psi)
    # SIGTERM (a launcher, a service manager) ends the show as the quit key does: the recording is finished.
    previous_sigterm = signal.signal(signal.SIGTERM, lambda signum, frame: state.set_flag("quit", True, "signal"))
    current_timeline = (lambda: watched.timeline) if watched else (lambda: None)
    worker = EngineWorker(optimizer, cfg.optimizer, state, clock, features, current_timeline)
    recorder = ShowRecorder(record, *window.framebuffer_size, header or {}, crf=cfg.render.crf,
                            sample_rate=sound[1] if sound else None) if record else None
    logged = {"changes": 0, "cue": None}  # how far the control log has got

    def log_controls() -> None:
        show_now, ago = clock(), time.time() - began_epoch
        changes, logged["changes"] = state.changes_since(logged["changes"])
        for when, source, what, value in changes:
            at = max(0.0, when - began_epoch)  # when it happened, not when it was logged
            recorder.control(at, max(0.0, show_now - (ago - at)), source, what, value)
    worker.start()
    if not _wait_for_warm_up(window, hud_overlay, worker, state):
        state.set_flag("quit", True, "key")
    begin()
    began, began_epoch = time.perf_counter(), time.time()  # the show's wall-time origin (recording, control log)
    if recorder is not None:
        recorder.clock(0.0, clock(), clock_running())
        if sound is not None:
            recorder.hear(sound[0])
    worker.go()
    min_frame_time = 1.0 / d.max_fps if d.max_fps > 0 else 0.0
    hud, shown_seq, displayed = d.hud, 0, 0
    frame_interval, frame_shown_at = 0.5, time.perf_counter()  # seconds between engine frames; when the newest came
    last_report = time.perf_counter()
    pacing = FrameTimes()
    reported_error: str | None = None  # the cue sheet problem last logged, so each is said once
    try:
        while not window.should_close and not state.snapshot().quit:
            now = time.perf_counter()
            if (duration is not None and now - began >= duration) or ended():
                break
            for key in window.poll():
                if key in (glfw.KEY_ESCAPE, glfw.KEY_Q):
                    state.set_flag("quit", True, "key")
                elif key == glfw.KEY_SPACE:
                    state.set_flag("freeze", not state.snapshot().freeze, "key")
                elif key == glfw.KEY_B:
                    state.set_flag("blackout", not state.snapshot().blackout, "key")
                elif key == glfw.KEY_H:
                    hud = not hud
                elif key == glfw.KEY_F:
                    window.toggle_fullscreen(d.monitor)
                elif key in (glfw.KEY_LEFT, glfw.KEY_RIGHT):
                    state.post("seek", max(0.0, clock() + (5.0 if key == glfw.KEY_RIGHT else -5.0)), "key")
                elif key == glfw.KEY_HOME:
                    state.post("start", 0.0, "key")
                elif key in (glfw.KEY_PAGE_UP, glfw.KEY_PAGE_DOWN):
                    state.post("cue_prev" if key == glfw.KEY_PAGE_UP else "cue_next", 0.0, "key")
            for event in state.drain_events():
                target = event.value if event.kind == "seek" else \
                    _cue_target(current_timeline(), event.kind, event.value, clock())
                if target is not None:
                    seek(target)
                    log.info("%s from %s: show time %.2f s", event.kind, event.source, target)
                    if recorder is not None:
                        recorder.clock(time.perf_counter() - began, target, clock_running())
            if window.framebuffer_size != compositor.size and all(window.framebuffer_size):
                compositor.release()
                compositor = Compositor(window.ctx, *window.framebuffer_size, d.effects)
                shown_seq = 0
            seq, frame = worker.frames.latest()
            if frame is not None and seq != shown_seq:
                frame_interval = 0.8 * frame_interval + 0.2 * max(now - frame_shown_at, 1e-3)
                frame_shown_at = now
                compositor.upload(frame.image)
                shown_seq = seq
            snap, inputs = state.snapshot(), None
            # The show's cue, not the engine frame's (which lags, and skips cues passed quickly), as soon as it changes.
            osc.send_feedback(*show_cue(current_timeline(), clock(), snap.prompt_override))
            if shown_seq and not snap.blackout:
                inputs = effect_inputs(clock(), features(), snap, blend=min(1.0, (now - frame_shown_at) / frame_interval))
                window.present(compositor.render(inputs).color_attachments[0])
            else:
                window.present(None)
            if recorder is not None:  # what the audience sees: before the HUD
                wall = time.perf_counter() - began
                recorder.offer(wall, window.read())
                log_controls()
                if frame is not None and frame.cue != logged["cue"]:  # at the show time its frame was planned for
                    recorder.control(wall, frame.show_time, "timeline", "cue", frame.cue)
                    logged["cue"] = frame.cue
            if hud:
                hud_overlay.draw(window.screen, window.framebuffer_size)
            window.swap()
            swapped = time.perf_counter()
            pacing.tick(swapped)
            if on_frame is not None:
                on_frame(swapped, inputs, frame)
            displayed += 1
            # Without vsync (or under Xvfb) the loop would spin and starve the engine of CPU.
            time.sleep(max(0.0, min_frame_time - (time.perf_counter() - now)))
            if now - last_report >= 1.0:
                fps = displayed / (now - last_report)
                status = (f"vj  t={clock():6.1f}s  cue {frame.cue if frame else -1}  {fps:4.1f} fps  "
                          f"{frame.steps_per_second if frame else 0:4.1f} steps/s  "
                          f"{(frame.prompt if frame else '')[:60]}")
                window.set_title(status if hud else "vj")
                log.info(status)
                bpm = features().bpm
                notices = [audio_warning(), _midi_notice(cfg.control.midi_port, midi), _sheet_notice(watched)]
                lines = _hud_lines(clock(), current_timeline(), frame, fps, bpm, state, osc, midi, compositor,
                                   worker, watched, [n for n in notices if n])
                if not clock_running():
                    lines.insert(0, "waiting for the start cue: OSC /vj/start, a MIDI note mapped to start, or Home")
                hud_overlay.set_lines(lines)
                log.debug("HUD | %s", " | ".join(lines))
                osc.send_feedback(*show_cue(current_timeline(), clock(), state.snapshot().prompt_override), bpm, fps,
                                  force=True)  # every state message once a second, for a surface started later
                for name in compositor.reload_changed():
                    log.info("shader %s reloaded%s", name, " (failed: kept the last good one)"
                             if name in compositor.errors else "")
                if watched and watched.reload_if_changed():
                    log.info("cue sheet %s reloaded (%d cues)", watched.path, len(watched.timeline.cues))
                    for warning in watched.timeline.sheet.warnings:
                        log.warning(warning)
                elif watched and watched.error and watched.error != reported_error:
                    log.warning(watched.error)
                reported_error = watched.error if watched else None
                displayed, last_report = 0, now
    finally:
        ended_at = time.perf_counter() - began  # the show's end, before the threads take their time to stop
        log.info("%s", pacing.summary())
        signal.signal(signal.SIGTERM, previous_sigterm)
        worker.stop()
        osc.stop()
        if recorder is not None:
            log_controls()  # what ended the show, too
            recorder.close(ended_at, clock())
        if midi is not None:
            midi.stop()
        compositor.release()
        hud_overlay.release()
        window.close()
    return 0


def _show_status(window: Window | OffscreenWindow, hud: Hud, status: str) -> None:
    """One black frame with a line of status (before the show: loading, warming up)."""
    window.set_title(f"vj  {status}")
    hud.set_lines([status])
    window.present(None)
    hud.draw(window.screen, window.framebuffer_size)
    window.swap()


def _wait_for_warm_up(window: Window | OffscreenWindow, hud: Hud, worker: EngineWorker, state: ShowState) -> bool:
    """Draws black with the warm-up's progress until the engine is ready; False if the show was quit meanwhile."""
    while not worker.ready.wait(0.05):
        if window.should_close or state.snapshot().quit or any(k in (glfw.KEY_ESCAPE, glfw.KEY_Q) for k in window.poll()):
            return False
        _show_status(window, hud, worker.warming_up or "")
    return True


def _midi_notice(port_match: str, midi: MidiInput | None) -> str | None:
    """A configured MIDI input that opened nothing: the performer's controller is not heard."""
    if midi is None or midi.ports or midi.vanished:
        return None
    what = "no MIDI input port" if port_match == "*" else f"no MIDI input port matches {port_match!r}"
    return f"{what} (`vj midi ports` lists them; one plugged in later is opened)"


def _sheet_notice(watched: WatchedTimeline | None) -> str | None:
    """Lines of the cue sheet in use that were skipped (at the start or by a reload)."""
    warnings = watched.timeline.sheet.warnings if watched else []
    if not warnings:
        return None
    first = warnings[0].replace(str(watched.path), watched.path.name)  # the name is enough
    return f"cue sheet: {len(warnings)} line(s) skipped, first: {first}"[:110]


def _hud_lines(t: float, timeline: Timeline | None, frame, fps: float, bpm: float, state: ShowState, osc: OscControl,
               midi: MidiInput | None, compositor: Compositor, worker: EngineWorker,
               watched: WatchedTimeline | None, notices: list[str] = ()) -> list[str]:
    """What the performer sees: cue now and next, rates, who changed what last, and every warning."""
    lines = []
    if timeline is not None:
        cue_state = timeline.at(t)
        now = cue_state.cue.text if cue_state.cue else "(before the first cue)"
        lines.append(f"{t:7.1f}s  cue {cue_state.index}: {now[:70]}")
        if cue_state.next_cue is not None:
            lines.append(f"next at {cue_state.next_cue.time:.1f}s: {cue_state.next_cue.text[:60]}")
    snap = state.snapshot()
    if snap.prompt_override:
        lines.append(f"live prompt: {snap.prompt_override[:70]}")
    lines.append(f"{fps:5.1f} fps   {frame.steps_per_second if frame else 0:4.1f} guided steps/s   "
                 + (f"{bpm:5.1f} bpm" if bpm > 0 else "tempo: listening")
                 + ("   FROZEN" if snap.freeze else "") + ("   BLACKOUT" if snap.blackout else ""))
    if frame is not None and frame.quality:
        lines.append(f"quality: {frame.quality}")
    what, source, _ = snap.last_change
    if what:
        lines.append(f"last: {what} by {source}")
    warnings = sum(osc.warnings.values()) + (midi.handler.warnings if midi else 0)
    if warnings:
        lines.append(f"! {warnings} bad control message(s) ignored (see log)")
    lines += [f"! {notice}" for notice in notices]
    if midi is not None and midi.vanished:
        lines.append(f"! MIDI port gone: {', '.join(sorted(midi.vanished))[:60]} (reopens when it is back)")
    if worker.errors:
        lines.append(f"! engine errors: {worker.errors} (see log)")
    for name, error in compositor.errors.items():
        lines.append(f"! shader {name}: {error.splitlines()[-1][:70]}")
    if watched and watched.error:
        lines.append(f"! {watched.error.replace(str(watched.path), watched.path.name)[:110]}")  # the name is enough
    return lines
