"""The typed config and the `vj` command's argument handling."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_vj
from vj import config


def test_default_toml_lists_exactly_the_defaults():
    assert config.load(config.packaged("default.toml")) == config.Config()


def test_file_errors_name_the_key_and_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nseeed = 3\n")
    with pytest.raises(config.ConfigError, match=rf"{bad}: unknown key model\.seeed"):
        config.load(bad)
    bad.write_text("[optimizer]\ncutouts = \"many\"\n")
    with pytest.raises(config.ConfigError, match=rf"{bad}: optimizer\.cutouts must be int, got str"):
        config.load(bad)
    bad.write_text("[nope]\nx = 1\n")
    with pytest.raises(config.ConfigError, match=r"unknown section \[nope\]"):
        config.load(bad)
    bad.write_text("[model\n")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(bad)


def test_overrides_are_type_checked():
    cfg = config.load(None, ["optimizer.cutouts=32", "optimizer.lr=1", "model.generator=tiny",
                             'display.effects=["vignette"]', "audio.band_edges=[10, 100.5]"])
    assert cfg.optimizer.cutouts == 32 and cfg.optimizer.lr == 1.0 and isinstance(cfg.optimizer.lr, float)
    assert cfg.model.generator == "tiny" and cfg.display.effects == ["vignette"]
    assert cfg.audio.band_edges == [10.0, 100.5]
    for bad, message in [("model.seed=true", "must be int, got bool"), ("model.seed=x", "must be int, got str"),
                         ("display.effects=[1]", r"display\.effects\[0\] must be str"), ("model", "section.key=value")]:
        with pytest.raises(config.ConfigError, match=message):
            config.load(None, [bad])


@pytest.mark.parametrize("override, message", [
    ("optimizer.display_ema=0.6", "optimizer.display_ema is gone: use optimizer.display_smoothing_s"),
    ("optimizer.steps_per_frame=2", "optimizer.steps_per_frame is gone: use director.steps_per_frame"),
    ("optimizer.min_cutouts=2", "optimizer.min_cutouts is gone: use governor.min_cutouts"),
    ("model.precision=fp8", "model.precision: must be one of 'auto', 'fp32', 'fp16', 'bf16', got 'fp8'"),
    ("optimizer.compile=yes", "optimizer.compile: must be one of 'auto', 'on', 'off'"),
    ("optimizer.display_smoothing_s=nan", "between 0 and 10 seconds, got nan"),
])
def test_engine_settings_are_checked_when_read(override, message):
    with pytest.raises(config.ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        config.load(None, [override])


@pytest.mark.parametrize("args,needle", [
    (["render", "a.wav", "-o", "x.mp4", "--fps", "zero"], "argument --fps: expected a whole number"),
    (["render", "a.wav", "-o", "x.mp4", "--size", "100"], "argument --size: expected WIDTHxHEIGHT"),
    (["render", "a.wav", "-o", "x.mp4", "--set", "optimizer.nope=1"], "unknown key optimizer.nope"),
    (["render", "missing.wav", "-o", "x.mp4"], "missing.wav: no such audio file"),
    (["live", "--set", "display.width=wide"], "display.width must be int"),
    (["cues", "check", "missing.lrc"], "missing.lrc"),
    (["replay", "missing.jsonl", "--audio", "a.wav", "-o", "x.mp4"], "missing.jsonl: cannot read the control log"),
    (["replay", "README.md", "--audio", "a.wav", "-o", "x.mp4"], "README.md:1: not a control log line"),
    (["live", "--set", "control.osc_allow=[\"stage\"]"], "control.osc_allow: 'stage' is not an IP address"),
    (["live", "--set", "control.osc_port=99999"], "control.osc_port: must be a port from 1 to 65535"),
    (["live", "--set", "control.osc_feedback=127.0.0.1:99999"], "control.osc_feedback: "),
    (["render", "a.wav", "-o", "x.mp4", "--set", "display.effects=[\"sparkle\"]"], "display.effects: "),
])
def test_bad_input_exits_nonzero_with_one_clear_line(args, needle):
    proc = run_vj(*args, check=False, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]


@pytest.mark.parametrize("mistake, needle", [
    (["--set", "model.precision=fp8"], "model.precision: must be one of"),
    (["--set", 'display.effects=["sparkle"]'], "unknown effect 'sparkle'"),
    (["--set", "control.osc_port={taken}"], "Address already in use"),
])
def test_a_config_mistake_stops_the_show_at_once_before_any_network_loads(mistake, needle):
    """`vj live` with a mistake: one line, within 2 seconds, and torch (which the networks need, and which takes a
    second or more to import) never imported."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        args = [a.format(taken=taken.getsockname()[1]) for a in mistake]
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "vj.cli", "live", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        took = time.perf_counter() - started
    # -X importtime reaches vj's child processes too (the shared-memory resource tracker), whose lines can land in
    # the middle of vj's own (between its message and the newline): taken out wherever they are.
    imported = [name.strip() for name in re.findall(r"import time:[^|\n]*\|[^|\n]*\|([^\n]*?)(?=import time:|\n|$)",
                                                    proc.stderr)]
    said = [line for line in re.sub(r"import time:[^\n]*?(?=import time:|\n|$)", "", proc.stderr).splitlines()
            if line.strip()]
    assert proc.returncode == 1 and len(said) == 1 and needle in said[0], proc.stderr[-2000:]
    assert "torch" not in imported and "vj.models.loading" not in imported
    assert took < 2.0, f"{took:.2f} s"


def test_every_subcommand_documents_its_options():
    top = run_vj("--help").stdout
    for command in ("render", "live", "rehearse", "replay", "devices", "models", "cues", "bench"):
        assert command in top
    render = run_vj("render", "--help").stdout
    for option in ("--lrc", "--output", "--fps", "--size", "--seed", "--steps", "--frames-log", "--config", "--set"):
        assert option in render
    for args in (["live"], ["rehearse"], ["replay"], ["devices"], ["models"], ["models", "fetch"], ["models", "sample"],
                 ["models", "convert"], ["cues", "check"], ["bench"]):
        assert "usage:" in run_vj(*args, "--help").stdout


def test_devices_lists_every_section():
    out = run_vj("devices", timeout=120).stdout
    for section in ("audio:", "midi:", "opengl:", "cuda:"):
        assert section in out
    assert "llvmpipe" in out or "OpenGL" in out


# -- every value is checked when the config is read (issue 18, point 5) --------------------------------------------

NAN, INF = float("nan"), float("inf")
BAD: dict[str, list] = {  # key -> values of the right type that a show would trip over
    "model.generator": [""],
    "model.clip": [""],
    "model.device": ["tpu", "cuda:", "cuda:x", "CPU", ""],
    "model.precision": ["fp8"],
    "model.truncation_psi": [NAN, INF, -0.5, 3.0],
    "model.seed": [-1, 2**40],
    "model.aspect": ["wide", "0:1", "16:0", "1:9", ""],
    "director.steps_per_frame": [-1, 17],
    "optimizer.cutouts": [-5, 0, 100000],
    "optimizer.cut_pow": [NAN, 0.0, -1.0, INF],
    "optimizer.lr": [NAN, INF, 0.0, -0.1],
    "director.cue_boost": [NAN, -1.0, INF],
    "director.cue_boost_decay_s": [NAN, -1.0, INF],
    "director.audio_gain": [NAN, -1.0, 5.0],
    "optimizer.latent_reg": [NAN, -0.1, INF],
    "optimizer.display_smoothing_s": [NAN, -1.0, 11.0],
    "optimizer.latent_space": ["z", "W"],
    "optimizer.compile": ["yes"],
    "governor.frame_budget_ms": [NAN, -1.0, INF],
    "governor.min_cutouts": [0, -5],
    "audio.sample_rate": [0, -48000, 10**7],
    "audio.block_size": [0, -256, 10**7],
    "audio.channel": [-2, 100000],
    "audio.fft_size": [0, -1024, 10**8],
    "audio.band_edges": [[], [1.0], [250.0, 20.0], [20.0, 20.0], [0.0, 100.0], [-20.0, 100.0], [20.0, NAN],
                         [20.0, INF]],
    "audio.attack_s": [NAN, -0.1, INF],
    "audio.release_s": [NAN, -0.1, INF],
    "audio.tempo_range": [[], [120.0], [180.0, 80.0], [10.0, 100.0], [80.0, NAN], [80.0, 1000.0], [80.0, 180.0, 200.0]],
    "cues.transition_s": [NAN, -1.0, INF],
    "cues.loop_s": [NAN, -1.0, INF],
    "cues.live_start": ["later"],
    "cues.snap": ["closest", "Nearest"],
    "cues.quantize": ["bars", "1bar"],
    "cues.lookahead_ms": [NAN, -1.0, 5000.0],
    "model.latent_bank": [-2, 10**6],
    "control.osc_host": [""],
    "control.osc_port": [99999, 65536, -1],  # 0 is allowed: any free port (tests use it)
    "control.osc_feedback": ["127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1", ":9000", "127.0.0.1:port", "host:-1"],
    "control.osc_allow": [["the desk"]],
    "control.osc_port_search": [-1, 100000],
    "control.tempo_source": ["Link", "midi", "clock", ""],
    "display.width": [0, -1280, 100000],
    "display.height": [0, -720, 100000],
    "display.monitor": [-1],
    "display.max_fps": [NAN, -1.0, INF],
    "display.effects": [["feedback", "sparkle"], ["Vignette"]],
    "display.upscale": ["bicubic", "Sharp", ""],
    "display.fit": ["fill", "Cover", ""],
    "render.fps": [0, -30, 10000],
    "render.width": [0, 511, -512, 100000],
    "render.height": [0, 511, -512, 100000],
    "render.seed": [-1, 2**40],
    "render.crf": [-1, 52],
    "render.audio_bitrate": [0, -1, 10**9],
    "output.stream": ["127.0.0.1:5000", "http://127.0.0.1:5000", "udp://127.0.0.1", "udp://:5000",
                      "udp://127.0.0.1:99999", "srt://host:port", "rtmp://127.0.0.1/live"],
    "output.stream_bitrate_kbps": [0, -1, 10**7],
    "output.ndi": [" vj", "vj\n", "x" * 65],
    "output.spout": [] if sys.platform == "win32" else ["vj"],  # only where the platform has it
    "output.syphon": [] if sys.platform == "darwin" else ["vj"],
}
FREE = {  # key -> why any value of its type will do
    "model.cache_dir": "any folder; \"\" = the default",
    "model.offline_fallback": "a bool",
    "optimizer.cuda_graphs": "a bool",
    "audio.device": "a name substring or index, looked up when the show starts",
    "audio.output_device": "the same",
    "cues.lenient": "a bool",
    "control.midi_port": "a name substring, looked up (and waited for) while the show runs",
    "control.midi_mapping": "a file, read with its own clear errors",
    "control.midi_clock_port": "a name substring, as midi_port",
    "control.prompt_bank": "any prompts; a bad one is logged when called up",
    "display.fullscreen": "a bool",
    "display.vsync": "a bool",
    "display.hud": "a bool",
}


def config_keys() -> dict[str, object]:
    """Every key of the default config with its default value."""
    defaults = config.Config()
    return {f"{section.name}.{key.name}": getattr(getattr(defaults, section.name), key.name)
            for section in config.dataclasses.fields(defaults)
            for key in config.dataclasses.fields(getattr(defaults, section.name))}


def test_every_key_is_checked_or_free_by_choice():
    keys = config_keys()
    assert set(BAD) | set(FREE) == set(keys), "a new key: give it a check (config.VALUE_CHECKS) and bad values here"
    assert not set(BAD) & set(FREE)
    for key, default in keys.items():  # each numeric key refuses nan (a float key by its check, an int by its type)
        section, name = key.split(".")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            with pytest.raises(config.ConfigError, match=rf"^show\.toml: {key}\b.*\bnan\b"):
                config.from_dict({section: {name: NAN}}, "show.toml")


@pytest.mark.parametrize("key, value", [(k, v) for k, values in BAD.items() for v in values])
def test_each_bad_value_is_refused_when_read_naming_key_value_and_what_is_allowed(key, value):
    section, name = key.split(".")
    with pytest.raises(config.ConfigError) as error:
        config.from_dict({section: {name: value}}, "show.toml")
    text = str(error.value)
    assert "\n" not in text and text.startswith(f"show.toml: {key}"), text
    named = [value] + (value if isinstance(value, list) else [])  # a list, or the entry in it that is wrong
    assert any(repr(v) in text or str(v) in text for v in named), text
    assert "must" in text or "is not an IP address or network like" in text, text  # what is allowed


def test_good_values_near_the_limits_are_accepted():
    cfg = config.load(None, ["model.device=cuda:1", "model.device=cpu", "control.osc_port=65535",
                             'control.osc_feedback="touch.local:9000"', 'control.osc_feedback="[::1]:9000"',
                             "audio.band_edges=[30, 60]", "optimizer.cutouts=1", "governor.min_cutouts=1",
                             "render.width=2", 'display.effects=["kaleidoscope"]', "display.effects=[]"])
    assert cfg.control.osc_port == 65535 and cfg.audio.band_edges == [30.0, 60.0]


def test_values_that_only_fail_together_are_refused_when_read():
    with pytest.raises(config.ConfigError, match=r"audio\.fft_size: must be at least audio\.block_size \(512\)"):
        config.load(None, ["audio.block_size=512", "audio.fft_size=256"])
    assert config.load(None, ["audio.fft_size=4096", "audio.block_size=2048"]).audio.block_size == 2048


def test_every_effect_the_config_accepts_has_its_shader():
    """The effect names live in config.py (the bottom layer, which checks them when it reads a file); the
    compositor's chain is that list, and each name needs its shader."""
    from vj.render.compositor import EFFECTS, SHADER_DIR

    assert EFFECTS is config.EFFECT_NAMES
    assert all((SHADER_DIR / f"{name}.frag").is_file() for name in config.EFFECT_NAMES)
