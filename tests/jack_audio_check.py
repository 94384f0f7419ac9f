"""Run by test_audio_jack.py: vj's live input on a JACK dummy server hears clicks played by a second JACK client;
the server is killed mid-stream (silence, reported), started again (the input reopens), and clicks are heard
again. Prints one JSON line of what it saw. This process never loads PortAudio: only the capture child does.
conftest (and torch with it) is imported under __main__ only: each child imports this script again (multiprocessing's
spawn), and with torch took some 5 s to start, as long as a reopened device is given (OPEN_TIMEOUT_S)."""

from __future__ import annotations

import subprocess
import sys
import time

from vj.audio.capture import LiveInput
from vj.audio.features import FeatureExtractor
from vj.audio.stream import AudioAnalyzer

PLAYER = """
import sys, numpy as np, sounddevice as sd
rate, period, seconds = 48000, float(sys.argv[1]), float(sys.argv[2])
x = np.zeros(int(rate * seconds), np.float32)
burst = (np.hanning(480) * np.random.default_rng(0).standard_normal(480)).astype(np.float32)
for t in np.arange(0.5, seconds, period):
    x[int(t * rate):int(t * rate) + 480] += burst
sd.play(x, rate, device="system", blocking=True)
"""


def play_clicks_into_vj(jackd, period: float, seconds: float) -> None:
    ours = [p for p in jackd.ports() if p.startswith("PortAudio:in")]
    player = subprocess.Popen([sys.executable, "-c", PLAYER, str(period), str(seconds)])
    deadline = time.time() + 10
    theirs: list[str] = []
    while not theirs and time.time() < deadline:
        theirs = [p for p in jackd.ports() if p.startswith("PortAudio-") and ":out" in p]
        time.sleep(0.05)
    for out_port in theirs:
        for in_port in ours:
            subprocess.run(["jack_connect", out_port, in_port], check=True)
    player.wait(timeout=30)


def check(jackd) -> dict:
    source = LiveInput("system", 48000, 256).start()
    analyzer = AudioAnalyzer(source.ring, FeatureExtractor(48000, 256)).start()
    seen: dict = {"started": source.status}
    time.sleep(0.3)
    play_clicks_into_vj(jackd, 0.5, 4.5)
    seen["onsets_before"] = list(analyzer.onsets)
    jackd.kill()  # the audio server dies mid-stream
    seen["lost_reported"] = wait_for(lambda: source.lost, 5.0)
    seen["status_when_lost"] = source.status
    t_before = analyzer.features.t
    time.sleep(1.0)
    seen["rms_when_lost"] = analyzer.features.rms
    seen["analysis_advanced"] = analyzer.features.t - t_before
    jackd.start()  # ... and comes back, under the same name
    seen["reopened"] = wait_for(lambda: not source.lost, 20.0)
    seen["status_after"] = source.status
    time.sleep(0.5)
    count = len(analyzer.onsets)
    play_clicks_into_vj(jackd, 0.4, 4.0)
    seen["onsets_after"] = list(analyzer.onsets)[count:]
    analyzer.stop()
    source.stop()
    return seen


if __name__ == "__main__":
    from conftest import run_check_on_own_jack, wait_for  # here: not in each child (see above)

    run_check_on_own_jack(check)
