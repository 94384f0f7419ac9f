"""Shared test fixtures: the StyleGAN3 reference fixtures, tiny networks, a headless GL context, an X display."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "stylegan3"
VJ = [sys.executable, "-m", "vj.cli"]

torch.set_num_threads(2)

# tests/cuda runs where a CUDA device is (the device check runs it on a lent GPU); elsewhere it is not collected,
# so it is neither run nor counted as skipped.
collect_ignore_glob = [] if torch.cuda.is_available() else ["cuda/*"]


def fixture_files(name: str) -> tuple[dict, Path, Path]:
    """(init kwargs, state path, cases path) of a reference fixture; fails (never skips) when it is missing."""
    config = FIXTURES / f"{name}_config.json"
    state = FIXTURES / f"{name}_state.safetensors"
    cases = FIXTURES / f"{name}_cases.safetensors"
    missing = [str(p) for p in (config, state, cases) if not p.is_file()]
    if missing:
        pytest.fail(f"StyleGAN3 reference fixtures missing: {', '.join(missing)} (expected in ../shared/fixtures)")
    return json.loads(config.read_text())["init_kwargs"], state, cases


def load_fixture_generator(name: str):
    from safetensors.torch import load_file

    from vj.models.stylegan3 import Generator

    kwargs, state, cases = fixture_files(name)
    G = Generator(**kwargs).eval().requires_grad_(False)
    G.load_state_dict(load_file(str(state)), strict=True)
    return G, load_file(str(cases))


@pytest.fixture(scope="session")
def fixture_t():
    return load_fixture_generator("sg3t_64")


@pytest.fixture(scope="session")
def tiny_clip():
    from vj.models.clip import load_clip

    return load_clip("tiny", "cpu", seed=0)


@pytest.fixture(scope="session")
def gl_context():
    from vj.render.compositor import headless_context

    ctx = headless_context()
    yield ctx
    ctx.release()


def wait_for(predicate, timeout: float = 5.0) -> bool:
    """Polls predicate until it holds or the timeout passes; returns whether it held."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def x_display():
    """A real X server (Xvfb) for glfw windows; the test fails if Xvfb is not installed (make test installs it)."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.fail("Xvfb is not installed (scripts/system_deps.sh installs it)")
    for number in range(90, 110):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            break
    proc = subprocess.Popen([xvfb, f":{number}", "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.time() < deadline:
        time.sleep(0.05)
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=5)


def run_vj(*args: str, env: dict | None = None, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "VJ_CACHE": str(REPO / ".pytest_cache" / "vj-cache"),
                **(env or {})}
    proc = subprocess.run([*VJ, *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"vj {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def start_jack() -> subprocess.Popen:
    """A JACK server with the dummy driver: real audio devices and MIDI ports, no sound card. Fails (never skips)
    when jackd is missing: make test installs it."""
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.fail("jackd is not installed (scripts/system_deps.sh installs jackd2)")
    os.environ["JACK_NO_START_SERVER"] = "1"
    proc = subprocess.Popen([jackd, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while time.time() < deadline:  # up, and its system ports registered (what PortAudio lists as "system")
        ports = subprocess.run(["jack_lsp"], capture_output=True, text=True, env={**os.environ}).stdout
        if "system:capture_1" in ports and "system:playback_1" in ports:
            break
        time.sleep(0.2)
    time.sleep(0.3)
    return proc


def stop_all_jack() -> None:
    """Ends every JACK dummy server the tests started, and waits until they are gone (a dying server still holds
    the default server name: the next one would fail to start)."""
    subprocess.run(["pkill", "-f", "jackd --no-realtime -d dummy"], check=False)
    deadline = time.time() + 10
    while time.time() < deadline and subprocess.run(["pgrep", "-f", "jackd --no-realtime -d dummy"],
                                                    capture_output=True).returncode == 0:
        time.sleep(0.1)
    # A killed server and its killed clients leave segments, semaphores and registry entries behind, and clients
    # of the next server then fail to open: clear them while no server runs. Only after tests that kill servers
    # and never make the pytest process itself a JACK client (it would keep the old registry mapped).
    for stale in Path("/dev/shm").glob("jack*"):
        if stale.is_file():
            stale.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def jack():
    proc = start_jack()
    yield proc
    proc.terminate()
    proc.wait(timeout=10)
