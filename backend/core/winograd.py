"""Winograd's F(4×4, 3×3) for VGG16's 3×3 'same' convolutions (Lavin & Gray, "Fast Algorithms for
Convolutional Neural Networks", 2015): a quarter of the multiplications of a direct convolution.

The padded image is cut into 6×6 tiles overlapping by 2 (stride 4). Each tile d becomes V = Bᵀ d B, the
kernel g becomes U = G g Gᵀ (once per layer, in float64), and the output tile is Y = Aᵀ M A with
M = Σ_channels U ⊙ V — for the 36 positions of the 6×6 tile, one matrix product over the channels
each: one batched matmul. The transforms are products with 6×6 and 4×6 matrices along one axis at a
time. Only ordinary TensorFlow ops: nothing to compile, no new build requirement.

The input gradient of a 3×3 'same' convolution is the same convolution of the output gradient with the
kernel flipped in space and its channels swapped, so backwards is one more forward with that kernel.

Which layers use it: on a CPU only (cuDNN has fast paths of its own), for layers whose convolution it
makes faster — see `CHOICE_VARIABLE` and `use_winograd`.
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from backend.core.vgg16_layers import position

BT = np.array([[4, 0, -5, 0, 1, 0],
               [0, -4, -4, 1, 1, 0],
               [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0],
               [0, 4, 0, -5, 0, 1]], np.float64)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 1, 1, 0],
               [0, 1, -1, 2, -2, 0],
               [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], np.float64)
M, ALPHA = 4, 6  # output tile side, input tile side (M + 3 − 1)

CHOICE_VARIABLE = "DEEP_DREAM_CONVOLUTIONS"  # auto (the default), tensorflow, or winograd (every layer)
CHOICES = ("auto", "tensorflow", "winograd")
# Auto: the layers of block 3 onwards. `layer_speedups` of `python -m backend bench` (README, Speed),
# forward + input gradient against tf.nn.conv2d at 900×450: block1_conv2 0.77–0.93×, block2_conv1
# 0.89–1.12×, block2_conv2 1.4–2.0×, blocks 3–5 1.5–2.9×. block2_conv2 stays TensorFlow's all the same: its
# transformed tiles (2.25 × its input and output, at half the image's side) made Winograd's tiles 0.6 of
# TensorFlow's in pixels (before bands, below), which cut a 1-MP image in two and cost more than it gained.
FIRST_BLOCK = 3
# Transformed tiles alive at once, in floats (64 MB): `convolve` does an image in bands of tile rows that
# fit. Whole, block 3's took the 2048² peak from ~2.3 to 3.05 GB at TensorFlow's tile size; so the tiles
# were made 0.82 of TensorFlow's (6 at 2048² instead of 4, 1.27–1.33 × rather than ~1.5 ×). In bands (and
# with the input gradient's kernels made as the gradient reaches them) TensorFlow's tiles stay under 2.5 GB.
# A 900×450 image is one band in every layer.
BAND_FLOATS = 2**24


def transform_kernel(kernel: np.ndarray) -> np.ndarray:
    """3×3×C×K kernel → U, 36×C×K float32, index 6·a + b for U[a, b] = (G g Gᵀ)[a, b]; in float64."""
    by_row = np.tensordot(G, np.float64(kernel).reshape(3, 3, -1), axes=(1, 0))  # a, s, (c, k)
    return np.float32((G[np.newaxis] @ by_row).reshape(ALPHA * ALPHA, *kernel.shape[2:]))


def convolve(x: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """3×3 'same' convolution (cross-correlation, as tf.nn.conv2d) of x, 1×H×W×C, with the kernel whose
    transform is u (36×C×K, `transform_kernel`): 1×H×W×K.

    The image is done in bands of tile rows, one after the other, so that the transformed tiles (2.25 × the
    band's input and output) alive at once stay under `BAND_FLOATS` whatever the image's size."""
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    channels, filters = x.shape[-1], u.shape[-1]
    rows, cols = (height + M - 1) // M, (width + M - 1) // M  # tiles down and across
    # Padded to M·tiles + 2: one zero before (the 'same' border), the rest after.
    padded = tf.pad(x[0], [[1, M * rows + 1 - height], [1, M * cols + 1 - width], [0, 0]])
    band = tf.maximum(1, BAND_FLOATS // (ALPHA * ALPHA * cols * max(channels, filters)))  # tile rows per band
    bands = (rows + band - 1) // band

    def one_band(i: tf.Tensor, done: tf.TensorArray) -> tuple[tf.Tensor, tf.TensorArray]:
        first = i * band
        count = tf.minimum(band, rows - first)
        piece = padded[M * first : M * (first + count) + 2]
        out_rows = tf.minimum(M * count, height - M * first)
        return i + 1, done.write(i, band_convolve(piece, u, count, cols, out_rows, width))

    _, done = tf.while_loop(lambda i, _: i < bands, one_band,
                            (tf.constant(0), tf.TensorArray(tf.float32, bands, infer_shape=False)),
                            parallel_iterations=1)  # one band at a time: that is the point
    return tf.reshape(done.concat(), [1, height, width, filters])


def band_convolve(padded: tf.Tensor, u: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor, height: tf.Tensor,
                  width: tf.Tensor) -> tf.Tensor:
    """The convolution of a padded band (M·rows + 2)×(M·cols + 2)×C: height×width×K.

    Tiles are cut and put back with gathers of whole channel vectors, one pass each; the transforms are
    single matrix products with Bᵀ⊗Bᵀ (36×36) and Aᵀ⊗Aᵀ (16×36) over the leading axis. (Strided slices,
    concatenations, transposes and broadcast batched products each cost more than the gather.)"""
    channels, filters = padded.shape[-1], u.shape[-1]
    flat = tf.reshape(padded, [-1, channels])
    # d[(k, l), (i, j)]: tile (i, j)'s position (k, l) is padded row M·i + k, column M·j + l.
    offsets = tf.range(ALPHA)
    down = tf.reshape(offsets, [ALPHA, 1, 1, 1]) + tf.reshape(M * tf.range(rows), [1, 1, -1, 1])
    across = tf.reshape(offsets, [1, ALPHA, 1, 1]) + tf.reshape(M * tf.range(cols), [1, 1, 1, -1])
    d = tf.gather(flat, tf.reshape(down * (M * cols + 2) + across, [-1]))
    v = tf.reshape(tf.constant(np.kron(BT, BT), tf.float32) @ tf.reshape(d, [ALPHA * ALPHA, -1]),
                   [ALPHA * ALPHA, rows * cols, channels])
    y = tf.constant(np.kron(AT, AT), tf.float32) @ tf.reshape(v @ u, [ALPHA * ALPHA, -1])  # (p, q), (i, j, filter)
    # Output (h, w) is tile (h // M, w // M)'s position (h % M, w % M).
    h, w = tf.range(height)[:, tf.newaxis], tf.range(width)[tf.newaxis]
    back = (h % M * M + w % M) * (rows * cols) + h // M * cols + w // M
    return tf.gather(tf.reshape(y, [-1, filters]), back)


@functools.cache
def traced(channels: int, filters: int) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """`convolve` traced once for these channel counts and called as one op in every loss: tracing its 134
    ops afresh per layer and per preset made `serve` take twice as long to start as with TensorFlow's."""
    spec = [tf.TensorSpec([1, None, None, channels], tf.float32), tf.TensorSpec([ALPHA * ALPHA, channels, filters])]
    return tf.function(convolve, input_signature=spec, autograph=False)


class Kernels:
    """Per layer, the transform of its kernel for the forward convolution, computed once in float64 and
    shared by every loss that uses the layer (the weights never change)."""

    def __init__(self) -> None:
        self._cache: weakref.WeakKeyDictionary[keras.layers.Layer, tf.Tensor] = weakref.WeakKeyDictionary()

    def __call__(self, layer: keras.layers.Layer) -> tf.Tensor:
        if layer not in self._cache:
            with tf.init_scope():  # an eager tensor, captured by every traced loss, even when first asked while tracing
                self._cache[layer] = tf.constant(transform_kernel(np.asarray(layer.kernel)))
        return self._cache[layer]


kernels = Kernels()


def input_gradient_kernel(kernel: tf.Tensor) -> tf.Tensor:
    """The transform of the flipped kernel with its channels swapped, in float32 within the graph, for the
    input gradient: two small products per evaluation (~1 % of one) instead of a second cached transform
    per layer (~200 MB for VGG16's deeper layers), which would take the 2048² bound."""
    g = tf.reshape(tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2]), [3, 3, -1])
    g_rows = tf.constant(G, tf.float32)
    by_row = tf.tensordot(g_rows, g, 1)  # a, s, (k, c)
    return tf.reshape(g_rows[tf.newaxis] @ by_row, [ALPHA * ALPHA, kernel.shape[3], kernel.shape[2]])


def choice() -> str:
    """The convolutions asked for in $DEEP_DREAM_CONVOLUTIONS (auto when unset)."""
    value = os.environ.get(CHOICE_VARIABLE, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"${CHOICE_VARIABLE} must be one of {', '.join(CHOICES)}, not {value!r}")
    return value


def use_winograd(layer: keras.layers.Conv2D, convolutions: str, device: str) -> bool:
    """Whether `layer` runs as Winograd: `convolutions` is auto, tensorflow or winograd (every layer, for
    tests); auto means on a CPU, for the layers it makes faster."""
    if convolutions == "tensorflow":
        return False
    if convolutions == "winograd":
        return True
    return not device.startswith("GPU") and position(layer.name)[0] >= FIRST_BLOCK
