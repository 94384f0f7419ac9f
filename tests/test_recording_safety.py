"""Output paths that cannot be written are refused in one line before anything loads (`--record` and `-o`), with
the real parts: vj's command, a read-only folder (a read-only tmpfs as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from conftest import REPO, VJ, beat_track


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
