"""`animate` over real ZeroMQ against a real `serve` process: frames streamed in order, seeds, cancel, limits.

Runs with pyzmq and with wire/zmtp.py, as tests/test_server.py does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.conftest import structured_image
from tests.test_server import events_until_end, wait_for
from wire import protocol
from wire.client import Client

CHEAP = {"features": {"block2_conv1": 0.05}}
WIDTH, HEIGHT = 48, 40

pytestmark = pytest.mark.usefixtures("transport")


def animate(client: Client, job: Any, frames: int = 3, iterations: int = 1, **kwargs: Any) -> None:
    kwargs.setdefault("params", CHEAP)
    kwargs.setdefault("zoom", 1.1)
    client.animate(job, structured_image(WIDTH, HEIGHT).tobytes(), WIDTH, HEIGHT, 3, kwargs.pop("preset", "acid"),
                   iterations, frames, **kwargs)


def frames_in(events: list[tuple[dict, bytes | None]]) -> list[tuple[dict, bytes]]:
    return [(header, pixels) for header, pixels in events if header["type"] == protocol.FRAME]


def test_frames_stream_in_order_with_progress_per_frame(backend):
    with backend.client() as client:
        animate(client, "anim", frames=3, iterations=2, rotate=5.0, pan=[1.5, -2])
        events = events_until_end(client, "anim")
    kinds = [header["type"] for header, _ in events]
    assert kinds[:2] == ["accepted", "started"] and kinds[-1] == "done" and "iteration" not in kinds
    frames = frames_in(events)
    assert [(h["frame"], h["frames"]) for h, _ in frames] == [(0, 3), (1, 3), (2, 3)]
    for header, pixels in frames:
        assert (header["width"], header["height"], header["channels"]) == (WIDTH, HEIGHT, 3)
        assert len(pixels) == WIDTH * HEIGHT * 3
    progress = [h for h, _ in events if h["type"] == "progress"]
    assert {(h["frame"], h["iteration"]) for h in progress} == {(f, i) for f in range(3) for i in range(2)}
    # each frame's progress comes before the frame itself
    order = [(h["type"], h.get("frame")) for h, _ in events if h["type"] in ("progress", "frame")]
    assert order.index(("frame", 0)) < order.index(("progress", 1)) and order[-1] == ("frame", 2)
    assert len({pixels for _, pixels in frames}) == 3


def test_same_seed_same_frames(backend):
    with backend.client() as client:
        runs = []
        for job in ("a", "b"):
            animate(client, job, seed=99, rotate=-3.0, blend=0.3)
            runs.append([pixels for _, pixels in frames_in(events_until_end(client, job))])
    assert runs[0] == runs[1] and len(runs[0]) == 3


def test_cancel_keeps_the_frames_already_sent(backend):
    with backend.client() as client:
        animate(client, "stopped", frames=40, iterations=2)
        first = wait_for(client, "stopped", protocol.FRAME)
        client.cancel("stopped")
        events = events_until_end(client, "stopped")
        assert events[-1][0]["type"] == protocol.CANCELLED
        assert first["frame"] == 0 and len(frames_in(events)) < 39
        animate(client, "after", frames=1)  # the backend goes on serving
        assert events_until_end(client, "after")[-1][0]["type"] == protocol.DONE


def test_rgba_frames_keep_the_alpha(backend):
    image = structured_image(WIDTH, HEIGHT, 4)
    with backend.client() as client:
        client.animate("alpha", image.tobytes(), WIDTH, HEIGHT, 4, "doggos", 1, 2, params=CHEAP, zoom=0.9)
        frames = frames_in(events_until_end(client, "alpha"))
    assert len(frames) == 2
    for _, pixels in frames:
        rgba = np.frombuffer(pixels, np.uint8).reshape(HEIGHT, WIDTH, 4)
        assert np.array_equal(rgba[..., 3], image[..., 3])


def header(**fields: Any) -> dict[str, Any]:
    return protocol.animate_request("bad", WIDTH, HEIGHT, 3, "doggos", 1, 2, params=CHEAP) | fields


BAD = {
    "no frames": ({"frames": None}, "bad_request"),
    "zero frames": ({"frames": 0}, "bad_request"),
    "too many frames": ({"frames": protocol.MAX_FRAMES + 1}, "too_large"),
    "frames × iterations": ({"frames": 200, "iterations": 51}, "too_large"),
    "zoom too far": ({"zoom": 2.5}, "bad_request"),
    "zoom too near zero": ({"zoom": 0.1}, "bad_request"),
    "zoom not a number": ({"zoom": "1.1"}, "bad_request"),
    "rotate over half a turn": ({"rotate": 181}, "bad_request"),
    "pan of one number": ({"pan": [3]}, "bad_request"),
    "pan too far": ({"pan": [0, -20000]}, "bad_request"),
    "centre outside": ({"centre": [WIDTH + 1, 0]}, "bad_request"),
    "blend over 1": ({"blend": 1.5}, "bad_request"),
    "unknown preset": ({"preset": "nightmare"}, "unknown_preset"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_animations_are_refused_clearly(backend, case):
    fields, code = BAD[case]
    with backend.client() as client:
        client.send(header(**fields), structured_image(WIDTH, HEIGHT).tobytes())
        reply = wait_for(client, "bad", protocol.ERROR)
        assert reply["code"] == code and reply["message"]
        assert client.hello()["protocol"] == protocol.PROTOCOL_VERSION


def test_frames_times_pixels_is_bounded(backend):
    """317² × 1000 frames is over MAX_ANIMATION_PIXELS; dreamt at max_size 100 it is within max_pixels."""
    side = 317
    with backend.client() as client:
        client.animate("huge", structured_image(side, side).tobytes(), side, side, 3, "doggos", 1,
                       protocol.MAX_FRAMES, max_size=100)
        reply = wait_for(client, "huge", protocol.ERROR)
        assert reply["code"] == "too_large" and "an animation may have at most 100,000,000" in reply["message"]
        client.animate("fits", structured_image(side, side).tobytes(), side, side, 3, "doggos", 1, 2, max_size=100,
                       params=CHEAP)
        frames = frames_in(events_until_end(client, "fits"))
    assert [h["frame"] for h, _ in frames] == [0, 1] and len(frames[0][1]) == side * side * 3
