"""The seed article's jittered L-BFGS loop: one iteration = jitter, fmin_l_bfgs_b(maxfun=7), un-jitter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy.optimize import fmin_l_bfgs_b

EVALUATIONS_PER_ITERATION = 7  # the seed's maxfun

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
    image: np.ndarray  # the preprocessed image after this iteration, float64 H×W×3


def dream(
    loss_and_gradient: LossAndGradient,
    x0: np.ndarray,
    iterations: int,
    jitter: float,
    seed: int,
    on_evaluation: Callable[[int, int, float], None] = lambda iteration, evaluation, loss: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[Iteration]:
    """Yield the image after each iteration; each starts from the previous one's result.

    Jitter is uniform in [−jitter, +jitter] for every value, drawn from a generator seeded with `seed`,
    so the same seed, image and settings give the same dream. float64 only at the SciPy boundary.
    """
    rng = np.random.default_rng(seed)
    x = x0.astype(np.float64)
    for index in range(iterations):
        shift = rng.uniform(-jitter, jitter, size=x.shape) if jitter > 0 else np.zeros(x.shape)
        moved, loss = _minimise(loss_and_gradient, x + shift, index, on_evaluation, should_stop)
        x = moved - shift
        yield Iteration(index, loss, x)


def _minimise(
    loss_and_gradient: LossAndGradient,
    start: np.ndarray,
    index: int,
    on_evaluation: Callable[[int, int, float], None],
    should_stop: Callable[[], bool],
) -> tuple[np.ndarray, float]:
    """One fmin_l_bfgs_b run of at most maxfun evaluations from `start`; (result, its loss)."""
    shape = start.shape
    evaluations = 0

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        if should_stop():
            raise Cancelled
        loss, gradient = loss_and_gradient(flat.reshape(shape).astype(np.float32))
        if not np.isfinite(loss):
            raise Diverged(f"the loss became {loss} at iteration {index + 1}: lower the preset's coefficients")
        evaluations += 1
        on_evaluation(index, evaluations, loss)
        return loss, gradient.ravel().astype(np.float64)

    # At most maxfun evaluations means at most that many corrections: keeping m = maxfun instead of
    # SciPy's 10 changes no result and saves 6 image-sized float64 vectors of L-BFGS history.
    flat, loss, _ = fmin_l_bfgs_b(
        objective, start.ravel(), m=EVALUATIONS_PER_ITERATION, maxfun=EVALUATIONS_PER_ITERATION
    )
    return flat.reshape(shape), float(loss)
