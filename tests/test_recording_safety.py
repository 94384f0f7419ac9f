"""A recording survives what a show's night throws at it, with the real parts: a path that cannot be written is
refused in one line before anything loads; a disk that fills mid-show (a real small tmpfs, or where mounting is not
allowed a real file-size limit on vj's process) is one warning, the show goes on and quits at once, and the file
plays; `kill -9` mid-show leaves a file that plays up to near the kill, and `vj replay` takes the show's sound from
it. What was written is checked by decoding it with PyAV."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import av
import pytest

from conftest import REPO, TINY, VJ, Lines, beat_track, free_port, oscsend, start_vj, wait_for_line


def decoded(path: Path) -> tuple[int, float, float]:
    """(video frames, the last frame's time, seconds of sound) that PyAV decodes from `path`, up to any damage at
    its end (a file cut short by a crash or a full disk: a player stops there too)."""
    frames, last, sound = 0, 0.0, 0.0
    with av.open(str(path)) as container:
        try:
            for packet in container.demux():
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        frames, last = frames + 1, float(frame.time)
                    else:
                        sound = float(frame.time) + frame.samples / frame.sample_rate
        except av.error.FFmpegError:
            pass
    return frames, last, sound


def mount_tmpfs(folder: Path, options: str) -> bool:
    """A tmpfs on `folder` (root only): whether it was mounted."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], check=False)


@contextmanager
def read_only_folder(folder: Path) -> Iterator[Path]:
    """A folder nobody can write into: a read-only tmpfs as root (root ignores permissions), else mode 0555."""
    folder.mkdir()
    if mount_tmpfs(folder, "ro,size=64k"):
        try:
            yield folder
        finally:
            unmount(folder)
    elif os.geteuid() == 0:
        pytest.skip("root here, and mounting a read-only tmpfs is not allowed: no folder root cannot write")
    else:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)


@contextmanager
def small_disk(folder: Path) -> Iterator[Callable[[subprocess.Popen, Path], None]]:
    """A folder on a disk of its own, and `fill(proc, recording)`: the disk is full from then on, for real. As root a
    16 MB tmpfs, filled with a file of the test's; otherwise a file size limit on vj's process (RLIMIT_FSIZE,
    lowered to what the recording holds): its writes fail as on a full disk ("File too large")."""
    folder.mkdir()
    mounted = mount_tmpfs(folder, "size=16m")

    def fill(proc: subprocess.Popen, recording: Path) -> None:
        if mounted:
            with open(folder / "filler", "wb", buffering=0) as filler:
                try:
                    while True:
                        filler.write(b"\0" * 65536)
                except OSError:
                    pass
        else:
            limit = recording.stat().st_size + 4096
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, limit))

    try:
        yield fill
    finally:
        if mounted:
            unmount(folder)


def test_paths_that_cannot_be_written_are_refused_in_one_line_before_anything_loads(x_display, tmp_path):
    """`--record` and `-o` with no extension, into a read-only folder, onto a folder: one line each, in a second or
    two. The full-size networks are asked for with an empty cache, so reaching them would be slow and say so."""
    wav, lrc, log = beat_track(tmp_path / "beat.wav", 1), tmp_path / "cues.lrc", tmp_path / "show.controls.jsonl"
    lrc.write_text("[00:00.00]a quiet harbour\n")
    log.write_text('{"wall": 0, "t": 0, "source": "vj", "what": "show", "value": {"format": 1}}\n')
    env = {**os.environ, "DISPLAY": x_display, "VJ_CACHE": str(tmp_path / "empty-cache")}
    with read_only_folder(tmp_path / "read-only") as read_only:
        runs = {
            "live --record myshow": (["live", "--record", str(tmp_path / "myshow")], "myshow.mp4)"),
            "live --record read-only": (["live", "--record", str(read_only / "show.mp4")], "cannot write"),
            "rehearse --record a folder": (["rehearse", str(wav), "--lrc", str(lrc), "--record", str(tmp_path)],
                                           "is a folder"),
            "render -o out_noext": (["render", str(wav), "-o", str(tmp_path / "out_noext")], "out_noext.mp4)"),
            "render -o read-only": (["render", str(wav), "-o", str(read_only / "x.mp4")], "cannot write"),
            "replay -o out.avi": (["replay", str(log), "--audio", str(wav), "-o", str(tmp_path / "out.avi")],
                                  "out.mp4)"),
        }
        for name, (args, said) in runs.items():
            started = time.time()
            done = subprocess.run([*VJ, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
            took = time.time() - started
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            assert done.returncode == 1 and len(lines) == 1 and said in lines[0], (name, done.stderr[-3000:])
            assert "generator" not in done.stderr + done.stdout, (name, done.stderr[-3000:])  # nothing loaded
            assert took < 10, (name, took)  # python starts in a second here; torch alone would take longer
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beat.wav", "cues.lrc", "read-only", "show.controls.jsonl"]


def test_a_disk_that_fills_mid_show_is_one_warning_the_show_goes_on_and_quits_at_once(x_display, tmp_path):
    port = free_port()
    with small_disk(tmp_path / "disk") as fill:
        out = tmp_path / "disk" / "show.mp4"
        proc = start_vj(["live", "--duration", "120", "--record", str(out), "-v"], x_display, port)
        lines = Lines(proc)
        try:
            lines.wait_for(" fps ", timeout=120)  # the show runs, and records
            time.sleep(2.5)
            fill(proc, out)
            lines.wait_for("recording stopped", timeout=20)
            full_at = len(lines.lines)
            oscsend(port, "/vj/param/hue_shift", "f", "0.75")  # the control log, on the same full disk
            time.sleep(3)
            quit_sent = time.time()
            oscsend(port, "/vj/quit")
            proc.wait(timeout=60)
            quit_took = time.time() - quit_sent
        finally:
            proc.kill()
            proc.wait()
        text, after = lines.text, lines.lines[full_at:]
        assert proc.returncode == 0, text[-4000:]
        assert quit_took < 15, quit_took
        assert "Traceback" not in text, text[-4000:]
        errors = [line for line in text.splitlines() if "recording stopped" in line and "ERROR" in line]
        assert len(errors) == 1, errors  # said once in the log ...
        assert any("HUD |" in line and "recording stopped" in line for line in after), text[-3000:]  # ... and shown
        status = [line for line in after if " fps " in line]
        assert len(status) >= 2, text[-3000:]  # the show went on
        frames, last, _ = decoded(out)
        assert frames > 10 and last > 1.0, (frames, last)  # what was written before the disk filled plays


def test_a_show_killed_mid_recording_leaves_a_file_that_plays_and_replays(x_display, tmp_path):
    out, replayed = tmp_path / "show.mp4", tmp_path / "replay.mp4"
    port = free_port()
    proc = start_vj(["live", "--duration", "120", "--record", str(out)], x_display, port)
    try:
        wait_for_line(proc, "the show starts")
        began = time.time()
        time.sleep(1)
        oscsend(port, "/vj/param/hue_shift", "f", "0.75")
        time.sleep(4)
        os.kill(proc.pid, signal.SIGKILL)  # a crash: nothing of vj's runs after it
        killed_at = time.time() - began
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    frames, last, sound = decoded(out)
    # A key frame (a fragment) each second, and x264's lookahead: at most about two seconds are lost.
    assert frames > 10 and last > killed_at - 2.5, (frames, last, killed_at)
    assert sound > killed_at - 2.5, (sound, killed_at)
    done = subprocess.run([*VJ, "replay", str(out.with_suffix(".controls.jsonl")), "-o", str(replayed), "--fps", "2",
                           "--size", "64x64", "--steps", "1", *TINY], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with av.open(str(replayed)) as container:
        assert container.streams.audio and container.streams.video
        heard = float(container.streams.audio[0].duration * container.streams.audio[0].time_base)
    assert abs(heard - sound) < 0.5, (heard, sound)  # the show's sound, from the recording
