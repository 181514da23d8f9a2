"""The command line, run as users run it: `python -m backend …` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import png
import pytest
from PIL import Image

from backend.core.presets import BUILTIN_PRESETS
from tests.conftest import ROOT, structured_image


def backend(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_dream_writes_every_iteration_keeping_alpha(tmp_path):
    source = tmp_path / "in.png"
    rgba = structured_image(40, 30, channels=4)
    Image.fromarray(rgba).save(source)
    result = backend("dream", str(source), str(tmp_path / "out" / "cat"), "--iterations", "2", "--weights", "hed",
                     "--seed", "3", "--preset", "doggos")
    assert result.returncode == 0, result.stderr
    outputs = [tmp_path / "out" / f"cat_at_iteration_{i}.png" for i in range(2)]
    images = [np.asarray(Image.open(path)) for path in outputs]
    for image in images:
        assert image.shape == (30, 40, 4)
        np.testing.assert_array_equal(image[..., 3], rgba[..., 3])
    assert not np.array_equal(images[0][..., :3], rgba[..., :3])
    assert "iteration 1/2" in result.stderr and "iteration 2/2" in result.stderr and "seed 3" in result.stderr
    assert not (tmp_path / "out" / "cat_at_iteration_2.png").exists()


def test_dream_reports_bad_input_clearly(tmp_path):
    missing = backend("dream", str(tmp_path / "nope.png"), str(tmp_path / "x"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    source = tmp_path / "in.png"
    Image.fromarray(structured_image(8, 8)).save(source)
    unknown = backend("dream", str(source), str(tmp_path / "x"), "--preset", "nightmare", "--weights", "hed")
    assert unknown.returncode == 1 and "unknown preset 'nightmare'" in unknown.stderr and "doggos" in unknown.stderr
    zero = backend("dream", str(source), str(tmp_path / "x"), "--iterations", "0")
    assert zero.returncode == 2 and "at least 1" in zero.stderr
    step = backend("dream", str(source), str(tmp_path / "x"), "--max-step", "300")
    assert step.returncode == 1 and '"max_step" must be a number from 0 to 255' in step.stderr
    assert not list(tmp_path.glob("x_at_iteration_*"))


def test_presets_prints_json_with_the_users_own(tmp_path):
    user = tmp_path / "presets.json"
    user.write_text(json.dumps({"mine": {"features": {"block3_conv1": 0.1}}}))
    result = backend("presets", "--presets", str(user))
    presets = json.loads(result.stdout)
    assert set(presets) == set(BUILTIN_PRESETS) | {"mine"}
    assert presets["mine"] == {"features": {"block3_conv1": 0.1}, "continuity": 0.1, "dream_l2": 0.02, "jitter": 0.0,
                               "octaves": 1, "octave_scale": 1.4, "max_step": 0.0, "guide_layers": [],
                               "guide_size": 224}
    user.write_text(json.dumps({"broken": {"features": {"block0_conv9": 1}}}))
    broken = backend("presets", "--presets", str(user))
    assert broken.returncode == 1 and "block0_conv9" in broken.stderr and str(user) in broken.stderr


def test_help_names_every_command():
    result = backend("--help")
    assert result.returncode == 0
    for command in ("serve", "dream", "presets", "bench"):
        assert command in result.stdout


def test_16_bit_grey_is_scaled_and_palette_transparency_kept(tmp_path):
    grey = np.tile(np.linspace(0, 65535, 40).astype(np.uint16), (30, 1))
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    palette = Image.fromarray(structured_image(40, 30)).quantize(16)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "palette.png", transparency=0)
    for name in ("grey16", "palette"):
        result = backend("dream", str(tmp_path / f"{name}.png"), str(tmp_path / name), "--iterations", "1",
                         "--weights", "hed", "--preset", "doggos")
        assert result.returncode == 0, result.stderr
    dreamt_grey = np.asarray(Image.open(tmp_path / "grey16_at_iteration_0.png").convert("L"), dtype=float)
    assert 90 < dreamt_grey.mean() < 165  # a 0..65535 ramp, scaled: mid-grey on average, not clipped white
    dreamt_palette = np.asarray(Image.open(tmp_path / "palette_at_iteration_0.png"))
    source_alpha = np.asarray(Image.open(tmp_path / "palette.png").convert("RGBA"))[..., 3]
    assert dreamt_palette.shape == (30, 40, 4) and (source_alpha == 0).any()
    np.testing.assert_array_equal(dreamt_palette[..., 3], source_alpha)


def write_png16(path, samples: np.ndarray, greyscale: bool, alpha: bool) -> None:
    """A 16-bit PNG written by pypng itself (not by the code under test)."""
    height, width = samples.shape[:2]
    with open(path, "wb") as file:
        png.Writer(width, height, greyscale=greyscale, alpha=alpha, bitdepth=16).write(
            file, samples.reshape(height, -1).tolist())


def read_png16(path) -> tuple[np.ndarray, dict]:
    width, height, rows, info = png.Reader(filename=str(path)).read()
    return np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(height, width, info["planes"]), info


@pytest.mark.parametrize("kind", ["rgba", "grey"])
def test_a_16_bit_png_dreams_into_16_bit_pngs_off_the_8_bit_grid(tmp_path, kind):
    """A smooth 16-bit gradient (RGBA with a 16-bit alpha ramp, or grey): the results are 16-bit PNGs whose
    colour is not on the 8-bit grid and whose alpha is the source's, sample for sample."""
    yy, xx = np.mgrid[0:30, 0:40]
    red, green = xx * 65535 // 39, yy * 65535 // 29
    if kind == "rgba":
        source = np.stack([red, green, (red + green) // 2, 1000 + xx * 1500 + yy * 7], axis=-1).astype(np.uint16)
    else:
        source = ((red + green) // 2)[..., None].astype(np.uint16)
    write_png16(tmp_path / "in.png", source, greyscale=kind == "grey", alpha=kind == "rgba")
    result = backend("dream", str(tmp_path / "in.png"), str(tmp_path / "deep"), "--iterations", "1", "--weights",
                     "hed", "--seed", "2", "--preset", "doggos")
    assert result.returncode == 0, result.stderr
    assert "16-bit" in result.stderr
    dreamt, info = read_png16(tmp_path / "deep_at_iteration_0.png")
    assert info["bitdepth"] == 16 and dreamt.shape == (30, 40, 4 if kind == "rgba" else 3)
    if kind == "rgba":
        np.testing.assert_array_equal(dreamt[..., 3], source[..., 3])
    colour = dreamt[..., :3]
    assert (colour % 257 != 0).mean() > 0.9, "the colour is on the 8-bit grid"
    levels = colour / 257.0
    assert np.abs(levels - source[..., :3].astype(float) / 257).mean() > 0.5, "nothing was dreamt"


def test_an_8_bit_png_still_gives_8_bit_pngs(tmp_path):
    Image.fromarray(structured_image(40, 30)).save(tmp_path / "in.png")
    result = backend("dream", str(tmp_path / "in.png"), str(tmp_path / "flat"), "--iterations", "1", "--weights",
                     "hed", "--seed", "2", "--preset", "doggos")
    assert result.returncode == 0, result.stderr
    _, info = read_png16(tmp_path / "flat_at_iteration_0.png")
    assert info["bitdepth"] == 8 and "16-bit" not in result.stderr


def test_a_broken_16_bit_png_is_reported(tmp_path):
    write_png16(tmp_path / "in.png", np.zeros((30, 40, 3), np.uint16), greyscale=False, alpha=False)
    data = (tmp_path / "in.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    result = backend("dream", str(tmp_path / "cut.png"), str(tmp_path / "x"), "--weights", "hed")
    assert result.returncode == 1 and "cannot read" in result.stderr
def test_a_guided_dream_and_bad_guides(tmp_path):
    source, guide, thin = tmp_path / "in.png", tmp_path / "guide.png", tmp_path / "thin.png"
    Image.fromarray(structured_image(112, 96)).save(source)  # block5 (doggos) has positions inside its border
    Image.fromarray(structured_image(70, 50, channels=4, seed=8)).save(guide)
    Image.fromarray(structured_image(300, 2)).save(thin)
    dreams, said = {}, {}
    for name, extra in (("guided", ["--guide", str(guide), "--guide-size", "64"]), ("plain", [])):
        result = backend("dream", str(source), str(tmp_path / name), "--iterations", "1", "--weights", "hed",
                         "--seed", "3", "--preset", "doggos", *extra)
        assert result.returncode == 0, result.stderr
        dreams[name], said[name] = np.asarray(Image.open(tmp_path / f"{name}_at_iteration_0.png")), result.stderr
    assert f"guided by {guide} at 64 px" in said["guided"] and "guided by" not in said["plain"]
    assert not np.array_equal(dreams["guided"], dreams["plain"])
    missing = backend("dream", str(source), str(tmp_path / "x"), "--guide", str(tmp_path / "nope.png"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "nope.png" in missing.stderr
    small = backend("dream", str(source), str(tmp_path / "x"), "--guide", str(guide), "--guide-size", "8")
    assert small.returncode == 1 and '"guide_size" must be an integer from 32 to 1024' in small.stderr
    elongated = backend("dream", str(source), str(tmp_path / "x"), "--guide", str(thin), "--weights", "hed")
    assert elongated.returncode == 1 and "300×2 guide" in elongated.stderr
    assert not list(tmp_path.glob("x_at_iteration_*"))
