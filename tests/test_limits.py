"""The backend's limits on a real process: each is a clear error (or, for libzmq's frame limit, a check the
client makes first), and the backend serves on. The bad-input table of test_server.py covers the
iterations and header limits; the fuzz run of test_fuzz.py fills the queue at random."""

from __future__ import annotations

import time

import pytest

from tests.conftest import BackendProcess
from tests.test_server import dream, events_until_end, wait_for
from wire import protocol
from wire.client import BackendError

MAX_MESSAGE_BYTES = 100_000
MAX_QUEUE = 2


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory):
    process = BackendProcess(tmp_path_factory.mktemp("limited"), "--max-queue", str(MAX_QUEUE),
                             "--max-message-bytes", str(MAX_MESSAGE_BYTES))
    yield process
    process.stop()


def test_hello_reports_the_limits(limited):
    with limited.client() as client:
        hello = client.hello()
    assert (hello["max_message_bytes"], hello["max_queue"]) == (MAX_MESSAGE_BYTES, MAX_QUEUE)
    assert hello["max_iterations"] == protocol.MAX_ITERATIONS


def test_an_oversize_frame_is_dropped_and_the_client_checks_before_sending(limited):
    width, height = 200, 200  # 120,000 bytes of RGB: over the frame limit, within max_pixels after max_size
    with limited.client() as client:
        client.send_frames(protocol.encode(protocol.dream_request("huge", width, height, 3, "tiny", 1, max_size=64),
                                           bytes(width * height * 3)))
        assert client.receive(3.0) is None  # libzmq disconnects the sender: no answer can come
        assert client.hello()["max_message_bytes"] == MAX_MESSAGE_BYTES  # reconnected, and told the limit
        with pytest.raises(BackendError) as caught:
            dream(client, "huge", width=width, height=height, iterations=1, max_size=64)
        assert caught.value.code == "too_large" and f"at most {MAX_MESSAGE_BYTES:,}" in caught.value.message
        dream(client, "fits", width=100, height=100, iterations=1, max_size=64)
        assert events_until_end(client, "fits")[-1][0]["type"] == "done"


def test_a_full_queue_is_a_clear_error(limited):
    with limited.client() as client:
        dream(client, "running", width=96, height=96, iterations=protocol.MAX_ITERATIONS)
        wait_for(client, "running", "started")
        for index in range(MAX_QUEUE):
            dream(client, f"waiting-{index}", iterations=1)
            assert wait_for(client, f"waiting-{index}", "accepted")["position"] == index + 1
        dream(client, "one-too-many", iterations=1)
        refused = wait_for(client, "one-too-many", "error")
        assert refused["code"] == "queue_full" and f"{MAX_QUEUE} dreams are waiting" in refused["message"]
        client.cancel("running")
        wait_for(client, "running", "cancelled")
        started = time.monotonic()
        for index in range(MAX_QUEUE):
            assert events_until_end(client, f"waiting-{index}")[-1][0]["type"] == "done"
        assert time.monotonic() - started < 60
        dream(client, "room-again", iterations=1)
        assert events_until_end(client, "room-again")[-1][0]["type"] == "done"


def test_a_description_over_the_limit_costs_the_files_presets_not_the_backend(limited, tmp_path):
    """The user's presets file is read afresh for each request: one with a too-long description is reported
    (the built-ins, with their descriptions, keep working) and the next good file loads again."""
    import json

    from backend.core.presets import BUILTIN_PRESETS, MAX_DESCRIPTION_CHARS
    from tests.conftest import USER_PRESETS

    path = limited.presets_file
    entry = {"features": {"block2_conv1": 0.05}}
    try:
        path.write_text(json.dumps({"tiny": entry | {"description": "w" * (MAX_DESCRIPTION_CHARS + 1)}}))
        with limited.client() as client:
            reply = client.request(protocol.presets_request(), 10)
            assert "over the 300" in reply["warning"] and set(reply["presets"]) == set(BUILTIN_PRESETS)
            assert reply["presets"]["eyes"]["description"] == BUILTIN_PRESETS["eyes"].description
            path.write_text(json.dumps({"tiny": entry | {"description": "w" * MAX_DESCRIPTION_CHARS}}))
            reply = client.request(protocol.presets_request(), 10)
            assert "warning" not in reply and reply["presets"]["tiny"]["description"] == "w" * MAX_DESCRIPTION_CHARS
            assert client.hello()["protocol"] == protocol.PROTOCOL_VERSION  # serving on
    finally:
        path.write_text(json.dumps(USER_PRESETS))
