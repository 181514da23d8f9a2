"""Wire format v1 between the GIMP plug-in and the dream backend — the one place it is defined.

Documented for humans in docs/protocol.md. Standard library only: the GIMP plug-in imports this
module from its own folder (install.py copies `wire/` there), the backend's transport imports it
from the repo.

Every message is multipart: frame 1 is a UTF-8 JSON object with a "type"; `dream` requests and
`iteration` replies carry a second frame of raw 8-bit sRGB pixels, row-major, RGB or RGBA.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5570"

# Requests (client → server).
HELLO = "hello"
PRESETS = "presets"
DREAM = "dream"
CANCEL = "cancel"
# Replies and events (server → client).
ACCEPTED = "accepted"
QUEUED = "queued"
STARTED = "started"
PROGRESS = "progress"
ITERATION = "iteration"
DONE = "done"
CANCELLED = "cancelled"
ERROR = "error"

# Error codes carried by `error` messages.
E_PROTOCOL = "protocol"  # the client speaks a protocol version the server does not
E_MALFORMED = "malformed"  # frames or JSON unusable
E_BAD_REQUEST = "bad_request"  # a field missing, ill-typed or out of range
E_UNKNOWN_TYPE = "unknown_type"
E_UNKNOWN_PRESET = "unknown_preset"
E_UNKNOWN_LAYER = "unknown_layer"
E_PRESETS_FILE = "presets_file"  # the user's presets file does not load
E_TOO_LARGE = "too_large"
E_UNKNOWN_JOB = "unknown_job"
E_DUPLICATE_JOB = "duplicate_job"
E_INTERNAL = "internal"

CHANNELS = (3, 4)
SETTING_FIELDS = ("features", "continuity", "dream_l2", "jitter")


class ProtocolError(Exception):
    """A message that breaks the wire format; becomes an `error` reply with this code."""

    def __init__(self, code: str, message: str, job: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.job = job


def encode(header: dict[str, Any], pixels: bytes | None = None) -> list[bytes]:
    """The frames of one message: JSON header, then the pixels if any."""
    frames = [json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")]
    if pixels is not None:
        frames.append(bytes(pixels))
    return frames


def decode(frames: list[bytes]) -> tuple[dict[str, Any], bytes | None]:
    """Header and optional pixel frame of one message; ProtocolError if they are unusable."""
    if not 1 <= len(frames) <= 2:
        raise ProtocolError(E_MALFORMED, f"expected 1 or 2 frames, got {len(frames)}")
    try:
        header = json.loads(bytes(frames[0]).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(E_MALFORMED, f"frame 1 is not UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError(E_MALFORMED, "frame 1 must be a JSON object")
    if not isinstance(header.get("type"), str):
        raise ProtocolError(E_MALFORMED, 'the JSON object needs a string "type"', header.get("job"))
    return header, (bytes(frames[1]) if len(frames) == 2 else None)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def error(job: Any, code: str, message: str) -> dict[str, Any]:
    return {"type": ERROR, "job": job, "code": code, "message": message}


def pixel_count(width: int, height: int, channels: int) -> int:
    return width * height * channels


@dataclass(frozen=True)
class DreamRequest:
    """A validated `dream` request. Preset and layer names are checked by the backend, which knows them."""

    job: Any
    width: int
    height: int
    channels: int
    preset: str
    iterations: int
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    max_size: int = 0


def job_id(header: dict[str, Any]) -> Any:
    """The client's job id: any JSON string or integer (not a bool, float or container)."""
    job = header.get("job")
    if isinstance(job, bool) or not isinstance(job, (str, int)):
        raise ProtocolError(E_BAD_REQUEST, '"job" must be a string or an integer', _safe_job(job))
    return job


def _safe_job(job: Any) -> Any:
    return job if isinstance(job, (str, int)) and not isinstance(job, bool) else None


def _int_field(header: dict[str, Any], name: str, job: Any, minimum: int, default: int | None = None) -> int:
    value = header.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(E_BAD_REQUEST, f'"{name}" must be an integer', job)
    if value < minimum:
        raise ProtocolError(E_BAD_REQUEST, f'"{name}" must be at least {minimum}, got {value}', job)
    return value


def finite_number(value: Any, name: str, job: Any = None, minimum: float = 0.0) -> float:
    """A JSON number that is finite and ≥ minimum, else ProtocolError naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(E_BAD_REQUEST, f'"{name}" must be a number', job)
    if not math.isfinite(value) or value < minimum:
        raise ProtocolError(E_BAD_REQUEST, f'"{name}" must be a finite number ≥ {minimum}, got {value}', job)
    return float(value)


def check_settings(params: Any, job: Any = None, partial: bool = True) -> dict[str, Any]:
    """Preset fields (all of them unless partial) with the right types: features {layer: coeff}, numbers ≥ 0."""
    if not isinstance(params, dict):
        raise ProtocolError(E_BAD_REQUEST, '"params" must be a JSON object', job)
    unknown = sorted(set(params) - set(SETTING_FIELDS))
    if unknown:
        raise ProtocolError(E_BAD_REQUEST, f"unknown params {unknown}; allowed: {list(SETTING_FIELDS)}", job)
    missing = [] if partial else [name for name in SETTING_FIELDS if name not in params]
    if missing:
        raise ProtocolError(E_BAD_REQUEST, f"missing fields {missing}", job)
    checked: dict[str, Any] = {}
    for name, value in params.items():
        if name == "features":
            if not isinstance(value, dict) or not value:
                raise ProtocolError(E_BAD_REQUEST, '"features" must be a non-empty object {layer: coeff}', job)
            checked[name] = {
                str(layer): finite_number(coeff, f"features.{layer}", job, minimum=-math.inf)
                for layer, coeff in value.items()
            }
        else:
            checked[name] = finite_number(value, name, job)
    return checked


def parse_dream(header: dict[str, Any], pixels: bytes | None, max_pixels: int) -> DreamRequest:
    """Validate a `dream` request; the image's size is checked against max_pixels before anything else."""
    job = job_id(header)
    width = _int_field(header, "width", job, 1)
    height = _int_field(header, "height", job, 1)
    channels = header.get("channels")
    if channels not in CHANNELS or isinstance(channels, bool):
        raise ProtocolError(E_BAD_REQUEST, f'"channels" must be 3 (RGB) or 4 (RGBA), got {channels!r}', job)
    if width * height > max_pixels:
        raise ProtocolError(
            E_TOO_LARGE,
            f"{width}×{height} is {width * height} pixels; this backend takes at most {max_pixels} "
            "(set a maximum size to dream on a smaller copy)",
            job,
        )
    if pixels is None:
        raise ProtocolError(E_MALFORMED, "a dream request needs a second frame with the pixels", job)
    expected = pixel_count(width, height, channels)
    if len(pixels) != expected:
        raise ProtocolError(
            E_BAD_REQUEST,
            f"pixel frame has {len(pixels)} bytes, expected {width}×{height}×{channels} = {expected}",
            job,
        )
    preset = header.get("preset")
    if not isinstance(preset, str) or not preset:
        raise ProtocolError(E_BAD_REQUEST, '"preset" must be a preset name', job)
    iterations = _int_field(header, "iterations", job, 1)
    params = check_settings(header.get("params", {}), job)
    seed = header.get("seed")
    if seed is not None:
        seed = _int_field(header, "seed", job, 0)
    max_size = _int_field(header, "max_size", job, 0, default=0) if header.get("max_size") is not None else 0
    return DreamRequest(job, width, height, channels, preset, iterations, params, seed, max_size)
