"""One dream, driven by the backend's messages: the state machine the plug-in's event loop polls.

The plug-in submits the image, then calls poll() every ≤100 ms (keeping its window alive in between).
poll() returns the iterations to turn into layers and keeps `progress` current; `finished`, `state` and
`error` say how it ended. GIMP-free: it only needs a wire Client (standard library and pyzmq).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import layers
from estimate import EVALUATIONS_PER_ITERATION, duration_text

from wire import protocol
from wire.client import Client, is_listening

BACKEND_STOPPED = "the backend stopped during the dream; the layers received so far are kept"


class State(Enum):
    SUBMITTED = "submitted"  # sent, not accepted yet
    QUEUED = "queued"  # accepted, waiting for its turn (position 0: starting)
    RUNNING = "running"
    STOPPING = "stopping"  # cancel sent, waiting (briefly) for the backend to confirm
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


FINISHED = frozenset({State.DONE, State.CANCELLED, State.FAILED})


@dataclass(frozen=True)
class Kept:
    """An iteration to turn into a layer."""

    number: int  # 1-based
    pixels: bytes
    width: int
    height: int
    channels: int
    sample_format: str = protocol.U8  # of `pixels`: the format the dream was submitted in


class TimeLeft:
    """Seconds left at the pace so far: the work done against the work the whole dream takes.

    Work is counted as the dialog's estimate counts it (estimate.py): loss evaluations, each weighted by its
    iteration's share of pixels (`weights`, from the octave plan: the first octaves are smaller and quicker;
    all equal when not given). How many evaluations an iteration takes is learnt from the finished ones,
    `evaluations_per_iteration` (the backend's measured figure, or a guess) until then. Before the first
    evaluation the dialog's `estimate` counts down, so the window starts from the figure the dialog showed.
    """

    def __init__(self, iterations: int, clock: Callable[[], float] = time.monotonic, *,
                 evaluations_per_iteration: float = EVALUATIONS_PER_ITERATION, estimate: float | None = None,
                 weights: list[float] | None = None) -> None:
        self.iterations = iterations
        self.clock = clock
        self.guess = evaluations_per_iteration
        self.estimate = estimate
        self.weights = weights if weights and len(weights) == iterations else [1.0] * iterations
        self.started_at: float | None = None
        self.finished = 0  # iterations
        self.finished_evaluations = 0
        self.finished_work = 0.0
        self.current = 0  # evaluations so far in the running iteration

    def start(self) -> None:
        self.started_at = self.clock()

    def evaluation(self, evaluation: int) -> None:
        self.current = evaluation

    def iteration_done(self) -> None:
        evaluations = max(self.current, 1)
        self.finished_work += evaluations * self._weight(self.finished)
        self.finished += 1
        self.finished_evaluations += evaluations
        self.current = 0

    def per_iteration(self) -> float:
        return self.finished_evaluations / self.finished if self.finished else self.guess

    def _weight(self, iteration: int) -> float:
        return self.weights[min(iteration, self.iterations - 1)]

    def _work(self) -> tuple[float, float]:
        """(done, left), in weighted evaluations."""
        running = self.current * self._weight(self.finished)
        ahead = self.per_iteration() * sum(self.weights[self.finished:])
        return self.finished_work + running, max(0.0, ahead - running)

    def fraction(self) -> float:
        """The share of the work done, by iterations (each weighed by its pixels): it never goes back, even
        when an iteration takes more evaluations than expected."""
        running = min(self.current / self.per_iteration(), 1.0) * self._weight(self.finished)
        total = sum(self.weights)
        return min(1.0, (sum(self.weights[:self.finished]) + running) / total) if total > 0 else 1.0

    def seconds(self) -> float | None:
        if self.started_at is None:
            return None
        elapsed = self.clock() - self.started_at
        done, left = self._work()
        if done == 0:
            return None if self.estimate is None else max(0.0, self.estimate - elapsed)
        return elapsed / done * left


def describe_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "estimating the time left…"
    return f"{duration_text(seconds)} left"


@dataclass(frozen=True)
class Progress:
    """What the progress display shows."""

    status: str
    iteration: int  # the running (or last finished) iteration, 1-based; 0 before the first
    iterations: int
    evaluation: int
    loss: float | None
    fraction: float
    seconds_left: float | None

    evaluations_per_iteration: float = EVALUATIONS_PER_ITERATION

    @property
    def iteration_text(self) -> str:
        return f"Iteration {self.iteration} of {self.iterations}"

    @property
    def evaluation_text(self) -> str:
        """Within an iteration the backend refines the picture in small steps (loss evaluations)."""
        if not self.evaluation:
            return ""
        return f"Refining it: step {self.evaluation} of about {round(self.evaluations_per_iteration)}"

    @property
    def time_left_text(self) -> str:
        return describe_seconds(self.seconds_left)


class DreamSession:
    """One dream request and its events, for a client that sends nothing else meanwhile."""

    def __init__(
        self,
        client: Client,
        job: str,
        iterations: int,
        keep_every: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        is_alive: Callable[[], bool] | None = None,
        accept_timeout: float = 30.0,
        liveness_interval: float = 5.0,
        stall_limit: float = 600.0,
        cancel_wait: float = 3.0,
        time_left: TimeLeft | None = None,
    ) -> None:
        """`is_alive` (default: the endpoint's TCP port accepts connections) is asked after liveness_interval
        seconds without a message; a silent backend whose port is closed has stopped. stall_limit bounds the
        silence of a running dream (one evaluation of a huge image takes minutes, not ten)."""
        self.client = client
        self.job = job
        self.iterations = iterations
        self.keep_every = keep_every
        self.clock = clock
        self.is_alive = is_alive or (lambda: is_listening(client.endpoint))
        self.accept_timeout = accept_timeout
        self.liveness_interval = liveness_interval
        self.stall_limit = stall_limit
        self.cancel_wait = cancel_wait
        self.state = State.SUBMITTED
        self.error: str | None = None
        self.position = 0
        self.iteration = 0
        self.evaluation = 0
        self.loss: float | None = None
        self.time_left = time_left or TimeLeft(iterations, clock)  # one made with the dialog's estimate
        self.schedule = iterations  # the iterations the request asks for (see submit)
        self.seed: int | None = None  # the seed and settings the backend dreams with, once it has accepted
        self.settings: dict[str, Any] | None = None  # (an older backend does not tell the settings)
        self._expected: tuple[int, int, int] = (0, 0, 0)
        self._format = protocol.U8
        self._last_message = self._last_check = self._stop_deadline = clock()

    # ---- driving it -------------------------------------------------------------------------------

    def submit(self, pixels: bytes, width: int, height: int, channels: int, preset: str, seed: int | None,
               max_size: int, params: dict[str, Any] | None = None, schedule: int | None = None, *,
               sample_format: str = protocol.U8, guide: tuple[bytes, int, int, int] | None = None) -> None:
        """schedule: ask for that many iterations (over self.iterations) and end, done, after self.iterations: a
        recipe's iteration k of N, which octaves dream on the schedule of all N. sample_format: that of `pixels`
        (u8, u16, f32); the iterations come back in it. guide: (pixels, width, height, channels) of an 8-bit guide
        image, or None."""
        self._expected = (width, height, channels)
        self._format = sample_format
        self.schedule = max(schedule or 0, self.iterations)
        self.client.dream(self.job, pixels, width, height, channels, preset, self.schedule, params=params or None,
                          seed=seed, max_size=max_size, guide=guide, sample_format=sample_format)
        self.state = State.SUBMITTED
        self._last_message = self._last_check = self.clock()

    def poll(self, timeout: float) -> list[Kept]:
        """Handle the messages arriving within timeout seconds (and any queued behind them)."""
        kept: list[Kept] = []
        try:
            message = self.client.receive(timeout)
            while message is not None and not self.finished:
                self._last_message = self.clock()
                kept += self._handle(*message)
                message = self.client.receive(0)
        except protocol.ProtocolError as exc:  # a message that is not ours: end the dream, keep what came
            self._end(self.state is State.STOPPING,
                      f"the backend at {self.client.endpoint} sent a message outside the Deep Dream protocol "
                      f"({exc.message}); the layers received so far are kept")
            return kept
        if not self.finished:
            self._check_silence()
        return kept

    def stop(self) -> None:
        """Ask the backend to cancel; iterations arriving from now on are not kept."""
        if self.finished or self.state is State.STOPPING:
            return
        self.client.cancel(self.job)
        self.state = State.STOPPING
        self._stop_deadline = self.clock() + self.cancel_wait

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def progress(self) -> Progress:
        return Progress(self._status(), self.iteration, self.iterations, self.evaluation, self.loss,
                        self.time_left.fraction(), self.time_left.seconds() if self.state is State.RUNNING else None,
                        self.time_left.per_iteration())

    # ---- the messages -----------------------------------------------------------------------------

    def _handle(self, header: dict[str, Any], pixels: bytes | None) -> list[Kept]:
        if header.get("job") not in (self.job, None):
            return []
        kind = header["type"]
        stopping = self.state is State.STOPPING
        if kind in (protocol.ACCEPTED, protocol.QUEUED):
            self.position = _number(header, "position", 0)
            if kind == protocol.ACCEPTED:
                self.seed = _number(header, "seed", None)
                self.settings = header.get("settings") if isinstance(header.get("settings"), dict) else None
            if self.state is State.SUBMITTED:
                self.state = State.QUEUED
        elif kind == protocol.STARTED:
            self.time_left.start()
            if not stopping:
                self.state = State.RUNNING
        elif kind == protocol.PROGRESS:
            self.iteration = _number(header, "iteration", 0) + 1
            self.evaluation = _number(header, "evaluation", 0)
            self.loss = _number(header, "loss", None, float)
            self.time_left.evaluation(self.evaluation)
        elif kind == protocol.ITERATION:
            return self._iteration(header, pixels)
        elif kind == protocol.DONE:
            self.state = State.CANCELLED if stopping else State.DONE
        elif kind == protocol.CANCELLED:
            self._end(stopping, "the backend cancelled the dream (was it stopped?); the layers received so far "
                                "are kept")
        elif kind == protocol.ERROR:
            # Passed on word for word: the backend writes it for the user (a "presets_file" error says where
            # the user's presets file is broken).
            message = header.get("message")
            self._end(stopping, message if isinstance(message, str) and message else
                      f"the backend reports an error ({header.get('code', 'no code')})")
        return []

    def _iteration(self, header: dict[str, Any], pixels: bytes | None) -> list[Kept]:
        number = _number(header, "iteration", -1) + 1
        size = (header.get("width"), header.get("height"), header.get("channels"))
        width, height, channels = self._expected
        sample_format = header.get("format", protocol.U8)  # a backend older than the field sends 8-bit
        expected_bytes = protocol.frame_bytes(width, height, channels, self._format)
        if size != self._expected or sample_format != self._format or pixels is None or len(pixels) != expected_bytes:
            self._fail(f"the backend sent iteration {number} as {size[0]}×{size[1]}×{size[2]} {sample_format} with "
                       f"{len(pixels or b'')} bytes, not the {width}×{height}×{channels} {self._format} image "
                       "asked for")
            return []
        self.time_left.iteration_done()
        self.iteration, self.evaluation = number, 0
        self.loss = _number(header, "loss", self.loss, float)
        if self.state is State.STOPPING or not layers.is_kept(number, self.iterations, self.keep_every):
            return []
        if number == self.iterations < self.schedule:  # the rest of the schedule is not wanted
            self.client.cancel(self.job)
            self.state = State.DONE
        return [Kept(number, pixels, width, height, channels, self._format)]

    def _end(self, stopping: bool, failure: str) -> None:
        """A cancelled, error or malformed message: what we asked for while stopping, a failure otherwise."""
        if stopping:
            self.state = State.CANCELLED
        else:
            self._fail(failure)

    def _fail(self, message: str) -> None:
        self.state = State.FAILED
        self.error = message

    def _check_silence(self) -> None:
        now = self.clock()
        silent = now - self._last_message
        if self.state is State.STOPPING:
            if now >= self._stop_deadline:
                self.state = State.CANCELLED
            return
        if silent >= self.liveness_interval and now - self._last_check >= self.liveness_interval:
            self._last_check = now
            if not self.is_alive():
                self._fail(BACKEND_STOPPED)
                return
        if self.state is State.SUBMITTED and silent >= self.accept_timeout:
            self._fail(f"the backend did not accept the dream within {self.accept_timeout:g} s")
        elif self.state is State.RUNNING and silent >= self.stall_limit:
            self._fail(f"no word from the backend for {self.stall_limit:g} s; the layers received so far are kept")

    def _status(self) -> str:
        if self.state is State.SUBMITTED:
            return "Sending the image to the backend…"
        if self.state is State.QUEUED:
            others = self.position
            if others == 0:
                return "Starting…"
            return f"Waiting for {others} other dream{'s' if others > 1 else ''} to finish…"
        if self.state is State.RUNNING:
            return "Dreaming…"
        if self.state is State.STOPPING:
            return "Stopping…"
        if self.state is State.FAILED:
            return f"Failed: {self.error}"
        return "Done" if self.state is State.DONE else "Stopped"


def _number(header: dict[str, Any], name: str, default: Any, kind: type = int) -> Any:
    """header[name] when it is a number of that kind (an int also passes as a float), else ProtocolError:
    a reply the display would choke on later is reported as what it is, not as a traceback."""
    if name not in header:
        return default
    value = header[name]
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise protocol.ProtocolError(protocol.E_MALFORMED, f"{header['type']!r} has {name}={value!r}, not a number")
    return kind(value)
