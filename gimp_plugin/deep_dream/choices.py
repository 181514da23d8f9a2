"""The presets the plug-in's `preset` argument offers (names, what each does, its octaves), its octave settings
as request params, and the endpoint it talks to by default.

A GIMP choice argument only takes the names it was registered with, and GIMP checks a script's value
against the list it registered. So the plug-in registers its procedure at every GIMP start (not once per
installation) with every name it can find then: the built-ins, the user's presets file and a running
backend's presets. The backend owns the presets: it refuses a dream with a name it does not know.

Standard library only; the client is imported only when a backend is asked, so registration goes on
whatever happens there (with the names found without it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wire import protocol, user_folders

BUILTIN_PRESETS = ("acid", "doggos", "textures", "patterns", "eyes", "dreamy")  # backend/core/presets.py's


@dataclass(frozen=True)
class PresetInfo:
    """What the dialog shows of a preset and needs for its time estimate."""

    description: str = ""
    octaves: int = 1
    octave_scale: float = 1.4


# A copy of backend/core/presets.py's descriptions and octaves (tests/test_presets.py holds them equal): the
# dialog explains the built-ins before any backend runs; a running backend's own texts win.
BUILTIN_INFO = {
    "acid": PresetInfo("The seed article's first recipe: strong smoothing that, with the offline weights, washes "
                       "the picture out to a flat grey. For comparison, not for pictures."),
    "doggos": PresetInfo("The seed article's second recipe: softens the whole picture and adds faint eye-like "
                         "spots."),
    "textures": PresetInfo("Fine cells and rainbow fringes over the whole picture; outlines get bold, like an "
                           "etching.", 2, 1.2),
    "patterns": PresetInfo("Bold scales and swirls, thickest where the picture has the most contrast.", 4, 1.35),
    "eyes": PresetInfo("Small eye-like rings spread evenly over everything, the picture still recognisable "
                       "beneath.", 4, 1.35),
    "dreamy": PresetInfo("Rings and rainbow fringes together: the whole picture shimmers and stays itself.", 3, 1.3),
}
DEFAULT_PRESET = "dreamy"  # dreams with the hed weights too (README, Presets); the seed's doggos only blurs
ENDPOINT_VARIABLE = "DEEP_DREAM_ENDPOINT"  # the default endpoint, for a backend elsewhere (and for tests)
FETCH_TIMEOUT_S = 1.0  # GIMP waits for the registration: never longer than this for a backend


def octave_params(octaves: int, octave_scale: float) -> dict[str, int | float]:
    """The dream request's params for the dialog's octave settings; 0 leaves the preset's own.
    ValueError for a scale from 0 to 1, before any pixels are sent."""
    if 0 < octave_scale <= 1:
        raise ValueError(f"the octave scale must be over 1 (or 0 for the preset's own), not {octave_scale:g}")
    params: dict[str, int | float] = {}
    if octaves > 0:
        params["octaves"] = octaves
    if octave_scale > 0:
        params["octave_scale"] = octave_scale
    return params


def effective_octaves(info: PresetInfo, params: dict[str, int | float]) -> tuple[int, float]:
    """(octaves, octave scale) a dream will use: the dialog's overrides (octave_params) over the preset's."""
    return int(params.get("octaves", info.octaves)), float(params.get("octave_scale", info.octave_scale))


def default_endpoint() -> str:
    return os.environ.get(ENDPOINT_VARIABLE) or protocol.DEFAULT_ENDPOINT


def preset_info(entry: Any) -> PresetInfo:
    """A presets-file or presets-reply entry as PresetInfo; what is missing or malformed takes the defaults
    (the backend validates presets: this only explains them)."""
    if not isinstance(entry, dict):
        return PresetInfo()
    description = entry.get("description")
    octaves = entry.get("octaves")
    scale = entry.get("octave_scale")
    return PresetInfo(
        description if isinstance(description, str) else "",
        octaves if type(octaves) is int and 1 <= octaves <= protocol.MAX_OCTAVES else PresetInfo.octaves,
        float(scale) if type(scale) in (int, float) and 1 < scale <= protocol.MAX_OCTAVE_SCALE
        else PresetInfo.octave_scale,
    )


def file_presets(path: Path) -> dict[str, PresetInfo]:
    """The presets in a user presets file; none when it is missing or broken (the backend reports that)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {name: preset_info(entry) for name, entry in data.items() if isinstance(name, str)}


def backend_presets(endpoint: str, timeout: float = FETCH_TIMEOUT_S) -> dict[str, PresetInfo]:
    """The presets of a backend running at the endpoint, asked with a short time-out; none if there is none."""
    try:
        from wire.client import Client, is_listening

        if not is_listening(endpoint, timeout / 2):
            return {}
        with Client(endpoint) as client:
            presets = client.presets(timeout / 2)
    except Exception:  # no backend, a bad endpoint, a broken install: registration must go on regardless
        return {}
    if not isinstance(presets, dict):
        return {}
    return {name: preset_info(entry) for name, entry in presets.items() if isinstance(name, str)}


def presets(endpoint: str) -> dict[str, PresetInfo]:
    """Every preset to offer, the built-ins first, then the user's and the backend's, sorted; a running
    backend's word on each wins, then the user's file (it may redefine a built-in), then the built-in texts."""
    found = BUILTIN_INFO | file_presets(user_folders.presets_file()) | backend_presets(endpoint)
    return {name: found[name] for name in [*BUILTIN_PRESETS, *sorted(set(found) - set(BUILTIN_PRESETS))]}

