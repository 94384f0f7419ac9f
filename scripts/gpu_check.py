"""The device check: everything vj needs to know about a GPU, measured in one run within a time budget.

On a lent GPU (`make gpu-check` there, see README) it runs, most important first, until its budget (420 s by
default, the setup included when gpu_check.sh starts it) is spent: the CUDA tests (tests/cuda, the compiled one
last of all), the guided step (StyleGAN3-T 512 + ViT-B/32 at 8, 16 and 32 cutouts in bf16, fp16 and fp32, graphs
on and off), the live show with no window (EGL, 1080p, the display capped at 60 fps as a monitor would), the
agreement of half precision with fp32 (loss and gradient at the real sizes), the generator (T and R at 256 and 512
and the published 256 configuration), the frame transfer, more of each matrix while room is left for the compiled
cases, then the compiled cases. Random weights everywhere: the timings do not depend on them, and nothing can be
downloaded there.

Every row is measured in a child process: a row that leaves CUDA unusable (a sticky error), kills its process or
outlasts the budget costs only itself, and the next row gets a fresh process.

On a machine without CUDA the same command runs the same sections with the tiny networks (in well under a minute;
`make test` runs it) and marks the CUDA rows absent. It writes gpu_check.json and gpu_check.md into --out and
prints the Markdown last.

    python scripts/gpu_check.py --out out/gpu-check
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import multiprocessing
import os
import subprocess
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

import torch

from vj import bench
from vj import config as config_mod

REPO = Path(__file__).resolve().parents[1]
TARGETS = {  # on one H100/H200 (issue: the engine on a GPU)
    "synthesis_T512_half_ms": 5.0,
    "guided_T512_vitb32_32cut_steps_per_s": 180.0,
    "live_1080p_frame_p99_ms": 16.7,
    "live_steps_per_displayed_frame": 3.0,
    "live_audio_to_screen_p99_ms": 40.0,
}
DEFAULT_BUDGET_S = {True: 420.0, False: 240.0}  # with CUDA, without (fp16 on a CPU is slow; a loaded CPU more so)
WATCHDOG_AFTER_S = 20                   # past the budget: every thread's stack to the log, and out
COMPILED_RESERVE_S = 150                # the extra uncompiled rows leave this much for the compiled ones
CUDA_TESTS_S = 90                       # the uncompiled CUDA tests, at most


class Budget:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    @property
    def left(self) -> float:
        return self.deadline - time.monotonic()


class RowFailed(Exception):
    """A row's measurement raised, in the rows' process (its traceback is in the log)."""


class RowProcess:
    """The child process rows are measured in, one at a time. After a row that left CUDA unusable, killed the
    process or outlasted its time, the process is ended and the next row starts a fresh one (a fresh CUDA context):
    a sticky CUDA error costs one row, not the rest of the lease."""

    def __init__(self) -> None:
        self._process: multiprocessing.Process | None = None
        self._conn: Connection | None = None
        self.started = 0                # processes started: more than one when a fault was isolated

    def measure(self, measure: Callable[..., dict], case: dict, timeout: float) -> dict:
        if self._process is None:
            context = multiprocessing.get_context("spawn")  # CUDA does not survive a fork
            self._conn, child = context.Pipe()
            # Not a daemon: inductor starts compile workers, which a daemon process may not.
            self._process = context.Process(target=_serve_rows, args=(child,), name="gpu-check-rows")
            self._process.start()
            child.close()  # only the child holds its end now: its death reads as the pipe's end
            self.started += 1
        self._conn.send((measure, case))
        if not self._conn.poll(max(1.0, timeout)):
            self.stop()
            raise TimeoutError(f"stopped after {timeout:.0f} s")
        try:
            figures, error, cuda_usable = self._conn.recv()
        except EOFError:
            self._process.join(5)
            code = self._process.exitcode
            self.stop()
            raise RuntimeError(f"the row's process died (exit code {code}); the next row gets a new one") from None
        if not cuda_usable:
            self.stop()
            error = f"{error} (CUDA unusable after it: the next row gets a new process)"
        if error:
            raise RowFailed(error)
        return figures

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(10)
            self._conn.close()
            self._process = self._conn = None


def _serve_rows(conn: Connection) -> None:
    """The rows' process: (measure, case) in; (figures, error, whether CUDA still works) out."""
    while True:
        try:
            measure, case = conn.recv()
        except EOFError:
            return
        figures, error = None, None
        try:
            figures = measure(**case)
        except Exception as e:  # noqa: BLE001  the row's status says it
            traceback.print_exc()
            error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        usable = _cuda_usable()
        if usable and torch.cuda.is_initialized():
            bench.fresh_gpu_memory()
        conn.send((figures, error, usable))


def _cuda_usable() -> bool:
    """False after a sticky CUDA error (an illegal address, a failed launch): nothing on that context works again."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return True
    try:
        torch.cuda.synchronize()
        return float(torch.ones(1, device="cuda").add_(1).item()) == 2.0
    except Exception:  # noqa: BLE001
        return False


class Check:
    """The report as it grows: rows are measured in order while the budget lasts, and the JSON and Markdown are
    written after each one, so whatever stops the run (its time limit, a hang) leaves what was measured."""

    def __init__(self, out: Path, budget: Budget, cuda: bool, only: list[str] | None = None):
        self.out, self.budget, self.cuda = out, budget, cuda
        self.only = only                # section names (or parts of them) to measure; None: all
        self.started = time.monotonic()
        self.rows: list[dict] = []
        self.rows_process = RowProcess()
        self.report: dict = {"machine": environment(cuda), "cuda": cuda, "budget_s": round(budget.seconds),
                             "targets": TARGETS, "rows": self.rows, "cuda_tests": {"status": "not run yet"}}
        print(json.dumps(self.report["machine"]), flush=True)

    def write(self) -> str:
        self.report["seconds"] = round(time.monotonic() - self.started, 1)
        self.report["row_processes"] = self.rows_process.started
        (self.out / "gpu_check.json").write_text(json.dumps(self.report, indent=1))
        markdown = summary(self.report)
        (self.out / "gpu_check.md").write_text(markdown)
        return markdown

    def selected(self, name: str) -> bool:
        return self.only is None or any(part in name for part in self.only)

    def run(self, name: str, cases: list[dict], measure: Callable[..., dict], min_left: float = 5.0) -> None:
        """measure(**case) for each case in order, one row each, in the rows' process: the figures, or why there
        are none. CPU rows are this script's own smoke test: where a GPU is, they are skipped."""
        if not self.selected(name):
            return
        for case in cases:
            row = {"section": name, **case}
            on_cuda = case.get("device", "cpu").startswith("cuda")
            if on_cuda and not self.cuda:
                row["status"] = "absent (no CUDA device)"
            elif self.cuda and not on_cuda:
                row["status"] = "not run (a CPU row: the smoke test where no GPU is)"
            elif self.budget.left < min_left:
                row["status"] = "not run (time budget spent)"
            else:
                try:
                    row.update(self.rows_process.measure(measure, case, timeout=self.budget.left))
                    fell_back = row.get("fallbacks")
                    row["status"] = f"ok (fell back: {'; '.join(fell_back)[:300]})" if fell_back else "ok"
                except Exception as e:  # noqa: BLE001  one failed case must not cost the rest of the device time
                    row["status"] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            self.rows.append(row)
            print(json.dumps(row), flush=True)
            self.write()


def environment(cuda: bool) -> dict:
    info = bench.machine()
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(capability=f"{props.major}.{props.minor}", gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                    bf16=torch.cuda.is_bf16_supported(including_emulation=False),
                    cuda_runtime=torch.version.cuda)
    try:
        from vj.render.compositor import headless_context

        ctx = headless_context()
        info["gl_renderer"] = ctx.info["GL_RENDERER"]
        ctx.release()
    except Exception as e:  # noqa: BLE001
        info["gl_renderer"] = f"none: {type(e).__name__}: {e}"
    return info


def cuda_tests(out: Path, log_name: str, selection: str, timeout: float) -> dict:
    """tests/cuda (those `-k selection` picks) in a pytest of its own; its log into out/log_name."""
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-v", "--durations=0", "-p", "no:cacheprovider",
                               "-k", selection, "tests/cuda"], cwd=REPO, capture_output=True, text=True,
                              timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired as e:  # -v: the log still says which tests passed before
        partial = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or ""
        (out / log_name).write_text(partial)
        return {"status": f"timed out after {timeout:.0f} s", "summary": f"{partial.count(' PASSED')} passed before"}
    (out / log_name).write_text(done.stdout + done.stderr)
    summary = [line for line in done.stdout.splitlines() if " passed" in line or " failed" in line or "error" in line]
    return {"status": "ok" if done.returncode == 0 else "failed", "summary": summary[-1] if summary else "",
            "exit_code": done.returncode}


def live_case(device: str, size: str, seconds: float, overrides: list[str],
              networks: tuple[str, str, int] | None = None) -> dict:
    """The live show offscreen; networks = (generator architecture, CLIP model, resolution) with random weights
    (None: as the overrides say)."""
    width, height = size.split("x")
    cfg = config_mod.load(None, [f"display.width={width}", f"display.height={height}", "display.vsync=false",
                                 "display.hud=false", "control.osc_port=0", *overrides])  # 0: any free port
    cuda = torch.cuda.is_available()
    models = None
    if networks is not None:
        from vj.models.clip import load_clip
        from vj.models.loading import Models, resolve_device, resolve_precision

        arch, clip, resolution = networks
        device = resolve_device(cfg.model.device)
        precision = resolve_precision(cfg.model.precision, device)
        G = bench.random_generator(arch, resolution, str(device)).set_precision(precision)
        models = Models(G, load_clip(f"{clip}/random", device, precision), device)
    if cuda:
        bench.fresh_gpu_memory()
    result = bench.live(cfg, seconds, warmup=2.0, offscreen=True, models=models)
    result.update(settings=overrides, networks=networks or "tiny", **bench._memory(cuda))
    return result


def transfer_case(device: str, size: int) -> dict:
    return bench.transfer(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--budget-s", type=float, default=None, help="seconds for the whole check (default: "
                        f"{DEFAULT_BUDGET_S[True]:.0f} with CUDA, {DEFAULT_BUDGET_S[False]:.0f} without)")
    parser.add_argument("--only", default=None, help="comma-separated sections (or parts of their names) to "
                        "measure, e.g. 'guided step,live' or 'cuda tests' (a rerun that tunes one thing)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    budget = Budget(args.budget_s or DEFAULT_BUDGET_S[cuda])
    # A hang must not eat the device time in silence: every thread's stack to the log, and out, inside the budget
    # that gpu_check.sh and the device's command limit leave.
    faulthandler.dump_traceback_later(budget.left + WATCHDOG_AFTER_S, exit=True)
    check = Check(out, budget, cuda, args.only.split(",") if args.only else None)
    try:
        run_rows(check, out, budget, cuda)
    finally:
        check.rows_process.stop()
    faulthandler.cancel_dump_traceback_later()
    print(check.write(), flush=True)


def run_rows(check: Check, out: Path, budget: Budget, cuda: bool) -> None:
    """Most important first: the guided step as the engine runs it (T-512 + ViT-B/32, captured), the live show (3
    of the 5 targets), half precision's agreement, synthesis, the frame transfer; the rest of each matrix while
    room is left for the compiled cases, which come last. The tiny rows are the smoke test where no GPU is."""
    if not check.selected("cuda tests"):
        check.report["cuda_tests"] = {"status": "not run (not selected)"}
    elif cuda:
        check.report["cuda_tests"] = cuda_tests(out, "cuda_tests.log", "not compiled",
                                                min(CUDA_TESTS_S, budget.left - 60))
    else:
        check.report["cuda_tests"] = {"status": "absent (no CUDA device)"}
    print(json.dumps({"cuda_tests": check.report["cuda_tests"]}), flush=True)
    check.write()

    def guided(n: int, precision: str, graphs: bool = True, **more) -> dict:
        return dict(resolution=512, generator_arch="T", clip="ViT-B-32", cutouts=n, precision=precision,
                    device="cuda", repeats=20, graphs=graphs, **more)

    def synthesis(arch: str, resolution: int, dtype: str, graphs: bool = True, **more) -> dict:
        return dict(arch=arch, resolution=resolution, dtype=dtype, device="cuda", repeats=20, graphs=graphs, **more)

    # fp16 on a CPU is slow (no native kernels): the smoke test's rows time as few steps as say anything.
    tiny_guided = [dict(resolution=64, generator_arch="tiny", clip="tiny", cutouts=4, precision=p, device="cpu",
                        repeats=2) for p in ("fp32", "bf16", "fp16")]
    core_guided = [guided(32, "bf16"), guided(16, "bf16"), guided(8, "bf16"), guided(32, "bf16", graphs=False),
                   guided(32, "fp16"), guided(32, "fp32")]
    check.run("guided step", tiny_guided + core_guided, bench.guidance)

    # The live show as `vj live` runs it, offscreen, the display capped as a 60 Hz monitor would (uncapped, the
    # offscreen loop spins: its figures describe no display, and it takes the GPU and the GIL from the engine).
    tiny = ["model.device=cpu", "model.generator=tiny", "model.clip=tiny", "optimizer.cutouts=4",
            "governor.min_cutouts=2", "display.max_fps=30"]  # on 2 cores an uncapped display starves the engine
    full = ["optimizer.cutouts=32", "governor.min_cutouts=8", "optimizer.compile=off", "governor.frame_budget_ms=16",
            "display.max_fps=60"]
    live = [dict(size="640x360", seconds=2.5, overrides=tiny, device="cpu"),
            dict(size="1920x1080", seconds=10.0, overrides=full, networks=("T-published-256", "ViT-B-32", 256),
                 device="cuda")]
    check.run("live (offscreen)", live, live_case, min_left=40)

    tiny_agreement = [dict(precision=p, device="cpu", draws=1) for p in ("bf16", "fp16")]
    full_agreement = [dict(precision=p, resolution=512, generator_arch="T", clip="ViT-B-32", cutouts=32,
                           device="cuda") for p in ("bf16", "fp16")]
    check.run("agreement", tiny_agreement + full_agreement, bench.agreement)

    tiny_synthesis = [dict(arch="tiny", resolution=64, dtype=d, device="cpu", repeats=3)
                      for d in ("fp32", "bf16", "fp16")]
    core_synthesis = [synthesis("T", 512, "fp16"), synthesis("T", 512, "bf16"), synthesis("T", 512, "bf16", False),
                      synthesis("T-published-256", 256, "bf16"), synthesis("R", 512, "bf16"),
                      synthesis("R-published-256", 256, "bf16"),
                      synthesis("T-published-256", 256, "bf16", aspect=16 / 9)]  # model.aspect's cost
    check.run("synthesis", tiny_synthesis + core_synthesis, bench.generator)
    check.run("frame transfer", [dict(device="cuda", size=1024)], transfer_case)

    # The rest of the matrices while room is left for the compiled cases.
    rest_guided = [guided(n, p, g) for p in ("bf16", "fp16", "fp32") for g in (True, False) for n in (8, 16, 32)]
    check.run("guided step", [c for c in rest_guided if c not in core_guided], bench.guidance,
              min_left=COMPILED_RESERVE_S)
    rest_synthesis = [synthesis(arch, res, d, g) for arch, res in (("T", 512), ("T", 256), ("T-published-256", 256),
                                                                   ("R", 512), ("R", 256), ("R-published-256", 256))
                      for d in ("fp16", "bf16", "fp32") for g in (True, False)]
    check.run("synthesis", [c for c in rest_synthesis if c not in core_synthesis], bench.generator,
              min_left=COMPILED_RESERVE_S)

    # Compiled (inductor) last: a compile of the whole step takes minutes. The row's process is stopped at the
    # budget's end.
    check.run("guided step (compiled)", [guided(32, "bf16", compile="on")], bench.guidance, min_left=100)
    check.run("synthesis (compiled)", [synthesis("T", 512, d, compiled=True) for d in ("bf16", "fp16")],
              bench.generator, min_left=60)
    if cuda and budget.left > 60 and check.selected("cuda tests"):
        check.report["cuda_tests_compiled"] = cuda_tests(out, "cuda_tests_compiled.log", "compiled",
                                                         budget.left - 5)
        check.write()


def _fmt(value) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def summary(report: dict) -> str:
    """The report as Markdown: machine, tests, one table per section, and the targets met or not."""
    m, rows = report["machine"], report["rows"]
    lines = [f"# vj device check ({m.get('date', '')[:16]})", "",
             f"Machine: {m.get('cuda', 'no CUDA device')} (capability {m.get('capability', '-')}, "
             f"{m.get('gpu_memory_gib', '-')} GiB, bf16 {m.get('bf16', '-')}), torch {m['torch']}, "
             f"CUDA {m.get('cuda_runtime', '-')}, GL: {m.get('gl_renderer', '-')}. Check took {report['seconds']} s.",
             f"Budget {report.get('budget_s')} s; rows measured in {report.get('row_processes', 1)} process(es).",
             "", f"CUDA tests: {report['cuda_tests'].get('status')} {report['cuda_tests'].get('summary', '')}"]
    if "cuda_tests_compiled" in report:
        compiled = report["cuda_tests_compiled"]
        lines.append(f"CUDA tests, compiled: {compiled.get('status')} {compiled.get('summary', '')}")
    lines.append("")
    columns = {
        "frame transfer": ["frame", "to_pinned_host", "to_pageable_host", "transform_upload"],
        "guided step": ["generator_arch", "resolution", "clip", "cutouts", "device", "precision", "graphs", "ms_median",
                        "steps_per_s", "graph_replays", "skipped_steps", "warm_up_s", "peak_gpu_mib"],
        "synthesis": ["arch", "resolution", "size", "device", "dtype", "graphs", "ms_median", "ms_min", "graph_replays",
                      "peak_gpu_mib"],
        "live (offscreen)": ["display_size", "device", "max_fps", "display_fps", "frame_ms", "frames_late",
                             "guided_steps_per_s", "steps_per_displayed_frame", "audio_to_screen_ms", "graphs",
                             "graph_replays", "peak_gpu_mib"],
        "agreement": ["generator", "clip", "cutouts", "device", "precision", "loss_fp32", "loss_rel_diff",
                      "grad_cosine"],
    }
    columns["guided step (compiled)"] = columns["guided step"]
    columns["synthesis (compiled)"] = columns["synthesis"]
    for section, names in columns.items():
        section_rows = [r for r in rows if r["section"] == section]
        if not section_rows:
            continue
        lines += [f"## {section}", "", "| " + " | ".join(names + ["status"]) + " |",
                  "|" + "---|" * (len(names) + 1)]
        for r in section_rows:
            cells = []
            for name in names:
                value = r.get(name)
                if isinstance(value, dict):  # timed() or stats(): the median / p50-p99
                    value = value.get("ms_median", None) if "ms_median" in value else \
                        f"{value.get('p50', '-')} / {value.get('p99', '-')}"
                cells.append(_fmt(value))
            lines.append("| " + " | ".join(cells + [r["status"]]) + " |")
        lines.append("")
    lines += ["## Targets (one H100/H200)", "", "| target | goal | measured |", "|---|---|---|"]
    for name, goal, measured in _targets(rows):
        lines.append(f"| {name} | {goal} | {measured} |")
    return "\n".join(lines) + "\n"


def _targets(rows: list[dict]) -> list[tuple[str, str, str]]:
    def best(section: str, match: Callable[[dict], bool], key: Callable[[dict], float], low: bool) -> str:
        found = [key(r) for r in rows if r["section"].startswith(section) and r["status"] == "ok" and match(r)]
        return "absent" if not found else f"{(min if low else max)(found):g}"

    cuda = lambda r: r.get("device", "").startswith("cuda")  # noqa: E731
    live = [r for r in rows if r["section"].startswith("live") and cuda(r) and r["status"] == "ok"]
    return [
        ("StyleGAN3-T 512 synthesis, batch 1, half (ms)", "<= 5",
         best("synthesis", lambda r: cuda(r) and r["arch"] == "T" and r["resolution"] == 512 and r["dtype"] != "fp32",
              lambda r: r["ms_median"], low=True)),
        ("guided step T-512 + ViT-B/32, 32 cutouts (steps/s)", ">= 180",
         best("guided step", lambda r: cuda(r) and r["cutouts"] == 32, lambda r: r["steps_per_s"], low=False)),
        ("live 1080p frame time p99 (ms)", "<= 16.7", _fmt(live[0]["frame_ms"].get("p99")) if live else "absent"),
        ("guided steps per displayed frame", ">= 3", _fmt(live[0]["steps_per_displayed_frame"]) if live else "absent"),
        ("audio-to-screen p99 (ms)", "<= 40", _fmt(live[0]["audio_to_screen_ms"].get("p99")) if live else "absent"),
    ]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
