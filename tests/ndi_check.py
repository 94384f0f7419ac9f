"""NDI out, checked beside the tests in a process of their own: vj's `NdiOutput` sends a 720p test pattern at 30
frames a second, and a cyndilib receiver in this process (another process than the sender: cyndilib's `receive`
holds the GIL while it waits) finds it, connects, and reports what arrived as JSON.

Run it inside a private network namespace with only loopback up (`unshare -n`, then `ip link set lo up`), with
NDI_CONFIG_DIR naming an NDI config that lists 127.0.0.1 as the address to look for sources at: NDI's discovery
multicasts, which must reach no other machine (and loopback carries no multicast).

    python tests/ndi_check.py            # the receiver; it starts the sender (`ndi_check.py send`)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SOURCE = "vj-ndi-check"
WIDTH, HEIGHT, FPS, FRAMES = 1280, 720, 30, 90
BARS = np.array([[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0], [255, 0, 255], [255, 0, 0],
                 [0, 0, 255], [0, 0, 0]], np.uint8)  # colour bars, left to right


def pattern() -> np.ndarray:
    """[HEIGHT, WIDTH, 3] uint8: eight vertical bars of BARS."""
    return np.ascontiguousarray(np.repeat(BARS, WIDTH // len(BARS), axis=0)[None].repeat(HEIGHT, axis=0))


def send() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vj.render.outputs import NdiOutput

    output = NdiOutput(SOURCE, WIDTH, HEIGHT, FPS).start()
    frame, started = pattern(), time.perf_counter()
    while output.connections() == 0:  # a frame now and then opens the source; the timed frames wait for a receiver
        output.offer(time.perf_counter() - started, frame)
        time.sleep(0.1)
        if time.perf_counter() - started > 15:
            raise SystemExit("no receiver connected within 15 s")
    before, offer_s = output.sent + output.dropped + output.unsent, []
    time.sleep(0.2)  # the last frame before the connection is out of the queue
    for i in range(FRAMES):
        at = time.perf_counter()
        output.offer(at - started, frame)
        offer_s.append(time.perf_counter() - at)
        time.sleep(max(0.0, 1 / FPS - (time.perf_counter() - at)))
    time.sleep(0.5)
    output.close()
    return {"sent": output.sent, "dropped": output.dropped, "unsent": output.unsent, "before": before,
            "offer_ms_max": 1000 * max(offer_s), "send_ms_mean": 1000 * output.send_s / max(1, output.sent)}


def connect(name: str, timeout_s: float = 15.0):
    """Waits up to timeout_s for the NDI source `name` and connects a cyndilib receiver to it (RGBX, full bandwidth):
    (finder, receiver, video frame), receiver and frame None if the source did not appear. The caller closes the
    finder. (`scripts/ndi_receiver.py`, the benchmark's receiver, connects with this too.)"""
    from cyndilib import Finder, Receiver, RecvBandwidth, RecvColorFormat, VideoRecvFrame

    finder = Finder()
    finder.open()
    deadline, source = time.time() + timeout_s, None
    while source is None and time.time() < deadline:
        finder.wait_for_sources(0.5)
        source = next((s for s in finder if s.stream_name == name), None)
    if source is None:
        return finder, None, None
    receiver = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
    video = VideoRecvFrame()
    receiver.set_video_frame(video)
    receiver.set_source(source)
    return finder, receiver, video


def receive() -> dict:
    from cyndilib.receiver import ReceiveFrameType

    sender = subprocess.Popen([sys.executable, __file__, "send"], stdout=subprocess.PIPE, text=True)
    finder, receiver, video = connect(SOURCE)
    if receiver is None:
        sender.kill()
        return {"error": f"source {SOURCE!r} not found; sources: {finder.get_source_names()}"}
    captured, pixels, data = 0, None, None
    while sender.poll() is None:
        receiver.receive(ReceiveFrameType.recv_video, 100)
        while video.get_buffer_depth():
            if data is None or data.size != video.get_buffer_size():
                data = np.empty(video.get_buffer_size(), np.uint8)
            video.fill_p_data(data)
            captured += 1
            width, height = video.get_resolution()
            picture = data.reshape(height, width, 4)
            pixels = [picture[height // 2, (2 * i + 1) * width // 16, :3].tolist() for i in range(len(BARS))]
    stats = receiver.get_performance_data()["video"]
    out, _ = sender.communicate(timeout=10)
    finder.close()
    return {"sender": json.loads(out.strip().splitlines()[-1]) if sender.returncode == 0 else out,
            "resolution": list(video.get_resolution()), "frames_total": stats["frames_total"],
            "frames_dropped": stats["frames_dropped"], "captured": captured, "bars": pixels,
            "expected": BARS.tolist()}


if __name__ == "__main__":
    print(json.dumps(send() if sys.argv[1:] == ["send"] else receive()), flush=True)
