"""Shared test fixtures and helpers: the StyleGAN3 reference fixtures, tiny networks, a headless GL context, an X
display, JACK servers of the tests' own, running vj and reading its output, OSC and MIDI senders, ffprobe. Test
modules import what they share from here, never from each other."""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "stylegan3"
VJ = [sys.executable, "-m", "vj.cli"]
TINY = ["--set", "model.generator=tiny", "--set", "model.clip=tiny", "--set", "optimizer.cutouts=4"]  # CPU-fast
LIVE_TINY = [*TINY, "--set", "display.width=320", "--set", "display.height=180"]  # and a small window

torch.set_num_threads(2)

# tests/cuda runs where a CUDA device is (the device check runs it on a lent GPU); elsewhere it is not collected,
# so it is neither run nor counted as skipped.
collect_ignore_glob = [] if torch.cuda.is_available() else ["cuda/*"]


def pytest_configure(config):
    """Until a test starts a JACK server of its own (JackServer below), the JACK clients of the tests (this process
    and every vj it starts) look for a server that no one runs, and never start one: a performer's server, or
    another test run's, is never reached. (A hook, not an import-time setting: the check scripts that import this
    module choose their own server, and their spawned children import it again.)"""
    os.environ.update({"JACK_DEFAULT_SERVER": f"vj-none-{os.getpid()}", "JACK_NO_START_SERVER": "1"})
    # What the tests' engines cache (latent banks, weights) goes into the checkout, not the user's cache.
    os.environ.setdefault("VJ_CACHE", str(REPO / ".pytest_cache" / "vj-cache"))


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


def beat_track(path: Path, seconds: float, bpm: float = 124) -> Path:
    """A drum track as the demo makes it (examples/make_beat.py), `seconds` long, written to path."""
    subprocess.run([sys.executable, str(REPO / "examples" / "make_beat.py"), str(path), "--seconds", str(seconds),
                    "--bpm", str(bpm)], check=True)
    return path


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


def start_vj(args, display: str, port: int, step_delay_s: float = 0.0) -> subprocess.Popen:
    """`vj ARGS` with the tiny networks in a small window on `display`, OSC on `port`; output (stdout and stderr
    together) on proc.stdout. `step_delay_s`: each guided step takes that much longer (a slow GPU)."""
    env = {**os.environ, "DISPLAY": display, "PYTHONUNBUFFERED": "1", "VJ_CACHE": str(REPO / ".pytest_cache" / "c")}
    vj = [sys.executable, str(REPO / "tests" / "slow_vj.py"), str(step_delay_s)] if step_delay_s else VJ
    return subprocess.Popen([*vj, *args, *LIVE_TINY, "--set", f"control.osc_port={port}"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 120.0) -> list[str]:
    """Reads proc's output up to the first line holding needle; the lines read. Fails when the output ends first
    (a readline that never returns is not timed out: use Lines for a show that may go quiet)."""
    lines, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} never appeared:\n{''.join(lines)}")


# A show's status line: cue, display fps, guided steps per second.
STATUS = re.compile(r"cue (-?\d+)\s+(\d+\.\d) fps\s+(\d+\.\d) steps/s")


class Lines:
    """Collects a process's output on a thread, so the test can act on time while reading it."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=lambda: self.lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        self._thread.start()

    def wait_for(self, needle: str, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(needle in line for line in self.lines):
                return
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} never appeared:\n{self.text}")

    @property
    def text(self) -> str:
        return "".join(self.lines)


def oscsend(port: int, *args: str) -> None:
    """One OSC message from liblo's oscsend (a client that is not ours) to vj on 127.0.0.1:port."""
    tool = shutil.which("oscsend")
    if tool is None:
        pytest.fail("oscsend (liblo-tools) is not installed; scripts/system_deps.sh installs it")
    subprocess.run([tool, "127.0.0.1", str(port), *args], check=True)


def ffprobe(path) -> dict:
    """ffprobe's streams and format of a media file."""
    if shutil.which("ffprobe") is None:
        pytest.fail("ffprobe is not installed (scripts/system_deps.sh installs ffmpeg)")
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


CC, NOTE_ON = 0xB0, 0x90  # MIDI status bytes (channel 1)


def virtual_out(name: str):
    """A virtual MIDI output port on the JACK server of JACK_DEFAULT_SERVER: a controller the tests play."""
    import rtmidi

    out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK)
    out.open_virtual_port(name)
    return out


# -- JACK: servers of the tests' own ----------------------------------------------------------------------------
# Every JACK server a test starts has a name of its own (JACK_DEFAULT_SERVER tells its clients, PortAudio's and
# rtmidi's included), and is stopped by its pid: a performer's server or another test run's, default name or not,
# is never reached, stopped or cleaned up after.

_jack_servers = itertools.count(1)


@functools.cache
def jack_tmpdir() -> Path:
    """Where jackd keeps its sockets, semaphores and shared memory (`jackd --version` says; /dev/shm on Linux)."""
    version = subprocess.run(["jackd", "--version"], capture_output=True, text=True).stdout
    match = re.search(r"tmpdir (\S+)", version)
    return Path(match.group(1) if match else "/dev/shm")


class JackServer:
    """A JACK server with the dummy driver (real audio devices and MIDI ports, no sound card) under a name of its
    own. start() starts it (again, under the same name, after kill()); kill() is a crash; stop() ends it cleanly.
    `frames` per period: MIDI moves once a period (256 at 48 kHz: 5.3 ms). Fails (never skips) when jackd is
    missing: make test installs it."""

    def __init__(self, name: str | None = None, frames: int = 256):
        self.name = name or f"vj-test-{os.getpid()}-{next(_jack_servers)}"
        self.frames = frames
        self.env = {"JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1"}  # what its clients need
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 15.0) -> "JackServer":
        jackd = shutil.which("jackd")
        if jackd is None:
            pytest.fail("jackd is not installed (scripts/system_deps.sh installs jackd2)")
        # With setpriv, the server gets SIGTERM when the process that started it dies (a check script killed by
        # its timeout), rather than live on with nobody to stop it.
        guard = [setpriv, "--pdeathsig", "TERM"] if (setpriv := shutil.which("setpriv")) else []
        if self._log is not None:
            self._log.close()  # the last run's (before a kill)
        self._log = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would stall the server
        self.proc = subprocess.Popen([*guard, jackd, "--no-realtime", "-n", self.name, "-d", "dummy",
                                      "-r", "48000", "-p", str(self.frames)], stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:  # up, and its system ports registered (what PortAudio lists as "system")
            ports = self.ports()
            if "system:capture_1" in ports and "system:playback_1" in ports:
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        else:
            ports = []
        if "system:capture_1" not in ports:
            self._log.seek(0)
            said = self._log.read().decode(errors="replace")[-2000:]
            self.stop()
            pytest.fail(f"JACK server {self.name} did not come up:\n{said}")
        time.sleep(0.3)
        return self

    def ports(self) -> list[str]:
        """Its ports (jack_lsp), [] when it does not answer."""
        done = subprocess.run(["jack_lsp"], capture_output=True, text=True, env={**os.environ, **self.env})
        return done.stdout.splitlines() if done.returncode == 0 else []

    def kill(self) -> None:
        """The server crashes (SIGKILL): its clients lose it mid-stream. What it leaves is left for start() under
        the same name: jackd reuses its own socket and semaphores, and frees the shared memory of dead servers."""
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        """Ends it (SIGTERM, then SIGKILL if it hangs), then removes what its killed clients left under its name."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        """Only this server's own files: its sockets (jack_NAME_UID_*) and its clients' semaphores
        (jack_sem.UID_NAME_*). The shared memory registry and segments are shared by every server of the user:
        left alone (a server starting later frees the segments of dead ones)."""
        uid = os.geteuid()
        for pattern in (f"jack_{self.name}_{uid}_*", f"jack_sem.{uid}_{self.name}_*"):
            for path in jack_tmpdir().glob(pattern):
                path.unlink(missing_ok=True)


def run_check_on_own_jack(check: Callable[[JackServer], dict]) -> None:
    """What the check scripts (run beside the tests, in a process of their own) do: a JACK server of this
    process's own, made the default of this process and of what it starts, check(server) on it, the server
    stopped, and what the check saw printed as JSON for the test that started the script."""
    server = JackServer().start()
    os.environ.update(server.env)
    try:
        seen = check(server)
    finally:
        server.stop()
    print(json.dumps(seen), flush=True)


@pytest.fixture(scope="module")
def jack():
    """A JACK server for the module; its tests' JACK clients (this process's, the vj it starts) find it."""
    server = JackServer()
    with pytest.MonkeyPatch.context() as env:
        for key, value in server.env.items():
            env.setenv(key, value)
        try:
            yield server.start()
        finally:
            server.stop()
