"""`python -m backend animate`, run as users run it: frames as PNGs, then animated WebP and GIF of them all."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import ROOT, structured_image
from tests.test_cli import backend


def test_animate_writes_every_frame_and_animated_files_with_all_of_them(tmp_path):
    source = tmp_path / "in.png"
    Image.fromarray(structured_image(48, 36)).save(source)
    prefix = tmp_path / "out" / "zoom"
    result = backend("animate", str(source), str(prefix), "--frames", "3", "--zoom", "1.1", "--rotate", "4",
                     "--pan", "1", "-2", "--iterations", "1", "--preset", "doggos", "--seed", "5", "--frame-ms",
                     "120", "--gif", "--weights", "hed")
    assert result.returncode == 0, result.stderr
    pngs = [np.asarray(Image.open(f"{prefix}_frame_{k}.png")) for k in range(3)]
    assert all(png.shape == (36, 48, 3) for png in pngs) and not (tmp_path / "out" / "zoom_frame_3.png").exists()
    assert "frame 1/3" in result.stderr and "frame 3/3" in result.stderr and "seed 5" in result.stderr
    for suffix in (".webp", ".gif"):
        with Image.open(f"{prefix}{suffix}") as animation:
            assert animation.n_frames == 3 and animation.size == (48, 36)
            animation.seek(2)
            animation.load()
            assert animation.info["duration"] == 120
    with Image.open(f"{prefix}.webp") as webp:  # the frames in order: WebP is lossy, so compare closeness
        for k in range(3):
            webp.seek(k)
            shown = np.asarray(webp.convert("RGB"), np.float32)
            nearest = min(range(3), key=lambda j: np.abs(shown - pngs[j]).mean())
            assert nearest == k


def test_animate_refuses_bad_motion_before_loading_vgg16(tmp_path):
    source = tmp_path / "in.png"
    Image.fromarray(structured_image(16, 16)).save(source)
    result = backend("animate", str(source), str(tmp_path / "x"), "--frames", "2", "--zoom", "3", "--weights", "hed",
                     timeout=60)
    assert result.returncode == 1 and '"zoom" must be a number from 0 to 2' in result.stderr
    assert "Animating" not in result.stderr and not list(tmp_path.glob("x*"))


def test_ctrl_c_keeps_the_frames_made_in_the_animated_file(tmp_path):
    source = tmp_path / "in.png"
    Image.fromarray(structured_image(48, 36)).save(source)
    prefix = tmp_path / "stopped"
    process = subprocess.Popen([sys.executable, "-m", "backend", "animate", str(source), str(prefix), "--frames", "200",
                                "--iterations", "1", "--zoom", "0.95", "--weights", "hed"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               # as in a terminal: a test run in the background would pass SIGINT on ignored
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not Path(f"{prefix}_frame_1.png").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    made = len(list(tmp_path.glob("stopped_frame_*.png")))
    with Image.open(f"{prefix}.webp") as animation:
        # equal, but for a Ctrl-C landing between a frame's PNG and its place in the list
        assert 2 <= animation.n_frames < 200 and abs(animation.n_frames - made) <= 1
    assert "interrupted" in stderr
