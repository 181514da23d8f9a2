"""Shared fixtures: the real engine (hed weights: no network here) and a real `serve` process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from wire.client import PYZMQ, TRANSPORT_VARIABLE, ZMTP, Client  # noqa: E402

USER_PRESETS = {"tiny": {"features": {"block2_conv1": 0.05}, "continuity": 0.1, "dream_l2": 0.02, "jitter": 2}}
READY_TIMEOUT_S = 120
MAX_PIXELS = 20_000  # what test backends dream at most: small, so the size limits are exercised


def structured_image(width: int, height: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """An image with structure in both directions (gradients, stripes, noise): offset or flip bugs show."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), ((xx // 4 + yy // 6) % 2) * 200],
                   axis=-1)
    rgb = np.clip(rgb + rng.integers(-20, 21, size=rgb.shape), 0, 255).astype(np.uint8)
    if channels == 4:
        alpha = ((xx + yy) * 255 // max(width + height - 2, 1)).astype(np.uint8)
        return np.dstack([rgb, alpha])
    return rgb


@pytest.fixture(params=[PYZMQ, ZMTP])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once with pyzmq and once with wire/zmtp.py, the standard-library fallback. Chosen through
    $DEEP_DREAM_TRANSPORT, so that clients in subprocesses use it too."""
    monkeypatch.setenv(TRANSPORT_VARIABLE, request.param)
    return request.param


@pytest.fixture(scope="session")
def engine():
    from backend.engine import Engine

    return Engine("hed")


def free_endpoint() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


class BackendProcess:
    """A real `python -m backend serve` process, its output collected for failure messages."""

    def __init__(self, tmp: Path, *extra: str) -> None:
        import json

        self.endpoint = free_endpoint()
        presets = self.presets_file = tmp / "presets.json"  # read afresh for every request: tests may rewrite it
        presets.write_text(json.dumps(USER_PRESETS))
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend", "serve", "--bind", self.endpoint, "--weights", "hed",
             "--presets", str(presets), "--max-pixels", str(MAX_PIXELS), *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(READY_TIMEOUT_S):
            self.stop()
            raise RuntimeError("backend did not get ready:\n" + "".join(self.output))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if "backend ready on" in line:
                self.ready.set()

    def client(self) -> Client:
        return Client(self.endpoint)

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    process = BackendProcess(tmp_path_factory.mktemp("backend"))
    yield process
    process.stop()
