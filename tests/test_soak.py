"""The short soak (scripts/soak.py for 20 s): `vj live` under 200 random OSC and MIDI messages per second, with a
recording. The 30-minute figures are in BENCHMARKS.md (`make soak`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO


SECONDS = 20


def test_twenty_seconds_of_heavy_control_traffic(x_display, tmp_path):
    out = tmp_path / "soak.json"
    env = {**os.environ, "DISPLAY": x_display}  # the soak starts a JACK server of its own
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "soak.py"), "--seconds", str(SECONDS),
                           "--warmup", "10", "--out", str(out), "--keep", str(tmp_path / "run")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    log = (tmp_path / "run" / "vj.log").read_text()
    assert result["exit_code"] == 0, log[-3000:]
    assert sum(result["messages"].values()) > SECONDS * 150                 # the traffic really was heavy
    assert result["tracebacks"] == 0, log[-3000:]
    rss = result["rss_mb"]
    assert rss["end"] - rss["after_warmup"] < 50, rss                  # bounded: a leak per message would show
    display = result["display"]
    # The display kept going: no frame anywhere near a second late. Zero stalls of 100 ms is `make soak`'s figure
    # (BENCHMARKS.md); here, on a shared 2-core VM right after the rest of the suite, one or two 100-125 ms frames
    # came and went between identical runs (issue 31: wall-clock limits belong in benchmarks).
    assert display["frames"] > SECONDS * 10 and display["stalls_100ms"] <= 3 and display["worst_ms"] < 500, display
    recording = result["recording"]
    assert recording["playable"] and recording["decoded_frames"] == recording["written_frames"] > SECONDS * 10
    assert abs(recording["seconds"] - SECONDS) < 8                          # the whole show, in real time
    assert result["warnings_logged"] < 200                             # a flood of bad messages: counted, not logged
