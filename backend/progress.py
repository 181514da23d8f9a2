"""A one-line terminal progress bar for the command line: evaluations, loss and time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from backend.core.dream import EVALUATIONS_PER_ITERATION


class ProgressBar:
    """Redrawn in place on a terminal; on a pipe or file it stays quiet and only the iteration lines show."""

    WIDTH = 24

    def __init__(self, iterations: int, stream: TextIO = sys.stderr) -> None:
        self.iterations = iterations
        self.stream = stream
        self.live = stream.isatty()
        self.started = time.monotonic()
        self.evaluations = 0
        # SciPy's L-BFGS may take one evaluation past maxfun; refined from what is observed.
        self.per_iteration = float(EVALUATIONS_PER_ITERATION + 1)

    def evaluation(self, iteration: int, evaluation: int, loss: float) -> None:
        self.evaluations += 1
        if iteration > 0:
            self.per_iteration = (self.evaluations - evaluation) / iteration
        total = self.per_iteration * self.iterations
        done = min(self.evaluations / total, 1.0)
        if self.live:
            filled = round(done * self.WIDTH)
            bar = "█" * filled + "·" * (self.WIDTH - filled)
            self.stream.write(
                f"\r{bar} iteration {iteration + 1}/{self.iterations} · evaluation {evaluation} · "
                f"loss {loss:,.1f} · {self._left(done)} left  "
            )
            self.stream.flush()

    def iteration(self, line: str) -> None:
        if self.live:
            self.stream.write("\r\033[K")
        print(line, file=self.stream, flush=True)

    def _left(self, done: float) -> str:
        if done <= 0:
            return "?"
        seconds = int((time.monotonic() - self.started) * (1 - done) / done)
        return f"{seconds // 60}:{seconds % 60:02d}"
