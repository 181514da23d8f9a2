"""Every precision in a real GIMP 3: 16-bit and float layers are dreamt at their own precision and their
result layers hold values off the 8-bit grid; 8-bit layers behave as before; grey stays grey.

One GIMP start runs tests/gimp/batch_precision.py, which dreams a smooth gradient image of each precision
and reports the pixels the plug-in read and the result layers' pixels. Each test here dreams those same
pixels with the same seed on the same backend, over the wire, and compares: the layers must hold exactly
(u8, u16) or within float rounding (float, whose layer is linear) what the backend dreamt. Self-contained
apart from the GIMP root fixture, so it can be pointed at another GIMP version's root.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT, BackendProcess
from tests.gimp.test_gimp_plugin import TOOL, gimp_root  # noqa: F401  (gimp_root: the GIMP 3.0 root fixture)
from wire import protocol

BATCH = Path(__file__).with_name("batch_precision.py")
GIMP_TIMEOUT_S = 600
WIDTH, HEIGHT = 48, 40
DREAM = {"preset": "tiny", "iterations": 2, "seed": 11}  # as batch_precision.py asks the plug-in
DTYPES = {"u8": np.uint8, "u16": "<u2", "f32": "<f4"}
PASS_ENV = ("GIMP3_DIRECTORY", "GIMP3_CACHEDIR", "DEEP_DREAM_ENDPOINT", "DEEP_DREAM_CONFIG_DIR", "XDG_CACHE_HOME",
            "DD_TEST_CONFIG")


@pytest.fixture(scope="module")
def precision_run(gimp_root: Path, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
                  ) -> Iterator[dict[str, Any]]:
    """A backend, a fresh profile with the plug-in, one GIMP run of batch_precision.py."""
    work = Path(tempfile.mkdtemp(prefix="deep-dream-precision-", dir=gimp_root / "tmp"))
    inside = "/" + str(work.relative_to(gimp_root))
    backend = BackendProcess(tmp_path_factory.mktemp("precision"))
    try:
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
            input=BATCH.read_text(), capture_output=True, text=True, env=env, timeout=GIMP_TIMEOUT_S,
        )
        output = gimp.stdout + gimp.stderr
        report_file = work / "report.json"
        assert gimp.returncode == 0 and report_file.exists(), f"GIMP failed ({gimp.returncode}):\n{output[-6000:]}"
        yield {"report": json.loads(report_file.read_text()), "output": output, "backend": backend}
    finally:
        backend.stop()
        shutil.rmtree(work, ignore_errors=True)


def scenario(run: dict[str, Any], name: str) -> dict[str, Any]:
    result = run["report"]["scenarios"][name]
    assert "exception" not in result, result.get("exception")
    assert (result["status"], result["message"]) == ("success", None), result
    assert len(result["layers"]) == DREAM["iterations"]
    return result


def samples(encoded: str, sample_format: str, planes: int = 4) -> np.ndarray:
    return np.frombuffer(base64.b64decode(encoded), DTYPES[sample_format]).reshape(HEIGHT, WIDTH, planes)


def dreamt_by_the_backend(run: dict[str, Any], pixels: bytes, sample_format: str) -> list[np.ndarray]:
    """The same pixels dreamt over the wire with the same settings: newest first, as the layers are."""
    with run["backend"].client() as client:
        job = f"check-{sample_format}-{time.monotonic()}"
        client.dream(job, pixels, WIDTH, HEIGHT, 4, DREAM["preset"], DREAM["iterations"], seed=DREAM["seed"],
                     sample_format=sample_format)
        results = []
        while True:
            message = client.receive(120)
            assert message is not None, "the backend did not answer"
            header, frame = message
            if header.get("job") != job:
                continue
            assert header["type"] not in (protocol.ERROR, protocol.CANCELLED), header
            if header["type"] == protocol.ITERATION:
                assert header["format"] == sample_format
                results.append(np.frombuffer(frame, DTYPES[sample_format]).reshape(HEIGHT, WIDTH, 4))
            if header["type"] == protocol.DONE:
                return results[::-1]


def off_grid(colour: np.ndarray, full_scale: float) -> float:
    """The share of samples that are not on one of the 256 levels of 8 bits, among those not clipped to black
    or white (where a dream saturates, every precision agrees)."""
    levels = colour.astype(np.float64) * 255 / full_scale
    inside = (levels > 1e-3) & (levels < 255 - 1e-3)
    assert inside.mean() > 0.5, "the image is mostly black or white"
    return float((np.abs(levels - np.rint(levels))[inside] > 1e-3).mean())


def held_and_dreamt(run: dict[str, Any], name: str, precision: str, sample_format: str
                    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """A scenario of that image precision: the pixels the plug-in sent, and each result layer's pixels beside
    what the backend dreams from those pixels itself."""
    result = scenario(run, name)
    assert result["precision"] == precision
    assert all(layer["type"] == "rgba-image" for layer in result["layers"])
    sent = samples(result["sent_as"], sample_format)
    expected = dreamt_by_the_backend(run, sent.tobytes(), sample_format)
    held = [samples(layer["precision"], sample_format) for layer in result["layers"]]
    return sent, list(zip(held, expected, strict=True))


def test_16_bit_layers_dream_at_16_bits(precision_run):
    sent, layers = held_and_dreamt(precision_run, "u16", "u16-non-linear", "u16")
    assert off_grid(sent[..., :3], 65535) > 0.9  # the plug-in read the gradient at 16 bits
    for held, dreamt in layers:
        np.testing.assert_array_equal(held, dreamt)  # sent as u16, written back as u16: nothing lost
        assert off_grid(held[..., :3], 65535) > 0.9
        np.testing.assert_array_equal(held[..., 3], sent[..., 3])  # alpha at 16 bits, untouched
    assert np.abs(layers[-1][0][..., :3] / 257.0 - sent[..., :3] / 257.0).mean() > 0.5, "nothing was dreamt"


def test_float_layers_dream_as_float(precision_run):
    _, layers = held_and_dreamt(precision_run, "float", "float-linear", "f32")
    for held, dreamt in layers:  # sRGB-encoded, through the linear layer and back
        np.testing.assert_allclose(held, dreamt, atol=1e-4)
        assert off_grid(held[..., :3], 1.0) > 0.9


def test_8_bit_layers_are_dreamt_as_before(precision_run):
    """8-bit goes as 8-bit (no format field) and the layers hold exactly what the backend dreamt at 8 bits."""
    sent, layers = held_and_dreamt(precision_run, "u8", "u8-non-linear", "u8")
    for held, dreamt in layers:
        np.testing.assert_array_equal(held, dreamt)
    assert np.abs(layers[-1][1][..., :3].astype(int) - sent[..., :3]).mean() > 0.5, "nothing was dreamt"


def test_16_bit_grey_stays_grey_at_16_bits(precision_run):
    result = scenario(precision_run, "grey_u16")
    assert (result["base_type"], result["precision"]) == ("gray", "u16-non-linear")
    sent = samples(result["sent_as"], "u16")
    assert (sent[..., 0] == sent[..., 1]).all() and (sent[..., 1] == sent[..., 2]).all()
    for layer in result["layers"]:
        assert layer["type"] == "graya-image"
        grey = samples(layer["precision"], "u16", planes=2)
        assert off_grid(grey[..., 0], 65535) > 0.9
        np.testing.assert_array_equal(grey[..., 1], sent[..., 3])
    first = samples(result["layers"][-1]["precision"], "u16", planes=2)[..., 0].astype(float)
    assert np.abs(first - sent[..., 0]).mean() / 257 > 0.5, "nothing was dreamt"
