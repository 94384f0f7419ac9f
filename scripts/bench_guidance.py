"""Guided steps per second (StyleGAN3 + CLIP forward, backward, latent update), random weights.

StyleGAN3-T 512 (train.py defaults) + ViT-B/32 at 8 and 32 cutouts: fp32 eager on CPU; on CUDA (when present)
fp16 and bf16, eager and compiled (CUDA graphs). Also T-256 (published config) on CPU with the tiny CLIP, the
test-sized setting. Writes JSON; the figures go into BENCHMARKS.md.

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
    cases = [dict(resolution=256, generator_arch="T-published-256", clip="tiny", cutouts=8)]
    cases += [dict(resolution=512, generator_arch="T", clip="ViT-B-32", cutouts=n) for n in (8, 32)]
    if torch.cuda.is_available():
        cases += [dict(resolution=512, generator_arch="T", clip="ViT-B-32", cutouts=n, device="cuda", repeats=20,
                       precision=precision, compile=compile)
                  for n in (8, 32) for precision in ("fp16", "bf16") for compile in ("off", "on")]
    for result in bench.each_in_fresh_process(bench.guidance, [{"repeats": 2, **case} for case in cases]):
        print(json.dumps(result), flush=True)
        data["results"].append(result)
    bench.write_json(data, args.out)


if __name__ == "__main__":
    main()
