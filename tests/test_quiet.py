"""One short line per fact: no chatter from native libraries or open_clip, fallbacks said once with their fix."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from conftest import REPO
from vj.config import ModelConfig
from vj.models import clip as clip_mod
from vj.models import loading, registry


def test_no_jack_or_alsa_chatter_when_there_is_no_server():
    env = {**os.environ, "JACK_DEFAULT_SERVER": f"vj-none-{os.getpid()}", "JACK_NO_START_SERVER": "1"}
    done = subprocess.run([sys.executable, "-m", "vj.cli", "devices"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "midi:" in done.stdout and "unavailable" in done.stdout  # it did look, and says so in one line each
    assert done.stderr.strip() == "", done.stderr  # libjack's and ALSA's own lines went to the debug log


def test_open_clip_loading_logs_nothing_above_debug(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(clip_mod, "hub_reachable", lambda: False)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(clip_mod.ClipLoadError):
            clip_mod.load_clip("ViT-B-32/openai", cache_dir=tmp_path)
        clip_mod.load_clip("tiny")
    loud = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert not loud, [r.getMessage()[:120] for r in loud]
    assert any(r.name == "vj.models.clip" and "open_clip:" in r.getMessage() for r in caplog.records)


def test_each_fallback_is_one_short_line_with_its_fix(monkeypatch, tmp_path, caplog):
    long_reason = "could not download: " + "x" * 500
    monkeypatch.setattr(registry, "fetch_generator",
                        lambda *a, **k: (_ for _ in ()).throw(registry.DownloadError(long_reason)))
    real_load_clip = loading.load_clip
    monkeypatch.setattr(loading, "load_clip", lambda spec, *a, **k: real_load_clip(spec, *a, **k) if spec == "tiny"
                        else (_ for _ in ()).throw(clip_mod.ClipLoadError(long_reason)))
    with caplog.at_level(logging.INFO):
        loading.load_models(ModelConfig(cache_dir=str(tmp_path)))
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(said) == 2 and all(len(line) < 200 and "Fix: `vj models fetch " in line for line in said), said


def test_loading_leaves_the_process_as_it_was(monkeypatch, tmp_path):
    """No offline flag left set for the whole process, no global random seed set by a loader."""
    import huggingface_hub.constants
    import torch

    monkeypatch.setattr(clip_mod, "hub_reachable", lambda: False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    state = torch.get_rng_state()
    with pytest.raises(clip_mod.ClipLoadError):
        clip_mod.load_clip("ViT-B-32/openai", cache_dir=tmp_path)
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False
    a, b = loading.tiny_generator(3), loading.tiny_generator(3)
    clip_mod.load_clip("tiny", seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # still the seed's weights
