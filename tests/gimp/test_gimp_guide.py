"""A guided dream in a real GIMP 3 against a real backend: the guide is a layer of a second open image.

tests/gimp/batch_guide.py runs inside GIMP (3.0 and 3.2, see conftest.py) between the helpers and the runner of
batch_scenarios.py (conftest.with_scenario_helpers), and writes a JSON report judged here.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.gimp.conftest import with_scenario_helpers

GUIDE_BATCH = Path(__file__).with_name("batch_guide.py")


@pytest.fixture(scope="module")
def guide_report(run_batch) -> dict[str, Any]:
    """One GIMP run of the guided dreams (per version)."""
    result = run_batch(with_scenario_helpers(GUIDE_BATCH)).report["scenarios"]["guided"]
    assert "exception" not in result, result["exception"]
    return result


def dreamt(result: dict[str, Any]) -> np.ndarray:
    assert (result["status"], result["message"]) == ("success", None)
    return np.frombuffer(base64.b64decode(result["pixels"]), np.uint8).reshape(48, 64, 3)


def test_the_guide_argument_is_any_layer_or_none(guide_report):
    assert guide_report["spec"] == {"type": "GimpLayer", "none_ok": True}


def test_a_layer_of_another_image_guides_the_dream(guide_report):
    """Same seed and settings: each guide gives its own dream, and neither is the unguided one."""
    plain, guided, alpha = (dreamt(guide_report[name]) for name in ("unguided", "guided", "alpha"))
    for image in (guided, alpha):
        assert np.abs(image.astype(int) - plain.astype(int)).mean() > 0.5
    assert not np.array_equal(guided, alpha)


def test_an_unusable_guide_fails_with_the_backends_message(guide_report):
    thin = guide_report["thin"]
    assert thin["status"] == "execution-error" and "300×2 guide" in thin["message"]
    assert thin["pixels"] is None  # nothing was dreamt
