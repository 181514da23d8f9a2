"""Acceptance tests in a real GIMP 3 (3.0 and 3.2, see conftest.py) against a real backend, over real ZeroMQ.

One GIMP start per version runs every scenario: tests/gimp/batch_scenarios.py, fed to gimp-console's
python-fu-eval on stdin, calls python-fu-deep-dream non-interactively and writes a JSON report (statuses,
messages, layer trees, pixels of the saved and reloaded XCF files); each test here judges one scenario.

Backends run on the host (the chroot shares the network). The plug-in inside the chroot sees the host's
processes too, which lets one scenario kill a backend in the middle of a dream.
"""

from __future__ import annotations

import base64
import itertools
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.core.presets import BUILTIN_PRESETS
from tests.conftest import BackendProcess, free_endpoint

BATCH = Path(__file__).with_name("batch_scenarios.py")
KILL_AFTER_S = 5.0  # a few layers in (one every ~0.1 s), long before the 200th
BACKEND_STOPPED = "the backend stopped during the dream; the layers received so far are kept"


@pytest.fixture(scope="module")
def gimp_run(gimp, run_batch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Besides the module's backend: one to be killed, a silent TCP server; one GIMP run of every scenario."""
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts connections; nobody ever answers
    doomed = BackendProcess(tmp_path_factory.mktemp("doomed"))
    try:
        config = {
            "foreign": f"tcp://127.0.0.1:{silent.getsockname()[1]}",
            "vacant": free_endpoint(),
            "doomed_endpoint": doomed.endpoint,
            "doomed_pid": doomed.process.pid,
            "kill_after": KILL_AFTER_S,
        }
        # The user's presets file: "ghost" is offered by the plug-in, but this backend reads another file.
        run = run_batch(BATCH, config, user_presets={"ghost": {"features": {"block1_conv1": 1.0}}})
        yield {"report": run.report, "output": run.output, "backend_log": run.backend_log, "config": run.config,
               "doomed_exit": doomed.process.wait(timeout=30), "version": gimp.version}
    finally:
        silent.close()
        if doomed.process.poll() is None:
            doomed.stop()


def scenario(gimp_run: dict[str, Any], name: str) -> dict[str, Any]:
    result = gimp_run["report"]["scenarios"][name]
    assert "exception" not in result, result.get("exception")
    return result


def pixels(encoded: str, width: int, height: int) -> np.ndarray:
    data = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8)
    return data.reshape(height, width, -1)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


def assert_lines_up(dreamt: np.ndarray, source: np.ndarray) -> None:
    """The least-dreamt layer must look like the source, not like the source flipped or with channels swapped."""
    straight = correlation(dreamt, source)
    wrong = {"rows flipped": source[::-1], "columns flipped": source[:, ::-1]}
    if source.shape[2] >= 3:
        wrong["red and blue swapped"] = source[..., [2, 1, 0]]
    assert straight > 0.6, f"correlation with the source only {straight:.3f}"
    for what, image in wrong.items():
        other = correlation(dreamt, image)
        assert straight > other + 0.3, f"correlation {straight:.3f} straight but {other:.3f} with {what}"


def assert_all_differ(images: dict[str, np.ndarray], source: np.ndarray) -> None:
    for name, image in images.items():
        assert np.abs(image.astype(int) - source.astype(int)).mean() > 0.5, f"{name} is the source"
    for first, second in itertools.combinations(images, 2):
        assert not np.array_equal(images[first], images[second]), f"{first} and {second} are the same"


def find(tree: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(item for item in tree if item["name"] == name)


# ---- registration --------------------------------------------------------------------------------


def test_procedure_registration(gimp_run):
    registration = scenario(gimp_run, "registration")
    assert registration["arguments"] == ["run-mode", "image", "drawables", "preset", "iterations", "keep-every",
                                         "max-size", "octaves", "octave-scale", "seed", "endpoint", "guide"]
    # built-ins first, then the user's file ("ghost") and the running backend's presets file ("tiny")
    assert registration["presets"] == [*BUILTIN_PRESETS, "ghost", "tiny"]
    assert registration["preset_default"] == "dreamy"  # choices.DEFAULT_PRESET
    assert registration["ints"]["iterations"] == [1, 200, 10]
    assert registration["ints"]["keep-every"][0::2] == [1, 1]
    assert registration["ints"]["max-size"][0::2] == [0, 0]
    assert registration["ints"]["seed"][0::2] == [0, 0]
    assert registration["ints"]["octaves"] == [0, 8, 0]  # 0: the preset's own
    assert registration["ints"]["octave-scale"] == [0.0, 4.0, 0.0]
    assert registration["endpoint_default"] == gimp_run["config"]["endpoint"]  # DEEP_DREAM_ENDPOINT
    assert registration["menu_label"] == "Deep _Dream…"
    assert registration["menu_paths"] == ["<Image>/Filters/Artistic"]
    assert registration["image_types"] == "RGB*, GRAY*"


# ---- dreams that work ------------------------------------------------------------------------------


def test_keep_every_gives_a_group_above_the_source(gimp_run):
    result = scenario(gimp_run, "rgb_keep_every")
    assert (result["status"], result["message"]) == ("success", None)
    folder = find(result["tree"], "folder")
    assert [child["name"] for child in folder["children"]] == ["upper", "Dream: tiny", "source", "lower"]
    group = find(folder["children"], "Dream: tiny")
    # iterations 5, keep every 2: iterations 2, 4 and the last; newest on top
    assert [layer["name"] for layer in group["children"]] == [f"tiny {n}" for n in (5, 4, 2)]
    for layer in group["children"]:
        assert (layer["size"], layer["offsets"], layer["type"]) == ([64, 48], [0, 0], "rgba-image")
        assert not layer["mask"]


def test_rgb_layers_line_up_and_differ(gimp_run):
    result = scenario(gimp_run, "rgb_keep_every")
    source = pixels(result["source"], 64, 48)
    layers = {name: pixels(data, 64, 48) for name, data in result["layers"].items()}
    assert len(layers) == 3
    assert (source[..., 3] == 255).all() and all((layer[..., 3] == 255).all() for layer in layers.values())
    assert_all_differ({name: layer[..., :3] for name, layer in layers.items()}, source[..., :3])
    assert_lines_up(layers["tiny 2"][..., :3], source[..., :3])


def test_the_run_is_one_undo_step(gimp_run):
    """GIMP 3.0's PDB can neither count nor perform undo steps (only gimp-image-undo-{group-start,group-end,
    is-enabled,enable,disable,freeze,thaw}). What can be checked: the core closes undo groups a plug-in left
    open and says so in its output, the image's undo stays enabled, and everything the run added is inside
    the one group (the tree test above) with the source untouched."""
    result = scenario(gimp_run, "rgb_keep_every")
    assert "left image undo in inconsistent state" not in gimp_run["output"]
    assert result["undo_enabled"] and result["source_unchanged"]


def test_selection_on_an_offset_layer_with_alpha(gimp_run):
    result = scenario(gimp_run, "alpha_selection")
    assert (result["status"], result["message"]) == ("success", None)
    assert [item["name"] for item in result["tree"]] == ["Dream: doggos", "source", "background"]
    group = find(result["tree"], "Dream: doggos")
    assert [layer["name"] for layer in group["children"]] == ["doggos 2", "doggos 1"]
    for layer in group["children"]:
        # the selection's bounding box (20, 15, 40×30) in image coordinates, whatever the layer's offsets (7, 5)
        assert (layer["size"], layer["offsets"], layer["type"], layer["mask"]) == ([40, 30], [20, 15],
                                                                                   "rgba-image", True)
    source = pixels(result["source"], 60, 50)[10:40, 13:53]  # the selection in the layer's own coordinates
    layers = {name: pixels(data, 40, 30) for name, data in result["layers"].items()}
    for name, layer in layers.items():
        assert np.array_equal(layer[..., 3], source[..., 3]), f"{name}: alpha differs from the source's"
    selection = pixels(result["selection"], 40, 30)
    assert 0 < selection.mean() < 255  # an ellipse: partly selected
    for name, mask in result["masks"].items():
        assert np.array_equal(pixels(mask, 40, 30), selection), f"{name}: the mask is not the selection"
    assert_all_differ({name: layer[..., :3] for name, layer in layers.items()}, source[..., :3])
    assert_lines_up(layers["doggos 1"][..., :3], source[..., :3])


def test_grey_stays_grey(gimp_run):
    result = scenario(gimp_run, "grey")
    assert (result["status"], result["message"]) == ("success", None)
    assert result["base_type"] == "gray"
    group = find(result["tree"], "Dream: acid")
    assert [layer["name"] for layer in group["children"]] == ["acid 2", "acid 1"]
    assert all(layer["type"] == "graya-image" and layer["size"] == [48, 40] for layer in group["children"])
    source = pixels(result["source"], 48, 40)[..., :1]
    layers = {name: pixels(data, 48, 40)[..., :1] for name, data in result["layers"].items()}
    assert_all_differ(layers, source)
    assert_lines_up(layers["acid 1"], source)


@pytest.mark.parametrize("name, newest", [("rgb_keep_every", "tiny 5"), ("alpha_selection", "doggos 2"),
                                           ("grey", "acid 2"), ("text_layer", "tiny 2")])
def test_the_newest_layer_itself_is_selected_after_a_run(gimp_run, name, newest):
    """Not its mask (GIMP makes a new mask the active drawable): Filters ▸ Repeat refuses a layer mask."""
    assert scenario(gimp_run, name)["selected"] == [{"name": newest, "mask": False}]


def assert_raster_results(result: dict[str, Any], kind: str) -> None:
    """A dream of a layer of another kind: that layer is as it was; the results are raster layers that differ."""
    assert (result["status"], result["message"]) == ("success", None)
    assert result["before"]["kind"] == kind  # the scenario made what it meant to
    assert [item["name"] for item in result["tree"]] == ["Dream: tiny", "source", "background"]
    source = find(result["tree"], "source")
    assert (source["kind"], source["size"], source["offsets"]) == (kind, result["before"]["size"],
                                                                   result["before"]["offsets"])
    group = find(result["tree"], "Dream: tiny")
    assert [layer["name"] for layer in group["children"]] == ["tiny 2", "tiny 1"]
    for layer in group["children"]:
        assert (layer["kind"], layer["type"]) == ("layer", "rgba-image"), layer
        assert (layer["size"], layer["offsets"]) == (source["size"], source["offsets"]), layer
    assert result["differs"] == {"tiny 2": True, "tiny 1": True}


def test_a_text_layer_dreams_into_raster_layers(gimp_run):
    assert_raster_results(scenario(gimp_run, "text_layer"), "text_layer")


def test_a_vector_layer_dreams_into_raster_layers(gimp_run):
    """Vector layers are new in GIMP 3.2; on 3.0 the scenario can only confirm there are none."""
    result = scenario(gimp_run, "vector_layer")
    if gimp_run["version"] == "3.0":
        assert result == {"unavailable": gimp_run["report"]["gimp"]} and result["unavailable"].startswith("3.0.")
    else:
        assert_raster_results(result, "vector_layer")


def test_a_gimp_python_that_cannot_load_pyzmq_dreams_through_the_fallback(gimp_run):
    """As on Windows, whose MSYS2 Python cannot load pyzmq: `import zmq` fails in the plug-in (see the scenario);
    the standard-library client of wire/zmtp.py talks to the real backend instead."""
    result = scenario(gimp_run, "without_pyzmq")
    assert result["zmq_import_failed"], "the plug-in never tried to import zmq: the scenario proves nothing"
    assert (result["status"], result["message"]) == ("success", None)
    assert result["layers"] == ["tiny 2", "tiny 1"] and result["dreamt"]


# ---- failures: a clear status and message, the image as it was ------------------------------------


@pytest.mark.parametrize("name, status, words", [
    ("several_drawables", "calling-error", ["select exactly one (2 are selected)"]),
    ("group_drawable", "calling-error", ["'a group' is a layer group"]),
    ("mask_drawable", "calling-error", ["is a layer mask"]),
    ("channel_drawable", "calling-error", ["'a channel' is a channel"]),
    ("unknown_preset", "execution-error", ["unknown preset 'ghost'; known: "
                                           + ", ".join(sorted([*BUILTIN_PRESETS, "tiny"]))]),
    ("octave_scale_under_one", "calling-error", ["octave scale must be over 1"]),
    ("not_backend", "execution-error", ["does not answer as a Deep Dream backend"]),
    ("cannot_start", "execution-error", ["cannot start the Deep Dream backend", "install.py"]),
    ("exits_early", "execution-error", ["exited during start-up (exit status 3)", "deep-dream-gimp/backend.log",
                                        "boom: no VGG16 here"]),
])
def test_failures_are_reported(gimp_run, name, status, words):
    result = scenario(gimp_run, name)
    assert result["status"] == status, result
    for word in words:
        assert word in (result["message"] or ""), result["message"]
    assert result["unchanged"], "the image changed"


def test_a_failed_start_is_logged(gimp_run):
    assert "boom: no VGG16 here" in gimp_run["backend_log"]
    assert "--bind " + gimp_run["config"]["vacant"] in gimp_run["backend_log"]


def test_the_backend_dying_mid_dream(gimp_run):
    result = scenario(gimp_run, "backend_dies")
    assert gimp_run["doomed_exit"] == -9  # it was killed, by the scenario
    assert (result["status"], result["message"]) == ("execution-error", BACKEND_STOPPED)
    received = result["layers"]
    assert 0 < len(received) < 200
    assert received == [f"tiny {n}" for n in range(len(received), 0, -1)]
    assert result["seconds"] < KILL_AFTER_S + 15, "the plug-in took too long to notice"


def test_the_gimp_asked_for_ran(gimp_run):
    assert gimp_run["report"]["gimp"].startswith(gimp_run["version"] + ".")
