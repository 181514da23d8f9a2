"""Choosing and loading VGG16 weights: auto, imagenet (no network here), hed, a file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from backend.core.model import (
    IMAGENET_FILE,
    Weights,
    WeightsError,
    hed_weights_path,
    load_vgg16,
    resolve_weights,
)
from backend.core.vgg16_layers import VGG16_CONV_LAYERS


def test_auto_takes_hed_when_imagenet_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    weights = resolve_weights("auto")
    assert weights.name == "hed" and weights.path == hed_weights_path()


def test_auto_takes_cached_imagenet(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = tmp_path / "models" / IMAGENET_FILE
    cached.parent.mkdir()
    cached.write_bytes(b"")
    assert resolve_weights("auto") == Weights("imagenet", cached)


def test_imagenet_without_network_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    try:
        load_vgg16(resolve_weights("imagenet"))
    except WeightsError as exc:
        message = str(exc)
    else:  # only where the Keras download host is reachable, which it is not here
        pytest.skip("the ImageNet weights could be downloaded")
    assert "cannot download" in message and "--weights hed" in message and str(tmp_path) in message


def test_hed_layers_are_matched_by_name(engine):
    with h5py.File(hed_weights_path(), "r") as weights:
        kernel = np.asarray(weights["block3/layers/conv2d_1/vars/0"])
        bias = np.asarray(weights["block5/layers/conv2d_2/vars/1"])
    np.testing.assert_array_equal(engine.vgg16.get_layer("block3_conv2").kernel.numpy(), kernel)
    np.testing.assert_array_equal(engine.vgg16.get_layer("block5_conv3").bias.numpy(), bias)


def test_a_weights_file_loads_and_a_bad_one_is_refused(engine, tmp_path):
    path = tmp_path / "vgg16.weights.h5"
    engine.vgg16.save_weights(path)
    loaded = load_vgg16(resolve_weights(str(path)))
    for name in VGG16_CONV_LAYERS:
        np.testing.assert_array_equal(loaded.get_layer(name).kernel.numpy(),
                                      engine.vgg16.get_layer(name).kernel.numpy())
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(WeightsError, match="not a Keras VGG16"):
        load_vgg16(resolve_weights(str(bad)))
    with pytest.raises(WeightsError, match="no weights file"):
        resolve_weights(str(tmp_path / "missing.h5"))
