"""Deep Dream Animation in a real GIMP 3 against a real backend: the frames become layers of a new image, and
GIMP's own GIF and WebP exporters make an animation of them with the timing in the layers' names.

One GIMP start per version (3.0 and 3.2, see conftest.py) runs tests/gimp/batch_animation.py, between
batch_scenarios.py's helpers and runner (conftest.with_scenario_helpers); the files it exports are read here
with Pillow.
"""

from __future__ import annotations

import base64
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from backend.core.animation import Motion, warp
from tests.gimp.conftest import with_scenario_helpers

BATCH = Path(__file__).with_name("batch_animation.py")
FRAMES = 4
FRAME_MS = 80
WIDTH, HEIGHT = 48, 40
MOTION = Motion(zoom=1.15, rotate=6.0, pan=(1.0, -1.0))  # what batch_animation.py asks for


@pytest.fixture(scope="module")
def animation_run(run_batch) -> dict[str, Any]:
    """One GIMP run of batch_animation.py (per version): its report, its output and its folder (the exports)."""
    run = run_batch(with_scenario_helpers(BATCH), {"frames": FRAMES, "frame_ms": FRAME_MS})
    return {"report": run.report, "work": run.work, "output": run.output}


def scenario(run: dict[str, Any], name: str) -> dict[str, Any]:
    result = run["report"]["scenarios"][name]
    assert "exception" not in result, result["exception"] + run["output"][-3000:]
    return result


def test_the_procedure_is_in_the_artistic_filters_next_to_deep_dream(animation_run):
    result = scenario(animation_run, "registration")
    assert result["label"] == "Deep Dream _Animation…" and result["paths"] == ["<Image>/Filters/Artistic"]
    assert result["arguments"] == ["run-mode", "image", "drawables", "preset", "frames", "iterations", "zoom",
                                   "rotate", "pan-x", "pan-y", "blend", "frame-ms", "max-size", "seed", "endpoint"]
    assert result["returns"] == ["image"]


def test_each_frame_is_a_top_level_layer_of_a_new_image_named_for_playback(animation_run):
    result = scenario(animation_run, "frames")
    assert result["status"] == "success"
    assert result["new_images"] == 1 and result["returned"] == result["made"][0]  # the image is returned
    assert result["source_layers"] == ["source"]  # the source image is untouched
    assert result["size"] == [WIDTH, HEIGHT]
    names = [layer["name"] for layer in result["layers"]]
    assert names == [f"Frame {k} ({FRAME_MS}ms) (replace)" for k in range(FRAMES, 0, -1)]  # first frame lowest
    assert all(not layer["group"] and layer["size"] == [WIDTH, HEIGHT] and layer["offsets"] == [0, 0]
               for layer in result["layers"])


def test_the_frame_layers_continue_one_another_under_the_motion(animation_run):
    layers = scenario(animation_run, "frames")["pixels"][::-1]  # first frame first
    images = [np.frombuffer(base64.b64decode(data), np.uint8).reshape(HEIGHT, WIDTH, 3) for data in layers]
    step = MOTION.matrix(WIDTH, HEIGHT)
    wrong_way = Motion(zoom=MOTION.zoom, rotate=-MOTION.rotate, pan=(-MOTION.pan[0], -MOTION.pan[1]))
    for before, after in itertools.pairwise(images):
        continued = np.abs(warp(before.astype(np.float32), step) - after).mean()
        unmoved = np.abs(before.astype(np.float32) - after).mean()
        turned_back = np.abs(warp(before.astype(np.float32), wrong_way.matrix(WIDTH, HEIGHT)) - after).mean()
        assert continued < unmoved and continued < turned_back, (continued, unmoved, turned_back)


@pytest.mark.parametrize("kind", ["gif", "webp"])
def test_gimps_own_exporter_makes_an_animation_of_every_frame_with_their_delay(animation_run, kind):
    result = scenario(animation_run, "frames")
    with Image.open(animation_run["work"] / result[kind]) as exported:
        assert exported.n_frames == FRAMES and exported.size == (WIDTH, HEIGHT)
        delays = []
        for index in range(FRAMES):
            exported.seek(index)
            exported.load()
            delays.append(exported.info["duration"])
    assert delays == [FRAME_MS] * FRAMES  # from the layer names: the export's own default is 500


def test_several_layers_are_refused_and_no_image_is_made(animation_run):
    result = scenario(animation_run, "two_layers")
    assert result["status"] == "calling-error" and "exactly one" in result["message"]
    assert result["new_images"] == 0
