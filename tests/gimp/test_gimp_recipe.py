"""Recipes in a real GIMP 3 against a real backend: every result layer carries its recipe as a persistent
`deep-dream` parasite that survives the XCF, and python-fu-deep-dream-again dreams a result layer's picture
again from it, pixel for pixel.

One GIMP start per version (3.0 and 3.2, see conftest.py) runs tests/gimp/batch_recipe.py, fed on stdin between
the helpers of batch_scenarios.py and its runner (conftest.with_scenario_helpers); each test here judges one
scenario of that JSON report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend import __version__
from backend.core.presets import GUIDE_SIZE
from tests.conftest import USER_PRESETS
from tests.gimp.conftest import with_scenario_helpers
from tests.gimp.test_gimp_plugin import pixels
from wire import recipe

BATCH_RECIPE = Path(__file__).with_name("batch_recipe.py")


@pytest.fixture(scope="module")
def report(run_batch) -> dict[str, Any]:
    """One GIMP run of the recipe scenarios (per version): its report, and its output as "output"."""
    run = run_batch(with_scenario_helpers(BATCH_RECIPE))
    return run.report | {"output": run.output}


def scenario(report: dict[str, Any], name: str) -> dict[str, Any]:
    result = report["scenarios"][name]
    assert "exception" not in result, result.get("exception")
    return result


def test_the_second_procedure_is_registered(report):
    registration = scenario(report, "registration")
    assert registration["arguments"] == ["run-mode", "image", "drawables", "endpoint"]
    assert registration["menu_label"] == "Deep Dream _Again"
    assert registration["menu_paths"] == ["<Image>/Filters/Artistic"]
    assert registration["image_types"] == "RGB*, GRAY*"


def test_every_result_layer_carries_its_recipe_through_the_xcf(report):
    result = scenario(report, "random_seed_then_again")
    assert (result["status"], result["message"]) == ("success", None)
    assert result["reloaded_tattoo"] == result["source_tattoo"]
    (group,) = result["before"]
    assert all(layer["persistent"] for layer in group["layers"])
    recipes = [recipe.parse(layer["recipe"]) for layer in group["layers"]]
    assert [made.iteration for made in recipes] == [4, 3, 2, 1]  # newest on top
    source = pixels(result["source"], 64, 48).tobytes()
    tiny = USER_PRESETS["tiny"]
    for made in recipes:
        assert (made.preset, made.iterations, made.max_size) == ("tiny", 4, 0)
        assert made.settings == {"features": tiny["features"], "continuity": tiny["continuity"],
                                 "dream_l2": tiny["dream_l2"], "jitter": float(tiny["jitter"]), "octaves": 2,
                                 "octave_scale": 1.5, "max_step": 0.0, "guide_layers": [],
                                 "guide_size": GUIDE_SIZE}  # every protocol.SETTING_FIELDS value
        assert made.source == {"width": 64, "height": 48, "name": "source", "tattoo": result["source_tattoo"],
                               "area": [0, 0, 64, 48], "sha256": recipe.source_digest(source)}
        assert made.backend == {"server": __version__, "weights": "hed", "model": "vgg16"}
    assert len({made.seed for made in recipes}) == 1  # asked for at random: the one drawn, on every layer


def test_dream_again_remakes_the_layer_from_its_recipe(report):
    """Iteration 2 of 4 in two octaves, from the reloaded XCF: a new group right above the source holding the
    one layer, equal to the original's pixels and recipe; the original group as it was."""
    result = scenario(report, "random_seed_then_again")
    assert (result["again_status"], result["again_message"]) == ("success", None)
    original, remade = result["after"]
    assert original == result["before"][0]
    assert result["order"][1:] == [remade["name"], "source"]
    (layer,) = remade["layers"]
    (second,) = [item for item in original["layers"] if recipe.parse(item["recipe"]).iteration == 2]
    assert layer["recipe"] == second["recipe"] and layer["persistent"]
    assert layer["pixels"] == second["pixels"]
    others = [item["pixels"] for item in original["layers"] if item is not second]
    assert layer["pixels"] not in others  # the iterations differ: equal to the second one says something


def test_dream_again_finds_the_part_of_an_offset_layer_by_its_tattoo(report):
    result = scenario(report, "selection_on_an_offset_layer_again")
    assert (result["status"], result["message"]) == ("success", None)
    assert (result["again_status"], result["again_message"]) == ("success", None)
    original, remade = result["after"]  # the new group goes right above the source
    (layer,) = remade["layers"]
    first = original["layers"][-1]
    made = recipe.parse(first["recipe"])
    assert (made.iteration, made.iterations, made.max_size, made.seed) == (1, 2, 32, 5)
    assert made.source["area"] == [13, 10, 40, 30] and made.source["tattoo"] == result["source_tattoo"]
    assert made.source["sha256"] == recipe.source_digest(pixels(result["source"], 40, 30).tobytes())
    assert layer["size"] == [40, 30] and layer["pixels"] == first["pixels"] and layer["recipe"] == first["recipe"]
    source = pixels(result["source"], 40, 30)
    assert np.abs(pixels(layer["pixels"], 40, 30)[..., :3].astype(int) - source[..., :3]).mean() > 0.5


def test_dream_again_on_a_changed_source_dreams_and_says_why_it_differs(report):
    result = scenario(report, "changed_source_again")
    assert (result["status"], result["message"]) == ("success", None)
    original, remade = result["after"]
    assert remade["layers"][0]["pixels"] != original["layers"][0]["pixels"]
    assert "the picture is not the one the recipe was dreamt from (source, 48×40): the dream will differ" \
        in report["output"]


@pytest.mark.parametrize("name, words", [
    ("no_recipe", ["'source' has no Deep Dream recipe: select a layer that Deep Dream made"]),
    ("garbled_recipe", ["cannot be used: the recipe is not JSON"]),
    ("source_deleted", ["the layer 'source' this was dreamt from is no longer in the image"]),
])
def test_dream_again_without_a_usable_recipe_says_why(report, name, words):
    result = scenario(report, name)
    assert result["status"] == "calling-error", result
    for word in words:
        assert word in (result["message"] or ""), result["message"]
    assert result["unchanged"], "the image changed"
