"""Pixel plumbing around the dream: raw RGB(A) samples in and out, alpha kept aside, max_size scaling.

Two kinds of image go through the dream: 8-bit (uint8, the seed's path, rounded to whole levels after each
iteration) and exact (float32 levels 0..255 from 16-bit or float samples, never rounded to 8 bits). Which
sample formats exist on the wire is the engine's to know; here a sample is a NumPy dtype and a full scale.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

LEVELS = 255.0  # the dream's scale: 8-bit levels, as VGG16's preprocessing expects


def from_bytes(pixels: bytes, width: int, height: int, channels: int,
               dtype: np.dtype | type = np.uint8) -> tuple[np.ndarray, np.ndarray | None]:
    """Row-major RGB or RGBA samples of `dtype` → (H×W×3 RGB, H×W alpha or None), both of that dtype."""
    array = np.frombuffer(pixels, dtype=dtype).reshape(height, width, channels)
    return array[..., :3], (array[..., 3] if channels == 4 else None)


def to_bytes(rgb: np.ndarray, alpha: np.ndarray | None, dtype: np.dtype | type = np.uint8) -> bytes:
    """The inverse of from_bytes: alpha, when given, is put back unchanged."""
    if alpha is not None:
        rgb = np.dstack([rgb.astype(alpha.dtype, copy=False), alpha])
    return np.ascontiguousarray(rgb, dtype=dtype).tobytes()


def to_levels(samples: np.ndarray, full_scale: float) -> np.ndarray:
    """Samples whose full intensity is `full_scale` (65535 for 16-bit, 1.0 for float) → float32 levels
    0..255, not rounded. Values outside the range (float images may hold them) are clipped: VGG16 knows
    nothing beyond black and white. Exact for 8-bit values scaled to 16 bits (v·257 → v)."""
    levels = samples.astype(np.float32) * np.float32(LEVELS) / np.float32(full_scale)
    return np.clip(levels, 0.0, LEVELS)


def from_levels(levels: np.ndarray, dtype: np.dtype | type, full_scale: float) -> np.ndarray:
    """The inverse of to_levels: float levels → samples of `dtype`, clipped to 0..full_scale, integers rounded."""
    samples = np.clip(levels.astype(np.float64) * (full_scale / LEVELS), 0.0, full_scale)
    if np.issubdtype(np.dtype(dtype), np.integer):
        samples = np.rint(samples)
    return samples.astype(dtype)


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """H×W×3 → height×width×3 (Lanczos), uint8 as uint8 and float levels as float32 (not rounded); the
    same array when the size already matches."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    if rgb.dtype == np.uint8:
        return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))
    return _resize_channels(rgb, width, height, Image.Resampling.LANCZOS)


def resize_float(x: np.ndarray, width: int, height: int) -> np.ndarray:
    """H×W×C float → height×width×C float32, bicubic per channel (octaves resize preprocessed images,
    whose values are not 8-bit)."""
    if x.shape[1] == width and x.shape[0] == height:
        return x.astype(np.float32, copy=False)
    return _resize_channels(x, width, height, Image.Resampling.BICUBIC)


def _resize_channels(x: np.ndarray, width: int, height: int, resample: Image.Resampling) -> np.ndarray:
    """Each channel as a 32-bit float image (Pillow resizes those without rounding)."""
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(x[..., c], np.float32)).resize((width, height), resample))
        for c in range(x.shape[2])
    ]
    return np.stack(channels, axis=-1)
