"""How long a dream will take, before it is sent: the dialog's estimate, and the progress window's first one.

The work is counted in megapixel-evaluations: each iteration runs about EVALUATIONS_PER_ITERATION loss
evaluations over its octave's pixels (the octaves smallest first, as the backend plans them). The backend
reports its measured speed in `hello` (seconds per megapixel-evaluation, evaluations per iteration); the
last one seen is kept in the user's cache folder, so the dialog can estimate before a backend runs.
Standard library only (GIMP's Python), unit-tested on the host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wire import protocol, user_folders

EVALUATIONS_PER_ITERATION = 7.0  # until the backend has measured its own (L-BFGS's maxfun, about)
SPEED_FILE = "speed.json"


def octave_plan(height: int, width: int, octaves: int, scale: float, iterations: int,
                min_side: int = protocol.MIN_SIDE) -> list[tuple[tuple[int, int], int]]:
    """((height, width), iterations) per octave that gets any, smallest first: backend/core/dream.py's
    octave_plan (which needs NumPy), in plain Python; tests/test_plugin_logic.py holds the two equal."""
    floor = min(min_side, height, width) / min(height, width)
    sizes = []
    for step in range(octaves - 1, -1, -1):
        factor = max(scale**-step, floor)
        sizes.append((max(1, round(height * factor)), max(1, round(width * factor))))
    sizes = list(dict.fromkeys(sizes))
    count = len(sizes)
    split = [iterations // count + (1 if step >= count - iterations % count else 0) for step in range(count)]
    return [(size, n) for size, n in zip(sizes, split, strict=True) if n > 0]


def iteration_megapixels(width: int, height: int, max_size: int, octaves: int, scale: float,
                         iterations: int) -> list[float]:
    """The megapixels each iteration of a dream of this layer (or selection) is dreamt at, in order."""
    dream_width, dream_height = protocol.dream_size(width, height, max_size)
    plan = octave_plan(dream_height, dream_width, octaves, scale, iterations)
    return [h * w / 1e6 for (h, w), count in plan for _ in range(count)]


@dataclass(frozen=True)
class Estimate:
    """A dream's expected work and time: what the dialog shows and the progress window starts from."""

    megapixels: list[float]  # per iteration, in order
    evaluations_per_iteration: float
    seconds: float | None  # None without a measured speed

    @classmethod
    def of(cls, width: int, height: int, max_size: int, octaves: int, scale: float, iterations: int,
           speed: dict[str, Any] | None) -> Estimate:
        """For a layer (or selection) of width×height, from the backend's `speed` report (hello's)."""
        megapixels = iteration_megapixels(width, height, max_size, octaves, scale, iterations)
        per_iteration = _positive(speed, "evaluations_per_iteration") or EVALUATIONS_PER_ITERATION
        per_megapixel = _positive(speed, "seconds_per_megapixel")
        seconds = None if per_megapixel is None else sum(megapixels) * per_iteration * per_megapixel
        return cls(megapixels, per_iteration, seconds)


def _positive(speed: dict[str, Any] | None, name: str) -> float | None:
    value = speed.get(name) if isinstance(speed, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
        return None
    return float(value)


def duration_text(seconds: float) -> str:
    """"about 40 s", "about 3 min", "about 1 h 5 min"."""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes} min"


def estimate_text(estimate: float | None, cached: bool, width: int, height: int) -> str:
    """The dialog's line for an estimate made with a running backend's speed, or with the cached one."""
    if estimate is None:
        return ("Time: estimated once the backend has run (it starts when you press OK; the first start "
                "takes a minute)")
    where = "the backend's speed last time" if cached else "the backend's measured speed"
    return f"Time for {width} × {height} pixels: {duration_text(estimate)} (from {where})"


def fetch_speed(endpoint: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """A running backend's speed report, asked with a short time-out; None if none runs (or it has none)."""
    try:
        from wire.client import Client, is_listening

        if not is_listening(endpoint, timeout / 2):
            return None
        with Client(endpoint) as client:
            speed = client.hello(timeout / 2).get("speed")
    except Exception:  # no backend, a bad endpoint, a broken install: the dialog opens regardless
        return None
    return speed if _positive(speed, "seconds_per_megapixel") is not None else None


def speed_file() -> Path:
    return user_folders.cache_dir() / SPEED_FILE


def save_speed(speed: Any, path: Path | None = None) -> None:
    """Keep a backend's speed report for the next dialog; a cache: failing to write it changes nothing."""
    if _positive(speed, "seconds_per_megapixel") is None:
        return
    path = path or speed_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(speed), encoding="utf-8")
    except OSError:
        pass


def load_speed(path: Path | None = None) -> dict[str, Any] | None:
    """The last speed report kept, or None (none yet, or unreadable)."""
    try:
        speed = json.loads((path or speed_file()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return speed if _positive(speed, "seconds_per_megapixel") is not None else None
