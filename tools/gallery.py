#!/usr/bin/env python3
"""The README's gallery: every built-in preset on every sample image, with its quality numbers.

    .venv/bin/python tools/gallery.py [--presets acid doggos …] [--images chelsea coffee] [--weights hed]

Each dream is made as the plug-in makes it by default (10 iterations, the preset as it stands) with seed 1,
on the sample shrunk to MAX_SIZE pixels long, and written to docs/gallery/ as a small JPEG next to the
original at that size. The numbers (backend/quality.py, measured at the dreamt size) are kept in
docs/gallery/quality.json, so a run for some presets keeps the others'; the README's table between the
gallery markers is rewritten from that file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
from backend.core.presets import BUILTIN_PRESETS  # noqa: E402
from backend.engine import Engine  # noqa: E402
from wire import protocol  # noqa: E402

GALLERY = ROOT / "docs" / "gallery"
NUMBERS = GALLERY / "quality.json"
README = ROOT / "README.md"
START, END = "<!-- gallery:start -->", "<!-- gallery:end -->"
SAMPLES = {"chelsea": "chelsea.png", "coffee": "coffee.png", "starry_night": "starry_night.jpg",
           "astronaut": "astronaut.png"}  # in samples/; the presets were tuned on the first three
ITERATIONS, SEED, MAX_SIZE = 10, 1, 320
JPEG_QUALITY = 85


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(BUILTIN_PRESETS), choices=list(BUILTIN_PRESETS),
                        help="presets to dream again (default: all built-ins)")
    parser.add_argument("--images", nargs="+", default=list(SAMPLES), choices=list(SAMPLES),
                        help="samples to dream on (default: all)")
    parser.add_argument("--weights", default="auto", help="auto, imagenet, hed or a .h5 path (default: %(default)s)")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the README table from the numbers")
    return parser.parse_args(argv)


def save_jpeg(rgb: np.ndarray, path: Path) -> None:
    Image.fromarray(rgb).save(path, quality=JPEG_QUALITY, optimize=True)


def dream_all(engine: Engine, presets: list[str], images: list[str], numbers: dict) -> None:
    """Dream, save and measure each preset on each image, updating `numbers` and its file as it goes."""
    GALLERY.mkdir(parents=True, exist_ok=True)
    for image in images:
        rgb = np.asarray(Image.open(ROOT / "samples" / SAMPLES[image]).convert("RGB"))
        width, height = protocol.dream_size(rgb.shape[1], rgb.shape[0], MAX_SIZE)
        save_jpeg(imaging.resize(rgb, width, height), GALLERY / f"{image}.jpg")
        for preset in presets:
            started = time.perf_counter()
            dream, measured = quality.dream_and_measure(engine, rgb, preset, ITERATIONS, SEED, MAX_SIZE)
            save_jpeg(dream, GALLERY / f"{image}_{preset}.jpg")
            seconds = time.perf_counter() - started
            numbers.setdefault(preset, {})[image] = {
                **{name: round(value, 3) for name, value in measured.items()},
                "passes": quality.passes(measured), "seconds": round(seconds, 1), "weights": engine.weights.name,
                "size": [width, height], "iterations": ITERATIONS, "seed": SEED}
            NUMBERS.write_text(json.dumps(numbers, indent=1, sort_keys=True) + "\n")
            print(f"{preset} on {image}: {json.dumps(numbers[preset][image])}", flush=True)


def table(numbers: dict) -> str:
    """The README's gallery table: a row per preset (built-in order), a column per image."""
    header = "| preset | " + " | ".join(SAMPLES) + " |"
    rows = [header, "| --- |" + " --- |" * len(SAMPLES),
            "| *original* | " + " | ".join(f"![{image}](docs/gallery/{image}.jpg)" for image in SAMPLES) + " |"]
    for preset in BUILTIN_PRESETS:
        cells = []
        for image in SAMPLES:
            entry = numbers.get(preset, {}).get(image)
            if entry is None:
                cells.append("(not made yet)")
                continue
            cells.append(f"![{preset} on {image}](docs/gallery/{image}_{preset}.jpg)<br>gain {entry['gain']:.3g} · "
                         f"sharpness {entry['sharpness']:.3g} · composition {entry['composition']:.2f}")
        rows.append(f"| `{preset}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_readme(numbers: dict) -> None:
    text = README.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {START} … {END} markers to write the gallery between")
    README.write_text(pattern.sub(lambda _: f"{START}\n{table(numbers)}\n{END}", text))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    numbers = json.loads(NUMBERS.read_text()) if NUMBERS.is_file() else {}
    if not args.table_only:
        dream_all(Engine(args.weights), args.presets, args.images, numbers)
    write_readme(numbers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
