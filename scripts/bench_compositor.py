"""Compositor cost: the full effect chain and the CPU frame upload, ms/frame at 1024x1024 and 1920x1080, and the
upscale to 1080p alone ("bilinear" vs "sharp", from 256x256 and 456x256 frames), on the headless EGL context
(llvmpipe here; the GPU's driver where there is one). Writes JSON for BENCHMARKS.md.

    python scripts/bench_compositor.py --out out/bench/compositor.json
"""

from __future__ import annotations

import argparse
import json

from vj import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()
    data = {"machine": bench.machine(), "results": [bench.compositor(1024, 1024), bench.compositor(1920, 1080),
                                                    bench.upscale(1920, 1080, 256, 256),
                                                    bench.upscale(1920, 1080, 456, 256)]}
    for result in data["results"]:
        print(json.dumps(result), flush=True)
    bench.write_json(data, args.out)


if __name__ == "__main__":
    main()
