"""Recipes in the command line's PNGs: `dream` writes one into every picture (a text chunk named `deep-dream`),
`dream --recipe DREAM.png` reads it back and dreams the same picture again. The format is wire/recipe.py's,
the one the GIMP plug-in puts on its layers."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from PIL import Image

from backend import __version__
from backend.core.presets import Preset, PresetError, check_layers
from wire import recipe
from wire.recipe import Recipe, RecipeError

# The dream options a recipe sets (argparse dests); typing one beside --recipe is a contradiction.
RECIPE_OPTIONS = ("preset", "iterations", "seed", "max_size", "octaves", "octave_scale", "max_step", "guide_size")


def read(path: Path) -> Recipe:
    """The recipe a PNG carries; RecipeError names the file and what is wrong."""
    try:
        with Image.open(path) as image:
            text = getattr(image, "text", {}).get(recipe.NAME)  # only PNGs have text chunks
    except (OSError, ValueError) as exc:
        raise RecipeError(f"cannot read the recipe in {path}: {exc}") from None
    if text is None:
        raise RecipeError(f"{path} carries no Deep Dream recipe (a {recipe.NAME!r} text chunk): the PNGs that "
                          "`python -m backend dream` writes do")
    try:
        return recipe.parse(text)
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}") from None


def apply(args: argparse.Namespace, typed: set[str]) -> Recipe:
    """Read args.recipe and make the dream's options its values (the weights too, unless --weights is typed).
    Checked before VGG16 loads: a broken recipe, or options that contradict it, are told at once."""
    made = read(args.recipe)
    clashes = [f"--{name.replace('_', '-')}" for name in RECIPE_OPTIONS if name in typed]
    if clashes:
        raise RecipeError(f"--recipe sets the preset, its settings, the seed, the iterations and the maximum size; "
                          f"leave out {', '.join(clashes)}")
    settings(made)
    if made.guide and args.guide is None:
        raise RecipeError(f"the recipe was guided by {made.guide.get('name', 'an image')}: give that image with "
                          "--guide")
    if args.guide is not None and not made.guide:
        raise RecipeError("the recipe's dream was not guided: leave out --guide")
    args.preset, args.iterations, args.seed, args.max_size = made.preset, made.iterations, made.seed, made.max_size
    if "weights" not in typed:
        args.weights = made.backend["weights"]
    return made


def settings(made: Recipe) -> Preset:
    """The recipe's settings as the engine takes them: they hold every field, so no preset file is needed."""
    preset = Preset(**made.settings)
    try:
        check_layers(preset.features)
    except PresetError as exc:
        raise RecipeError(f"the recipe's settings: {exc}") from None
    return preset


class Stamp:
    """The recipe of each picture one `dream` run writes: `pixels` are the input's as the wire would carry them
    (RGB or RGBA, 8- or 16-bit), the ones its digest is of; `guide`, a guided dream's guide as sent (8-bit
    RGBA) and its file's name."""

    def __init__(self, args: argparse.Namespace, settings: Preset, seed: int, weights: str, size: tuple[int, int],
                 pixels: bytes, guide: tuple[str, tuple[int, int], bytes] | None = None) -> None:
        width, height = size
        self.pixels = pixels
        self.guide = guide[2] if guide else None
        guided = None
        if guide:
            name, (guide_width, guide_height), guide_pixels = guide
            guided = {"width": guide_width, "height": guide_height, "name": name,
                      "sha256": recipe.source_digest(guide_pixels)}
        self.recipe = Recipe(args.preset, settings.to_json(), seed, 1, args.iterations, args.max_size,
                             {"width": width, "height": height, "name": Path(args.input).name,
                              "sha256": recipe.source_digest(pixels)},
                             {"server": __version__, "weights": weights, "model": "vgg16"}, guided)

    def warnings(self, replayed: Recipe) -> list[str]:
        """Why dreaming this input on this backend with the `replayed` recipe may not give its picture."""
        return replayed.warnings(self.recipe.backend, self.pixels, self.guide)

    def text(self, iteration: int) -> dict[str, str]:
        """The PNG text chunk (name → JSON) with the recipe of that iteration (1-based)."""
        return {recipe.NAME: replace(self.recipe, iteration=iteration).to_json()}
