"""`vj render` end to end: generated audio + cue sheet -> MP4, checked with ffprobe and the frames log."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conftest import REPO, TINY, ffprobe, run_vj

FPS = 5
SECONDS = 12.0


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("render")
    wav, lrc, mp4, log = tmp / "beat.wav", tmp / "cues.lrc", tmp / "out.mp4", tmp / "frames.jsonl"
    subprocess.run([sys.executable, str(REPO / "examples" / "make_beat.py"), str(wav), "--seconds", str(SECONDS)],
                   check=True)
    lrc.write_text("[00:00.00]a neon city\n[00:02.55]deep ocean:1 | glow:0.5\n[00:05.30]sunflowers {steps=2}\n"
                   "[00:08.00]fire and ice\n[00:10.25]a forest in fog\n[00:11.10]a glass city {q=beat}\n")
    proc = run_vj("render", str(wav), "--lrc", str(lrc), "-o", str(mp4), "--fps", str(FPS), "--size", "128x96",
                  "--steps", "1", "--seed", "7", "--frames-log", str(log), "--stills", str(tmp / "stills"), *TINY)
    return mp4, log, proc


def test_video_has_h264_and_aac_for_the_audio_length(rendered):
    mp4, _, proc = rendered
    info = ffprobe(mp4)
    video = [s for s in info["streams"] if s["codec_type"] == "video"]
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert len(video) == 1 and len(audio) == 1
    assert video[0]["codec_name"] == "h264" and audio[0]["codec_name"] == "aac"
    assert (video[0]["width"], video[0]["height"]) == (128, 96)
    assert video[0]["r_frame_rate"] == f"{FPS}/1"
    assert abs(float(video[0]["duration"]) - SECONDS) <= 1 / FPS
    assert abs(float(audio[0]["duration"]) - SECONDS) <= 1 / FPS
    assert int(video[0]["nb_frames"]) == math.ceil(SECONDS * FPS)
    assert "wrote" in proc.stdout


def test_frames_log_starts_each_cue_on_the_frame_at_its_time(rendered):
    _, log, _ = rendered
    frames = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(frames) == math.ceil(SECONDS * FPS)
    for cue, t in enumerate([0.0, 2.55, 5.30, 8.0, 10.25]):
        first = next(f for f in frames if f["cue"] == cue)
        assert first["frame"] == math.ceil(t * FPS - 1e-9)
        assert abs(first["t"] - first["frame"] / FPS) < 1e-6
    assert all(isinstance(f["loss"], float) for f in frames)
    mid_fade = frames[round(2.8 * FPS)]  # t = 2.8: fading from cue 0 to cue 1
    texts = {p["text"] for p in mid_fade["prompts"]}
    assert {"a neon city", "deep ocean", "glow"} <= texts


def test_a_cue_with_q_starts_on_the_beat_the_audio_has(rendered):
    """The last cue, at 11.1 s with {q=beat}, waits for the track's next beat (120 BPM: beats every 0.5 s from 0,
    so 11.5 s), on the grid of vj's own tracker as in a rehearsal. Its start is read from the crossfade (weight =
    seconds since the start / transition_s, 1 s)."""
    _, log, _ = rendered
    frames = [json.loads(line) for line in log.read_text().splitlines()]
    first = next(f for f in frames if f["cue"] == 5)
    assert first["frame"] > math.ceil(11.1 * FPS), first  # not at its own time
    weight = next(p["weight"] for p in first["prompts"] if p["text"] == "a glass city")
    start = first["t"] - weight * 1.0
    assert abs(start - 11.5) < 0.03, (start, first)


def test_a_replay_starts_a_held_cue_where_the_recorded_show_did(tmp_path):
    """A control log whose show placed cue 1 ({q=bar}, own time 1.0 s) at 1.7 s (its tempo grid, Link say, which a
    replay cannot ask again): the replay starts it there, not at its own time nor on the audio's own beat."""
    from vj import config
    from vj.app.render import render_video
    from vj.control.showlog import ControlLogWriter, ControlReplay, read_show_log, show_header

    wav, lrc, controls = tmp_path / "show.wav", tmp_path / "show.lrc", tmp_path / "show.controls.jsonl"
    subprocess.run([sys.executable, str(REPO / "examples" / "make_beat.py"), str(wav), "--seconds", "2.5"], check=True)
    lrc.write_text("[00:00.00]a neon city\n[00:01.00]deep ocean {q=bar}\n")
    cfg = config.load(None, ["model.generator=tiny", "model.clip=tiny", "optimizer.cutouts=4", "render.fps=10",
                             "render.width=64", "render.height=64", "director.steps_per_frame=1"])
    writer = ControlLogWriter(controls, show_header(cfg, "live", lrc))
    writer.begin(0.0, 0.0, True)
    writer.cue_starts(0.6, 0.6, {1: 1.7})  # placed half a second ahead, as the show does
    writer.close(2.5, 2.5)
    frames_log = tmp_path / "frames.jsonl"
    render_video(wav, tmp_path / "replay.mp4", cfg, lrc, frames_log=frames_log, progress=False,
                 controls=ControlReplay(read_show_log(controls)), duration=2.5)
    frames = [json.loads(line) for line in frames_log.read_text().splitlines()]
    assert next(f["frame"] for f in frames if f["cue"] == 1) == 17, [f["cue"] for f in frames]


def test_render_is_deterministic_for_a_seed(rendered, tmp_path):
    mp4, log, _ = rendered
    wav = tmp_path / "beat.wav"
    subprocess.run([sys.executable, str(REPO / "examples" / "make_beat.py"), str(wav), "--seconds", "1.5"], check=True)
    from vj import config
    from vj.app.render import render_video

    cfg = config.load(None, ["model.generator=tiny", "model.clip=tiny", "optimizer.cutouts=4", "render.fps=8",
                             "render.width=64", "render.height=64", "director.steps_per_frame=1", "render.seed=3"])
    logs = []
    for i in range(2):  # in one process, each render loading its own networks, as two runs of `vj render` do
        out = tmp_path / f"f{i}.jsonl"
        render_video(wav, tmp_path / f"v{i}.mp4", cfg, frames_log=out, progress=False)
        logs.append(out.read_text())
    assert logs[0] == logs[1] and len(logs[0].splitlines()) == 12


def test_stills_one_per_cue_and_a_contact_sheet(rendered):
    from PIL import Image

    mp4, _, _ = rendered
    stills = mp4.parent / "stills"
    names = sorted(p.name for p in stills.glob("cue*.png"))
    assert names == [f"cue{i:02d}.png" for i in range(6)]
    assert Image.open(stills / "cue00.png").size == (128, 96)
    sheet = Image.open(stills / "contact.png")
    assert sheet.size[0] == 4 * 128 and sheet.size[1] > 2 * 96


def test_a_16_9_render_generates_wide_pictures_and_its_guided_steps_work(tmp_path):
    """`vj render --size 640x360` (model.aspect = "display"): the generator renders 16:9 itself (the tiny 64 px
    network at 114x64), the video is 640x360 with picture to its left and right edges, and the guidance loss of a
    held prompt falls."""
    import av
    import numpy as np

    wav, lrc, mp4, log = tmp_path / "beat.wav", tmp_path / "cue.lrc", tmp_path / "wide.mp4", tmp_path / "f.jsonl"
    subprocess.run([sys.executable, str(REPO / "examples" / "make_beat.py"), str(wav), "--seconds", "2"], check=True)
    lrc.write_text("[00:00.00]a red sunset over the sea\n")
    proc = run_vj("render", str(wav), "--lrc", str(lrc), "-o", str(mp4), "--fps", "8", "--size", "640x360",
                  "--steps", "2", "--frames-log", str(log), "--set", "display.effects=[]", *TINY)
    assert "generating 114x64 pictures" in proc.stderr
    with av.open(str(mp4)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert frames[-1].shape == (360, 640, 3)
    edges = np.concatenate([frames[-1][:, :32], frames[-1][:, -32:]], axis=1).astype(float)
    assert edges.std() > 5 and edges.mean() > 5  # a picture, not black bars
    losses = [json.loads(line)["loss"] for line in log.read_text().splitlines()]
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
