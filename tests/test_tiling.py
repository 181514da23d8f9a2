"""Exact tiling: the tiles' losses and gradients add up to the untiled ones (backend/core/tiling.py)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.core import tiling
from backend.core.loss import DreamLoss
from backend.core.preprocessing import preprocess
from tests.conftest import structured_image

HEIGHT, WIDTH = 400, 360  # a few hundred pixels: several tiles of at most 280×280 pixels for block5
TILE_PIXELS = 280 * 280
DEEP = ("block3_conv1", "block5_conv2")


def test_one_activation_needs_vgg16s_receptive_field():
    """Activation p of block5_conv3 sees pixels 16p − 90 … 16p + 105: VGG16's published 196 px. The crop
    holds them, plus at most one position per pool (15 px) for pooling windows to start on the grid."""
    p = 20
    crop = tiling.span(16 * p, 16 * (p + 1), 4096, ("block5_conv3",)).blocks[0]
    assert crop[0] <= 16 * p - 90 and crop[1] >= 16 * p + 106
    assert crop[1] - crop[0] <= 196 + 15
    one_conv = tiling.span(100, 101, 4096, ("block1_conv1",)).blocks
    assert one_conv == ((max(0, 100 - 1), 102),)  # a 3×3 convolution: one pixel each side


def test_blocks_narrow_and_pool_on_the_images_grid():
    for tile in tiling.plan(2048, 2048, DEEP, 400_000):
        for span, length in ((tile.rows, 2048), (tile.cols, 2048)):
            for block, ((start, end), (next_start, next_end)) in enumerate(
                    zip(span.blocks, span.blocks[1:], strict=False), 1):
                assert start % 2 == 0  # a pool follows
                assert start // 2 <= next_start and next_end <= start // 2 + (end - start) // 2
                assert end <= tiling.grid_size(length, block)
            widths = [(end - start) << block for block, (start, end) in enumerate(span.blocks)]
            assert widths[-1] < widths[0]  # the halo narrows with depth


@pytest.mark.parametrize("layers", [("block1_conv2",), ("block3_conv3",), DEEP, ("block5_conv3",)])
@pytest.mark.parametrize("height,width,budget",
                         [(HEIGHT, WIDTH, TILE_PIXELS), (2048, 2048, 1_200_000), (33, 900, 9000), (32, 32, 10**6)])
def test_cores_partition_the_image_and_crops_fit(layers, height, width, budget):
    tiles = tiling.plan(height, width, layers, budget)
    owner = np.zeros((height, width), np.int32)
    for tile in tiles:
        owner[tile.rows.core_start : tile.rows.core_end, tile.cols.core_start : tile.cols.core_end] += 1
        for span, length in ((tile.rows, height), (tile.cols, width)):
            assert span.start <= span.core_start and span.end >= min(length, span.core_end + 1)
            # Never empty, even where the tile owns nothing that deep: TensorFlow mishandles empty convolutions.
            assert all(end > start for start, end in span.blocks)
    assert (owner == 1).all()
    # Within the budget, or, where no split is that small, the finest split there is.
    assert max(tile.pixels for tile in tiles) <= budget or tiles == tiling.plan(height, width, layers, 0)


def loss_pair(engine, layers: tuple[str, ...], max_tile_pixels: int, convolutions: str | None = None) -> DreamLoss:
    return DreamLoss(engine.vgg16, layers, max_tile_pixels, convolutions)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return preprocess(structured_image(WIDTH, HEIGHT, seed=5)).astype(np.float32)


@pytest.mark.parametrize("coeffs,continuity,dream_l2", [
    ([0.02, 0.05], 0.0, 0.0),  # the feature term alone
    ([0.0, 0.0], 0.3, 0.0),  # continuity alone: its pixel pairs cross the seams
    ([0.0, 0.0], 0.0, 0.05),  # L2 alone
    ([0.02, 0.05], 0.1, 0.02),
], ids=["features", "continuity", "l2", "all"])
@pytest.mark.parametrize("convolutions", ["tensorflow", "winograd"])  # Winograd's in every layer
def test_tiled_loss_and_gradient_equal_untiled(engine, x, coeffs, continuity, dream_l2, convolutions):
    whole = loss_pair(engine, DEEP, 10**9, convolutions)
    tiled = loss_pair(engine, DEEP, TILE_PIXELS, convolutions)
    assert len(whole.tiles(HEIGHT, WIDTH)) == 1 and len(tiled.tiles(HEIGHT, WIDTH)) >= 4
    expected_loss, expected_gradient = whole.bind(coeffs, continuity, dream_l2)(x)
    loss, gradient = tiled.bind(coeffs, continuity, dream_l2)(x)
    assert abs(expected_loss) > 0 and np.abs(expected_gradient).max() > 0
    assert loss == pytest.approx(expected_loss, rel=1e-4)
    # TensorFlow's convolutions give a tile the very values the whole image has. Winograd's round-off
    # (~1e-6) depends on where a value falls in its 4×4 output tile, so a near-tie in a max-pool or a
    # ReLU can go the other way in a tile and send one deep activation's gradient to a neighbour: one
    # receptive field's worth of pixels differs by ~1 % of the gradient's largest (2.5e-3 overall in
    # L2 with 30 tiles). A missing halo is off by over 1e-2 (test_without_the_halo_tiles_are_wrong).
    tolerance, local = (1e-4, 1e-4) if convolutions == "tensorflow" else (5e-3, 5e-2)
    assert np.linalg.norm(gradient - expected_gradient) <= tolerance * np.linalg.norm(expected_gradient)
    assert np.abs(gradient - expected_gradient).max() <= local * np.abs(expected_gradient).max()


def test_without_the_halo_tiles_are_wrong(engine, x, monkeypatch, request):
    """The check above can fail: tiles that forget the reach of the convolutions between pools see
    padding the whole image does not have."""
    expected_loss, expected_gradient = loss_pair(engine, DEEP, 10**9).bind([0.02, 0.05], 0.0, 0.0)(x)
    monkeypatch.setattr(tiling, "CONVS_PER_BLOCK", (0,) * 5)
    tiling.plan.cache_clear()  # plans made with the real reach
    request.addfinalizer(tiling.plan.cache_clear)
    short = loss_pair(engine, DEEP, TILE_PIXELS)
    assert len(short.tiles(HEIGHT, WIDTH)) > 1
    loss, gradient = short.bind([0.02, 0.05], 0.0, 0.0)(x)
    assert np.linalg.norm(gradient - expected_gradient) > 1e-2 * np.linalg.norm(expected_gradient)


def test_a_tiled_dream_looks_like_the_untiled_one(engine, monkeypatch):
    """End to end through the engine: one iteration, with octaves, tiled and not; L-BFGS amplifies the
    1e-6 differences a little, so the pixels agree within a couple of levels, not exactly."""
    rgb = structured_image(200, 180, seed=2)
    settings = engine.settings("doggos", {"features": {"block3_conv2": 0.05}, "octaves": 2, "octave_scale": 1.3})
    images = []
    for tile_pixels in (10**9, 120 * 120):
        monkeypatch.setattr(engine, "max_tile_pixels", tile_pixels)
        monkeypatch.setattr(engine, "_losses", type(engine._losses)())
        images.append(np.int16([image for _, _, image in engine.dream_rgb(rgb, settings, 2, seed=4)][-1]))
    assert len(engine._losses[("block3_conv2",)].tiles(180, 200)) > 1
    assert np.abs(images[0] - np.int16(rgb)).mean() > 2  # it did dream
    assert np.abs(images[0] - images[1]).max() <= 2
