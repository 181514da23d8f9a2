"""How a dream compares with its original: three numbers that tell a good preset from a bad one.

- gain: how much more of what the preset asks for the dream has, by the loss's own measure. The feature
  energy of an image is Σ over the preset's layers of coeff · Σ a[2:h−2, 2:w−2, :]² / (h·w·c), the
  negated feature term of the loss (backend/core/loss.py), from the same VGG16 weights; gain is the
  dream's energy over the original's. Under 1 the dream lost what it was meant to grow.
- sharpness: variance of the 3×3 Laplacian (4-neighbour) of the grey image, dream over original. Far under
  1 the preset smoothed the picture away; far over 1 it drowned it in pixel noise.
- composition: SSIM of the grey images box-averaged 8×8, so that only the layout counts (where things are,
  light and dark), not the dreamt detail. 1 = the same picture; near 0 = another one.

Grey is Rec. 601 luma (0.299 R + 0.587 G + 0.114 B) on 0..255. SSIM is Wang et al. (2004) with the
standard constants C1 = (0.01·255)², C2 = (0.03·255)², over a 7×7 uniform window with sample
(co)variances, averaged over the windows that fit inside the image — scikit-image's default convention.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import convolve, uniform_filter

from backend.core import imaging
from backend.core.preprocessing import preprocess
from wire import protocol

if TYPE_CHECKING:  # the metrics themselves need neither TensorFlow nor a model
    from backend.core.presets import Preset
    from backend.engine import Engine

LUMA = np.array([0.299, 0.587, 0.114])
LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
SSIM_WINDOW = 7
SSIM_RANGE = 255.0
SSIM_K1, SSIM_K2 = 0.01, 0.03
COMPOSITION_BLOCK = 8  # box-average this many pixels square before comparing layouts

# rgb uint8 H×W×3 → the preset's feature energy (see the module's docstring)
FeatureEnergy = Callable[[np.ndarray], float]


def grey(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 RGB on 0..255 → H×W float64 luma."""
    return rgb[..., :3].astype(np.float64) @ LUMA


def laplacian_variance(image: np.ndarray) -> float:
    """Variance of the 3×3 Laplacian over the pixels whose whole neighbourhood is inside the image."""
    return float(convolve(image, LAPLACIAN, mode="nearest")[1:-1, 1:-1].var())


def box_downsample(image: np.ndarray, block: int) -> np.ndarray:
    """Average over block×block squares; the rows and columns that do not fill a square are dropped."""
    height, width = (image.shape[0] // block) * block, (image.shape[1] // block) * block
    if height == 0 or width == 0:
        raise ValueError(f"an image of {image.shape[1]}×{image.shape[0]} has no {block}×{block} block")
    return image[:height, :width].reshape(height // block, block, width // block, block).mean(axis=(1, 3))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two grey images of the same size on 0..SSIM_RANGE (see the module's docstring)."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs images of one size, got {a.shape} and {b.shape}")
    if min(a.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images at least {SSIM_WINDOW}×{SSIM_WINDOW}, got {a.shape}")
    a, b = a.astype(np.float64), b.astype(np.float64)
    n = SSIM_WINDOW**2
    sample = n / (n - 1)  # sample, not population, (co)variances

    def mean(image: np.ndarray) -> np.ndarray:
        return uniform_filter(image, SSIM_WINDOW)

    mu_a, mu_b = mean(a), mean(b)
    var_a = sample * (mean(a * a) - mu_a * mu_a)
    var_b = sample * (mean(b * b) - mu_b * mu_b)
    cov = sample * (mean(a * b) - mu_a * mu_b)
    c1, c2 = (SSIM_K1 * SSIM_RANGE) ** 2, (SSIM_K2 * SSIM_RANGE) ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    pad = SSIM_WINDOW // 2
    return float(index[pad:-pad, pad:-pad].mean())


def sharpness(original: np.ndarray, dream: np.ndarray) -> float:
    """Laplacian variance of the dream's grey image over the original's (RGB uint8 inputs)."""
    return laplacian_variance(grey(dream)) / laplacian_variance(grey(original))


def composition(original: np.ndarray, dream: np.ndarray) -> float:
    """SSIM of the two grey images box-averaged COMPOSITION_BLOCK×COMPOSITION_BLOCK (RGB uint8 inputs)."""
    return ssim(box_downsample(grey(original), COMPOSITION_BLOCK), box_downsample(grey(dream), COMPOSITION_BLOCK))


def measure(original: np.ndarray, dream: np.ndarray, energy: FeatureEnergy) -> dict[str, float]:
    """{gain, sharpness, composition} of a dream against its original, both RGB uint8 of one size."""
    if original.shape != dream.shape:
        raise ValueError(f"the dream is {dream.shape}, its original {original.shape}: compare them at one size")
    return {
        "gain": energy(dream) / energy(original),
        "sharpness": sharpness(original, dream),
        "composition": composition(original, dream),
    }


def feature_energy(engine: Engine, preset: Preset) -> FeatureEnergy:
    """The preset's feature energy by the engine's own loss: with continuity and dream_l2 at 0 the loss
    is exactly minus it (same layers, coefficients, borders, normalisation and weights)."""
    loss = engine.loss_for(replace(preset, continuity=0.0, dream_l2=0.0))

    def energy(rgb: np.ndarray) -> float:
        return -loss(preprocess(rgb))[0]

    return energy


def dream_and_measure(
    engine: Engine,
    rgb: np.ndarray,
    preset: str,
    iterations: int,
    seed: int,
    max_size: int,
    each: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Dream `rgb` with the named preset as it stands and measure the last iteration: (dream, numbers).
    `each`, if given, gets (index, numbers) after every iteration: how the dream got there.

    Both are taken at the size the dream is made at (the image shrunk to max_size, as the backend would),
    so neither an upscale nor a downscale of the result blurs or sharpens what is measured.
    """
    settings = engine.settings(preset, {})
    width, height = protocol.dream_size(rgb.shape[1], rgb.shape[0], max_size)
    original = imaging.resize(rgb, width, height)
    energy = feature_energy(engine, settings)
    dream, numbers = original, None
    for index, _, image in engine.dream_rgb(original, settings, iterations, seed):
        dream = image
        if each:
            numbers = measure(original, dream, energy)
            each(index, numbers)
    return dream, numbers if numbers is not None else measure(original, dream, energy)


def passes(numbers: dict[str, float]) -> bool:
    """Issue 4's bar for a tuned preset: gain ≥ 3, 0.8 ≤ sharpness ≤ 6, composition ≥ 0.6."""
    return numbers["gain"] >= 3 and 0.8 <= numbers["sharpness"] <= 6 and numbers["composition"] >= 0.6
