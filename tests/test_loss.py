"""The loss and its gradient against an independent NumPy implementation of the seed's formulas."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from backend.core.loss import DreamLoss
from backend.core.preprocessing import preprocess
from backend.core.presets import Preset
from tests.conftest import structured_image

LAYERS = {"block2_conv2": 0.05, "block3_conv1": 0.02}


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return preprocess(structured_image(44, 36, seed=3))


def numpy_feature_term(activations: list[np.ndarray], coeffs: list[float]) -> float:
    total = 0.0
    for a, coeff in zip(activations, coeffs, strict=True):
        h, w, c = a.shape
        total -= coeff * np.sum(np.float64(a[2 : h - 2, 2 : w - 2, :]) ** 2) / (h * w * c)
    return total


def numpy_continuity(x: np.ndarray) -> tuple[float, np.ndarray]:
    """Value and gradient of Σ ((x[i+1,j]−x[i,j])² + (x[i,j+1]−x[i,j])²)^1.25 / (H·W·3), by explicit loops over j."""
    x = np.float64(x)
    height, width, _ = x.shape
    value, grad = 0.0, np.zeros_like(x)
    for j in range(width - 1):
        down = x[1:, j] - x[:-1, j]
        right = x[:-1, j + 1] - x[:-1, j]
        d = down**2 + right**2
        value += np.sum(d**1.25)
        g = 1.25 * d**0.25
        grad[1:, j] += g * 2 * down
        grad[:-1, j + 1] += g * 2 * right
        grad[:-1, j] -= g * 2 * (down + right)
    n = height * width * 3
    return value / n, grad / n


def evaluate(engine, x: np.ndarray, features: dict[str, float], continuity: float, dream_l2: float):
    return engine.loss_for(Preset(features, continuity, dream_l2, 0.0))(x)


def test_feature_term_matches_numpy(engine, x):
    loss, _ = evaluate(engine, x, LAYERS, 0.0, 0.0)
    # An independent path to the activations: a Keras model of VGG16's own graph, not our tiled loop.
    features = keras.Model(engine.vgg16.input, [engine.vgg16.get_layer(name).output for name in LAYERS])
    activations = features(x[np.newaxis])
    expected = numpy_feature_term([np.asarray(a)[0] for a in activations], list(LAYERS.values()))
    assert expected < 0
    assert loss == pytest.approx(expected, rel=1e-4)


def test_continuity_term_and_gradient_match_numpy(engine, x):
    loss, grad = evaluate(engine, x, {"block1_conv1": 0.0}, 0.7, 0.0)
    value, expected_grad = numpy_continuity(x)
    assert loss == pytest.approx(0.7 * value, rel=1e-4)
    np.testing.assert_allclose(grad, 0.7 * expected_grad, rtol=1e-3, atol=1e-6 * np.abs(expected_grad).max())


def test_l2_term_and_gradient_match_numpy(engine, x):
    loss, grad = evaluate(engine, x, {"block1_conv1": 0.0}, 0.0, 0.3)
    n = x.size
    assert loss == pytest.approx(0.3 * np.sum(np.float64(x) ** 2) / n, rel=1e-5)
    np.testing.assert_allclose(grad, 0.3 * 2 * np.float64(x) / n, rtol=1e-4, atol=1e-9)


def test_total_is_the_sum_of_the_terms(engine, x):
    total, _ = evaluate(engine, x, LAYERS, 0.1, 0.02)
    parts = [evaluate(engine, x, LAYERS, 0.0, 0.0)[0], evaluate(engine, x, {"block1_conv1": 0.0}, 0.1, 0.0)[0],
             evaluate(engine, x, {"block1_conv1": 0.0}, 0.0, 0.02)[0]]
    assert total == pytest.approx(sum(parts), rel=1e-4)


@pytest.mark.parametrize("convolutions", ["tensorflow", "winograd"])
@pytest.mark.parametrize("continuity, dream_l2", [(0.0, 0.0), (0.1, 0.02)])
def test_gradient_matches_finite_differences(engine, x, continuity, dream_l2, convolutions):
    """Central differences agree with the gradient's directional derivative, along random directions
    and along directions that lean on the gradient (where float32 round-off matters least); with
    TensorFlow's convolutions and with Winograd's in every layer."""
    layers = tuple(sorted(LAYERS))
    loss = DreamLoss(engine.vgg16, layers, engine.max_tile_pixels, convolutions).bind(
        [LAYERS[name] for name in layers], continuity, dream_l2)
    assert_gradient_matches_finite_differences(loss, x, 8.0)


def assert_gradient_matches_finite_differences(loss, x: np.ndarray, step: float) -> None:
    """Central differences of `loss` at x against its gradient, along four directions."""
    x64 = np.float64(x)
    _, grad = loss(x)
    grad64 = np.float64(grad)
    rng = np.random.default_rng(1)
    # ReLU and max-pool kinks (and a guide's best-match switches) make the random directions the noisier check.
    for lean, tolerance in [(0.0, 0.25), (1.0, 2e-3)] * 2:
        direction = rng.standard_normal(x.shape)
        direction = direction / np.linalg.norm(direction) + lean * grad64 / np.linalg.norm(grad64)
        direction /= np.linalg.norm(direction)
        plus, _ = loss(np.float32(x64 + step * direction))
        minus, _ = loss(np.float32(x64 - step * direction))
        numeric = (plus - minus) / (2 * step)
        assert numeric == pytest.approx(float(np.sum(grad64 * direction)), rel=tolerance)


def value_and_input_gradient(conv, h, upstream) -> tuple[np.ndarray, np.ndarray]:
    """A layer's output and the gradient of <output, upstream> with respect to its input h."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(h)
        y = conv(h)
    return y.numpy(), tape.gradient(y, h, output_gradients=upstream).numpy()


def test_the_mask_keeping_convolution_is_tensorflows(engine):
    """conv_relu_keeping_mask keeps only where the output is positive for its gradient: value and input
    gradient must still be those of VGG16's own layer."""
    import tensorflow as tf

    from backend.core.loss import conv_relu_keeping_mask

    layer = engine.vgg16.get_layer("block2_conv1")
    h = tf.random.stateless_normal([1, 19, 23, 64], seed=[4, 2])
    upstream = tf.random.stateless_normal([1, 19, 23, 128], seed=[5, 2])
    (expected, expected_gradient), (y, gradient) = (
        value_and_input_gradient(conv, h, upstream)
        for conv in (layer, lambda t: conv_relu_keeping_mask(t, tf.convert_to_tensor(layer.kernel),
                                                             tf.convert_to_tensor(layer.bias))))
    assert (expected > 0).any() and (expected == 0).any()  # both sides of the ReLU are exercised
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-4, atol=1e-4 * np.abs(expected_gradient).max())
