"""The `vj` command: each subcommand is a thin function over the modules it drives."""

from __future__ import annotations

import argparse
import atexit
import ctypes
import faulthandler
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Callable, NoReturn

from vj import config as config_mod
from vj.errors import UserError
from vj.native_noise import quiet_native_libraries

log = logging.getLogger("vj")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `vj render: error: ... (see vj render --help)`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 1280x720, got {text!r}") from None
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size must be positive and even (H.264), got {text!r}")
    return w, h


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_seeds(text: str) -> list[int]:
    """'0-3' -> [0, 1, 2, 3]; '1,5,7' -> [1, 5, 7]; '2' -> [2]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, dash, hi = part.partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0-3 or 1,5,7, got {text!r}") from None
    return seeds


def parse_pair(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y like 0.1,-0.2, got {text!r}") from None
    return x, y


def _config(args: argparse.Namespace, base: config_mod.Config | None = None,
            **render_overrides) -> config_mod.Config:
    overrides = list(args.set or [])
    overrides += [f"{key}={value}" for key, value in render_overrides.items() if value is not None]
    return config_mod.load(args.config, overrides, base)


# -- subcommands ---------------------------------------------------------------------------------------------

def cmd_render(args: argparse.Namespace) -> int:
    size = args.size or (None, None)
    cfg = _config(args, **{"render.fps": args.fps, "render.width": size[0], "render.height": size[1],
                           "render.seed": args.seed, "director.steps_per_frame": args.steps})
    _output_file(args.output)
    from vj.app.render import render_video  # torch, seconds to import: after the checks above

    result = render_video(args.audio, args.output, cfg, lrc_path=args.lrc, frames_log=args.frames_log,
                          stills_dir=args.stills, progress=not args.quiet)
    if result.interrupted:
        print(f"interrupted: {result.path} holds the first {result.frames} frames ({result.duration:.2f} s), "
              f"its audio cut to match")
        return 130
    print(f"wrote {result.path} ({result.frames} frames, {result.duration:.2f} s of audio)")  # fallbacks: said at load
    return 0


def _output_file(path: str, recording: bool = False) -> None:
    """A video file vj could not write (its extension, its folder) is refused in one line before anything loads; a
    missing folder for it is made, and said (a typo in the path should not go unnoticed). `recording`: the control
    log beside it too."""
    from vj.render import recorder, video

    folder = recorder.prepare_recording_path(path) if recording else video.prepare_video_path(path)
    if folder is not None:
        print(f"made the folder {folder} for {Path(path).name}")


def cmd_live(args: argparse.Namespace) -> int:
    cfg = _config(args)  # a config mistake is said before the show's modules load
    if args.record:
        _output_file(args.record, recording=True)
    from vj.app.show import run_live

    return run_live(cfg, lrc_path=args.lrc, duration=args.duration, record=args.record, headless=args.headless)


def cmd_rehearse(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.record:
        _output_file(args.record, recording=True)
    from vj.app.show import run_rehearsal

    return run_rehearsal(cfg, args.audio, lrc_path=args.lrc, duration=args.duration, start=args.start,
                         record=args.record, loop=args.loop)


def cmd_replay(args: argparse.Namespace) -> int:
    from vj.control.showlog import ControlReplay, read_show_log

    show = read_show_log(args.log)
    size = args.size or (None, None)
    cfg = _config(args, show.config(), **{"render.fps": args.fps, "render.width": size[0], "render.height": size[1],
                                          "director.steps_per_frame": args.steps})
    lrc = args.lrc or show.header.get("lrc")
    if lrc and not Path(lrc).is_file():
        raise config_mod.ConfigError(f"the show's cue sheet {lrc} is not there any more; pass --lrc FILE")
    audio = args.audio
    if audio is None:  # the recording the log was written beside has the show's sound
        recording = show.header.get("recording")
        audio = Path(args.log).parent / recording if recording else None
        if audio is None or not audio.is_file():
            raise config_mod.ConfigError(f"{args.log}: the show's recording is not beside it; pass --audio FILE")
    replay = ControlReplay(show)
    _output_file(args.output)
    from vj.app.render import render_video

    result = render_video(audio, args.output, cfg, lrc_path=lrc, frames_log=args.frames_log,
                          progress=not args.quiet, controls=replay, duration=show.end)
    print(f"wrote {result.path} ({result.frames} frames, {result.duration:.2f} s; "
          f"{len(show.entries)} logged changes, {replay.ignored} ignored)")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from vj.devices import describe_devices

    for section, lines in describe_devices().items():
        print(f"{section}:")
        for line in lines:
            print(f"  {line}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from vj.models import registry

    cfg = _config(args)
    cache = registry.cache_dir(cfg.model.cache_dir or None)
    print(f"cache: {cache}")
    print("generators (StyleGAN3; `model.generator` also takes a https://... .pkl URL or a local file):")
    for name, known in registry.GENERATORS.items():
        path = registry.cached_path(name, cache)
        where = f"cached at {path}" if path.is_file() else "not downloaded"
        default = " (default)" if name == registry.DEFAULT_GENERATOR else ""
        print(f"  {name + default:38s} {known.resolution:4d}px  {known.config}  {known.size_text:16s} {where}")
        print(f"      for: {known.good_for}")
        print(f"      licence: {known.licence}")
    print("CLIP (open_clip):")
    for name in registry.CLIP_MODELS:
        default = " (default)" if name == registry.DEFAULT_CLIP else ""
        print(f"  {name}{default}")
    print("  tiny  (random 2-layer model for tests and the offline demo)")
    return 0


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from vj.models import registry

    cfg = _config(args)
    cache = registry.cache_dir(cfg.model.cache_dir or None)
    if args.name in registry.GENERATORS or registry.is_url(args.name):
        if args.base_url and args.name not in registry.GENERATORS:
            raise registry.DownloadError("--base-url is for a known checkpoint's name, not a URL")
        path = registry.fetch_generator(args.name, cache, quiet=args.quiet, base_url=args.base_url)
        print(f"{args.name}: {path}")
        return 0
    from vj.models.clip import ClipLoadError, load_clip

    try:
        load_clip(args.name, "cpu", "fp32", registry.clip_cache_dir(cache))
    except ClipLoadError as e:
        raise registry.DownloadError(str(e)) from None
    print(f"{args.name}: cached under {registry.clip_cache_dir(cache)}")
    return 0


def cmd_models_convert(args: argparse.Namespace) -> int:
    from vj.models.checkpoints import convert

    weights, config = convert(args.checkpoint)
    print(f"wrote {weights} and {config}")
    return 0


def cmd_models_sample(args: argparse.Namespace) -> int:
    from vj.models.sample import sample_images

    paths = sample_images(args.checkpoint, args.seeds, args.output, psi=args.psi, translate=args.translate,
                          rotate=args.rotate)
    for path in paths:
        print(path)
    return 0


def cmd_cues_check(args: argparse.Namespace) -> int:
    from vj.cues.lrc import read_lrc

    cfg = _config(args)  # cues.lenient and cues.transition_s, as a show would read the sheet
    sheet = read_lrc(args.file, lenient=cfg.cues.lenient and not args.strict)  # no cues: an error
    for warning in sheet.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    fade = cfg.cues.transition_s
    out = sys.stdout
    if args.json:
        # One cue at a time: the whole document as one json.dumps took 470 MB for a 100 000-line sheet.
        encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
        out.write(f'{{"tags": {encode(sheet.tags)}, "transition_s": {encode(fade)}, "cues": [')
        for i, c in enumerate(sheet.cues):
            out.write(("," if i else "") + "\n " + encode({
                "time": round(c.time, 6), "text": c.text, "line": c.line,
                "prompts": [{"text": p.text, "weight": p.weight} for p in c.prompts],
                "words": [{"time": round(t, 6), "word": w} for t, w in c.words],
                "transition": c.transition, "boost": c.boost, "steps": c.steps, "clear": c.clear,
                "crossfade_s": fade if c.transition is None else c.transition}))
        out.write("\n]}\n")
    else:
        for tag, value in sheet.tags.items():
            out.write(f"[{tag}] {value}\n")
        for i, c in enumerate(sheet.cues):
            minutes, seconds = divmod(c.time, 60)
            out.write(f"{i:3d}  {int(minutes):02d}:{seconds:05.2f}  "
                      f"{c.text or '(hold)' if not c.clear else '(clear)'}\n")
        out.write(f"{len(sheet.cues)} cues, {len(sheet.warnings)} warning(s); crossfade {fade:g} s "
                  "(cues.transition_s) unless a cue sets {transition}\n")
    return 0


def cmd_audio_analyze(args: argparse.Namespace) -> int:
    from vj.audio.analyze import analyze_file

    cfg = _config(args)
    result = analyze_file(args.file, cfg.audio.block_size, cfg.audio.fft_size)
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    print(f"{args.file}: {result.duration:.2f} s, {len(result.onsets)} onsets, {len(result.beats)} beats")
    for t, bpm in result.tempo:
        print(f"  tempo {bpm:6.1f} BPM from {t:7.2f} s")
    print("  beats: " + " ".join(f"{t:.2f}" for t in result.beats[:32]) + (" ..." if len(result.beats) > 32 else ""))
    return 0


def cmd_osc(args: argparse.Namespace) -> int:
    from vj.control.osc import address_table

    cfg = _config(args)
    print(f"vj listens for OSC on {cfg.control.osc_host}:{cfg.control.osc_port}\n")
    print(address_table())
    return 0


def cmd_midi_learn(args: argparse.Namespace) -> int:
    from vj.control.midi import learn

    cfg = _config(args)
    mapping = args.mapping or cfg.control.midi_mapping
    if not mapping:
        raise config_mod.ConfigError("--mapping FILE (or control.midi_mapping) names the file to write")
    print(f"touch a control on a MIDI port matching {args.port!r} (waiting {args.timeout:g} s)...", flush=True)
    row = learn(args.port, mapping, param=args.param, action=args.action, slot=args.slot, timeout=args.timeout)
    print(f"wrote to {mapping}:\n{row}")
    return 0


def cmd_midi_mappings(args: argparse.Namespace) -> int:
    from vj.control.midi import bundled_mappings

    for name, path in bundled_mappings().items():
        print(f"{name:28s} {path}")
    print("use one with --set control.midi_mapping=NAME, or copy it and change it")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(config_mod.packaged("default.toml").read_text(encoding="utf-8"), end="")
    return 0


def cmd_midi_ports(args: argparse.Namespace) -> int:
    from vj.devices import describe_devices

    for line in describe_devices()["midi"]:
        print(line)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from vj import bench

    results = bench.quick(args.what, out=args.output)
    print(json.dumps(results, indent=1))
    return 0


# -- the parser ----------------------------------------------------------------------------------------------

def build_parser() -> Parser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="TOML config file (default: built-in defaults, "
                        "as listed in configs/default.toml)")
    common.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override one config key, e.g. --set optimizer.cutouts=32 (repeatable)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress bars")

    parser = Parser(prog="vj", description="Real-time AI VJ engine: music and cues steer a CLIP-guided StyleGAN3.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str, into=sub) -> Parser:
        p = into.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("render", cmd_render, "render a music video offline: audio (+ LRC cue sheet) -> MP4 with the audio")
    p.add_argument("audio", help="audio file (wav, flac, ogg, mp3)")
    p.add_argument("--lrc", metavar="FILE", help="LRC cue sheet: each [mm:ss.xx] line is the prompt from then on")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="video file to write")
    p.add_argument("--fps", type=positive_int, help="frames per second (default: render.fps, 30)")
    p.add_argument("--size", type=parse_size, metavar="WxH", help="video size (default: render.width x height)")
    p.add_argument("--seed", type=int, help="seed for the start latent and cutouts (default: render.seed)")
    p.add_argument("--steps", type=positive_int, help="guided steps per frame (default: director.steps_per_frame)")
    p.add_argument("--frames-log", metavar="FILE", help="write one JSON line per frame (t, cue, prompts, loss)")
    p.add_argument("--stills", metavar="DIR", help="also write one PNG per cue (its last frame) and contact.png")

    p = command("live", cmd_live, "perform: audio input, OSC and MIDI control, optional cue sheet, full-screen window")
    p.add_argument("--lrc", metavar="FILE", help="cue sheet to follow from the start (wall clock)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until quit)")
    p.add_argument("--record", metavar="OUT.mp4", help="record the displayed frames (real timestamps) and a control "
                   "log (OUT.controls.jsonl)")
    p.add_argument("--headless", action="store_true", help="no window and no display needed (EGL): the picture at "
                   "display.width x height goes out through output.stream, output.ndi or --record; control by OSC")

    p = command("rehearse", cmd_rehearse, "play an audio file through the speakers and follow its cue sheet")
    p.add_argument("audio", help="audio file to play")
    p.add_argument("--lrc", required=True, metavar="FILE", help="the cue sheet to rehearse")
    p.add_argument("--start", type=float, default=0.0, metavar="S", help="start at S seconds into the track")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of the track from --start "
                   "(default: at the end of the track)")
    p.add_argument("--loop", action="store_true", help="when the track ends, play it again from --start")
    p.add_argument("--record", metavar="OUT.mp4", help="record the displayed frames and a control log")

    p = command("replay", cmd_replay, "re-render a recorded show offline from its control log, at any size")
    p.add_argument("log", help="the control log a recording wrote (OUT.controls.jsonl)")
    p.add_argument("--audio", metavar="FILE", help="the show's audio as heard from its start (default: the sound of "
                   "the recording the log was written beside)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="video file to write")
    p.add_argument("--lrc", metavar="FILE", help="cue sheet (default: the one the show used)")
    p.add_argument("--fps", type=positive_int, help="frames per second (default: render.fps, 30)")
    p.add_argument("--size", type=parse_size, metavar="WxH", help="video size (default: render.width x height)")
    p.add_argument("--steps", type=positive_int, help="guided steps per frame until the log changes them")
    p.add_argument("--frames-log", metavar="FILE", help="write one JSON line per frame (t, cue, prompts, params)")

    command("devices", cmd_devices, "list audio devices, MIDI ports, the OpenGL renderer and CUDA devices")

    models = sub.add_parser("models", help="known checkpoints and the cache; fetch, convert, sample",
                            description="known checkpoints and the cache; fetch, convert, sample", parents=[common])
    models.set_defaults(func=cmd_models_list)
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", parser_class=Parser)
    command("list", cmd_models_list, "list known checkpoints and which are cached", into=msub)
    p = command("fetch", cmd_models_fetch, "download a known checkpoint (or CLIP model/tag) into the cache", into=msub)
    p.add_argument("name", help="a name from `vj models` (e.g. lhq-256, ViT-B-32/openai) or a https://... .pkl URL")
    p.add_argument("--base-url", metavar="URL", help="download from this mirror instead of the published URL")
    p = command("convert", cmd_models_convert, "export X.pkl to X.safetensors + X.json (the fast load path)", into=msub)
    p.add_argument("checkpoint", help="an official StyleGAN3 .pkl")
    p = command("sample", cmd_models_sample, "one PNG per seed from a checkpoint, as the reference gen_images.py",
                into=msub)
    p.add_argument("checkpoint", help=".pkl or .safetensors (or a known name that is cached)")
    p.add_argument("--seeds", type=parse_seeds, default=[0, 1, 2, 3], help="e.g. 0-3 or 1,5,7 (default 0-3)")
    p.add_argument("--psi", type=float, default=0.7, help="truncation psi (default 0.7)")
    p.add_argument("--translate", type=parse_pair, default=(0.0, 0.0), metavar="X,Y", help="translate the image")
    p.add_argument("--rotate", type=float, default=0.0, metavar="DEG", help="rotate the image (degrees)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the PNGs")

    cues = sub.add_parser("cues", help="cue sheets", description="cue sheets", parents=[common])
    csub = cues.add_subparsers(dest="cues_command", required=True, metavar="ACTION", parser_class=Parser)
    p = command("check", cmd_cues_check, "validate an LRC cue sheet and print its cues", into=csub)
    p.add_argument("file", help="the .lrc file")
    p.add_argument("--json", action="store_true", help='print {"tags": {...}, "cues": [...]} as JSON')
    p.add_argument("--strict", action="store_true", help="a malformed line or setting is an error, and text that "
                   "might be a typo a warning (default: cues.lenient: warn and skip)")

    audio = sub.add_parser("audio", help="audio analysis", description="audio analysis", parents=[common])
    audio_sub = audio.add_subparsers(dest="audio_command", required=True, metavar="ACTION", parser_class=Parser)
    p = command("analyze", cmd_audio_analyze, "run the live (causal) analysis over a file: onsets, beats, tempo",
                into=audio_sub)
    p.add_argument("file", help="audio file (wav, flac, ogg, mp3)")
    p.add_argument("--json", action="store_true", help='print {"onsets": [...], "beats": [...], "tempo": [[t, bpm]]}')

    command("osc", cmd_osc, "print the OSC address table (what vj listens to and sends back)")
    command("config", cmd_config, "print the default configuration, every key with its comment (vj config > my.toml)")

    midi = sub.add_parser("midi", help="MIDI ports and mapping", description="MIDI ports and mapping",
                          parents=[common])
    midi_sub = midi.add_subparsers(dest="midi_command", required=True, metavar="ACTION", parser_class=Parser)
    command("ports", cmd_midi_ports, "list MIDI input ports", into=midi_sub)
    command("mappings", cmd_midi_mappings, "list the mappings that come with vj (control.midi_mapping = NAME)",
            into=midi_sub)
    p = command("learn", cmd_midi_learn, "touch a control, pick what it drives; the mapping file is written",
                into=midi_sub)
    p.add_argument("port", help="input port name substring (\"*\" = all)")
    p.add_argument("--mapping", metavar="FILE", help="mapping file to write (default: control.midi_mapping)")
    p.add_argument("--param", help="parameter for a CC (default: ask)")
    p.add_argument("--action", help="action for a note: start, cue_next, cue_prev, downbeat, freeze, blackout, prompt "
                   "(default: ask)")
    p.add_argument("--slot", type=int, default=0, help="prompt bank slot for action prompt (default 0)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait (default 30)")

    p = command("bench", cmd_bench, "quick benchmarks of this machine (full ones: make bench)")
    p.add_argument("what", nargs="?", default="all", choices=["all", "generator", "guidance", "compositor"],
                   help="which part to measure (default all)")
    p.add_argument("-o", "--output", metavar="FILE", help="also write the figures as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    faulthandler.enable()  # a crash in native code (GL, JACK, MIDI) leaves every thread's Python stack in the log
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    quiet_native_libraries()
    try:
        return args.func(args)
    except UserError as e:
        print(f"vj {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `vj osc | head`: the reader has gone, which is no error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 0


def run() -> None:
    """The `vj` command: `main`, then a quick exit. The interpreter's teardown (torch, the GL driver, the audio
    libraries) takes a second and a half after a show and does nothing a show needs: every file vj writes is closed
    by then. What a normal exit does that matters still happens: other threads are waited for, the exit handlers
    run (logging's flush, child processes ended), the output is flushed, Python's and the C library's."""
    code = main()
    threading._shutdown()  # as the interpreter's exit: thread pools' exit hooks, then other threads waited for
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader gone (`vj osc | head`), a stream closed
            pass
    try:
        ctypes.CDLL(None).fflush(None)  # native libraries' buffered output (C stdio), which _exit would drop
    except (OSError, AttributeError):
        pass
    os._exit(code)


if __name__ == "__main__":
    run()
