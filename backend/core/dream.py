"""The seed article's jittered L-BFGS loop: one iteration = jitter, fmin_l_bfgs_b(maxfun=7), un-jitter;
run over one or more octaves (scales) with detail re-injection, and optionally with bounded steps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy.optimize import fmin_l_bfgs_b

from backend.core.errors import MIN_SIDE
from backend.core.imaging import resize_float

EVALUATIONS_PER_ITERATION = 7  # the seed's maxfun
# L-BFGS keeps 2·m float64 vectors of the image's size. Past LEAN_ABOVE values (4 MP) it keeps
# LEAN_HISTORY corrections instead of 7: 192 bytes less per pixel, 3 GB less at 16 MP.
LEAN_ABOVE = 3 * 4 * 1024 * 1024
LEAN_HISTORY = 3

# x (H×W×3 float32) → (loss, ∂loss/∂x): what the loop minimises; backend/core/loss.py provides it.
LossAndGradient = Callable[[np.ndarray], tuple[float, np.ndarray]]


class Cancelled(Exception):
    """Raised inside the loop when should_stop() says so, before the next evaluation."""


class Diverged(Exception):
    """The loss is no longer a finite number (extreme settings); going on would only make noise."""


@dataclass(frozen=True)
class Iteration:
    index: int  # 0-based
    loss: float
    image: np.ndarray  # the preprocessed image after this iteration, float64, at its octave's size


@dataclass(frozen=True)
class Octaves:
    """Dream at `count` scales, each `scale` times the previous, smallest first (1 = at the image's size)."""

    count: int
    scale: float


ONE_OCTAVE = Octaves(1, 1.0)


def octave_sizes(height: int, width: int, octaves: Octaves, min_side: int) -> list[tuple[int, int]]:
    """(height, width) of each octave, smallest first; the last is the image's own. No octave's shorter
    side is under min_side (or the image's, if that is smaller): VGG16 needs a few pixels to see."""
    floor = min(min_side, height, width) / min(height, width)
    sizes = []
    for step in range(octaves.count - 1, -1, -1):
        factor = max(octaves.scale**-step, floor)
        sizes.append((max(1, round(height * factor)), max(1, round(width * factor))))
    return sizes


def split_iterations(iterations: int, count: int) -> list[int]:
    """Iterations per octave, smallest first: as even as can be, the remainder going to the largest.
    With fewer iterations than octaves the smallest octaves get none."""
    return [iterations // count + (1 if step >= count - iterations % count else 0) for step in range(count)]


def octave_plan(
    height: int, width: int, octaves: Octaves, iterations: int, min_side: int
) -> list[tuple[tuple[int, int], int]]:
    """((height, width), iterations) per octave that gets any, smallest first. Octaves that the minimum
    side makes the same size are one: their iterations are not spent twice at one scale."""
    sizes = list(dict.fromkeys(octave_sizes(height, width, octaves, min_side)))
    return [(size, count) for size, count in zip(sizes, split_iterations(iterations, len(sizes)), strict=True)
            if count > 0]


def dream(
    loss_and_gradient: LossAndGradient,
    x0: np.ndarray,
    iterations: int,
    jitter: float,
    seed: int,
    octaves: Octaves = ONE_OCTAVE,
    min_side: int = MIN_SIDE,
    *,
    max_step: float = 0.0,
    on_evaluation: Callable[[int, int, float], None] = lambda iteration, evaluation, loss: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[Iteration]:
    """Yield the image after each iteration (at its octave's size); each starts from the previous one.

    Jitter is uniform in [−jitter, +jitter] for every value, drawn from a generator seeded with `seed`,
    so the same seed, image and settings give the same dream. float64 only at the SciPy boundary.

    Octaves (Google's DeepDream): dream the image shrunk, then at each larger scale start from the
    original at that scale plus the detail dreamt so far (dream − original), upscaled. With one octave
    and max_step 0 this is the seed's loop on x0 (with SciPy's tolerances off: see _minimise).

    max_step > 0 bounds what one iteration may change any value by (in pixel levels): see _minimise.
    """
    rng = np.random.default_rng(seed)
    height, width = x0.shape[:2]
    index, x, base = 0, None, None
    for (octave_height, octave_width), count in octave_plan(height, width, octaves, iterations, min_side):
        octave_base = resize_float(x0, octave_width, octave_height)  # x0 itself at its own size
        if x is None:
            x = octave_base.astype(np.float64)
        else:  # re-inject the detail dreamt at the smaller scale
            x = octave_base + resize_float(x - base, octave_width, octave_height).astype(np.float64)
        base = octave_base
        for _ in range(count):
            if jitter > 0:
                shift = rng.uniform(-jitter, jitter, size=x.shape)
                moved, loss = _minimise(loss_and_gradient, x + shift, index, max_step, on_evaluation, should_stop)
                x = moved - shift
            else:  # no image-sized zeros to add and take off again
                x, loss = _minimise(loss_and_gradient, x, index, max_step, on_evaluation, should_stop)
            yield Iteration(index, loss, x)
            index += 1


def _minimise(
    loss_and_gradient: LossAndGradient,
    start: np.ndarray,
    index: int,
    max_step: float,
    on_evaluation: Callable[[int, int, float], None],
    should_stop: Callable[[], bool],
) -> tuple[np.ndarray, float]:
    """One fmin_l_bfgs_b run of about maxfun evaluations from `start`; (result, its loss).

    With max_step > 0, L-BFGS moves u instead of x, x = start + max_step·tanh(u / max_step): no value
    gets further than max_step from where the run started, and near the start (dx/du = 1) the run is
    the seed's. Why: the feature term grows without bound with contrast, so a run's line search now and
    then leaps (sharpness ×5–30 in one iteration) and small continuity, which the photo's own detail
    needs, cannot hold it back; bounded steps make a dream grow by about as much every iteration.
    SciPy's own bounds would do it too, but it sets them up with a Python loop over every value.
    """
    shape = start.shape
    bounded = _BoundedSteps(start, max_step) if max_step > 0 else None
    evaluations = 0
    # (x, gradient) of the latest evaluation. SciPy asks for the loss, then for the gradient at the same x.
    # Its own cache for a function returning both (MemoizeJac) first compares x with None element by
    # element, as Python objects: 0.1–0.3 s per iteration at 1 MP, before the first evaluation.
    latest: list[np.ndarray] = []

    def objective(flat: np.ndarray) -> float:
        nonlocal evaluations
        if should_stop():
            raise Cancelled
        if bounded:
            t = bounded.tanh(flat)
            x = bounded.position(t).astype(np.float32)
        else:
            x = flat.astype(np.float32)
        loss, gradient = loss_and_gradient(x.reshape(shape))
        del x  # an image-sized array less while the gradient is converted
        if not np.isfinite(loss):
            raise Diverged(f"the loss became {loss} at iteration {index + 1}: lower the preset's coefficients")
        evaluations += 1
        on_evaluation(index, evaluations, loss)
        gradient = gradient.ravel().astype(np.float64)
        if bounded:
            gradient *= bounded.slope(t)
        latest[:] = [flat, gradient]
        return loss

    def gradient_at(flat: np.ndarray) -> np.ndarray:
        if not (latest and np.array_equal(latest[0], flat)):
            objective(flat)
        return latest[1]

    # At most maxfun evaluations means at most that many corrections: keeping m = maxfun instead of
    # SciPy's 10 changes no result and saves 6 image-sized float64 vectors of L-BFGS history.
    history = EVALUATIONS_PER_ITERATION if start.size <= LEAN_ABOVE else LEAN_HISTORY
    # No early stop on SciPy's absolute tolerances: the loss is an average over the pixels, so its gradient
    # per value shrinks as the image grows, and pgtol's 1e-5 ended runs after their first evaluation from
    # about 1 MP on (textures at 1200×800), leaving large layers undreamt. A run ends on maxfun alone
    # (after the line search it is in).
    flat, loss, _ = fmin_l_bfgs_b(
        objective, bounded.origin() if bounded else start.ravel(), gradient_at, m=history,
        maxfun=EVALUATIONS_PER_ITERATION, factr=0.0, pgtol=0.0,
    )
    return (bounded.position(bounded.tanh(flat)) if bounded else flat).reshape(shape), float(loss)


class _BoundedSteps:
    """x = start + limit·tanh(u / limit), the coordinates _minimise's L-BFGS moves in with a step limit."""

    def __init__(self, start: np.ndarray, limit: float) -> None:
        self.start, self.limit = start.ravel(), limit

    def origin(self) -> np.ndarray:
        """u at the start."""
        return np.zeros(self.start.size)

    def tanh(self, u: np.ndarray) -> np.ndarray:
        """t = tanh(u / limit), flat float64: what position and slope are made from."""
        t = u / self.limit
        return np.tanh(t, out=t)

    def position(self, t: np.ndarray) -> np.ndarray:
        """x at t, flat float64."""
        return self.start + self.limit * t

    @staticmethod
    def slope(t: np.ndarray) -> np.ndarray:
        """dx/du = 1 − t², computed in t's own memory (t is used up)."""
        t *= t
        return np.subtract(1.0, t, out=t)
