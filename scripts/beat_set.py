"""Builds the real-music beat evaluation set of issue 16: renders demo songs that Debian ships with LMMS and Hydrogen,
cuts 30-60 s excerpts, and writes each one's reference beats from the song's own tempo map.

    python scripts/beat_set.py                     # build out/beatset/ (skips what exists)
    python scripts/beat_set.py --check             # + offline madmom beats against each reference, plots

Needs `apt-get install lmms lmms-common hydrogen hydrogen-drumkits` (checked, never installed from here) and, for
`--check`, the `bench` extra (madmom, matplotlib). Writes per excerpt `<name>.wav` (stereo, 44.1 kHz, 16 bit) and
`<name>.beats.txt` (one reference beat a line, seconds from the excerpt's start), and `manifest.json` for the set.

Every excerpt is a span of whole bars of one song rendered from its first tick, so beat k of the song is at
k * 60 / bpm exactly; the script refuses a song whose tempo is automated or whose bars are not 4/4. A "segment"
list of two songs is a hard DJ cut on a downbeat, each side keeping its own grid. Hydrogen songs carry the file's
humanize setting (a few ms of random timing, like a drummer) and swing (off-beats only), so their onsets sit a
little off the grid by design. An excerpt whose beats come from an offline tracker instead (none so far) would read
them from scripts/beatset_refs/<name>.txt, committed after checking them by eye on the `--check` plot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

LMMS_DEMOS = Path("/usr/share/lmms/projects")
HYDROGEN_SONGS = Path("/usr/share/hydrogen/data/demo_songs")
REFS_DIR = Path(__file__).resolve().parent / "beatset_refs"
SAMPLE_RATE = 44100
BEATS_PER_BAR = 4

# Licences below as /usr/share/doc/lmms-common/copyright and /usr/share/doc/hydrogen/copyright give them (Debian 12).


@dataclass(frozen=True)
class Segment:
    song: Path            # LMMS project (.mmp/.mmpz) or Hydrogen song (.h2song)
    start_bar: int        # first bar of the excerpt, counted from 0 at the song's first tick
    bars: int             # length in bars


@dataclass(frozen=True)
class Excerpt:
    name: str
    style: str
    segments: tuple[Segment, ...]
    licence: str          # of the song(s), from the package's copyright file
    note: str = ""        # what the listener should know about the material


def lmms(path: str) -> Path:
    return LMMS_DEMOS / path


EXCERPTS = [
    Excerpt("house_128", "house, 128 (acid bassline, four on the floor)",
            (Segment(lmms("demos/EsoXLB-CPU.mmpz"), 40, 24),), "Artistic-2.0 (E.SoX, 2010)"),
    Excerpt("proghouse_128", "progressive house, 128",
            (Segment(lmms("demos/Shovon-ProgressiveHousePluckDemo.mmpz"), 8, 24),),
            "GPL-2+ (lmms-common's general licence; no separate entry)"),
    Excerpt("proghouse_128_breakdown", "progressive/electro house, 128, with a 10-bar breakdown and rebuild",
            (Segment(lmms("demos/Jousboxx-BuzzerBeater.mmpz"), 44, 28),), "CC-BY-SA-4.0 (Jousboxx)"),
    Excerpt("trance_138_breakdown", "trance, 138, with a 16-bar kickless breakdown",
            (Segment(lmms("demos/Momo64-esp.mmpz"), 124, 34),), "Artistic-2.0 (mauro/momo64, 2011)"),
    Excerpt("trance_140_breakdown", "trance, 140, with an 8-bar kickless breakdown",
            (Segment(lmms("demos/Impulslogik-Zen.mmpz"), 70, 32),), "Artistic-2.0 (Impulslogik, 2010)"),
    Excerpt("dubstep_140", "dubstep, 140 half-time (kick on 1, clap on 3)",
            (Segment(lmms("demos/TameAnderson-MakeMe.mmpz"), 16, 28),), "Artistic-2.0 (tame anderson, 2011)"),
    Excerpt("dnb_170", "drum & bass, 170 (two-step)",
            (Segment(lmms("demos/CapDan/CapDan-TwilightArea-OriginalByAlf42red.mmpz"), 20, 32),),
            "CC-BY-SA-3.0 (CapDan 2011, after Armin Heller/Alf42red)"),
    Excerpt("dnb_177", "drum & bass, 177 (two-step)",
            (Segment(lmms("shorties/DirtyLove.mmpz"), 14, 34),),
            "GPL-2+ (lmms-common's general licence; no separate entry)"),
    Excerpt("boombap_87", "boom-bap hip-hop, 87",
            (Segment(lmms("demos/StrictProduction-DearJonDoe.mmp"), 2, 16),),
            "GPL-2+ (lmms-common's general licence; no separate entry)"),
    Excerpt("funk_102", "funk breaks, 102 (acoustic kit, busy kick and ghost notes)",
            (Segment(lmms("demos/Alf42red-Mauiwowi.mmpz"), 6, 20),), "CC-BY-SA-3.0 (Armin Heller/Alf42red)"),
    Excerpt("broken_332_120", "broken 3-3-2 beat (Bo Diddley), 120, acoustic kit, humanized and swung",
            (Segment(HYDROGEN_SONGS / "GM_kit_Diddley.h2song", 2, 24),), "GPL-2+ (hydrogen)",
            "sequenced drums alone; humanize_time 0.31 puts hits a few ms off the grid"),
    Excerpt("rock_110", "rock drums, 110, acoustic kit (GMRockKit), humanized",
            (Segment(HYDROGEN_SONGS / "GM_kit_demo2.h2song", 0, 17),), "GPL-2+ (hydrogen)",
            "sequenced drums alone, not a live take: no packaged live recording has a tempo map"),
    Excerpt("metal_140", "80s metal, 140, acoustic kit with guitars",
            (Segment(lmms("demos/Thomasso-AxeFromThe80s.mmpz"), 24, 28),), "Artistic-2.0 (Thomasso, 2009)",
            "sequenced, not a live take"),
    Excerpt("djcut_128_170", "hard DJ cut, house 128 -> drum & bass 170 on a downbeat",
            (Segment(lmms("demos/EsoXLB-CPU.mmpz"), 72, 16),
             Segment(lmms("demos/CapDan/CapDan-TwilightArea-OriginalByAlf42red.mmpz"), 24, 16)),
            "Artistic-2.0 (E.SoX) + CC-BY-SA-3.0 (CapDan, after Alf42red)", "the cut is at 30.0 s"),
]


def missing_tools() -> list[str]:
    """Debian packages this script needs that are not installed."""
    needed = {"lmms": shutil.which("lmms"), "lmms-common": LMMS_DEMOS.is_dir(), "hydrogen": shutil.which("h2cli"),
              "hydrogen-drumkits": Path("/usr/share/hydrogen/data/drumkits/GMRockKit").is_dir()}
    return [package for package, found in needed.items() if not found]


def read_lmms_project(path: Path) -> ET.Element:
    data = path.read_bytes()
    if path.suffix == ".mmpz":
        data = zlib.decompress(data[4:])  # Qt's qCompress: a 4-byte big-endian length, then zlib
    return ET.fromstring(data)


def lmms_tempo(path: Path) -> float:
    """The project's constant tempo; refuses automated tempo and bars other than 4/4."""
    root = read_lmms_project(path)
    head = root.find("head")
    numerator, denominator = head.get("timesig_numerator", "4"), head.get("timesig_denominator", "4")
    if (numerator, denominator) != ("4", "4"):
        raise ValueError(f"{path}: time signature {numerator}/{denominator}, not 4/4")
    if head.get("bpm") is not None:
        return float(head.get("bpm"))
    # An automated (or controller-linked) model is saved as an element with an id that automation points at.
    element = head.find("bpm")
    linked = {o.get("id") for o in root.iter("object")}
    if element.get("id") in linked:
        raise ValueError(f"{path}: tempo is automated; its beats are not a fixed grid")
    return float(element.get("value"))


def hydrogen_tempo(path: Path) -> float:
    """The song's tempo; refuses songs with timeline tempo changes or patterns that are not one 4/4 bar."""
    root = ET.parse(path).getroot()
    if (root.findtext("isTimelineActivated") or "false").strip() == "true" and root.find("timeline/tempoMarker"):
        raise ValueError(f"{path}: tempo markers on the timeline")
    sizes = {int(p.findtext("size")) for p in root.find("patternList").findall("pattern")}
    if sizes != {192}:  # Hydrogen ticks: 48 a quarter note, so 192 is one bar of 4/4
        raise ValueError(f"{path}: pattern sizes {sorted(sizes)}, not one bar of 4/4 each")
    return float(root.findtext("bpm"))


def song_tempo(path: Path) -> float:
    return hydrogen_tempo(path) if path.suffix == ".h2song" else lmms_tempo(path)


def render(song: Path, wav: Path) -> None:
    """Renders the whole song from its first tick to a wav at SAMPLE_RATE."""
    if song.suffix == ".h2song":
        command = ["h2cli", "-s", str(song), "-o", str(wav), "-r", str(SAMPLE_RATE), "-b", "16"]
    else:
        command = ["lmms", "render", str(song), "-f", "wav", "-s", str(SAMPLE_RATE), "-o", str(wav)]
        if os.geteuid() == 0:
            command.insert(1, "--allowroot")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")  # LMMS renders without a display this way
    result = subprocess.run(["nice", "-n", "10", *command], env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0 or not wav.is_file():
        raise RuntimeError(f"rendering {song} failed:\n{result.stderr[-2000:]}")


def cut_excerpt(excerpt: Excerpt, renders: dict[Path, Path], work: Path) -> tuple[np.ndarray, list[float], list[float]]:
    """Returns (samples [n, 2], reference beats in seconds, tempo of each segment)."""
    pieces, beats, tempos, offset = [], [], [], 0.0
    for segment in excerpt.segments:
        if segment.song not in renders:
            renders[segment.song] = work / f"{len(renders)}.wav"
            print(f"  rendering {segment.song.name}", flush=True)
            render(segment.song, renders[segment.song])
        samples, rate = soundfile.read(renders[segment.song], dtype="float32", always_2d=True)
        assert rate == SAMPLE_RATE, (segment.song, rate)
        bpm = song_tempo(segment.song)
        beat_seconds = 60.0 / bpm
        first_beat = segment.start_bar * BEATS_PER_BAR
        count = segment.bars * BEATS_PER_BAR
        start = round(first_beat * beat_seconds * rate)
        stop = round((first_beat + count) * beat_seconds * rate)
        if stop > samples.shape[0]:
            raise ValueError(f"{segment.song}: bars {segment.start_bar}+{segment.bars} run past the render's end")
        piece = samples[start:stop]
        if piece.shape[1] == 1:
            piece = np.repeat(piece, 2, axis=1)
        pieces.append(piece[:, :2])
        # The cut points are rounded to a sample, so these are exact to within 23 us.
        beats += [offset + k * beat_seconds for k in range(count)]
        tempos.append(bpm)
        offset += piece.shape[0] / rate
    return np.concatenate(pieces), beats, tempos


def manifest_entry(excerpt: Excerpt, duration: float) -> dict:
    reference_file = REFS_DIR / f"{excerpt.name}.txt"
    tempos = [song_tempo(s.song) for s in excerpt.segments]
    return {
        "name": excerpt.name, "style": excerpt.style, "duration_s": round(duration, 3),
        "tempo_bpm": tempos if len(tempos) > 1 else tempos[0],
        "sources": [{"package": "hydrogen" if s.song.suffix == ".h2song" else "lmms-common", "file": str(s.song),
                     "bars": [s.start_bar, s.start_bar + s.bars]} for s in excerpt.segments],
        "licence": excerpt.licence,
        "reference": (f"offline tracker, checked by eye: scripts/beatset_refs/{reference_file.name}"
                      if reference_file.is_file() else "tempo map (constant tempo, 4/4, rendered from tick 0)"),
        "note": excerpt.note,
    }


def build(out: Path, only: set[str] | None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = {e["name"]: e for e in json.loads(manifest_path.read_text())} if manifest_path.is_file() else {}
    renders: dict[Path, Path] = {}
    with tempfile.TemporaryDirectory(prefix="beatset-") as work:
        for excerpt in EXCERPTS:
            if only and excerpt.name not in only:
                continue
            wav, beats_file = out / f"{excerpt.name}.wav", out / f"{excerpt.name}.beats.txt"
            if wav.is_file() and beats_file.is_file():
                print(f"{excerpt.name}: exists")
                manifest[excerpt.name] = manifest_entry(excerpt, soundfile.info(wav).duration)
                continue
            print(f"{excerpt.name}:", flush=True)
            samples, beats, tempos = cut_excerpt(excerpt, renders, Path(work))
            reference_file = REFS_DIR / f"{excerpt.name}.txt"
            if reference_file.is_file():
                beats = [float(line) for line in reference_file.read_text().split()]
            soundfile.write(wav, samples, SAMPLE_RATE, subtype="PCM_16")
            beats_file.write_text("".join(f"{t:.6f}\n" for t in beats))
            manifest[excerpt.name] = manifest_entry(excerpt, samples.shape[0] / SAMPLE_RATE)
            print(f"  {manifest[excerpt.name]['duration_s']} s, {len(beats)} beats at {tempos} bpm")
    manifest_path.write_text(json.dumps(list(manifest.values()), indent=1) + "\n")
    return list(manifest.values())


def check(out: Path, entries: list[dict]) -> None:
    """Offline madmom beats (bidirectional RNN + Viterbi DBN, the strongest tracker here) against each reference:
    F-measure, the median offset of matched beats, and a plot of the low band with both, to look at by eye."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mir_eval
    from scipy.signal import butter, sosfilt

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_beats import MATCH_WINDOW, import_madmom, median_offset_ms

    madmom = import_madmom()
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    for entry in entries:
        name = entry["name"]
        samples, rate = soundfile.read(out / f"{name}.wav", dtype="float32")
        mono = samples.mean(axis=1)
        reference = np.loadtxt(out / f"{name}.beats.txt", ndmin=1)
        activation = madmom.features.beats.RNNBeatProcessor()(madmom.audio.signal.Signal(mono, sample_rate=rate))
        offline = madmom.features.beats.DBNBeatTrackingProcessor(fps=100)(activation)
        f = mir_eval.beat.f_measure(reference, offline, MATCH_WINDOW)
        offset_ms = median_offset_ms(reference, offline)
        offset_ms = float("nan") if offset_ms is None else offset_ms
        print(f"{name:26s} offline madmom vs reference: F {f:.3f}  median offset {offset_ms:+.1f} ms")
        # Kicks show in the low band (drawn up), snares and hats in the high band (drawn down).
        low = np.abs(sosfilt(butter(4, 150, "low", fs=rate, output="sos"), mono))
        high = np.abs(sosfilt(butter(4, 2000, "high", fs=rate, output="sos"), mono))
        low, high = low / low.max(), high / high.max()
        figure, axes = plt.subplots(3, 1, figsize=(14, 8))
        for axis, start in zip(axes, (5.0, entry["duration_s"] / 2 - 4, entry["duration_s"] - 9)):
            span = slice(int(start * rate), int((start + 8) * rate))
            time = np.arange(span.start, span.stop) / rate
            axis.plot(time, low[span], lw=0.4, color="0.3")
            axis.plot(time, -high[span], lw=0.4, color="tab:green")
            axis.vlines(reference[(reference >= start) & (reference < start + 8)], -1, 1, "tab:red",
                        lw=1, label="reference (tempo map)")
            hits = offline[(offline >= start) & (offline < start + 8)]
            axis.plot(hits, np.full_like(hits, 0.9), "bv", label="offline madmom")
            axis.set_xlim(start, start + 8)
        axes[0].set_title(f"{name}: low band <150 Hz (up), high band >2 kHz (down) | reference beats (red) | "
                          f"offline madmom (blue, F {f:.2f})")
        axes[0].legend(loc="upper right")
        axes[-1].set_xlabel("seconds")
        figure.tight_layout()
        figure.savefig(plots / f"{name}.png", dpi=80)
        plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/beatset"))
    parser.add_argument("--only", nargs="*", help="excerpt names to build (default: all)")
    parser.add_argument("--check", action="store_true", help="compare references with offline madmom; plot them")
    args = parser.parse_args()
    missing = missing_tools()
    if missing:
        sys.exit(f"missing Debian packages; run: sudo apt-get install {' '.join(missing)}")
    entries = build(args.out, set(args.only) if args.only else None)
    if args.check:
        check(args.out, [e for e in entries if not args.only or e["name"] in args.only])


if __name__ == "__main__":
    main()
