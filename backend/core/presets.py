"""Dream presets: the seed's two, plus the user's own from a JSON file in their config folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from backend.core.errors import BAD_GUIDE, GUIDE_SIZE, PRESETS_FILE, UNKNOWN_LAYER, CoreError
from backend.core.vgg16_layers import VGG16_CONV_LAYERS

# Checks a presets file entry's settings (bounds, types) and returns them; raises ValueError saying what is
# wrong. The engine passes the wire format's own check, so a file takes exactly what a request may send.
SettingsCheck = Callable[[dict[str, Any]], dict[str, Any]]


class PresetError(CoreError):
    """An unknown layer, or a broken presets file; `kind` names which."""


@dataclass(frozen=True)
class Preset:
    features: dict[str, float]  # VGG16 conv layer → coefficient
    continuity: float = 0.1
    dream_l2: float = 0.02
    jitter: float = 0.0
    octaves: int = 1  # scales dreamt, smallest first; 1 = at the image's size only, as the seed
    octave_scale: float = 1.4  # size ratio between neighbouring octaves
    max_step: float = 0.0  # the most one iteration may change a pixel value, in levels; 0 = no bound (the seed's)
    description: str = ""  # what it does, for a painter: shown under the plug-in's preset list; not a setting
    guide_layers: tuple[str, ...] = ()  # the feature layers a guide image acts on; () = all of them
    guide_size: int = GUIDE_SIZE  # a guide is scaled to this longer side before its features are taken

    def with_overrides(self, overrides: dict[str, Any]) -> Preset:
        preset = replace(self, **overrides)
        check_layers(preset.features, preset.guide_layers)
        return preset

    def guided_layers(self) -> tuple[str, ...]:
        """The feature layers a guide acts on."""
        return tuple(self.guide_layers) or tuple(self.features)

    def to_json(self) -> dict[str, Any]:
        """The dream settings (what a request's params may override): everything but the description."""
        settings = asdict(self)
        del settings["description"]
        return settings

    def listing(self) -> dict[str, Any]:
        """The settings and, when there is one, the description: an entry of the presets reply."""
        return self.to_json() | ({"description": self.description} if self.description else {})


# What each built-in does, in a painter's words (judged on docs/gallery/, made with the offline hed weights).
# The plug-in shows the backend's texts; gimp_plugin/deep_dream/choices.py has a copy for when none runs.
DESCRIPTIONS = {
    "acid": "The seed article's first recipe: strong smoothing that, with the offline weights, washes the "
            "picture out to a flat grey. For comparison, not for pictures.",
    "doggos": "The seed article's second recipe: softens the whole picture and adds faint eye-like spots.",
    "textures": "Fine cells and rainbow fringes over the whole picture; outlines get bold, like an etching.",
    "patterns": "Bold scales and swirls, thickest where the picture has the most contrast.",
    "eyes": "Small eye-like rings spread evenly over everything, the picture still recognisable beneath.",
    "dreamy": "Rings and rainbow fringes together: the whole picture shimmers and stays itself.",
}
BUILTIN_PRESETS = {
    "acid": Preset({"block4_conv1": 0.05, "block4_conv2": 0.01, "block4_conv3": 0.01}, 0.1, 0.8, 5.0),
    "doggos": Preset({"block5_conv1": 0.05, "block5_conv2": 0.02}, 0.1, 0.02, 0.0),
    # Tuned with the hed weights (README, Presets): no continuity, which smooths a photo's or a painting's own
    # detail away, and a step limit instead, so the dream grows steadily rather than in leaps. Judged at 10
    # iterations on the three samples (two photos, a painting) by tools/quality.py and tools/gallery.py.
    # textures: block3's fine cells and coloured fringes over the whole picture; two close octaves keep them small
    "textures": Preset({"block3_conv2": 0.01, "block3_conv3": 0.005}, continuity=0.0, dream_l2=0.002, jitter=16.0,
                       octaves=2, octave_scale=1.2, max_step=5.0),
    # patterns: block4's scales and swirls, densest where the picture has the most contrast
    "patterns": Preset({"block4_conv1": 0.03, "block4_conv2": 0.05, "block4_conv3": 0.1}, continuity=0.0,
                       dream_l2=0.002, jitter=16.0, octaves=4, octave_scale=1.35, max_step=10.0),
    # eyes: block5's small eye-like rings spread evenly over everything, in four octaves
    "eyes": Preset({"block5_conv2": 0.1, "block5_conv3": 0.03}, continuity=0.0, dream_l2=0.002, jitter=16.0,
                   octaves=4, octave_scale=1.35, max_step=12.0),
    # dreamy: block5's rings with block3's fringes on top, the whole picture shimmering, still itself
    "dreamy": Preset({"block3_conv3": 0.01, "block5_conv1": 0.1, "block5_conv3": 0.02}, continuity=0.0,
                     dream_l2=0.002, jitter=16.0, octaves=3, octave_scale=1.3, max_step=8.0),
}
BUILTIN_PRESETS = {name: replace(preset, description=DESCRIPTIONS[name]) for name, preset in BUILTIN_PRESETS.items()}
DEFAULTS = {field.name: field.default for field in fields(Preset) if field.default is not MISSING}
# Read afresh for every request: a file this large is a mistake (hundreds of bytes per preset), not presets.
MAX_PRESETS_FILE_BYTES = 1024 * 1024
MAX_DESCRIPTION_CHARS = 300  # a sentence or two under the preset list, not a manual


def check_layers(features: dict[str, float], guide_layers: tuple[str, ...] = ()) -> None:
    unknown = [name for name in features if name not in VGG16_CONV_LAYERS]
    if unknown:
        raise PresetError(UNKNOWN_LAYER,
                          f"unknown VGG16 layer(s) {unknown}; valid layers: {', '.join(VGG16_CONV_LAYERS)}")
    unused = [name for name in guide_layers if name not in features]
    if unused:
        raise PresetError(BAD_GUIDE, f"guide layer(s) {unused} are not among the feature layers "
                          f"{sorted(features)}: a guide replaces the feature term of its layers")


def parse_user_presets(data: bytes, where: str, check: SettingsCheck) -> dict[str, Preset]:
    """{name: {features: {layer: coeff}, continuity?, dream_l2?, jitter?, octaves?, octave_scale?, max_step?,
    guide_layers?, guide_size?, description?}}, checked by `check` (the description as text of at most
    MAX_DESCRIPTION_CHARS); missing settings take DEFAULTS."""
    try:
        entries = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PresetError(PRESETS_FILE, f"{where} is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(entries, dict):
        raise PresetError(PRESETS_FILE, f"{where} must hold a JSON object {{name: preset}}")
    presets = {}
    for name, entry in entries.items():
        spot = f"{where}, preset {name!r}"
        try:
            if not isinstance(entry, dict) or "features" not in entry:
                raise PresetError(PRESETS_FILE, "each preset needs 'features': {layer: coefficient}")
            settings = {key: value for key, value in entry.items() if key != "description"}
            fields = DEFAULTS | check(settings) | {"description": check_description(entry)}
            fields["guide_layers"] = tuple(fields["guide_layers"])
            check_layers(fields["features"], fields["guide_layers"])
        except (PresetError, ValueError) as exc:
            raise PresetError(PRESETS_FILE, f"{spot}: {exc}") from None
        presets[name] = Preset(**fields)
    return presets


def check_description(entry: dict[str, Any]) -> str:
    """A user preset's description: text of at most MAX_DESCRIPTION_CHARS ("" when it has none)."""
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise PresetError(PRESETS_FILE, f"'description' must be text, not {type(description).__name__}")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise PresetError(PRESETS_FILE, f"'description' has {len(description)} characters, over the "
                          f"{MAX_DESCRIPTION_CHARS} it may have")
    return description


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def load_presets(path: Path, check: SettingsCheck) -> dict[str, Preset]:
    """The built-in presets plus the user's from `path` (theirs win on a name clash). A missing file is fine."""
    presets = dict(BUILTIN_PRESETS)
    if path.is_file():
        try:
            if (size := path.stat().st_size) > MAX_PRESETS_FILE_BYTES:
                raise PresetError(PRESETS_FILE, f"{path} has {size:,} bytes, over the "
                                  f"{MAX_PRESETS_FILE_BYTES:,} a presets file may have")
            data = path.read_bytes()
        except OSError as exc:
            raise PresetError(PRESETS_FILE, f"cannot read {path}: {exc}") from None
        presets.update(parse_user_presets(data, str(path), check))
    return presets
