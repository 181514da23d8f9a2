"""The seed article's Deep Dream loss and its gradient with respect to the image.

x is the preprocessed image, H×W×3. For each feature layer with activation a (h×w×c):
    −coeff · Σ a[2:h−2, 2:w−2, :]² / (h·w·c)
plus continuity · Σ ((x[i+1,j]−x[i,j])² + (x[i,j+1]−x[i,j])²)^1.25 / (H·W·3) over the (H−1)×(W−1) grid,
plus dream_l2 · Σ x² / (H·W·3).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from backend.core.dream import LossAndGradient


def feature_term(activations: list[tf.Tensor], coeffs: tf.Tensor) -> tf.Tensor:
    """−Σ coeff · (energy of the non-border activations) / (h·w·c), over the feature layers."""
    total = tf.constant(0.0)
    for index, a in enumerate(activations):
        shape = tf.shape(a)
        h, w, c = shape[1], shape[2], shape[3]
        inner = a[:, 2 : h - 2, 2 : w - 2, :]
        size = tf.cast(h * w * c, tf.float32)
        total -= coeffs[index] * tf.reduce_sum(tf.square(inner)) / size
    return total


def continuity_term(x: tf.Tensor) -> tf.Tensor:
    """Σ ((x[i+1,j]−x[i,j])² + (x[i,j+1]−x[i,j])²)^1.25 / (H·W·3) for x of shape H×W×3."""
    corner = x[:-1, :-1, :]
    down = tf.square(x[1:, :-1, :] - corner)
    right = tf.square(x[:-1, 1:, :] - corner)
    return tf.reduce_sum(tf.pow(down + right, 1.25)) / tf.cast(tf.size(x), tf.float32)


def l2_term(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.square(x)) / tf.cast(tf.size(x), tf.float32)


class DreamLoss:
    """Loss and input gradient for one set of feature layers; weights are arguments, so no retracing.

    Each new image size traces the graph once. Only the input gradient is asked for: no weight
    gradients are computed.
    """

    def __init__(self, features: keras.Model) -> None:
        self._features = features
        spec = [
            tf.TensorSpec([None, None, 3], tf.float32),
            tf.TensorSpec([len(features.outputs)], tf.float32),
            tf.TensorSpec([], tf.float32),
            tf.TensorSpec([], tf.float32),
        ]
        self._evaluate = tf.function(self._loss_and_gradient, input_signature=spec, reduce_retracing=True)

    def _loss_and_gradient(
        self, x: tf.Tensor, coeffs: tf.Tensor, continuity: tf.Tensor, dream_l2: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            activations = self._features(x[tf.newaxis], training=False)
            if not isinstance(activations, (list, tuple)):
                activations = [activations]
            loss = feature_term(list(activations), coeffs) + continuity * continuity_term(x) + dream_l2 * l2_term(x)
        return loss, tape.gradient(loss, x)

    def bind(self, coeffs: list[float], continuity: float, dream_l2: float) -> LossAndGradient:
        """x (H×W×3 float32) → (loss, ∂loss/∂x as float32) for these weights."""
        args = (
            tf.constant(coeffs, tf.float32),
            tf.constant(continuity, tf.float32),
            tf.constant(dream_l2, tf.float32),
        )

        def loss_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
            loss, gradient = self._evaluate(tf.convert_to_tensor(x, dtype=tf.float32), *args)
            return float(loss), gradient.numpy()

        return loss_and_gradient
