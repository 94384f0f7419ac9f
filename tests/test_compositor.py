"""The shader chain, rendered headless through EGL and checked pixel by pixel: each effect does what it claims."""

from __future__ import annotations

import numpy as np
import pytest

from vj.render.compositor import EFFECTS, Compositor, EffectInputs

SIZE = 64


def gradient() -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    img = np.stack([x * 4, y * 4, np.full_like(x, 128)], -1)
    return img.clip(0, 255).astype(np.uint8)


def stripes() -> np.ndarray:
    """Gradient with 4-pixel vertical stripes: structure that any spatial effect must disturb."""
    img = gradient()
    img[:, (np.arange(SIZE) // 4) % 2 == 1] //= 3
    return img


def render(ctx, effects, frame, inputs, times=1):
    comp = Compositor(ctx, SIZE, SIZE, effects)
    try:
        comp.upload(frame)
        out = None
        for _ in range(times):
            out = comp.read(comp.render(inputs)).astype(np.float32)
        return out
    finally:
        comp.release()


def test_blend_only_reproduces_the_frame(gl_context):
    frame = gradient()
    out = render(gl_context, [], frame, EffectInputs())
    assert np.abs(out - frame).max() <= 2


@pytest.mark.parametrize("effect", EFFECTS)
def test_no_effect_is_a_no_op(gl_context, effect):
    frame = stripes()
    inputs = EffectInputs(time=3.0, rms=0.8, bass=0.9, mid=0.7, high=0.9, onset=1.0, beat=1.0)
    plain = render(gl_context, [], frame, inputs)
    if effect == "feedback":
        # trails need history: a bright frame, then a dark one; the bright one must linger
        comp = Compositor(gl_context, SIZE, SIZE, [effect])
        comp.upload(np.full((SIZE, SIZE, 3), 250, np.uint8))
        comp.render(inputs)
        comp.upload(np.full((SIZE, SIZE, 3), 10, np.uint8))
        out = comp.read(comp.render(inputs)).astype(np.float32)
        comp.release()
        assert out.mean() > 50
        return
    out = render(gl_context, [effect], frame, inputs)
    assert np.abs(out - plain).mean() > 2, f"{effect} changed nothing"
    off = render(gl_context, [effect], frame, EffectInputs(time=3.0, amounts={effect: 0.0}))
    if effect != "zoom_pulse":
        assert np.abs(off - plain).max() <= 3, f"{effect} at amount 0 should leave the image alone"


def test_vignette_darkens_corners_not_centre(gl_context):
    frame = np.full((SIZE, SIZE, 3), 200, np.uint8)
    out = render(gl_context, ["vignette"], frame, EffectInputs())
    assert out[SIZE // 2, SIZE // 2].mean() > 190
    assert out[0, 0].mean() < 100


def test_rgb_split_shifts_red_and_blue_apart(gl_context):
    frame = np.zeros((SIZE, SIZE, 3), np.uint8)
    frame[:, SIZE // 2] = 255  # one white column
    out = render(gl_context, ["rgb_split"], frame, EffectInputs(onset=1.0))
    red_col, green_col, blue_col = (int(np.argmax(out[SIZE // 2, :, c])) for c in range(3))
    assert green_col == SIZE // 2
    assert red_col < green_col < blue_col


def test_zoom_pulse_zooms_on_the_beat(gl_context):
    frame = gradient()
    rest = render(gl_context, ["zoom_pulse"], frame, EffectInputs(beat=0.0))
    beat = render(gl_context, ["zoom_pulse"], frame, EffectInputs(beat=1.0))
    # zooming in narrows the range of x seen across the image: the red ramp gets flatter
    assert np.ptp(beat[SIZE // 2, :, 0]) < np.ptp(rest[SIZE // 2, :, 0]) - 10


def test_hue_shift_keeps_grey_and_turns_colour(gl_context):
    frame = np.zeros((SIZE, SIZE, 3), np.uint8)
    frame[: SIZE // 2] = (255, 0, 0)
    frame[SIZE // 2:] = (128, 128, 128)
    out = render(gl_context, ["hue_shift"], frame, EffectInputs(time=2.5, mid=0.0, amounts={"hue_shift": 1.0}))
    assert np.abs(out[SIZE * 3 // 4, SIZE // 2] - 128).max() <= 3
    assert out[SIZE // 4, SIZE // 2, 1] > 60 or out[SIZE // 4, SIZE // 2, 2] > 60


def test_kaleidoscope_is_mirror_symmetric(gl_context):
    out = render(gl_context, ["kaleidoscope"], gradient(), EffectInputs(time=0.0))
    centre = SIZE // 2
    # mirrored segments: points at the same radius on mirrored angles look alike
    assert np.abs(out[centre - 10, centre] - out[centre + 10, centre]).mean() < 30


def test_blend_between_frames(gl_context):
    comp = Compositor(gl_context, SIZE, SIZE, [])
    comp.upload(np.zeros((SIZE, SIZE, 3), np.uint8))
    comp.upload(np.full((SIZE, SIZE, 3), 200, np.uint8))
    half = comp.read(comp.render(EffectInputs(blend=0.5))).mean()
    comp.release()
    assert 90 < half < 110


def test_broken_shader_keeps_last_good_program(gl_context, tmp_path):
    import shutil

    from vj.render.compositor import SHADER_DIR

    shaders = tmp_path / "shaders"
    shutil.copytree(SHADER_DIR, shaders)
    comp = Compositor(gl_context, SIZE, SIZE, ["vignette"], shader_dir=shaders)
    comp.upload(np.full((SIZE, SIZE, 3), 200, np.uint8))
    before = comp.read(comp.render(EffectInputs()))
    import os
    import time

    (shaders / "vignette.frag").write_text("#version 330\nthis is not glsl;\n")
    os.utime(shaders / "vignette.frag", (time.time() + 5, time.time() + 5))
    assert comp.reload_changed() == ["vignette"]
    assert "vignette" in comp.errors
    after = comp.read(comp.render(EffectInputs()))
    comp.release()
    assert np.array_equal(before, after)
