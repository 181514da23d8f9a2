"""The dream engine: a loaded VGG16 and presets, dreaming images. Shared by the service and the CLI.

This is where the numerical core meets the wire format's request type; the transport
(backend/service/) only sees the `Engine` methods, never TensorFlow.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from backend.core import errors, guide, imaging
from backend.core.animation import FrameEvaluationCallback, Motion, animate
from backend.core.dream import Diverged, LossAndGradient, Octaves, dream, octave_plan
from backend.core.loss import DreamLoss
from backend.core.model import device_name, load_vgg16, resolve_weights, share_gpus
from backend.core.preprocessing import deprocess, deprocess_levels, preprocess
from backend.core.presets import BUILTIN_PRESETS, Preset, PresetError
from backend.core.vgg16_layers import VGG16_CONV_LAYERS
from backend.speed import DreamTimer, Speed
from backend.user_presets import load_presets
from wire import protocol

log = logging.getLogger(__name__)

# Memory. The loss and its gradient need about TILE_BYTES_PER_PIXEL per pixel of a tile's crop (VGG16's
# activations kept for the gradient, most of them as 1-byte ReLU masks), whatever the image's size: 2048²
# in four 1.23-MP tiles peaked at 2260 MB over a 676 MB base with the image's own arrays, ~1.2 kB per pixel.
# Each pixel of the image itself costs the L-BFGS state and the loop's copies: IMAGE_BYTES_PER_PIXEL.
TILE_BYTES_PER_PIXEL = 1250
IMAGE_BYTES_PER_PIXEL = 1024
TILE_MEMORY_SHARE = 1 / 16  # of the machine's memory, for one tile's activations
MEMORY_SHARE = 0.5  # for everything: leave the other half to GIMP and the rest of the machine
FALLBACK_MEMORY = 8 * 2**30  # where the memory can't be read
GPU_TILE_PIXELS = 1024 * 1024  # ~1.3 GB of activations: meant for GPUs of 4 GB and more (unverified)


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return FALLBACK_MEMORY


def default_max_pixels() -> int:
    """The largest image whose L-BFGS state and copies fit in half of this machine's memory."""
    return int(physical_memory() * MEMORY_SHARE / IMAGE_BYTES_PER_PIXEL)


def default_tile_pixels(device: str) -> int:
    """The largest tile crop, in pixels: a share of the memory on a CPU; on a GPU, a size that fits
    its memory (TensorFlow does not tell how much a GPU has)."""
    if device.startswith("GPU"):
        return GPU_TILE_PIXELS
    return int(physical_memory() * TILE_MEMORY_SHARE / TILE_BYTES_PER_PIXEL)


# The wire's sample formats as NumPy holds them: dtype (little-endian, as the wire has it) and full intensity.
# u8 takes the seed's path (whole levels); the others are dreamt as float levels and never rounded to 8 bits.
SAMPLES: dict[str, tuple[np.dtype, float]] = {
    protocol.U8: (np.dtype(np.uint8), 255.0),
    protocol.U16: (np.dtype("<u2"), 65535.0),
    protocol.F32: (np.dtype("<f4"), 1.0),
}
# The core's error kinds as the wire format's error codes.
ERROR_CODES = {errors.UNKNOWN_LAYER: protocol.E_UNKNOWN_LAYER, errors.PRESETS_FILE: protocol.E_PRESETS_FILE,
               errors.BAD_GUIDE: protocol.E_BAD_REQUEST}


def protocol_error(exc: errors.CoreError, job: Any = None) -> protocol.ProtocolError:
    return protocol.ProtocolError(ERROR_CODES[exc.kind], str(exc), job)


MAX_TRACED = 16  # layer sets whose sub-model and traced loss are kept; a client can't grow this forever

EvaluationCallback = Callable[[int, int, float], None]
IterationCallback = Callable[[int, float, bytes], None]
FrameCallback = Callable[[int, float, bytes], None]  # (frame, loss, pixels)


class Engine:
    """VGG16 loaded once; one sub-model and traced loss per set of feature layers, kept warm."""

    def __init__(
        self,
        weights: str = "auto",
        presets_path: Path | None = None,
        max_pixels: int | None = None,
        tile_size: int | None = None,
    ):
        started = time.perf_counter()
        share_gpus()
        self.weights = resolve_weights(weights)
        self.vgg16 = load_vgg16(self.weights)
        self.presets_path = presets_path
        self.max_pixels = max_pixels or default_max_pixels()
        self.device = device_name()
        self.max_tile_pixels = tile_size**2 if tile_size else default_tile_pixels(self.device)
        self._presets_problem: str | None = None
        self._losses: OrderedDict[tuple[str, ...], DreamLoss] = OrderedDict()
        self.speed = Speed()
        self.load_s = time.perf_counter() - started
        log.info("VGG16 with %s weights loaded on %s in %.1f s", self.weights.name, self.device, self.load_s)

    def info(self) -> dict[str, Any]:
        speed = self.speed.report()
        return {"model": "vgg16", "weights": self.weights.name, "device": self.device, "max_pixels": self.max_pixels,
                "max_tile_pixels": self.max_tile_pixels, "formats": list(SAMPLES),
                **({"speed": speed} if speed else {})}

    def presets(self) -> tuple[dict[str, Preset], str | None]:
        """(presets, what is wrong with the user's file or None), read afresh each time so edits show
        without a restart. A broken file costs only its own presets: the built-ins keep working."""
        try:
            presets, problem = load_presets(self.presets_path), None
        except PresetError as exc:
            presets, problem = dict(BUILTIN_PRESETS), str(exc)
        if problem != self._presets_problem:  # log each new problem once, and its fix
            if problem:
                log.warning("%s (the built-in presets keep working)", problem)
            else:
                log.info("the user's presets file loads again")
            self._presets_problem = problem
        return presets, problem

    def settings(
        self, preset: str, overrides: dict[str, Any], job: Any = None, guide_shape: tuple[int, int] | None = None
    ) -> Preset:
        """The preset with the request's overrides; ProtocolError for an unknown preset or layer, or for a
        guide of guide_shape (width, height) that cannot be used with them."""
        presets, problem = self.presets()
        if preset not in presets:
            if problem:  # the preset may well be in the file that does not load
                raise protocol.ProtocolError(protocol.E_PRESETS_FILE, f"unknown preset {preset!r}: {problem}", job)
            raise protocol.ProtocolError(
                protocol.E_UNKNOWN_PRESET, f"unknown preset {preset!r}; known: {', '.join(sorted(presets))}", job
            )
        try:
            settings = presets[preset].with_overrides(overrides)
            if guide_shape:
                guide.guide_shape(*guide_shape, settings.guide_size)
        except errors.CoreError as exc:
            raise protocol_error(exc, job) from None
        return settings

    def warm_up(self, size: int = 32, extra: tuple[Preset, ...] = ()) -> float:
        """Trace the loss of every known preset (and of `extra` settings) once, so no first request waits
        for tracing; seconds taken. The code paths a dream uses the first time are the worker's to run
        (prepare_worker)."""
        started = time.perf_counter()
        presets, _ = self.presets()
        x = np.zeros((size, size, 3), np.float32)
        for settings in (*presets.values(), *extra):
            self.loss_for(settings)(x)
        return time.perf_counter() - started

    def measure_speed(self, side: int = 160, repeats: int = 2) -> float:
        """Time the costliest preset (the deepest layer) on a side² image, best of `repeats` after one untimed
        run, as the speed `hello` reports until a dream measures it; seconds per evaluation per megapixel."""
        presets, _ = self.presets()
        costliest = max(presets.values(), key=lambda p: max(VGG16_CONV_LAYERS.index(name) for name in p.features))
        loss = self.loss_for(costliest)
        x = np.random.default_rng(0).uniform(-60, 60, (side, side, 3)).astype(np.float32)
        loss(x)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            loss(x)
            times.append(time.perf_counter() - started)
        self.speed.record(min(times), side * side / 1e6, "start")
        return self.speed.seconds_per_megapixel or 0.0

    def prepare_worker(self, side: int = 1024) -> None:
        """In the thread that will dream: one whole iteration, and one L-BFGS run on a `side`² image with
        a NumPy-only loss. A thread's first large arrays come from a memory arena of its own that the
        kernel has yet to fault in; this pays for that (~0.1 s at 1 MP) before any request does."""
        presets, _ = self.presets()
        next(self.dream_rgb(np.zeros((32, 32, 3), np.uint8), next(iter(presets.values())), 1, 0))
        next(dream(lambda x: (float(np.sum(x * x)), 2 * x), np.zeros((side, side, 3), np.float32), 1, 0.0, 0))

    def loss_for(self, settings: Preset, guide_pixels: np.ndarray | None = None) -> LossAndGradient:
        """The traced loss for the preset's layers; the most recently used MAX_TRACED sets stay warm.
        guide_pixels (H×W×3 or ×4 uint8): a guide image, whose features are taken here, once."""
        layers = tuple(sorted(settings.features))
        if layers in self._losses:
            self._losses.move_to_end(layers)
        else:
            self._losses[layers] = DreamLoss(self.vgg16, layers, self.max_tile_pixels)
            if len(self._losses) > MAX_TRACED:
                self._losses.popitem(last=False)
        coeffs = [settings.features[name] for name in layers]
        guides = () if guide_pixels is None else guide.guide_features(
            self.vgg16, guide_pixels, settings.guide_size, settings.guided_layers(), layers)
        return self._losses[layers].bind(coeffs, settings.continuity, settings.dream_l2, guides)

    def dream_rgb(
        self,
        rgb: np.ndarray,
        settings: Preset,
        iterations: int,
        seed: int,
        max_size: int = 0,
        on_evaluation: EvaluationCallback = lambda iteration, evaluation, loss: None,
        should_stop: Callable[[], bool] = lambda: False,
        guide_pixels: np.ndarray | None = None,
    ) -> Iterator[tuple[int, float, np.ndarray]]:
        """(index, loss, H×W×3 RGB at the input's size) after each iteration: uint8 for uint8 input (the
        seed's path, rounded to whole levels), else float32 levels 0..255 (imaging.to_levels), not rounded. Its
        pace becomes the engine's measured speed. guide_pixels: an optional guide image (any size, RGB or RGBA
        uint8)."""
        exact = rgb.dtype != np.uint8
        height, width = rgb.shape[:2]
        dream_width, dream_height = protocol.dream_size(width, height, max_size)
        x0 = preprocess(imaging.resize(rgb, dream_width, dream_height))
        loss = self.loss_for(settings, guide_pixels)
        octaves = Octaves(settings.octaves, settings.octave_scale)
        timer = DreamTimer(octave_plan(dream_height, dream_width, octaves, iterations, protocol.MIN_SIDE))
        on_evaluation = timer.wrap(on_evaluation)
        finished = 0
        for step in dream(
            loss, x0, iterations, settings.jitter, seed, octaves, protocol.MIN_SIDE, max_step=settings.max_step,
            on_evaluation=on_evaluation, should_stop=should_stop,
        ):
            finished += 1
            timer.record(self.speed, finished)
            image = deprocess_levels(step.image) if exact else deprocess(step.image)
            yield step.index, step.loss, imaging.resize(image, width, height)

    def run(
        self,
        request: protocol.DreamRequest,
        pixels: bytes,
        seed: int,
        on_evaluation: EvaluationCallback,
        on_iteration: IterationCallback,
        should_stop: Callable[[], bool],
        guide_pixels: bytes | None = None,
    ) -> None:
        """Dream one validated request, reporting every evaluation and every iteration's pixels, in the
        request's sample format; alpha comes back as it came. guide_pixels: the request's guide frame, if any."""
        settings = self.settings(request.preset, request.params, request.job, request.guide_shape)
        dtype, full_scale = SAMPLES[request.sample_format]
        rgb, alpha = imaging.from_bytes(pixels, request.width, request.height, request.channels, dtype)
        if dtype != np.uint8:
            if not np.isfinite(rgb).all():
                raise protocol.ProtocolError(protocol.E_BAD_REQUEST, "the pixel frame's colour samples hold NaN or "
                                             "infinity: f32 colour must be finite numbers", request.job)
            rgb = imaging.to_levels(rgb, full_scale)
        guide_array = None
        if guide_pixels is not None:
            guide_array = np.frombuffer(guide_pixels, np.uint8).reshape(
                request.guide_height, request.guide_width, request.guide_channels)
        steps = self.dream_rgb(rgb, settings, request.iterations, seed, request.max_size, on_evaluation, should_stop,
                               guide_array)
        try:
            for index, loss, image in steps:
                samples = image if dtype == np.uint8 else imaging.from_levels(image, dtype, full_scale)
                on_iteration(index, loss, imaging.to_bytes(samples, alpha, dtype))
        except Diverged as exc:
            raise protocol.ProtocolError(protocol.E_DIVERGED, str(exc), request.job) from None
        except errors.CoreError as exc:
            raise protocol_error(exc, request.job) from None

    def animate_rgb(
        self,
        rgb: np.ndarray,
        settings: Preset,
        frames: int,
        iterations: int,
        motion: Motion,
        seed: int,
        max_size: int = 0,
        blend: float = 0.0,
        on_evaluation: FrameEvaluationCallback = lambda frame, iteration, evaluation, loss: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[tuple[int, float, np.ndarray]]:
        """(frame, loss, H×W×3 uint8 RGB at the input's size) as each frame is finished (backend/core/
        animation.py). The motion is in the input's pixels; the frames feed back at the dreamt size."""
        height, width = rgb.shape[:2]
        dream_width, dream_height = protocol.dream_size(width, height, max_size)
        x0 = preprocess(imaging.resize(rgb, dream_width, dream_height))
        for frame in animate(
            self.loss_for(settings), x0, frames, iterations, motion.scaled(dream_width / width), settings.jitter,
            seed, Octaves(settings.octaves, settings.octave_scale), protocol.MIN_SIDE, max_step=settings.max_step,
            blend=blend, on_evaluation=on_evaluation, should_stop=should_stop,
        ):
            yield frame.index, frame.loss, imaging.resize(deprocess(frame.image), width, height)

    def run_animation(
        self,
        request: protocol.AnimateRequest,
        pixels: bytes,
        seed: int,
        on_evaluation: FrameEvaluationCallback,
        on_frame: FrameCallback,
        should_stop: Callable[[], bool],
    ) -> None:
        """Animate one validated request, reporting every evaluation and every frame's pixels (the
        source's alpha, if any, on every frame)."""
        dream_request = request.dream
        settings = self.settings(dream_request.preset, dream_request.params, dream_request.job)
        rgb, alpha = imaging.from_bytes(pixels, dream_request.width, dream_request.height, dream_request.channels)
        motion = Motion(request.zoom, request.rotate, request.pan, request.centre)
        frames = self.animate_rgb(rgb, settings, request.frames, dream_request.iterations, motion, seed,
                                  dream_request.max_size, request.blend, on_evaluation, should_stop)
        try:
            for index, loss, image in frames:
                on_frame(index, loss, imaging.to_bytes(image, alpha))
        except Diverged as exc:
            raise protocol.ProtocolError(protocol.E_DIVERGED, str(exc), dream_request.job) from None
