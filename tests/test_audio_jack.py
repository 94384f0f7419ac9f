"""Live input on a real audio device (a JACK dummy server): a second JACK client plays clicks into vj's input and
the onsets come out at the clicks' spacing; the server is killed (silence, reported) and restarted (the input
reopens by itself and hears again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from conftest import REPO


def test_live_input_hears_a_second_client_survives_the_server_dying_and_reopens():
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "jack_audio_check.py")], cwd=REPO,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "JACK_NO_START_SERVER": "1"})
    subprocess.run(["pkill", "-f", "jackd --no-realtime -d dummy"], check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, period in (("onsets_before", 0.5), ("onsets_after", 0.4)):
        onsets = np.array(seen[key])
        assert len(onsets) >= 6, seen
        assert np.all(np.abs(np.diff(onsets) - period) < 0.02), (key, np.diff(onsets))
    assert seen["lost_reported"] and "lost" in seen["status_when_lost"]
    assert seen["rms_when_lost"] < 0.05           # silence, not the last loud block frozen
    assert seen["analysis_advanced"] > 0.5        # the analysis keeps running on silence
    assert seen["reopened"] and "back" in seen["status_after"]
