"""`python -m backend bench`: seconds per loss evaluation against what the convolutions alone need, with
the engine's convolutions (Winograd's where the core chooses them) and with TensorFlow's alone.

A benchmark, not a test. Both paths are timed in the same run, evaluations alternating, so a busy machine
slows both alike and their ratio holds. `limit_s_per_eval` is measured in the same run: every convolution
of TensorFlow's the evaluation uses, timed on its own (forward + input gradient) at its real shape, summed;
`layer_speedups` times Winograd's the same way, per layer (untiled images only).
"""

from __future__ import annotations

import resource
import statistics
import sys
import threading
import time
from typing import Any

import numpy as np
import tensorflow as tf

from backend.core import tiling, winograd
from backend.core.loss import DreamLoss
from backend.core.model import network_to
from backend.core.preprocessing import preprocess
from backend.engine import Engine
from wire import protocol

REPEATS = 5  # timings per convolution for the limit; the median is taken
# A cheap layer keeps the overhead measurement short; the overhead does not depend on the depth.
OVERHEAD_PARAMS = {"features": {"block1_conv1": 0.05}}


def conv_shapes(engine: Engine, layers: tuple[str, ...], width: int, height: int) -> list[tuple[Any, tuple[int, ...]]]:
    """(layer, input shape) for every convolution up to the deepest feature layer."""
    shapes, h, w, c = [], height, width, 3
    for layer in network_to(engine.vgg16, layers):
        if isinstance(layer, tf.keras.layers.Conv2D):
            shapes.append((layer, (1, h, w, c)))
            c = layer.filters
        elif isinstance(layer, tf.keras.layers.MaxPooling2D):
            h, w = h // 2, w // 2
    return shapes


def conv_gflop(shapes: list[tuple[Any, tuple[int, ...]]]) -> float:
    """Forward plus input-gradient multiply-adds (×2 FLOP) of 3×3 'same' convolutions."""
    forward = sum(2 * h * w * c * layer.filters * 9 for layer, (_, h, w, c) in shapes)
    return 2 * forward / 1e9


def time_conv(layer: Any, shape: tuple[int, ...], use_winograd: bool = False) -> float:
    """Median seconds of one bare convolution (no bias, no ReLU) forward plus its input gradient, with
    TensorFlow's convolutions or Winograd's (its input gradient: the flipped kernel's, as the loss does).

    Input and output gradient are arguments and the kernel is a variable or a captured tensor, so
    Grappler cannot fold any of it into a constant.
    """
    x = tf.random.uniform(shape)
    dy = tf.random.uniform(shape[:3] + (layer.filters,))
    kernel = layer.kernel
    transformed = winograd.kernels(layer) if use_winograd else kernel

    @tf.function
    def forward_and_input_gradient(x: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
        if use_winograd:
            y = winograd.convolve(x, transformed)
            dx = winograd.convolve(dy, winograd.input_gradient_kernel(tf.convert_to_tensor(kernel)))
        else:
            y, dx = tf.nn.conv2d(x, kernel, 1, "SAME"), tf.nn.conv2d_transpose(dy, kernel, tf.shape(x), 1, "SAME")
        # Scalars out, so no copy of the activations to NumPy is timed.
        return tf.reduce_sum(y[0, 0, 0]) + tf.reduce_sum(dx[0, 0, 0])

    def once() -> float:
        started = time.perf_counter()
        forward_and_input_gradient(x, dy).numpy()
        return time.perf_counter() - started

    once()  # trace and warm up
    return statistics.median(once() for _ in range(REPEATS))


def measure_overhead(engine: Engine, sizes: tuple[tuple[int, int], ...] = ((1024, 1024), (1000, 1000))) -> float:
    """A warm backend's worst overhead per request for 1-megapixel RGBA images, each size new to it.

    Overhead = from sending the dream request to the start of its first evaluation, plus from the end
    of the iteration's last evaluation to receiving the iteration's pixels — measured by the client
    over a real TCP socket, so transport both ways is included.
    """
    import zmq

    from backend.service.server import Server
    from wire.client import Client

    timestamps: list[tuple[float, float]] = []  # (start, end) of every evaluation
    loss_for = engine.loss_for

    def timed_loss_for(settings: Any, guide_pixels: Any = None) -> Any:
        inner = loss_for(settings, guide_pixels)

        def loss_and_gradient(x: np.ndarray) -> Any:
            begin = time.perf_counter()
            result = inner(x)
            timestamps.append((begin, time.perf_counter()))
            return result

        return loss_and_gradient

    engine.loss_for = timed_loss_for  # type: ignore[method-assign]
    context = zmq.Context()
    server = Server(engine, "tcp://127.0.0.1:*", "bench", context)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    server.worker_ready.wait(120)  # as in `serve`, where the worker prepares while the model is announced
    overheads = []
    try:
        with Client(server.endpoint, context) as client:
            for job, (width, height) in enumerate(sizes):
                timestamps.clear()
                pixels = np.random.default_rng(job).integers(0, 256, (height, width, 4), np.uint8).tobytes()
                sent = time.perf_counter()
                client.dream(job, pixels, width, height, 4, "doggos", 1, params=OVERHEAD_PARAMS)
                while (message := client.receive(600)) is not None and message[0]["type"] != protocol.ITERATION:
                    pass
                received = time.perf_counter()
                overheads.append((timestamps[0][0] - sent) + (received - timestamps[-1][1]))
                while (message := client.receive(600)) is not None and message[0]["type"] != protocol.DONE:
                    pass
    finally:
        server.stop()
        thread.join()
        context.term()
        del engine.loss_for
    return max(overheads)


def median_seconds(losses: list[Any], x: np.ndarray, evaluations: int) -> list[float]:
    """Median seconds of one evaluation of each loss, taken in turns (so a busy machine slows them alike),
    after a first one that traces the graph for this size."""
    timings: list[list[float]] = [[] for _ in losses]
    for loss in losses:
        loss(x)
    for _ in range(evaluations):
        for loss, found in zip(losses, timings, strict=True):
            begin = time.perf_counter()
            loss(x)
            found.append(time.perf_counter() - begin)
    return [statistics.median(found) for found in timings]


def run_bench(
    weights: str, width: int, height: int, preset: str, evaluations: int, tile_size: int | None = None,
    guide: np.ndarray | None = None,
) -> dict[str, Any]:
    """guide (an RGB(A) image): also time the loss guided by it, in turns with the unguided one, and
    report the ratio (guided_s_per_eval, guide_ratio)."""
    started = time.perf_counter()
    engine = Engine(weights, tile_size=tile_size)
    load_s = time.perf_counter() - started
    settings = engine.settings(preset, {})
    loss = engine.loss_for(settings)  # the engine's choice of convolutions
    layers = tuple(sorted(settings.features))
    chosen = DreamLoss(engine.vgg16, layers, engine.max_tile_pixels)  # as the engine's
    tensorflow_loss = DreamLoss(engine.vgg16, layers, engine.max_tile_pixels, "tensorflow").bind(
        [settings.features[name] for name in layers], settings.continuity, settings.dream_l2)
    rng = np.random.default_rng(0)
    x = preprocess(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))
    loss(x)  # the first call traces the graph for this size
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the dream's peak, before the others'
    guided_loss = [engine.loss_for(settings, guide)] if guide is not None else []
    s_per_eval, tensorflow_s_per_eval, *guided_s = median_seconds([loss, tensorflow_loss, *guided_loss], x,
                                                                  evaluations)
    guided = {}
    if guided_s:
        guided = {"guided_s_per_eval": round(guided_s[0], 4), "guide_ratio": round(guided_s[0] / s_per_eval, 3)}
    tiles = chosen.tiles(height, width)
    untiled = tiling.plan(height, width, layers, width * height)
    shapes = conv_shapes(engine, layers, width, height)
    gflop = conv_gflop(shapes)
    limit = sum(time_conv(layer, shape) for layer, shape in shapes)
    # Per layer, TensorFlow's time over Winograd's: what the choice of layers rests on. Untiled images only,
    # where the shapes are the limit's (a tiled image's would take as long again as its limit).
    layer_speedups = {layer.name: round(time_conv(layer, shape) / time_conv(layer, shape, True), 2)
                      for layer, shape in shapes} if len(tiles) == 1 else {}
    # As `serve` does before it says it is ready; the overhead's layer is traced as a preset's would be.
    engine.warm_up(extra=(engine.settings("doggos", OVERHEAD_PARAMS),))
    overhead_s = measure_overhead(engine)
    return {
        "size": f"{width}x{height}",
        "preset": preset,
        "weights": engine.weights.name,
        "device": engine.device,
        "evaluations": evaluations,
        "tiles": len(tiles),
        "tile_crop_pixels": max(tile.pixels for tile in tiles),
        # What the halos add: the tiles' convolution work over the image's. The limit is the image's, untiled.
        "tile_work_ratio": round(tiling.work(tiles, layers) / tiling.work(untiled, layers), 3),
        "winograd_layers": list(chosen.winograd_layers),
        "s_per_eval": round(s_per_eval, 4),
        "tensorflow_s_per_eval": round(tensorflow_s_per_eval, 4),
        "speedup": round(tensorflow_s_per_eval / s_per_eval, 3),
        "gflop_per_eval": round(gflop, 1),
        "gflops": round(gflop / s_per_eval, 1),
        "limit_s_per_eval": round(limit, 4),
        "ratio_to_limit": round(s_per_eval / limit, 3),
        "tensorflow_ratio_to_limit": round(tensorflow_s_per_eval / limit, 3),
        "layer_speedups": layer_speedups,
        "peak_rss_mb": round(peak_kb / 1024 if sys.platform != "darwin" else peak_kb / 2**20, 1),
        "load_s": round(load_s, 2),
        "overhead_s": round(overhead_s, 3),
        **guided,
    }
