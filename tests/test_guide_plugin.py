"""The plug-in's guide reading, without GIMP (the real-GIMP run is tests/gimp/test_gimp_guide.py)."""

from __future__ import annotations

import sys

from tests.conftest import ROOT
from wire import protocol

sys.path.insert(0, str(ROOT / "gimp_plugin" / "deep_dream"))

import guide_layer  # noqa: E402


def test_a_guide_is_read_at_most_max_guide_size_long():
    assert guide_layer.read_size(3000, 2000) == (protocol.MAX_GUIDE_SIZE / 3000, 1024, 683)
    assert guide_layer.read_size(50, 70) == (1.0, 50, 70)  # small guides as they are
    assert guide_layer.read_size(1024, 10) == (1.0, 1024, 10)
    assert guide_layer.read_guide(None, gegl=None) is None  # no guide chosen
