"""The numerical core's own errors and constants: it knows nothing of the wire format.

backend/engine.py, where the core meets the service, maps each error kind to a protocol error code.
"""

from __future__ import annotations

# VGG16 pools four times before block5: a side under 16 px leaves it nothing. Smaller images are dreamt
# on a copy scaled up to this shorter side (wire/protocol.py's MIN_SIDE must agree: a test checks it).
MIN_SIDE = 32
# A guide image is scaled to this longer side before its features are taken (a preset's guide_size):
# VGG16's own input size, and the Google notebook's guide size.
GUIDE_SIZE = 224

# What went wrong, for whoever reports it (the engine turns these into protocol error codes).
UNKNOWN_LAYER = "unknown_layer"  # a feature or guide layer VGG16 does not have
PRESETS_FILE = "presets_file"  # the user's presets file does not load
BAD_GUIDE = "bad_guide"  # a guide image or guide setting the core cannot use


class CoreError(Exception):
    """A request the core cannot carry out as asked; `kind` says which kind (the constants above)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
