"""A real `serve` process over real ZeroMQ sockets: the whole exchange, the queue, cancel, bad input.

Every test runs twice: with pyzmq, and with wire/zmtp.py (the standard-library fallback) against the same
libzmq backend.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest

from backend.core.presets import BUILTIN_PRESETS
from tests.conftest import MAX_PIXELS, ROOT, BackendProcess, structured_image
from wire import protocol
from wire.client import BackendError, Client

TERMINAL = {protocol.DONE, protocol.CANCELLED, protocol.ERROR}
CHEAP = {"features": {"block2_conv1": 0.05}}

pytestmark = pytest.mark.usefixtures("transport")


def events_until_end(client: Client, job: Any, timeout: float = 120.0) -> list[tuple[dict, bytes | None]]:
    """Every message for `job` up to and including done/cancelled/error."""
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = client.receive(deadline - time.monotonic())
        if message is None:
            break
        if message[0].get("job") == job:
            events.append(message)
            if message[0]["type"] in TERMINAL:
                return events
    raise AssertionError(f"job {job!r} did not finish; got {[e[0]['type'] for e in events]}")


def wait_for(client: Client, job: Any, kind: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = client.receive(deadline - time.monotonic())
        if message and message[0].get("job") == job and message[0]["type"] == kind:
            return message[0]
        if message and message[0].get("job") == job and message[0]["type"] in TERMINAL:
            raise AssertionError(f"job {job!r} ended with {message[0]} while waiting for {kind}")
    raise AssertionError(f"no {kind!r} for job {job!r} within {timeout} s")


def dream(client: Client, job: Any, width: int = 48, height: int = 40, channels: int = 3, iterations: int = 2,
          **kwargs: Any) -> bytes:
    image = structured_image(width, height, channels).tobytes()
    kwargs.setdefault("params", CHEAP)
    client.dream(job, image, width, height, channels, kwargs.pop("preset", "doggos"), iterations, **kwargs)
    return image


def test_hello_and_presets(backend, transport):
    with backend.client() as client:
        assert client.transport == transport
        hello = client.hello()
        assert hello["protocol"] == 1 and hello["model"] == "vgg16" and hello["weights"] == "hed"
        assert hello["device"] == "CPU" and hello["max_pixels"] > 0 and hello["server"]
        assert hello["formats"] == ["u8", "u16", "f32"]
        presets = client.presets()
    assert presets["doggos"] == {"features": {"block5_conv1": 0.05, "block5_conv2": 0.02}, "continuity": 0.1,
                                 "dream_l2": 0.02, "jitter": 0.0, "octaves": 1, "octave_scale": 1.4,
                                 "max_step": 0.0, "guide_layers": [], "guide_size": 224,
                                 "description": BUILTIN_PRESETS["doggos"].description}
    assert presets["acid"]["features"] == {"block4_conv1": 0.05, "block4_conv2": 0.01, "block4_conv3": 0.01}
    assert presets["tiny"]["features"] == {"block2_conv1": 0.05}  # the user's presets file
    assert "description" not in presets["tiny"]  # it has none
    assert hello["speed"]["measured_by"] in ("start", "dream") and hello["speed"]["seconds_per_megapixel"] > 0


def test_the_whole_exchange(backend):
    with backend.client() as client:
        image = dream(client, "whole", iterations=3, preset="tiny", params=None)
        events = events_until_end(client, "whole")
    kinds = [header["type"] for header, _ in events]
    assert kinds[0] == "accepted" and events[0][0]["position"] == 0 and isinstance(events[0][0]["seed"], int)
    assert kinds[1] == "started" and kinds[-1] == "done"
    iterations = [(header, pixels) for header, pixels in events if header["type"] == "iteration"]
    assert [header["iteration"] for header, _ in iterations] == [0, 1, 2]
    progress = [header for header, _ in events if header["type"] == "progress"]
    assert progress[0]["iteration"] == 0 and progress[0]["evaluation"] == 1 and len(progress) >= 3 * 2
    for header, pixels in iterations:
        assert (header["width"], header["height"], header["channels"], header["format"]) == (48, 40, 3, "u8")
        assert len(pixels) == 48 * 40 * 3 and pixels != image
    assert iterations[0][1] != iterations[2][1]


def test_alpha_comes_back_unchanged(backend):
    with backend.client() as client:
        image = dream(client, "alpha", channels=4, iterations=1)
        (header, pixels), = [e for e in events_until_end(client, "alpha") if e[0]["type"] == "iteration"]
    assert header["channels"] == 4 and pixels[3::4] == image[3::4] and pixels != image


def test_same_seed_same_pixels(backend):
    with backend.client() as client:
        results = []
        for job in ("seed-a", "seed-b"):
            dream(client, job, preset="acid", seed=42, params={"features": {"block2_conv1": 0.05}})
            results.append([p for h, p in events_until_end(client, job) if h["type"] == "iteration"])
    assert results[0] == results[1]


def test_accepted_tells_the_settings_used_and_they_dream_the_same_again(backend):
    """`accepted` carries the preset's every field with the request's overrides applied, and the random seed
    drawn; sent back as params with that seed (under another preset's name), they give the same pixels."""
    overrides = {"jitter": 3, "octaves": 2, "octave_scale": 1.5}
    with backend.client() as client:
        dream(client, "first", preset="tiny", params=overrides, iterations=3)
        first = events_until_end(client, "first")
        accepted = first[0][0]
        dream(client, "again", preset="acid", params=accepted["settings"], seed=accepted["seed"], iterations=3)
        again = events_until_end(client, "again")
    assert accepted["settings"] == {"features": {"block2_conv1": 0.05}, "continuity": 0.1, "dream_l2": 0.02,
                                    "jitter": 3.0, "octaves": 2, "octave_scale": 1.5, "max_step": 0.0,
                                    "guide_layers": [], "guide_size": 224}
    assert again[0][0]["settings"] == accepted["settings"]
    pictures = [[pixels for header, pixels in events if header["type"] == "iteration"] for events in (first, again)]
    assert len(pictures[0]) == 3 and pictures[0] == pictures[1]


def test_max_size_lets_a_larger_image_dream_within_max_pixels(backend):
    with backend.client() as client:
        assert client.hello()["max_pixels"] == MAX_PIXELS
        dream(client, "big", width=240, height=180, iterations=1)  # 43,200 pixels
        refused = wait_for(client, "big", "error")
        assert refused["code"] == "too_large" and "set a maximum size" in refused["message"]
        dream(client, "big", width=240, height=180, iterations=1, max_size=160)  # dreamt at 160×120
        (header, pixels), = [e for e in events_until_end(client, "big") if e[0]["type"] == "iteration"]
    assert (header["width"], header["height"]) == (240, 180) and len(pixels) == 240 * 180 * 3


@pytest.mark.parametrize("sample_format, dtype, full_scale", [("u16", "<u2", 65535), ("f32", "<f4", 1.0)])
def test_deep_samples_come_back_at_their_format_off_the_8_bit_grid(backend, sample_format, dtype, full_scale):
    """A 16-bit or float RGBA image, its alpha off the 8-bit grid: results in the same format, colour not
    quantised to 8 bits, alpha exactly as sent; max_size scales without an 8-bit round trip too."""
    rgba = structured_image(48, 40, channels=4).astype(np.float64) / 255
    rgba[..., 3] = np.linspace(0.1, 0.9, 48 * 40).reshape(40, 48)
    samples = np.rint(rgba * 65535).astype(dtype) if sample_format == "u16" else rgba.astype(dtype)
    with backend.client() as client:
        client.dream(sample_format, samples.tobytes(), 48, 40, 4, "doggos", 1, params=CHEAP, max_size=40,
                     sample_format=sample_format)
        (header, pixels), = [e for e in events_until_end(client, sample_format) if e[0]["type"] == "iteration"]
    assert (header["width"], header["height"], header["channels"], header["format"]) == (48, 40, 4, sample_format)
    assert len(pixels) == protocol.frame_bytes(48, 40, 4, sample_format)
    result = np.frombuffer(pixels, dtype).reshape(40, 48, 4)
    np.testing.assert_array_equal(result[..., 3], samples[..., 3])
    levels = result[..., :3].astype(np.float64) * 255 / full_scale
    assert np.abs(levels - np.rint(levels)).mean() > 0.1, "the colour is on the 8-bit grid"
    assert np.abs(levels - rgba[..., :3] * 255).mean() > 0.5, "nothing was dreamt"


def test_float_colour_that_is_not_finite_is_refused(backend):
    rgb = np.full((16, 16, 3), 0.5, "<f4")
    rgb[2, 3, 0] = np.inf
    with backend.client() as client:
        client.dream("inf", rgb.tobytes(), 16, 16, 3, "doggos", 1, params=CHEAP, sample_format="f32")
        error = wait_for(client, "inf", "error")
        assert error["code"] == "bad_request" and "infinity" in error["message"]
        dream(client, "after-inf", width=16, height=16, iterations=1)
        assert events_until_end(client, "after-inf")[-1][0]["type"] == "done"


def test_max_size_returns_the_request_size(backend):
    with backend.client() as client:
        dream(client, "small", width=100, height=60, iterations=1, max_size=40)
        (header, pixels), = [e for e in events_until_end(client, "small") if e[0]["type"] == "iteration"]
    assert (header["width"], header["height"]) == (100, 60) and len(pixels) == 100 * 60 * 3


def test_a_one_pixel_image_dreams(backend):
    with backend.client() as client:
        image = dream(client, "pixel", width=1, height=1, channels=4, iterations=1, preset="doggos", params=None)
        (header, pixels), = [e for e in events_until_end(client, "pixel") if e[0]["type"] == "iteration"]
    assert (header["width"], header["height"]) == (1, 1) and len(pixels) == 4 and pixels[3] == image[3]


def test_queue_positions_and_cancel_with_two_clients(backend):
    with backend.client() as first, backend.client() as second, backend.client() as third:
        dream(first, "long", width=96, height=96, iterations=200)
        assert wait_for(first, "long", "accepted")["position"] == 0
        wait_for(first, "long", "progress")
        dream(second, "next", iterations=1)
        assert wait_for(second, "next", "accepted")["position"] == 1
        dream(third, "last", iterations=1)
        assert wait_for(third, "last", "accepted")["position"] == 2
        third.cancel("last")  # a queued job
        assert wait_for(third, "last", "cancelled")["job"] == "last"
        first.cancel("long")  # the running job
        assert wait_for(first, "long", "cancelled")["job"] == "long"
        assert wait_for(second, "next", "started")
        assert events_until_end(second, "next")[-1][0]["type"] == "done"


KILLED_CLIENT = """
import sys
sys.path.insert(0, {root!r})
from wire.client import Client
client = Client({endpoint!r})
assert client.transport == {transport!r}
client.dream("doomed", bytes(96 * 96 * 3), 96, 96, 3, "doggos", 200, params={{"features": {{"block2_conv1": 0.05}}}})
while True:
    header, _ = client.receive(60)
    if header["type"] == "progress":
        print("running", flush=True)
        break
sys.stdin.read()  # wait to be killed
"""


def test_a_killed_client_has_its_job_cancelled(backend, transport):
    script = KILLED_CLIENT.format(root=str(ROOT), endpoint=backend.endpoint, transport=transport)
    doomed = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert doomed.stdout.readline().strip() == "running"
        with backend.client() as client:
            dream(client, "after", iterations=1)
            assert wait_for(client, "after", "accepted")["position"] == 1
            doomed.kill()
            doomed.wait()
            killed_at = time.monotonic()
            wait_for(client, "after", "started", timeout=30)
            # The bound is one evaluation or 3 s, whichever is later; an evaluation here is ~50 ms.
            assert time.monotonic() - killed_at < 3.5
            assert events_until_end(client, "after")[-1][0]["type"] == "done"
    finally:
        doomed.kill()
    assert any("client of job 'doomed' is gone" in line for line in backend.output)


def error_for(client: Client, frames: list[bytes]) -> dict:
    client.send_frames(frames)
    message = client.receive(10)
    assert message is not None, f"no reply to {frames!r}"
    return message[0]


def header(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


GOOD = {"type": "dream", "job": "bad", "width": 4, "height": 3, "channels": 3, "preset": "doggos", "iterations": 1}
PIXELS = bytes(4 * 3 * 3)
GUIDED = {"guide_width": 4, "guide_height": 3, "guide_channels": 3}

BAD_INPUT = {
    "not json": ([b"{nope"], "malformed"),
    "not utf-8": ([b"\xff\xfe"], "malformed"),
    "empty frame": ([b""], "malformed"),
    "three frames": ([header(type="hello", protocol=1), b"x", b"y"], "malformed"),
    "json array": ([b"[1, 2]"], "malformed"),
    "no type": ([header(job=1)], "malformed"),
    "type not a string": ([header(type=3)], "malformed"),
    "unknown type": ([header(type="dance")], "unknown_type"),
    "other protocol": ([header(type="hello", protocol=2)], "protocol"),
    "missing width": ([header(**{k: v for k, v in GOOD.items() if k != "width"}), PIXELS], "bad_request"),
    "width a string": ([header(**GOOD | {"width": "4"}), PIXELS], "bad_request"),
    "width zero": ([header(**GOOD | {"width": 0}), b""], "bad_request"),
    "height negative": ([header(**GOOD | {"height": -3}), PIXELS], "bad_request"),
    "channels 2": ([header(**GOOD | {"channels": 2}), PIXELS], "bad_request"),
    "too few pixels": ([header(**GOOD), PIXELS[:-1]], "bad_request"),
    "too many pixels": ([header(**GOOD), PIXELS + b"x"], "bad_request"),
    "no pixel frame": ([header(**GOOD)], "malformed"),
    "unknown preset": ([header(**GOOD | {"preset": "nightmare"}), PIXELS], "unknown_preset"),
    "unknown layer": ([header(**GOOD | {"params": {"features": {"block9_conv9": 1}}}), PIXELS], "unknown_layer"),
    "NaN": ([b'{"type":"dream","job":"bad","width":4,"height":3,"channels":3,"preset":"doggos","iterations":1,'
             b'"params":{"continuity":NaN}}', PIXELS], "malformed"),
    "infinity": ([header(**GOOD | {"params": {"dream_l2": 1e999}}), PIXELS], "malformed"),
    "negative number": ([header(**GOOD | {"params": {"continuity": -1}}), PIXELS], "bad_request"),
    "unknown param": ([header(**GOOD | {"params": {"colour": 1}}), PIXELS], "bad_request"),
    "zero iterations": ([header(**GOOD | {"iterations": 0}), PIXELS], "bad_request"),
    "negative seed": ([header(**GOOD | {"seed": -1}), PIXELS], "bad_request"),
    "job a list": ([header(**GOOD | {"job": [1]}), PIXELS], "bad_request"),
    "over the request limit": ([header(**GOOD | {"width": 100_000, "height": 100_000}), PIXELS], "too_large"),
    "over max_pixels": ([header(**GOOD | {"width": 200, "height": 200}), PIXELS], "too_large"),
    "thin, over max_pixels once scaled up": ([header(**GOOD | {"width": 1, "height": 4000}), PIXELS], "too_large"),
    "channels a float": ([header(**GOOD | {"channels": 3.0}), PIXELS], "bad_request"),
    "negative coefficient": ([header(**GOOD | {"params": {"features": {"block1_conv1": -1}}}), PIXELS],
                             "bad_request"),
    "huge coefficient": ([header(**GOOD | {"params": {"features": {"block1_conv1": 1e30}}}), PIXELS],
                         "bad_request"),
    "huge jitter": ([header(**GOOD | {"params": {"jitter": 1e308}}), PIXELS], "bad_request"),
    "negative max_step": ([header(**GOOD | {"params": {"max_step": -1}}), PIXELS], "bad_request"),
    "max_step a string": ([header(**GOOD | {"params": {"max_step": "4"}}), PIXELS], "bad_request"),
    "zero octaves": ([header(**GOOD | {"params": {"octaves": 0}}), PIXELS], "bad_request"),
    "octaves a float": ([header(**GOOD | {"params": {"octaves": 2.0}}), PIXELS], "bad_request"),
    "octave scale 1": ([header(**GOOD | {"params": {"octaves": 3, "octave_scale": 1}}), PIXELS], "bad_request"),
    "protocol true": ([header(type="hello", protocol=True)], "protocol"),
    "cancel unknown job": ([header(type="cancel", job="nobody")], "unknown_job"),
    "over the iterations limit": ([header(**GOOD | {"iterations": protocol.MAX_ITERATIONS + 1}), PIXELS], "too_large"),
    "header over its limit": ([header(type="hello", protocol=1, pad="x" * protocol.MAX_HEADER_BYTES)], "too_large"),
    "nested too deep": ([b"[" * 50_000], "malformed"),
    "unknown format": ([header(**GOOD | {"format": "u32"}), PIXELS], "bad_request"),
    "format a number": ([header(**GOOD | {"format": 16}), PIXELS], "bad_request"),
    "format upper case": ([header(**GOOD | {"format": "U8"}), PIXELS], "bad_request"),
    "u16 with an 8-bit frame": ([header(**GOOD | {"format": "u16"}), PIXELS], "bad_request"),
    "f32 frame a byte short": ([header(**GOOD | {"format": "f32"}), bytes(4 * 3 * 3 * 4 - 1)], "bad_request"),
    "u8 with a 16-bit frame": ([header(**GOOD | {"format": "u8"}), PIXELS * 2], "bad_request"),
    "f32 over the request's bytes": ([header(**GOOD | {"format": "f32", "channels": 4, "width": 10_000,
                                                       "height": 10_000}), PIXELS], "too_large"),
    # A guide (third frame) is checked like the main frame.
    "guide frame without its fields": ([header(**GOOD), PIXELS, PIXELS], "bad_request"),
    "guide fields without a frame": ([header(**GOOD | GUIDED), PIXELS], "malformed"),
    "empty guide": ([header(**GOOD | GUIDED), PIXELS, b""], "bad_request"),
    "guide too short": ([header(**GOOD | GUIDED), PIXELS, PIXELS[:-1]], "bad_request"),
    "guide width zero": ([header(**GOOD | GUIDED | {"guide_width": 0}), PIXELS, b""], "bad_request"),
    "guide channels 2": ([header(**GOOD | GUIDED | {"guide_channels": 2}), PIXELS, PIXELS], "bad_request"),
    "guide over the request limit": ([header(**GOOD | GUIDED | {"guide_width": 100_000, "guide_height": 100_000}),
                                      PIXELS, PIXELS], "too_large"),
    "guide too thin for guide_size": ([header(**GOOD | GUIDED | {"guide_width": 36, "guide_height": 1}), PIXELS,
                                       bytes(36 * 3)], "bad_request"),
    "guide_size NaN": ([b'{"type":"dream","job":"bad","width":4,"height":3,"channels":3,"preset":"doggos",'
                        b'"iterations":1,"guide_width":4,"guide_height":3,"guide_channels":3,"params":{"guide_size":NaN}}',
                        PIXELS, PIXELS], "malformed"),
    "guide_size too small": ([header(**GOOD | GUIDED | {"params": {"guide_size": 8}}), PIXELS, PIXELS],
                             "bad_request"),
    "guide layer not a feature layer": ([header(**GOOD | GUIDED | {"params": {"guide_layers": ["block1_conv1"]}}),
                                         PIXELS, PIXELS], "bad_request"),
    "hello with a third frame": ([header(type="hello", protocol=1), b"", b""], "malformed"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_gets_an_error_and_the_server_keeps_serving(backend, case):
    frames, code = BAD_INPUT[case]
    with backend.client() as client:
        reply = error_for(client, frames)
        assert reply["type"] == "error" and reply["code"] == code, reply
        assert reply["message"]
        if "format" in case:  # says what would have been right
            assert "u8, u16, f32" in reply["message"] or "bytes" in reply["message"], reply["message"]
        if code == "unknown_layer":  # says what would have been right
            assert "block9_conv9" in reply["message"] and "block1_conv1" in reply["message"]
            assert "block5_conv3" in reply["message"]
        dream(client, "good-after", width=16, height=16, iterations=1)
        assert events_until_end(client, "good-after")[-1][0]["type"] == "done"


def test_a_duplicate_job_id_is_refused(backend):
    with backend.client() as client:
        dream(client, "twin", width=96, height=96, iterations=200)
        wait_for(client, "twin", "accepted")
        dream(client, "twin", iterations=1)
        reply = wait_for(client, "twin", "error")
        assert reply["code"] == "duplicate_job"
        client.cancel("twin")
        wait_for(client, "twin", "cancelled")


def test_client_reports_a_protocol_mismatch_clearly(backend):
    with backend.client() as client:
        with pytest.raises(BackendError) as raised:
            client.request({"type": "hello", "protocol": 99}, timeout=10)
    assert raised.value.code == "protocol" and "speaks protocol 1" in raised.value.message


def test_second_backend_on_the_same_endpoint_refuses_and_sigint_stops_cleanly(backend, tmp_path):
    second = subprocess.run(
        [sys.executable, "-m", "backend", "serve", "--bind", backend.endpoint, "--weights", "hed"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert second.returncode == 1 and f"cannot bind {backend.endpoint}" in second.stderr
    own = BackendProcess(tmp_path)
    with own.client() as client:
        assert client.hello()["protocol"] == 1
    own.process.send_signal(signal.SIGINT)  # Ctrl-C in a terminal; the fixture's stop() uses SIGTERM
    assert own.process.wait(timeout=30) == 0
    assert any("backend stopped" in line for line in own.output)


def test_a_presets_file_broken_while_serving_costs_only_its_own_presets(tmp_path):
    own = BackendProcess(tmp_path)
    try:
        (tmp_path / "presets.json").write_text('{"tiny": {"features": {"block2_conv1": "lots"}}}')
        with own.client() as client:
            client.send({"type": "presets"})
            reply, _ = client.receive(10)
            assert set(reply["presets"]) == set(BUILTIN_PRESETS) and str(tmp_path) in reply["warning"]
            dream(client, "mine", preset="tiny", params=None)
            error = wait_for(client, "mine", "error")
            assert error["code"] == "presets_file" and '"features.block2_conv1" must be a number' in error["message"]
            dream(client, "builtin", iterations=1)
            assert events_until_end(client, "builtin")[-1][0]["type"] == "done"
        assert own.stop() == 0  # SIGTERM: a clean exit
    finally:
        own.process.kill()


def test_a_guided_dream_over_the_wire(backend):
    """An RGBA guide of another size: the dream comes back at the request's size, and differs from the same
    dream (same seed) without a guide."""
    guide = structured_image(30, 50, channels=4, seed=7)
    results = {}
    with backend.client() as client:
        for name, given in (("guided", (guide.tobytes(), 30, 50, 4)), ("plain", None)):
            dream(client, name, seed=5, iterations=2, guide=given)
            events = events_until_end(client, name)
            assert events[-1][0]["type"] == "done", events[-1][0]
            results[name] = [pixels for header, pixels in events if header["type"] == "iteration"]
    assert len(results["guided"]) == 2 and len(results["guided"][-1]) == 48 * 40 * 3
    assert results["guided"][-1] != results["plain"][-1]
