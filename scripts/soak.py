"""Soak: `vj live` for a long time under random OSC and MIDI traffic, recording, then checks what it left.

Starts what it needs (Xvfb when there is no display; a JACK dummy server of its own, under a name of its own, for
the audio input and a virtual MIDI port: a running JACK server is never used), runs `vj live`
with tiny random networks and `--record`, and sends random control traffic (valid and invalid OSC to its port,
MIDI CCs and notes from the virtual port) at --rate messages per second. Samples the show's memory (RSS) every
few seconds. At the end it sends /vj/quit and reports: RSS after warm-up and at the end, display pacing (the
show's own summary: p50/p99/worst frame time, stalls of 100 ms or more), messages sent and the warnings they
caused, and whether the recording decodes completely (PyAV) with the frames the recorder says it wrote.

    python scripts/soak.py --seconds 1800 --out out/bench/soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from headless import start_jack, start_xvfb, stop_jack

REPO = Path(__file__).resolve().parents[1]
PARAMS = ["hue_shift", "rgb_split", "feedback", "zoom_pulse", "kaleidoscope", "vignette", "motion_rotate",
          "motion_drift", "lr_scale", "audio_gain", "steps_per_frame"]
PROMPTS = ["a neon city", "deep ocean:1 | fog:0.5", "fire and ice", "liquid chrome", "", "a forest:2 | rain:-0.3"]
MAPPING = "\n".join([f'[[cc]]\ncontrol = {20 + i}\nparam = "{p}"\n' for i, p in enumerate(PARAMS)]
                    + ['[[note]]\nnote = 36\naction = "cue_next"\n', '[[note]]\nnote = 37\naction = "cue_prev"\n',
                       '[[note]]\nnote = 38\naction = "prompt"\nslot = 2\n', '[[note]]\nnote = 39\naction = "freeze"\n',
                       '[[note]]\nnote = 40\naction = "prompt"\nslot = 40\n'])  # slot 40 is empty: a warning
SHEET = "".join(f"[{m:02d}:{s:02d}.00]cue {i}: {PROMPTS[i % 4]}\n"
                for i, (m, s) in enumerate((t // 60, t % 60) for t in range(0, 3600, 20)))


def rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else None


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Traffic:
    """Random control traffic: about 60 % OSC (a tenth of it malformed), 40 % MIDI."""

    def __init__(self, osc_port: int, midi_out, rate: float, seed: int = 0):
        from pythonosc.udp_client import SimpleUDPClient

        self.osc = SimpleUDPClient("127.0.0.1", osc_port)
        self.midi, self.rate, self.rng = midi_out, rate, random.Random(seed)
        self.sent = {"osc": 0, "osc_bad": 0, "midi": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Traffic":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        due = time.perf_counter()
        while not self._stop.is_set():
            self._one()
            due += 1.0 / self.rate
            time.sleep(max(0.0, due - time.perf_counter()))

    def _one(self) -> None:
        rng = self.rng
        if rng.random() < 0.4:
            if rng.random() < 0.8:
                self.midi.send_message([0xB0, 20 + rng.randrange(len(PARAMS)), rng.randrange(128)])
            else:
                self.midi.send_message([0x90, rng.choice([36, 37, 38, 39, 40, 41]), 100])
            self.sent["midi"] += 1
            return
        roll = rng.random()
        if roll < 0.1:  # malformed: wrong types, unknown addresses, out-of-range values, NaN
            address, value = rng.choice([("/vj/param/hue_shift", "loud"), ("/vj/nowhere", 1.0),
                                         ("/vj/param/nope", 0.5), ("/vj/cue/goto", 9999), ("/vj/seek", float("nan")),
                                         ("/vj/prompt", 3.0), ("/vj/param/rgb_split", 1e9)])
            self.osc.send_message(address, value)
            self.sent["osc_bad"] += 1
        elif roll < 0.75:
            self.osc.send_message(f"/vj/param/{rng.choice(PARAMS)}", rng.random() * 2)
        elif roll < 0.85:
            self.osc.send_message("/vj/prompt", rng.choice(PROMPTS))
        elif roll < 0.95:
            self.osc.send_message(rng.choice(["/vj/cue/next", "/vj/cue/prev"]), [])
        else:
            self.osc.send_message(rng.choice(["/vj/freeze", "/vj/blackout"]), rng.randrange(2))
        self.sent["osc"] += 1


def check_recording(path: Path) -> dict:
    import av

    frames, last_pts = 0, None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                frames += 1
                last_pts = frame.pts
            seconds = float(last_pts * stream.time_base) if last_pts is not None else 0.0
    except Exception as e:  # noqa: BLE001  reported, not raised: the soak says what it found
        return {"playable": False, "error": f"{type(e).__name__}: {e}", "decoded_frames": frames}
    return {"playable": True, "decoded_frames": frames, "seconds": round(seconds, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1800.0, help="how long the show runs")
    parser.add_argument("--rate", type=float, default=200.0, help="control messages per second")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before the first RSS figure")
    parser.add_argument("--out", help="JSON file to write (also printed)")
    parser.add_argument("--keep", metavar="DIR", help="keep the recording and logs here")
    args = parser.parse_args()

    import rtmidi

    folder = Path(args.keep or tempfile.mkdtemp(prefix="vj-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "map.toml").write_text(MAPPING)
    (folder / "sheet.lrc").write_text(SHEET)
    xvfb = start_xvfb("1280x720")
    jack_name = f"vj-soak-{os.getpid()}"
    jackd = start_jack(jack_name)
    midi_out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK)
    midi_out.open_virtual_port("vj-soak-controller")
    port = free_port()
    record, log_path = folder / "soak.mp4", folder / "vj.log"
    command = [sys.executable, "-m", "vj.cli", "live", "--lrc", str(folder / "sheet.lrc"), "--record", str(record),
               "--duration", str(args.seconds + args.warmup + 120),
               "--set", "model.generator=tiny", "--set", "model.clip=tiny", "--set", "optimizer.cutouts=4",
               "--set", "display.width=480", "--set", "display.height=270", "--set", "display.max_fps=30",
               "--set", "audio.device=system", "--set", f"control.osc_port={port}",
               "--set", "control.midi_port=soak-controller", "--set", f"control.midi_mapping={folder / 'map.toml'}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "VJ_CACHE": str(REPO / ".pytest_cache" / "c")}
    result: dict = {"seconds": args.seconds, "rate": args.rate, "folder": str(folder)}
    with open(log_path, "w") as log_file:
        show = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.time() + 300
            while " fps " not in log_path.read_text() and time.time() < deadline and show.poll() is None:
                time.sleep(0.5)
            traffic = Traffic(port, midi_out, args.rate).start()
            began, samples = time.time(), []
            while time.time() - began < args.seconds and show.poll() is None:
                time.sleep(min(5.0, max(0.1, args.seconds - (time.time() - began))))
                samples.append((round(time.time() - began, 1), rss_mb(show.pid)))
            traffic.stop()
            result["messages"] = dict(traffic.sent)
            from pythonosc.udp_client import SimpleUDPClient

            SimpleUDPClient("127.0.0.1", port).send_message("/vj/quit", [])
            result["exit_code"] = show.wait(timeout=120)
        except subprocess.TimeoutExpired:
            show.send_signal(signal.SIGKILL)
            result["exit_code"] = "killed: did not quit within 120 s"
        finally:
            if show.poll() is None:
                show.kill()
            midi_out.delete()
            stop_jack(jackd, jack_name)
            if xvfb is not None:
                xvfb.terminate()
                xvfb.wait(timeout=10)
    text = log_path.read_text()
    settled = [mb for t, mb in samples if mb is not None and t >= args.warmup]
    result["rss_mb"] = {"after_warmup": settled[0] if settled else None, "end": settled[-1] if settled else None,
                        "max": max(settled) if settled else None, "samples": samples}
    display = re.search(r"display: (\d+) frames, frame time p50 ([\d.]+) ms, p99 ([\d.]+) ms, worst ([\d.]+) ms, "
                        r"(\d+) stall", text)
    if display:
        result["display"] = dict(zip(["frames", "p50_ms", "p99_ms", "worst_ms", "stalls_100ms"],
                                     [int(display[1]), float(display[2]), float(display[3]), float(display[4]),
                                      int(display[5])]))
    recorded = re.search(r"recorded (\d+) frames to .* \((\d+) dropped\)", text)
    result["recording"] = {"written_frames": int(recorded[1]) if recorded else None,
                           "dropped": int(recorded[2]) if recorded else None, **check_recording(record)}
    result["warnings_logged"] = text.count(" WARNING ")
    result["tracebacks"] = text.count("Traceback")
    print(json.dumps(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
