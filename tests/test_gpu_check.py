"""The device check runs here too (tiny networks, CUDA rows absent), so it is known to work before a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO


def test_gpu_check_runs_on_the_cpu_and_writes_its_report(tmp_path):
    done = subprocess.run([sys.executable, "scripts/gpu_check.py", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=400)
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
    assert {"guided step", "synthesis", "live (offscreen)", "agreement"} <= sections
    assert report["budget_s"] == 240 and report["row_processes"] == 1  # nothing failed: one process for every row
    assert {r["precision"] for r in here if r["section"] == "guided step"} == {"fp32", "fp16", "bf16"}
    live = next(r for r in here if r["section"] == "live (offscreen)")
    assert live["display_fps"] > 0 and live["guided_steps_per_s"] > 0 and live["frame_ms"]["n"] > 0
    assert live["max_fps"] == 30 and live["display_fps"] <= 31  # capped as its overrides say
    assert live["graphs"] is False and live["graph_replays"] == 0 and live["fallbacks"] == []  # no graphs on a CPU
    agreement = {r["precision"]: r for r in here if r["section"] == "agreement"}
    assert set(agreement) == {"bf16", "fp16"}
    for row in agreement.values():  # half precision's loss and gradient against fp32's, on the tiny networks
        assert 0 < row["loss_rel_diff"] < 0.05 and 0.9 < row["grad_cosine"] <= 1.0 + 1e-6, row
    full = [r for r in there if r["section"] == "agreement"]
    assert {r["precision"] for r in full} == {"bf16", "fp16"} and {r["clip"] for r in full} == {"ViT-B-32"}
    assert all(r["ms_median"] > 0 for r in here if r["section"] in ("guided step", "synthesis"))
    assert "## Targets" in markdown and markdown.count("| absent |") == 5  # no CUDA: every target unmeasured
    assert done.stdout.rstrip().endswith(markdown.rstrip().splitlines()[-1])  # the summary is printed last


# RowProcess runs these in its child process (spawned: they are found by module name, as gpu_check's own are).
def _figures(value: int) -> dict:
    return {"value": value, "pid": os.getpid()}


def _raises() -> dict:
    raise ValueError("a bad case")


def _dies() -> dict:
    os._exit(3)  # as a crash in a CUDA library ends the process


def _hangs() -> dict:
    time.sleep(60)
    return {}


def test_a_row_that_kills_its_process_or_hangs_costs_only_itself(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))  # for the spawned child too, which finds gpu_check by name
    from gpu_check import RowFailed, RowProcess

    rows = RowProcess()
    try:
        first = rows.measure(_figures, {"value": 1}, timeout=60)
        with pytest.raises(RowFailed, match="ValueError: a bad case"):
            rows.measure(_raises, {}, timeout=60)
        assert rows.measure(_figures, {"value": 2}, timeout=60) == {"value": 2, "pid": first["pid"]}  # kept
        with pytest.raises(RuntimeError, match="exit code 3"):
            rows.measure(_dies, {}, timeout=60)
        after_crash = rows.measure(_figures, {"value": 3}, timeout=60)
        assert after_crash["value"] == 3 and after_crash["pid"] != first["pid"] and rows.started == 2
        with pytest.raises(TimeoutError):
            rows.measure(_hangs, {}, timeout=2)
        assert rows.measure(_figures, {"value": 4}, timeout=60)["value"] == 4 and rows.started == 3
    finally:
        rows.stop()


def test_a_rerun_measures_only_the_sections_asked_for(tmp_path):
    done = subprocess.run([sys.executable, "scripts/gpu_check.py", "--out", str(tmp_path), "--only", "synthesis"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["cuda_tests"]["status"] == "not run (not selected)"
    assert {r["section"] for r in report["rows"]} == {"synthesis", "synthesis (compiled)"}
    assert all(r["status"] == "ok" for r in report["rows"] if r["device"] == "cpu")
