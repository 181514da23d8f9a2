"""Recipes on the command line, run as users run it: every PNG `dream` writes carries its recipe, and
`dream INPUT PREFIX --recipe DREAM.png` dreams that same picture again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from backend import __version__
from tests.conftest import structured_image
from tests.test_cli import backend
from wire import recipe


def recipe_in(path: Path) -> dict:
    with Image.open(path) as image:
        return json.loads(image.text[recipe.NAME])


@pytest.fixture(scope="module")
def first_dream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """Four iterations in two octaves (two each) with a random seed: (folder, input, stderr)."""
    folder = tmp_path_factory.mktemp("recipe")
    source = folder / "in.png"
    Image.fromarray(structured_image(40, 32, channels=4)).save(source)
    result = backend("dream", str(source), str(folder / "first"), "--preset", "acid", "--iterations", "4",
                     "--octaves", "2", "--octave-scale", "1.5", "--weights", "hed")
    assert result.returncode == 0, result.stderr
    return folder, source, result.stderr


def test_every_png_carries_its_recipe(first_dream):
    folder, source, stderr = first_dream
    seed = int(re.search(r"seed (\d+)", stderr).group(1))  # drawn at random: the recipe has the actual one
    for index in range(4):
        written = recipe_in(folder / f"first_at_iteration_{index}.png")
        parsed = recipe.parse(json.dumps(written))
        assert written["version"] == recipe.VERSION
        assert (parsed.preset, parsed.seed, parsed.iteration, parsed.iterations, parsed.max_size) == (
            "acid", seed, index + 1, 4, 0)
        assert parsed.settings == {"features": {"block4_conv1": 0.05, "block4_conv2": 0.01, "block4_conv3": 0.01},
                                   "continuity": 0.1, "dream_l2": 0.8, "jitter": 5.0, "octaves": 2,
                                   "octave_scale": 1.5, "max_step": 0.0, "guide_layers": [], "guide_size": 224}
        assert "guide" not in written  # not a guided dream
        assert parsed.backend == {"server": __version__, "weights": "hed", "model": "vgg16"}
        pixels = np.asarray(Image.open(source)).tobytes()  # RGBA, as the wire would carry it
        assert parsed.source == {"width": 40, "height": 32, "name": "in.png", "sha256": recipe.source_digest(pixels)}


def test_a_recipe_dreams_its_picture_again(first_dream):
    """Iteration 2 of 4 in two octaves: the replay must dream on the 4-iteration schedule (2 + 2: the second is
    the small octave's last) and stop there; 2 iterations alone would be 1 + 1."""
    folder, source, _ = first_dream
    result = backend("dream", str(source), str(folder / "again"), "--recipe", str(folder / "first_at_iteration_1.png"))
    assert result.returncode == 0, result.stderr
    assert "up to iteration 2 as the recipe in" in result.stderr and "warning" not in result.stderr
    assert sorted(path.name for path in folder.glob("again_*")) == ["again_at_iteration_0.png",
                                                                     "again_at_iteration_1.png"]
    for index in range(2):
        original, again = (folder / f"{prefix}_at_iteration_{index}.png" for prefix in ("first", "again"))
        assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(original)))
        assert recipe_in(again) == recipe_in(original)


def test_a_recipe_on_another_picture_warns_and_dreams(first_dream):
    folder, _, _ = first_dream
    other = folder / "other.png"
    Image.fromarray(structured_image(40, 32, seed=7)).save(other)
    result = backend("dream", str(other), str(folder / "other"), "--recipe", str(folder / "first_at_iteration_0.png"))
    assert result.returncode == 0, result.stderr
    assert "warning: the picture is not the one the recipe was dreamt from (in.png, 40×32)" in result.stderr
    assert [path.name for path in folder.glob("other_*")] == ["other_at_iteration_0.png"]


def test_a_guided_recipe_names_its_guide_and_dreams_again_with_it(tmp_path):
    source, guide = tmp_path / "in.png", tmp_path / "guide.png"
    Image.fromarray(structured_image(64, 48)).save(source)
    Image.fromarray(structured_image(50, 40, channels=4, seed=5)).save(guide)
    first = backend("dream", str(source), str(tmp_path / "first"), "--preset", "textures", "--iterations", "2",
                    "--guide", str(guide), "--guide-size", "64", "--weights", "hed")
    assert first.returncode == 0, first.stderr
    made = tmp_path / "first_at_iteration_1.png"
    written = recipe_in(made)
    sent = np.asarray(Image.open(guide)).tobytes()  # RGBA, as the guide frame carries it
    assert written["guide"] == {"width": 50, "height": 40, "name": "guide.png", "sha256": recipe.source_digest(sent)}
    assert written["settings"]["guide_size"] == 64
    unguided = backend("dream", str(source), str(tmp_path / "x"), "--recipe", str(made))
    assert unguided.returncode == 1 and "guided by guide.png: give that image with --guide" in unguided.stderr
    again = backend("dream", str(source), str(tmp_path / "again"), "--recipe", str(made), "--guide", str(guide))
    assert again.returncode == 0, again.stderr
    assert "warning" not in again.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again_at_iteration_1.png")), np.asarray(Image.open(made)))


def png_with_text(path: Path, text: str | None) -> Path:
    info = PngImagePlugin.PngInfo()
    if text is not None:
        info.add_text(recipe.NAME, text)
    Image.fromarray(structured_image(8, 8)).save(path, pnginfo=info)
    return path


@pytest.mark.parametrize("text, extra, words", [
    (None, [], "carries no Deep Dream recipe (a 'deep-dream' text chunk)"),
    ("{not json", [], "the recipe is not JSON"),
    (json.dumps({"version": 1, "preset": "acid"}), [], '"iterations": an integer from 1 to 1000, not None'),
    ("GOOD", ["--seed", "4", "--max-size", "64"], "leave out --seed, --max-size"),
])
def test_a_png_without_a_usable_recipe_is_told_clearly(tmp_path, first_dream, text, extra, words):
    if text == "GOOD":
        text = json.dumps(recipe_in(first_dream[0] / "first_at_iteration_0.png"))
    carrier = png_with_text(tmp_path / "carrier.png", text)
    result = backend("dream", str(first_dream[1]), str(tmp_path / "x"), "--recipe", str(carrier), *extra)
    assert result.returncode == 1 and words in result.stderr, result.stderr
    assert str(carrier) in result.stderr or extra
    assert "Traceback" not in result.stderr and not list(tmp_path.glob("x_*"))


def test_a_recipe_file_that_is_not_an_image(tmp_path):
    source = png_with_text(tmp_path / "in.png", None)
    (tmp_path / "notes.txt").write_text("hello")
    result = backend("dream", str(source), str(tmp_path / "x"), "--recipe", str(tmp_path / "notes.txt"))
    assert result.returncode == 1 and "cannot read the recipe in" in result.stderr and "Traceback" not in result.stderr


def test_a_recipe_brings_its_weights_unless_told_otherwise(tmp_path, first_dream):
    """The recipe's weights are loaded (here a file that is gone: its clear error shows they were asked for);
    --weights beside --recipe wins, with a warning that the picture may differ."""
    made = recipe_in(first_dream[0] / "first_at_iteration_0.png")
    made["backend"]["weights"] = str(tmp_path / "gone.h5")
    carrier = png_with_text(tmp_path / "carrier.png", json.dumps(made))
    result = backend("dream", str(first_dream[1]), str(tmp_path / "x"), "--recipe", str(carrier))
    assert result.returncode == 1 and f"no weights file at {tmp_path / 'gone.h5'}" in result.stderr, result.stderr
    chosen = backend("dream", str(first_dream[1]), str(tmp_path / "x"), "--recipe", str(carrier), "--weights", "hed")
    assert chosen.returncode == 0, chosen.stderr
    assert f"warning: the recipe was dreamt with weights '{tmp_path / 'gone.h5'}', here 'hed'" in chosen.stderr
