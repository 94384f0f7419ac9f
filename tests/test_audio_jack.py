"""Live input on a real audio device (a JACK dummy server): a second JACK client plays clicks into vj's input and
the onsets come out at the clicks' spacing; the server is then killed and the input reports silence and the loss."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from conftest import REPO, start_jack


def test_live_input_hears_a_second_client_and_survives_the_server_dying():
    jackd = start_jack()
    try:
        proc = subprocess.run([sys.executable, str(REPO / "tests" / "jack_audio_check.py"), str(jackd.pid)],
                              cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "JACK_NO_START_SERVER": "1"})
    finally:
        jackd.kill()
        jackd.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    onsets = np.array(seen["onsets"])
    assert len(onsets) >= 6, seen
    spacing = np.diff(onsets)
    assert np.all(np.abs(spacing - 0.5) < 0.02), spacing  # clicks every 0.5 s, heard every 0.5 s
    assert seen["lost"] and "lost" in seen["status"]
    assert seen["rms_after"] < 0.05                     # silence, not the last loud block frozen
    assert seen["analysis_advanced"] > 0.3              # the analysis keeps running on silence
