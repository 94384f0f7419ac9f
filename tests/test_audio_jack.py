"""Live input and rehearsal playback on a real audio device (a JACK dummy server). Input: a second JACK client
plays clicks into vj's input and the onsets come out at the clicks' spacing; the server is killed (silence,
reported) and restarted (the input reopens by itself and hears again). Playback: the server dies mid-track (the
track is followed silently) and returns (playback resumes); the show clock keeps time throughout. And the tests'
JACK servers leave a performer's server alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from conftest import REPO, JackServer, jack_tmpdir, wait_for


def run_check(script: str) -> dict:
    """Runs a check script in its own process (PortAudio must not outlive a JACK server in ours); what it saw, and
    its stderr (its children's too) as "stderr"."""
    proc = subprocess.run([sys.executable, str(REPO / "tests" / script)], cwd=REPO, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "JACK_NO_START_SERVER": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "stderr": proc.stderr}


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


def test_rehearsal_of_tracks_at_other_rates_than_the_devices_is_heard_at_their_pitch():
    """A 44.1 kHz stereo track and an 8 kHz mono one on a 48 kHz JACK server: resampled, they reach the playback's
    ports at their own pitch, on both sides, and the show clock runs at the track's speed. A child that cannot open
    its device ends without a BufferError traceback."""
    seen = run_check("jack_resample_check.py")
    for key, hz in (("cd", 1000.0), ("phone", 440.0)):
        heard = seen[key]
        assert "resampled" in heard["status"] and heard["rate"] == 48000 and len(heard["ports"]) == 2, heard
        assert np.allclose(heard["hz"], hz, atol=1.0), heard        # not 1088 Hz: played at the device's rate
        assert np.all((0.25 < np.array(heard["rms"])) & (np.array(heard["rms"]) < 0.4)), heard  # 0.354 on each side
        # The show clock at the track's speed, not 48/44.1 = 1.088 fast (a loaded machine's dummy server runs behind
        # the wall clock, never ahead of it: 0.9 was seen at a load of 7 on 2 cores).
        assert 0.7 < heard["clock_rate"] < 1.04, heard
    assert "no audio output" in seen["nowhere"]
    assert "Exception ignored" not in seen["stderr"] and "BufferError" not in seen["stderr"], seen["stderr"][-3000:]


def test_the_tests_jack_servers_leave_a_performers_server_alone():
    """A performer's JACK server, with a client on it, outlives what the JACK tests do to theirs: a server of the
    tests' own with a client of its own crashes, starts again under the same name (as in the fault tests) and is
    stopped. Nothing is stopped by name and no JACK file the performer's server uses is deleted."""
    performer = JackServer(f"vj-performer-{os.getpid()}").start()
    performer_env = {**os.environ, **performer.env}
    metro = subprocess.Popen(["jack_metro", "-b", "120", "-n", "performer-metro"], env=performer_env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ours = JackServer()
    try:
        assert wait_for(lambda: "performer-metro:120_bpm" in performer.ports(), 10)
        uid = os.geteuid()
        performers = {p.name for p in jack_tmpdir().glob("jack*") if p.name.startswith(
            ("jack-shm-registry", f"jack_{performer.name}_{uid}_", f"jack_sem.{uid}_{performer.name}_"))}
        assert "jack-shm-registry" in performers and f"jack_sem.{uid}_{performer.name}_performer-metro" in performers
        ours.start()
        client = subprocess.Popen(["jack_metro", "-b", "90", "-n", "test-metro"], env={**os.environ, **ours.env},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: "test-metro:90_bpm" in ours.ports(), 10)
        ours.kill()                                   # a crash, its client still attached
        client.kill()                                 # (by its pid, as a test's vj would be)
        client.wait()
        ours.start()                                  # the same name again
        assert "system:capture_1" in ours.ports() and "test-metro:90_bpm" not in ours.ports()
        ours.stop()
        assert not ours.ports()
        assert not [*jack_tmpdir().glob(f"jack_{ours.name}_*"), *jack_tmpdir().glob(f"jack_sem.*_{ours.name}_*")]
        assert performer.proc.poll() is None and metro.poll() is None
        assert {"system:capture_1", "performer-metro:120_bpm"} <= set(performer.ports())
        assert performers <= {p.name for p in jack_tmpdir().glob("jack*")}  # the registry, its socket, semaphores
    finally:
        ours.stop()
        metro.terminate()
        metro.wait(timeout=10)
        performer.stop()
