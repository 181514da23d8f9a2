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

from wire import protocol
from wire.client import Client, is_listening

BACKEND_STOPPED = "the backend stopped during the dream; the layers received so far are kept"
EVALUATIONS_GUESS = 7  # loss evaluations per iteration before one has finished (the backend's L-BFGS maxfun)


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


class TimeLeft:
    """Seconds left at the pace so far: loss evaluations done against those the whole dream takes.

    Evaluations are the unit of work (each costs about the same); how many an iteration takes is learnt
    from the finished iterations.
    """

    def __init__(self, iterations: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.iterations = iterations
        self.clock = clock
        self.started_at: float | None = None
        self.finished = 0  # iterations
        self.finished_evaluations = 0
        self.current = 0  # evaluations so far in the running iteration

    def start(self) -> None:
        self.started_at = self.clock()

    def evaluation(self, evaluation: int) -> None:
        self.current = evaluation

    def iteration_done(self) -> None:
        self.finished += 1
        self.finished_evaluations += max(self.current, 1)
        self.current = 0

    def per_iteration(self) -> float:
        return self.finished_evaluations / self.finished if self.finished else EVALUATIONS_GUESS

    def fraction(self) -> float:
        running = min(self.current / self.per_iteration(), 1.0)
        return min(1.0, (self.finished + running) / self.iterations)

    def seconds(self) -> float | None:
        done = self.finished_evaluations + self.current
        if self.started_at is None or done == 0:
            return None
        remaining = self.per_iteration() * self.iterations - done
        return max(0.0, (self.clock() - self.started_at) / done * remaining)


def describe_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "estimating the time left…"
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes} min left"


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

    @property
    def iteration_text(self) -> str:
        return f"Iteration {self.iteration} of {self.iterations}"

    @property
    def evaluation_text(self) -> str:
        return f"Evaluation {self.evaluation}" if self.evaluation else ""

    @property
    def loss_text(self) -> str:
        return f"Loss {self.loss:,.1f}" if self.loss is not None else ""

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
        self.time_left = TimeLeft(iterations, clock)
        self._expected: tuple[int, int, int] = (0, 0, 0)
        self._last_message = self._last_check = self._stop_deadline = clock()

    # ---- driving it -------------------------------------------------------------------------------

    def submit(self, pixels: bytes, width: int, height: int, channels: int, preset: str, seed: int | None,
               max_size: int, params: dict[str, Any] | None = None,
               guide: tuple[bytes, int, int, int] | None = None) -> None:
        """guide: (pixels, width, height, channels) of a guide image, or None."""
        self._expected = (width, height, channels)
        self.client.dream(self.job, pixels, width, height, channels, preset, self.iterations, params=params or None,
                          seed=seed, max_size=max_size, guide=guide)
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
                        self.time_left.fraction(), self.time_left.seconds() if self.state is State.RUNNING else None)

    # ---- the messages -----------------------------------------------------------------------------

    def _handle(self, header: dict[str, Any], pixels: bytes | None) -> list[Kept]:
        if header.get("job") not in (self.job, None):
            return []
        kind = header["type"]
        stopping = self.state is State.STOPPING
        if kind in (protocol.ACCEPTED, protocol.QUEUED):
            self.position = _number(header, "position", 0)
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
        if size != self._expected or pixels is None or len(pixels) != width * height * channels:
            self._fail(f"the backend sent iteration {number} as {size[0]}×{size[1]}×{size[2]} with "
                       f"{len(pixels or b'')} bytes, not the {width}×{height}×{channels} image asked for")
            return []
        self.time_left.iteration_done()
        self.iteration, self.evaluation = number, 0
        self.loss = _number(header, "loss", self.loss, float)
        if self.state is State.STOPPING or not layers.is_kept(number, self.iterations, self.keep_every):
            return []
        return [Kept(number, pixels, width, height, channels)]

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
