"""Wire format v1 between the GIMP plug-in and the dream backend — the one place it is defined.

Documented for humans in docs/protocol.md. Standard library only: the GIMP plug-in imports this
module from its own folder (install.py copies `wire/` there), the backend's transport imports it
from the repo.

Every message is multipart: frame 1 is a UTF-8 JSON object with a "type"; `dream` requests and
`iteration` replies carry a second frame of raw sRGB-encoded pixels, row-major, RGB or RGBA, in the
request's sample format (8-bit unless it asks for 16-bit or float samples). A guided `dream` request
carries a third: the guide image's pixels, 8-bit.
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
ANIMATE = "animate"  # a dream animation: frames streamed one by one (docs/protocol.md, Animations)
# Replies and events (server → client).
ACCEPTED = "accepted"
QUEUED = "queued"
STARTED = "started"
PROGRESS = "progress"
ITERATION = "iteration"
FRAME = "frame"  # an animation's finished frame, with its pixels
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
E_DIVERGED = "diverged"  # the loss stopped being a finite number
E_INTERNAL = "internal"
E_QUEUE_FULL = "queue_full"  # the backend's queue holds max_queue jobs already: try again later
ERROR_CODES = frozenset({E_PROTOCOL, E_MALFORMED, E_BAD_REQUEST, E_UNKNOWN_TYPE, E_UNKNOWN_PRESET, E_UNKNOWN_LAYER,
                         E_PRESETS_FILE, E_TOO_LARGE, E_UNKNOWN_JOB, E_DUPLICATE_JOB, E_DIVERGED, E_INTERNAL,
                         E_QUEUE_FULL})

CHANNELS = (3, 4)
SETTING_FIELDS = ("features", "continuity", "dream_l2", "jitter", "octaves", "octave_scale", "max_step",
                  "guide_layers", "guide_size")
# VGG16 pools four times before block5: a side under 16 px leaves it nothing. Smaller images (a tiny
# selection) are dreamt on a copy scaled up to this shorter side.
MIN_SIDE = 32
# Sample formats of the pixel frames: name → bytes per sample. Samples are sRGB-encoded (non-linear) and
# little-endian; u8 spans 0..255, u16 0..65535, f32 0.0..1.0 (colour outside it is clipped by the backend;
# alpha comes back as sent). A request without "format" is u8, as before the field existed.
U8, U16, F32 = "u8", "u16", "f32"
SAMPLE_BYTES = {U8: 1, U16: 2, F32: 4}
SAMPLE_FORMATS = tuple(SAMPLE_BYTES)
# The largest image a request may carry (its pixels arrive whole), in pixels and in bytes of its pixel
# frame; what is dreamt is bounded by the backend's max_pixels, after max_size. 100 MP RGBA u8 reaches
# both; at f32 the bytes bound first (25 MP RGBA).
MAX_REQUEST_PIXELS = 100_000_000
MAX_REQUEST_BYTES = 400_000_000
# Upper bounds that keep the loss finite in float32; far beyond anything that dreams well.
MAX_COEFFICIENT = 1000.0
MAX_LEVELS = 255.0  # the most a field in pixel levels may be
IN_LEVELS = frozenset({"jitter", "max_step"})  # the settings in pixel levels; the others are coefficients
MAX_OCTAVES = 8
MAX_OCTAVE_SCALE = 4.0  # between neighbouring octaves; 1.2–1.6 dreams best
# A guide image is scaled to guide_size (its longer side) before its features are taken, once per request:
# up to 1 MP through VGG16, forward only.
MAX_GUIDE_SIZE = 1024
GUIDE_FIELDS = ("guide_width", "guide_height", "guide_channels")  # a dream request's third frame, if any
# Limits that keep one request from tying the backend up for good or filling its memory.
MAX_ITERATIONS = 1000  # the plug-in offers 200; at ~7 evaluations each, more is days of CPU
MAX_HEADER_BYTES = 65_536  # a request's frame 1 is a few hundred bytes: more is refused before JSON parsing
# The largest frame the backend takes (a request's pixel frame). libzmq drops the connection of a peer that
# sends more, without a reply, so `hello` reports the backend's value and the client checks first.
MAX_MESSAGE_BYTES = MAX_REQUEST_BYTES
MAX_QUEUE = 8  # jobs waiting behind the running one (each holds its pixels in memory)
# Animations: every frame comes back whole, so the client holds frames × width × height pixels (GIMP as
# layers); and every frame is a dream, so frames × iterations is the CPU it ties up.
MAX_FRAMES = 1000
MAX_ANIMATION_PIXELS = 100_000_000  # frames × the request's width × height: 400 MB of RGBA layers
MAX_ANIMATION_ITERATIONS = 10_000  # frames × iterations per frame
MAX_ZOOM = 2.0  # per frame, and at least 1 / MAX_ZOOM
MAX_PAN = 10_000.0  # pixels per frame, either way


class ProtocolError(Exception):
    """A message that breaks the wire format; becomes an `error` reply with this code."""

    def __init__(self, code: str, message: str, job: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.job = job


def encode(header: dict[str, Any], pixels: bytes | None = None, guide: bytes | None = None) -> list[bytes]:
    """The frames of one message: JSON header, then the pixels if any, then a dream's guide pixels if any."""
    frames = [json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")]
    if pixels is not None:
        frames.append(bytes(pixels))
        if guide is not None:
            frames.append(bytes(guide))
    return frames


def decode(frames: list[bytes], max_header_bytes: int = 0) -> tuple[dict[str, Any], bytes | None]:
    """Header and optional pixel frame of one message; ProtocolError if they are unusable. The backend
    passes MAX_HEADER_BYTES (requests are small); replies such as a long preset list are not bounded."""
    if len(frames) > 2:
        raise ProtocolError(E_MALFORMED, f"expected 1 or 2 frames, got {len(frames)}")
    header, pixels, _ = decode_request(frames, max_header_bytes)
    return header, pixels


def decode_request(
    frames: list[bytes], max_header_bytes: int = 0
) -> tuple[dict[str, Any], bytes | None, bytes | None]:
    """decode() for requests, which may carry a third frame (a dream's guide): header, pixels, guide."""
    if not 1 <= len(frames) <= 3:
        raise ProtocolError(E_MALFORMED, f"expected 1 to 3 frames, got {len(frames)}")
    if max_header_bytes and len(frames[0]) > max_header_bytes:
        raise ProtocolError(E_TOO_LARGE, f"frame 1 has {len(frames[0]):,} bytes, over the {max_header_bytes:,} "
                            "a request's JSON header may have")
    try:
        header = json.loads(bytes(frames[0]).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: [[[[… nested too deep
        raise ProtocolError(E_MALFORMED, f"frame 1 is not UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError(E_MALFORMED, "frame 1 must be a JSON object")
    if not isinstance(header.get("type"), str):
        raise ProtocolError(E_MALFORMED, 'the JSON object needs a string "type"', header.get("job"))
    if len(frames) == 3 and header["type"] != DREAM:
        raise ProtocolError(E_MALFORMED, f"only a dream request has a third frame (its guide), not {header['type']!r}",
                            header.get("job"))
    pixels, guide = ([bytes(frame) for frame in frames[1:]] + [None, None])[:2]
    return header, pixels, guide


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


# ---- the messages, built in one place ------------------------------------------------------------


def hello_request() -> dict[str, Any]:
    return {"type": HELLO, "protocol": PROTOCOL_VERSION}


def hello_reply(server: str, info: dict[str, Any]) -> dict[str, Any]:
    """info: model, weights, device, max_pixels, max_tile_pixels, formats (the sample formats it takes), the
    limits (max_message_bytes, max_iterations, max_queue) and any additive fields."""
    return {"type": HELLO, "protocol": PROTOCOL_VERSION, "server": server, **info}


def presets_request() -> dict[str, Any]:
    return {"type": PRESETS}


def presets_reply(presets: dict[str, Any], warning: str | None = None) -> dict[str, Any]:
    reply = {"type": PRESETS, "presets": presets}
    return reply | ({"warning": warning} if warning else {})


def dream_request(
    job: str | int, width: int, height: int, channels: int, preset: str, iterations: int,
    params: dict[str, Any] | None = None, seed: int | None = None, max_size: int = 0,
    guide: tuple[int, int, int] | None = None, *, sample_format: str = U8,
) -> dict[str, Any]:
    """guide: (width, height, channels) of an 8-bit guide image sent as the third frame; None = unguided.
    sample_format goes on the wire only when it is not u8, so an 8-bit request is what it always was."""
    header = {"type": DREAM, "job": job, "width": width, "height": height, "channels": channels,
              "preset": preset, "iterations": iterations, "max_size": max_size}
    header |= dict(zip(GUIDE_FIELDS, guide, strict=True)) if guide else {}
    return (header | ({"params": params} if params else {}) | ({"seed": seed} if seed is not None else {})
            | ({"format": sample_format} if sample_format != U8 else {}))


def cancel_request(job: Any) -> dict[str, Any]:
    return {"type": CANCEL, "job": job}


def accepted(job: Any, position: int, seed: int, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """settings (additive): every preset field the dream uses, the request's params applied."""
    reply = {"type": ACCEPTED, "job": job, "position": position, "seed": seed}
    return reply | ({"settings": settings} if settings is not None else {})


def queued(job: Any, position: int) -> dict[str, Any]:
    return {"type": QUEUED, "job": job, "position": position}


def started(job: Any) -> dict[str, Any]:
    return {"type": STARTED, "job": job}


def progress(job: Any, iteration: int, evaluation: int, loss: float) -> dict[str, Any]:
    return {"type": PROGRESS, "job": job, "iteration": iteration, "evaluation": evaluation, "loss": loss}


def iteration(job: Any, index: int, loss: float, width: int, height: int, channels: int, *,
              sample_format: str = U8) -> dict[str, Any]:
    """Header of an iteration; its pixels go in the second frame, in the request's sample format."""
    return {"type": ITERATION, "job": job, "iteration": index, "loss": loss, "width": width, "height": height,
            "channels": channels, "format": sample_format}


def done(job: Any) -> dict[str, Any]:
    return {"type": DONE, "job": job}


def cancelled(job: Any) -> dict[str, Any]:
    return {"type": CANCELLED, "job": job}


def error(job: Any, code: str, message: str) -> dict[str, Any]:
    return {"type": ERROR, "job": job, "code": code, "message": message}


def frame_bytes(width: int, height: int, channels: int, sample_format: str = U8) -> int:
    """The length of a pixel frame: width·height·channels·bytes per sample."""
    return width * height * channels * SAMPLE_BYTES[sample_format]


def sample_format_of(header: dict[str, Any], job: Any = None) -> str:
    """A message's "format" (absent: u8); ProtocolError for anything but a known name."""
    value = header.get("format", U8)
    if not isinstance(value, str) or value not in SAMPLE_BYTES:
        raise ProtocolError(E_BAD_REQUEST, f'"format" must be one of {", ".join(SAMPLE_FORMATS)}, got {value!r}', job)
    return value


def dream_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """The size a request is dreamt at: its own; shrunk so the longer side is max_size (0 = no limit);
    or grown so the shorter side is MIN_SIDE, which wins over a smaller max_size. Results always come
    back at the request's own size."""
    scale = 1.0
    if max_size > 0 and max(width, height) > max_size:
        scale = max_size / max(width, height)
    if min(width, height) * scale < MIN_SIDE:
        scale = MIN_SIDE / min(width, height)
    if scale == 1.0:
        return width, height
    return max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale))


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
    sample_format: str = U8
    guide_width: int = 0  # 0: no guide
    guide_height: int = 0
    guide_channels: int = 0

    @property
    def guide_shape(self) -> tuple[int, int] | None:
        """(width, height) of the guide image, None without one."""
        return (self.guide_width, self.guide_height) if self.guide_width else None


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


def bounded_number(value: Any, name: str, job: Any = None, maximum: float = MAX_COEFFICIENT) -> float:
    """A JSON number in 0..maximum, else ProtocolError naming the field (NaN and inf included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(E_BAD_REQUEST, f'"{name}" must be a number', job)
    if not (math.isfinite(value) and 0 <= value <= maximum):
        raise ProtocolError(E_BAD_REQUEST, f'"{name}" must be a number from 0 to {maximum:g}, got {value}', job)
    return float(value)


def check_settings(params: Any, job: Any = None) -> dict[str, Any]:
    """Preset fields that are given: features {layer: coeff}, numbers within their bounds."""
    if not isinstance(params, dict):
        raise ProtocolError(E_BAD_REQUEST, '"params" must be a JSON object', job)
    unknown = sorted(set(params) - set(SETTING_FIELDS))
    if unknown:
        raise ProtocolError(E_BAD_REQUEST, f"unknown params {unknown}; allowed: {list(SETTING_FIELDS)}", job)
    checked: dict[str, Any] = {}
    for name, value in params.items():
        if name == "features":
            if not isinstance(value, dict) or not value:
                raise ProtocolError(E_BAD_REQUEST, '"features" must be a non-empty object {layer: coeff}', job)
            checked[name] = {str(layer): bounded_number(coeff, f"features.{layer}", job)
                             for layer, coeff in value.items()}
        elif name == "octaves":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OCTAVES:
                raise ProtocolError(E_BAD_REQUEST, f'"octaves" must be an integer from 1 to {MAX_OCTAVES}', job)
            checked[name] = value
        elif name == "guide_layers":
            if not isinstance(value, (list, tuple)) or not all(isinstance(n, str) for n in value) or len(value) > 16:
                raise ProtocolError(E_BAD_REQUEST, '"guide_layers" must be a list of layer names', job)
            checked[name] = value
        elif name == "guide_size":
            if isinstance(value, bool) or not isinstance(value, int) or not MIN_SIDE <= value <= MAX_GUIDE_SIZE:
                raise ProtocolError(E_BAD_REQUEST, f'"guide_size" must be an integer from {MIN_SIDE} to '
                                    f"{MAX_GUIDE_SIZE}, got {value!r}", job)
            checked[name] = value
        elif name == "octave_scale":
            checked[name] = bounded_number(value, name, job, MAX_OCTAVE_SCALE)
            if checked[name] <= 1:
                raise ProtocolError(E_BAD_REQUEST, f'"octave_scale" must be over 1, got {value}', job)
        else:
            checked[name] = bounded_number(value, name, job, MAX_LEVELS if name in IN_LEVELS else MAX_COEFFICIENT)
    return checked


def _check_frame(frame: bytes, width: int, height: int, channels: int, what: str, job: Any,
                 sample_format: str = U8) -> None:
    expected = frame_bytes(width, height, channels, sample_format)
    if len(frame) != expected:
        per_sample = f"×{SAMPLE_BYTES[sample_format]} ({sample_format})" if sample_format != U8 else ""
        raise ProtocolError(E_BAD_REQUEST, f"{what} has {len(frame)} bytes, expected {width}×{height}×{channels}"
                            f"{per_sample} = {expected}", job)


def _channels(header: dict[str, Any], name: str, job: Any) -> int:
    channels = header.get(name)
    if type(channels) is not int or channels not in CHANNELS:
        raise ProtocolError(E_BAD_REQUEST, f'"{name}" must be 3 (RGB) or 4 (RGBA), got {channels!r}', job)
    return channels


def parse_guide(header: dict[str, Any], guide: bytes | None, job: Any) -> tuple[int, int, int]:
    """(width, height, channels) of a dream request's guide image, (0, 0, 0) without one. Checked like
    the main frame: its size against MAX_REQUEST_PIXELS before its pixels are looked at."""
    if guide is None and not any(name in header for name in GUIDE_FIELDS):
        return 0, 0, 0
    width = _int_field(header, "guide_width", job, 1)
    height = _int_field(header, "guide_height", job, 1)
    channels = _channels(header, "guide_channels", job)
    if width * height > MAX_REQUEST_PIXELS:
        raise ProtocolError(E_TOO_LARGE, f"a {width}×{height} guide is over the {MAX_REQUEST_PIXELS:,} pixels a "
                            "request may carry", job)
    if guide is None:
        raise ProtocolError(E_MALFORMED, "a guided dream request needs a third frame with the guide's pixels", job)
    _check_frame(guide, width, height, channels, "guide frame", job)
    return width, height, channels


def parse_dream(header: dict[str, Any], pixels: bytes | None, max_pixels: int, guide: bytes | None = None
                ) -> DreamRequest:
    """Validate a `dream` request. Sizes come first, before the pixels are looked at: the request's
    against MAX_REQUEST_PIXELS and its frame against MAX_REQUEST_BYTES, the size it is dreamt at (after
    max_size) against max_pixels. A guide (third frame, 8-bit) is optional: its fields are GUIDE_FIELDS."""
    job = job_id(header)
    width = _int_field(header, "width", job, 1)
    height = _int_field(header, "height", job, 1)
    channels = _channels(header, "channels", job)
    max_size = _int_field(header, "max_size", job, 0, default=0) if header.get("max_size") is not None else 0
    sample_format = sample_format_of(header, job)
    if width * height > MAX_REQUEST_PIXELS:
        raise ProtocolError(E_TOO_LARGE, f"{width}×{height} is over the {MAX_REQUEST_PIXELS:,} pixels a request "
                            "may carry", job)
    expected = frame_bytes(width, height, channels, sample_format)
    if expected > MAX_REQUEST_BYTES:
        raise ProtocolError(E_TOO_LARGE, f"{width}×{height}×{channels} at {sample_format} is a {expected:,}-byte "
                            f"pixel frame, over the {MAX_REQUEST_BYTES:,} bytes a request may carry", job)
    dream_width, dream_height = dream_size(width, height, max_size)
    if dream_width * dream_height > max_pixels:
        raise ProtocolError(
            E_TOO_LARGE,
            f"dreaming {width}×{height} at {dream_width}×{dream_height} needs {dream_width * dream_height:,} "
            f"pixels; this backend dreams at most {max_pixels:,}: set a maximum size "
            f"(at most {int(math.sqrt(max_pixels * max(width, height) / min(width, height)))} here)",
            job,
        )
    if pixels is None:
        raise ProtocolError(E_MALFORMED, "a dream request needs a second frame with the pixels", job)
    _check_frame(pixels, width, height, channels, "pixel frame", job, sample_format)
    guide_shape = parse_guide(header, guide, job)
    preset = header.get("preset")
    if not isinstance(preset, str) or not preset:
        raise ProtocolError(E_BAD_REQUEST, '"preset" must be a preset name', job)
    iterations = _int_field(header, "iterations", job, 1)
    if iterations > MAX_ITERATIONS:
        raise ProtocolError(E_TOO_LARGE, f'"iterations" may be at most {MAX_ITERATIONS:,}, got {iterations:,}', job)
    params = check_settings(header.get("params", {}), job)
    seed = header.get("seed")
    if seed is not None:
        seed = _int_field(header, "seed", job, 0)
    return DreamRequest(job, width, height, channels, preset, iterations, params, seed, max_size, sample_format,
                        *guide_shape)


# ---- animations (additive: an older client never sends `animate`, so never gets `frame`) -------------


def animate_request(
    job: str | int, width: int, height: int, channels: int, preset: str, iterations: int, frames: int,
    zoom: float = 1.0, rotate: float = 0.0, pan: tuple[float, float] = (0.0, 0.0),
    centre: tuple[float, float] | None = None, blend: float = 0.0, params: dict[str, Any] | None = None,
    seed: int | None = None, max_size: int = 0,
) -> dict[str, Any]:
    """A dream request's fields (iterations are per frame) plus the animation's."""
    header = dream_request(job, width, height, channels, preset, iterations, params, seed, max_size)
    header |= {"type": ANIMATE, "frames": frames, "zoom": zoom, "rotate": rotate, "pan": list(pan), "blend": blend}
    return header | ({"centre": list(centre)} if centre is not None else {})


def frame(job: Any, index: int, frames: int, loss: float, width: int, height: int, channels: int) -> dict[str, Any]:
    """Header of an animation's finished frame (0-based `frame` of `frames`); its pixels go in the second frame."""
    return {"type": FRAME, "job": job, "frame": index, "frames": frames, "loss": loss, "width": width,
            "height": height, "channels": channels}


def frame_progress(job: Any, index: int, iteration: int, evaluation: int, loss: float) -> dict[str, Any]:
    """An animation's `progress`: a dream's, with the 0-based frame it is in."""
    return progress(job, iteration, evaluation, loss) | {"frame": index}


@dataclass(frozen=True)
class AnimateRequest:
    """A validated `animate` request: its dream fields (iterations per frame) and how the frames move."""

    dream: DreamRequest
    frames: int
    zoom: float = 1.0
    rotate: float = 0.0
    pan: tuple[float, float] = (0.0, 0.0)
    centre: tuple[float, float] | None = None
    blend: float = 0.0


def signed_number(value: Any, name: str, job: Any, limit: float) -> float:
    """A JSON number in −limit..limit, else ProtocolError naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(E_BAD_REQUEST, f'"{name}" must be a number', job)
    if not (math.isfinite(value) and -limit <= value <= limit):
        raise ProtocolError(E_BAD_REQUEST, f'"{name}" must be a number from {-limit:g} to {limit:g}, got {value}', job)
    return float(value)


def _point(header: dict[str, Any], name: str, job: Any, check: Any) -> tuple[float, float] | None:
    value = header.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ProtocolError(E_BAD_REQUEST, f'"{name}" must be a list of two numbers [x, y]', job)
    return check(value[0], f"{name}[0]"), check(value[1], f"{name}[1]")


def parse_animate(header: dict[str, Any], pixels: bytes | None, max_pixels: int,
                  max_animation_pixels: int = MAX_ANIMATION_PIXELS) -> AnimateRequest:
    """Validate an `animate` request: its dream fields as parse_dream does, then the animation's. The
    frame count and its limits come before the pixels are looked at."""
    job = job_id(header)
    frames = _int_field(header, "frames", job, 1)
    if frames > MAX_FRAMES:
        raise ProtocolError(E_TOO_LARGE, f'"frames" may be at most {MAX_FRAMES:,}, got {frames:,}', job)
    width, height = _int_field(header, "width", job, 1), _int_field(header, "height", job, 1)
    if frames * width * height > max_animation_pixels:
        raise ProtocolError(E_TOO_LARGE, f"{frames:,} frames of {width}×{height} are {frames * width * height:,} "
                            f"pixels; an animation may have at most {max_animation_pixels:,}: fewer frames or a "
                            "smaller layer", job)
    request = parse_dream(header, pixels, max_pixels)
    if request.sample_format != U8:
        raise ProtocolError(E_BAD_REQUEST, f'animations are 8-bit: "format" must be "{U8}" (or absent), not '
                            f'{request.sample_format!r}', job)
    if frames * request.iterations > MAX_ANIMATION_ITERATIONS:
        raise ProtocolError(E_TOO_LARGE, f"{frames:,} frames × {request.iterations:,} iterations is over the "
                            f"{MAX_ANIMATION_ITERATIONS:,} iterations an animation may take", job)
    zoom = bounded_number(header.get("zoom", 1.0), "zoom", job, MAX_ZOOM)
    if zoom < 1 / MAX_ZOOM:
        raise ProtocolError(E_BAD_REQUEST, f'"zoom" must be from {1 / MAX_ZOOM:g} to {MAX_ZOOM:g}, got {zoom}', job)
    rotate = signed_number(header.get("rotate", 0.0), "rotate", job, 180.0)
    pan = _point(header, "pan", job, lambda value, name: signed_number(value, name, job, MAX_PAN)) or (0.0, 0.0)
    centre = _point(header, "centre", job, lambda value, name: bounded_number(
        value, name, job, float(width if name.endswith("[0]") else height)))
    blend = bounded_number(header.get("blend", 0.0), "blend", job, 1.0)
    return AnimateRequest(request, frames, zoom, rotate, pan, centre, blend)
