"""Resolving [model] into networks: known names, paths, tiny, and the offline fallback that says so."""

from __future__ import annotations

import json

import pytest

from conftest import run_vj
from vj.config import ModelConfig
from vj.models import loading, registry
from vj.models.clip import ClipLoadError


def test_tiny_networks_load_without_network():
    models = loading.load_models(ModelConfig(generator="tiny", clip="tiny"))
    assert models.G.img_resolution == 64 and models.clip.input_size == 64
    assert models.notes == []


def test_failed_download_falls_back_to_tiny_and_says_how_to_fix(monkeypatch, tmp_path):
    def no_network(name, cache, **kwargs):
        raise registry.DownloadError(f"could not download {name}: Name or service not known")

    real_load_clip = loading.load_clip

    def clip_without_weights(spec, *args, **kwargs):
        if spec != "tiny":
            raise ClipLoadError("could not get CLIP weights ViT-B-32/openai: no route to the hub")
        return real_load_clip(spec, *args, **kwargs)

    monkeypatch.setattr(registry, "fetch_generator", no_network)
    monkeypatch.setattr(loading, "load_clip", clip_without_weights)
    models = loading.load_models(ModelConfig(cache_dir=str(tmp_path)))
    assert models.G.img_resolution == 64
    assert len(models.notes) == 2
    assert f"vj models fetch {registry.DEFAULT_GENERATOR}" in models.notes[0]
    assert "vj models fetch ViT-B-32/openai" in models.notes[1]


def test_without_fallback_the_error_is_raised(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "fetch_generator",
                        lambda *a, **k: (_ for _ in ()).throw(registry.DownloadError("offline")))
    with pytest.raises(loading.ModelError, match="offline"):
        loading.load_models(ModelConfig(cache_dir=str(tmp_path), offline_fallback=False))


def test_bad_device_and_precision_are_clear():
    with pytest.raises(loading.ModelError, match="precision"):
        loading.resolve_precision("fp8", loading.resolve_device("cpu"))
    assert loading.resolve_precision("auto", loading.resolve_device("cpu")) == "fp32"


def test_vj_bench_writes_figures(tmp_path):
    out = tmp_path / "bench.json"
    run_vj("bench", "compositor", "-o", str(out))
    data = json.loads(out.read_text())
    result = data["results"][0]
    assert result["what"] == "compositor" and result["chain"]["ms_median"] > 0
    assert "torch" in data["machine"]
