"""The backend's measured speed, reported in `hello` so that a client can estimate a dream's time before
sending it: seconds of dreaming per loss evaluation per megapixel, and loss evaluations per iteration.

Measured once when the service starts (a few evaluations of a small image) and again by every dream
(its wall time over the megapixels its evaluations covered, octave by octave): the latest measurement
wins, so the figure follows the machine's load and the sizes actually dreamt. No TensorFlow here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Plan = list[tuple[tuple[int, int], int]]  # ((height, width), iterations) per octave, as dream.octave_plan gives


class Speed:
    """The latest measurement; report() is the `hello` field (empty until something was measured)."""

    def __init__(self) -> None:
        self.seconds_per_megapixel: float | None = None
        self.evaluations_per_iteration: float | None = None
        self.measured_by = ""

    def record(self, seconds: float, megapixel_evaluations: float, measured_by: str,
               evaluations_per_iteration: float | None = None) -> None:
        if megapixel_evaluations > 0 and seconds > 0:
            self.seconds_per_megapixel = seconds / megapixel_evaluations
            self.measured_by = measured_by
        if evaluations_per_iteration:
            self.evaluations_per_iteration = evaluations_per_iteration

    def report(self) -> dict[str, float | str]:
        if self.seconds_per_megapixel is None:
            return {}
        report: dict[str, float | str] = {"seconds_per_megapixel": round(self.seconds_per_megapixel, 4),
                                          "measured_by": self.measured_by}
        if self.evaluations_per_iteration:
            report["evaluations_per_iteration"] = round(self.evaluations_per_iteration, 2)
        return report


class DreamTimer:
    """Times one dream: wraps its per-evaluation callback, counting each evaluation at its octave's size."""

    def __init__(self, plan: Plan, clock: Callable[[], float] = time.perf_counter) -> None:
        self.megapixels: list[float] = []  # per iteration index
        for (height, width), count in plan:
            self.megapixels += [height * width / 1e6] * count
        self.clock = clock
        self.started = clock()
        self.evaluations = 0
        self.covered = 0.0  # megapixel-evaluations
        self.iterations: set[int] = set()

    def wrap(self, on_evaluation: Callable[[int, int, float], None]) -> Callable[[int, int, float], None]:
        def counted(iteration: int, evaluation: int, loss: float) -> None:
            if 0 <= iteration < len(self.megapixels):
                self.evaluations += 1
                self.covered += self.megapixels[iteration]
                self.iterations.add(iteration)
            on_evaluation(iteration, evaluation, loss)

        return counted

    def record(self, speed: Speed, finished_iterations: int) -> None:
        """Into speed, when whole iterations were dreamt (a dream stopped at once measures nothing)."""
        if finished_iterations > 0 and self.evaluations:
            speed.record(self.clock() - self.started, self.covered, "dream", self.evaluations / len(self.iterations))
