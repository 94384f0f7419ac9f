"""The latent bank: prompt-matched starts and cue snaps, with the tiny networks."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from vj import config
from vj.app.engine import build_engine
from vj.audio.features import SILENCE
from vj.control.state import ShowState
from vj.cues.lrc import parse_lrc
from vj.cues.prompts import WeightedPrompt
from vj.cues.timeline import Timeline
from vj.engine.bank import load_or_build_bank
from vj.engine.guidance import make_cutouts, spherical_distance
from vj.models.loading import load_models

FPS = 8
CHANGE_AT = 1.0                         # the cue change, seconds into the sheet
FIRST_FRAMES = 4                        # frames after the change whose loss is compared


@pytest.fixture(scope="module")
def tiny():
    return load_models(config.load(None, ["model.generator=tiny", "model.clip=tiny"]).model)


def loss_after_the_change(models, old: str, new: str, snap: str, seed: int, cache) -> float:
    """A hard cut from `old` to `new` (one guided step per frame); the mean loss for `new`, measured on 32 fixed
    crops, over the first frames after the cut."""
    cfg = config.load(None, ["model.generator=tiny", "model.clip=tiny", "optimizer.cutouts=8", f"cues.snap={snap}",
                             f"model.seed={seed}", "cues.transition_s=0", "director.steps_per_frame=1",
                             f"model.cache_dir={cache}"])
    engine = build_engine(cfg, ShowState.from_config(cfg.director), (64, 64), models)
    timeline = Timeline(parse_lrc(f"[00:00.00]{old}\n[00:{CHANGE_AT:05.2f}]{new}\n"), 0.0)
    probe, text = torch.rand(32, 4, generator=torch.Generator().manual_seed(99)), models.clip.encode_text([new])
    losses = []
    for frame in range(int(CHANGE_AT * FPS) + FIRST_FRAMES):
        t = frame / FPS
        plan = engine.director.plan(t, SILENCE, timeline.at(t))
        engine.snap(plan)
        engine.optimizer.render_frame(plan.prompts, plan.steps, plan.lr, plan.transform, 1 / FPS)
        if t >= CHANGE_AT:
            with torch.no_grad():
                crops = make_cutouts(engine.optimizer.picture(), models.clip.input_size, 1.0, probe)
                losses.append(float(spherical_distance(models.clip.encode_image(crops), text).mean()))
    return float(np.mean(losses))


def test_a_cue_lands_sooner_with_snap_nearest(tiny, tmp_path):
    """Over seeds and two cue changes, the guidance loss for the new prompt in the first frames after the change is
    lower with snap = "nearest" than with "off" where the bank has a nearer picture, and never higher. (The tiny
    networks are random, their text tower too: prompts far apart in its embedding stand for a real change of
    scene; and after a while on one prompt the picture is often nearer the next than any sample is: then the snap
    rightly stays put.)"""
    changes = [("a forest in fog", "!!!!"), ("a quiet harbour at dawn", "0 1 2 3")]
    gains = []
    for old, new in changes:
        for seed in range(2):
            off = loss_after_the_change(tiny, old, new, "off", seed, tmp_path)
            nearest = loss_after_the_change(tiny, old, new, "nearest", seed, tmp_path)
            gains.append(off - nearest)
    assert max(gains) > 0.01 and min(gains) > -0.002, gains


def test_the_show_starts_at_the_sample_nearest_its_first_prompt(tiny, tmp_path):
    """Before any guided step, the first frame's picture is the bank's best for the first prompt: nearer it than
    the seed's own start."""
    prompt = (WeightedPrompt("a deep blue ocean"),)
    starts = {}
    for bank in (0, 32):
        cfg = config.load(None, ["model.generator=tiny", "model.clip=tiny", f"model.latent_bank={bank}",
                                 f"model.cache_dir={tmp_path}", "director.steps_per_frame=0"])
        engine = build_engine(cfg, ShowState.from_config(cfg.director), (64, 64), tiny)
        plan = engine.director.plan(0.0, SILENCE, Timeline(parse_lrc("[00:00.00]a deep blue ocean\n"), 0).at(0.0))
        engine.snap(plan)
        frame, _ = engine.optimizer.render_frame(plan.prompts, 0, 0.0, plan.transform, None)
        image = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).float() / 255
        probe = torch.rand(32, 4, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            crops = make_cutouts(image, tiny.clip.input_size, 1.0, probe)
            starts[bank] = float(spherical_distance(tiny.clip.encode_image(crops), tiny.clip.encode_text(
                [p.text for p in prompt])).mean())
    assert starts[32] < starts[0]


def test_a_second_load_reads_the_cached_bank(tiny, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="vj.engine.bank")
    first = load_or_build_bank(tiny.G, tiny.clip, 16, tmp_path, seed=5, progress=False)
    second = load_or_build_bank(tiny.G, tiny.clip, 16, tmp_path, seed=5, progress=False)
    said = [r.getMessage() for r in caplog.records]
    assert "built in" in said[0] and "read from the cache in" in said[1]
    assert torch.equal(first.ws, second.ws) and torch.equal(first.embeds, second.embeds)
    other = load_or_build_bank(tiny.G, tiny.clip, 16, tmp_path, seed=6, progress=False)  # another seed: its own
    assert "built in" in caplog.records[-1].getMessage() and not torch.equal(other.ws, first.ws)
