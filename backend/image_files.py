"""Image files for the CLI: 16-bit PNGs read and written at 16 bits, everything else through Pillow at 8 bits.

Pillow reads a 16-bit RGB(A) PNG as 8-bit and cannot write one, so 16-bit PNGs (grey, grey+alpha, RGB,
RGBA, any filter or interlacing) go through pypng, a pure-Python PNG codec tested on the PNG suite. Every
other file takes the 8-bit path it always took.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png
from PIL import Image, PngImagePlugin

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BIT_DEPTH_OFFSET = 24  # signature 8, IHDR length 4, type 4, width 4, height 4: then the bit depth


@dataclass(frozen=True)
class Picture:
    """An image file's pixels: H×W×3 RGB and H×W alpha (or None), uint8 or uint16 as `bits` says."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    bits: int

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]

    def rgba8(self) -> np.ndarray:
        """H×W×4 uint8 RGBA (opaque without alpha; 16-bit scaled to 8): what a guide frame carries."""
        opaque = np.full(self.rgb.shape[:2], 2**self.bits - 1, self.rgb.dtype)
        rgba = np.dstack([self.rgb, self.alpha if self.alpha is not None else opaque])
        return rgba if self.bits == 8 else np.rint(rgba / 257.0).astype(np.uint8)

    def wire_bytes(self) -> bytes:
        """The samples as a dream request carries them: RGB or RGBA, little-endian."""
        pixels = np.dstack([self.rgb, self.alpha]) if self.alpha is not None else self.rgb
        return pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()


def read(path: Path) -> Picture:
    """The file's pixels at 16 bits if it is a 16-bit PNG, else at 8; OSError or ValueError if unreadable."""
    with open(path, "rb") as file:
        start = file.read(BIT_DEPTH_OFFSET + 1)
    if start[:8] == PNG_SIGNATURE and len(start) > BIT_DEPTH_OFFSET and start[BIT_DEPTH_OFFSET] == 16:
        return _read_png16(path)
    with Image.open(path) as image:
        image.load()
    rgba = np.asarray(to_rgba8(image))
    return Picture(rgba[..., :3], rgba[..., 3] if image.has_transparency_data else None, 8)


def _read_png16(path: Path) -> Picture:
    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()  # tRNS becomes an alpha plane
        samples = np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(height, width, info["planes"])
    except png.Error as exc:
        raise ValueError(str(exc)) from None
    colour = samples[..., :-1] if info["alpha"] else samples
    rgb = np.repeat(colour, 3, axis=2) if info["greyscale"] else colour
    return Picture(np.ascontiguousarray(rgb), samples[..., -1] if info["alpha"] else None, 16)


def write(path: Path | str, rgb: np.ndarray, alpha: np.ndarray | None, text: dict[str, str] | None = None) -> None:
    """RGB(A) as a PNG (or whatever the name's extension says, at 8 bits): uint16 as a 16-bit PNG. `text`:
    PNG text chunks (keyword → Latin-1 text), such as a recipe."""
    pixels = np.dstack([rgb, alpha]) if alpha is not None else rgb
    if pixels.dtype != np.uint16:
        info = PngImagePlugin.PngInfo()
        for key, value in (text or {}).items():
            info.add_text(key, value)
        Image.fromarray(pixels).save(path, pnginfo=info)
        return
    height, width, planes = pixels.shape
    encoded = io.BytesIO()
    png.Writer(width, height, greyscale=False, alpha=planes == 4, bitdepth=16).write(
        encoded, (row.tolist() for row in pixels.reshape(height, width * planes)))
    chunks = list(png.Reader(bytes=encoded.getvalue()).chunks())
    texts = [(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")) for key, value in (text or {}).items()]
    with open(path, "wb") as file:
        png.write_chunks(file, chunks[:-1] + texts + chunks[-1:])  # the text before IEND


def to_rgba8(image: Image.Image) -> Image.Image:
    """8-bit RGBA from any mode Pillow reads: 16- and 32-bit grey are scaled down, not clipped."""
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(np.rint(values * 255.0 / top), 0, 255).astype(np.uint8), "L")
    return image.convert("RGBA")
