#!/usr/bin/env python3
"""How much closer a guided dream's features come to its guide's than the unguided dream's.

    .venv/bin/python tools/guide_effect.py --guides G1 G2 … --images I1 I2 … [--preset patterns] [--weights hed]

For each image: the unguided dream, and one guided dream per guide (same preset, seed and size). At each of
the preset's guided layers the Gram matrix FᵀF/N of the activations (N positions × C channels: what a
texture's statistics are) is compared with the guide's by its cosine; the layers' mean is printed for the
original image, the unguided and the guided dream, one JSON line per pair, then the averages.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from backend.core import guide  # noqa: E402
from backend.core.model import network_to  # noqa: E402
from backend.core.preprocessing import preprocess  # noqa: E402
from backend.engine import Engine  # noqa: E402


def grams(engine: Engine, rgb: np.ndarray, layers: tuple[str, ...]) -> list[np.ndarray]:
    """FᵀF/N per layer, float64, of the whole image's activations."""
    h, found = tf.constant(preprocess(rgb)[np.newaxis]), []
    for layer in network_to(engine.vgg16, layers):
        h = layer(h)
        if layer.name in layers:
            features = np.float64(h[0].numpy().reshape(-1, h.shape[-1]))
            found.append(features.T @ features / len(features))
    return found


def cosine(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The layers' mean cosine between Gram matrices."""
    return float(np.mean([np.sum(x * y) / (np.linalg.norm(x) * np.linalg.norm(y)) for x, y in zip(a, b, strict=True)]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", nargs="+", type=Path, required=True, help="photos to dream")
    parser.add_argument("--guides", nargs="+", type=Path, required=True, help="guide images")
    parser.add_argument("--preset", default="patterns")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--max-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--weights", default="auto")
    args = parser.parse_args(argv)
    engine = Engine(args.weights)
    settings = engine.settings(args.preset, {})
    layers = settings.guided_layers()
    guides = {path.stem: np.asarray(Image.open(path).convert("RGB")) for path in args.guides}
    guide_grams = {name: grams(engine, guide.scaled(rgb, settings.guide_size), layers) for name, rgb in guides.items()}
    rows = []
    for path in args.images:
        rgb = np.asarray(Image.open(path).convert("RGB"))

        def dreamt(pixels: np.ndarray | None, rgb: np.ndarray = rgb) -> np.ndarray:
            steps = engine.dream_rgb(rgb, settings, args.iterations, args.seed, args.max_size, guide_pixels=pixels)
            image = [image for _, _, image in steps][-1]
            return guide.scaled(image, args.max_size)  # features compared at the dreamt size

        original = grams(engine, guide.scaled(rgb, args.max_size), layers)
        unguided = grams(engine, dreamt(None), layers)
        for name, pixels in guides.items():
            row = {"image": path.stem, "guide": name, "original": cosine(original, guide_grams[name]),
                   "unguided": cosine(unguided, guide_grams[name]),
                   "guided": cosine(grams(engine, dreamt(pixels), layers), guide_grams[name])}
            rows.append(row)
            print(json.dumps({key: round(value, 4) if isinstance(value, float) else value
                              for key, value in row.items()}), flush=True)
    means = {key: round(float(np.mean([row[key] for row in rows])), 4) for key in ("original", "unguided", "guided")}
    print(json.dumps({"preset": args.preset, "layers": layers, "pairs": len(rows), "mean": means}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
