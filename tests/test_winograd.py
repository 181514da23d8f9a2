"""Winograd's F(4×4, 3×3) convolutions (backend/core/winograd.py) against TensorFlow's, layer by layer and
through the whole loss and the seed's loop."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from backend.core import winograd
from backend.core.loss import DreamLoss, winograd_relu_keeping_mask
from backend.core.preprocessing import preprocess
from backend.core.presets import BUILTIN_PRESETS
from backend.core.vgg16_layers import VGG16_CONV_LAYERS
from tests.conftest import structured_image
from tests.test_loss import value_and_input_gradient

# Float32 Winograd loses a few bits to its transforms (entries up to 8 and 1/24): ~1e-6 relative per
# layer here, against ~1e-7 for TensorFlow's own convolutions.
LAYER_TOLERANCE = 2e-5


def relative_error(value: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(value - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("height,width", [(1, 1), (4, 8), (7, 9), (13, 18)])
def test_convolve_is_tensorflows_same_convolution(height, width):
    """Sides that are and are not multiples of the output tile, down to a single position."""
    rng = np.random.default_rng(height * width)
    x = rng.standard_normal((1, height, width, 5)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 5, 7)).astype(np.float32)
    y = winograd.convolve(tf.constant(x), tf.constant(winograd.transform_kernel(kernel)))
    assert relative_error(y.numpy(), tf.nn.conv2d(x, kernel, 1, "SAME").numpy()) < LAYER_TOLERANCE


@pytest.mark.parametrize("band_rows", [1, 3])
def test_an_image_done_in_bands_is_the_same_convolution(monkeypatch, band_rows):
    """Bands of one tile row, and of three with a last band of one whose output is a single row: 13×18 is
    4×5 tiles, each tile row 36·5·7 floats of the largest transformed tiles."""
    monkeypatch.setattr(winograd, "BAND_FLOATS", band_rows * 36 * 5 * 7)
    rng = np.random.default_rng(band_rows)
    x = rng.standard_normal((1, 13, 18, 5)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 5, 7)).astype(np.float32)
    y = winograd.convolve(tf.constant(x), tf.constant(winograd.transform_kernel(kernel)))
    assert relative_error(y.numpy(), tf.nn.conv2d(x, kernel, 1, "SAME").numpy()) < LAYER_TOLERANCE


@pytest.mark.parametrize("name", VGG16_CONV_LAYERS)
def test_each_layer_and_its_input_gradient_match_tensorflows(engine, name):
    layer = engine.vgg16.get_layer(name)
    channels = layer.kernel.shape[2]
    h = tf.random.stateless_normal([1, 11, 14, channels], seed=[7, channels])
    upstream = tf.random.stateless_normal([1, 11, 14, layer.filters], seed=[8, channels])
    transformed, kernel, bias = (winograd.kernels(layer), tf.convert_to_tensor(layer.kernel),
                                 tf.convert_to_tensor(layer.bias))
    (expected, expected_gradient), (y, gradient) = (
        value_and_input_gradient(conv, h, upstream)
        for conv in (layer, lambda t: winograd_relu_keeping_mask(t, transformed, kernel, bias)))
    assert (expected > 0).any() and (expected == 0).any()  # both sides of the ReLU are exercised
    assert relative_error(y, expected) < LAYER_TOLERANCE
    assert relative_error(gradient, expected_gradient) < LAYER_TOLERANCE


def test_the_kernel_transform_is_kept_per_layer(engine):
    layer = engine.vgg16.get_layer("block3_conv1")
    assert winograd.kernels(layer) is winograd.kernels(layer)


def test_the_input_gradients_kernel_is_the_flipped_kernels():
    kernel = np.random.default_rng(3).standard_normal((3, 3, 4, 6)).astype(np.float32)
    swapped = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))
    np.testing.assert_allclose(winograd.input_gradient_kernel(tf.constant(kernel)).numpy(),
                               winograd.transform_kernel(swapped), rtol=1e-5, atol=1e-6)


def test_whole_loss_and_gradient_match_tensorflows(engine):
    """Every layer Winograd's, through the whole of VGG16: loss and input gradient as with TensorFlow's."""
    layers = ("block3_conv3", "block5_conv3")
    x = preprocess(structured_image(72, 56, seed=11))
    results = [DreamLoss(engine.vgg16, layers, 10**9, choice).bind([0.05, 0.02], 0.0, 0.0)(x)
               for choice in ("tensorflow", "winograd")]
    (expected_loss, expected_gradient), (loss, gradient) = results
    assert expected_loss < 0
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert np.linalg.norm(gradient - expected_gradient) / np.linalg.norm(expected_gradient) < 1e-4


def test_the_choice_of_convolutions(engine, monkeypatch):
    """auto: Winograd on a CPU for the layers it speeds up, never on a GPU. No GPU here: the device is
    given as the name `device_name` would report for one."""
    conv = engine.vgg16.get_layer
    assert winograd.use_winograd(conv("block3_conv1"), "auto", "CPU")
    assert not winograd.use_winograd(conv("block2_conv2"), "auto", "CPU")
    assert not winograd.use_winograd(conv("block3_conv1"), "auto", "GPU (/device:GPU:0)")
    assert not winograd.use_winograd(conv("block3_conv1"), "tensorflow", "CPU")
    assert winograd.use_winograd(conv("block1_conv1"), "winograd", "GPU (/device:GPU:0)")
    chosen = DreamLoss(engine.vgg16, ("block3_conv2",), 10**6, "auto")
    assert chosen.winograd_layers == ("block3_conv1", "block3_conv2")
    monkeypatch.setenv(winograd.CHOICE_VARIABLE, "tensorflow")
    assert DreamLoss(engine.vgg16, ("block5_conv1",), 10**6).winograd_layers == ()
    monkeypatch.setenv(winograd.CHOICE_VARIABLE, "fast")
    with pytest.raises(ValueError, match="tensorflow"):
        winograd.choice()


@pytest.mark.parametrize("preset", ["doggos", "acid"])
def test_the_seeds_loop_dreams_the_same_picture(monkeypatch, preset):
    """The seed's presets, two iterations on a small picture: Winograd's and TensorFlow's convolutions
    give the same picture within a level or so (L-BFGS amplifies round-off a little)."""
    from backend.engine import Engine

    rgb = structured_image(64, 48, seed=2)
    pictures = []
    for choice in ("tensorflow", "winograd"):
        monkeypatch.setenv(winograd.CHOICE_VARIABLE, choice)
        engine = Engine("hed")
        steps = list(engine.dream_rgb(rgb, BUILTIN_PRESETS[preset], 2, seed=0))
        pictures.append(np.int16(steps[-1][2]))
    tensorflow_picture, winograd_picture = pictures
    assert np.abs(tensorflow_picture - np.int16(rgb)).max() > 10  # it dreamt
    difference = np.abs(winograd_picture - tensorflow_picture)
    assert difference.max() <= 2 and difference.mean() < 0.05
