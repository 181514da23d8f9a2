"""The seed article's Deep Dream loss and its gradient with respect to the image, tile by tile.

x is the preprocessed image, H×W×3. For each feature layer with activation a (h×w×c):
    −coeff · Σ a[2:h−2, 2:w−2, :]² / (h·w·c)
plus continuity · Σ ((x[i+1,j]−x[i,j])² + (x[i,j+1]−x[i,j])²)^1.25 / (H·W·3) over the (H−1)×(W−1) grid,
plus dream_l2 · Σ x² / (H·W·3).
With a guide image, its layers' feature term is the guided one instead (backend/core/guide.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from backend.core import guide, tiling, winograd
from backend.core.dream import LossAndGradient
from backend.core.model import device_name, network_to


def feature_term(
    activations: list[tf.Tensor], coeffs: tf.Tensor, ranges: tf.Tensor, norms: tf.Tensor,
    guides: Sequence[tf.Tensor | None] = (),
) -> tf.Tensor:
    """−Σ coeff · (energy of the activations this tile owns) / (h·w·c of the whole image's layer).

    ranges[k] = (row start, row end, col start, col end) in layer k's activation grid of the crop;
    for a whole image they are the non-border activations [2:h−2, 2:w−2], as in the seed.
    """
    total = tf.constant(0.0)
    for index, a in enumerate(activations):
        r = ranges[index]
        if guides and guides[index] is not None:  # a guided layer: its guide's vectors
            total -= coeffs[index] * guide.guided_energy(a, guides[index], r) / norms[index]
            continue
        # Sum over channels before cutting out the owned positions: the cut's gradient is then
        # 1/c the size (slicing the activations themselves made block1 evaluations 3× slower).
        energy = tf.reduce_sum(tf.square(a[0]), axis=-1)
        total -= coeffs[index] * tf.reduce_sum(energy[r[0] : r[1], r[2] : r[3]]) / norms[index]
    return total


@tf.custom_gradient
def power_5_4(t: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
    """t^1.25 for t ≥ 0 as t·⁴√t, with its derivative 1.25·⁴√t (finite at 0): cheaper than tf.pow."""
    root = tf.sqrt(tf.sqrt(t))
    return t * root, lambda upstream: upstream * 1.25 * root


def relu_keeping_mask(
    convolve: Callable[[tf.Tensor], tf.Tensor], input_gradient: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """(x, bias) → ReLU(convolve(x) + bias), keeping for the input gradient only where the output is
    positive (1 byte per value) instead of the output itself (4 bytes), which TensorFlow's ReLU gradient
    holds until the backward pass reaches it. Where nothing else needs the output (a convolution that
    feeds the next one), that is ¾ of its memory — most of a tile's, with block1_conv1 the largest.
    input_gradient(upstream, x's shape) is the convolution's transpose."""

    @tf.custom_gradient
    def conv_relu(x: tf.Tensor, bias: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tuple[tf.Tensor, None]]]:
        y = tf.nn.relu(tf.nn.bias_add(convolve(x), bias))
        positive, shape = y > 0, tf.shape(x)

        def gradient(upstream: tf.Tensor) -> tuple[tf.Tensor, None]:
            return input_gradient(tf.where(positive, upstream, 0.0), shape), None

        return y, gradient

    return conv_relu


def conv_relu_keeping_mask(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """VGG16's 3×3 'same' convolution and ReLU with TensorFlow's convolutions, keeping a ReLU mask."""
    return relu_keeping_mask(
        lambda t: tf.nn.conv2d(t, kernel, 1, "SAME"),
        lambda upstream, shape: tf.nn.conv2d_transpose(upstream, kernel, shape, 1, "SAME"),
    )(x, bias)


def winograd_relu_keeping_mask(x: tf.Tensor, transformed: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """The same with Winograd's convolutions: `transformed` is winograd.kernels(layer), `kernel` the layer's."""
    channels, filters = transformed.shape[1:]

    def input_gradient(upstream: tf.Tensor, _: tf.Tensor) -> tf.Tensor:
        # Its kernel's transform when the gradient reaches the layer, not at the start of the evaluation
        # (it depends on the weights alone): all of them at once held ~200 MB more at the 2048² peak.
        with tf.control_dependencies([upstream]):
            flipped = winograd.input_gradient_kernel(kernel)
        return winograd.traced(filters, channels)(upstream, flipped)

    return relu_keeping_mask(lambda t: winograd.traced(channels, filters)(t, transformed), input_gradient)(x, bias)


def continuity_term(x: tf.Tensor, grid: tf.Tensor) -> tf.Tensor:
    """Σ ((x[i+1,j]−x[i,j])² + (x[i,j+1]−x[i,j])²)^1.25 over the grid positions (i, j) in `grid`
    (row start, row end, col start, col end); not yet divided by the pixel count."""
    corner = x[grid[0] : grid[1], grid[2] : grid[3], :]
    down = tf.square(x[grid[0] + 1 : grid[1] + 1, grid[2] : grid[3], :] - corner)
    right = tf.square(x[grid[0] : grid[1], grid[2] + 1 : grid[3] + 1, :] - corner)
    return tf.reduce_sum(power_5_4(down + right))


def l2_term(x: tf.Tensor, pixels: tf.Tensor) -> tf.Tensor:
    """Σ x² over the pixels (row start, row end, col start, col end); not yet divided by the pixel count."""
    return tf.reduce_sum(tf.square(x[pixels[0] : pixels[1], pixels[2] : pixels[3], :]))


class DreamLoss:
    """Loss and input gradient for one set of feature layers, computed tile by tile.

    The traced function takes a crop, what to keep of each block and which terms it owns
    (backend/core/tiling.py) as arguments, as it does the weights, so neither a new size nor a new tile
    retraces it. Only the input gradient is asked for: no weight gradients are computed.

    convolutions: auto (Winograd where it is faster, on a CPU: backend/core/winograd.py), tensorflow or
    winograd (every layer); None reads $DEEP_DREAM_CONVOLUTIONS (auto when unset).
    """

    def __init__(
        self, vgg16: keras.Model, layers: tuple[str, ...], max_tile_pixels: int, convolutions: str | None = None
    ) -> None:
        self.layers = layers
        self._network = network_to(vgg16, layers)
        choice, device = convolutions or winograd.choice(), device_name()
        self.winograd_layers = tuple(layer.name for layer in self._network if isinstance(layer, keras.layers.Conv2D)
                                     and winograd.use_winograd(layer, choice, device))
        self.max_tile_pixels = max_tile_pixels
        self._channels = tuple(int(vgg16.get_layer(name).filters) for name in layers)
        n = len(layers)
        pools = sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in self._network)
        spec = [
            tf.TensorSpec([None, None, 3], tf.float32),  # the crop
            tf.TensorSpec([pools, 4], tf.int32),  # what each block keeps of the pooled output before it
            tf.TensorSpec([n], tf.float32),  # coefficients
            tf.TensorSpec([], tf.float32),  # continuity
            tf.TensorSpec([], tf.float32),  # dream_l2
            tf.TensorSpec([n, 4], tf.int32),  # owned activations per layer
            tf.TensorSpec([n], tf.float32),  # h·w·c per layer, whole image
            tf.TensorSpec([2, 4], tf.int32),  # owned pixels (L2), owned pixel pairs (continuity)
            tf.TensorSpec([], tf.float32),  # H·W·3, whole image
        ]
        # No AutoGraph: the loss has no tensor-dependent control flow, and converting the convolutions'
        # closures afresh for every layer made a Winograd loss take 2 s longer to trace than to run.
        self._spec = spec
        self._evaluate = tf.function(self._tile_loss_and_gradient, input_signature=spec, autograph=False)
        self._guided: dict[tuple[bool, ...], Callable[..., tuple[tf.Tensor, tf.Tensor]]] = {}

    def _guided_evaluate(self, guided: tuple[bool, ...]) -> Callable[..., tuple[tf.Tensor, tf.Tensor]]:
        """The traced loss with a guide on the layers marked in `guided`, whose vectors (m×c, any m) follow
        the unguided function's arguments. Traced once per such set of layers."""
        if guided not in self._guided:
            fixed = len(self._spec)
            vectors = [tf.TensorSpec([None, c], tf.float32) for c, on in zip(self._channels, guided, strict=True) if on]

            def evaluate(*args: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                given = iter(args[fixed:])
                per_layer = [next(given) if on else None for on in guided]
                return self._tile_loss_and_gradient(*args[:fixed], guides=per_layer)

            self._guided[guided] = tf.function(evaluate, input_signature=[*self._spec, *vectors], autograph=False)
        return self._guided[guided]

    def _activations(self, x: tf.Tensor, cuts: tf.Tensor) -> list[tf.Tensor]:
        """The feature layers' activations over the ranges the tile computes: VGG16 block by block,
        each pool's output cut down to the next block's range."""
        found, h, pool = {}, x[tf.newaxis], 0
        for layer, following in zip(self._network, [*self._network[1:], None], strict=True):
            if isinstance(layer, keras.layers.MaxPooling2D):
                # tf.slice, not h[a:b]: its gradient (a pad) was 10× faster than the strided slice's.
                cut = cuts[pool]
                start, size = tf.stack([0, cut[0], cut[2], 0]), tf.stack([1, cut[1], cut[3], h.shape[-1]])
                h, pool = tf.slice(layer(h), start, size), pool + 1
            elif layer.name in self.winograd_layers:
                h = winograd_relu_keeping_mask(h, winograd.kernels(layer), tf.convert_to_tensor(layer.kernel),
                                               tf.convert_to_tensor(layer.bias))
                found[layer.name] = h
            elif layer.name in self.layers or not isinstance(following, keras.layers.Conv2D):
                h = found[layer.name] = layer(h)  # its values are needed backwards: by the loss, or a pool
            else:
                h = conv_relu_keeping_mask(h, tf.convert_to_tensor(layer.kernel), tf.convert_to_tensor(layer.bias))
        return [found[name] for name in self.layers]

    def _tile_loss_and_gradient(
        self,
        x: tf.Tensor,
        cuts: tf.Tensor,
        coeffs: tf.Tensor,
        continuity: tf.Tensor,
        dream_l2: tf.Tensor,
        ranges: tf.Tensor,
        norms: tf.Tensor,
        pixels: tf.Tensor,
        size: tf.Tensor,
        guides: Sequence[tf.Tensor | None] = (),
    ) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            loss = (
                feature_term(self._activations(x, cuts), coeffs, ranges, norms, guides)
                + (continuity * continuity_term(x, pixels[1]) + dream_l2 * l2_term(x, pixels[0])) / size
            )
        return loss, tape.gradient(loss, x)

    def tiles(self, height: int, width: int) -> tuple[tiling.Tile, ...]:
        return tiling.plan(height, width, self.layers, self.max_tile_pixels)

    def bind(
        self, coeffs: list[float], continuity: float, dream_l2: float, guides: Sequence[np.ndarray | None] = ()
    ) -> LossAndGradient:
        """x (H×W×3 float32) → (loss, ∂loss/∂x as float32) for these weights: the tiles' sum. guides: per
        layer, a guide's vectors (backend/core/guide.py: guide_features) or None; () = no guide."""
        weights = (
            tf.constant(coeffs, tf.float32),
            tf.constant(continuity, tf.float32),
            tf.constant(dream_l2, tf.float32),
        )
        evaluate, vectors = self._evaluate, ()
        if any(g is not None for g in guides):
            evaluate = self._guided_evaluate(tuple(g is not None for g in guides))
            vectors = tuple(tf.constant(g) for g in guides if g is not None)

        def loss_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
            height, width = x.shape[:2]
            tiles = self.tiles(height, width)
            norms = tf.constant(tiling.feature_norms(height, width, self.layers, self._channels))
            size = tf.constant(float(x.size))
            gradient = np.zeros(x.shape, np.float32) if len(tiles) > 1 else None
            total = 0.0
            for tile in tiles:
                rows, cols = slice(tile.rows.start, tile.rows.end), slice(tile.cols.start, tile.cols.end)
                loss, tile_gradient = evaluate(
                    tf.convert_to_tensor(x[rows, cols], dtype=tf.float32),
                    tf.constant(tiling.block_cuts(tile)),
                    *weights,
                    tf.constant(tiling.feature_ranges(tile, height, width, self.layers)),
                    norms,
                    tf.constant(tiling.pixel_ranges(tile, height, width)),
                    size,
                    *vectors,
                )
                total += float(loss)
                if gradient is None:
                    return total, tile_gradient.numpy()
                gradient[rows, cols] += tile_gradient.numpy()
            return total, gradient

        return loss_and_gradient
