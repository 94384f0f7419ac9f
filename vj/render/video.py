"""MP4 out through PyAV: H.264 video frames, with the audio encoded as AAC alongside, interleaved as it goes; and the
check that a video path can be written, made before anything slow begins."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np

from vj.errors import UserError

AAC_FRAME = 1024                        # samples per AAC frame
# The containers vj writes (each holds H.264 and AAC, and can be written as it goes: vj.render.recorder), by the
# file's extension: FFmpeg's guess from a name is not asked, so a name with none is refused before, not after, work.
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


class VideoPathError(UserError):
    """A video output vj could not write (its extension, its folder, its permissions)."""


def container_format(path: str | Path) -> str:
    """The FFmpeg muxer for `path`, from its extension; a name without one vj writes is refused."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CONTAINERS:
        kinds = ", ".join(CONTAINERS)
        example = f" (e.g. {path.with_suffix('.mp4') if suffix else path.with_name(path.name + '.mp4')})" \
            if path.name else ""
        raise VideoPathError(f"{path}: vj writes {kinds} video; end the file's name in one of them{example}")
    return CONTAINERS[suffix]


def prepare_video_path(path: str | Path, beside: Iterable[str | Path] = ()) -> Path | None:
    """Refuses, in one line, a video file vj could not write: an extension it does not write, a folder where the
    file should be, a folder that cannot be made or written, a file that cannot be written (`beside`: files written
    next to it, checked as well). A missing folder is made; returns it (None: it was there). Called before anything
    slow (the networks) starts, so that a mistake costs a second, not a show."""
    path = Path(path)
    files = [path, *map(Path, beside)]
    for file in files:
        if file.is_dir():
            raise VideoPathError(f"{file} is a folder: name a file in it (e.g. {file / 'show.mp4'})")
    container_format(path)
    folder = path.parent
    made = None
    if not folder.is_dir():
        there = next(p for p in (folder, *folder.parents) if p.exists())  # what mkdir would build on
        if not there.is_dir():
            raise VideoPathError(f"cannot make the folder {folder} for {path.name}: {there} is a file")
        try:
            folder.mkdir(parents=True)
        except OSError as e:
            raise VideoPathError(f"cannot make the folder {folder} for {path.name}: {e.strerror or e}") from None
        made = folder
    for file in files:
        _try_writing(file)
    return made


def _try_writing(path: Path) -> None:
    """Opens `path` for writing as the muxer will (a file made for the try is removed again, one that was there is
    left as it was): a read-only folder, file or disk is refused now, not when the first frame is written."""
    existed = path.exists()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    except OSError as e:
        raise VideoPathError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    if not existed:
        path.unlink(missing_ok=True)


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
        self.container = av.open(str(self.path), mode="w", format=container_format(self.path))
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
