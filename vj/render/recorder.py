"""Recording a show: the frames as displayed, with their real times, and a log of every control change.

The render loop hands each displayed frame to `ShowRecorder.offer` and never waits: frames go through a small
bounded queue to an encoder thread, and if the encoder falls behind a frame is dropped and counted, never
buffered without limit. Timestamps are the show times the frames were displayed at (milliseconds), so the video
is variable-rate and plays back in real time whatever the display managed. The control log is JSON lines: every
OSC, MIDI and key change with its show time, and each cue change.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)           # milliseconds


class ShowRecorder:
    def __init__(self, path: str | Path, width: int, height: int, crf: int = 20, queue_frames: int = 8):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width - width % 2, height - height % 2  # yuv420p needs even sizes
        self.crf = crf
        self.frames = 0
        self.dropped = 0
        self.control_path = self.path.with_suffix(".controls.jsonl")
        self._control = open(self.control_path, "w", encoding="utf-8")
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._last_pts = -1
        self._thread = threading.Thread(target=self._encode, name="vj-recorder", daemon=True)
        self._thread.start()

    def offer(self, show_time: float, frame: np.ndarray) -> None:
        """A displayed frame [H, W, 3] uint8 at show_time seconds; dropped (and counted) if the encoder is behind
        or the window has become smaller than the recording."""
        if frame.shape[0] < self.height or frame.shape[1] < self.width:
            self.dropped += 1
            return
        try:
            self._queue.put_nowait((show_time, frame))
        except queue.Full:
            self.dropped += 1

    def control(self, show_time: float, source: str, what: str, value) -> None:
        self._control.write(json.dumps({"t": round(show_time, 4), "source": source, "what": what,
                                        "value": value}, default=str) + "\n")

    def _encode(self) -> None:
        container = av.open(str(self.path), mode="w")
        stream = container.add_stream("libx264", rate=60)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                show_time, frame = item
                pts = int(round(show_time * 1000))
                if pts <= self._last_pts:  # two frames in one millisecond: keep the first
                    continue
                self._last_pts = pts
                video = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[: self.height, : self.width]),
                                                   format="rgb24")
                video.pts, video.time_base = pts, TIME_BASE
                container.mux(stream.encode(video))
                self.frames += 1
            container.mux(stream.encode(None))
        finally:
            container.close()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)
        self._control.close()
        log.info("recorded %d frames to %s (%d dropped), controls to %s", self.frames, self.path, self.dropped,
                 self.control_path)
