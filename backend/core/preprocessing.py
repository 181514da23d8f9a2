"""VGG16's caffe convention and its exact inverse: RGB→BGR, minus the ImageNet channel means."""

from __future__ import annotations

import numpy as np

# ImageNet means in B, G, R order, as keras.applications.vgg16.preprocess_input uses them.
BGR_MEANS = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 RGB (uint8 or float, 0..255) → float32 H×W×3 BGR minus the means."""
    return rgb[..., ::-1].astype(np.float32) - BGR_MEANS


def deprocess(x: np.ndarray) -> np.ndarray:
    """The inverse of preprocess, clipped to 0..255 and rounded to uint8 RGB."""
    rgb = (x + BGR_MEANS)[..., ::-1]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def deprocess_levels(x: np.ndarray) -> np.ndarray:
    """The inverse of preprocess as float32 RGB levels clipped to 0..255, not rounded: for 16-bit and float
    images, whose results must not fall on the 8-bit grid."""
    return np.clip((x + BGR_MEANS)[..., ::-1], 0.0, 255.0).astype(np.float32)
