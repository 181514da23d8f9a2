"""Exact tiling of the dream loss: which crop of the image each tile sees and which terms it owns.

No TensorFlow here: pure geometry, so it can be tested and reasoned about on its own.

Every term of the loss is a sum over positions — activations of each feature layer, pixel pairs of the
continuity term, pixels of the L2 term. Tiles split the image into *cores* that partition it; a tile
owns exactly the positions that fall in its core, so the tiles' losses add up to the whole loss. To
compute its activations exactly, a tile runs VGG16 on a *crop*: its core plus a halo as wide as the
receptive field of the deepest layer used. The crop starts on a multiple of that layer's stride, so
the crop's pooling grid is the image's. Activations whose receptive field reaches a crop edge inside
the image would see zero padding that the whole image does not have; the halo keeps every owned
activation clear of such edges, so its value — and its gradient — are exactly the untiled ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from backend.core.vgg16_layers import VGG16_CONV_LAYERS

CONVS_PER_BLOCK = {1: 2, 2: 2, 3: 3, 4: 3, 5: 3}
MIN_CORE = 64  # shortest core side tried: finer splits are mostly halo
BORDER = 2  # the seed's feature term leaves out 2 activations at each edge of the image


@dataclass(frozen=True)
class Reach:
    """How far activation i of a layer sees in the input: pixels stride·i − before … stride·i + after."""

    stride: int
    before: int
    after: int


@cache
def reach(layer: str) -> Reach:
    """Receptive field of a VGG16 conv layer: 3×3 'same' convolutions widen it by one step on each side,
    2×2 max-pools (stride 2, 'valid') by one step after and double the step."""
    if layer not in VGG16_CONV_LAYERS:
        raise ValueError(f"unknown VGG16 layer {layer!r}")
    block, conv = (int(part.removeprefix("block").removeprefix("conv")) for part in layer.split("_"))
    stride, before, after = 1, 0, 0
    for b in range(1, block + 1):
        for _ in range(conv if b == block else CONVS_PER_BLOCK[b]):
            before, after = before + stride, after + stride
        if b < block:
            after += stride
            stride *= 2
    return Reach(stride, before, after)


@dataclass(frozen=True)
class Span:
    """One axis of a tile: the core [core_start, core_end) it owns and the crop [start, end) it sees."""

    core_start: int
    core_end: int
    start: int
    end: int


@dataclass(frozen=True)
class Tile:
    rows: Span
    cols: Span

    @property
    def pixels(self) -> int:
        return (self.rows.end - self.rows.start) * (self.cols.end - self.cols.start)


def halo(layers: tuple[str, ...]) -> tuple[int, int, int]:
    """(alignment, halo before, halo after) that make every layer in `layers` exact in a tile."""
    reaches = [reach(layer) for layer in layers]
    align = max(r.stride for r in reaches)
    before = max(r.before for r in reaches)
    return align, math.ceil(before / align) * align, max(r.after for r in reaches)


def split_axis(length: int, parts: int, align: int, before: int, after: int) -> list[Span]:
    """`parts` cores of about equal length with boundaries on multiples of `align`, and their crops."""
    bounds = sorted({0, length, *(round(length * k / parts / align) * align for k in range(1, parts))})
    return [Span(a, b, max(0, a - before), min(length, b + after)) for a, b in zip(bounds, bounds[1:], strict=False)]


@lru_cache(maxsize=64)  # asked at every evaluation; an image keeps its size for a whole octave
def plan(height: int, width: int, layers: tuple[str, ...], max_tile_pixels: int) -> tuple[Tile, ...]:
    """The tiles with the least total crop area whose crops each hold at most max_tile_pixels pixels.

    One tile (the whole image) when it fits; when no split fits, the finest one tried.
    Crop area is separable: a tile's is its row span's length times its column span's.
    """
    align, before, after = halo(layers)
    axes = []
    for length in (height, width):
        most = max(1, length // max(align, MIN_CORE))
        splits = [split_axis(length, parts, align, before, after) for parts in range(1, most + 1)]
        axes.append([(max(s.end - s.start for s in spans), sum(s.end - s.start for s in spans), spans)
                     for spans in splits])
    fitting = [(row_total * col_total, rows, cols)
               for row_max, row_total, rows in axes[0]
               for col_max, col_total, cols in axes[1]
               if row_max * col_max <= max_tile_pixels]
    if fitting:
        _, rows, cols = min(fitting, key=lambda entry: entry[0])
    else:
        rows, cols = axes[0][-1][2], axes[1][-1][2]
    return tuple(Tile(r, c) for r in rows for c in cols)


def feature_ranges(tile: Tile, height: int, width: int, layers: tuple[str, ...]) -> np.ndarray:
    """Per layer, the activations the tile owns, in its crop's activation grid: int32 [layers, 4] of
    (row start, row end, col start, col end). Owned: position·stride inside the core, and inside the
    image's activation grid less BORDER at each edge."""
    ranges = np.zeros((len(layers), 4), np.int32)
    for index, layer in enumerate(layers):
        stride = reach(layer).stride
        for axis, (span, length) in enumerate(((tile.rows, height), (tile.cols, width))):
            size = length // stride
            first = max(-(-span.core_start // stride), BORDER)
            last = min(-(-span.core_end // stride), size - BORDER)
            offset = span.start // stride
            ranges[index, 2 * axis] = first - offset
            ranges[index, 2 * axis + 1] = max(first, last) - offset
    return ranges


def feature_norms(height: int, width: int, layers: tuple[str, ...], channels: tuple[int, ...]) -> np.ndarray:
    """Per layer h·w·c of the whole image's activations: the seed divides each layer's energy by it."""
    strides = [reach(layer).stride for layer in layers]
    return np.array([(height // s) * (width // s) * c for s, c in zip(strides, channels, strict=True)], np.float32)


def pixel_ranges(tile: Tile, height: int, width: int) -> np.ndarray:
    """int32 [2, 4] in crop coordinates: row 0 the pixels the tile owns (L2 term), row 1 the pixel-pair
    grid positions it owns (continuity term: (i, j) pairs with i+1, j+1, so the image's last row and
    column start none)."""
    ranges = np.zeros((2, 4), np.int32)
    for axis, (span, length) in enumerate(((tile.rows, height), (tile.cols, width))):
        ranges[0, 2 * axis : 2 * axis + 2] = (span.core_start - span.start, span.core_end - span.start)
        last = min(span.core_end, length - 1)
        ranges[1, 2 * axis : 2 * axis + 2] = (span.core_start - span.start, max(span.core_start, last) - span.start)
    return ranges
