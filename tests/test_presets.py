"""Presets: the seed's two, the user's file in their config folder, and clear errors for a broken one."""

from __future__ import annotations

import json

import pytest

from backend.core.presets import BUILTIN_PRESETS, PresetError, load_presets


def test_the_seeds_presets_exactly():
    acid, doggos = BUILTIN_PRESETS["acid"], BUILTIN_PRESETS["doggos"]
    assert acid.features == {"block4_conv1": 0.05, "block4_conv2": 0.01, "block4_conv3": 0.01}
    assert (acid.continuity, acid.dream_l2, acid.jitter) == (0.1, 0.8, 5)
    assert doggos.features == {"block5_conv1": 0.05, "block5_conv2": 0.02}
    assert (doggos.continuity, doggos.dream_l2, doggos.jitter) == (0.1, 0.02, 0)
    assert acid.octaves == doggos.octaves == 1  # one octave: exactly the seed's loop


def test_user_presets_come_from_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEP_DREAM_CONFIG_DIR", str(tmp_path))
    assert set(load_presets()) == {"acid", "doggos"}  # no file yet: fine
    (tmp_path / "presets.json").write_text(json.dumps({"eyes": {"features": {"block5_conv3": 0.1}, "jitter": 4}}))
    eyes = load_presets()["eyes"]
    assert eyes.features == {"block5_conv3": 0.1} and eyes.jitter == 4 and eyes.continuity == 0.1


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid UTF-8 JSON"),
    ('{"x": {"features": {"block1_conv1": NaN}}}', "NaN"),
    ("[1]", "JSON object"),
    ('{"x": {"features": {}}}', "non-empty"),
    ('{"x": {"features": {"block1_conv1": "big"}}}', "must be a number"),
    ('{"x": {"jitter": 1}}', "needs 'features'"),
    ('{"x": {"features": {"block6_conv1": 1}}}', "block6_conv1"),
    ('{"x": {"features": {"block1_conv1": 1}, "jitter": -1}}', '"jitter"'),
    ('{"x": {"features": {"block1_conv1": 1}, "colour": 1}}', "colour"),
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
    assert len(load_presets(path)) == 102
