"""The checkpoint registry against a real HTTP server on 127.0.0.1: mirrors in order, truncated and wrong files
refused, interrupted downloads resumed with Range, URL generators, the registry-vs-pickle check, the offline
fallback, and `vj models`."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import logging
import re
import socket
import threading

import pytest
import torch

from conftest import load_fixture_generator, run_vj
from reference_pickle import snapshot_pickle
from vj.config import ModelConfig
from vj.errors import UserError
from vj.models import loading, registry
from vj.models.checkpoints import load_generator

SOURCE = "class Generator: pass\n"  # the module source a reference pickle carries (never run)


class FileServer(http.server.ThreadingHTTPServer):
    """Serves `files` by path, honouring `Range: bytes=N-` when `honour_range`; each answer's body is cut after
    the next number in `cuts` (the connection closed early), and `extra_length` is added to every Content-Length."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header) of each request
        self.cuts: list[int] = []
        self.honour_range = True
        self.extra_length = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self):
        srv = self.server
        asked = self.headers.get("Range")
        srv.requests.append((self.path, asked))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if asked and srv.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", asked)[1])
            if start >= len(data):
                self.send_error(416)
                return
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body) + srv.extra_length))
        self.end_headers()
        self.wfile.write(body[:srv.cuts.pop(0)] if srv.cuts else body)  # HTTP/1.0: the connection closes after

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    srv = FileServer()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def closed_url():
    """A URL on a port that is bound but not listening: connections are refused, and no one else can take it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}/lhq-256-stylegan3-t-25Mimg.pkl"


@pytest.fixture(scope="module")
def tiny_pkl() -> bytes:
    G = loading.tiny_generator(seed=3)
    return snapshot_pickle(G, G.init_kwargs, SOURCE, network_only=True)


def _entry(monkeypatch, urls, sha256=None, **changes) -> registry.KnownCheckpoint:
    """lhq-256 pointed at the given URLs (and, for its SHA-256, the bytes served there)."""
    entry = dataclasses.replace(registry.GENERATORS["lhq-256"], urls=tuple(urls), sha256=sha256, **changes)
    monkeypatch.setitem(registry.GENERATORS, "lhq-256", entry)
    return entry


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("first", ["404", "closed port"])
def test_a_failing_url_moves_on_to_the_mirror(server, closed_url, tiny_pkl, tmp_path, monkeypatch, caplog, first):
    server.files["/mirror/lhq.pkl"] = tiny_pkl
    bad = server.url("/gone/lhq.pkl") if first == "404" else closed_url
    _entry(monkeypatch, [bad, server.url("/mirror/lhq.pkl")], _sha(tiny_pkl))
    with caplog.at_level(logging.INFO, logger="vj.models.registry"):
        path = registry.fetch_generator("lhq-256", tmp_path, quiet=True)
    assert path == registry.cached_path("lhq-256", tmp_path) and path.read_bytes() == tiny_pkl
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert bad in said and ("404" in said if first == "404" else "refused" in said), said
    assert not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize("how", ["connection cut", "Content-Length too long"])
def test_a_truncated_download_is_refused(server, tiny_pkl, tmp_path, monkeypatch, how):
    server.files["/lhq.pkl"] = tiny_pkl
    server.honour_range = False  # every answer is the whole file again, and short again: the part never grows
    if how == "connection cut":
        server.cuts = [len(tiny_pkl) // 2] * 10
    else:
        server.extra_length = 1000
    url = server.url("/lhq.pkl")
    _entry(monkeypatch, [url])
    with pytest.raises(registry.DownloadError) as raised:
        registry.fetch_generator("lhq-256", tmp_path, quiet=True)
    message = str(raised.value)
    dest = registry.cached_path("lhq-256", tmp_path)
    assert not dest.exists()
    assert url in message and str(dest) in message and f"of {len(tiny_pkl) + server.extra_length} bytes" in message
    assert len(server.requests) == 2 and server.requests[1][1] is not None  # one resume tried, then refused


def test_a_sha256_mismatch_is_refused_at_every_url(server, tiny_pkl, tmp_path, monkeypatch):
    server.files["/a.pkl"] = server.files["/b.pkl"] = tiny_pkl
    urls = [server.url("/a.pkl"), server.url("/b.pkl")]
    _entry(monkeypatch, urls, _sha(b"the published file"))
    with pytest.raises(registry.DownloadError) as raised:
        registry.fetch_generator("lhq-256", tmp_path, quiet=True)
    message = str(raised.value)
    assert all(url in message for url in urls) and message.count("SHA-256") == 2
    assert "put it at" in message and str(registry.cached_path("lhq-256", tmp_path)) in message
    assert not list(tmp_path.rglob("*.pkl*")), "a refused file was kept"


def test_an_interrupted_download_resumes_with_range(server, tiny_pkl, tmp_path, monkeypatch):
    cut = len(tiny_pkl) // 3
    server.files["/lhq.pkl"] = tiny_pkl
    server.cuts = [cut]
    _entry(monkeypatch, [server.url("/lhq.pkl")], _sha(tiny_pkl))
    path = registry.fetch_generator("lhq-256", tmp_path, quiet=True)
    assert server.requests == [("/lhq.pkl", None), ("/lhq.pkl", f"bytes={cut}-")]
    assert path.read_bytes() == tiny_pkl


def test_a_kept_part_resumes_on_the_next_try(server, tiny_pkl, tmp_path, monkeypatch):
    cut = len(tiny_pkl) // 4
    server.files["/lhq.pkl"] = tiny_pkl
    server.honour_range, server.cuts = False, [cut, cut]
    _entry(monkeypatch, [server.url("/lhq.pkl")], _sha(tiny_pkl))
    with pytest.raises(registry.DownloadError, match=f"{cut} bytes received are kept"):
        registry.fetch_generator("lhq-256", tmp_path, quiet=True)
    part = tmp_path / "stylegan3" / (registry.GENERATORS["lhq-256"].filename + ".part")
    assert part.read_bytes() == tiny_pkl[:cut]
    server.honour_range = True
    server.requests.clear()
    path = registry.fetch_generator("lhq-256", tmp_path, quiet=True)
    assert server.requests == [("/lhq.pkl", f"bytes={cut}-")]
    assert path.read_bytes() == tiny_pkl and not part.exists()


def test_a_server_ignoring_range_restarts_cleanly(server, tiny_pkl, tmp_path, monkeypatch):
    server.files["/lhq.pkl"] = tiny_pkl
    server.honour_range, server.cuts = False, [1000]
    _entry(monkeypatch, [server.url("/lhq.pkl")])  # no SHA-256: only a clean restart gives the right bytes
    path = registry.fetch_generator("lhq-256", tmp_path, quiet=True)
    assert server.requests == [("/lhq.pkl", None), ("/lhq.pkl", "bytes=1000-")]
    assert path.read_bytes() == tiny_pkl


def test_a_part_no_shorter_than_the_file_starts_over(server, tiny_pkl, tmp_path, monkeypatch):
    server.files["/lhq.pkl"] = tiny_pkl
    _entry(monkeypatch, [server.url("/lhq.pkl")])
    part = tmp_path / "stylegan3" / (registry.GENERATORS["lhq-256"].filename + ".part")
    part.parent.mkdir()
    part.write_bytes(b"x" * (len(tiny_pkl) + 5))  # left by something else: the server answers 416 to its Range
    path = registry.fetch_generator("lhq-256", tmp_path, quiet=True)
    assert server.requests == [("/lhq.pkl", f"bytes={len(tiny_pkl) + 5}-"), ("/lhq.pkl", None)]
    assert path.read_bytes() == tiny_pkl and not part.exists()


def test_a_url_generator_loads_end_to_end(server, tmp_path):
    G_ref, cases = load_fixture_generator("sg3t_64")
    data = snapshot_pickle(G_ref, G_ref.init_kwargs, SOURCE)
    server.files["/one/network-snapshot.pkl"] = server.files["/two/network-snapshot.pkl"] = data
    url = server.url("/one/network-snapshot.pkl")
    models = loading.load_models(ModelConfig(generator=url, clip="tiny", device="cpu", cache_dir=str(tmp_path)))
    assert models.notes == []
    with torch.no_grad():
        img = models.G.synthesis(cases["ws_psi1.0"])
    assert (img - cases["img_psi1.0"]).abs().max() <= 1e-4
    cached = registry.cached_path(url, tmp_path)
    assert cached.read_bytes() == data and cached.name.startswith("network-snapshot-")
    other = registry.cached_path(server.url("/two/network-snapshot.pkl"), tmp_path)
    assert other != cached and other.parent == cached.parent  # same basename, different URL: no collision
    server.requests.clear()
    loading.load_models(ModelConfig(generator=url, clip="tiny", device="cpu", cache_dir=str(tmp_path)))
    assert server.requests == [], "a cached URL was downloaded again"


def test_a_url_must_name_a_pickle(tmp_path):
    with pytest.raises(UserError, match=r"\.pkl"):
        loading.load_models(ModelConfig(generator="https://example.org/model.zip", clip="tiny",
                                        cache_dir=str(tmp_path)))


@pytest.mark.parametrize("listed", [(256, "T"), (64, "R")])
def test_the_loader_warns_when_the_pickle_is_not_what_the_registry_says(server, tmp_path, monkeypatch, caplog,
                                                                        listed):
    G_r, _ = load_fixture_generator("sg3r_64")  # 64x64, conv_kernel 1, radial filters: an R
    data = snapshot_pickle(G_r, G_r.init_kwargs, SOURCE, network_only=True)
    server.files["/lhq.pkl"] = data
    _entry(monkeypatch, [server.url("/lhq.pkl")], _sha(data), resolution=listed[0], config=listed[1])
    with caplog.at_level(logging.WARNING):
        models = loading.load_models(ModelConfig(generator="lhq-256", clip="tiny", device="cpu",
                                                 cache_dir=str(tmp_path)))
    assert models.G.img_resolution == 64
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if listed == (64, "R"):
        assert warnings == []
    else:
        assert len(warnings) == 1 and "256x256 StyleGAN3-T" in warnings[0] and "64x64 StyleGAN3-R" in warnings[0]


def test_with_no_network_the_show_starts_on_tiny_networks_naming_the_checkpoint(closed_url, tmp_path, monkeypatch):
    _entry(monkeypatch, [closed_url, closed_url.replace(".pkl", "-mirror.pkl")])
    assert ModelConfig().generator == registry.DEFAULT_GENERATOR == "lhq-256"
    models = loading.load_models(ModelConfig(clip="tiny", device="cpu", cache_dir=str(tmp_path)))
    assert models.G.img_resolution == loading.TINY_GENERATOR["img_resolution"]
    assert len(models.notes) == 1 and "generator lhq-256 is not here" in models.notes[0]
    assert "Fix: `vj models fetch lhq-256` with network" in models.notes[0]
    with pytest.raises(loading.ModelError) as raised:
        loading.load_models(ModelConfig(clip="tiny", device="cpu", cache_dir=str(tmp_path), offline_fallback=False))
    assert closed_url in str(raised.value) and "-mirror.pkl" in str(raised.value) and "put it at" in str(raised.value)


def test_vj_models_lists_every_entry_and_fetches_a_url(server, tiny_pkl, tmp_path):
    cache = tmp_path / "cache"
    lhq = registry.cached_path("lhq-256", cache)
    lhq.parent.mkdir(parents=True)
    lhq.write_bytes(tiny_pkl)
    listing = run_vj("models", "--set", f"model.cache_dir={cache}").stdout
    for name, known in registry.GENERATORS.items():
        block = listing[listing.index(f"  {name} "):]
        head, good_for, licence = block.splitlines()[:3]
        assert f"{known.resolution}px  {known.config}  {known.size_text}" in head
        assert ("cached at " + str(lhq) if name == "lhq-256" else "not downloaded") in head
        assert known.good_for in good_for and known.licence in licence
    assert "lhq-256 (default)" in listing and "343 MB (approx.)" in listing

    server.files["/x/model.pkl"] = tiny_pkl
    url = server.url("/x/model.pkl")
    fetched = run_vj("models", "fetch", url, "--set", f"model.cache_dir={cache}").stdout
    assert fetched.strip() == f"{url}: {registry.cached_path(url, cache)}"
    load_generator(registry.cached_path(url, cache))
