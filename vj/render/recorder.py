"""Recording a show: the frames as displayed, with their real times, and the sound the show heard.

The render loop hands each displayed frame to `ShowRecorder.offer` and never waits: frames go through a small
bounded queue to an encoder thread, and if the encoder falls behind a frame is dropped and counted, never
buffered without limit. Timestamps are the times since the show began that the frames were displayed at
(milliseconds, not the show clock, which seeks move), so the video is variable-rate and plays back in real time
whatever the display managed. The sound is in it too (AAC): what the show heard, read from the audio ring from
the moment the show began (live: the input; rehearse: the track as played), timed by its samples, so replay can
take its audio from the recording. The show writes the control log beside it
(`vj.control.showlog`, OUT.controls.jsonl): every OSC, MIDI and key change with its show time, and each cue change,
from which `vj replay` re-renders the show.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import av
import numpy as np

from vj.audio.stream import RingBuffer
from vj.clock import Clock
from vj.control.showlog import ControlLogWriter
from vj.control.state import ShowState
from vj.render.video import prepare_video_path

if TYPE_CHECKING:
    from vj.engine.worker import PublishedFrame

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)           # milliseconds
AAC_FRAME = 1024                        # samples per AAC frame
SOUND_AHEAD_S = 0.25                    # how far the sound may be encoded past the newest frame before the end


def controls_path(path: str | Path) -> Path:
    """The control log written beside the recording `path`."""
    return Path(path).with_suffix(".controls.jsonl")


def prepare_recording_path(path: str | Path) -> Path | None:
    """`prepare_video_path` for a recording and its control log: refused in one line before the show starts."""
    return prepare_video_path(path, [controls_path(path)])


class ShowRecorder:
    def __init__(self, path: str | Path, width: int, height: int, crf: int = 20, queue_frames: int = 8,
                 sample_rate: int | None = None):  # the sound's rate (`hear` says where from); None: no sound
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width - width % 2, height - height % 2  # yuv420p needs even sizes
        self.crf = crf
        self.frames = 0
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._last_pts = -1
        self.sample_rate = sample_rate
        self._last_frame: np.ndarray | None = None  # the last frame offered
        self._audio: RingBuffer | None = None  # this recorder's reader of the show's audio ring
        self._audio_start = 0           # ring position at the show's start: audio time 0
        self._audio_end: int | None = None  # ring position at the show's end (set by close)
        # Wall time of the newest frame offered: the sound is encoded no further than just past it, so sound the
        # ring still takes in while the show shuts down (a rehearsal's track plays on until stopped) is not kept.
        self._newest_wall = 0.0
        self._thread = threading.Thread(target=self._encode, name="vj-recorder", daemon=True)
        self._thread.start()

    def offer(self, wall: float, frame: np.ndarray) -> None:
        """A displayed frame [H, W, 3] uint8 shown `wall` seconds into the show; dropped (and counted) if the encoder
        is behind or the window has become smaller than the recording."""
        self._newest_wall = max(self._newest_wall, wall)
        if frame.shape[0] < self.height or frame.shape[1] < self.width:
            self.dropped += 1
            return
        try:
            self._queue.put_nowait((wall, frame))
            self._last_frame = frame
        except queue.Full:
            self.dropped += 1

    def hear(self, ring: RingBuffer) -> None:
        """Records what goes into `ring` from now on (call when the show begins: now is time 0 of the video)."""
        reader = ring.reader()
        self._audio_start = reader.read_pos
        self._audio = reader

    def _encode(self) -> None:
        container = av.open(str(self.path), mode="w")
        stream = container.add_stream("libx264", rate=60)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        sound = None
        if self.sample_rate:  # every stream before the first packet: the header is written then
            sound = container.add_stream("aac", rate=self.sample_rate)
            sound.layout, sound.bit_rate = "mono", 128000
        try:
            while True:
                if sound is not None and self._audio is not None:
                    self._encode_audio(container, sound)
                try:
                    item = self._queue.get(timeout=0.05)  # the audio drains even while no frame comes
                except queue.Empty:
                    continue
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
            if sound is not None and self._audio is not None:
                self._encode_audio(container, sound, final=True)
                container.mux(sound.encode(None))
        finally:
            container.close()

    def _encode_audio(self, container, sound, final: bool = False) -> None:
        """Encodes whole AAC frames of what the ring holds (at the end: the rest, padded); each frame's time is its
        place in the ring since the show began, so a gap (the encoder fell behind the ring) stays a gap."""
        reader, rate = self._audio, self.sample_rate
        while True:
            end = self._audio_end  # the show's end, once close has said it; until then just past the newest frame
            if end is None:
                end = self._audio_start + int((self._newest_wall + SOUND_AHEAD_S) * rate)
            if reader.read_pos + AAC_FRAME > end:
                samples = None
            else:
                samples = reader.read(AAC_FRAME)
            if samples is not None:
                pts = reader.read_pos - AAC_FRAME - self._audio_start
            else:
                left = min(reader.written, end) - reader.read_pos
                if not final or left <= 0:
                    return
                samples = np.pad(reader.read(left), (0, AAC_FRAME - left))  # the encoder wants whole frames
                pts = reader.read_pos - left - self._audio_start
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32)[None, :], format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, max(0, pts), Fraction(1, rate)
            container.mux(sound.encode(frame))

    def close(self, wall: float) -> None:
        """Ends the recording `wall` seconds into the show (where its sound ends too)."""
        if self._audio is not None:  # the sound ends with the show, not when the encoder has caught up
            self._audio_end = self._audio_start + int(wall * self.sample_rate)
        if self._last_frame is not None:  # the last picture stays on until the show ends, as it did on screen
            self._queue.put((wall, self._last_frame))
        self._queue.put(None)
        self._thread.join(timeout=60)
        if self._audio is not None:
            self._audio.release()  # its views of a shared ring must go before the ring's memory can close
        log.info("recorded %d frames to %s (%d dropped)", self.frames, self.path, self.dropped)


class Recording:
    """`--record OUT.mp4`: the displayed picture and the sound (`ShowRecorder`) and, beside them, the control log
    (`OUT.controls.jsonl`): one thing for the show to feed, frame by frame."""

    def __init__(self, path: str | Path, size: tuple[int, int], crf: int, sound: tuple[RingBuffer, int] | None,
                 header: dict):
        self.video = ShowRecorder(path, *size, crf=crf, sample_rate=sound[1] if sound else None)
        self.log = ControlLogWriter(controls_path(path), {**header, "recording": Path(path).name})
        self._ring = sound[0] if sound else None

    def begin(self, clock: Clock) -> None:
        """The show starts: the log's time origin, and the sound from here on."""
        self.log.begin(time.time(), clock.now(), clock.running)
        if self._ring is not None:
            self.video.hear(self._ring)

    def frame(self, wall: float, pixels, state: ShowState, clock: Clock, frame: PublishedFrame | None,
              tempo_source: str, cue_starts: Mapping[int, float]) -> None:
        """A displayed frame at `wall` seconds into the show, and what changed since the last one (`cue_starts`:
        where the show placed its held `{q}` cues)."""
        self.video.offer(wall, pixels)
        self.log.follow(state, clock.now())
        self.log.tempo(wall, clock.now(), tempo_source)
        self.log.cue_starts(wall, clock.now(), cue_starts)
        if frame is not None:  # at the show time its frame was planned for
            self.log.cue(wall, frame.show_time, frame.cue)

    def close(self, ended_at: float, state: ShowState, clock: Clock) -> None:
        self.log.follow(state, clock.now())  # what ended the show, too
        self.log.close(ended_at, clock.now())
        self.video.close(ended_at)

