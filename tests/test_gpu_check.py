"""The device check runs here too (tiny networks, CUDA rows absent), so it is known to work before a GPU is lent."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_gpu_check_runs_on_the_cpu_and_writes_its_report(tmp_path):
    done = subprocess.run([sys.executable, "scripts/gpu_check.py", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert report["cuda"] is False and report["cuda_tests"]["status"].startswith("absent")
    rows = report["rows"]
    here = [r for r in rows if r.get("device", "cpu") == "cpu"]
    there = [r for r in rows if r.get("device", "cpu").startswith("cuda")]
    assert here and all(r["status"] == "ok" for r in here), [r["status"] for r in here]
    assert there and all(r["status"].startswith("absent") for r in there)
    sections = {r["section"] for r in here}
    assert {"guided step", "synthesis", "live (offscreen)"} <= sections
    assert {r["precision"] for r in here if r["section"] == "guided step"} == {"fp32", "fp16", "bf16"}
    live = next(r for r in here if r["section"] == "live (offscreen)")
    assert live["display_fps"] > 0 and live["guided_steps_per_s"] > 0 and live["frame_ms"]["n"] > 0
    assert all(r["ms_median"] > 0 for r in here if r["section"] in ("guided step", "synthesis"))
    assert "## Targets" in markdown and markdown.count("| absent |") == 5  # no CUDA: every target unmeasured
    assert done.stdout.rstrip().endswith(markdown.rstrip().splitlines()[-1])  # the summary is printed last
