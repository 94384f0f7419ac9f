"""The frame's way to the output size, rendered headless through EGL: "sharp" (easu + rcas) beats "bilinear" on
natural photos, edges steepen without ringing, and each `display.fit` places the frame where it says."""

from __future__ import annotations

import numpy as np
import pytest

from vj.render.compositor import Compositor, EffectInputs, fit_scale, magnifies

PHOTOS = ["astronaut", "coffee", "chelsea", "camera", "rocket"]  # scikit-image's bundled photos (no download)


def shown(ctx, frame: np.ndarray, size: tuple[int, int], upscale: str, fit: str) -> np.ndarray:
    """frame [H, W, 3] uint8 through the compositor with no effects, at size (width, height): [h, w, 3] float."""
    comp = Compositor(ctx, *size, [], upscale=upscale, fit=fit)
    try:
        comp.upload(frame)
        return comp.read(comp.render(EffectInputs())).astype(np.float64)
    finally:
        comp.release()


def box_down(img: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(img cropped to a multiple of k, its k x k box average as uint8): a camera-like downscale."""
    h, w = img.shape[0] // k * k, img.shape[1] // k * k
    img = img[:h, :w]
    small = img.reshape(h // k, k, w // k, k, 3).astype(np.float64).mean(axis=(1, 3))
    return img, small.round().astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("name", PHOTOS)
def test_sharp_upscale_is_closer_to_the_photo_than_bilinear(gl_context, name):
    from skimage import data  # the `test` extra

    photo = getattr(data, name)()
    photo = np.stack([photo] * 3, -1) if photo.ndim == 2 else photo
    full, small = box_down(photo, 4)
    size = (full.shape[1], full.shape[0])
    bilinear = psnr(shown(gl_context, small, size, "bilinear", "stretch"), full)
    sharp = psnr(shown(gl_context, small, size, "sharp", "stretch"), full)
    assert sharp > bilinear + 0.1, f"{name}: sharp {sharp:.2f} dB, bilinear {bilinear:.2f} dB"


@pytest.mark.parametrize("edge", ["vertical", "diagonal"])
def test_sharp_steepens_an_edge_without_ringing(gl_context, edge):
    y, x = np.mgrid[0:32, 0:32]
    step = (x >= 16) if edge == "vertical" else (x + y >= 32)
    frame = np.stack([np.where(step, 190, 60), np.full_like(x, 128), np.where(step, 160, 90)], -1).astype(np.uint8)
    out = {up: shown(gl_context, frame, (128, 128), up, "stretch") for up in ("bilinear", "sharp")}
    for up, image in out.items():
        for channel, (low, high) in ((0, (60, 190)), (2, (90, 160))):
            seen = image[..., channel].min(), image[..., channel].max()
            assert low - 1 <= seen[0] and seen[1] <= high + 1, f"{up} rings: {seen} outside {low}..{high}"
        assert np.abs(image[..., 1] - 128).max() <= 1, "a channel with no edge stays flat"
    # Pixels caught mid-step: fewer than bilinear leaves. On the diagonal only a kernel turned to the edge gets
    # there (the same taps unturned, edge-likeness forced to 0, leave 0.4 of bilinear's; turned: 0.17).
    midway = {up: int(((image[..., 0] > 92) & (image[..., 0] < 158)).sum()) for up, image in out.items()}
    assert midway["sharp"] < (0.7 if edge == "vertical" else 0.3) * midway["bilinear"], midway


def test_sharp_keeps_flat_colour_and_the_frame_at_its_own_size(gl_context):
    flat = np.full((16, 16, 3), (30, 140, 250), np.uint8)
    assert np.abs(shown(gl_context, flat, (96, 64), "sharp", "stretch") - (30, 140, 250)).max() <= 1
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    same = shown(gl_context, noise, (40, 24), "sharp", "cover")  # nothing to upscale: shown as it is
    assert np.abs(same - noise).max() <= 1


RED, BLUE, GREEN, YELLOW, GREY = (220, 0, 0), (0, 0, 220), (0, 200, 0), (220, 220, 0), (128, 128, 128)


def bordered() -> np.ndarray:
    """32x32: a 6-pixel border, green at the top, yellow at the bottom, red on the left, blue on the right."""
    frame = np.full((32, 32, 3), GREY, np.uint8)
    frame[:6], frame[-6:] = GREEN, YELLOW
    frame[:, :6], frame[:, -6:] = RED, BLUE
    return frame


def near(pixel: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool(np.abs(pixel - colour).max() <= 24)


@pytest.mark.parametrize("upscale", ["bilinear", "sharp"])
def test_fit_places_the_frame_on_a_wider_output(gl_context, upscale):
    out = {fit: shown(gl_context, bordered(), (128, 64), upscale, fit) for fit in ("cover", "contain", "stretch")}
    # contain: the frame 64x64 in the middle, black bars of 32 columns on each side
    contain = out["contain"]
    assert contain[:, :31].max() <= 2 and contain[:, 97:].max() <= 2
    assert near(contain[32, 36], RED) and near(contain[32, 91], BLUE)
    assert near(contain[2, 64], GREEN) and near(contain[61, 64], YELLOW) and near(contain[32, 64], GREY)
    # cover: the frame 128x128, its top and bottom quarter cropped (the green and yellow borders with them)
    cover = out["cover"]
    assert cover.max(axis=-1).min() > 100, "cover leaves no black"
    assert near(cover[32, 4], RED) and near(cover[32, 123], BLUE)
    assert near(cover[0, 64], GREY) and near(cover[63, 64], GREY)
    # stretch: every border, each as wide as the axis' own scale makes it (4x across, 2x down)
    stretch = out["stretch"]
    assert stretch.max(axis=-1).min() > 100
    assert near(stretch[32, 2], RED) and near(stretch[32, 20], RED) and near(stretch[32, 28], GREY)
    assert near(stretch[2, 64], GREEN) and near(stretch[9, 64], GREEN) and near(stretch[14, 64], GREY)
    assert near(stretch[32, 125], BLUE) and near(stretch[61, 64], YELLOW)


def test_fit_scale_on_taller_and_matching_outputs():
    assert fit_scale((64, 128), (32, 32), "cover") == (0.5, 1.0)
    assert fit_scale((64, 128), (32, 32), "contain") == (1.0, 2.0)
    assert fit_scale((1920, 1080), (256, 256), "stretch") == (1.0, 1.0)
    assert fit_scale((512, 256), (1024, 512), "cover") == (1.0, 1.0)
    assert magnifies((1920, 1080), (256, 256), fit_scale((1920, 1080), (256, 256), "contain"))
    assert not magnifies((512, 256), (1024, 512), (1.0, 1.0)) and not magnifies((64, 64), (64, 64), (1.0, 1.0))


def test_bad_upscale_or_fit_is_refused(gl_context):
    with pytest.raises(ValueError, match="upscale"):
        Compositor(gl_context, 64, 64, [], upscale="bicubic")
    with pytest.raises(ValueError, match="fit"):
        Compositor(gl_context, 64, 64, [], fit="fill")
