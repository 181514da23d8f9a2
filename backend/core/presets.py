"""Dream presets: the seed's two, plus the user's own from a JSON file in their config folder."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from backend.core.model import VGG16_CONV_LAYERS


class PresetError(Exception):
    """An unknown preset or layer, or a broken presets file; `code` names which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Preset:
    features: dict[str, float]  # VGG16 conv layer → coefficient
    continuity: float
    dream_l2: float
    jitter: float

    def with_overrides(self, overrides: dict[str, Any]) -> Preset:
        preset = replace(self, **overrides)
        check_layers(preset.features)
        return preset

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


BUILTIN_PRESETS = {
    "acid": Preset({"block4_conv1": 0.05, "block4_conv2": 0.01, "block4_conv3": 0.01}, 0.1, 0.8, 5.0),
    "doggos": Preset({"block5_conv1": 0.05, "block5_conv2": 0.02}, 0.1, 0.02, 0.0),
}
DEFAULTS = {"continuity": 0.1, "dream_l2": 0.02, "jitter": 0.0}
PRESETS_FILE = "presets.json"


def config_dir() -> Path:
    """The user's config folder for this product (DEEP_DREAM_CONFIG_DIR overrides it)."""
    if override := os.environ.get("DEEP_DREAM_CONFIG_DIR"):
        return Path(override)
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "deep-dream-gimp"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "deep-dream-gimp"
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "deep-dream-gimp"


def check_layers(features: dict[str, float]) -> None:
    unknown = [name for name in features if name not in VGG16_CONV_LAYERS]
    if unknown:
        raise PresetError(
            "unknown_layer", f"unknown VGG16 layer(s) {unknown}; valid layers: {', '.join(VGG16_CONV_LAYERS)}"
        )


def _number(entry: dict[str, Any], key: str, where: str) -> float:
    value = entry.get(key, DEFAULTS.get(key))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
        raise PresetError("presets_file", f"{where}: {key!r} must be a finite number ≥ 0")
    return float(value)


def parse_user_presets(text: str, where: str) -> dict[str, Preset]:
    """{name: {features: {layer: coeff}, continuity?, dream_l2?, jitter?}}; missing numbers take defaults."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PresetError("presets_file", f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PresetError("presets_file", f"{where} must hold a JSON object {{name: preset}}")
    presets = {}
    for name, entry in data.items():
        spot = f"{where}, preset {name!r}"
        features = entry.get("features") if isinstance(entry, dict) else None
        if not isinstance(features, dict) or not features or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in features.values()
        ):
            raise PresetError("presets_file", f"{spot}: 'features' must be a non-empty {{layer: number}} object")
        try:
            check_layers(features)
        except PresetError as exc:
            raise PresetError("presets_file", f"{spot}: {exc}") from None
        numbers = {key: _number(entry, key, spot) for key in DEFAULTS}
        presets[name] = Preset({k: float(v) for k, v in features.items()}, **numbers)
    return presets


def load_presets(path: Path | None = None) -> dict[str, Preset]:
    """The built-in presets plus the user's (theirs win on a name clash). A missing file is fine."""
    path = path or config_dir() / PRESETS_FILE
    presets = dict(BUILTIN_PRESETS)
    if path.is_file():
        presets.update(parse_user_presets(path.read_text(encoding="utf-8"), str(path)))
    return presets
