"""Where StyleGAN3 synthesis spends its GPU time, and which FIR filter implementation is fastest there.

A tuning run for a lent GPU (the first device check found T-512 synthesis at 77 ms, the same with graphs and
compiled: kernel time, not launches). For each implementation of the filtered leaky ReLU's FIR filters
(`filtered_ops.IMPLS`) it times synthesis forward and forward + backward (random weights, bf16 where the
reference uses half precision) with CUDA events and checks the output against the first; then the profiler's top
kernels for the first and the fastest; then CLIP ViT-B/32 at 32 cutouts alone, for its share of the guided step.

    python scripts/gpu_profile.py --out out/profile
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Callable

import torch

from vj import bench

VARIANTS = ("conv", "banded")          # filtered_ops implementations ("conv": channels-last depthwise convs)


def cuda_ms(fn: Callable[[], object], repeats: int = 10, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return round(statistics.median(times), 3)


def top_kernels(fn: Callable[[], object], rows: int = 15) -> str:
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    averages = prof.key_averages()
    for key in ("self_cuda_time_total", "self_device_time_total", "cuda_time_total"):
        try:
            return averages.table(sort_by=key, row_limit=rows, max_name_column_width=90)
        except Exception:  # noqa: BLE001  the key's name changed between torch releases
            continue
    return averages.table(row_limit=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--arch", default="T")
    parser.add_argument("--resolution", type=int, default=512)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    G = bench.random_generator(args.arch, args.resolution, "cuda").set_precision("bf16")
    ws = G.mapping(torch.randn(1, G.z_dim, device="cuda", generator=torch.Generator("cuda").manual_seed(0)), None)
    ws_grad = ws.detach().clone().requires_grad_(True)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return G.synthesis(ws)

    def forward_backward() -> None:
        G.synthesis(ws_grad).float().square().mean().backward()

    results, reference, texts = [], None, []
    for name in VARIANTS:
        G.set_impl(name)
        row = {"variant": name}
        try:
            image = forward().float()
            reference = image if reference is None else reference
            row["rel_diff_to_now"] = float((image - reference).norm() / reference.norm())
            row["forward_ms"] = cuda_ms(forward)
            row["forward_backward_ms"] = cuda_ms(forward_backward)
        except Exception as e:  # noqa: BLE001  one variant's failure must not cost the others
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        results.append(row)
        print(json.dumps(row), flush=True)
    timed = [r for r in results if "forward_backward_ms" in r and r["rel_diff_to_now"] < 0.02]
    best = min(timed, key=lambda r: r["forward_backward_ms"])["variant"] if timed else None
    for name in dict.fromkeys([VARIANTS[0], best]):
        if name is None:
            continue
        G.set_impl(name)
        table = top_kernels(forward_backward)
        texts.append(f"## {name}: forward + backward, top kernels\n\n{table}\n")
        print(texts[-1], flush=True)

    from vj.models.clip import load_clip

    clip = load_clip("ViT-B-32/random", torch.device("cuda"), "bf16")
    cuts = torch.rand(32, 3, clip.input_size, clip.input_size, device="cuda", requires_grad=True)
    clip_row = {"variant": "CLIP ViT-B/32, 32 cutouts, bf16",
                "forward_backward_ms": cuda_ms(lambda: clip.encode_image(cuts).sum().backward())}
    results.append(clip_row)
    print(json.dumps(clip_row), flush=True)
    (out / "profile.json").write_text(json.dumps({"machine": bench.machine(), "arch": args.arch,
                                                  "resolution": args.resolution, "rows": results}, indent=1))
    (out / "profile.md").write_text("\n".join(texts))
    print("\n| variant | rel diff | forward ms | forward+backward ms |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r.get('rel_diff_to_now', '')} | {r.get('forward_ms', '')} | "
              f"{r.get('forward_backward_ms', r.get('error', ''))} |")


if __name__ == "__main__":
    main()
