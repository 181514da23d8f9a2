"""Exact tiling of the dream loss: which part of every VGG16 block each tile computes, and which terms
it owns.

No TensorFlow here: pure geometry, so it can be tested and reasoned about on its own.

Every term of the loss is a sum over positions — activations of each feature layer, pixel pairs of the
continuity term, pixels of the L2 term. Tiles split the image into *cores* that partition it; a tile
owns exactly the positions that fall in its core, so the tiles' losses add up to the whole loss.

A tile computes only what its owned positions depend on, worked out backwards from them: a 3×3 'same'
convolution needs one more position on each side, clipped to the grid (at the image's own edges the
zero padding is the untiled network's too); a 2×2 pool needs the two positions under each output.
Each block runs its convolutions on one range of its input grid, starting on an even position when a
pool follows so that the pooling windows are the image's, and the pooled result is cut down to the
next block's range. The first block's range is the tile's *crop* of the image. The halo thus narrows
from the deepest layer's whole receptive field at the image to a few positions at the deepest block,
and every owned activation, with its gradient, is exactly the untiled one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from backend.core.vgg16_layers import BLOCK_FILTERS, CONVS_PER_BLOCK, position

MIN_CORE = 64  # shortest core side tried: finer splits are mostly halo
BORDER = 2  # the seed's feature term leaves out 2 activations at each edge of the image

Range = tuple[int, int]  # [start, end)


@dataclass(frozen=True)
class Span:
    """One axis of a tile: the core [core_start, core_end) of the image it owns and, per block up to
    the deepest one used, the range of that block's input grid it computes (blocks[0]: its crop)."""

    core_start: int
    core_end: int
    blocks: tuple[Range, ...]

    @property
    def start(self) -> int:
        return self.blocks[0][0]

    @property
    def end(self) -> int:
        return self.blocks[0][1]


@dataclass(frozen=True)
class Tile:
    rows: Span
    cols: Span

    @property
    def pixels(self) -> int:
        """The crop's pixels: what a tile's memory grows with (the first block's activations dominate)."""
        return (self.rows.end - self.rows.start) * (self.cols.end - self.cols.start)


def grid_size(length: int, block: int) -> int:
    """Positions along one axis of block `block`'s input grid: each pool halves, dropping an odd one."""
    return length >> (block - 1)


def owned(core_start: int, core_end: int, length: int, layer: str) -> Range:
    """The activations of `layer` a core owns along one axis: those whose position·stride falls in the
    core, less BORDER at each edge of the image's grid; (0, 0) when there are none."""
    block, _ = position(layer)
    stride = 1 << (block - 1)
    first = max(-(-core_start // stride), BORDER)
    last = min(-(-core_end // stride), grid_size(length, block) - BORDER)
    return (first, last) if first < last else (0, 0)


def span(core_start: int, core_end: int, length: int, layers: tuple[str, ...]) -> Span:
    """What a core needs computed along one axis, block by block (see the module's docstring)."""
    deepest = max(position(layer)[0] for layer in layers)
    # Per block: (start, end, depth) — outputs of the block's depth-th convolution that are needed;
    # depth 0 is the block's input itself. Block 1 needs the core's pixels and the one after it
    # (the continuity term pairs each pixel with the next).
    needs: dict[int, list[tuple[int, int, int]]] = {block: [] for block in range(1, deepest + 1)}
    needs[1].append((core_start, min(core_end + 1, length), 0))
    for layer in layers:
        block, conv = position(layer)
        first, last = owned(core_start, core_end, length, layer)
        if first < last:
            needs[block].append((first, last, conv))
    ranges: dict[int, Range] = {}
    for block in range(deepest, 0, -1):
        size = grid_size(length, block)
        if block < deepest:
            after = ranges[block + 1]
            needs[block].append((2 * after[0], 2 * after[1], CONVS_PER_BLOCK[block - 1]))
        elif not needs[block]:
            # Nothing owned this deep: still one position, near the core, as TensorFlow's convolutions
            # of an empty input return it with the input's channels, which the next one refuses.
            first = min(core_start >> (block - 1), size - 1)
            needs[block].append((first, first + 1, 0))
        start = max(0, min(first - depth for first, _, depth in needs[block]))
        end = min(size, max(last + depth for _, last, depth in needs[block]))
        ranges[block] = (start - start % 2 if block < deepest else start, end)
    blocks = tuple(ranges[block] for block in range(1, deepest + 1))
    return Span(core_start, core_end, blocks)


@cache
def block_work(layers: tuple[str, ...]) -> tuple[int, ...]:
    """Per block, multiply-adds per position of its input grid for the convolutions run there: all of
    a block's, up to the deepest layer used."""
    deepest_block, deepest_conv = max(position(layer) for layer in layers)
    work, channels = [], 3
    for block in range(1, deepest_block + 1):
        filters, total = BLOCK_FILTERS[block - 1], 0
        for _ in range(deepest_conv if block == deepest_block else CONVS_PER_BLOCK[block - 1]):
            total, channels = total + 9 * channels * filters, filters
        work.append(total)
    return tuple(work)


def work(tiles: tuple[Tile, ...], layers: tuple[str, ...]) -> int:
    """Multiply-adds of the convolutions in one forward pass over these tiles."""
    return sum(
        weight * (rows[1] - rows[0]) * (cols[1] - cols[0])
        for tile in tiles
        for weight, rows, cols in zip(block_work(layers), tile.rows.blocks, tile.cols.blocks, strict=True)
    )


def split_axis(length: int, parts: int, align: int, layers: tuple[str, ...]) -> list[Span]:
    """`parts` cores of about equal length with boundaries on multiples of `align`, and their spans."""
    bounds = sorted({0, length, *(round(length * k / parts / align) * align for k in range(1, parts))})
    return [span(a, b, length, layers) for a, b in zip(bounds, bounds[1:], strict=False)]


@lru_cache(maxsize=64)  # asked at every evaluation; an image keeps its size for a whole octave
def plan(height: int, width: int, layers: tuple[str, ...], max_tile_pixels: int) -> tuple[Tile, ...]:
    """The tiles with the least convolution work whose crops each hold at most max_tile_pixels pixels.

    One tile (the whole image) when it fits; when no split fits, the finest one tried. Work is
    separable: per block, the rows a split of the height computes times the columns a split of the
    width computes, times the block's work per position. Cores split on the deepest layer's stride.
    """
    weights = block_work(layers)
    align = 1 << (len(weights) - 1)
    axes = []
    for length in (height, width):
        splits = []
        for parts in range(1, max(1, length // max(align, MIN_CORE)) + 1):
            spans = split_axis(length, parts, align, layers)
            totals = [sum(s.blocks[k][1] - s.blocks[k][0] for s in spans) for k in range(len(weights))]
            splits.append((max(s.end - s.start for s in spans), totals, spans))
        axes.append(splits)
    fitting = [(sum(w * r * c for w, r, c in zip(weights, row_totals, col_totals, strict=True)), rows, cols)
               for row_max, row_totals, rows in axes[0]
               for col_max, col_totals, cols in axes[1]
               if row_max * col_max <= max_tile_pixels]
    if fitting:
        _, rows, cols = min(fitting, key=lambda entry: entry[0])
    else:
        rows, cols = axes[0][-1][2], axes[1][-1][2]
    return tuple(Tile(r, c) for r in rows for c in cols)


def feature_ranges(tile: Tile, height: int, width: int, layers: tuple[str, ...]) -> np.ndarray:
    """Per layer, the activations the tile owns, in the layer's grid as the tile computes it (from its
    block's range start): int32 [layers, 4] of (row start, row end, col start, col end)."""
    ranges = np.zeros((len(layers), 4), np.int32)
    for index, layer in enumerate(layers):
        block, _ = position(layer)
        for axis, (span_, length) in enumerate(((tile.rows, height), (tile.cols, width))):
            first, last = owned(span_.core_start, span_.core_end, length, layer)
            if first < last:
                offset = span_.blocks[block - 1][0]
                ranges[index, 2 * axis : 2 * axis + 2] = (first - offset, last - offset)
    return ranges


def block_cuts(tile: Tile) -> np.ndarray:
    """int32 [blocks − 1, 4]: for blocks 2 onwards, what to keep of the previous block's pooled output —
    (row offset, rows, col offset, cols). The pooled output starts at half the previous range's start."""
    cuts = np.zeros((len(tile.rows.blocks) - 1, 4), np.int32)
    for axis, span_ in enumerate((tile.rows, tile.cols)):
        for index, (previous, (start, end)) in enumerate(zip(span_.blocks, span_.blocks[1:], strict=False)):
            cuts[index, 2 * axis : 2 * axis + 2] = (start - previous[0] // 2, end - start)
    return cuts


def feature_norms(height: int, width: int, layers: tuple[str, ...], channels: tuple[int, ...]) -> np.ndarray:
    """Per layer h·w·c of the whole image's activations: the seed divides each layer's energy by it."""
    blocks = [position(layer)[0] for layer in layers]
    return np.array([grid_size(height, b) * grid_size(width, b) * c for b, c in zip(blocks, channels, strict=True)],
                    np.float32)


def pixel_ranges(tile: Tile, height: int, width: int) -> np.ndarray:
    """int32 [2, 4] in crop coordinates: row 0 the pixels the tile owns (L2 term), row 1 the pixel-pair
    grid positions it owns (continuity term: (i, j) pairs with i+1, j+1, so the image's last row and
    column start none)."""
    ranges = np.zeros((2, 4), np.int32)
    for axis, (span_, length) in enumerate(((tile.rows, height), (tile.cols, width))):
        ranges[0, 2 * axis : 2 * axis + 2] = (span_.core_start - span_.start, span_.core_end - span_.start)
        last = min(span_.core_end, length - 1)
        ranges[1, 2 * axis : 2 * axis + 2] = (span_.core_start - span_.start, max(span_.core_start, last) - span_.start)
    return ranges
