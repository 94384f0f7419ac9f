"""The restricted loader: reference-format pickles load without running their code; anything else is refused."""

from __future__ import annotations

import functools
import http.server
import os
import pickle
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_fixture_generator, run_vj
from reference_pickle import snapshot_pickle
from vj.models import registry
from vj.models.checkpoints import CheckpointError, convert, load_generator
from vj.models.sample import make_transform

TOL = 1e-4


def _canary_source(canary) -> str:
    return f"open({str(canary)!r}, 'w').write('the module source ran')\nclass Generator: pass\n"


@pytest.fixture()
def reference_pkl(tmp_path):
    # A fresh generator: torch.compile (in other tests) tags parameters, which changes how torch pickles them.
    G, _ = load_fixture_generator("sg3t_64")
    canary = tmp_path / "canary"
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(snapshot_pickle(G, G.init_kwargs, _canary_source(canary)))
    return path, canary


@pytest.mark.parametrize("network_only", [False, True])
def test_reference_format_pickle_loads_and_matches_fixtures(tmp_path, network_only):
    G_ref, cases = load_fixture_generator("sg3t_64")
    canary = tmp_path / "canary"
    path = tmp_path / "g.pkl"
    path.write_bytes(snapshot_pickle(G_ref, G_ref.init_kwargs, _canary_source(canary), network_only))
    G = load_generator(path)
    with torch.no_grad():
        for psi in ("1.0", "0.5"):
            img = G.synthesis(G.mapping(cases["z"], None, truncation_psi=float(psi)))
            assert (img - cases[f"img_psi{psi}"]).abs().max() <= TOL
    assert not canary.exists(), "the module source stored in the pickle was executed"


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("func,name", [(os.system, "system"), (eval, "eval"), (exec, "exec")])
def test_other_globals_are_refused_and_nothing_runs(tmp_path, func, name):
    canary = tmp_path / "canary"
    payload = f"touch {canary}" if func is os.system else f"open({str(canary)!r}, 'w')"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(func, payload)}, protocol=4))
    with pytest.raises(CheckpointError, match=rf"global '[a-z_.]+\.{name}'"):
        load_generator(path)
    assert not canary.exists()


def test_storage_bytes_are_loaded_weights_only(tmp_path):
    # A nested torch file whose pickle calls os.system: torch.storage._load_from_bytes would run it.
    canary = tmp_path / "canary"
    inner = pickle.dumps(_Evil(os.system, f"touch {canary}"), protocol=2)
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", inner)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")

    class Storage:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (buffer.getvalue(),))

    path = tmp_path / "storage.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Storage()}, protocol=4))
    with pytest.raises(CheckpointError):
        load_generator(path)
    assert not canary.exists()


def test_truncated_and_garbage_files_give_a_clear_error(tmp_path, reference_pkl):
    path, _ = reference_pkl
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_generator(truncated)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"this is not a pickle at all")
    with pytest.raises(CheckpointError, match=str(garbage)):
        load_generator(garbage)
    with pytest.raises(CheckpointError, match="no such file"):
        load_generator(tmp_path / "missing.pkl")


def test_live_show_with_a_truncated_checkpoint_stops_with_one_line(tmp_path, reference_pkl, x_display):
    path, canary = reference_pkl
    truncated = tmp_path / "half.pkl"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    proc = run_vj("live", "--duration", "5", "--set", f"model.generator={truncated}", "--set", "model.clip=tiny",
                  "--set", "control.osc_port=0", check=False, timeout=120, env={"DISPLAY": x_display})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{truncated}: not a readable StyleGAN3 checkpoint (truncated or corrupt?)" in proc.stderr
    assert "Traceback" not in proc.stderr and not canary.exists()


def test_pickle_without_generator_is_refused(tmp_path):
    path = tmp_path / "empty.pkl"
    path.write_bytes(pickle.dumps({"something": 1}, protocol=4))
    with pytest.raises(CheckpointError, match="no StyleGAN generator"):
        load_generator(path)


def test_convert_writes_safetensors_that_load_takes(tmp_path, reference_pkl, fixture_t, monkeypatch):
    path, _ = reference_pkl
    weights, config = convert(path)
    assert weights.is_file() and config.is_file()
    import vj.models.checkpoints as checkpoints

    def no_pickle(*a, **k):
        raise AssertionError("the export is newer: the pickle must not be read")

    monkeypatch.setattr(checkpoints, "read_pickle", no_pickle)
    G = load_generator(path)
    _, cases = fixture_t
    with torch.no_grad():
        assert (G.synthesis(cases["ws_psi1.0"]) - cases["img_psi1.0"]).abs().max() <= TOL


def test_models_sample_follows_gen_images_conventions(tmp_path, reference_pkl, fixture_t):
    path, _ = reference_pkl
    run_vj("models", "sample", str(path), "--seeds", "0-1", "--psi", "0.7", "--translate", "0.1,-0.2",
           "--rotate", "15", "-o", str(tmp_path / "png"))
    G, _ = fixture_t
    z = torch.from_numpy(np.random.RandomState(1).randn(1, G.z_dim))
    m = torch.from_numpy(np.linalg.inv(make_transform((0.1, -0.2), 15))).float()
    with torch.no_grad():
        img = G.synthesis(G.mapping(z, None, truncation_psi=0.7), transform=m)
    expected = (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].numpy()
    got = np.asarray(Image.open(tmp_path / "png" / "seed0001.png"))
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert (tmp_path / "png" / "seed0000.png").is_file()


@pytest.fixture()
def file_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_downloads_into_cache_and_loads(tmp_path, reference_pkl, file_server):
    path, _ = reference_pkl
    root, url = file_server
    name = "stylegan3-t-ffhqu-256x256"
    (root / registry.GENERATORS[name].filename).write_bytes(path.read_bytes())
    cache = tmp_path / "cache"
    run_vj("models", "fetch", name, "--base-url", url, "--set", f"model.cache_dir={cache}")
    cached = registry.cached_path(name, cache)
    assert cached.read_bytes() == path.read_bytes()
    assert not list(cached.parent.glob("*.part"))
    listing = run_vj("models", "--set", f"model.cache_dir={cache}").stdout
    assert any(name in line and "cached" in line for line in listing.splitlines())
    load_generator(cached)


def test_failed_download_explains_and_leaves_nothing(tmp_path, file_server):
    _, url = file_server
    cache = tmp_path / "cache"
    proc = run_vj("models", "fetch", "stylegan3-r-ffhqu-256x256", "--base-url", url,
                  "--set", f"model.cache_dir={cache}", check=False)
    assert proc.returncode != 0
    assert "could not download" in proc.stderr and "404" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not any(cache.rglob("*.pkl*")) if cache.exists() else True


def test_a_corrupt_tensor_storage_is_a_checkpoint_error():
    """torch's legacy reader raises AssertionError (or anything) on corrupt storage bytes (found by fuzzing)."""
    import io
    import re

    from vj.models.checkpoints import _load_storage_from_bytes

    buf = io.BytesIO()
    torch.save(torch.arange(4.0).untyped_storage(), buf, _use_new_zipfile_serialization=False)
    data = bytearray(buf.getvalue())
    key = [m.start() for m in re.finditer(rb"\d{6,}", bytes(data))][-1]  # the storage key its data section names
    data[key] = ord("1") if data[key] != ord("1") else ord("2")
    with pytest.raises(CheckpointError, match="tensor storage is unreadable"):
        _load_storage_from_bytes(bytes(data))
