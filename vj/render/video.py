"""MP4 out through PyAV: H.264 video frames, with the audio encoded as AAC alongside, interleaved as it goes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AAC_FRAME = 1024                        # samples per AAC frame


class VideoWriter:
    def __init__(
        self,
        path: str | Path,
        width: int,                     # pixels (even: yuv420p needs it)
        height: int,
        fps: int,
        audio: np.ndarray | None = None,  # [n, channels] float32 to mux, or None
        sample_rate: int = 48000,
        crf: int = 20,                  # H.264 quality
        audio_bitrate: int = 192000,
    ):
        if width % 2 or height % 2:
            raise ValueError(f"video size must be even for H.264 yuv420p, got {width}x{height}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path), mode="w")
        self.video = self.container.add_stream("libx264", rate=Fraction(fps))
        self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
        self.video.options = {"crf": str(crf), "preset": "veryfast"}
        self.fps = fps
        self.frames = 0
        self.audio_stream = None
        if audio is not None:
            channels = min(audio.shape[1], 2)
            self.audio = np.ascontiguousarray(audio[:, :channels].T, dtype=np.float32)  # [channels, n]
            self.audio_stream = self.container.add_stream("aac", rate=sample_rate)
            self.audio_stream.layout = "stereo" if channels == 2 else "mono"
            self.audio_stream.bit_rate = audio_bitrate
            self.sample_rate = sample_rate
            self.audio_pos = 0

    def write(self, frame: np.ndarray) -> None:
        """frame [H, W, 3] uint8, top row first; the audio up to the end of this frame is muxed with it."""
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames
        video_frame.time_base = Fraction(1, self.fps)
        self.container.mux(self.video.encode(video_frame))
        self.frames += 1
        self._write_audio_until(self.frames / self.fps)

    def _write_audio_until(self, seconds: float | None) -> None:
        if self.audio_stream is None:
            return
        total = self.audio.shape[1]
        end = total if seconds is None else min(total, int(seconds * self.sample_rate))
        while self.audio_pos < end and (seconds is None or self.audio_pos + AAC_FRAME <= end):
            chunk = self.audio[:, self.audio_pos:self.audio_pos + AAC_FRAME]
            if chunk.shape[1] < AAC_FRAME:  # the encoder wants whole frames; pad the last one with silence
                chunk = np.pad(chunk, ((0, 0), (0, AAC_FRAME - chunk.shape[1])))
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=self.audio_stream.layout.name)
            frame.sample_rate = self.sample_rate
            frame.pts = self.audio_pos
            frame.time_base = Fraction(1, self.sample_rate)
            self.container.mux(self.audio_stream.encode(frame))
            self.audio_pos += AAC_FRAME

    def cut_audio(self) -> None:
        """Ends the audio with the last frame written (an interrupted render), not at the end of the track."""
        if self.audio_stream is not None:
            self.audio = self.audio[:, : int(self.frames / self.fps * self.sample_rate)]

    def close(self) -> None:
        self.container.mux(self.video.encode(None))
        if self.audio_stream is not None:
            self._write_audio_until(None)
            self.container.mux(self.audio_stream.encode(None))
        self.container.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
