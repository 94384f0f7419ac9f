"""Onset and beat accuracy of vj's causal analysis on generated drum patterns (exact annotations), with mir_eval,
and its cost per block. Writes JSON; the figures go into BENCHMARKS.md.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each pattern (default 30)")
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
    bench.write_json({"machine": bench.machine(), "results": results}, args.out)


if __name__ == "__main__":
    main()
