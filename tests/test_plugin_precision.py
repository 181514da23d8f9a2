"""The plug-in's precision mapping (gimp_plugin/deep_dream/precision.py) and a 16-bit dream through its
session against the real backend; a scripted ROUTER (tests/test_plugin_logic.py) stands in for a backend that
answers in the wrong format, which the real one never does."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, structured_image
from tests.test_plugin_logic import ScriptedBackend, run_to_end
from wire import protocol
from wire.client import Client

sys.path.insert(0, str(ROOT / "gimp_plugin" / "deep_dream"))

import precision  # noqa: E402
import session  # noqa: E402

ALL = ["u8", "u16", "f32"]


@pytest.mark.parametrize("nick, offered, expected", [
    ("u8-non-linear", ALL, "u8"),
    ("u8-linear", ALL, "u8"),
    ("u16-non-linear", ALL, "u16"),
    ("u16-perceptual", ALL, "u16"),
    ("u32-linear", ALL, "f32"),
    ("half-linear", ALL, "f32"),
    ("float-non-linear", ALL, "f32"),
    ("double-linear", ALL, "f32"),
    ("u16-linear", None, "u8"),  # a backend older than the field: 8-bit, as before
    ("float-linear", ["u8", "u16"], "u8"),
    ("u16-linear", "u16 f32", "u8"),  # not a list: not understood
    ("something-new", ALL, "u8"),
])
def test_wire_format_follows_the_precision_and_the_backend(nick, offered, expected):
    assert precision.wire_format(nick, offered) == expected


def test_gegl_formats_are_srgb_encoded():
    assert precision.gegl_format(4, "u8") == "R'G'B'A u8" and precision.gegl_format(3, "u8") == "R'G'B' u8"
    assert precision.gegl_format(4, "u16") == "R'G'B'A u16" and precision.gegl_format(3, "f32") == "R'G'B' float"


def test_samples_are_little_endian_on_the_wire_whatever_the_machine():
    native_big = struct.pack(">Hf", 0x1234, 0.5)  # what GEGL hands over on a big-endian machine
    assert precision.swap_to_wire(native_big[:2], "u16", "big") == struct.pack("<H", 0x1234)
    assert precision.swap_to_wire(native_big[2:], "f32", "big") == struct.pack("<f", 0.5)
    assert precision.swap_to_wire(native_big, "u8", "big") == native_big  # bytes have no order
    assert precision.swap_to_wire(native_big[:2], "u16", "little") == native_big[:2]


def test_a_16_bit_dream_through_the_session(backend):
    rgba = (structured_image(32, 24, 4).astype(np.uint32) * 257 + 99).clip(0, 65535).astype("<u2")
    with backend.client() as client:
        job = session.DreamSession(client, "deep", 2, 1)
        job.submit(rgba.tobytes(), 32, 24, 4, "tiny", 1, 0, sample_format="u16")
        kept = run_to_end(job)
    assert job.state is session.State.DONE and [k.number for k in kept] == [1, 2]
    for layer in kept:
        assert (layer.sample_format, len(layer.pixels)) == ("u16", 32 * 24 * 4 * 2)
        result = np.frombuffer(layer.pixels, "<u2").reshape(24, 32, 4)
        np.testing.assert_array_equal(result[..., 3], rgba[..., 3])
        assert (result[..., :3] % 257 != 0).mean() > 0.9


def test_an_iteration_in_another_format_fails_clearly():
    wrong = ({"type": protocol.ITERATION, "iteration": 0, "loss": 1.0, "width": 4, "height": 3, "channels": 3,
              "format": "u8"}, bytes(4 * 3 * 3))
    scripted = ScriptedBackend({"dream": [({"type": protocol.ACCEPTED, "position": 0, "seed": 1}, None),
                                          ({"type": protocol.STARTED}, None), wrong]})
    try:
        with Client(scripted.endpoint) as client:
            job = session.DreamSession(client, "wrong", 1, 1)
            job.submit(bytes(4 * 3 * 3 * 2), 4, 3, 3, "tiny", 1, 0, sample_format="u16")
            kept = run_to_end(job, 10)
    finally:
        scripted.close()
    assert kept == [] and job.state is session.State.FAILED
    assert "4×3×3 u8 with 36 bytes, not the 4×3×3 u16 image asked for" in job.error


def test_the_precision_module_needs_no_numpy_nor_gimp():
    code = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path[:0] = sys.argv[1:]; import precision; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'tensorflow', 'gi', 'PIL')))",
         str(ROOT / "gimp_plugin" / "deep_dream"), str(ROOT)],
        capture_output=True, text=True, check=True)
    assert code.stdout.strip() == "[]"
