"""A layer's precision on the wire: which sample format to send, which GEGL format to read and write it in.

GIMP-free and standard library only (unit-tested on the host). GIMP names an image's precision by its
`Gimp.Precision` nick, "<samples>-<curve>" (e.g. "u16-non-linear", "float-linear"); the plug-in passes
`image.get_precision().value_nick`. The wire carries sRGB-encoded samples (wire/protocol.py): GEGL converts
linear and perceptual data to and from the R'G'B' formats named here, whatever the layer holds.
"""

from __future__ import annotations

import sys
from array import array

from wire import protocol

# GIMP's sample types → the wire's format. 32-bit integer, half, float and double layers all go as float:
# it is the widest the wire carries, and holds more than any result needs (24 bits of mantissa).
WIRE_FORMATS = {"u8": protocol.U8, "u16": protocol.U16, "u32": protocol.F32, "half": protocol.F32,
                "float": protocol.F32, "double": protocol.F32}
GEGL_SAMPLES = {protocol.U8: "u8", protocol.U16: "u16", protocol.F32: "float"}
ARRAY_TYPES = {protocol.U16: "H", protocol.F32: "f"}  # for byte-swapping on a big-endian machine


def wire_format(precision_nick: str, offered: object) -> str:
    """The format to send a layer of this precision in: its own when the backend's hello offers it in its
    "formats" list (a backend older than the field offers none), else 8-bit, as before."""
    wanted = WIRE_FORMATS.get(precision_nick.split("-")[0], protocol.U8)
    return wanted if isinstance(offered, list) and wanted in offered else protocol.U8


def gegl_format(channels: int, sample_format: str) -> str:
    """The babl format name GEGL reads and writes these pixels in, e.g. "R'G'B'A u16"."""
    colour = "R'G'B'A" if channels == 4 else "R'G'B'"
    return f"{colour} {GEGL_SAMPLES[sample_format]}"


def swap_to_wire(pixels: bytes, sample_format: str, byteorder: str = sys.byteorder) -> bytes:
    """GEGL's samples are in the machine's byte order, the wire's little-endian: swapped on a big-endian
    machine, as they are on the way back (the swap is its own inverse)."""
    if byteorder == "little" or sample_format not in ARRAY_TYPES:
        return pixels
    samples = array(ARRAY_TYPES[sample_format], pixels)
    samples.byteswap()
    return samples.tobytes()
