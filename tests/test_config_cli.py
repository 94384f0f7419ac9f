"""The typed config and the `vj` command's argument handling."""

from __future__ import annotations

import pytest

from conftest import REPO, run_vj
from vj import config


def test_default_toml_lists_exactly_the_defaults():
    assert config.load(REPO / "configs" / "default.toml") == config.Config()


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
])
def test_bad_input_exits_nonzero_with_one_clear_line(args, needle):
    proc = run_vj(*args, check=False, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]


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
