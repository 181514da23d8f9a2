#!/usr/bin/env python3
"""Print how a preset's dream compares with its original: gain, sharpness, composition (backend/quality.py).

    .venv/bin/python tools/quality.py --preset NAME IMAGE [--iterations 10] [--max-size 0] [--seed 1]
    .venv/bin/python tools/quality.py --preset NAME IMAGE --dream DREAMT.png   # measure a dream already made
    .venv/bin/python tools/quality.py --preset NAME IMAGE --each               # also after every iteration

The preset is used as it stands (no overrides). One JSON line goes to stdout, a readable one to stderr.
The exit status is 0 either way: passing issue 4's bar (gain ≥ 3, 0.8 ≤ sharpness ≤ 6, composition ≥ 0.6)
is reported as "passes", not enforced.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from backend import quality  # noqa: E402
from backend.core import imaging  # noqa: E402
from backend.engine import Engine  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path, help="the original image")
    parser.add_argument("--preset", required=True, help="preset name (built-in or from --presets)")
    parser.add_argument("--iterations", type=int, default=10, help="iterations (default: %(default)s, the plug-in's)")
    parser.add_argument("--max-size", type=int, default=0, help="dream at most this long (default: 0 = full size)")
    parser.add_argument("--seed", type=int, default=1, help="jitter seed (default: %(default)s)")
    parser.add_argument("--dream", type=Path, help="measure this dreamt image instead of dreaming (the original "
                        "is resized to its size)")
    parser.add_argument("--each", action="store_true", help="also print the numbers after every iteration "
                        "(one JSON line each, before the final one)")
    parser.add_argument("--save", type=Path, help="also write the dream (PNG) here")
    parser.add_argument("--weights", default="auto", help="auto, imagenet, hed or a .h5 path (default: %(default)s)")
    parser.add_argument("--presets", type=Path, help="the user's presets file (default: the config folder's)")
    args = parser.parse_args(argv)
    if args.each and args.dream:
        parser.error("--each follows a dream as it is made: it cannot go with --dream")
    return args


def rounded(numbers: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 4) for name, value in numbers.items()}


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engine = Engine(args.weights, args.presets)
    original = read_rgb(args.image)
    started = time.perf_counter()
    if args.dream:
        dream = read_rgb(args.dream)
        original = imaging.resize(original, dream.shape[1], dream.shape[0])
        numbers = quality.measure(original, dream, quality.feature_energy(engine, engine.settings(args.preset, {})))
    else:
        def print_iteration(index: int, numbers: dict[str, float]) -> None:
            print(json.dumps({"iteration": index + 1, **rounded(numbers)}), flush=True)

        dream, numbers = quality.dream_and_measure(engine, original, args.preset, args.iterations, args.seed,
                                                   args.max_size, print_iteration if args.each else None)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(dream).save(args.save)
    report = {"preset": args.preset, "image": str(args.image), "weights": engine.weights.name,
              "size": [dream.shape[1], dream.shape[0]], "iterations": None if args.dream else args.iterations,
              "seed": None if args.dream else args.seed, **rounded(numbers),
              "passes": quality.passes(numbers), "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(report))
    print(f"{args.preset} on {args.image.name} at {dream.shape[1]}×{dream.shape[0]}: gain {numbers['gain']:.2f}, "
          f"sharpness {numbers['sharpness']:.2f}, composition {numbers['composition']:.2f} "
          f"({'passes' if report['passes'] else 'misses'} the bar)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
