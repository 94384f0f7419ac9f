"""Live input and rehearsal playback on a real audio device (a JACK dummy server). Input: a second JACK client
plays clicks into vj's input and the onsets come out at the clicks' spacing; the server is killed (silence,
reported) and restarted (the input reopens by itself and hears again). Playback: the server dies mid-track (the
track is followed silently) and returns (playback resumes); the show clock keeps time throughout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from conftest import REPO, stop_all_jack


def run_check(script: str) -> dict:
    """Runs a check script in its own process (PortAudio must not outlive a JACK server in ours); what it saw."""
    proc = subprocess.run([sys.executable, str(REPO / "tests" / script)], cwd=REPO, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "JACK_NO_START_SERVER": "1"})
    stop_all_jack()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_live_input_hears_a_second_client_survives_the_server_dying_and_reopens():
    seen = run_check("jack_audio_check.py")
    for key, period in (("onsets_before", 0.5), ("onsets_after", 0.4)):
        onsets = np.array(seen[key])
        assert len(onsets) >= 6, seen
        assert np.all(np.abs(np.diff(onsets) - period) < 0.02), (key, np.diff(onsets))
    assert seen["lost_reported"] and "lost" in seen["status_when_lost"]
    assert seen["rms_when_lost"] < 0.05           # silence, not the last loud block frozen
    assert seen["analysis_advanced"] > 0.5        # the analysis keeps running on silence
    assert seen["reopened"] and "back" in seen["status_after"]


def test_rehearsal_playback_follows_the_track_through_a_dead_audio_server():
    seen = run_check("jack_playback_check.py")
    assert not seen["lost_at_start"] and "playing to" in seen["started"]
    assert seen["lost_reported"] and "following the track silently" in seen["status_when_lost"]
    assert seen["analysis_fed_while_lost_s"] > 1.5          # the track is still analysed, in real time
    assert seen["reopened"] and "back" in seen["status_after"]
    assert seen["clock_after_seek"]
    steps = np.array(seen["clock_steps"])                   # (clock advance, wall time) between samples
    assert np.all(steps[:, 0] >= 0), "the show clock went backwards"
    assert np.all(steps[:, 0] < steps[:, 1] + 0.6), "the show clock jumped"  # a stall of up to STALL_S, caught up
    assert abs(steps[:, 0].sum() - steps[:, 1].sum()) < 1.0  # it kept time through the loss
