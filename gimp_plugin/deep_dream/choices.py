"""The presets the plug-in's `preset` argument offers, its octave settings as request params, and the
endpoint it talks to by default.

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
from pathlib import Path

from wire import protocol, user_folders

BUILTIN_PRESETS = ("acid", "doggos", "textures", "patterns", "eyes", "dreamy")  # backend/core/presets.py's
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


def default_endpoint() -> str:
    return os.environ.get(ENDPOINT_VARIABLE) or protocol.DEFAULT_ENDPOINT


def file_preset_names(path: Path) -> list[str]:
    """The preset names in a user presets file; none when it is missing or broken (the backend reports that)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [name for name in data if isinstance(name, str)] if isinstance(data, dict) else []


def backend_preset_names(endpoint: str, timeout: float = FETCH_TIMEOUT_S) -> list[str]:
    """The presets of a backend running at the endpoint, asked with a short time-out; none if there is none."""
    try:
        from wire.client import Client, is_listening

        if not is_listening(endpoint, timeout / 2):
            return []
        with Client(endpoint) as client:
            presets = client.presets(timeout / 2)
    except Exception:  # no backend, a bad endpoint, a broken install: registration must go on regardless
        return []
    return [name for name in presets if isinstance(name, str)] if isinstance(presets, dict) else []


def preset_names(endpoint: str) -> list[str]:
    """Every preset name to offer: the built-ins first, then the user's and the backend's, sorted."""
    found = set(file_preset_names(user_folders.presets_file())) | set(backend_preset_names(endpoint))
    return list(BUILTIN_PRESETS) + sorted(found - set(BUILTIN_PRESETS))
