"""Every precision through the engine: 16-bit and float samples are dreamt without an 8-bit round trip,
8-bit stays the seed's path, alpha keeps its precision. (The wire's side is in test_server.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from backend.core import imaging
from backend.engine import SAMPLES
from tests.conftest import structured_image
from wire import protocol

SIDE_W, SIDE_H = 40, 32
CHEAP = {"features": {"block2_conv1": 0.05}}


def run(engine, request: protocol.DreamRequest, pixels: bytes) -> list[bytes]:
    results: list[bytes] = []
    engine.run(request, pixels, 5, lambda *_: None, lambda index, loss, data: results.append(data), lambda: False)
    return results


def request(sample_format: str, channels: int = 4, iterations: int = 1) -> protocol.DreamRequest:
    return protocol.DreamRequest("p", SIDE_W, SIDE_H, channels, "doggos", iterations, CHEAP, seed=5,
                                 sample_format=sample_format)


def test_levels_round_trip_and_clip():
    u16 = np.array([0, 257, 32896, 65535, 1], np.uint16)
    levels = imaging.to_levels(u16, 65535.0)
    assert levels.dtype == np.float32 and levels[:4].tolist() == [0.0, 1.0, 128.0, 255.0]  # v·257 → v exactly
    np.testing.assert_array_equal(imaging.from_levels(levels, np.uint16, 65535.0), u16)
    floats = np.array([-0.5, 0.25, 1.5], np.float32)
    np.testing.assert_allclose(imaging.to_levels(floats, 1.0), [0.0, 63.75, 255.0])
    assert imaging.from_levels(np.array([300.0, -2.0, 127.5]), np.float32, 1.0).tolist() == [1.0, 0.0, 0.5]


def test_float_levels_resize_without_rounding():
    levels = np.linspace(0, 255, 20 * 10 * 3, dtype=np.float32).reshape(10, 20, 3) / 7
    resized = imaging.resize(levels, 40, 20)
    assert resized.dtype == np.float32 and resized.shape == (20, 40, 3)
    assert np.abs(resized - np.rint(resized)).max() > 0.1  # not on whole levels


def test_16_bit_dreams_as_8_bit_does_but_keeps_its_precision(engine):
    """The same picture as 8-bit and as 16-bit (v·257, exactly the same levels): the dream starts from the
    same image, so the 16-bit result must be the 8-bit one before its rounding — close to it, off its grid."""
    rgba8 = structured_image(SIDE_W, SIDE_H, channels=4)
    alpha16 = np.minimum(rgba8[..., 3].astype(np.uint32) * 257 + np.arange(SIDE_W), 65535).astype("<u2")  # off-grid
    rgba16 = np.dstack([rgba8[..., :3].astype(np.uint16) * 257, alpha16]).astype("<u2")
    eight = run(engine, request(protocol.U8, iterations=2), rgba8.tobytes())
    sixteen = run(engine, request(protocol.U16, iterations=2), rgba16.tobytes())
    assert len(eight) == len(sixteen) == 2
    for data8, data16 in zip(eight, sixteen, strict=True):
        assert len(data16) == protocol.frame_bytes(SIDE_W, SIDE_H, 4, protocol.U16)
        out8 = np.frombuffer(data8, np.uint8).reshape(SIDE_H, SIDE_W, 4)
        out16 = np.frombuffer(data16, "<u2").reshape(SIDE_H, SIDE_W, 4)
        np.testing.assert_array_equal(out16[..., 3], alpha16)  # alpha at its own precision, untouched
        as_levels = out16[..., :3] / 257.0
        assert np.abs(as_levels - out8[..., :3]).max() <= 0.5 + 1e-6  # out8 is the rounding of the same dream
        off_grid = (out16[..., :3] % 257 != 0).mean()
        assert off_grid > 0.9, f"only {off_grid:.0%} of the 16-bit samples are off the 8-bit grid"
        assert np.abs(as_levels - rgba8[..., :3]).mean() > 0.5  # and it dreamt


def test_float_keeps_its_precision_and_clips_colour_not_alpha(engine):
    rgb8 = structured_image(SIDE_W, SIDE_H)
    rgbf = (rgb8 / 255.0).astype("<f4")
    rgbf[0, 0] = [1.7, -0.3, 0.5]  # a float image may hold colour outside 0..1
    alpha = np.linspace(-0.25, 1.25, SIDE_W * SIDE_H, dtype="<f4").reshape(SIDE_H, SIDE_W)
    pixels = np.dstack([rgbf, alpha]).tobytes()
    out, = run(engine, request(protocol.F32), pixels)
    result = np.frombuffer(out, "<f4").reshape(SIDE_H, SIDE_W, 4)
    np.testing.assert_array_equal(result[..., 3], alpha)  # alpha as sent, out-of-range values included
    colour = result[..., :3]
    assert 0.0 <= colour.min() and colour.max() <= 1.0
    assert np.abs(colour * 255 - np.rint(colour * 255)).mean() > 0.1  # not on the 8-bit grid
    eight, = run(engine, request(protocol.U8, channels=3), rgb8.tobytes())
    close = np.abs(colour[1:, 1:] * 255 - np.frombuffer(eight, np.uint8).reshape(SIDE_H, SIDE_W, 3)[1:, 1:])
    assert close.mean() < 1.0  # the same dream as the 8-bit one, but for the clipped corner and float rounding


def test_float_colour_must_be_finite(engine):
    rgbf = np.full((SIDE_H, SIDE_W, 3), 0.5, "<f4")
    rgbf[3, 4, 1] = np.nan
    with pytest.raises(protocol.ProtocolError) as raised:
        run(engine, request(protocol.F32, channels=3), rgbf.tobytes())
    assert raised.value.code == protocol.E_BAD_REQUEST and "NaN" in raised.value.message


def test_the_engine_takes_every_wire_format(engine):
    assert set(SAMPLES) == set(protocol.SAMPLE_FORMATS) and engine.info()["formats"] == list(protocol.SAMPLE_FORMATS)
