"""Audio files in and out: decode to float32 samples, and frame-exact causal features for offline renders."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import numpy as np

from vj.audio.features import AudioFeatures, FeatureExtractor, SILENCE
from vj.errors import UserError

log = logging.getLogger(__name__)


class AudioFileError(UserError):
    """An audio file that cannot be read, named with the reason."""


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Returns (samples [n, channels] float32 in -1..1, sample rate). wav/flac/ogg/mp3 via libsndfile, else PyAV."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such audio file")
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return samples, int(rate)
    except (RuntimeError, soundfile.LibsndfileError):
        pass
    return _read_with_pyav(path)


def _read_with_pyav(path: Path) -> tuple[np.ndarray, int]:
    """A file cut short (a recording whose show crashed, or whose disk filled) is read up to the damage, said in
    a warning; one with nothing readable is an error."""
    import av

    chunks = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="stereo" if stream.channels > 1 else "mono")
            channels = stream.channels if stream.channels > 1 else 1
            rate = stream.rate
            try:
                for frame in container.decode(stream):
                    chunks.extend(np.asarray(f.to_ndarray()).reshape(-1, channels) for f in resampler.resample(frame))
            except av.error.FFmpegError as e:
                if not chunks:
                    raise
                seconds = sum(chunk.shape[0] for chunk in chunks) / rate
                log.warning("%s is damaged after %.2f s (cut short?): its audio up to there is used (%s)", path,
                            seconds, e)
    except (av.error.FFmpegError, IndexError) as e:
        raise AudioFileError(f"{path}: not a readable audio file: {e}") from None
    if not chunks:
        raise AudioFileError(f"{path}: contains no audio")
    return np.concatenate(chunks).astype(np.float32), int(rate)


def features_at_frames(samples: np.ndarray, sample_rate: int, fps: float, extractor: FeatureExtractor,
                       n_frames: int) -> Iterator[AudioFeatures]:
    """Features for frame i at t = i / fps: the newest block that ends at or before t (nothing from the future)."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    hop = extractor.block_size
    latest, pos = SILENCE, 0
    for i in range(n_frames):
        end = int(np.floor(i / fps * sample_rate))
        while pos + hop <= min(end, mono.shape[0]):
            latest = extractor(mono[pos:pos + hop])
            pos += hop
        yield latest
