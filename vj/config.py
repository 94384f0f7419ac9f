"""The one typed config: frozen dataclasses, read from TOML, overridden by `--set section.key=value`.

The defaults here are the defaults; `vj/configs/default.toml` (package data: `vj config default` prints it) spells
them out for people (a test keeps the two equal).
An unknown section or key, a value of the wrong type, or one outside what its key allows (`VALUE_CHECKS`, checked
as it is read, so a show never starts on a value it would trip over), is a `ConfigError`: one line naming the key,
where it came from, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vj.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(UserError):
    """A bad config file or override; the message names the key and the source."""


@dataclass(frozen=True)
class ModelConfig:
    generator: str = "lhq-256"          # known name (`vj models`), a .pkl URL, a .pkl/.safetensors path, or "tiny"
    clip: str = "ViT-B-32/openai"       # open_clip "model/pretrained", a local checkpoint path, or "tiny"
    device: str = "auto"                # "auto" (CUDA if present), "cpu", "cuda", "cuda:1"
    precision: str = "auto"             # "auto" (bf16 on CUDA where supported, else fp16; fp32 on CPU), "fp32",
                                        # "fp16", "bf16" (half precision on a CPU works, slowly: for tests)
    cache_dir: str = ""                 # weights cache; "" = $VJ_CACHE or ~/.cache/vj
    offline_fallback: bool = True       # no weights and no network: run tiny random networks, and say so
    truncation_psi: float = 0.7         # starting latent's truncation towards the average
    seed: int = 0                       # starting latent and cutout randomness
    aspect: str = "display"             # the generated picture's shape: "display" (the output's: the window, the
                                        # video), "W:H" ("16:9", "1:1": the checkpoint's own square); wider costs more
    latent_bank: int = -1               # samples for prompt-matched starts and cue snaps; -1 = 256 on CUDA, 32 on a
                                        # CPU; 0 = none (the start is the seed's latent, cues never snap)


@dataclass(frozen=True)
class OptimizerConfig:
    cutouts: int = 16                   # CLIP crops per step
    cut_pow: float = 1.0                # cutout size distribution: >1 favours small crops
    lr: float = 0.03                    # AdamW step size on the normalised latent (before the director's boosts)
    latent_reg: float = 0.05            # pull of the latent towards the generator's distribution
    display_smoothing_s: float = 0.1    # time constant of the displayed latent following the optimised one (0 = none)
    latent_space: str = "w"             # "w" (one vector) or "w+" (one per layer)
    compile: str = "auto"               # "auto" (compiled on CUDA, eager on CPU), "on", "off"
    cuda_graphs: bool = True            # on CUDA: capture the guided step (one graph per cutout count) and replay it


@dataclass(frozen=True)
class DirectorConfig:
    steps_per_frame: int = 3            # guided steps per generated frame (live-changeable)
    cue_boost: float = 3.0              # step-size multiplier right after a cue change
    cue_boost_decay_s: float = 2.0      # seconds for that boost to fade
    audio_gain: float = 1.0             # how much the onset/beat envelope raises the step size (0 = off)


@dataclass(frozen=True)
class GovernorConfig:
    frame_budget_ms: float = 50.0       # live: fewer steps, then fewer cutouts, when a frame takes longer (0 = off)
    min_cutouts: int = 4                # live: the fewest cutouts the budget may go down to


@dataclass(frozen=True)
class AudioConfig:
    device: str = ""                    # input device name substring or index; "" = system default
    output_device: str = ""             # rehearsal playback device, the same way; "" = system default
    sample_rate: int = 48000            # Hz
    block_size: int = 256               # samples per callback block
    channel: int = -1                   # input channel to use; -1 = mix all
    fft_size: int = 1024                # analysis window in samples
    band_edges: list[float] = field(default_factory=lambda: [20.0, 250.0, 4000.0, 16000.0])  # Hz: bass, mid, high
    attack_s: float = 0.005             # envelope rise time
    release_s: float = 0.25             # envelope fall time
    tempo_range: list[float] = field(default_factory=lambda: [60.0, 200.0])  # BPM the beat tracker may choose


@dataclass(frozen=True)
class CuesConfig:
    transition_s: float = 1.0           # crossfade between consecutive cues
    lenient: bool = True                # skip malformed LRC lines with a warning instead of failing
    loop_s: float = 0.0                 # live: repeat the cue sheet every loop_s seconds (0 = play once)
    live_start: str = "now"             # live: the cue sheet runs from "now" (vj starts) or from a start "cue"
    snap: str = "nearest"               # a cue's start: "nearest" glides to the latent bank's closest sample over its
                                        # crossfade, "off" leaves it to the guided steps; a cue's {snap=...} wins
    quantize: str = "off"               # live: a performer's cue jump or live prompt waits for the tempo grid's next
                                        # "beat", "bar", "2bars" or "4bars" ("off": at once); sheet cues: {q=...}
    lookahead_ms: float = 40.0          # ... taken this early, to cover the time a frame takes to reach the screen


@dataclass(frozen=True)
class ControlConfig:
    osc_host: str = "127.0.0.1"         # OSC listen address; loopback unless asked
    osc_port: int = 9010                # clear of Resolume (7000) and AbletonOSC (11000/11001); 0 = any free one
    osc_feedback: str = ""              # "host:port" to send state to (TouchOSC, TouchDesigner); "" = none
                                        # (a host that does not resolve: warned about once, nothing is sent)
    osc_allow: list[str] = field(default_factory=list)  # addresses/networks allowed to send OSC; [] = any that reach it
    osc_port_search: int = 0            # port taken: try the next N ports (0 = stop with a clear error)
    midi_port: str = ""                 # MIDI input name substring; "" = none, "*" = all
    midi_mapping: str = ""              # mapping TOML file, or a bundled one's name (`vj midi mappings`)
    tempo_source: str = "audio"         # the show's beat: "audio" (vj hears it), "link" (Ableton Link, pip install
                                        # vj[link]), "midi_clock", or "auto": Link with a peer, else clock, else audio
    midi_clock_port: str = ""           # MIDI clock input name substring; "" = midi_port's
    prompt_bank: list[str] = field(default_factory=lambda: [
        "a neon city at night", "a deep blue ocean, bioluminescence", "a field of sunflowers, violet sky",
        "fire and ice", "liquid chrome, studio light", "a forest in fog"])  # prompts that MIDI notes can call up


@dataclass(frozen=True)
class DisplayConfig:
    width: int = 1280                   # window size in pixels
    height: int = 720
    fullscreen: bool = False
    monitor: int = 0                    # monitor index for full screen
    vsync: bool = True
    max_fps: float = 60.0               # cap on the draw rate when vsync does not hold it (0 = no cap)
    hud: bool = True                    # overlay with cue, fps, bpm (off for the audience)
    effects: list[str] = field(default_factory=lambda: ["feedback", "zoom_pulse", "hue_shift", "rgb_split", "vignette"])
    upscale: str = "sharp"              # frame -> output size: "sharp" (edge-adaptive, then sharpened) or "bilinear"
    fit: str = "cover"                  # frame vs output aspect: "cover" (crop), "contain" (black bars) or "stretch"


@dataclass(frozen=True)
class RenderConfig:
    fps: int = 30                       # frames per second of the video
    width: int = 512                    # video size in pixels
    height: int = 512
    seed: int = 0                       # overrides model.seed for a render when not 0
    crf: int = 20                       # H.264 quality (lower is better, 18-28 sensible)
    audio_bitrate: int = 192000         # AAC bits per second


@dataclass(frozen=True)
class OutputConfig:
    stream: str = ""                    # H.264 to "udp://host:port" or "srt://host:port" (MPEG-TS), or
                                        # "rtmp://host:port/app/key" (FLV); "" = none
    stream_bitrate_kbps: int = 6000     # the stream's video bit rate and cap, kbit/s
    ndi: str = ""                       # NDI source name (needs `pip install vj[ndi]`); "" = none
    spout: str = ""                     # Spout sender name (Windows: pip install vj[spout]); "" = none
    syphon: str = ""                    # Syphon server name (macOS: pip install vj[syphon]); "" = none


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    director: DirectorConfig = field(default_factory=DirectorConfig)
    governor: GovernorConfig = field(default_factory=GovernorConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    cues: CuesConfig = field(default_factory=CuesConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


def _check(value: Any, annotation: Any, key: str, source: str) -> Any:
    """Returns value if it fits the annotation (ints are accepted as floats), else raises ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (list, types.GenericAlias) or annotation is list:
        (item_type,) = typing.get_args(annotation) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, got {_describe(value)}")
        return [_check(v, item_type, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{source}: {key} must be {annotation.__name__}, got {_describe(value)}")
    if annotation is Any or isinstance(value, annotation):
        return value
    raise ConfigError(f"{source}: {key} must be {annotation.__name__}, got {_describe(value)}")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _apply(config: Config, section: str, key: str, value: Any, source: str) -> Config:
    sections = {f.name: f for f in dataclasses.fields(Config)}
    if section not in sections:
        raise ConfigError(f"{source}: unknown section [{section}] (known: {', '.join(sections)})")
    current = getattr(config, section)
    hints = typing.get_type_hints(type(current))
    if key not in hints and f"{section}.{key}" in RENAMED:
        raise ConfigError(f"{source}: {section}.{key} is gone: use {RENAMED[f'{section}.{key}']}")
    if key not in hints:
        raise ConfigError(f"{source}: unknown key {section}.{key} (known in [{section}]: {', '.join(hints)})")
    checked = _check(value, hints[key], f"{section}.{key}", source)
    problem = VALUE_CHECKS.get(f"{section}.{key}", lambda v: None)(checked)
    if problem:
        raise ConfigError(f"{source}: {section}.{key}: {problem}")
    return dataclasses.replace(config, **{section: dataclasses.replace(current, **{key: checked})})


def ip_networks(entries: typing.Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """control.osc_allow entries ("192.168.1.20", "10.0.0.0/24") as networks; ValueError names a bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network like 10.0.0.0/24") from None
    return tuple(networks)


def _ip_networks(entries: list[str]) -> str | None:
    try:
        ip_networks(entries)
    except ValueError as e:
        return str(e)
    return None


def _one_of(value: str, allowed: tuple[str, ...]) -> str | None:
    return None if value in allowed else f"must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}"


Check = typing.Callable[[Any], str | None]  # None: the value is fine; else what is wrong with it


def _number(low: float, high: float, unit: str = "", low_excluded: bool = False) -> Check:
    """A finite number from low (or just above it) to high; nan and inf are refused by the comparison and isfinite."""
    def check(value: float) -> str | None:
        inside = (low < value if low_excluded else low <= value) and value <= high
        if inside and (isinstance(value, int) or math.isfinite(value)):
            return None
        span = f"more than {low} and at most {high}" if low_excluded else f"between {low} and {high}"
        return f"must be {span}{unit}, got {value!r}"
    return check


def _not_empty(meaning: str) -> Check:
    return lambda value: None if value.strip() else f"must not be empty ({meaning}), got {value!r}"


def _device(value: str) -> str | None:
    if re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        return None
    return f"must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\" (a CUDA device index), got {value!r}"


def aspect_ratio(setting: str, output_size: tuple[int, int]) -> float:
    """model.aspect as width / height: "display" follows the output (width, height), "W:H" is W / H."""
    if setting == "display":
        return output_size[0] / output_size[1] if all(output_size) else 1.0
    width, height = (float(v) for v in setting.split(":"))
    return width / height


def _aspect(value: str) -> str | None:
    match = re.fullmatch(r"(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)", value)
    if value == "display" or (match and float(match[2]) > 0 and 0.25 <= float(match[1]) / float(match[2]) <= 4):
        return None
    return f"must be \"display\" or a ratio \"W:H\" from 1:4 to 4:1 like \"16:9\", got {value!r}"


def _band_edges(edges: list[float]) -> str | None:
    if len(edges) >= 2 and all(0 < e < math.inf for e in edges) and all(a < b for a, b in zip(edges, edges[1:])):
        return None
    return f"must be at least 2 increasing positive frequencies in Hz (n + 1 edges for n bands), got {edges!r}"


def _even_pixels(value: int) -> str | None:
    if 2 <= value <= 16384 and value % 2 == 0:
        return None
    return f"must be an even number of pixels from 2 to 16384 (H.264 needs even sizes), got {value!r}"


def host_port(target: str) -> tuple[str, int]:
    """control.osc_feedback ("host:port", "[::1]:port") as (host, port); ValueError says what is wrong. Whether the
    host resolves is for the show to find out: a name may resolve on the stage network and not where vj is set up."""
    host, sep, port = target.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # an IPv6 address in brackets
    if not sep or not host.strip() or not port.isdigit():
        raise ValueError(f"must be \"host:port\" like \"127.0.0.1:9000\" (or \"\" for none), got {target!r}")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"must name a port from 1 to 65535, got {target!r}")
    return host, int(port)


def _host_port(target: str) -> str | None:
    try:
        host_port(target) if target else None
    except ValueError as e:
        return str(e)
    return None


STREAM_SCHEMES = ("udp", "srt", "rtmp")  # output.stream


def _stream_url(url: str) -> str | None:
    """output.stream: "" or scheme://host:port[/path][?options]; whether the host resolves is for the show."""
    if not url:
        return None
    allowed = f"must be \"udp://host:port\", \"srt://host:port\" or \"rtmp://host:port/app/key\" (or \"\"), got {url!r}"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return f"must name a port from 1 to 65535, got {url!r}"
    if parts.scheme not in STREAM_SCHEMES or not parts.hostname or not port:
        return allowed
    return None


def _ndi_name(name: str) -> str | None:
    if not name or (name.strip() == name and name.isprintable() and len(name) <= 64):
        return None
    return f"must be an NDI source name (printable, no spaces around it, at most 64 characters) or \"\", got {name!r}"


def _only_on(platform: str, what: str) -> Check:
    """A key that names an output only one platform has (Spout: Windows; Syphon: macOS)."""
    def check(name: str) -> str | None:
        if not name or sys.platform == platform:
            return None
        return f"must be \"\" here: {what}, not {sys.platform} (use output.ndi or output.stream), got {name!r}"
    return check


# The compositor's effects (vj/render/compositor.py), kept here because this module sits below vj.render and cannot
# import it; a test holds the two equal.
EFFECT_NAMES = ("feedback", "zoom_pulse", "hue_shift", "rgb_split", "kaleidoscope", "vignette")


UPSCALE_NAMES = ("bilinear", "sharp")  # display.upscale, read by the compositor
FIT_NAMES = ("cover", "contain", "stretch")  # display.fit


def _effects(names: list[str]) -> str | None:
    unknown = [n for n in names if n not in EFFECT_NAMES]
    if not unknown:
        return None
    return f"unknown effect {unknown[0]!r} in {names!r}: each must be one of {', '.join(EFFECT_NAMES)}"


# Keys that were replaced, and what to write instead.
RENAMED = {
    "optimizer.display_ema": "optimizer.display_smoothing_s (a time constant in seconds, e.g. 0.1: the old "
                             "per-frame factor made the picture smoother on slower machines)",
    **{f"optimizer.{key}": f"director.{key}" for key in ("steps_per_frame", "cue_boost", "cue_boost_decay_s",
                                                         "audio_gain")},
    **{f"optimizer.{key}": f"governor.{key}" for key in ("frame_budget_ms", "min_cutouts")},
}

# Checks beyond the type, for values a show would otherwise only trip over once it has started (or take silently:
# nan). Every key has one, unless any value of its type will do (tests/test_config_cli.py lists those and why).
VALUE_CHECKS: dict[str, Check] = {
    "model.generator": _not_empty("a known name, a checkpoint path, or \"tiny\""),
    "model.clip": _not_empty("an open_clip \"model/pretrained\", a checkpoint path, or \"tiny\""),
    "model.device": _device,
    "model.precision": lambda v: _one_of(v, ("auto", "fp32", "fp16", "bf16")),
    "model.truncation_psi": _number(0, 2),
    "model.seed": _number(0, 2**31 - 1),
    "model.aspect": _aspect,
    "model.latent_bank": _number(-1, 65536),
    "optimizer.cutouts": _number(1, 1024),
    "optimizer.cut_pow": _number(0, 10, low_excluded=True),
    "optimizer.lr": _number(0, 10, low_excluded=True),
    "optimizer.latent_reg": _number(0, 100),
    "optimizer.display_smoothing_s": _number(0, 10, " seconds"),
    "optimizer.latent_space": lambda v: _one_of(v, ("w", "w+")),
    "optimizer.compile": lambda v: _one_of(v, ("auto", "on", "off")),
    "director.steps_per_frame": _number(0, 16),  # the live parameter's range
    "director.cue_boost": _number(0, 100),
    "director.cue_boost_decay_s": _number(0, 600, " seconds"),
    "director.audio_gain": _number(0, 4),  # the live parameter's range
    "governor.frame_budget_ms": _number(0, 60000, " ms"),
    "governor.min_cutouts": _number(1, 1024),
    "audio.sample_rate": _number(1000, 768000, " Hz"),
    "audio.block_size": _number(16, 65536, " samples"),
    "audio.channel": _number(-1, 1023),
    "audio.fft_size": _number(16, 1 << 20, " samples"),
    "audio.band_edges": _band_edges,
    "audio.attack_s": _number(0, 60, " seconds"),
    "audio.release_s": _number(0, 60, " seconds"),
    "audio.tempo_range": lambda v: None if len(v) == 2 and 20 <= v[0] < v[1] <= 400 else (
        f"must be [slowest, fastest] in BPM, rising, within 20..400 (e.g. [80, 180]), got {v!r}"),
    "cues.transition_s": _number(0, 3600, " seconds"),
    "cues.loop_s": _number(0, 86400, " seconds"),
    "cues.live_start": lambda v: None if v in ("now", "cue") else f"must be \"now\" or \"cue\", got {v!r}",
    "cues.snap": lambda v: _one_of(v, ("off", "nearest")),
    "cues.quantize": lambda v: _one_of(v, ("off", "beat", "bar", "2bars", "4bars")),
    "cues.lookahead_ms": _number(0, 1000, " ms"),
    "control.osc_host": _not_empty("an address to listen on; \"0.0.0.0\" for every interface"),
    "control.osc_port": lambda v: None if 0 <= v <= 65535 else f"must be a port from 1 to 65535 (or 0: any free "
                                                              f"one, logged), got {v!r}",
    "control.osc_feedback": _host_port,
    "control.osc_allow": _ip_networks,
    "control.osc_port_search": _number(0, 1000),
    "control.tempo_source": lambda v: _one_of(v, ("auto", "audio", "link", "midi_clock")),
    "display.width": _number(1, 16384, " pixels"),
    "display.height": _number(1, 16384, " pixels"),
    "display.monitor": _number(0, 63),
    "display.max_fps": _number(0, 1000),
    "display.effects": _effects,
    "display.upscale": lambda v: _one_of(v, UPSCALE_NAMES),
    "display.fit": lambda v: _one_of(v, FIT_NAMES),
    "render.fps": _number(1, 1000),
    "render.width": _even_pixels,
    "render.height": _even_pixels,
    "render.seed": _number(0, 2**31 - 1),
    "render.crf": _number(0, 51),
    "render.audio_bitrate": _number(8000, 1_000_000, " bits per second"),
    "output.stream": _stream_url,
    "output.stream_bitrate_kbps": _number(100, 1_000_000, " kbit/s"),
    "output.ndi": _ndi_name,
    "output.spout": _only_on("win32", "Spout is on Windows only"),
    "output.syphon": _only_on("darwin", "Syphon is on macOS only"),
}


def _check_together(config: Config) -> str | None:
    """Checks of one key against another, made once every key is read (an override may fix what the file set)."""
    a = config.audio
    if a.fft_size < a.block_size:
        return f"audio.fft_size: must be at least audio.block_size ({a.block_size}), got {a.fft_size}"
    return None


def packaged(*parts: str) -> Path:
    """A file shipped inside the package (`vj/configs/...`), where it is installed."""
    return Path(str(resources.files("vj").joinpath("configs", *parts)))


def from_dict(data: dict, source: str, base: Config | None = None) -> Config:
    config = base or Config()
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {section} must be a [section] table, got {_describe(table)}")
        for key, value in table.items():
            config = _apply(config, section, key, value, source)
    return config


def read_toml(path: str | Path, error: type[Exception] = ConfigError) -> dict:
    """A TOML file as a dict; an unreadable or invalid file raises `error` naming the file."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid TOML: {e}") from None


def load(path: str | Path | None = None, overrides: typing.Sequence[str] = (), base: Config | None = None) -> Config:
    """Defaults (or base), then the TOML file (if any), then `section.key=value` overrides, each checked."""
    config = base or Config()
    if path:
        config = from_dict(read_toml(path), str(path), config)
    for item in overrides:
        config = apply_override(config, item)
    problem = _check_together(config)
    if problem:
        sources = ([str(path)] if path else []) + (["--set"] if overrides else [])
        raise ConfigError(f"{' and '.join(sources) or 'the defaults'}: {problem}")
    return config


def apply_override(config: Config, item: str) -> Config:
    """One `section.key=value`; the value is read as TOML (`3`, `0.5`, `true`, `[1, 2]`, `"x"`) or a bare string."""
    source = f"--set {item}"
    name, sep, text = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not key:
        raise ConfigError(f"{source}: expected section.key=value")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word: accepted where the key is a string, refused by the type check elsewhere
    return _apply(config, section, key.strip(), value, source)
