"""The NDI receiver of `bench_outputs.py`, in a process of its own: finds the source SOURCE, connects, and prints
[frame number, perf_counter when it arrived] for each frame as JSON when the frames stop for 3 s (or after
SECONDS). The number is read from the strip of blocks the benchmark draws along the top of each picture.

It imports numpy, cyndilib and the standard library only (its connection: `tests/ndi_check.py`'s `connect`,
which imports no more). cyndilib's `receive` holds the interpreter lock while it waits for a frame;
with anything else in the process that wants the lock now and then (PyAV's import alone, or a thread waiting on a
pipe), frames came out of it 100 ms apart, a few at a time, and every latency looked that long.

    python scripts/ndi_receiver.py SOURCE SECONDS
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from cyndilib.receiver import ReceiveFrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ndi_check import connect  # noqa: E402  (tests/ is not a package)

CODE_BITS = 16                          # as bench_outputs.py draws them: a white block, 16 bits, a black block


def read_code(picture: np.ndarray) -> int | None:
    """The number in a received picture [H, W, >= 3] (top row first), None if its strip is not there."""
    block = picture.shape[1] // 32
    centres = picture[block // 2, block // 2::block, :3].mean(axis=1)[:CODE_BITS + 2] > 127
    if len(centres) < CODE_BITS + 2 or not centres[0] or centres[-1]:
        return None
    return sum(1 << b for b in range(CODE_BITS) if centres[1 + b])


def main(name: str, seconds: float) -> dict:
    finder, receiver, video = connect(name)
    if receiver is None:
        finder.close()
        return {"error": f"source {name!r} not found"}
    arrived, data, ends, last = [], None, time.perf_counter() + seconds, time.perf_counter()
    while time.perf_counter() < ends and (not arrived or time.perf_counter() - last < 3.0):
        receiver.receive(ReceiveFrameType.recv_video, 100)
        while video.get_buffer_depth():
            at = last = time.perf_counter()
            if data is None or data.size != video.get_buffer_size():
                data = np.empty(video.get_buffer_size(), np.uint8)
            video.fill_p_data(data)
            width, height = video.get_resolution()
            arrived.append((read_code(data.reshape(height, width, 4)), at))
    stats = receiver.get_performance_data()["video"]
    finder.close()
    return {"arrived": arrived, "frames_total": stats["frames_total"], "frames_dropped": stats["frames_dropped"]}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], float(sys.argv[2]))), flush=True)
