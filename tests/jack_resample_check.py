"""Run by test_audio_jack.py: tracks at other rates than the JACK server's 48 kHz are rehearsed and heard. A
44.1 kHz stereo tone and an 8 kHz mono one are played; jack_rec, a JACK client of its own, records what reaches
the playback's ports, and the check says at what pitch, how loud on each side, and how fast the show clock ran. A
playback whose device does not exist is tried too (its child fails to open, as one did at a rate the server would
not take). Prints one JSON line. This process never loads PortAudio: only the playback children do. conftest (and
torch with it) is imported under __main__ only: each child imports this script again (multiprocessing's spawn)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from vj.audio.playback import Playback


def tone(freq: float, rate: int, channels: int, seconds: float = 6.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.repeat(0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)[:, None], channels, axis=1)


def peak_hz(x: np.ndarray, rate: int) -> float:
    """The strongest frequency, to a fraction of a bin (parabolic interpolation of the log spectrum)."""
    spectrum = np.log(np.abs(np.fft.rfft(x * np.hanning(x.shape[0]))) + 1e-12)
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = spectrum[k - 1:k + 2]
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / x.shape[0]


def heard(jackd, samples: np.ndarray, rate: int, folder: Path) -> dict:
    player = Playback(samples, rate, 256, device="system").start()
    try:
        def outs() -> list[str]:  # the playback's ports, as PortAudio names them
            return [p for p in jackd.ports() if p.startswith("PortAudio") and "out" in p]

        wait_for(outs, 5.0)
        wav, ports = folder / f"heard-{rate}.wav", outs()
        clock0, wall0 = player.clock, time.perf_counter()
        subprocess.run(["jack_rec", "-f", str(wav), "-d", "1", *ports], env={**jackd.env}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
        clock_rate = (player.clock - clock0) / (time.perf_counter() - wall0)
        status = player.status
    finally:
        player.stop()
    got, got_rate = soundfile.read(str(wav), always_2d=True)
    got = got[got_rate // 10:]  # past jack_rec's start
    return {"status": status, "ports": ports, "rate": got_rate, "clock_rate": clock_rate,
            "hz": [peak_hz(got[:, c], got_rate) for c in range(got.shape[1])],
            "rms": [float(np.sqrt(np.mean(got[:, c] ** 2))) for c in range(got.shape[1])]}


def check(jackd) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        seen = {"cd": heard(jackd, tone(1000.0, 44100, 2), 44100, Path(folder)),
                "phone": heard(jackd, tone(440.0, 8000, 1), 8000, Path(folder))}
    nowhere = Playback(tone(440.0, 44100, 2, 1.0), 44100, 256, device="no-such-device").start()
    time.sleep(0.5)  # its child, failed to open, ends (where a BufferError was printed)
    seen["nowhere"] = nowhere.status
    nowhere.stop()
    return seen


if __name__ == "__main__":
    from conftest import run_check_on_own_jack, wait_for  # here: not in each child (see above)

    run_check_on_own_jack(check)
