"""The plug-in's recipes, GIMP-free (gimp_plugin/deep_dream/recipes.py and the session's part): what a result
layer's recipe says, and the run Deep Dream Again makes of it, against the real backend of tests/conftest.py."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from backend.core.presets import BUILTIN_PRESETS
from tests.conftest import ROOT, USER_PRESETS, structured_image
from wire import recipe

sys.path.insert(0, str(ROOT / "gimp_plugin" / "deep_dream"))

import recipes  # noqa: E402
import session  # noqa: E402

HELLO = {"protocol": 1, "server": "0.1.0", "model": "vgg16", "weights": "hed", "device": "CPU"}
IMAGE = structured_image(48, 40).tobytes()
SOURCE = recipes.source_record("photo", 7, (64, 48), (8, 4, 48, 40), IMAGE)


def dream(client, plan: recipes.Plan, job: str) -> tuple[session.DreamSession, list[session.Kept]]:
    run = session.DreamSession(client, job, plan.iterations, plan.keep_every)
    run.submit(IMAGE, 48, 40, 3, plan.preset, plan.seed, plan.max_size, plan.params, plan.schedule)
    kept: list[session.Kept] = []
    while not run.finished:
        kept += run.poll(0.1)
    return run, kept


def test_a_recipe_dreamt_again_gives_its_layer(backend):
    """A dream with a random seed in two octaves, its layers' recipes, then iteration 2 of 4 dreamt again from its
    recipe: on the four-iteration schedule, ending done (not cancelled) with the one layer, the same pixels."""
    plan = recipes.Plan("tiny", 4, 1, None, 0, {"octaves": 2, "octave_scale": 1.5})
    with backend.client() as client:
        first, kept = dream(client, plan, "first")
        stamp = recipes.Stamp(plan, SOURCE, client.hello())
        texts = {item.number: stamp.text(first, item.number) for item in kept}
        made = recipes.read(texts[2].encode(), "tiny · iteration 2")
        again, remade = dream(client, recipes.again(made), "again")
    assert first.state is session.State.DONE and isinstance(first.seed, int)
    assert first.settings == {**USER_PRESETS["tiny"], "jitter": 2.0, "octaves": 2, "octave_scale": 1.5,
                              "max_step": 0.0, "guide_layers": [], "guide_size": 224}
    assert [json.loads(texts[number])["iteration"] for number in (1, 2, 3, 4)] == [1, 2, 3, 4]
    assert (made.preset, made.seed, made.iterations, made.settings) == ("tiny", first.seed, 4, first.settings)
    assert (made.source, made.backend) == (SOURCE, {"server": "0.1.0", "weights": "hed", "model": "vgg16"})
    assert recipes.again(made) == recipes.Plan("tiny", 2, 2, first.seed, 0, first.settings, 4)
    assert again.state is session.State.DONE and again.error is None and again.schedule == 4
    assert [item.number for item in remade] == [2] and remade[0].pixels == kept[1].pixels
    assert kept[1].pixels not in (kept[0].pixels, kept[2].pixels)


def test_a_guided_layers_recipe_names_its_guide():
    guide = recipes.guide_record("Starry", 9, "painting.xcf", 30, 20, b"guide pixels")
    stamp = recipes.Stamp(recipes.Plan("acid", 1, 1, 3, 0), SOURCE, HELLO, guide)
    settings = BUILTIN_PRESETS["acid"].to_json()
    made = recipe.parse(stamp.text(SimpleNamespace(seed=3, settings=settings, schedule=1), 1))
    assert made.guide == {"width": 30, "height": 20, "name": "Starry", "tattoo": 9, "image": "painting.xcf",
                          "sha256": recipe.source_digest(b"guide pixels")}
    assert "'Starry' of 'painting.xcf': open that image" in recipes.missing_guide(made)


def test_no_recipe_without_the_backends_settings():
    """A backend older than recipes tells no settings: its layers get none rather than one that cannot be used."""
    stamp = recipes.Stamp(recipes.Plan("acid", 1, 1, 3, 0), SOURCE, HELLO)
    assert stamp.text(SimpleNamespace(seed=3, settings=None, schedule=1), 1) is None
    broken = SimpleNamespace(seed=3, settings={"features": {"block1_conv1": 1.0}}, schedule=1)  # fields missing
    assert stamp.text(broken, 1) is None


@pytest.mark.parametrize("data, words", [
    (None, "'layer' has no Deep Dream recipe: select a layer that Deep Dream made"),
    (b"\xff\xfe", "the recipe of 'layer' cannot be used: the recipe is not JSON"),
])
def test_a_layer_without_a_usable_recipe(data, words):
    with pytest.raises(recipe.RecipeError, match=words):
        recipes.read(data, "layer")


def made_with(source: dict) -> recipe.Recipe:
    return recipe.Recipe("acid", {}, 1, 1, 1, 0, source, HELLO)


def test_the_part_of_the_source_a_recipe_dreamt():
    assert recipes.source_area(made_with(SOURCE), 64, 48) == (8, 4, 48, 40)
    assert recipes.source_area(made_with({"width": 30, "height": 20}), 30, 20) == (0, 0, 30, 20)
    with pytest.raises(recipe.RecipeError, match=r"'photo' is 50×48 now: the part dreamt \(48×40 at 8, 4\)"):
        recipes.source_area(made_with(SOURCE), 50, 48)
    assert recipes.source_tattoo(made_with(SOURCE)) == 7
    with pytest.raises(recipe.RecipeError, match="--recipe DREAM.png"):
        recipes.source_tattoo(made_with({"width": 30, "height": 20, "name": "in.png"}))
    assert "'photo' this was dreamt from is no longer in the image" in recipes.missing_source(made_with(SOURCE))
