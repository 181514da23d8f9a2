"""Pixel plumbing around the dream: raw 8-bit RGB(A) in and out, alpha kept aside, max_size scaling."""

from __future__ import annotations

import numpy as np
from PIL import Image


def from_bytes(pixels: bytes, width: int, height: int, channels: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Row-major 8-bit RGB or RGBA bytes → (H×W×3 uint8 RGB, H×W alpha or None)."""
    array = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, channels)
    return array[..., :3], (array[..., 3] if channels == 4 else None)


def to_bytes(rgb: np.ndarray, alpha: np.ndarray | None) -> bytes:
    """The inverse of from_bytes: alpha, when given, is put back unchanged."""
    if alpha is not None:
        rgb = np.dstack([rgb, alpha])
    return np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()


# VGG16 pools four times before block5: a side under 16 px leaves it nothing, and oneDNN aborts on the
# empty tensors. Smaller images (a tiny selection) are dreamt on a copy scaled up to this.
MIN_SIDE = 32


def fit_within(width: int, height: int, max_size: int) -> tuple[int, int]:
    """The size to dream at: the input's own, or shrunk so its longer side is max_size (0 = no limit),
    or grown so its shorter side is MIN_SIDE (that wins over a max_size below it)."""
    scale = 1.0
    if max_size > 0 and max(width, height) > max_size:
        scale = max_size / max(width, height)
    if min(width, height) * scale < MIN_SIDE:
        scale = MIN_SIDE / min(width, height)
    if scale == 1.0:
        return width, height
    return max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale))


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """H×W×3 uint8 → height×width×3 uint8 (Lanczos); the same array when the size already matches."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))
