"""The default preset — a newcomer's first dream in GIMP, the CLI's and install.py's — must be a dream
(issue 12, section 4): one default everywhere, and it passes the quality bar on a photo it was not tuned on."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

import install
from backend import cli, quality
from backend.core.presets import BUILTIN_PRESETS
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "gimp_plugin" / "deep_dream"))
import choices  # noqa: E402

PLUGIN_ITERATIONS = 10  # the dialog's default (deep_dream.py's "iterations" argument)
# Not among the tuned presets' photos (chelsea, coffee, starry_night): samples/SOURCES.md
UNSEEN_PHOTOS = ("astronaut.png", "rocket.jpg")
SMALL = 128  # longer side: seconds per dream, and the bar still holds there (README, Presets)


def cli_default(command: str, option: str) -> str:
    subcommands = next(action for action in cli.build_parser()._actions if action.dest == "command")
    return subcommands.choices[command].get_default(option)


def test_the_plugin_the_cli_and_install_py_dream_with_one_default():
    assert choices.DEFAULT_PRESET in BUILTIN_PRESETS
    assert cli_default("dream", "preset") == choices.DEFAULT_PRESET
    assert (install.FIRST_DREAM_PRESET, install.FIRST_DREAM_ITERATIONS) == (choices.DEFAULT_PRESET, PLUGIN_ITERATIONS)


def test_the_default_is_none_of_the_seeds_presets_which_blur_with_these_weights():
    assert choices.DEFAULT_PRESET not in ("acid", "doggos")


@pytest.mark.parametrize("photo", UNSEEN_PHOTOS)
def test_the_default_preset_dreams_a_photo_it_was_not_tuned_on(engine, photo):
    rgb = np.asarray(Image.open(ROOT / "samples" / photo).convert("RGB"))
    dream, numbers = quality.dream_and_measure(engine, rgb, choices.DEFAULT_PRESET, PLUGIN_ITERATIONS, seed=1,
                                               max_size=SMALL)
    assert max(dream.shape[:2]) == SMALL
    assert quality.passes(numbers), numbers
