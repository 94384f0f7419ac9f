"""An install from a wheel works: shaders, the default config and the MIDI mappings are package data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from conftest import beat_track, REPO


def test_a_wheel_installs_and_renders_from_a_folder_outside_the_checkout(tmp_path):
    # Built from a copy: setuptools keeps a build/ folder in the source tree, whose stale files would go along.
    source, dist = tmp_path / "source", tmp_path / "dist"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "out", "*.egg-info",
                                                                ".pytest_cache", ".whl", ".gl", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(dist), str(source)], check=True, cwd=tmp_path, timeout=300)
    (wheel,) = dist.glob("vj-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(site), str(wheel)], check=True, timeout=300)
    # The dependencies are borrowed from the test's own environment (a plain path: its .pth files, among them
    # the checkout's editable install, are not read).
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["VJ_CACHE"] = str(tmp_path / "cache")

    def vj(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, "-m", "vj.cli", *args], cwd=work, env=env, capture_output=True, text=True,
                              timeout=300)

    where = subprocess.run([python, "-c", "import vj; print(vj.__file__)"], cwd=work, env=env, capture_output=True,
                           text=True, check=True).stdout
    assert where.startswith(str(site)), where  # the wheel's vj, not the checkout's
    beat_track(work / "beat.wav", 1)
    (work / "cues.lrc").write_text("[00:00.00]a neon city at night\n[00:00.50]a deep blue ocean\n")
    checked = vj("cues", "check", "cues.lrc")
    assert checked.returncode == 0 and "a deep blue ocean" in checked.stdout, checked.stdout + checked.stderr
    done = vj("render", "beat.wav", "--lrc", "cues.lrc", "-o", "out.mp4", "--fps", "4", "--size", "64x64",
              "--set", "model.generator=tiny", "--set", "model.clip=tiny", "--set", "optimizer.cutouts=2",
              "--set", "control.midi_mapping=akai-apc-mini")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "out.mp4").stat().st_size > 1000
    assert "[optimizer]" in vj("config").stdout and "akai-apc-mini" in vj("midi", "mappings").stdout
