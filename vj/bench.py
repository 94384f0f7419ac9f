"""Measurements behind `vj bench` and `scripts/bench_*.py`: each returns plain dicts of figures, never asserts.

Timings are wall-clock medians after warm-up; on CUDA they are taken between synchronisations (not inside the
measured work), so they include everything a frame pays for.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from vj.cpu_memory import keep_freed_memory

# Architectures as `train.py --cfg` builds them: T with cbase 32768 / cmax 512; R doubles both and uses 1x1 convs
# with radial filters. "published-256" is the FFHQ-U 256x256 checkpoints' --cbase=16384.
ARCHS: dict[str, dict] = {
    "T": dict(channel_base=32768, channel_max=512),
    "R": dict(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True),
    "T-published-256": dict(channel_base=16384, channel_max=512),
    "R-published-256": dict(channel_base=32768, channel_max=1024, conv_kernel=1, use_radial_filters=True),
}


def machine() -> dict:
    info = {"glibc_keeps_freed_memory": keep_freed_memory(), "python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or
            platform.machine(), "threads": torch.get_num_threads(), "date": datetime.now(timezone.utc).isoformat()}
    if torch.cuda.is_available():
        info["cuda"] = torch.cuda.get_device_name(0)
    return info


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1, cuda: bool = False) -> dict:
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return {"ms_median": round(statistics.median(times), 2), "ms_min": round(min(times), 2), "runs": repeats}


def random_generator(arch: str, resolution: int, device: str = "cpu"):
    """A StyleGAN3 of a named architecture (ARCHS, or "tiny": the test-sized one) with random weights."""
    from vj.models.loading import TINY_GENERATOR
    from vj.models.stylegan3 import Generator

    torch.manual_seed(0)
    if arch == "tiny":
        kwargs = dict(TINY_GENERATOR)
    else:
        kwargs = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                      mapping_kwargs={"num_layers": 2}, **ARCHS[arch])
    return Generator(**kwargs).eval().requires_grad_(False).to(device)


def fresh_gpu_memory() -> None:
    """Frees what earlier cases left (an optimiser sits in a reference cycle until collected) and restarts the
    peak count, so each case's peak is its own."""
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def _prepare(device: str) -> bool:
    """Before a case: on CUDA, memory freed and the peak count restarted; on the CPU, the heap kept as vj's model
    loading keeps it. Returns whether the case runs on CUDA."""
    cuda = device.startswith("cuda")
    if cuda:
        fresh_gpu_memory()
    else:
        keep_freed_memory()
    return cuda


def _memory(cuda: bool) -> dict:
    return {"peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)} if cuda else {}


def generator(arch: str, resolution: int, device: str = "cpu", dtype: str = "fp32", compiled: bool = False,
              repeats: int = 3, graphs: bool = False, aspect: float = 1.0) -> dict:
    """Synthesis ms/frame at batch 1 with random weights: eager, compiled, and/or replayed as a CUDA graph; at the
    checkpoint's square or widened to `aspect` (model.aspect)."""
    from vj.engine.graphs import CapturedCalls

    cuda = _prepare(device)
    G = random_generator(arch, resolution, device).set_precision(dtype)
    size = G.synthesis.set_aspect(aspect)
    ws = G.mapping(torch.randn(1, G.z_dim, device=device), None)
    synthesis = torch.compile(G.synthesis, fullgraph=True, dynamic=False) if compiled else G.synthesis
    captured = CapturedCalls(torch.device(device), lambda: (lambda: None)) if graphs and cuda else None
    with torch.no_grad():
        call = (lambda: captured.run("synthesis", lambda: (synthesis(ws),))) if captured else (lambda: synthesis(ws))
        result = timed(call, repeats, warmup=2, cuda=cuda)
    params = sum(p.numel() for p in G.synthesis.parameters())
    return {"what": "synthesis", "arch": arch, "resolution": G.img_resolution, "size": list(size), "device": device,
            "dtype": dtype,
            "compiled": compiled, "graphs": captured is not None, "batch": 1, "params_M": round(params / 1e6, 2),
            **result, **({"graph_replays": captured.replays} if captured else {}), **_memory(cuda)}


def guidance(resolution: int = 256, cutouts: int = 8, generator_arch: str = "T", clip: str = "tiny",
             device: str = "cpu", repeats: int = 3, precision: str = "fp32", compile: str = "off",
             graphs: bool = True) -> dict:
    """Guided steps per second (forward through G and CLIP, backward, update) with random weights, as the engine
    runs them (on CUDA: captured after a warm-up, unless graphs=False)."""
    from vj.config import OptimizerConfig
    from vj.cues.prompts import WeightedPrompt
    from vj.engine.optimizer import LatentOptimizer
    from vj.models.clip import load_clip

    cuda = _prepare(device)
    G = random_generator(generator_arch, resolution, device).set_precision(precision)
    # Random weights for a named architecture: open_clip builds it without downloading anything.
    guide = load_clip(clip if clip == "tiny" else f"{clip}/random", device, precision)
    optimizer = LatentOptimizer(G, guide, OptimizerConfig(cutouts=cutouts, compile=compile, cuda_graphs=graphs))
    optimizer.set_prompts([WeightedPrompt("a neon city at night")])
    started = time.perf_counter()
    optimizer.warm_up([cutouts])
    warm_up_s = time.perf_counter() - started
    before = optimizer.graphs.replays if optimizer.graphs else 0
    result = timed(lambda: optimizer.step(), repeats, cuda=cuda)
    replays = (optimizer.graphs.replays - before) if optimizer.graphs else 0
    return {"what": "guided step", "generator": f"{generator_arch} @ {G.img_resolution}", "clip": clip,
            "cutouts": cutouts, "device": device, "precision": precision, "compiled": optimizer.compiled,
            "graphs": optimizer.graphs is not None, **result, "steps_per_s": round(1000 / result["ms_median"], 2),
            "warm_up_s": round(warm_up_s, 2), "graph_replays": replays, "skipped_steps": int(optimizer.skipped),
            "loss_scale": float(optimizer.loss_scale), "fallbacks": optimizer.fallbacks, **_memory(cuda)}


def agreement(precision: str, resolution: int = 64, generator_arch: str = "tiny", clip: str = "tiny",
              cutouts: int = 4, device: str = "cpu", draws: int = 4) -> dict:
    """How far a half-precision guided step is from fp32's: the same random networks, latent, prompts and cutout
    draws, the loss and the latent's gradient computed in `precision` and in fp32. Reports the worst over `draws`
    draws: the loss's relative difference and the gradients' cosine (1 = the same direction)."""
    from vj.config import OptimizerConfig
    from vj.cues.prompts import WeightedPrompt
    from vj.engine.optimizer import CUTOUT_NOISE, LatentOptimizer
    from vj.models.clip import load_clip

    def losses_and_grads(dtype: str) -> list[tuple[float, torch.Tensor]]:
        _prepare(device)
        G = random_generator(generator_arch, resolution, device).set_precision(dtype)
        guide = load_clip(clip if clip == "tiny" else f"{clip}/random", device, dtype)
        optimizer = LatentOptimizer(G, guide, OptimizerConfig(cutouts=cutouts, compile="off", cuda_graphs=False))
        optimizer.set_prompts([WeightedPrompt("a neon city at night"), WeightedPrompt("rust and chrome", -0.3)])
        draw = torch.Generator().manual_seed(1)  # the same cutouts for every precision
        out = []
        for _ in range(draws):
            uniforms = torch.rand(cutouts, 4, generator=draw).to(device)
            noise = (torch.randn(cutouts, 3, guide.input_size, guide.input_size, generator=draw) * CUTOUT_NOISE)
            grad, (loss, _) = torch.func.grad(optimizer.loss, has_aux=True)(
                optimizer.q, uniforms, noise.to(device), optimizer.transform)
            out.append((float(loss), (grad / optimizer.loss_scale).double().flatten().cpu()))
        return out

    reference, half = losses_and_grads("fp32"), losses_and_grads(precision)
    rel = [abs(h - r) / max(abs(r), 1e-12) for (r, _), (h, _) in zip(reference, half)]
    cosine = [float(torch.nn.functional.cosine_similarity(g_r, g_h, dim=0)) for (_, g_r), (_, g_h) in
              zip(reference, half)]
    return {"what": "agreement", "generator": f"{generator_arch} @ {resolution}", "clip": clip, "cutouts": cutouts,
            "device": device, "precision": precision, "draws": draws, "loss_fp32": round(reference[0][0], 5),
            "loss_rel_diff": round(max(rel), 5), "grad_cosine": round(min(cosine), 5),
            **_memory(device.startswith("cuda"))}


def transfer(size: int = 1024, repeats: int = 50) -> dict:
    """What a displayed frame costs between GPU and host, as the engine moves it: the uint8 frame into pinned host
    memory (asynchronous copy, then waiting for it), the same into pageable memory, and the 3x3 input transform
    up through pinned memory without a sync."""
    device = torch.device("cuda")
    frame = torch.randint(0, 255, (size, size, 3), dtype=torch.uint8, device=device)
    matrix = np.eye(3, dtype=np.float32)
    target = torch.empty(3, 3, device=device)

    def to_pinned() -> None:
        host = torch.empty(frame.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(frame, non_blocking=True)
        torch.cuda.current_stream().synchronize()

    def upload() -> None:
        target.copy_(torch.from_numpy(matrix).pin_memory().to(device, non_blocking=True), non_blocking=True)

    return {"what": "frame transfer", "frame": f"{size}x{size}x3 uint8", "mib": round(frame.numel() / 2 ** 20, 2),
            "to_pinned_host": timed(to_pinned, repeats, cuda=True),
            "to_pageable_host": timed(lambda: frame.cpu(), repeats, cuda=True),
            "transform_upload": timed(upload, repeats, cuda=True)}


def compositor(width: int, height: int, frame_size: int = 512, repeats: int = 20) -> dict:
    """Effect chain ms/frame and CPU upload ms/frame on the headless EGL context."""
    from vj.render.compositor import EFFECTS, Compositor, EffectInputs, headless_context

    ctx = headless_context()
    comp = Compositor(ctx, width, height, list(EFFECTS))
    frame = np.random.default_rng(0).integers(0, 255, (frame_size, frame_size, 3), dtype=np.uint8)
    comp.upload(frame)

    def chain() -> None:
        comp.render(EffectInputs(time=1.0, onset=0.5))
        ctx.finish()

    def upload() -> None:
        comp.upload(frame)
        ctx.finish()

    out = {"what": "compositor", "renderer": ctx.info["GL_RENDERER"], "size": f"{width}x{height}",
           "effects": len(EFFECTS), "chain": timed(chain, repeats), "upload_cpu": timed(upload, repeats)}
    comp.release()
    ctx.release()
    return out


def upscale(width: int, height: int, frame_width: int, frame_height: int, rounds: int = 30,
            fit: str = "cover") -> dict:
    """The frame's way to the output size, ms/frame: the blend and upscale passes with no effects (and the
    history copy every frame pays), "bilinear" against "sharp" (easu + rcas) in alternating rounds, so both see
    the same machine load."""
    from vj.render.compositor import Compositor, EffectInputs, headless_context

    ctx = headless_context()
    frame = np.random.default_rng(0).integers(0, 255, (frame_height, frame_width, 3), dtype=np.uint8)
    comps = {mode: Compositor(ctx, width, height, [], upscale=mode, fit=fit) for mode in ("bilinear", "sharp")}
    times: dict[str, list[float]] = {mode: [] for mode in comps}
    for comp in comps.values():
        comp.upload(frame)
        comp.render(EffectInputs())  # warm-up: the first draw compiles llvmpipe's code for the shaders
    ctx.finish()
    for _ in range(rounds):
        for mode, comp in comps.items():
            start = time.perf_counter()
            comp.render(EffectInputs())
            ctx.finish()
            times[mode].append((time.perf_counter() - start) * 1000)
    out = {"what": "upscale", "renderer": ctx.info["GL_RENDERER"], "size": f"{width}x{height}",
           "frame": f"{frame_width}x{frame_height}", "fit": fit, "rounds": rounds,
           **{mode: {"ms_median": round(statistics.median(t), 2), "ms_min": round(min(t), 2)}
              for mode, t in times.items()}}
    for comp in comps.values():
        comp.release()
    ctx.release()
    return out


def live(cfg, seconds: float = 20.0, click_every: float = 0.5, warmup: float = 3.0, offscreen: bool = False,
         models=None) -> dict:
    """The live show as `vj live` runs it (window, engine worker, effects), measured: display fps and frame times,
    guided steps/s, and audio-to-screen latency. A feeder thread writes audio blocks into the input ring at the
    real-time pace, as the audio callback does, with a click every `click_every` seconds; the latency of a click
    is from its block entering the ring to the swap of the first displayed frame whose effect inputs carry the
    onset (the device's own input latency, about one block, comes on top). Needs a display (Xvfb will do), unless
    `offscreen` (EGL, no window)."""
    import threading

    from vj.audio.features import FeatureExtractor
    from vj.audio.stream import AudioAnalyzer, RingBuffer
    from vj.clock import WallClock
    from vj.app.show import run_show

    a = cfg.audio
    ring = RingBuffer(a.sample_rate * 4)
    analyzer = AudioAnalyzer(ring, FeatureExtractor.from_config(a, a.sample_rate))
    clicks: list[float] = []              # perf_counter when each click's block went into the ring
    frames: list[tuple[float, float, float]] = []  # (swap time, onset the effects saw, engine steps/s)
    engine: list = []                     # the newest engine frame at each displayed frame
    stop = threading.Event()
    rng = np.random.default_rng(0)
    quiet = (1e-4 * rng.standard_normal(a.block_size)).astype(np.float32)  # a faint floor, not digital silence
    click = quiet.copy()
    burst = min(256, a.block_size)
    click[:burst] = np.hanning(burst) * rng.standard_normal(burst) * 0.8

    def feed() -> None:
        block_s = a.block_size / a.sample_rate
        started = next_click = began[0] + warmup
        due = time.perf_counter()
        while not stop.is_set():
            if time.perf_counter() >= next_click:
                ring.write(click)
                clicks.append(time.perf_counter())
                next_click = started + len(clicks) * click_every
            else:
                ring.write(quiet)
            due += block_s
            time.sleep(max(0.0, due - time.perf_counter()))

    feeder = threading.Thread(target=feed, name="bench-feeder", daemon=True)

    began = [0.0]  # the show's start: after the networks are loaded and the window is open

    clock = WallClock()

    def begin() -> None:
        began[0] = time.perf_counter()
        clock.start()
        analyzer.start()
        feeder.start()

    def on_frame(swapped: float, inputs, frame) -> None:
        frames.append((swapped, inputs.onset if inputs else 0.0, frame.steps_per_second if frame else 0.0))
        engine.append(frame)

    try:
        run_show(cfg, clock, lambda: analyzer.features, None, seconds + warmup, begin=begin, on_frame=on_frame,
                 offscreen=offscreen, models=models)
    finally:
        stop.set()
        analyzer.stop()
    settled = [f for f in frames if f[0] >= began[0] + warmup]
    measured = [e for f, e in zip(frames, engine) if f[0] >= began[0] + warmup and e is not None]
    last = measured[-1] if measured else None
    swaps = np.array([f[0] for f in settled])
    frame_ms = np.diff(swaps) * 1000
    latencies = []
    for click in clicks:
        seen = next((f[0] for f in settled if f[0] >= click and f[1] >= 0.5), None)
        if seen is not None and seen - click < click_every:
            latencies.append((seen - click) * 1000)

    def stats(values) -> dict:
        values = np.asarray(values, float)
        if values.size == 0:
            return {"n": 0}
        return {"n": int(values.size), "p50": round(float(np.percentile(values, 50)), 2),
                "p99": round(float(np.percentile(values, 99)), 2), "max": round(float(values.max()), 2)}

    return {"what": "live", "seconds": round(float(swaps[-1] - swaps[0]), 2) if swaps.size > 1 else 0.0,
            "display_size": f"{cfg.display.width}x{cfg.display.height}", "generator": cfg.model.generator,
            "clip": cfg.model.clip, "cutouts": cfg.optimizer.cutouts,
            "display_fps": round(len(frame_ms) / max(float(swaps[-1] - swaps[0]), 1e-9), 2) if swaps.size > 1 else 0.0,
            "frame_ms": stats(frame_ms),
            "guided_steps_per_s": round(float(np.median([f[2] for f in settled])), 2) if settled else 0.0,
            "steps_per_displayed_frame": round(float(np.median([f[2] for f in settled])) * float(np.median(frame_ms))
                                               / 1000, 2) if settled and frame_ms.size else 0.0,
            "audio_block_ms": round(1000 * a.block_size / a.sample_rate, 2),
            "clicks": len(clicks), "audio_to_screen_ms": stats(latencies),
            "max_fps": cfg.display.max_fps, "frames_late": late_frames(frame_ms, cfg.display.max_fps),
            # CUDA graphs in use, and replayed while measured (not only captured at the warm-up)
            "graphs": last is not None and last.graph_replays >= 0,
            "graph_replays": max(0, last.graph_replays - measured[0].graph_replays) if last else 0,
            "fallbacks": list(last.fallbacks) if last else []}


def late_frames(frame_ms: np.ndarray, max_fps: float) -> int:
    """Displayed frames that came a frame or more late (over 1.5 periods of the display's cap; none without one)."""
    return int((np.asarray(frame_ms) > 1.5 * 1000 / max_fps).sum()) if max_fps > 0 else 0


def quick(what: str = "all", out: str | None = None) -> dict:
    """A short run of each measurement (what `vj bench` prints)."""
    results: dict = {"machine": machine(), "results": []}
    if what in ("all", "generator"):
        results["results"].append(generator("T-published-256", 256, repeats=2))
    if what in ("all", "guidance"):
        results["results"].append(guidance(resolution=256, cutouts=8, generator_arch="T-published-256", repeats=2))
    if what in ("all", "compositor"):
        results["results"].append(compositor(1024, 1024, repeats=5))
    if out:
        write_json(results, out)
    return results


def each_in_fresh_process(measure: Callable[..., dict], calls: Iterable[dict]) -> Iterator[dict]:
    """measure(**kwargs) for each call, each in a process of its own, results as they come.

    CPU timings depend on the heap a previous network left behind (up to 70% here), so the benchmark scripts keep
    their cases apart.
    """
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for kwargs in calls:
            yield pool.apply(measure, (), kwargs)


def write_json(data: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1))
