"""wire/recipe.py: the recipe the plug-in and the CLI write on every result and read back, and its errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from backend.core.presets import BUILTIN_PRESETS
from wire import protocol, recipe


def fields(**changes: Any) -> dict[str, Any]:
    made = recipe.Recipe("eyes", BUILTIN_PRESETS["eyes"].to_json(), 1234, 3, 5, 0,
                         {"width": 64, "height": 48, "name": "photo", "tattoo": 2, "area": [0, 0, 64, 48]},
                         {"server": "0.1.0", "weights": "hed", "model": "vgg16"})
    return json.loads(made.to_json()) | changes


def test_a_recipe_reads_back_as_written():
    written = fields()
    read = recipe.parse(json.dumps(written).encode())
    assert json.loads(read.to_json()) == written
    assert written["version"] == recipe.VERSION and set(written["settings"]) == set(protocol.SETTING_FIELDS)
    assert (read.preset, read.seed, read.iteration, read.iterations, read.max_size) == ("eyes", 1234, 3, 5, 0)


def test_what_may_make_a_dream_differ():
    read = recipe.parse(json.dumps(fields(source=fields()["source"] | {"sha256": recipe.source_digest(b"abc")})))
    assert read.warnings({"server": "0.1.0", "weights": "hed", "device": "CPU"}, b"abc") == []
    assert read.warnings({"server": "0.2.0", "weights": "imagenet"}, b"abd") == [
        "the recipe was dreamt with server '0.1.0', here '0.2.0'",
        "the recipe was dreamt with weights 'hed', here 'imagenet'",
        "the picture is not the one the recipe was dreamt from (photo, 64×48): the dream will differ"]
    assert recipe.parse(json.dumps(fields())).warnings({"server": "0.1.0", "weights": "hed"}, b"abd") == []


def test_a_guided_recipe_names_its_guide_and_tells_another_apart():
    guide = {"width": 30, "height": 20, "name": "Starry", "tattoo": 7, "image": "painting.xcf",
             "sha256": recipe.source_digest(b"guide")}
    read = recipe.parse(json.dumps(fields(guide=guide)))
    assert read.guide == guide and json.loads(read.to_json())["guide"] == guide
    hello = {"server": "0.1.0", "weights": "hed"}
    assert read.warnings(hello, b"abc", b"guide") == []
    assert read.warnings(hello, b"abc", b"other") == [
        "the guide is not the one the recipe was guided by (Starry): the dream will differ"]
    with pytest.raises(recipe.RecipeError, match='the recipe\'s guide "name" must be a string'):
        recipe.parse(json.dumps(fields(guide=guide | {"name": 3})))
    with pytest.raises(recipe.RecipeError, match='the recipe needs "guide"'):
        recipe.parse(json.dumps(fields(guide="starry.png")))


def test_fields_a_later_version_adds_are_ignored():
    assert recipe.parse(json.dumps(fields(note="made on a Tuesday"))).preset == "eyes"


def settings_without(name: str) -> dict[str, Any]:
    return {key: value for key, value in fields()["settings"].items() if key != name}


@pytest.mark.parametrize("data, words", [
    (b"\x89PNG", "not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"seed": NaN}', "not JSON"),
    ("[" * 100_000, "over the 65,536"),
    (json.dumps(fields(version=2)), "format version 2; this Deep Dream reads version 1 at most: update it"),
    (json.dumps(fields(version="1")), '"version": an integer of at least 1'),
    (json.dumps(fields(preset="")), '"preset": a preset name'),
    (json.dumps(fields(seed=-1)), '"seed": an integer of at least 0, not -1'),
    (json.dumps(fields(seed=True)), '"seed"'),
    (json.dumps(fields(iteration=6)), '"iteration": an integer from 1 to 5, not 6'),
    (json.dumps(fields(iteration=0)), '"iteration": an integer from 1 to 5, not 0'),
    (json.dumps(fields(iterations=1001)), '"iterations": an integer from 1 to 1000'),
    (json.dumps(fields(max_size=2.5)), '"max_size"'),
    (json.dumps(fields(settings=settings_without("jitter"))), "the recipe's settings lack jitter"),
    (json.dumps(fields(settings=fields()["settings"] | {"jitter": 300})), "the recipe's settings: \"jitter\" must"),
    (json.dumps(fields(settings=fields()["settings"] | {"sparkle": 1})), "unknown params ['sparkle']"),
    (json.dumps(fields(settings=[])), '"settings": {features'),
    (json.dumps(fields(source={"width": 64})), '"height": an integer of at least 1, not None'),
    (json.dumps(fields(source={"width": 64, "height": 48, "area": [0, 0, 0, 48]})), '"area" must be [x, y'),
    (json.dumps(fields(source={"width": 64, "height": 48, "tattoo": 0})), '"tattoo"'),
    (json.dumps(fields(source={"width": 64, "height": 48, "name": 7})), 'source "name" must be a string'),
    (json.dumps(fields(backend={"server": "0.1.0"})), '"backend": {server, weights}'),
])
def test_a_broken_recipe_says_what_is_wrong(data, words):
    with pytest.raises(recipe.RecipeError) as caught:
        recipe.parse(data)
    assert words in str(caught.value)


def test_the_source_digest_tells_pixels_apart():
    assert recipe.source_digest(b"\x00\x01\x02") == recipe.source_digest(bytes([0, 1, 2]))
    assert recipe.source_digest(b"\x00\x01\x02") != recipe.source_digest(b"\x00\x01\x03")
    assert len(recipe.source_digest(b"")) == 64
