"""Guided steps per second (StyleGAN3 + CLIP forward, backward, latent update), random weights.

CPU: StyleGAN3-T 256 (published config) with the tiny CLIP and with ViT-B/32; CUDA (when present): T-512 with
ViT-B/32 at 8 and 32 cutouts. Writes JSON; the figures go into BENCHMARKS.md.

    python scripts/bench_guidance.py --out out/bench/guidance.json
"""

from __future__ import annotations

import argparse
import json

import torch

from vj import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()
    data = {"machine": bench.machine(), "results": []}
    cases = [dict(resolution=256, generator_arch="T-published-256", clip="tiny", cutouts=8),
             dict(resolution=256, generator_arch="T-published-256", clip="ViT-B-32", cutouts=8)]
    if torch.cuda.is_available():
        cases += [dict(resolution=512, generator_arch="T", clip="ViT-B-32", cutouts=n, device="cuda", repeats=20)
                  for n in (8, 32)]
    for case in cases:
        result = bench.guidance(**{"repeats": 2, **case})
        print(json.dumps(result), flush=True)
        data["results"].append(result)
    bench.write_json(data, args.out)


if __name__ == "__main__":
    main()
