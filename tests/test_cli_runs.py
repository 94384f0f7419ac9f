"""Interrupted and odd command-line runs end cleanly and say what happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import beat_track, REPO, VJ, ffprobe, wait_for

TINY = ["--set", "model.generator=tiny", "--set", "model.clip=tiny", "--set", "optimizer.cutouts=2"]


def test_ctrl_c_during_a_render_leaves_a_playable_file_with_its_audio_cut_to_match(tmp_path):
    """Also: the missing folder of the output is made, and said (a typo in the path should not go unnoticed)."""
    wav, out, frames = tmp_path / "beat.wav", tmp_path / "new" / "deeper" / "out.mp4", tmp_path / "frames.jsonl"
    beat_track(wav, 12)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "VJ_CACHE": str(REPO / ".pytest_cache" / "vj-cache")}
    proc = subprocess.Popen([*VJ, "render", str(wav), "-o", str(out), "--fps", "10", "--size", "64x64",
                             "--frames-log", str(frames), *TINY], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: frames.exists() and len(frames.read_text().splitlines()) >= 8, timeout=120)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted: " in stdout and "its audio cut to match" in stdout and "Traceback" not in stderr
    assert f"made the folder {out.parent} for out.mp4" in stdout
    streams = {s["codec_type"]: s for s in ffprobe(out)["streams"]}
    video, audio = float(streams["video"]["duration"]), float(streams["audio"]["duration"])
    assert 0.7 <= video < 11.0 and abs(audio - video) < 0.1, (video, audio)  # not 12 s of sound under it


def test_output_into_a_closed_pipe_is_no_traceback():
    """`vj osc | head`: the reader goes away before vj has written everything."""
    started = time.time()
    done = subprocess.run(f"{sys.executable} -m vj.cli osc | true", shell=True, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert time.time() - started < 60
