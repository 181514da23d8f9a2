"""Guided dreams in the core (backend/core/guide.py): the term against an independent NumPy reference, its
gradient against finite differences, exact tiling, and the unguided loss left exactly as it was."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from backend.core import guide
from backend.core.errors import MIN_SIDE, CoreError
from backend.core.loss import DreamLoss
from backend.core.preprocessing import preprocess
from backend.core.presets import Preset
from tests.conftest import structured_image
from tests.test_loss import assert_gradient_matches_finite_differences
from wire import protocol

LAYERS = ("block2_conv2", "block3_conv1")
COEFFS = [0.05, 0.02]


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return preprocess(structured_image(44, 36, seed=3))


@pytest.fixture(scope="module")
def guide_rgb() -> np.ndarray:
    """A guide unlike x: another structured image, RGBA, turned and of another shape."""
    return np.ascontiguousarray(np.rot90(structured_image(50, 70, channels=4, seed=9)))


def numpy_guided_term(a: np.ndarray, g: np.ndarray, coeff: float) -> float:
    """−coeff · Σ_i max_j ⟨a_i, g_j⟩ / (h·w·c) over the non-border positions, in float64 by plain NumPy."""
    h, w, c = a.shape
    inner = np.float64(a[2 : h - 2, 2 : w - 2]).reshape(-1, c)
    return -coeff * float(np.sum(np.max(inner @ np.float64(g).T, axis=1))) / (h * w * c)


def test_the_core_knows_nothing_of_the_wire():
    """Its own constants agree with the wire format's, which the engine maps its errors to."""
    import pathlib

    core = pathlib.Path(guide.__file__).parent
    assert not [p.name for p in core.glob("*.py") if "from wire" in p.read_text() or "import wire" in p.read_text()]
    assert MIN_SIDE == protocol.MIN_SIDE


def test_guided_term_matches_numpy(engine, x, guide_rgb):
    """One layer guided, the other not: the loss is the guided term plus the seed's term, both recomputed
    here from VGG16's own Keras graph (not our tiled loop) and from guide features taken independently."""
    model = keras.Model(engine.vgg16.input, [engine.vgg16.get_layer(name).output for name in LAYERS])
    scaled = preprocess(guide.flatten_alpha(guide.scaled(guide_rgb, 64)))
    guide_activation = np.asarray(model(scaled[np.newaxis])[0])[0]
    vectors = guide.guide_features(engine.vgg16, guide_rgb, 64, LAYERS[:1], LAYERS)
    assert vectors[1] is None
    np.testing.assert_allclose(vectors[0], guide.guide_vectors(guide_activation), rtol=1e-4, atol=1e-3)
    loss, _ = DreamLoss(engine.vgg16, LAYERS, 10**9).bind(COEFFS, 0.0, 0.0, vectors)(x)
    a0, a1 = (np.asarray(a)[0] for a in model(x[np.newaxis]))
    h, w, c = a1.shape
    seed_term = -COEFFS[1] * np.sum(np.float64(a1[2 : h - 2, 2 : w - 2]) ** 2) / (h * w * c)
    expected = numpy_guided_term(a0, vectors[0], COEFFS[0]) + seed_term
    assert numpy_guided_term(a0, vectors[0], COEFFS[0]) < 0
    assert loss == pytest.approx(expected, rel=1e-4)


def test_best_match_gradient_is_the_best_guide_vector():
    """The custom gradient (kept: indices only) equals TensorFlow's own of max(a·gᵀ), chunks and all."""
    a = tf.random.stateless_normal([37, 16], seed=[1, 2])
    g = tf.random.stateless_normal([guide.GUIDE_CHUNK * 2 + 5, 16], seed=[3, 4])  # three chunks, one short
    upstream = tf.random.stateless_normal([37], seed=[5, 6])
    results = []
    for f in (guide.best_match, lambda a, g: tf.reduce_max(tf.matmul(a, g, transpose_b=True), axis=1)):
        with tf.GradientTape() as tape:
            tape.watch(a)
            value = f(a, g)
        results.append((value.numpy(), tape.gradient(value, a, output_gradients=upstream).numpy()))
    (value, gradient), (expected, expected_gradient) = results
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("continuity, dream_l2", [(0.0, 0.0), (0.1, 0.02)])
def test_guided_gradient_matches_finite_differences(engine, x, guide_rgb, continuity, dream_l2):
    vectors = guide.guide_features(engine.vgg16, guide_rgb, 96, LAYERS, LAYERS)
    loss = DreamLoss(engine.vgg16, LAYERS, 10**9).bind(COEFFS, continuity, dream_l2, vectors)
    assert_gradient_matches_finite_differences(loss, x, 4.0)


def test_tiled_guided_loss_and_gradient_equal_untiled(engine, guide_rgb):
    """As tests/test_tiling.py does for the other terms: many tiles, the guide on both layers, all terms. With
    TensorFlow's convolutions, so that the tiling is held to 1e-4: Winograd's round-off depends on a value's place
    in its tile (tests/test_tiling.py holds Winograd's tiles to its own tolerance)."""
    layers = ("block3_conv1", "block5_conv2")
    x = preprocess(structured_image(360, 400, seed=5))
    vectors = guide.guide_features(engine.vgg16, guide_rgb, 224, layers, layers)
    whole = DreamLoss(engine.vgg16, layers, 10**9, "tensorflow")
    tiled = DreamLoss(engine.vgg16, layers, 280 * 280, "tensorflow")
    assert len(whole.tiles(400, 360)) == 1 and len(tiled.tiles(400, 360)) >= 4
    for coeffs, continuity, dream_l2 in [([0.02, 0.05], 0.0, 0.0), ([0.02, 0.05], 0.1, 0.02)]:
        expected_loss, expected_gradient = whole.bind(coeffs, continuity, dream_l2, vectors)(x)
        loss, gradient = tiled.bind(coeffs, continuity, dream_l2, vectors)(x)
        assert abs(expected_loss) > 0 and np.abs(expected_gradient).max() > 0
        assert loss == pytest.approx(expected_loss, rel=1e-4)
        assert np.linalg.norm(gradient - expected_gradient) <= 1e-4 * np.linalg.norm(expected_gradient)


def test_without_a_guide_the_loss_is_exactly_the_seeds(engine, x, guide_rgb):
    """No guide (or only unguided layers): the same traced function, the same bits; a guide changes it."""
    loss = DreamLoss(engine.vgg16, LAYERS, 10**9)
    plain, plain_gradient = loss.bind(COEFFS, 0.1, 0.02)(x)
    again, again_gradient = loss.bind(COEFFS, 0.1, 0.02, [None, None])(x)
    assert plain == again and np.array_equal(plain_gradient, again_gradient)
    guided, _ = loss.bind(COEFFS, 0.1, 0.02, guide.guide_features(engine.vgg16, guide_rgb, 64, LAYERS, LAYERS))(x)
    assert guided != plain


def test_a_guide_keeps_few_vectors_whatever_its_size():
    activation = np.arange(300 * 200 * 2, dtype=np.float32).reshape(300, 200, 2)
    vectors = guide.guide_vectors(activation)
    assert len(vectors) <= guide.MAX_GUIDE_VECTORS and len(vectors) > guide.MAX_GUIDE_VECTORS // 2
    np.testing.assert_array_equal(vectors[0], activation[0, 0])  # real positions, not averages
    assert len(guide.guide_vectors(activation[:3, :4])) == 12  # a small guide keeps them all


def test_guide_shapes_and_alpha():
    assert guide.guide_shape(4000, 2000, 224) == (224, 112)
    assert guide.guide_shape(20, 40, 224) == (112, 224)  # small guides are scaled up
    with pytest.raises(CoreError, match="under 32 px"):
        guide.guide_shape(1000, 20, 224)
    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [0, 0, 0, 128]]], np.uint8)
    np.testing.assert_array_equal(guide.flatten_alpha(rgba), [[[10, 20, 30], [255, 255, 255], [127, 127, 127]]])


def test_guide_layers_must_be_feature_layers():
    preset = Preset({"block3_conv1": 0.1, "block4_conv1": 0.1})
    assert preset.guided_layers() == ("block3_conv1", "block4_conv1")
    assert preset.with_overrides({"guide_layers": ["block4_conv1"]}).guided_layers() == ("block4_conv1",)
    with pytest.raises(CoreError, match="not among the feature layers"):
        preset.with_overrides({"guide_layers": ["block5_conv1"]})


def test_an_engine_dream_takes_the_guides_features_once(engine, guide_rgb, monkeypatch):
    """Over two octaves and three iterations (~20 evaluations): the guide's features are taken once, and
    the dream differs from the unguided one."""
    calls = []
    real = guide.guide_features
    monkeypatch.setattr(guide, "guide_features", lambda *args: calls.append(args) or real(*args))
    rgb = structured_image(64, 48, seed=2)
    settings = engine.settings("doggos", {"features": {"block3_conv2": 0.05}, "octaves": 2, "octave_scale": 1.3})
    guided = [image for _, _, image in engine.dream_rgb(rgb, settings, 3, seed=4, guide_pixels=guide_rgb)][-1]
    plain = [image for _, _, image in engine.dream_rgb(rgb, settings, 3, seed=4)][-1]
    assert len(calls) == 1
    assert np.abs(np.int16(guided) - np.int16(plain)).mean() > 1


def test_a_large_guide_is_scaled_before_anything_else_is_made_of_it(engine):
    """A 12-MP RGBA guide: the arrays made from it (traced by tracemalloc, as NumPy's are) stay a fraction
    of its own 48 MB; only the scaled guide is flattened, preprocessed and run through VGG16."""
    import tracemalloc

    big = np.zeros((3000, 4000, 4), np.uint8)
    big[..., 3] = 255
    tracemalloc.start()
    try:
        vectors = guide.guide_features(engine.vgg16, big, 224, LAYERS, LAYERS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert all(v is not None and len(v) <= guide.MAX_GUIDE_VECTORS for v in vectors)
    assert peak < big.nbytes / 4, f"{peak:,} bytes at the peak"


def test_every_core_error_has_a_protocol_code():
    from backend.core import errors
    from backend.engine import ERROR_CODES

    kinds = {value for name, value in vars(errors).items() if name.isupper() and isinstance(value, str)}
    assert set(ERROR_CODES) == kinds and set(ERROR_CODES.values()) <= protocol.ERROR_CODES


def test_a_presets_file_may_say_which_layers_a_guide_acts_on(tmp_path):
    from backend.core.presets import PresetError
    from backend.user_presets import load_presets

    path = tmp_path / "presets.json"
    path.write_text('{"half": {"features": {"block3_conv1": 0.1, "block4_conv1": 0.1},'
                    ' "guide_layers": ["block4_conv1"], "guide_size": 320}}')
    half = load_presets(path)["half"]
    assert half.guided_layers() == ("block4_conv1",) and half.guide_size == 320
    path.write_text('{"bad": {"features": {"block3_conv1": 0.1}, "guide_layers": ["block4_conv1"]}}')
    with pytest.raises(PresetError, match="not among the feature layers") as raised:
        load_presets(path)
    assert str(path) in str(raised.value)
