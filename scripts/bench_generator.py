"""Synthesis speed of our StyleGAN3 (random weights, batch 1): T and R at 256 and 512, fp32 on CPU, and the
published T 256 at 16:9 beside its square; fp16/bf16, eager and compiled, on CUDA when there is one. Writes JSON; the figures go into BENCHMARKS.md.

    python scripts/bench_generator.py --out out/bench/generator.json [--quick]
"""

from __future__ import annotations

import argparse
import json

import torch

from vj import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="256 only")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (default 5)")
    args = parser.parse_args()
    data = {"machine": bench.machine(), "results": []}
    sizes = [256] if args.quick else [256, 512]
    cases = [("T-published-256", 256), ("R-published-256", 256)] + [(arch, s) for s in sizes for arch in ("T", "R")]
    runs = [dict(arch=arch, resolution=size, repeats=args.repeats) for arch, size in cases]
    # model.aspect: a 16:9 picture (456x256 from a 256 checkpoint) against the square, in the same run
    runs += [dict(arch=arch, resolution=256, repeats=args.repeats, aspect=aspect)
             for aspect in (16 / 9, 1.0) for arch in ("T-published-256",)]
    if torch.cuda.is_available():
        runs += [dict(arch=arch, resolution=size, device="cuda", dtype=dtype, compiled=compiled, repeats=20)
                 for arch in ("T", "R") for size in sizes for dtype in ("fp32", "fp16", "bf16")
                 for compiled in (False, True)]
    for result in bench.each_in_fresh_process(bench.generator, runs):
        print(json.dumps(result), flush=True)
        data["results"].append(result)
    bench.write_json(data, args.out)


if __name__ == "__main__":
    main()
