"""Presets: the seed's two, the user's file in their config folder, and clear errors for a broken one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from backend.core.presets import BUILTIN_PRESETS, PresetError, check_layers
from backend.user_presets import load_presets
from tests.conftest import ROOT, structured_image
from wire import protocol


def test_the_seeds_presets_exactly():
    acid, doggos = BUILTIN_PRESETS["acid"], BUILTIN_PRESETS["doggos"]
    assert acid.features == {"block4_conv1": 0.05, "block4_conv2": 0.01, "block4_conv3": 0.01}
    assert (acid.continuity, acid.dream_l2, acid.jitter) == (0.1, 0.8, 5)
    assert doggos.features == {"block5_conv1": 0.05, "block5_conv2": 0.02}
    assert (doggos.continuity, doggos.dream_l2, doggos.jitter) == (0.1, 0.02, 0)
    assert acid.octaves == doggos.octaves == 1  # one octave and unbounded steps: exactly the seed's loop
    assert acid.max_step == doggos.max_step == 0


def test_user_presets_come_from_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEP_DREAM_CONFIG_DIR", str(tmp_path))
    assert set(load_presets()) == set(BUILTIN_PRESETS)  # no file yet: fine
    (tmp_path / "presets.json").write_text(json.dumps({"eyes": {"features": {"block5_conv3": 0.1}, "jitter": 4},
                                                       "calm": {"features": {"block3_conv1": 0.1}, "max_step": 2.5}}))
    presets = load_presets()
    eyes = presets["eyes"]
    assert eyes.features == {"block5_conv3": 0.1} and eyes.jitter == 4 and eyes.continuity == 0.1
    assert eyes.max_step == 0 and presets["calm"].max_step == 2.5


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid UTF-8 JSON"),
    ('{"x": {"features": {"block1_conv1": NaN}}}', "NaN"),
    ("[1]", "JSON object"),
    ('{"x": {"features": {}}}', "non-empty"),
    ('{"x": {"features": {"block1_conv1": "big"}}}', "must be a number"),
    ('{"x": {"jitter": 1}}', "needs 'features'"),
    ('{"x": {"features": {"block6_conv1": 1}}}', "block6_conv1"),
    ('{"x": {"features": {"block1_conv1": 1}, "jitter": -1}}', '"jitter"'),
    ('{"x": {"features": {"block1_conv1": 1}, "max_step": 256}}', '"max_step" must be a number from 0 to 255'),
    ('{"x": {"features": {"block1_conv1": 1}, "colour": 1}}', "colour"),
    ('{"x": {"features": {"block1_conv1": 1}, "description": 7}}', "'description' must be text, not int"),
    ('{"x": {"features": {"block1_conv1": 1}, "description": ["a"]}}', "'description' must be text, not list"),
    ('{"x": {"features": {"block1_conv1": 1}, "description": "%s"}}' % ("w" * 301), "301 characters, over the 300"),
])
def test_a_broken_presets_file_says_where(tmp_path, text, words):
    path = tmp_path / "presets.json"
    path.write_text(text)
    check_broken(path, words)


def test_a_presets_file_that_is_not_utf8_says_where(tmp_path):
    path = tmp_path / "presets.json"
    path.write_bytes('{"café": {"features": {"block3_conv1": 0.05}}}'.encode("latin-1"))
    check_broken(path, "UTF-8")


def check_broken(path, words):
    with pytest.raises(PresetError) as raised:
        load_presets(path)
    assert words in str(raised.value) and str(path) in str(raised.value)


def test_a_user_preset_may_say_what_it_does(tmp_path):
    from backend.core.presets import MAX_DESCRIPTION_CHARS

    path = tmp_path / "presets.json"
    longest = "é" * MAX_DESCRIPTION_CHARS  # characters, not bytes
    path.write_text(json.dumps({"calm": {"features": {"block3_conv1": 0.1}, "description": "Soft ripples."},
                                "long": {"features": {"block3_conv1": 0.1}, "description": longest},
                                "plain": {"features": {"block3_conv1": 0.1}}}))
    presets = load_presets(path)
    assert presets["calm"].description == "Soft ripples." and presets["long"].description == longest
    assert presets["calm"].listing() == presets["calm"].to_json() | {"description": "Soft ripples."}
    assert presets["plain"].description == "" and presets["plain"].listing() == presets["plain"].to_json()


@pytest.mark.parametrize("name", sorted(BUILTIN_PRESETS))
def test_every_builtin_says_what_it_does(name):
    from backend.core.presets import MAX_DESCRIPTION_CHARS

    preset = BUILTIN_PRESETS[name]
    assert 20 <= len(preset.description) <= MAX_DESCRIPTION_CHARS
    assert "description" not in preset.to_json()  # a description is not a setting a request may override
    assert preset.listing()["description"] == preset.description
    for jargon in ("VGG", "block", "layer", "loss", "jitter", "octave"):  # words for a painter
        assert jargon not in preset.description.lower()


def test_overrides_are_checked():
    with pytest.raises(PresetError, match="block1_conv9"):
        BUILTIN_PRESETS["doggos"].with_overrides({"features": {"block1_conv9": 1.0}})
    assert BUILTIN_PRESETS["acid"].with_overrides({"jitter": 0.0}).jitter == 0.0


def test_a_huge_presets_file_is_refused_unread(tmp_path):
    """A file over MAX_PRESETS_FILE_BYTES (read for every request) costs its presets, not the backend's memory."""
    from backend.core.presets import MAX_PRESETS_FILE_BYTES

    path = tmp_path / "presets.json"
    entry = '"p%d": {"features": {"block1_conv1": 0.05}}'
    path.write_text("{" + ", ".join(entry % i for i in range(MAX_PRESETS_FILE_BYTES // 40)) + "}")
    assert path.stat().st_size > MAX_PRESETS_FILE_BYTES
    check_broken(path, f"over the {MAX_PRESETS_FILE_BYTES:,} a presets file may have")
    path.write_text("{" + ", ".join(entry % i for i in range(100)) + "}")
    assert len(load_presets(path)) == 100 + len(BUILTIN_PRESETS)


SEEDS = {"acid", "doggos"}
TUNED = sorted(set(BUILTIN_PRESETS) - SEEDS)


def test_at_least_four_tuned_presets_from_different_depths():
    assert len(TUNED) >= 4
    deepest = {max(BUILTIN_PRESETS[name].features).split("_")[0] for name in TUNED}
    assert {"block3", "block4", "block5"} <= deepest


@pytest.mark.parametrize("name", sorted(BUILTIN_PRESETS))
def test_every_builtin_preset_is_a_valid_request(name):
    preset = BUILTIN_PRESETS[name]
    check_layers(preset.features)
    assert protocol.check_settings(preset.to_json()) == preset.to_json()  # within the wire's bounds
    assert all(coeff > 0 for coeff in preset.features.values())


def test_the_plugin_offers_every_builtin_without_a_backend():
    """GIMP registers the preset list at start-up, maybe before a backend runs: it must know them all."""
    from gimp_plugin.deep_dream import choices

    assert choices.BUILTIN_PRESETS == tuple(BUILTIN_PRESETS)
    # ... and explain them, and estimate their time, as the backend would (GIMP's Python can't import it)
    assert choices.BUILTIN_INFO == {name: choices.PresetInfo(preset.description, preset.octaves, preset.octave_scale)
                                    for name, preset in BUILTIN_PRESETS.items()}


@pytest.mark.parametrize("name", TUNED)
def test_tuned_presets_dream_in_octaves_with_bounded_steps(name):
    preset = BUILTIN_PRESETS[name]
    assert preset.octaves >= 2 and 1.2 <= preset.octave_scale <= 1.6
    assert preset.max_step > 0  # unbounded L-BFGS runs leap now and then (README, Presets)


def test_the_quality_script_runs_on_a_tiny_image(tmp_path):
    source, dreamt = tmp_path / "in.png", tmp_path / "dream.png"
    Image.fromarray(structured_image(96, 64)).save(source)
    script = [sys.executable, str(ROOT / "tools" / "quality.py"), "--weights", "hed", "--preset", TUNED[0],
              str(source)]
    result = subprocess.run([*script, "--iterations", "2", "--each", "--save", str(dreamt)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    *each, report = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["iteration"] for line in each] == [1, 2]
    assert {name: each[-1][name] for name in ("gain", "sharpness", "composition")} == {
        name: report[name] for name in ("gain", "sharpness", "composition")}  # the last iteration is the dream
    assert each[0] != each[1]
    assert report["size"] == [96, 64] and report["iterations"] == 2
    assert report["gain"] > 0 and report["sharpness"] > 0 and 0 < report["composition"] < 1  # it dreamt something
    assert TUNED[0] in result.stderr and "composition" in result.stderr
    both = subprocess.run([*script, "--dream", str(dreamt), "--each"], capture_output=True, text=True, timeout=300)
    assert both.returncode == 2 and "--each" in both.stderr
    again = subprocess.run([*script, "--dream", str(dreamt)], capture_output=True, text=True, timeout=300)
    measured = json.loads(again.stdout)  # the saved dream, measured afresh, gives the same numbers
    for name in ("gain", "sharpness", "composition"):
        assert measured[name] == pytest.approx(report[name], rel=1e-3)
