"""What the benchmark and soak scripts need to run a show without a screen or a sound card: an X server (Xvfb) when
there is no display, a JACK dummy server of their own. Imported by the scripts beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path


def start_xvfb(size: str = "1920x1080") -> subprocess.Popen | None:
    """An X server for the window when there is no display (DISPLAY is set to it); None when there is one."""
    if os.environ.get("DISPLAY"):
        return None
    number = next(n for n in range(120, 170) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    proc = subprocess.Popen([shutil.which("Xvfb") or "Xvfb", f":{number}", "-screen", "0", f"{size}x24",
                             "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.environ["DISPLAY"] = f":{number}"
    return proc


def start_jack(name: str) -> subprocess.Popen:
    """A JACK server with the dummy driver under `name`, made the default of this process and of what it starts
    (JACK_DEFAULT_SERVER): a performer's server, default-named or not, is neither used nor touched. Stop it with
    stop_jack."""
    jackd = shutil.which("jackd")
    if jackd is None:
        raise RuntimeError("jackd is not installed (scripts/system_deps.sh installs jackd2)")
    os.environ.update({"JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1"})
    # With setpriv the server gets SIGTERM when this process dies without stopping it (killed by a timeout).
    guard = [setpriv, "--pdeathsig", "TERM"] if (setpriv := shutil.which("setpriv")) else []
    proc = subprocess.Popen([*guard, jackd, "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while time.time() < deadline and proc.poll() is None:  # up, with its system ports (PortAudio's "system")
        ports = subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout
        if "system:capture_1" in ports and "system:playback_1" in ports:
            return proc
        time.sleep(0.2)
    stop_jack(proc, name)
    raise RuntimeError(f"the JACK server {name} did not start")


def stop_jack(proc: subprocess.Popen, name: str) -> None:
    """Ends the server start_jack started, by its pid, then removes what its killed clients left under its name
    (jackd's own socket and semaphores; the shared memory registry of all servers is left alone)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    uid = os.geteuid()
    for pattern in (f"jack_{name}_{uid}_*", f"jack_sem.{uid}_{name}_*"):
        for path in Path("/dev/shm").glob(pattern):  # jackd2's tmpdir on Linux (`jackd --version`)
            path.unlink(missing_ok=True)
