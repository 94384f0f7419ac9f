"""Writes a synthesised demo track (kick, snare, hats, a bass line) so the demo ships no copyrighted music.

    python examples/make_beat.py examples/demo.wav --seconds 16 --bpm 120
"""

from __future__ import annotations

import argparse

import soundfile

from vj.audio.testsignals import drum_pattern


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output .wav path")
    parser.add_argument("--seconds", type=float, default=16.0, help="length in seconds (default 16)")
    parser.add_argument("--bpm", type=float, default=120.0, help="tempo (default 120)")
    parser.add_argument("--sample-rate", type=int, default=48000, help="Hz (default 48000)")
    args = parser.parse_args()
    pattern = drum_pattern(args.bpm, args.seconds, args.sample_rate)
    soundfile.write(args.out, pattern.samples, pattern.sample_rate)


if __name__ == "__main__":
    main()
