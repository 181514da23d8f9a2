"""Recipes on result layers, GIMP-free: what each layer's `deep-dream` parasite says, and what "Deep Dream
Again" makes of one. The format is wire/recipe.py's, shared with the command line's PNGs. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wire import recipe
from wire.recipe import Recipe, RecipeError

if TYPE_CHECKING:
    from session import DreamSession

PARASITE = recipe.NAME


@dataclass(frozen=True)
class Plan:
    """What one run asks the backend for, and which iterations become layers."""

    preset: str
    iterations: int  # the last iteration wanted, and shown in the progress
    keep_every: int
    seed: int | None  # None: the backend draws one (and tells it)
    max_size: int
    params: dict[str, Any] = field(default_factory=dict)
    schedule: int | None = None  # the request's iterations when more: a recipe's k of N dreams on N's schedule


def again(made: Recipe) -> Plan:
    """The run that dreams a recipe's picture again: its every setting and seed, up to its iteration only."""
    return Plan(made.preset, made.iteration, made.iteration, made.seed, made.max_size, made.settings, made.iterations)


def read(data: bytes | None, layer: str) -> Recipe:
    """The recipe in a layer's parasite data (None: it has none); RecipeError names the layer."""
    if data is None:
        raise RecipeError(f"{layer!r} has no Deep Dream recipe: select a layer that Deep Dream made")
    try:
        return recipe.parse(data)
    except RecipeError as exc:
        raise RecipeError(f"the recipe of {layer!r} cannot be used: {exc}") from None


def source_tattoo(made: Recipe) -> int:
    """The tattoo of the layer the recipe was dreamt from (tattoos stay with a layer, and in the XCF)."""
    if "tattoo" not in made.source:
        raise RecipeError("the recipe does not say which layer it was dreamt from (was it made by the command line? "
                          "there, `python -m backend dream INPUT PREFIX --recipe DREAM.png` dreams it again)")
    return made.source["tattoo"]


def missing_source(made: Recipe) -> str:
    return (f"the layer {made.source.get('name', '?')!r} this was dreamt from is no longer in the image: "
            "Deep Dream Again dreams the recipe's own source")


def source_area(made: Recipe, width: int, height: int) -> tuple[int, int, int, int]:
    """The part of the source layer, now width×height, that the recipe dreamt (x, y, width, height in the
    layer); RecipeError when it no longer fits."""
    x, y, area_width, area_height = made.source.get("area") or (0, 0, made.source["width"], made.source["height"])
    if x + area_width > width or y + area_height > height:
        raise RecipeError(f"the layer {made.source.get('name', '?')!r} is {width}×{height} now: the part dreamt "
                          f"({area_width}×{area_height} at {x}, {y}) is no longer in it")
    return x, y, area_width, area_height


def source_record(name: str, tattoo: int, size: tuple[int, int], area: tuple[int, int, int, int],
                  pixels: bytes) -> dict[str, Any]:
    """What a recipe says of its source: the layer's size, name and tattoo, the part dreamt, its pixels' digest."""
    width, height = size
    return {"width": width, "height": height, "name": name, "tattoo": tattoo, "area": list(area),
            "sha256": recipe.source_digest(pixels)}


def guide_record(name: str, tattoo: int, image: str, width: int, height: int, pixels: bytes) -> dict[str, Any]:
    """What a recipe says of its guide layer: its name and tattoo, its image's name, its size and the digest of
    the pixels sent (guide_layer.read_guide's)."""
    return {"width": width, "height": height, "name": name, "tattoo": tattoo, "image": image,
            "sha256": recipe.source_digest(pixels)}


def missing_guide(made: Recipe) -> str:
    guide = made.guide or {}
    return (f"the recipe was guided by the layer {guide.get('name', '?')!r} of {guide.get('image', '?')!r}: open "
            "that image, with the layer as it was, and try again")


class Stamp:
    """The recipe of each layer one run makes."""

    def __init__(self, plan: Plan, source: dict[str, Any], hello: dict[str, Any],
                 guide: dict[str, Any] | None = None) -> None:
        self.plan = plan
        self.source = source
        self.guide = guide
        self.backend = {key: str(hello.get(key)) for key in ("server", "weights", "model")}

    def text(self, job: DreamSession, number: int) -> str | None:
        """The JSON recipe of kept iteration `number`; None when the backend did not tell its settings (one older
        than recipes) or told them wrongly: a layer without a recipe rather than one that can't be used."""
        if job.seed is None or job.settings is None:
            return None
        text = Recipe(self.plan.preset, job.settings, job.seed, number, job.schedule, self.plan.max_size,
                      self.source, self.backend, self.guide).to_json()
        try:
            recipe.parse(text)
        except RecipeError:
            return None
        return text
