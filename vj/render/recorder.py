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

A crash or a full disk loses seconds, not the show: the file is written as it goes (a key frame each second; MP4
and MOV in fragments that start at them, Matroska in clusters; the muxer's buffer flushed after each packet), so a
`kill -9` leaves a file that plays up to a second or two before it, and FFmpeg's hybrid mode makes it an ordinary
MP4 when it is closed. An encoder that fails (the disk full, the folder gone) stops the recording, not the show: the
reason is logged once and kept in `trouble` for the HUD, frames offered from then on are let go, and closing does
not wait for a thread that has ended. The control log, on the same disk, stops the same way (`Recording`).
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
from vj.render.video import VideoPathError, container_format, prepare_video_path

if TYPE_CHECKING:
    from vj.engine.worker import PublishedFrame

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)           # milliseconds
AAC_FRAME = 1024                        # samples per AAC frame
SOUND_AHEAD_S = 0.25                    # how far the sound may be encoded past the newest frame before the end
KEYFRAME_S = 1.0                        # seconds between forced key frames (and fragments): what a crash loses
# FFmpeg 7.1 (libavformat 61.7) writes a fragmented MP4 that it makes an ordinary one on close ("hybrid"); before
# it, the file stays fragmented (plays everywhere that matters, but some tools do not count its frames).
HYBRID = av.library_versions["libavformat"] >= (61, 7)
AS_IT_GOES = {  # muxer options that write the file as it goes, by muxer
    "mp4": {"movflags": "frag_keyframe+hybrid_fragmented" if HYBRID else "frag_keyframe+empty_moov+default_base_moof"},
    "matroska": {},                     # a cluster starts at each key frame anyway
}
AS_IT_GOES["mov"] = AS_IT_GOES["mp4"]


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
        self.trouble: str | None = None  # why the recording stopped before the show did (None: it has not)
        self._last_key = -KEYFRAME_S     # wall time of the last forced key frame
        muxer = container_format(self.path)
        try:  # the muxer's buffer flushed after every packet: a fragment is in the file once it is written
            self._container = av.open(str(self.path), mode="w", format=muxer,
                                      options={**AS_IT_GOES[muxer], "flush_packets": "1"})
        except OSError as e:  # PyAV's errors are OSErrors
            raise VideoPathError(f"cannot record to {self.path}: {e.strerror or e}") from None
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
        if self.trouble:  # the recording has stopped; the show goes on
            return
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
        """The encoder thread: a failure ends the recording (said once, kept in `trouble`), never the show."""
        try:
            self._encode_until_closed(self._container)
        except Exception as e:  # the disk full, the folder gone: anything PyAV or the OS raises
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
            self.trouble = f"recording stopped at {self._newest_wall:.0f} s: {reason}"
            log.error("%s; the show goes on, and what %s holds plays", self.trouble, self.path)
        finally:
            try:
                self._container.close()  # an ordinary MP4 now (hybrid), or, after a failure, still its fragments
            except Exception as e:  # a full disk refuses the index too: the fragments stay readable without it
                log.debug("closing %s: %s", self.path, e)

    def _encode_until_closed(self, container) -> None:
        stream = container.add_stream("libx264", rate=60)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        sound = None
        if self.sample_rate:  # every stream before the first packet: the header is written then
            sound = container.add_stream("aac", rate=self.sample_rate)
            sound.layout, sound.bit_rate = "mono", 128000
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
            if wall - self._last_key >= KEYFRAME_S:  # a key frame, so a fragment, each second of the show
                video.pict_type = av.video.frame.PictureType.I
                self._last_key = wall
            container.mux(stream.encode(video))
            self.frames += 1
        container.mux(stream.encode(None))
        if sound is not None and self._audio is not None:
            self._encode_audio(container, sound, final=True)
            container.mux(sound.encode(None))

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
            self._hand_over((wall, self._last_frame))
        self._hand_over(None)
        self._thread.join(timeout=60)
        if self._audio is not None:
            self._audio.release()  # its views of a shared ring must go before the ring's memory can close
        if self.trouble:
            log.warning("%s: %s holds what was written before", self.trouble, self.path)
        else:
            log.info("recorded %d frames to %s (%d dropped)", self.frames, self.path, self.dropped)

    def _hand_over(self, item) -> None:
        """Queues `item` for the encoder, waiting for room only while the encoder is there to make it."""
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


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
        if self._ring is not None:
            self.video.hear(self._ring)
        self.log.begin(time.time(), clock.now(), clock.running)

    def warnings(self) -> list[str]:
        """For the HUD: why the recording or its control log stopped before the show, if one has (the log's writer
        thread says a failed write, a full disk, in its `trouble`)."""
        return [trouble for trouble in (self.video.trouble, self.log.trouble) if trouble]

    def clock(self, wall: float, show_time: float, running: bool) -> None:
        """The show clock was set (a seek, a cue jump, the start cue)."""
        self.log.clock(wall, show_time, running)

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

