"""The presets the backend offers: the core's built-ins plus the user's file, found in the user's config
folder and checked exactly as a request's params (the wire format's rules), so both take the same settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.core import presets
from wire import protocol, user_folders


def check_settings(entry: dict[str, Any]) -> dict[str, Any]:
    """The wire format's check of a preset's settings, failing as the core expects: ValueError."""
    try:
        return protocol.check_settings(entry)
    except protocol.ProtocolError as exc:
        raise ValueError(exc.message) from None


def load_presets(path: Path | None = None) -> dict[str, presets.Preset]:
    """The built-in presets plus the user's from `path` (default: their config folder's presets.json)."""
    return presets.load_presets(path or user_folders.presets_file(), check_settings)
