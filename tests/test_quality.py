"""The quality metrics (backend/quality.py): hand-checked values and the directions they must move in."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from backend import quality
from backend.core.presets import Preset
from tests.conftest import structured_image


def photo_like(width: int = 96, height: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth shapes plus fine detail, so both blurring and moving it show."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    disc = ((xx - width * 0.3) ** 2 + (yy - height * 0.5) ** 2 < (height * 0.3) ** 2) * 150.0
    ramp = xx * 80.0 / width
    grain = rng.normal(0, 12, size=(height, width))
    grey = np.clip(disc + ramp + grain + 20, 0, 255)
    return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)


def energy_of_mean_square(rgb: np.ndarray) -> float:
    return float(np.mean(rgb.astype(np.float64) ** 2))


def test_an_image_against_itself_scores_one_on_everything():
    image = photo_like()
    numbers = quality.measure(image, image.copy(), energy_of_mean_square)
    assert numbers == pytest.approx({"gain": 1.0, "sharpness": 1.0, "composition": 1.0})


def test_luma_weights():
    pixel = np.array([[[200, 100, 50]]], np.uint8)
    assert quality.grey(pixel)[0, 0] == pytest.approx(0.299 * 200 + 0.587 * 100 + 0.114 * 50)


def test_laplacian_variance_of_one_bright_pixel_by_hand():
    image = np.zeros((5, 5))
    image[2, 2] = 3.0
    # the 3×3 inner region holds −4·3 at the centre, 3 at its four neighbours, 0 in the corners: mean 0
    assert quality.laplacian_variance(image) == pytest.approx((144 + 4 * 9) / 9)


def test_blurring_lowers_sharpness_and_noise_raises_it():
    image = photo_like()
    blurred = np.stack([gaussian_filter(image[..., c].astype(float), 1.5) for c in range(3)], axis=-1)
    assert quality.sharpness(image, np.rint(blurred).astype(np.uint8)) < 0.3
    noisy = np.clip(image + np.random.default_rng(1).normal(0, 40, image.shape), 0, 255).astype(np.uint8)
    assert quality.sharpness(image, noisy) > 3


def test_ssim_of_two_flat_images_by_hand():
    a, b = np.full((7, 7), 100.0), np.full((7, 7), 150.0)
    c1 = (0.01 * 255) ** 2  # no variance: only the luminance term is left
    assert quality.ssim(a, b) == pytest.approx((2 * 100 * 150 + c1) / (100**2 + 150**2 + c1))


def test_ssim_of_one_window_matches_the_formula():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 255, (7, 7))
    b = 0.5 * a + rng.uniform(0, 100, (7, 7))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    cov = np.cov(a.ravel(), b.ravel())  # sample (co)variances: ddof 1
    expected = ((2 * a.mean() * b.mean() + c1) * (2 * cov[0, 1] + c2)) / (
        (a.mean() ** 2 + b.mean() ** 2 + c1) * (cov[0, 0] + cov[1, 1] + c2))
    assert quality.ssim(a, b) == pytest.approx(expected)


def test_box_downsample_averages_blocks_and_drops_the_rest():
    image = np.arange(4 * 5, dtype=float).reshape(4, 5)
    np.testing.assert_allclose(quality.box_downsample(image, 2), [[3.0, 5.0], [13.0, 15.0]])
    with pytest.raises(ValueError, match="no 8×8 block"):
        quality.box_downsample(np.zeros((4, 40)), 8)


def test_composition_survives_detail_but_not_a_new_layout():
    image = photo_like()
    blurred = np.stack([gaussian_filter(image[..., c].astype(float), 1.0) for c in range(3)], axis=-1)
    assert quality.composition(image, np.rint(blurred).astype(np.uint8)) > 0.9
    moved = np.roll(image, image.shape[1] // 3, axis=1)
    assert quality.composition(image, moved) < 0.5
    other = structured_image(96, 64, seed=5)
    assert quality.composition(image, other) < 0.3


def test_images_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="one size"):
        quality.measure(photo_like(96, 64), photo_like(64, 96), energy_of_mean_square)


@pytest.mark.parametrize("numbers, ok", [
    ({"gain": 3.0, "sharpness": 0.8, "composition": 0.6}, True),
    ({"gain": 2.9, "sharpness": 1.0, "composition": 0.9}, False),
    ({"gain": 5.0, "sharpness": 0.7, "composition": 0.9}, False),
    ({"gain": 5.0, "sharpness": 6.1, "composition": 0.9}, False),
    ({"gain": 5.0, "sharpness": 1.0, "composition": 0.59}, False),
])
def test_the_bar(numbers, ok):
    assert quality.passes(numbers) is ok


def test_feature_energy_is_the_loss_feature_term(engine):
    preset = Preset({"block2_conv1": 0.5, "block3_conv1": 0.25}, continuity=5.0, dream_l2=5.0, jitter=0.0)
    image = photo_like(48, 40)
    energy = quality.feature_energy(engine, preset)
    # the regularisers must not leak in: the energy scales with the coefficients alone
    doubled = quality.feature_energy(engine, preset.with_overrides({"features": {"block2_conv1": 1.0,
                                                                                 "block3_conv1": 0.5}}))
    assert energy(image) > 0
    assert doubled(image) == pytest.approx(2 * energy(image), rel=1e-5)
    assert energy(np.full_like(image, 128)) < energy(image)  # a flat image excites an edge network less


def test_the_gallery_table_has_a_row_per_builtin_and_says_what_is_missing():
    import importlib.util

    from backend.core.presets import BUILTIN_PRESETS
    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("gallery", ROOT / "tools" / "gallery.py")
    gallery = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gallery)
    numbers = {"eyes": {"chelsea": {"gain": 12.345, "sharpness": 1.5, "composition": 0.876}}}
    rows = gallery.table(numbers).splitlines()
    assert len(rows) == 3 + len(BUILTIN_PRESETS)
    eyes = next(row for row in rows if row.startswith("| `eyes` |"))
    assert "docs/gallery/chelsea_eyes.jpg" in eyes and "gain 12.3 · sharpness 1.5 · composition 0.88" in eyes
    assert eyes.endswith("(not made yet) |")
