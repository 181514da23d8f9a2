"""A guided dream in a real GIMP 3 against a real backend: the guide is a layer of a second open image.

tests/gimp/batch_guide.py runs inside GIMP after the helpers of batch_scenarios.py (everything above its
scenarios), fed to gimp-console's python-fu-eval on stdin, and writes a JSON report judged here.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT, BackendProcess
from tests.gimp import test_gimp_plugin
from tests.gimp.test_gimp_plugin import BATCH, GIMP_TIMEOUT_S, PASS_ENV, TOOL

gimp_root = test_gimp_plugin.gimp_root  # the fixture (moving to tests/gimp/conftest.py)

GUIDE_BATCH = Path(__file__).with_name("batch_guide.py")


def batch_script() -> str:
    """batch_scenarios.py's helpers (not its scenarios), then the guide's."""
    helpers, _ = BATCH.read_text().split("# ---- scenarios", 1)
    return helpers + GUIDE_BATCH.read_text()


@pytest.fixture(scope="module")
def guide_report(gimp_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="deep-dream-gimp-guide-", dir=gimp_root / "tmp"))
    inside = "/" + str(work.relative_to(gimp_root))
    backend = BackendProcess(tmp_path_factory.mktemp("guide-backend"))
    try:
        (work / "config").mkdir()
        subprocess.run(["python3", str(ROOT / "install.py"), "--gimp-dir", str(work / "profile"), "--skip-backend",
                        "--no-dream"], check=True, capture_output=True, cwd=ROOT)
        (work / "config.json").write_text(json.dumps({"out": inside, "endpoint": backend.endpoint}))
        env = dict(os.environ, GIMP3_PASS_ENV=" ".join(PASS_ENV), GIMP3_DIRECTORY=f"{inside}/profile",
                   GIMP3_CACHEDIR=f"{inside}/cache", DEEP_DREAM_ENDPOINT=backend.endpoint,
                   DEEP_DREAM_CONFIG_DIR=f"{inside}/config", XDG_CACHE_HOME=f"{inside}/xdg-cache",
                   DD_TEST_CONFIG=f"{inside}/config.json")
        gimp = subprocess.run(
            [str(TOOL), "run", "--", "gimp-console-3.0", "-i", "-d", "-f", "--batch-interpreter=python-fu-eval",
             "-b", "-", "--quit"],
            input=batch_script(), capture_output=True, text=True, env=env, timeout=GIMP_TIMEOUT_S,
        )
        report_file = work / "guide_report.json"
        output = (gimp.stdout + gimp.stderr)[-6000:]
        assert gimp.returncode == 0 and report_file.exists(), f"GIMP failed ({gimp.returncode}):\n{output}"
        report = json.loads(report_file.read_text())
        assert "exception" not in report, report["exception"]
        yield report["guided"]
    finally:
        backend.stop()
        shutil.rmtree(work, ignore_errors=True)


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
