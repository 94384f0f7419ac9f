"""`vj live` and `vj rehearse` in a real glfw window under Xvfb, controlled by a real OSC client (liblo)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from conftest import beat_track, REPO, TINY, VJ, ffprobe, free_port, oscsend, start_vj, wait_for_line


def test_live_follows_osc_prompt_and_quits_on_command(x_display):
    port = free_port()
    proc = start_vj(["live", "--duration", "90"], x_display, port)
    try:
        wait_for_line(proc, "the show starts")
        oscsend(port, "/vj/prompt", "s", "a glass cathedral")
        lines = wait_for_line(proc, "a glass cathedral", timeout=30)
        started = time.time()
        oscsend(port, "/vj/quit")
        out, _ = proc.communicate(timeout=30)
        assert time.time() - started < 20
    finally:
        proc.kill()
    assert proc.returncode == 0, "".join(lines) + out
    status = [line for line in lines if "fps" in line]
    assert status, "no status lines"


def test_rehearse_follows_the_cue_sheet(x_display, tmp_path):
    wav, lrc = tmp_path / "beat.wav", tmp_path / "cues.lrc"
    beat_track(wav, 8)
    lrc.write_text("[00:00.00]first cue\n[00:02.00]second cue\n")
    proc = start_vj(["rehearse", str(wav), "--lrc", str(lrc), "-v"], x_display, free_port())
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "cue 0" in out and "cue 1" in out and "second cue" in out
    import re

    tempo = [float(m) for m in re.findall(r"HUD \|.*?(\d+\.\d) bpm", out)]  # the HUD shows the tempo it hears
    assert tempo and abs(tempo[-1] - 124) < 3, tempo


def test_live_records_frames_with_real_times_and_a_control_log(x_display, tmp_path):
    import json

    from vj.control.showlog import read_show_log

    port, out = free_port(), tmp_path / "show.mp4"
    proc = start_vj(["live", "--duration", "60", "--record", str(out)], x_display, port)
    try:
        wait_for_line(proc, "the show starts")
        time.sleep(2)
        oscsend(port, "/vj/param/hue_shift", "f", "0.75")
        oscsend(port, "/vj/prompt", "s", "a recorded city")
        time.sleep(3)
        oscsend(port, "/vj/quit")
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    video = [s for s in ffprobe(out)["streams"] if s["codec_type"] == "video"]
    assert len(video) == 1 and video[0]["codec_name"] == "h264"
    assert int(video[0]["nb_frames"]) > 20
    assert 3.0 < float(video[0]["duration"]) < 30.0   # real show time, not frames / a fixed rate
    (sound,) = [s for s in ffprobe(out)["streams"] if s["codec_type"] == "audio"]  # the input, silent here
    assert sound["codec_name"] == "aac" and abs(float(sound["duration"]) - float(video[0]["duration"])) < 0.5
    controls = [json.loads(line) for line in out.with_suffix(".controls.jsonl").read_text().splitlines()]
    changes = {(c["source"], c["what"]): c for c in controls}
    assert changes[("osc", "hue_shift")]["value"] == 0.75
    assert changes[("osc", "prompt")]["value"] == "a recorded city"
    assert changes[("osc", "quit")]
    assert read_show_log(out.with_suffix(".controls.jsonl")).end > 3.0


def test_bench_live_measures_the_show_and_sees_the_clicks_on_screen(x_display, tmp_path):
    """The short version of scripts/bench_live.py: figures are written (not judged), and every fed click that had
    time to reach the screen was seen in the effects."""
    import json

    out = tmp_path / "live.json"
    env = {**os.environ, "DISPLAY": x_display, "VJ_CACHE": str(REPO / ".pytest_cache" / "c")}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_live.py"), "--out", str(out),
                           "--seconds", "4", "--size", "320x180"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    assert result["frame_ms"]["n"] > 20 and result["display_fps"] > 0 and result["guided_steps_per_s"] > 0
    assert result["clicks"] >= 7 and result["audio_to_screen_ms"]["n"] >= result["clicks"] - 2


def test_rehearsal_ends_when_the_track_ends_wherever_seeks_took_it(x_display, tmp_path):
    """Not after the track's length of wall time: a seek to near the end ends it soon after, and says so."""
    wav, lrc = tmp_path / "beat.wav", tmp_path / "cues.lrc"
    beat_track(wav, 14)
    lrc.write_text("[00:00.00]first cue\n[00:12.00]last cue\n")
    port = free_port()
    proc = start_vj(["rehearse", str(wav), "--lrc", str(lrc), "-v"], x_display, port)
    try:
        lines = wait_for_line(proc, "the show starts")
        oscsend(port, "/vj/seek", "f", "12.5")
        sought = time.time()
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    out = "".join(lines) + out
    assert proc.returncode == 0, out
    assert time.time() - sought < 8.0, out  # 1.5 s of track were left; the wall timer had over 10 s
    ending = out[out.index("the track ended at 14.0 s: the rehearsal is over"):]
    assert "audio output lost" not in ending


def test_rehearsal_loops_when_asked(x_display, tmp_path):
    wav, lrc = tmp_path / "beat.wav", tmp_path / "cues.lrc"
    beat_track(wav, 3)
    lrc.write_text("[00:00.00]first cue\n")
    port = free_port()
    proc = start_vj(["rehearse", str(wav), "--lrc", str(lrc), "--loop", "--start", "1"], x_display, port)
    try:
        wait_for_line(proc, "playing it again from 1.0 s", timeout=60)
        wait_for_line(proc, "playing it again from 1.0 s", timeout=30)  # and again: the loop goes on
        oscsend(port, "/vj/quit")
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "rehearsal is over" not in out


def test_hud_shows_what_the_performer_must_know(x_display, tmp_path):
    """Waiting for the start cue, a MIDI port that matches nothing, skipped cue-sheet lines: on screen, not only
    in the log."""
    lrc = tmp_path / "cues.lrc"
    lrc.write_text("[00:00.00]first cue\n[00:xx]a broken stamp\n[00:05.00]second cue\n")
    port = free_port()
    proc = start_vj(["live", "--lrc", str(lrc), "--duration", "60", "-v", "--set", "cues.live_start=cue",
                     "--set", "control.midi_port=NoSuchController"], x_display, port)
    try:
        lines = wait_for_line(proc, "waiting for the start cue: OSC /vj/start", timeout=90)
        lines += wait_for_line(proc, "HUD |", timeout=10)
        oscsend(port, "/vj/start")
        lines += wait_for_line(proc, "start from osc", timeout=20)
        time.sleep(2.5)
        oscsend(port, "/vj/quit")
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    hud = [line for line in "".join(lines).splitlines() + out.splitlines() if "HUD |" in line]
    assert "waiting for the start cue" in hud[0]
    assert all("! no MIDI input port matches 'NoSuchController'" in line for line in hud), hud
    assert all("! cue sheet: 1 line(s) skipped, first: cues.lrc:2" in line for line in hud), hud
    assert "waiting for the start cue" not in hud[-1]  # once started, gone


def test_rehearsal_recording_has_the_track_in_sync_and_replays_from_it(x_display, tmp_path):
    """The recording's sound is the track as played, in step with the pictures; `vj replay` takes it from there."""
    import numpy as np

    from vj.audio.files import read_audio

    wav, lrc, out = tmp_path / "beat.wav", tmp_path / "cues.lrc", tmp_path / "take.mp4"
    beat_track(wav, 5)
    lrc.write_text("[00:00.00]first cue\n[00:02.00]second cue\n")
    proc = start_vj(["rehearse", str(wav), "--lrc", str(lrc), "--record", str(out)], x_display, free_port())
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    streams = {s["codec_type"]: s for s in ffprobe(out)["streams"]}
    assert streams["audio"]["codec_name"] == "aac"
    assert abs(float(streams["audio"]["duration"]) - float(streams["video"]["duration"])) < 0.5
    track, rate = read_audio(wav)
    heard, heard_rate = read_audio(out)
    assert heard_rate == rate
    a, b = track.mean(axis=1)[: 4 * rate], heard.mean(axis=1)[: 4 * rate]
    lags = range(-rate // 10, rate // 10, 16)  # the encoder's priming delay is a few ms; the beat's period 480 ms
    score = [float(np.dot(a[max(0, -k): len(a) - max(0, k)], b[max(0, k): len(b) - max(0, -k)])) for k in lags]
    best = list(lags)[int(np.argmax(score))]
    assert abs(best) < rate * 0.05, best / rate
    assert max(score) > 0.5 * float(np.dot(a, a))  # the track itself, not noise
    replayed = tmp_path / "replay.mp4"
    done = subprocess.run([*VJ, "replay", str(out.with_suffix(".controls.jsonl")), "-o", str(replayed), "--fps", "2",
                           "--size", "64x64", *TINY], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {s["codec_type"] for s in ffprobe(replayed)["streams"]} == {"video", "audio"}
