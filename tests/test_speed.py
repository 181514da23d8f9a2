"""The backend's measured speed (backend/speed.py), reported in `hello` for the plug-in's time estimate:
what a dream's timer counts, and the engine's measurements at start and from a real dream."""

from __future__ import annotations

import numpy as np
import pytest

from backend.speed import DreamTimer, Speed


class Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def test_nothing_measured_reports_nothing():
    assert Speed().report() == {}


def test_a_dream_counts_each_evaluation_at_its_octaves_size():
    clock, seen = Clock(), []
    timer = DreamTimer([((100, 200), 1), ((400, 500), 2)], clock)  # 0.02 MP once, then 0.2 MP twice
    on_evaluation = timer.wrap(lambda *args: seen.append(args))
    speed = Speed()
    for evaluation in range(1, 5):
        on_evaluation(0, evaluation, -1.0)
    clock.now += 1.0
    timer.record(speed, 0)  # no whole iteration yet: nothing
    assert speed.report() == {}
    for iteration in (1, 2):
        for evaluation in range(1, 7):
            on_evaluation(iteration, evaluation, -2.0)
    clock.now += 4.0
    timer.record(speed, 3)
    covered = 4 * 0.02 + 12 * 0.2
    assert speed.seconds_per_megapixel == pytest.approx(5.0 / covered)
    assert speed.report() == {"seconds_per_megapixel": round(5.0 / covered, 4), "measured_by": "dream",
                              "evaluations_per_iteration": round(16 / 3, 2)}
    assert len(seen) == 16 and seen[0] == (0, 1, -1.0)  # the dream's own callback still gets every one


def test_the_engine_measures_at_start_and_while_dreaming(engine):
    assert engine.measure_speed(side=64, repeats=1) > 0
    assert engine.info()["speed"]["measured_by"] == "start"
    steps = engine.dream_rgb(np.full((40, 48, 3), 128, np.uint8), engine.settings("doggos", {}), 2, seed=1)
    next(steps)
    speed = engine.info()["speed"]
    assert speed["measured_by"] == "dream" and speed["seconds_per_megapixel"] > 0
    assert speed["evaluations_per_iteration"] >= 1
