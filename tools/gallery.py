#!/usr/bin/env python3
"""The README's gallery: every built-in preset on every sample image, with its quality numbers.

    .venv/bin/python tools/gallery.py [--presets acid doggos …] [--images chelsea coffee] [--weights hed]
    .venv/bin/python tools/gallery.py --guided [--weights hed]     # only the guided row (GUIDED)

Each dream is made as the plug-in makes it by default (10 iterations, the preset as it stands) with seed 1,
on the sample shrunk to MAX_SIZE pixels long, and written to docs/gallery/ as a small JPEG next to the
original at that size. The numbers (backend/quality.py, measured at the dreamt size) are kept in
docs/gallery/quality.json, so a run for some presets keeps the others'; the README's table between the
gallery markers is rewritten from that file. With --guided, only the guided row is made: one photo dreamt
with one preset, unguided and guided by each of two very different guides, between the guided markers.
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
GUIDED = ("chelsea", "patterns", ("starry_night", "coffee"))  # the photo, the preset, two very different guides
GUIDED_START, GUIDED_END = "<!-- guided:start -->", "<!-- guided:end -->"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(BUILTIN_PRESETS), choices=list(BUILTIN_PRESETS),
                        help="presets to dream again (default: all built-ins)")
    parser.add_argument("--images", nargs="+", default=list(SAMPLES), choices=list(SAMPLES),
                        help="samples to dream on (default: all)")
    parser.add_argument("--weights", default="auto", help="auto, imagenet, hed or a .h5 path (default: %(default)s)")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the README table from the numbers")
    parser.add_argument("--guided", action="store_true", help="only make the guided row (and its README table)")
    return parser.parse_args(argv)


def save_jpeg(rgb: np.ndarray, path: Path) -> None:
    Image.fromarray(rgb).save(path, quality=JPEG_QUALITY, optimize=True)


def load_sample(image: str) -> np.ndarray:
    return np.asarray(Image.open(ROOT / "samples" / SAMPLES[image]).convert("RGB"))


def dream_guided(engine: Engine) -> None:
    """GUIDED's photo dreamt with its preset guided by each guide (the unguided one is the grid's)."""
    image, preset, guides = GUIDED
    rgb = load_sample(image)
    original = imaging.resize(rgb, *protocol.dream_size(rgb.shape[1], rgb.shape[0], MAX_SIZE))
    settings = engine.settings(preset, {})
    for name in guides:
        started = time.perf_counter()
        steps = engine.dream_rgb(original, settings, ITERATIONS, SEED, guide_pixels=load_sample(name))
        save_jpeg([image for _, _, image in steps][-1], GALLERY / f"{image}_{preset}_guided_by_{name}.jpg")
        print(f"{preset} on {image} guided by {name}: {time.perf_counter() - started:.1f} s", flush=True)


def guided_table() -> str:
    image, preset, guides = GUIDED
    cells = [f"![{image}](docs/gallery/{image}.jpg)", f"![{preset} on {image}](docs/gallery/{image}_{preset}.jpg)"]
    header = f"| {image} | `{preset}`, unguided |"
    for name in guides:
        header += f" guide | guided by {name} |"
        cells += [f"![{name}](docs/gallery/{name}.jpg)",
                  f"![{preset} on {image} guided by {name}](docs/gallery/{image}_{preset}_guided_by_{name}.jpg)"]
    return "\n".join([header, "|" + " --- |" * len(cells), "| " + " | ".join(cells) + " |"])


def dream_all(engine: Engine, presets: list[str], images: list[str], numbers: dict) -> None:
    """Dream, save and measure each preset on each image, updating `numbers` and its file as it goes."""
    GALLERY.mkdir(parents=True, exist_ok=True)
    for image in images:
        rgb = load_sample(image)
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


def write_readme(body: str, start: str = START, end: str = END) -> None:
    """Put body between the README's start and end markers."""
    text = README.read_text()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {start} … {end} markers to write the gallery between")
    README.write_text(pattern.sub(lambda _: f"{start}\n{body}\n{end}", text))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.guided:
        dream_guided(Engine(args.weights))
        write_readme(guided_table(), GUIDED_START, GUIDED_END)
        return 0
    numbers = json.loads(NUMBERS.read_text()) if NUMBERS.is_file() else {}
    if not args.table_only:
        dream_all(Engine(args.weights), args.presets, args.images, numbers)
    write_readme(table(numbers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
