"""Recording a show: the frames as displayed, with their real times, and a log of every control change.

The render loop hands each displayed frame to `ShowRecorder.offer` and never waits: frames go through a small
bounded queue to an encoder thread, and if the encoder falls behind a frame is dropped and counted, never
buffered without limit. Timestamps are the times since the show began that the frames were displayed at
(milliseconds, not the show clock, which seeks move), so the video is variable-rate and plays back in real time
whatever the display managed. Beside it, the control log
(`vj.control.showlog`, OUT.controls.jsonl): every OSC, MIDI and key change with its show time, and each cue change,
from which `vj replay` re-renders the show.
"""

from __future__ import annotations

import logging
import queue
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vj.control.showlog import ControlLogWriter

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)           # milliseconds


class ShowRecorder:
    def __init__(self, path: str | Path, width: int, height: int, header: dict, crf: int = 20, queue_frames: int = 8):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width - width % 2, height - height % 2  # yuv420p needs even sizes
        self.crf = crf
        self.frames = 0
        self.dropped = 0
        self.control_path = self.path.with_suffix(".controls.jsonl")
        self._control = ControlLogWriter(self.control_path, header)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._last_pts = -1
        self._thread = threading.Thread(target=self._encode, name="vj-recorder", daemon=True)
        self._thread.start()

    def offer(self, wall: float, frame: np.ndarray) -> None:
        """A displayed frame [H, W, 3] uint8 shown `wall` seconds into the show; dropped (and counted) if the encoder
        is behind or the window has become smaller than the recording."""
        if frame.shape[0] < self.height or frame.shape[1] < self.width:
            self.dropped += 1
            return
        try:
            self._queue.put_nowait((wall, frame))
        except queue.Full:
            self.dropped += 1

    def control(self, wall: float, show_time: float, source: str, what: str, value) -> None:
        self._control.write(wall, show_time, source, what, value)

    def clock(self, wall: float, show_time: float, running: bool) -> None:
        self._control.clock(wall, show_time, running)

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
                wall, frame = item
                pts = int(round(wall * 1000))
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

    def close(self, wall: float, show_time: float) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)
        self._control.close(wall, show_time)
        log.info("recorded %d frames to %s (%d dropped), controls to %s", self.frames, self.path, self.dropped,
                 self.control_path)
