"""Video out, measured: render-to-receiver latency of the stream (p50/p99), and what each output costs the render
thread (the one readback of the displayed frame, and each output's offer) and its own thread (encode, send).

A 720p frame is drawn offscreen (EGL) at 30 frames a second, read back, and offered to the outputs as the show
does; a PyAV receiver in this process decodes the UDP stream on loopback, and each frame's latency is the time it
was decoded minus the time it was displayed (its stamp: the same clock, one process). The NDI part runs only in a
private network namespace (root and unshare: the script re-runs itself there, loopback up, NDI told to look at
127.0.0.1), so NDI's discovery never leaves the machine.

    python scripts/bench_outputs.py --out out/bench/outputs.json [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vj.render.outputs import NdiOutput, Outputs, StreamOutput  # noqa: E402
from vj.render.window import OffscreenWindow  # noqa: E402

WIDTH, HEIGHT, FPS = 1280, 720, 30


def quantiles(values: list[float]) -> dict:
    a = np.asarray(values) * 1000
    if not len(a):
        return {"n": 0}
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}


def receive(port: int, started: float, latencies: list[float], stop: threading.Event) -> None:
    # As a low-latency player receives (ffplay -fflags nobuffer -flags low_delay): no frame threads, whose
    # pipeline holds a frame per thread.
    container = av.open(f"udp://127.0.0.1:{port}", timeout=(10, 2), options={"probesize": "4096",
                                                                            "fflags": "nobuffer"})
    video = container.streams.video[0]
    video.codec_context.thread_type = "SLICE"
    try:
        for frame in container.decode(video):
            if frame.time >= 4.0:  # after the receiver's probe, which holds the first frames, has caught up
                latencies.append(time.perf_counter() - (started + float(frame.time)))
            if stop.is_set():
                break
    except av.error.ExitError:
        pass
    finally:
        container.close()


def run(name: str, outputs: Outputs, seconds: float, port: int | None = None) -> dict:
    """Draws and offers frames at FPS for `seconds`; the render thread's cost per frame, split."""
    window = OffscreenWindow(WIDTH, HEIGHT)
    texture = window.ctx.texture((WIDTH, HEIGHT), 3)
    latencies: list[float] = []
    read_s, offer_s, shown_at, frames = [], [], [], int(seconds * FPS)
    # Smooth colour waves with a little grain, drifting: closer to a show's pictures than noise (which no encoder
    # keeps up with at this size on two cores) or a flat colour (which costs nothing).
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    grain = np.random.default_rng(0).normal(0, 6, (HEIGHT, WIDTH, 3)).astype(np.float32)
    pictures = [np.clip(127 + 110 * np.stack([np.sin(x / (60 + 20 * c) + y / (90 - 15 * c) + i / FPS * (1 + c))
                                               for c in range(3)], -1) + grain, 0, 255).astype(np.uint8).tobytes()
                for i in range(FPS)]  # a second of them, made before the clock runs
    stop, receiver = threading.Event(), None
    started = time.perf_counter() + 0.3
    if port is not None:
        receiver = threading.Thread(target=receive, args=(port, started, latencies, stop), daemon=True)
        receiver.start()
    time.sleep(max(0.0, started - time.perf_counter()))  # the receiver listens before the first frame
    for i in range(frames):
        due = started + i / FPS
        time.sleep(max(0.0, due - time.perf_counter()))
        texture.write(pictures[i % FPS])
        window.present(texture)
        window.swap()
        at = time.perf_counter()
        shown_at.append(at)
        shown = window.read() if outputs else None
        read_at = time.perf_counter()
        if outputs:
            outputs.offer(at - started, shown)
        read_s.append(read_at - at)
        offer_s.append(time.perf_counter() - read_at)
    time.sleep(0.5)
    stop.set()
    result = {"outputs": name, "frames": frames, "interval": quantiles(list(np.diff(shown_at))),
              "readback": quantiles(read_s) if outputs else None, "offer": quantiles(offer_s) if outputs else None,
              "sent": {o.name: {"sent": o.sent, "dropped": o.dropped, "unsent": o.unsent,
                                "thread_ms_per_frame": round(1000 * o.send_s / max(1, o.sent), 2)}
                       for o in outputs.outputs}}
    outputs.close()
    if receiver is not None:
        receiver.join(timeout=5)
        result["latency"] = quantiles(latencies[FPS:])  # after the first second (the receiver's probe)
    texture.release()
    window.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)  # in the private namespace
    args = parser.parse_args()
    if not args.inside and os.geteuid() == 0 and shutil.which("unshare"):
        config = tempfile.mkdtemp()
        Path(config, "ndi-config.v1.json").write_text(json.dumps({"ndi": {"networks": {"ips": "127.0.0.1"}}}))
        command = f"ip link set lo up && exec {sys.executable} {__file__} --inside --out {args.out} " \
                  f"--seconds {args.seconds}"
        raise SystemExit(subprocess.call(["unshare", "-n", "sh", "-c", command],
                                         env={**os.environ, "NDI_CONFIG_DIR": config}))
    port = 45000 + os.getpid() % 1000
    runs = [run("none", Outputs(), args.seconds),
            run("stream", Outputs([StreamOutput(f"udp://127.0.0.1:{port}", WIDTH, HEIGHT, FPS, 6000).start()]),
                args.seconds, port)]
    if args.inside:
        try:
            runs.append(run("ndi", Outputs([NdiOutput("vj-bench", WIDTH, HEIGHT, FPS).start()]), args.seconds))
            runs.append(run("stream+ndi", Outputs([
                StreamOutput(f"udp://127.0.0.1:{port + 1}", WIDTH, HEIGHT, FPS, 6000).start(),
                NdiOutput("vj-bench", WIDTH, HEIGHT, FPS).start()]), args.seconds, port + 1))
        except ImportError as e:
            print(f"no NDI: {e}", file=sys.stderr)
    for result in runs:
        print(json.dumps(result), flush=True)
    machine = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
               "cores": os.cpu_count(), "date": datetime.now(timezone.utc).isoformat()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine, "size": [WIDTH, HEIGHT], "fps": FPS, "results": runs},
                                         indent=1))


if __name__ == "__main__":
    main()
