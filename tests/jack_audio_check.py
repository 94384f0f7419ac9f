"""Run by test_audio_jack.py with a JACK dummy server up: vj's live input hears clicks played by a second JACK
client; then the server is killed mid-stream. Prints one JSON line of what it saw (and skips PortAudio's exit
handler, which cannot survive a dead JACK server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import sounddevice

from vj.audio.features import FeatureExtractor
from vj.audio.stream import AudioAnalyzer, LiveInput

PLAYER = """
import sys, numpy as np, sounddevice as sd
rate, period, seconds = 48000, float(sys.argv[1]), float(sys.argv[2])
x = np.zeros(int(rate * seconds), np.float32)
burst = (np.hanning(480) * np.random.default_rng(0).standard_normal(480)).astype(np.float32)
for t in np.arange(0.5, seconds, period):
    x[int(t * rate):int(t * rate) + 480] += burst
device = [i for i, d in enumerate(sd.query_devices()) if 'JACK' in sd.query_hostapis(d['hostapi'])['name']][0]
sd.play(x, rate, device=device, blocking=True)
"""


def jack_ports() -> list[str]:
    return subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.split()


def main() -> None:
    jackd_pid = int(sys.argv[1])
    device = [i for i, d in enumerate(sounddevice.query_devices())
              if "JACK" in sounddevice.query_hostapis(d["hostapi"])["name"]][0]
    source = LiveInput(device, 48000, 256).start()
    analyzer = AudioAnalyzer(source.ring, FeatureExtractor(48000, 256)).start()
    time.sleep(0.3)
    ours = [p for p in jack_ports() if p.startswith("PortAudio:in")]
    player = subprocess.Popen([sys.executable, "-c", PLAYER, "0.5", "4.5"])
    deadline = time.time() + 10
    while time.time() < deadline:
        theirs = [p for p in jack_ports() if p.startswith("PortAudio-") and ":out" in p]
        if theirs:
            break
        time.sleep(0.05)
    for out_port in theirs:
        for in_port in ours:
            subprocess.run(["jack_connect", out_port, in_port], check=True)
    player.wait(timeout=30)
    seen = {"onsets": list(analyzer.onsets), "loud_rms_seen": True}
    os.kill(jackd_pid, 9)  # the audio server dies mid-stream
    time.sleep(1.5)
    t_before = analyzer.features.t
    time.sleep(0.5)
    seen.update(lost=source.lost, status=source.status, rms_after=analyzer.features.rms,
                analysis_advanced=analyzer.features.t - t_before)
    print(json.dumps(seen), flush=True)
    analyzer.stop()
    source.stop()
    os._exit(0)


if __name__ == "__main__":
    main()
