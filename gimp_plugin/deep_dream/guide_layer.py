"""The "Guide" argument: a layer of any open image whose features the dream is pulled toward.

Standard library only; the GIMP objects come from deep_dream.py. The layer is read whole, at most
protocol.MAX_GUIDE_SIZE pixels along its longer side (GEGL scales it while reading: the backend scales a
guide to the preset's guide_size, at most that, anyway), as 8-bit RGB, or RGBA when it has alpha: the
backend flattens the alpha over white.
"""

from __future__ import annotations

from typing import Any

from wire import protocol

ARGUMENT = "guide"

Guide = tuple[bytes, int, int, int]  # pixels, width, height, channels: what session.submit sends


def read_size(width: int, height: int, longest: int = protocol.MAX_GUIDE_SIZE) -> tuple[float, int, int]:
    """(scale, width, height) to read a width×height layer at: shrunk to `longest` on its longer side."""
    scale = min(1.0, longest / max(width, height))
    return scale, max(1, round(width * scale)), max(1, round(height * scale))


def read_guide(layer: Any, gegl: Any) -> Guide | None:
    """The guide layer's pixels (None for no guide). layer: a Gimp.Layer or None; gegl: gi's Gegl."""
    if layer is None:
        return None
    channels = 4 if layer.has_alpha() else 3
    scale, width, height = read_size(layer.get_width(), layer.get_height())
    pixels = layer.get_buffer().get(gegl.Rectangle.new(0, 0, width, height), scale,
                                    "R'G'B'A u8" if channels == 4 else "R'G'B' u8", gegl.AbyssPolicy.CLAMP)
    return bytes(pixels), width, height, channels
