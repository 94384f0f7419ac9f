"""Video out, measured: render-to-receiver latency of the stream and of NDI (p50/p99), and what each output costs
the render thread (the one readback of the displayed frame, and each output's offer) and its own thread (encode,
send), at 720p and 1080p.

A frame is drawn offscreen (EGL) at 30 frames a second, read back, and offered to the outputs as the show does.
The stream: a PyAV receiver in this process decodes the UDP stream on loopback, and each frame's latency is the
time it was decoded minus the time it was displayed (its stamp: the same clock, one process). NDI: a cyndilib
receiver in a process of its own (`ndi_receiver.py`) stamps each frame as it arrives and reads the frame's number
from a row of black and white blocks drawn into the picture; latency = that stamp minus the time the frame was
displayed (perf_counter: one monotonic clock for both processes). The NDI part
runs only in a private network namespace (root and unshare: the script re-runs itself there, loopback up, NDI told
to look at 127.0.0.1), so NDI's discovery never leaves the machine.

    python scripts/bench_outputs.py --out out/bench/outputs.json [--seconds 10] [--sizes 1280x720,1920x1080]
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

FPS = 30
SOURCE = "vj-bench"                     # the NDI source's name
CODE_BITS = 16                          # a frame's number: 16 square blocks along the top (a white one before, a
                                        # black one after), each 1/32 of the width: NDI's codec keeps them exact


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


def code(number: int, block: int) -> bytes:
    """The strip of blocks that carries a frame's number (RGB rows of the texture)."""
    bits = [1] + [(number >> b) & 1 for b in range(CODE_BITS)] + [0]
    row = np.repeat(np.array(bits, np.uint8) * 255, block)
    return np.ascontiguousarray(np.broadcast_to(row[None, :, None], (block, row.size, 3))).tobytes()


def run(name: str, outputs: Outputs, seconds: float, size: tuple[int, int], port: int | None = None,
        ndi: NdiOutput | None = None) -> dict:
    """Draws and offers frames at FPS for `seconds`; the render thread's cost per frame, split; latency at the
    stream's receiver (`port`) or NDI's (`ndi`: the output whose receiver process is started here)."""
    width, height = size
    window = OffscreenWindow(width, height)
    texture = window.ctx.texture((width, height), 3)
    latencies: list[float] = []
    read_s, offer_s, shown_at, frames = [], [], [], int(seconds * FPS)
    # Smooth colour waves with a little grain, drifting: closer to a show's pictures than noise (which no encoder
    # keeps up with at this size on two cores) or a flat colour (which costs nothing).
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    grain = np.random.default_rng(0).normal(0, 6, (height, width, 3)).astype(np.float32)
    pictures = [np.clip(127 + 110 * np.stack([np.sin(x / (60 + 20 * c) + y / (90 - 15 * c) + i / FPS * (1 + c))
                                               for c in range(3)], -1) + grain, 0, 255).astype(np.uint8).tobytes()
                for i in range(FPS)]  # a second of them, made before the clock runs
    block = width // 32
    codes = [code(i, block) for i in range(frames)]
    del x, y, grain
    stop, receiver, listener = threading.Event(), None, None
    if ndi is not None:  # a receiver connected before the timed frames (a frame now and then opens the source)
        listener = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ndi_receiver.py")), SOURCE,
                                     str(seconds + 30)], stdout=subprocess.PIPE, text=True)
        texture.write(pictures[0])
        window.present(texture)
        first, waited = window.read(), time.perf_counter()
        while ndi.connections() == 0 and time.perf_counter() - waited < 15:
            outputs.offer(0.0, first)
            time.sleep(0.1)
        time.sleep(0.5)
    started = time.perf_counter() + 0.3
    if port is not None:
        receiver = threading.Thread(target=receive, args=(port, started, latencies, stop), daemon=True)
        receiver.start()
    time.sleep(max(0.0, started - time.perf_counter()))  # the receiver listens before the first frame
    for i in range(frames):
        due = started + i / FPS
        time.sleep(max(0.0, due - time.perf_counter()))
        texture.write(pictures[i % FPS])
        texture.write(codes[i], viewport=(0, height - block, (CODE_BITS + 2) * block, block))  # along the top
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
    result = {"outputs": name, "size": [width, height], "frames": frames,
              "interval": quantiles(list(np.diff(shown_at))),
              "readback": quantiles(read_s) if outputs else None, "offer": quantiles(offer_s) if outputs else None,
              "sent": {o.name: {"sent": o.sent, "dropped": o.dropped, "unsent": o.unsent,
                                "thread_ms_per_frame": round(1000 * o.send_s / max(1, o.sent), 2)}
                       for o in outputs.outputs}}
    outputs.close()
    if receiver is not None:
        receiver.join(timeout=5)
        result["latency"] = quantiles(latencies[FPS:])  # after the first second (the receiver's probe)
    if listener is not None:
        out, _ = listener.communicate(timeout=30)  # the frames stopped: it prints what arrived, and ends
        said = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": "the receiver said nothing"}
        arrived = [(n, at) for n, at in said.get("arrived", []) if n is not None and n < frames]
        result["ndi_latency"] = quantiles([at - shown_at[n] for n, at in arrived[FPS:]])
        result["ndi_received"] = {"frames": len(arrived), "unread": len(said.get("arrived", [])) - len(arrived),
                                  "ndi_total": said.get("frames_total"), "ndi_dropped": said.get("frames_dropped"),
                                  "error": said.get("error")}
    texture.release()
    window.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sizes", default="1280x720,1920x1080", help="WxH,WxH...")
    parser.add_argument("--both", action="store_true", help="also the stream and NDI at once")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)  # in the private namespace
    args = parser.parse_args()
    if not args.inside and os.geteuid() == 0 and shutil.which("unshare"):
        config = tempfile.mkdtemp()
        Path(config, "ndi-config.v1.json").write_text(json.dumps({"ndi": {"networks": {"ips": "127.0.0.1"}}}))
        command = f"ip link set lo up && exec {sys.executable} {__file__} --inside --out {args.out} " \
                  f"--seconds {args.seconds} --sizes {args.sizes}" + (" --both" if args.both else "")
        raise SystemExit(subprocess.call(["unshare", "-n", "sh", "-c", command],
                                         env={**os.environ, "NDI_CONFIG_DIR": config}))
    port, runs = 45000 + os.getpid() % 1000, []
    for size in [tuple(int(v) for v in text.split("x")) for text in args.sizes.split(",")]:
        runs.append(run("none", Outputs(), args.seconds, size))
        port += 1
        runs.append(run("stream", Outputs([StreamOutput(f"udp://127.0.0.1:{port}", *size, FPS, 6000).start()]),
                        args.seconds, size, port=port))
        if not args.inside:
            continue
        try:
            ndi = NdiOutput(SOURCE, *size, FPS).start()
        except ImportError as e:
            print(f"no NDI: {e}", file=sys.stderr)
            continue
        runs.append(run("ndi", Outputs([ndi]), args.seconds, size, ndi=ndi))
        if args.both:
            port += 1
            ndi = NdiOutput(SOURCE, *size, FPS).start()
            runs.append(run("stream+ndi", Outputs([
                StreamOutput(f"udp://127.0.0.1:{port}", *size, FPS, 6000).start(), ndi]), args.seconds, size,
                port=port, ndi=ndi))
    for result in runs:
        print(json.dumps(result), flush=True)
    machine = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
               "cores": os.cpu_count(), "date": datetime.now(timezone.utc).isoformat()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine, "fps": FPS, "results": runs}, indent=1))


if __name__ == "__main__":
    main()
