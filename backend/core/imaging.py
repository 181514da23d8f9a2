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


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """H×W×3 uint8 → height×width×3 uint8 (Lanczos); the same array when the size already matches."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))


def resize_float(x: np.ndarray, width: int, height: int) -> np.ndarray:
    """H×W×C float → height×width×C float32, bicubic per channel (octaves resize preprocessed images,
    whose values are not 8-bit)."""
    if x.shape[1] == width and x.shape[0] == height:
        return x.astype(np.float32, copy=False)
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(x[..., c], np.float32)).resize(
            (width, height), Image.Resampling.BICUBIC))
        for c in range(x.shape[2])
    ]
    return np.stack(channels, axis=-1)
