"""One dream animation, driven by the backend's messages: DreamSession's state machine, with frames.

GIMP-free, like session.py: animation.py turns the frames poll() returns into layers. Each frame is a
unit of the progress and the time left; the backend's `progress` says which frame it is in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from estimate import EVALUATIONS_PER_ITERATION
from session import DreamSession, Kept, Progress, TimeLeft, _number

from wire import protocol
from wire.client import Client

DEFAULT_FRAME_MS = 100


def frame_name(number: int, frame_ms: int) -> str:
    """A frame layer's name with GIMP's frame tags: Playback and GIF/WebP export read the delay and the
    disposal ("replace": each frame shows alone, not over the ones before) from it. number is 1-based."""
    return f"Frame {number} ({frame_ms}ms) (replace)"


class FrameTimeLeft(TimeLeft):
    """TimeLeft with frames as the unit: before the first frame ends, a guess of its evaluations."""

    def __init__(self, frames: int, iterations: int, **kwargs: Any) -> None:
        super().__init__(frames, evaluations_per_iteration=EVALUATIONS_PER_ITERATION * iterations, **kwargs)


@dataclass(frozen=True)
class AnimationProgress(Progress):
    frame_iteration: int = 0  # within the running frame, 1-based
    iterations_per_frame: int = 1

    @property
    def iteration_text(self) -> str:
        return (f"Frame {self.iteration} of {self.iterations}, iteration {self.frame_iteration} of "
                f"{self.iterations_per_frame}")


class AnimationSession(DreamSession):
    """One `animate` request and its events. `iteration` (from DreamSession) counts frames here."""

    def __init__(self, client: Client, job: str, frames: int, iterations: int, **kwargs: Any) -> None:
        super().__init__(client, job, frames, 1, **kwargs)
        self.iterations_per_frame = iterations
        self.time_left = FrameTimeLeft(frames, iterations, clock=self.clock)
        self.frame_iteration = 0
        self._at = (-1, -1)  # (frame, iteration) of the latest progress
        self._finished_in_frame = 0  # evaluations of the frame's finished iterations

    def submit_animation(self, pixels: bytes, width: int, height: int, channels: int, preset: str,
                         seed: int | None, max_size: int, **motion: Any) -> None:
        """motion: zoom, rotate, pan, centre, blend, params (protocol.animate_request's keywords)."""
        self._expected = (width, height, channels)
        self.client.animate(self.job, pixels, width, height, channels, preset, self.iterations_per_frame,
                            self.iterations, seed=seed, max_size=max_size, **motion)
        self._last_message = self._last_check = self.clock()

    @property
    def progress(self) -> AnimationProgress:
        base = super().progress
        return AnimationProgress(**vars(base), frame_iteration=self.frame_iteration,
                                 iterations_per_frame=self.iterations_per_frame)

    def _handle(self, header: dict[str, Any], pixels: bytes | None) -> list[Kept]:
        if header.get("job") not in (self.job, None):
            return []
        if header["type"] == protocol.PROGRESS:
            self._progress(header)
            return []
        if header["type"] == protocol.FRAME:
            return self._frame(header, pixels)
        return super()._handle(header, pixels)

    def _progress(self, header: dict[str, Any]) -> None:
        at = (_number(header, "frame", 0), _number(header, "iteration", 0))
        if at != self._at:
            self._finished_in_frame = self._finished_in_frame + self.evaluation if at[0] == self._at[0] else 0
            self._at = at
        self.iteration, self.frame_iteration = at[0] + 1, at[1] + 1
        self.evaluation = _number(header, "evaluation", 0)
        self.loss = _number(header, "loss", None, float)
        self.time_left.evaluation(self._finished_in_frame + self.evaluation)

    def _frame(self, header: dict[str, Any], pixels: bytes | None) -> list[Kept]:
        """A frame is kept as a dream's iteration would be (numbered from 1, checked for its size)."""
        kept = self._iteration(header | {"iteration": _number(header, "frame", -1)}, pixels)
        if self.error:  # said of a frame, not of an iteration
            self.error = self.error.replace("sent iteration", "sent frame", 1)
        self.frame_iteration = self.iterations_per_frame
        return kept
