"""Where this product keeps the user's files on each OS. Shared by the backend (presets) and the
plug-in (the preset list, the backend's log), so both always look in the same place."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PRODUCT = "deep-dream-gimp"
PRESETS_FILE = "presets.json"


def config_dir() -> Path:
    """The user's config folder (DEEP_DREAM_CONFIG_DIR overrides it)."""
    if override := os.environ.get("DEEP_DREAM_CONFIG_DIR"):
        return Path(override)
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / PRODUCT
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / PRODUCT
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / PRODUCT


def presets_file() -> Path:
    """The user's own presets, read by the backend when no --presets file is given."""
    return config_dir() / PRESETS_FILE


def cache_dir() -> Path:
    """The user's cache folder (where a backend started by the plug-in logs)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / PRODUCT
