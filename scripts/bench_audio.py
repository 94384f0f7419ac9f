"""Onset and beat accuracy of vj's causal analysis on generated drum patterns (exact annotations), with mir_eval,
its cost per block, and file playback against its clock over 3 minutes (JACK dummy server). Writes JSON; the
figures go into BENCHMARKS.md.

    python scripts/bench_audio.py --out out/bench/audio.json
"""

from __future__ import annotations

import argparse
import json
import time

import mir_eval
import numpy as np

from vj import bench
from vj.audio.analyze import analyze_samples
from vj.audio.testsignals import drum_pattern

CASES = [dict(bpm=b) for b in range(70, 181, 10)] + [
    dict(bpm=85), dict(bpm=100, swing=0.3), dict(bpm=128, fills=True), dict(bpm=120, noise=0.5),
    dict(bpm=140, swing=0.2, fills=True, noise=0.3), dict(bpm=174, noise=0.3)]


def playback_sync(seconds: float) -> dict:
    """Plays a generated track for `seconds` on a JACK dummy server through the rehearsal playback (`Playback`, its
    stream in a child process) and compares the playback position (the show clock in rehearsal) with the audio
    device's own clock (the DAC time PortAudio gives each callback), sampled every 50 ms: the largest deviation
    after removing the fixed output latency, the drift in ppm, and the jitter around the drift line."""
    import os
    import shutil

    from headless import start_jack, stop_jack
    from vj.audio.playback import Playback

    if shutil.which("jackd") is None:
        return {"what": "playback sync", "skipped": "jackd is not installed"}
    name = f"vj-bench-{os.getpid()}"  # a server of its own: a performer's is neither used nor touched
    jackd = start_jack(name)
    try:
        pattern = drum_pattern(120, seconds + 2, seed=0)
        playback = Playback(pattern.samples, pattern.sample_rate, 256, device="system").start()
        stamps, end = [], time.perf_counter() + seconds
        while time.perf_counter() < end:
            stamps.append(playback.device_stamp)
            time.sleep(0.05)
        playback.stop()
    finally:
        stop_jack(jackd, name)
    device, clock = np.array([s for s in stamps if s[0] > 0]).T
    device -= device[0]
    clock -= clock[0]
    offset = clock - device
    slope, intercept = np.polyfit(device, clock, 1)
    jitter = clock - (slope * device + intercept)
    return {"what": "playback sync", "seconds": seconds, "samples": int(device.shape[0]),
            "max_deviation_ms": round(float(np.abs(offset - np.median(offset)).max()) * 1000, 3),
            "drift_ppm": round((slope - 1.0) * 1e6, 2),
            "max_jitter_ms": round(float(np.abs(jitter).max()) * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each pattern (default 30)")
    parser.add_argument("--sync-seconds", type=float, default=180.0,
                        help="length of the playback-clock measurement on a JACK dummy server (default 180, 0 = skip)")
    args = parser.parse_args()
    results = []
    for case in CASES:
        pattern = drum_pattern(seconds=args.seconds, seed=1, **case)
        start = time.perf_counter()
        analysis = analyze_samples(pattern.samples, pattern.sample_rate)
        elapsed = time.perf_counter() - start
        blocks = pattern.samples.shape[0] // 256
        beat_f = mir_eval.beat.f_measure(mir_eval.beat.trim_beats(pattern.beats),
                                         mir_eval.beat.trim_beats(np.array(analysis.beats)))
        onset_f = mir_eval.onset.f_measure(pattern.onsets, np.array(analysis.onsets))[0]
        result = {**case, "beat_f": round(beat_f, 3), "onset_f": round(onset_f, 3),
                  "final_bpm": analysis.tempo[-1][1] if analysis.tempo else 0.0,
                  "ms_per_block": round(elapsed / blocks * 1000, 3), "block_ms": round(256 / 48, 2)}
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.sync_seconds > 0:
        sync = playback_sync(args.sync_seconds)
        print(json.dumps(sync), flush=True)
        results.append(sync)
    bench.write_json({"machine": bench.machine(), "results": results}, args.out)


if __name__ == "__main__":
    main()
