"""Faults during a live show, each with the real component: the audio server killed and started again, the cue
sheet edited into nonsense and back, the OSC port already taken. After each, the display loop is still running
(its status lines keep coming at the display's rate) and the HUD says what happened."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time

from conftest import REPO, STATUS, VJ, Lines, free_port, start_vj

SHEET = "[00:00.00]a quiet harbour\n[00:40.00]a storm at sea\n"


def status_after(out: Lines, since: float) -> list[tuple[float, float, float]]:
    """Status lines (cue, fps, steps/s) logged after `since` (time.time())."""
    stamp = time.strftime("%H:%M:%S", time.localtime(since))
    lines = [line for line in list(out.lines) if line[:8] >= stamp]
    return [tuple(map(float, m.groups())) for line in lines for m in STATUS.finditer(line)]


def hud_after(out: Lines, since: float) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(since))
    return "".join(line for line in list(out.lines) if "HUD |" in line and line[:8] >= stamp)


def test_audio_server_dies_and_returns_and_a_cue_sheet_breaks_mid_show(x_display, jack, tmp_path):
    lrc = tmp_path / "show.lrc"
    lrc.write_text(SHEET)
    proc = start_vj(["live", "--lrc", str(lrc), "--duration", "120", "-v", "--set", "audio.device=system",
                     "--set", "display.max_fps=30"], x_display, free_port())
    out = Lines(proc)
    try:
        out.wait_for(" fps ", timeout=120)
        time.sleep(2)
        killed = time.time()
        jack.kill()                                                    # the audio server dies mid-show
        out.wait_for("audio input lost", timeout=15)
        time.sleep(3)
        assert "no audio input" in hud_after(out, killed) or "audio input lost" in hud_after(out, killed)
        restarted = time.time()
        jack.start()                                                   # ... and comes back, the same server
        out.wait_for("audio input back", timeout=30)
        time.sleep(2)
        broken = time.time()
        lrc.write_text("\x00\x01 this is not a cue sheet\n")           # saved half-way, mid-show
        out.wait_for("no cues left", timeout=10)
        time.sleep(2)
        assert "keeping the last good cue sheet" in hud_after(out, broken)
        lrc.write_text("[00:00.00]a lighthouse in the fog\n")         # fixed
        os.utime(lrc, (time.time() + 5, time.time() + 5))
        out.wait_for("a lighthouse in the fog", timeout=15)
        fixed = time.time()
        time.sleep(2)
        assert "keeping the last good" not in hud_after(out, fixed + 1.5)
        proc.terminate()                                               # SIGTERM ends the show cleanly too
        proc.wait(timeout=30)
    finally:
        proc.kill()
    for since in (killed, restarted, broken, fixed):
        window = [fps for _, fps, _ in status_after(out, since)][:3]
        assert len(window) >= 2 and min(window) >= 10, (since, window, out.text[-3000:])
    assert proc.returncode == 0, out.text[-3000:]


def test_osc_port_taken_stops_with_one_line_or_takes_the_next_free_one(x_display):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        proc = start_vj(["live", "--duration", "60"], x_display, port)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 1 and f"cannot listen for OSC on 127.0.0.1:{port}" in output, output[-2000:]
        assert "Traceback" not in output
        proc = start_vj(["live", "--duration", "3", "--set", "control.osc_port_search=10"], x_display, port)
        output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output[-2000:]
    assert re.search(rf"OSC port {port} is taken; listening on \d+ instead", output)


def test_a_taken_port_is_said_before_the_networks_load(x_display, tmp_path):
    """With the full-size networks asked for (not the tiny ones), a mistake found in a second stops vj before they
    load: no download attempt, no fallback, one line."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        env = {**os.environ, "DISPLAY": x_display, "VJ_CACHE": str(tmp_path / "empty-cache")}
        started = time.time()
        done = subprocess.run([*VJ, "live", "--set", f"control.osc_port={port}"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
        elapsed = time.time() - started
    assert done.returncode == 1 and f"cannot listen for OSC on 127.0.0.1:{port}" in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "generator" not in done.stderr + done.stdout, done.stderr  # nothing else was tried
    assert elapsed < 15, elapsed  # python and torch start in a few seconds here; loading would take far longer
