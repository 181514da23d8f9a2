"""A dream's recipe: what it takes to dream the same picture again, as JSON. Standard library only.

The GIMP plug-in puts one on every result layer (a persistent parasite named `deep-dream`, saved in the XCF)
and `python -m backend dream` into every PNG it writes (a text chunk of that name). "Deep Dream Again" and
`dream --recipe` read it back: the same source, settings, seed and iterations on the same backend version
and weights give the same pixels. Described for people in the README ("Recipes").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from wire import protocol

VERSION = 1  # of the recipe format: a reader refuses newer ones rather than dream something else
NAME = "deep-dream"  # the parasite's and the PNG text chunk's name
MAX_BYTES = 65_536  # a recipe is a few hundred bytes; more is not one


class RecipeError(ValueError):
    """A recipe that cannot be used; the message says why, for people."""


@dataclass(frozen=True)
class Recipe:
    preset: str  # its name, for people: `settings` hold every value the dream used
    settings: dict[str, Any]  # every protocol.SETTING_FIELDS value, the request's overrides applied
    seed: int  # the seed used, also when the user asked for a random one
    iteration: int  # this result's, 1-based
    iterations: int  # the dream's: octaves share them out, so a replay asks for as many and stops at `iteration`
    max_size: int  # 0 = dreamt at full size
    source: dict[str, Any]  # width, height; what the writer knows besides (name, area, tattoo, sha256)
    backend: dict[str, Any]  # server (the backend's version) and weights
    guide: dict[str, Any] | None = None  # a guided dream's guide, as `source` (width, height, name, sha256, …)

    def to_json(self) -> str:
        return json.dumps({"version": VERSION, "preset": self.preset, "settings": self.settings, "seed": self.seed,
                           "iteration": self.iteration, "iterations": self.iterations, "max_size": self.max_size,
                           "source": self.source, "backend": self.backend}
                          | ({"guide": self.guide} if self.guide else {}), allow_nan=False)

    def warnings(self, backend: dict[str, Any], pixels: bytes, guide: bytes | None = None) -> list[str]:
        """Why dreaming `pixels` (and `guide`, as the wire carries them) with this recipe on `backend` (a hello:
        server, weights) may not give its picture; nothing when it will."""
        found = [f"the recipe was dreamt with {key} {self.backend.get(key)!r}, here {backend.get(key)!r}"
                 for key in ("server", "weights") if self.backend.get(key) != backend.get(key)]
        if self.source.get("sha256") not in (None, source_digest(pixels)):
            found.append(f"the picture is not the one the recipe was dreamt from ({self.source.get('name', '?')}, "
                         f"{self.source['width']}×{self.source['height']}): the dream will differ")
        if self.guide and guide is not None and self.guide.get("sha256") not in (None, source_digest(guide)):
            found.append(f"the guide is not the one the recipe was guided by ({self.guide.get('name', '?')}): the "
                         "dream will differ")
        return found


def source_digest(pixels: bytes) -> str:
    """The SHA-256 of the pixels dreamt (as the wire carries them): tells whether a source is still the same."""
    return hashlib.sha256(pixels).hexdigest()


def parse(data: str | bytes) -> Recipe:
    """The recipe in `data` (its JSON text), checked; RecipeError says what is wrong."""
    if len(data) > MAX_BYTES:
        raise RecipeError(f"the recipe has {len(data):,} bytes, over the {MAX_BYTES:,} a recipe may have")
    try:
        fields = json.loads(data, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RecipeError(f"the recipe is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise RecipeError("the recipe must be a JSON object")
    version = _integer(fields, "version", 1)
    if version > VERSION:
        raise RecipeError(f"the recipe has format version {version}; this Deep Dream reads version {VERSION} at "
                          "most: update it")
    preset = fields.get("preset")
    if not isinstance(preset, str) or not preset:
        raise RecipeError('the recipe needs "preset": a preset name')
    iterations = _integer(fields, "iterations", 1, protocol.MAX_ITERATIONS)
    guide = fields.get("guide")
    return Recipe(preset, _settings(fields.get("settings")), _integer(fields, "seed", 0),
                  _integer(fields, "iteration", 1, iterations), iterations, _integer(fields, "max_size", 0),
                  _source(fields.get("source")), _backend(fields.get("backend")),
                  None if guide is None else _source(guide, "guide"))


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _integer(fields: dict[str, Any], name: str, minimum: int, maximum: int | None = None) -> int:
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum and value > maximum):
        within = f"from {minimum} to {maximum}" if maximum else f"of at least {minimum}"
        raise RecipeError(f'the recipe needs "{name}": an integer {within}, not {value!r}')
    return value


def _settings(settings: Any) -> dict[str, Any]:
    if not isinstance(settings, dict):
        raise RecipeError('the recipe needs "settings": {features, continuity, …}')
    missing = [name for name in protocol.SETTING_FIELDS if name not in settings]
    if missing:
        raise RecipeError(f"the recipe's settings lack {', '.join(missing)}")
    try:
        return protocol.check_settings(settings)
    except protocol.ProtocolError as exc:
        raise RecipeError(f"the recipe's settings: {exc.message}") from None


def _source(source: Any, what: str = "source") -> dict[str, Any]:
    """The recipe's source (or guide) image: width, height; name, tattoo, area, sha256 where the writer knew them."""
    if not isinstance(source, dict):
        raise RecipeError(f'the recipe needs "{what}": {{width, height, …}}')
    for name in ("width", "height"):
        _integer(source, name, 1)
    area = source.get("area")
    if area is not None and not (isinstance(area, list) and len(area) == 4 and
                                 all(type(value) is int and value >= 0 for value in area) and min(area[2:]) > 0):
        raise RecipeError(f'the recipe\'s {what} "area" must be [x, y, width, height], not {area!r}')
    if "tattoo" in source:
        _integer(source, "tattoo", 1)
    for name in ("name", "sha256"):
        if name in source and not isinstance(source[name], str):
            raise RecipeError(f'the recipe\'s {what} "{name}" must be a string')
    return source


def _backend(backend: Any) -> dict[str, Any]:
    if not (isinstance(backend, dict) and all(isinstance(backend.get(key), str) for key in ("server", "weights"))):
        raise RecipeError('the recipe needs "backend": {server, weights} (its version and its weights)')
    return backend
