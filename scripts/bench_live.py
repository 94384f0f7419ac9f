"""The live show, measured: display fps and p50/p99 frame time, guided steps/s, audio-to-screen latency.

Runs `vj live`'s render loop, engine worker and effect chain in a real window (under Xvfb when there is no
display; --offscreen: an EGL framebuffer, no window) for --seconds, with clicks fed into the audio input ring at
the real-time pace. Tiny random networks unless told otherwise (--set model.generator=... model.clip=...). Writes
JSON for BENCHMARKS.md.

    python scripts/bench_live.py --out out/bench/live.json --size 1920x1080
"""

from __future__ import annotations

import argparse
import json

from headless import start_xvfb
from vj import bench
from vj import config as config_mod
from vj.cpu_memory import keep_freed_memory
from vj.render.compositor import load_triton_before_gl

TINY = ["model.generator=tiny", "model.clip=tiny", "optimizer.cutouts=8"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds (after 3 s of warm-up)")
    parser.add_argument("--size", action="append", default=None, help="window size WxH (repeatable; default "
                        "1280x720 and 1920x1080)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="config override")
    parser.add_argument("--offscreen", action="store_true", help="no window: draw into an EGL framebuffer")
    args = parser.parse_args()
    keep_freed_memory()
    load_triton_before_gl()
    server = None if args.offscreen else start_xvfb()
    results = []
    try:
        for size in args.size or ["1280x720", "1920x1080"]:
            width, height = size.split("x")
            cfg = config_mod.load(None, [*TINY, f"display.width={width}", f"display.height={height}",
                                         "display.vsync=false", *args.set])
            result = bench.live(cfg, args.seconds, offscreen=args.offscreen)
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        if server is not None:
            server.terminate()
    bench.write_json({"machine": bench.machine(), "results": results}, args.out)


if __name__ == "__main__":
    main()
