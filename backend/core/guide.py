"""Guided dreams (Google's DeepDream notebook): pull each position's features toward the guide image's
feature vector it already matches best.

For a guided layer with the dream's activations a_i (one C-vector per position i it owns, as for the
feature term) and the guide's g_j (computed once per request from the guide image):
    −coeff · Σ_i max_j ⟨a_i, g_j⟩ / (h·w·c of the whole image's layer)
whose gradient at i is −coeff·g_{j*(i)}/(h·w·c). It replaces the feature term on the guided layers. Like
that term it is a sum over owned positions, so exact tiling stays exact.

Memory: the guide is scaled so its longer side is the preset's guide_size (MAX_GUIDE_SIZE at most, checked
by the wire format), and each layer keeps at most MAX_GUIDE_VECTORS of its vectors, on a regular grid. The
scores ⟨a_i, g_j⟩ are computed GUIDE_CHUNK guide vectors at a time (never more values than the layer's own
activations, whose c ≥ 64), and only the index of the best match is kept for the gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from backend.core.errors import BAD_GUIDE, MIN_SIDE, CoreError
from backend.core.imaging import resize
from backend.core.model import network_to
from backend.core.preprocessing import preprocess

MAX_GUIDE_VECTORS = 1024  # per layer, whatever the guide: bounds the matching work per position
GUIDE_CHUNK = 64  # guide vectors matched at once


def flatten_alpha(pixels: np.ndarray) -> np.ndarray:
    """H×W×3 or H×W×4 uint8 → H×W×3 uint8 RGB, any alpha composited over white (what a viewer shows
    behind a transparent layer), so transparent parts guide toward plain white, not toward hidden colours."""
    if pixels.shape[2] == 3:
        return pixels
    alpha = pixels[..., 3:].astype(np.float32) / 255.0
    return np.rint(pixels[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def guide_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) of a guide scaled to longer side `size`; CoreError when its shorter side would be
    under MIN_SIDE, where the deepest layers would see nothing of it."""
    scale = size / max(width, height)
    shape = round(width * scale), round(height * scale)
    if min(shape) < MIN_SIDE:
        raise CoreError(BAD_GUIDE, f"a {width}×{height} guide scaled to {size} px ({shape[0]}×{shape[1]}) is under "
                        f"{MIN_SIDE} px across: use a less elongated guide or a larger guide_size")
    return shape


def scaled(rgb: np.ndarray, size: int) -> np.ndarray:
    """The guide with its longer side `size` pixels, up or down."""
    return resize(rgb, *guide_shape(rgb.shape[1], rgb.shape[0], size))


def guide_vectors(activation: np.ndarray, max_vectors: int = MAX_GUIDE_VECTORS) -> np.ndarray:
    """h×w×c activations → at most max_vectors×c of them, on a regular grid of every stride-th position."""
    height, width, channels = activation.shape
    stride = max(1, math.isqrt(height * width // max_vectors))
    while math.ceil(height / stride) * math.ceil(width / stride) > max_vectors:
        stride += 1
    return np.ascontiguousarray(activation[::stride, ::stride].reshape(-1, channels), np.float32)


@tf.custom_gradient
def best_match(a: tf.Tensor, g: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tuple[tf.Tensor, None]]]:
    """a: n×c, g: m×c → max_j ⟨a_i, g_j⟩ per row i (n values); its gradient in a is g of the best j.

    Chunked over the guide vectors; keeps only the best index for the gradient, not the n×m scores."""
    n, m = tf.shape(a)[0], tf.shape(g)[0]

    def step(start: tf.Tensor, best: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        scores = tf.matmul(a, g[start : start + GUIDE_CHUNK], transpose_b=True)
        value = tf.reduce_max(scores, axis=1)
        better = value > best
        found = tf.argmax(scores, axis=1, output_type=tf.int32) + start
        return start + GUIDE_CHUNK, tf.where(better, value, best), tf.where(better, found, index)

    _, best, index = tf.while_loop(
        lambda start, best, index: start < m, step,
        (tf.constant(0), tf.fill([n], -np.inf), tf.zeros([n], tf.int32)),
    )

    def gradient(upstream: tf.Tensor) -> tuple[tf.Tensor, None]:
        return upstream[:, tf.newaxis] * tf.gather(g, index), None

    return best, gradient


def guided_energy(a: tf.Tensor, g: tf.Tensor, owned: tf.Tensor) -> tf.Tensor:
    """Σ over the owned positions of a (1×h×w×c; owned = row start, row end, col start, col end) of
    max_j ⟨a_i, g_j⟩: the guided counterpart of the feature term's Σ a²."""
    size = tf.stack([owned[1] - owned[0], owned[3] - owned[2], -1])
    cut = tf.slice(a[0], tf.stack([owned[0], owned[2], 0]), size)  # tf.slice: its gradient is a fast pad
    return tf.reduce_sum(best_match(tf.reshape(cut, [-1, tf.shape(a)[-1]]), g))


def guide_features(
    vgg16: keras.Model, pixels: np.ndarray, size: int, guided: tuple[str, ...], layers: tuple[str, ...]
) -> list[np.ndarray | None]:
    """Per layer of `layers` (a DreamLoss's), the guide's vectors where it is in `guided`, else None.

    pixels: the guide, H×W×3 or ×4 uint8, any size; scaled to `size` (Pillow resizes RGBA with its alpha
    premultiplied), its alpha flattened, and run through VGG16 once, forward only, up to the deepest
    guided layer."""
    x = preprocess(flatten_alpha(scaled(pixels, size)))  # scaled first: a large guide is never copied whole
    h, found = tf.constant(x[np.newaxis]), {}
    for layer in network_to(vgg16, guided):
        h = layer(h)
        if layer.name in guided:
            found[layer.name] = guide_vectors(h[0].numpy())
    return [found.get(name) for name in layers]
