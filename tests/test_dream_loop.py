"""The jittered L-BFGS loop, preprocessing and the pixel plumbing around it."""

from __future__ import annotations

import numpy as np
import pytest

from backend.core import imaging
from backend.core.dream import (
    EVALUATIONS_PER_ITERATION,
    Cancelled,
    Diverged,
    Octaves,
    dream,
    octave_plan,
    octave_sizes,
    split_iterations,
)
from backend.core.imaging import resize_float
from backend.core.preprocessing import deprocess, preprocess
from tests.conftest import structured_image
from wire import protocol


def test_preprocessing_round_trips_and_is_bgr_minus_means():
    rgb = structured_image(17, 11)
    x = preprocess(rgb)
    assert x.dtype == np.float32
    assert x[0, 0, 0] == pytest.approx(rgb[0, 0, 2] - 103.939, abs=1e-4)  # B first
    assert x[0, 0, 2] == pytest.approx(rgb[0, 0, 0] - 123.68, abs=1e-4)  # R last
    np.testing.assert_array_equal(deprocess(x), rgb)


def test_deprocess_clips_to_0_255():
    x = preprocess(structured_image(8, 8))
    x[0, 0] = 1000.0
    x[1, 1] = -1000.0
    out = deprocess(x)
    assert out[0, 0].tolist() == [255, 255, 255] and out[1, 1].tolist() == [0, 0, 0]


def test_jitter_is_removed_after_each_iteration():
    """With a flat loss L-BFGS does not move, so whatever jitter was added must come off exactly."""
    x0 = preprocess(structured_image(20, 10))
    seen = []

    def flat_loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        seen.append(x.copy())
        return 0.0, np.zeros_like(x)

    steps = list(dream(flat_loss, x0, iterations=2, jitter=5.0, seed=7))
    assert len(steps) == 2
    assert not np.allclose(seen[0], x0, atol=0.5)  # the optimiser did see a jittered image
    assert np.abs(seen[0] - x0).max() <= 5.0 + 1e-3
    for step in steps:
        np.testing.assert_allclose(step.image, x0, atol=1e-4)


def test_one_iteration_lowers_the_loss(engine):
    settings = engine.settings("doggos", {"features": {"block3_conv1": 0.05}})
    loss = engine.loss_for(settings)
    x0 = preprocess(structured_image(64, 48))
    before, _ = loss(x0)
    evaluations = []
    (step,) = dream(loss, x0, 1, settings.jitter, 0, on_evaluation=lambda i, e, value: evaluations.append(value))
    after, _ = loss(np.float32(step.image))
    assert after < before
    assert step.loss == pytest.approx(after, rel=1e-3)
    assert 1 < len(evaluations) <= 8


def test_same_seed_same_dream_and_another_seed_another(engine):
    rgb = structured_image(40, 40)
    settings = engine.settings("acid", {"features": {"block3_conv1": 0.05}})
    runs = [[img for _, _, img in engine.dream_rgb(rgb, settings, 2, seed)] for seed in (5, 5, 6)]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][1], runs[2][1])


def test_should_stop_cancels_before_the_next_evaluation(engine):
    settings = engine.settings("doggos", {"features": {"block2_conv1": 0.05}})
    calls = []

    def should_stop() -> bool:
        return len(calls) >= 3

    with pytest.raises(Cancelled):
        list(dream(engine.loss_for(settings), preprocess(structured_image(32, 32)), 5, 0.0, 0,
                   on_evaluation=lambda *args: calls.append(args), should_stop=should_stop))
    assert len(calls) == 3


def test_max_size_dreams_smaller_and_returns_the_input_size(engine):
    rgb = structured_image(150, 100)
    settings = engine.settings("doggos", {"features": {"block2_conv1": 0.05}})
    sizes = []
    original = engine.loss_for

    def spy(preset, guide_pixels=None):
        inner = original(preset, guide_pixels)
        return lambda x: (sizes.append(x.shape), inner(x))[1]

    engine.loss_for = spy
    try:
        (_, _, image), = engine.dream_rgb(rgb, settings, 1, 0, max_size=60)
    finally:
        del engine.loss_for
    assert sizes[0] == (40, 60, 3)
    assert image.shape == rgb.shape


def test_alpha_comes_back_unchanged():
    rgba = structured_image(9, 7, channels=4)
    rgb, alpha = imaging.from_bytes(rgba.tobytes(), 9, 7, 4)
    assert imaging.to_bytes(rgb, alpha) == rgba.tobytes()
    assert protocol.dream_size(900, 450, 0) == (900, 450)
    assert protocol.dream_size(900, 450, 300) == (300, 150)
    assert protocol.dream_size(1, 1, 0) == (32, 32)
    assert protocol.dream_size(5, 40, 0) == (32, 256)
    assert protocol.dream_size(400, 100, 64) == (128, 32)  # the minimum wins over max_size


@pytest.mark.parametrize("width, height", [(1, 1), (2, 3), (5, 40), (17, 9)])
def test_tiny_images_dream_at_their_own_size(engine, width, height):
    """Below 16 px VGG16's pools leave nothing: such images are dreamt on a scaled-up copy."""
    rgb = structured_image(width, height)
    for preset in ("doggos", "acid"):
        (_, loss, image), = engine.dream_rgb(rgb, engine.settings(preset, {}), 1, 0)
        assert image.shape == rgb.shape and np.isfinite(loss)


def test_a_loss_that_stops_being_finite_ends_the_dream_clearly():
    def exploding(x: np.ndarray) -> tuple[float, np.ndarray]:
        return float("nan"), np.zeros_like(x)

    with pytest.raises(Diverged, match="lower the preset's coefficients"):
        list(dream(exploding, preprocess(structured_image(8, 8)), 2, 0.0, 0))


def test_iterations_are_split_over_octaves_the_largest_taking_the_rest():
    assert split_iterations(10, 3) == [3, 3, 4]
    assert split_iterations(2, 3) == [0, 1, 1]
    assert split_iterations(7, 1) == [7]


def test_octaves_grow_by_their_scale_to_the_image_size_and_never_below_the_minimum():
    assert octave_sizes(450, 900, Octaves(3, 1.5), 32) == [(200, 400), (300, 600), (450, 900)]
    assert octave_sizes(60, 100, Octaves(4, 2.0), 32) == [(32, 53), (32, 53), (32, 53), (60, 100)]
    assert octave_sizes(20, 10, Octaves(2, 1.4), 32) == [(20, 10), (20, 10)]  # too small to shrink at all


def test_octaves_of_one_size_share_the_iterations_once():
    assert octave_plan(60, 100, Octaves(4, 2.0), 10, 32) == [((32, 53), 5), ((60, 100), 5)]
    assert octave_plan(20, 10, Octaves(3, 1.4), 4, 32) == [((20, 10), 4)]
    assert octave_plan(450, 900, Octaves(3, 1.5), 2, 32) == [((300, 600), 1), ((450, 900), 1)]


def test_each_octave_starts_from_the_original_plus_the_upscaled_detail():
    """Detail re-injection, checked on what the loss is evaluated at (no jitter, a loss pulling to 7)."""
    x0 = preprocess(structured_image(60, 45))
    seen: list[np.ndarray] = []

    def pull_to_seven(x: np.ndarray) -> tuple[float, np.ndarray]:
        seen.append(x.copy())
        return float(np.sum((x - 7.0) ** 2)), 2 * (x - 7.0)

    steps = list(dream(pull_to_seven, x0, 4, 0.0, 0, Octaves(2, 1.5), min_side=8))
    assert [step.image.shape[:2] for step in steps] == [(30, 40), (30, 40), (45, 60), (45, 60)]
    small = resize_float(x0, 40, 30)
    np.testing.assert_allclose(seen[0], small, atol=1e-4)  # the first octave starts from the shrunk original
    first_of_second = next(x for x in seen if x.shape[:2] == (45, 60))
    expected = x0 + resize_float(steps[1].image - small, 60, 45)
    np.testing.assert_allclose(first_of_second, expected, atol=1e-3)
    assert np.abs(steps[1].image - small).max() > 1  # there was detail to carry


def test_octave_dreams_come_back_at_the_input_size_every_iteration(engine):
    rgb = structured_image(120, 90)
    settings = engine.settings("doggos", {"features": {"block2_conv1": 0.05}, "octaves": 3, "octave_scale": 1.4})
    sizes = []
    original = engine.loss_for

    def spy(preset, guide_pixels=None):
        inner = original(preset, guide_pixels)
        return lambda x: (sizes.append(x.shape[:2]), inner(x))[1]

    engine.loss_for = spy
    try:
        images = [image for _, _, image in engine.dream_rgb(rgb, settings, 4, 0)]
    finally:
        del engine.loss_for
    assert [image.shape for image in images] == [rgb.shape] * 4
    assert sorted(set(sizes)) == [(46, 61), (64, 86), (90, 120)]
    assert sizes[0] == (46, 61) and sizes[-1] == (90, 120)


def test_large_images_keep_a_shorter_l_bfgs_history(monkeypatch):
    from backend.core import dream as loop

    histories = []
    real = loop.fmin_l_bfgs_b
    monkeypatch.setattr(loop, "fmin_l_bfgs_b", lambda *args, **kw: (histories.append(kw["m"]), real(*args, **kw))[1])
    monkeypatch.setattr(loop, "LEAN_ABOVE", 20 * 20 * 3)

    def bowl(x: np.ndarray) -> tuple[float, np.ndarray]:
        return float(np.sum(x**2)), 2 * x

    for side in (20, 21):
        list(dream(bowl, preprocess(structured_image(side, side)), 1, 0.0, 0))
    assert histories == [loop.EVALUATIONS_PER_ITERATION, loop.LEAN_HISTORY]


# A strong block3 dream with no regulariser: unbounded, one iteration moves some value far.
UNREGULARISED = {"features": {"block3_conv1": 1.0}, "continuity": 0.0, "dream_l2": 0.0}


def test_a_step_limit_bounds_what_each_iteration_changes(engine):
    """max_step: no value moves further in one iteration (jitter included), yet the dream moves; without
    it the same iteration moves some value further, so the limit is what held it."""
    settings = engine.settings("doggos", UNREGULARISED)
    loss = engine.loss_for(settings)
    x0 = preprocess(structured_image(48, 40))
    limit = 3.0
    bounded = [x0] + [step.image for step in dream(loss, x0, 3, 8.0, 4, max_step=limit)]
    moves = [np.abs(after - before).max() for before, after in zip(bounded, bounded[1:], strict=False)]
    assert all(limit / 2 < move <= limit + 1e-9 for move in moves), moves
    (free,) = dream(loss, x0, 1, 8.0, 4)
    assert np.abs(free.image - x0).max() > 2 * limit


def test_a_step_limit_far_beyond_every_step_leaves_the_seeds_run():
    """Near its start the bounded run is the seed's (dx/du = 1): with a limit no step comes near, the
    points evaluated and the result are the unbounded ones."""
    x0 = preprocess(structured_image(20, 16))

    def runs(max_step: float) -> tuple[list[np.ndarray], np.ndarray]:
        seen: list[np.ndarray] = []

        def bowl(x: np.ndarray) -> tuple[float, np.ndarray]:
            seen.append(x.copy())
            return float(np.sum((x - 7.0) ** 2)), 2 * (x - 7.0)

        (step,) = dream(bowl, x0, 1, 2.0, 3, max_step=max_step)
        return seen, step.image

    (free_seen, free), (bounded_seen, bounded) = runs(0.0), runs(1e5)
    assert len(free_seen) == len(bounded_seen) > 1
    for a, b in zip(free_seen, bounded_seen, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-3)
    np.testing.assert_allclose(bounded, free, atol=1e-3)


def test_the_step_limit_coordinates_report_their_own_derivative():
    """L-BFGS gets ∂loss/∂u = ∂loss/∂x · dx/du: the slope must be the derivative, checked numerically."""
    from backend.core.dream import _BoundedSteps

    start = np.random.default_rng(0).uniform(-100, 100, 50)
    steps = _BoundedSteps(start, 4.0)

    def x(u: np.ndarray) -> np.ndarray:
        return steps.position(steps.tanh(u))

    np.testing.assert_array_equal(x(steps.origin()), start)
    u = np.random.default_rng(1).normal(0, 6, 50)
    h = 1e-6
    numeric = (x(u + h) - x(u - h)) / (2 * h)
    np.testing.assert_allclose(steps.slope(steps.tanh(u)), numeric, rtol=1e-5, atol=1e-9)
    assert np.abs(x(u * 1e6) - start).max() <= 4.0 + 1e-9


def test_an_iteration_runs_its_evaluations_however_small_the_gradient():
    """The loss is a mean over the pixels, so a large image has tiny gradients per value: a run must not
    stop on an absolute tolerance (SciPy's pgtol ended them after one evaluation from about 1 MP on).
    L-BFGS is otherwise scale-free: the same loss scaled by 1e-9 dreams the same."""
    x0 = preprocess(structured_image(24, 20))
    target = x0 + np.random.default_rng(0).uniform(-30, 30, x0.shape)

    def run(scale: float, max_step: float) -> tuple[int, np.ndarray]:
        evaluations = []

        def quartic(x: np.ndarray) -> tuple[float, np.ndarray]:  # not solved in 7 evaluations, unlike a bowl
            d = x.astype(np.float64) - target
            return float(scale * np.sum(d**4)), (4 * scale * d**3).astype(np.float32)

        (step,) = dream(quartic, x0, 1, 0.0, 0, max_step=max_step,
                        on_evaluation=lambda i, e, value: evaluations.append(value))
        return len(evaluations), step.image

    for max_step in (0.0, 4.0):
        (count, image), (tiny_count, tiny_image) = run(1.0, max_step), run(1e-9, max_step)
        assert min(count, tiny_count) >= EVALUATIONS_PER_ITERATION
        np.testing.assert_allclose(tiny_image, image, atol=1e-2)
        assert np.abs(tiny_image - x0).max() > 3  # it moved
        assert np.abs(image - target).max() > 1e-2  # and was still on its way: every evaluation counted


def test_the_engine_dreams_with_the_preset_s_step_limit(engine):
    """The preset's (or the request's) max_step reaches the loop: the picture changes by at most that per
    iteration (plus the rounding to 8 bits), and without it the same settings change it more."""
    rgb = structured_image(48, 40)
    settings = engine.settings("doggos", UNREGULARISED | {"jitter": 8.0, "max_step": 2.0})
    images = [rgb] + [image for _, _, image in engine.dream_rgb(rgb, settings, 3, 4)]
    moves = [np.abs(after.astype(int) - before).max() for before, after in zip(images, images[1:], strict=False)]
    assert all(1 <= move <= 3 for move in moves), moves
    (_, _, free), = engine.dream_rgb(rgb, settings.with_overrides({"max_step": 0.0}), 1, 4)
    assert np.abs(free.astype(int) - rgb).max() > 6
