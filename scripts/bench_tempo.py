"""Tempo from the rig, measured: Ableton Link's phase error against a peer, and MIDI clock's tempo error and settling
time under 1-2 ms of jitter.

- Link: a peer of the script's own (tests/link_check.py's, aalink in a child process) and vj's `LinkFollower`, both
  in a private network namespace with only loopback up (root and unshare: the script re-runs itself there), so
  Link's multicast never leaves the machine. At each of several tempos the follower's beat is compared with the
  peer's at the instants the peer read its own; the error is in milliseconds within the bar.
- MIDI clock: a JACK server with the dummy driver under a name of its own (32-frame periods: MIDI moves every
  0.67 ms), a virtual port sending clock on a nominal grid with each clock 1-2 ms late at random (a USB interface's
  jitter), vj's `MidiClockIn` on it. Tempo steps 120 -> 174 -> 90 -> 128 BPM; after every clock the reading is
  compared with the tempo sent. Settling: the beats from a change until the error stays under 0.2 BPM.
- With `--live N`, also N runs of the whole show following Link (tests/link_cue_check.py: `vj live --headless` with
  the tiny networks, its OSC feedback read here): how long a tempo change, a stop and a start take to come back,
  and vj's beat against the peer's (each sample including the datagram's way over loopback).

    python scripts/bench_tempo.py --out out/bench/tempo.json [--beats 16] [--live 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # link_check's peer

CLOCK, START = 0xF8, 0xFA
STEPS = (120.0, 174.0, 90.0, 128.0)     # MIDI clock tempos, in turn
LINK_TEMPOS = (120.0, 128.0, 174.0)
SETTLED_BPM = 0.2                       # "settled": the error stays under this


def quantiles(values, unit: str) -> dict:
    a = np.abs(np.asarray(values, float))
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), f"p50_{unit}": round(float(np.percentile(a, 50)), 3),
            f"p99_{unit}": round(float(np.percentile(a, 99)), 3), f"max_{unit}": round(float(a.max()), 3)}


# -- Ableton Link -------------------------------------------------------------------------------------------------
def link(samples: int) -> dict:
    from link_check import Peer, phase_errors_ms, until
    from vj.control.link import LinkFollower

    peer = Peer()
    time.sleep(1.5)  # the peer's session the older (see link_check.py)
    follower = LinkFollower()
    try:
        if until(lambda: follower.peers >= 1 and follower.read().bpm > 0, 10.0) is None:
            return {"error": "the follower did not join the peer"}
        peer.say("play 1")
        results = []
        for bpm in LINK_TEMPOS:
            peer.say(f"tempo {bpm}")
            until(lambda: abs(follower.read().bpm - bpm) < 0.01, 2.0)
            time.sleep(0.3)  # the follower's clock measurements settle after a change
            errors = phase_errors_ms(peer, follower, samples)
            bpm_errors = [follower.read().bpm - bpm for _ in range(10)]
            results.append({"bpm": bpm, "phase_error": quantiles(errors, "ms"),
                            "mean_signed_ms": round(float(np.mean(errors)), 3),
                            "bpm_error_max": round(float(np.max(np.abs(bpm_errors))), 6)})
        return {"tempos": results}
    finally:
        follower.close()
        peer.close()


def live(runs: int) -> dict:
    """`vj live --headless` following a Link peer, `runs` times (tests/link_cue_check.py), in a temporary folder."""
    import tempfile

    from link_cue_check import main as follow

    command = [sys.executable, "-m", "vj.cli", "live", "--headless", "--duration", "60", "--set",
               "model.generator=tiny", "--set", "model.clip=tiny", "--set", "optimizer.cutouts=4", "--set",
               "display.width=320", "--set", "display.height=180", "--set", "display.max_fps=30"]
    changes: dict[str, list[float]] = {"to_128_s": [], "to_140_s": [], "stop_s": [], "start_s": []}
    phases: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            seen = follow(Path(folder), command)
        if not seen.get("following"):
            return {"error": "vj did not follow the peer", "vj_said": seen.get("vj_said", "")[-2000:]}
        for key, values in changes.items():
            values.append(seen[key] if seen[key] is not None else float("nan"))
        phases += seen["phase_ms_128"] + seen["phase_ms_140"]
    return {"runs": runs, **{key[:-2] + "_ms": [round(v * 1000, 1) for v in values] for key, values in changes.items()},
            "beat_error": quantiles(phases, "ms"), "beat_error_mean_signed_ms": round(float(np.mean(phases)), 3)}


# -- MIDI clock on a JACK server of the script's own --------------------------------------------------------------
def jack_server(name: str) -> subprocess.Popen:
    jackd = shutil.which("jackd")
    if jackd is None:
        raise SystemExit("jackd is not installed (scripts/system_deps.sh installs jackd2)")
    proc = subprocess.Popen([jackd, "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "32"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while time.time() < deadline and proc.poll() is None:  # up when it answers with its ports
        if subprocess.run(["jack_lsp"], capture_output=True).returncode == 0:
            return proc
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"JACK server {name} did not come up")


def midi_clock(beats: int, seed: int = 1) -> dict:
    name = f"vj-bench-tempo-{os.getpid()}"
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")  # this script's clients: its own server
    server = jack_server(name)
    import rtmidi

    from vj.control.clock_in import MidiClockIn

    out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK)
    out.open_virtual_port("vj-bench-clock")
    clock_in = MidiClockIn("bench-clock")
    rng = random.Random(seed)
    try:
        deadline = time.time() + 5
        while not clock_in.midi.ports and time.time() < deadline:
            time.sleep(0.05)
        if not clock_in.midi.ports:
            return {"error": "vj did not open the clock port"}
        out.send_message([START])
        steps, next_at = [], time.perf_counter() + 0.05
        for bpm in STEPS:
            period, readings = 60.0 / bpm / 24, []
            for n in range(beats * 24):
                time.sleep(max(0.0, next_at + rng.uniform(0.001, 0.002) - time.perf_counter()))
                out.send_message([CLOCK])
                next_at += period
                time.sleep(0.0015)  # through JACK (a period) and the follower's thread
                readings.append(((n + 1) / 24, clock_in.read().bpm - bpm))  # (beats since the change, error)
            errors = np.array([e for _, e in readings])
            unsettled = [b for b, e in readings if abs(e) >= SETTLED_BPM]
            settled_beats = unsettled[-1] + 1 / 24 if unsettled else 1 / 24
            steady = [e for b, e in readings if b >= 2.0]  # two beats after the change on
            steps.append({"bpm": bpm, "settled_beats": round(settled_beats, 3),
                          "settled_ms": round(settled_beats * 60000 / bpm, 1),
                          "error_from_2_beats": quantiles(steady, "bpm"),
                          "error_last_beat": quantiles(errors[-24:], "bpm")})
        return {"jitter_ms": [1, 2], "jack_period_frames": 32, "beats_per_step": beats, "steps": steps}
    finally:
        clock_in.close()
        out.close_port()
        out.delete()
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--beats", type=int, default=16, help="MIDI clock: beats at each tempo")
    parser.add_argument("--samples", type=int, default=100, help="Link: phase samples at each tempo")
    parser.add_argument("--live", type=int, default=0, help="runs of `vj live --headless` following Link (0: none)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)  # in the private namespace
    args = parser.parse_args()
    if not args.inside:
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            raise SystemExit("Link is measured in a private network namespace only: run as root, with unshare(1)")
        command = f"ip link set lo up && exec {sys.executable} {__file__} --inside --out {args.out} " \
                  f"--beats {args.beats} --samples {args.samples} --live {args.live}"
        raise SystemExit(subprocess.call(["unshare", "-n", "sh", "-c", command]))
    result = {"link": link(args.samples), "midi_clock": midi_clock(args.beats)}
    if args.live:
        result["link_live"] = live(args.live)
    result["machine"] = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                         "cores": os.cpu_count(), "date": datetime.now(timezone.utc).isoformat()}
    print(json.dumps(result, indent=1), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
