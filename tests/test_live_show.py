"""The whole live show, end to end, with real parts: `vj live` (tiny random networks) in a glfw window under Xvfb,
its audio input on a JACK dummy server, OSC from liblo's oscsend, MIDI from a virtual JACK port that is unplugged
and plugged back mid-show, an engine made artificially slow, a recording, and then `vj replay` of that recording
following the same cue and parameter sequence."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest

from conftest import CC, NOTE_ON, REPO, STATUS, Lines, ffprobe, free_port, oscsend, start_vj, virtual_out
from vj.control.showlog import read_show_log

SHEET = "[00:00.00]a quiet harbour {steps=2}\n[00:08.00]a storm at sea\n[00:16.00]dawn over the water\n"
MAPPING = '[[cc]]\ncontrol = 21\nparam = "hue_shift"\n\n[[note]]\nnote = 36\naction = "cue_next"\n'


@pytest.fixture(scope="module")
def recorded_show(x_display, jack, tmp_path_factory):
    """Runs the show once; the tests below check what it did."""
    folder = tmp_path_factory.mktemp("show")
    lrc, mapping, record = folder / "show.lrc", folder / "map.toml", folder / "show.mp4"
    lrc.write_text(SHEET)
    mapping.write_text(MAPPING)
    controller = virtual_out("vj-e2e-controller")
    port = free_port()
    proc = start_vj(["live", "--lrc", str(lrc), "--record", str(record), "--duration", "120", "-v",
                     "--set", "audio.device=system", "--set", "control.midi_port=e2e-controller",
                     "--set", f"control.midi_mapping={mapping}", "--set", "display.max_fps=30"], x_display, port,
                    step_delay_s=0.4)
    out = Lines(proc)
    try:
        out.wait_for(" fps ", timeout=120)                   # the show is running (its first status line)
        began = time.time()
        oscsend(port, "/vj/prompt", "s", "a glass cathedral")
        oscsend(port, "/vj/param/rgb_split", "f", "0.25")
        controller.send_message([CC, 21, 100])
        time.sleep(3)
        controller.send_message([NOTE_ON, 36, 100])          # next cue: the show clock jumps to 8 s
        time.sleep(3)
        controller.close_port()                              # the controller is unplugged ...
        controller.delete()
        out.wait_for("vanished", timeout=10)
        time.sleep(1.5)
        controller = virtual_out("vj-e2e-controller")        # ... and plugged back in
        deadline = time.time() + 10
        while sum("MIDI input: " in line for line in out.lines) < 2 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        controller.send_message([CC, 21, 20])
        time.sleep(max(0.0, 15 - (time.time() - began)))     # 15 s of show (cue 2, at show time 16, from wall 11)
        quit_sent = time.time()
        oscsend(port, "/vj/quit")
        proc.wait(timeout=30)
        quit_took = time.time() - quit_sent
    finally:
        proc.kill()
        controller.delete()
    time.sleep(0.2)
    return {"rc": proc.returncode, "out": out.text, "quit_took": quit_took, "record": record, "lrc": lrc,
            "log": read_show_log(record.with_suffix(".controls.jsonl")), "folder": folder}


def test_live_show_follows_osc_and_midi_and_quits(recorded_show):
    show, out = recorded_show["log"], recorded_show["out"]
    assert recorded_show["rc"] == 0, out[-5000:]
    assert recorded_show["quit_took"] < 20
    changes = [(e.source, e.what, e.value) for e in show.entries]
    assert ("osc", "prompt", "a glass cathedral") in changes
    assert ("osc", "rgb_split", 0.25) in changes
    assert ("cue", "steps_per_frame", 2.0) in changes                      # the cue's {steps=2}
    hue = [v for source, what, v in changes if (source, what) == ("midi", "hue_shift")]
    assert hue == pytest.approx([100 / 127, 20 / 127]), changes          # the second after the port came back
    assert ("midi", "cue_next", 0.0) in changes and ("osc", "quit", True) in changes
    cues = [v for source, what, v in changes if (source, what) == ("timeline", "cue")]
    assert cues == [0, 1, 2], changes                                        # 2: the clock ran on past 16 s
    assert [round(a.show, 1) for a in show.clock][-1] == 8.0               # the jump the cue_next made
    hud = [line for line in out.splitlines() if "HUD |" in line]
    assert any("live prompt: a glass cathedral" in line for line in hud)
    assert any("last: hue_shift by midi" in line for line in hud)
    assert any("MIDI port gone" in line for line in hud)                   # the performer saw it
    assert any("quality: 1/2 steps" in line and "(auto)" in line for line in hud), hud[-3:]


def test_display_keeps_its_rate_while_the_engine_is_slow(recorded_show):
    status = [tuple(map(float, m.groups())) for m in STATUS.finditer(recorded_show["out"])]
    assert len(status) >= 11, recorded_show["out"][-3000:]
    settled = status[3:-1]                                                # after start-up, before the quit
    assert min(fps for _, fps, _ in settled) >= 10, status              # the display never waited for the engine
    assert max(steps for _, _, steps in settled) < 5, status             # while the engine crawled
    video = [s for s in ffprobe(recorded_show["record"])["streams"] if s["codec_type"] == "video"]
    assert int(video[0]["nb_frames"]) > 110 and float(video[0]["duration"]) > 11


def test_replay_follows_the_recorded_cues_and_parameters(recorded_show):
    show, folder = recorded_show["log"], recorded_show["folder"]
    wav, out, frames_log = folder / "show.wav", folder / "replay.mp4", folder / "replay.jsonl"
    subprocess.run([sys.executable, str(REPO / "examples" / "make_beat.py"), str(wav),
                    "--seconds", str(math.ceil(show.end) + 1)], check=True)
    fps = 4
    env = {**os.environ, "VJ_CACHE": str(REPO / ".pytest_cache" / "c")}
    done = subprocess.run([sys.executable, "-m", "vj.cli", "replay", str(show.path), "--audio", str(wav),
                           "-o", str(out), "--size", "128x96", "--fps", str(fps), "--frames-log", str(frames_log),
                           "-q"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    frames = [json.loads(line) for line in frames_log.read_text().splitlines()]
    assert abs(len(frames) / fps - show.end) <= 1 / fps + 1e-6           # as long as the show
    video = [s for s in ffprobe(out)["streams"] if s["codec_type"] == "video"][0]
    assert (video["width"], video["height"]) == (128, 96)

    def changes_in(key):  # (wall time, value) whenever a frame's value differs from the one before
        seen = [(f["t"], key(f)) for f in frames]
        return [seen[0]] + [b for a, b in zip(seen, seen[1:]) if a[1] != b[1]]

    assert [cue for _, cue in changes_in(lambda f: f["cue"])] == [0, 1, 2]
    jump = next(e for e in show.entries if e.what == "cue_next")
    assert abs(changes_in(lambda f: f["cue"])[1][0] - jump.wall) <= 1 / fps + 0.1
    hue = changes_in(lambda f: f["params"]["hue_shift"])
    assert [v for _, v in hue] == pytest.approx([0.3, 100 / 127, 20 / 127], abs=1e-5)
    logged = [e.wall for e in show.entries if e.what == "hue_shift"]
    assert all(abs(t - w) <= 1 / fps + 1e-3 for (t, _), w in zip(hue[1:], logged))
    prompt = next(e for e in show.entries if e.what == "prompt")
    assert all(("a glass cathedral" in f["mix"]) == (f["t"] >= prompt.wall) for f in frames)
    assert frames[0]["steps"] == 2
