"""The GIMP plug-in's GIMP-free modules (gimp_plugin/deep_dream/), tested on the host with the repo's venv.

Real processes and sockets throughout: the real backend of tests/conftest.py for the dream session, real
commands for the launcher (Python one-liners that exit, never listen, or report how they were started),
a plain TCP socket that never answers. The one stand-in is a scripted ZeroMQ ROUTER, for backends that
misbehave in ways the real one can't be made to (another protocol version, a reply of the wrong size).
Tests marked with the `transport` fixture run with pyzmq and again with wire/zmtp.py, the standard-library
fallback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.conftest import ROOT, BackendProcess, free_endpoint, structured_image
from wire import protocol, user_folders
from wire.client import BackendError, Client, NotListening

sys.path.insert(0, str(ROOT / "gimp_plugin" / "deep_dream"))

import choices  # noqa: E402
import estimate  # noqa: E402
import launcher  # noqa: E402
import layers  # noqa: E402
import session  # noqa: E402

# ---- helpers ----------------------------------------------------------------------------------------


# A scripted reply: a message (its job id filled in) and its pixels, or raw frames sent as they are.
Reply = tuple[dict[str, Any], bytes | None] | list[bytes]
GARBAGE = [b"HTTP/1.1 400 Bad Request\r\n\r\n"]


class ScriptedBackend:
    """A ZeroMQ ROUTER that answers each request type with scripted replies."""

    def __init__(self, replies: dict[str, list[Reply]]) -> None:
        self.replies = replies
        self.received: list[str] = []
        self.endpoint = free_endpoint()
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._bound.wait(5)

    def _serve(self) -> None:
        router = zmq.Context.instance().socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.bind(self.endpoint)
        self._bound.set()
        try:
            while not self._stop.is_set():
                if not router.poll(50):
                    continue
                client, *frames = router.recv_multipart()
                header, _ = protocol.decode(frames)
                self.received.append(header["type"])
                for reply in self.replies.get(header["type"], []):
                    if not isinstance(reply, list):
                        reply = protocol.encode({**reply[0], "job": header.get("job")}, reply[1])
                    router.send_multipart([client, *reply])
        finally:
            router.close(linger=0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP port where the kernel accepts connections but nobody ever answers: not a Deep Dream backend."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"


def launch_file(tmp_path: Path, command: list[str], cwd: str | None = None) -> Path:
    path = tmp_path / "backend.json"
    path.write_text(json.dumps({"command": command, "cwd": cwd}))
    return path


def run_to_end(job: session.DreamSession, limit: float = 120.0) -> list[session.Kept]:
    kept: list[session.Kept] = []
    deadline = time.monotonic() + limit
    while not job.finished:
        assert time.monotonic() < deadline, f"the session did not finish; state {job.state}"
        kept += job.poll(0.1)
    return kept


def image(width: int = 48, height: int = 40, channels: int = 3) -> bytes:
    return structured_image(width, height, channels).tobytes()


# ---- layers: what is kept, names --------------------------------------------------------------------


@pytest.mark.parametrize("iterations, keep_every, kept", [
    (5, 2, [2, 4, 5]),
    (10, 1, list(range(1, 11))),
    (6, 3, [3, 6]),
    (3, 5, [3]),
    (1, 1, [1]),
])
def test_kept_iterations(iterations, keep_every, kept):
    assert [n for n in range(1, iterations + 1) if layers.is_kept(n, iterations, keep_every)] == kept


def test_keep_every_must_be_positive():
    with pytest.raises(ValueError):
        layers.is_kept(5, 5, 0)


def test_names():
    assert layers.group_name("doggos") == "Dream: doggos"
    assert layers.layer_name("doggos", 3) == "doggos 3"


def test_names_fit_a_layers_dock():
    """A Layers dock of the default width shows about 16 characters of a name before it cuts it."""
    for preset in choices.BUILTIN_PRESETS:
        assert len(layers.group_name(preset)) <= 16, layers.group_name(preset)
        assert len(layers.layer_name(preset, 200)) <= 16, layers.layer_name(preset, 200)


# ---- choices: the presets offered at registration ------------------------------------------------


@pytest.mark.parametrize("variables, expected", [
    ({"DEEP_DREAM_CONFIG_DIR": "/somewhere/else"}, "/somewhere/else/presets.json"),
    ({"DEEP_DREAM_CONFIG_DIR": None, "XDG_CONFIG_HOME": "/xdg/config"}, "/xdg/config/deep-dream-gimp/presets.json"),
    ({"DEEP_DREAM_CONFIG_DIR": None, "XDG_CONFIG_HOME": None, "HOME": "/home/someone"},
     "/home/someone/.config/deep-dream-gimp/presets.json"),
])
def test_the_user_presets_file_per_environment(monkeypatch, variables, expected):
    for name, value in variables.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert user_folders.presets_file() == Path(expected)


def test_the_plugin_offers_the_presets_the_backend_loads(monkeypatch, tmp_path):
    from backend.user_presets import load_presets

    monkeypatch.setenv("DEEP_DREAM_CONFIG_DIR", str(tmp_path))
    (tmp_path / "presets.json").write_text('{"mine": {"features": {"block3_conv1": 0.1}}}')
    assert "mine" in load_presets()
    assert "mine" in list(choices.presets("tcp://127.0.0.1:9"))  # nothing listens there: the file alone


@pytest.mark.usefixtures("transport")
def test_presets_of_a_running_backend(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEP_DREAM_CONFIG_DIR", str(tmp_path))  # no user file
    from backend.core.presets import BUILTIN_PRESETS

    found = choices.backend_presets(backend.endpoint)
    assert list(found) == [*choices.BUILTIN_PRESETS, "tiny"]
    assert list(choices.presets(backend.endpoint)) == [*choices.BUILTIN_PRESETS, "tiny"]
    # what each does and its octaves come from the backend: what the dialog shows and estimates with
    for name, preset in BUILTIN_PRESETS.items():
        assert found[name] == choices.PresetInfo(preset.description, preset.octaves, preset.octave_scale)
    assert found["tiny"] == choices.PresetInfo()  # the test's user preset has no description, one octave


def test_a_user_presets_description_reaches_the_dialog(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEP_DREAM_CONFIG_DIR", str(tmp_path))
    (tmp_path / "presets.json").write_text(json.dumps({
        "calm": {"features": {"block3_conv1": 0.1}, "description": "Soft ripples.", "octaves": 3,
                 "octave_scale": 1.5},
        "odd": {"features": {"block3_conv1": 0.1}, "description": 7, "octaves": 99, "octave_scale": "big"},
        "eyes": {"features": {"block3_conv1": 0.1}, "description": "My own eyes."}}))
    found = choices.presets(free_endpoint())  # no backend: the file and the built-in texts
    assert found["calm"] == choices.PresetInfo("Soft ripples.", 3, 1.5)
    assert found["odd"] == choices.PresetInfo()  # malformed: the backend reports it; the dialog shows nothing
    assert found["eyes"].description == "My own eyes."  # the user redefined a built-in: theirs is explained
    assert found["dreamy"] == choices.BUILTIN_INFO["dreamy"]


def test_presets_of_the_user_file_without_a_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEP_DREAM_CONFIG_DIR", str(tmp_path))
    (tmp_path / "presets.json").write_text(json.dumps({"zebra": {}, "mine": {}, "acid": {}}))
    assert list(choices.presets(free_endpoint())) == [*choices.BUILTIN_PRESETS, "mine", "zebra"]


def test_without_file_or_backend_the_builtins_in_a_second(tmp_path, monkeypatch, silent_endpoint):
    monkeypatch.setenv("DEEP_DREAM_CONFIG_DIR", str(tmp_path))
    (tmp_path / "presets.json").write_text("{not json")
    started = time.monotonic()
    assert list(choices.presets(silent_endpoint)) == list(choices.BUILTIN_PRESETS)
    assert time.monotonic() - started < choices.FETCH_TIMEOUT_S + 0.5
    assert list(choices.presets("not an endpoint")) == list(choices.BUILTIN_PRESETS)


def test_default_endpoint(monkeypatch):
    monkeypatch.delenv(choices.ENDPOINT_VARIABLE, raising=False)
    assert choices.default_endpoint() == "tcp://127.0.0.1:5570"
    monkeypatch.setenv(choices.ENDPOINT_VARIABLE, "tcp://127.0.0.1:6000")
    assert choices.default_endpoint() == "tcp://127.0.0.1:6000"


def test_launch_file_problems_say_what_to_do(tmp_path):
    with pytest.raises(launcher.LaunchError, match="missing.*install.py"):
        launcher.read_launch_file(tmp_path / "backend.json")
    (tmp_path / "backend.json").write_text("{oops")
    with pytest.raises(launcher.LaunchError, match="unreadable.*install.py"):
        launcher.read_launch_file(tmp_path / "backend.json")
    (tmp_path / "backend.json").write_text(json.dumps({"cwd": "/"}))
    with pytest.raises(launcher.LaunchError, match='no "command"'):
        launcher.read_launch_file(tmp_path / "backend.json")
    command = launcher.read_launch_file(launch_file(tmp_path, ["python", "-m", "backend"], "/srv"))
    assert command == launcher.LaunchCommand(["python", "-m", "backend"], "/srv")


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert launcher.log_file() == tmp_path / "deep-dream-gimp" / "backend.log"


@pytest.mark.parametrize("endpoint, local", [
    ("tcp://127.0.0.1:5570", True), ("tcp://localhost:5570", True), ("tcp://[::1]:5570", True),
    ("tcp://192.0.2.1:5570", False), ("tcp://example.org:5570", False), ("ipc:///tmp/dream", False),
    ("tcp://0.0.0.0:5570", False), ("tcp://*:5570", False),  # the backend refuses to bind those without keys
])
def test_only_local_endpoints_are_started(endpoint, local):
    assert launcher.is_local(endpoint) is local


@pytest.mark.usefixtures("transport")
def test_a_running_backend_is_used_as_it_is(backend, tmp_path):
    statuses: list[str] = []
    with Client(backend.endpoint) as client:
        found = launcher.connect(client, launch_file(tmp_path, ["/nonexistent/python"]), statuses.append)
    assert found.started is None and found.hello["protocol"] == 1 and statuses == []


def test_a_backend_of_another_protocol_is_not_replaced(tmp_path):
    other = ScriptedBackend({"hello": [({"type": "hello", "protocol": 2}, None)]})
    try:
        with Client(other.endpoint) as client, pytest.raises(BackendError) as caught:
            launcher.connect(client, launch_file(tmp_path, ["/nonexistent/python"]))
    finally:
        other.close()
    assert caught.value.code == "protocol" and "speaks protocol 2" in caught.value.message


@pytest.mark.usefixtures("transport")
def test_something_else_on_the_port_is_not_replaced(tmp_path, silent_endpoint):
    with Client(silent_endpoint) as client, pytest.raises(BackendError) as caught:
        launcher.connect(client, launch_file(tmp_path, ["/nonexistent/python"]))
    assert caught.value.code == "not_backend"


@pytest.mark.usefixtures("transport")
def test_garbage_at_the_endpoint_is_not_replaced(tmp_path):
    """A peer that answers, but not in JSON: a clear BackendError, not the decoder's ProtocolError."""
    other = ScriptedBackend({"hello": [GARBAGE]})
    try:
        with Client(other.endpoint) as client, pytest.raises(BackendError) as caught:
            launcher.connect(client, launch_file(tmp_path, ["/nonexistent/python"]))
    finally:
        other.close()
    assert caught.value.code == "not_backend" and other.received == ["hello"]
    assert caught.value.message.startswith(
        f"something at {other.endpoint} answered, but not in the Deep Dream protocol: frame 1 is not UTF-8 JSON")
    assert caught.value.message.endswith("; stop it or choose another endpoint")


# A backend that binds its port, loads for argv[1] seconds, then answers hello (argv[2] == "answer") or exits.
# It also exits after 30 s without a request, so a failing test leaves no process behind.
SLOW_BACKEND = """
import sys, time, zmq
from wire import protocol
router = zmq.Context().socket(zmq.ROUTER)
router.bind(sys.argv[sys.argv.index("--bind") + 1])
time.sleep(float(sys.argv[1]))
while sys.argv[2] == "answer" and router.poll(30_000):
    client, *frames = router.recv_multipart()
    if protocol.decode(frames)[0]["type"] == protocol.HELLO:
        router.send_multipart([client, *protocol.encode({"type": "hello", "protocol": protocol.PROTOCOL_VERSION})])
"""


def test_a_started_backend_may_load_before_it_answers(tmp_path):
    """Our own backend listening but silent for longer than HELLO_TIMEOUT_S is awaited, not called a stranger."""
    loading = 7.0
    assert loading > launcher.HELLO_TIMEOUT_S + 1
    command = [sys.executable, "-c", SLOW_BACKEND, str(loading), "answer"]
    started = time.monotonic()
    with Client(free_endpoint()) as client:
        found = launcher.connect(client, launch_file(tmp_path, command, str(ROOT)), timeout=30.0,
                                 log=tmp_path / "log")
    try:
        assert found.started is not None and found.started.poll() is None
        assert found.hello["protocol"] == protocol.PROTOCOL_VERSION
        assert loading <= time.monotonic() - started < loading + 5
    finally:
        if found.started:
            found.started.terminate()
            found.started.wait(30)


def test_a_started_backend_silent_past_the_deadline(tmp_path):
    command = [sys.executable, "-c", SLOW_BACKEND, "4", "exit"]  # exits on its own after the test
    started = time.monotonic()
    with Client(free_endpoint()) as client, pytest.raises(BackendError) as caught:
        launcher.connect(client, launch_file(tmp_path, command, str(ROOT)), timeout=2.0, log=tmp_path / "log")
    assert caught.value.code == "not_backend" and "did not answer before the start-up deadline" in str(caught.value)
    assert time.monotonic() - started < 3.5


def test_a_remote_endpoint_is_not_started(tmp_path):
    with Client("tcp://192.0.2.1:5570") as client, pytest.raises(NotListening):
        launcher.connect(client, launch_file(tmp_path, ["/nonexistent/python"]))


def test_a_command_that_exits_early(tmp_path):
    endpoint, log = free_endpoint(), tmp_path / "logs" / "backend.log"
    crash = [sys.executable, "-c", "import sys; print('no VGG16 today', file=sys.stderr); sys.exit(3)"]
    statuses: list[str] = []
    with Client(endpoint) as client, pytest.raises(launcher.LaunchError) as caught:
        launcher.connect(client, launch_file(tmp_path, crash), statuses.append, log=log)
    message = str(caught.value)
    assert "exited during start-up (exit status 3)" in message and str(log) in message
    assert "no VGG16 today" in message and "no VGG16 today" in log.read_text()
    assert f"--bind {endpoint}" in log.read_text()
    assert statuses == [launcher.START_MESSAGE]


def test_a_missing_command_or_folder(tmp_path):
    with Client(free_endpoint()) as client:
        with pytest.raises(launcher.LaunchError, match="cannot start the Deep Dream backend with /nonexistent/py"):
            launcher.connect(client, launch_file(tmp_path, ["/nonexistent/python"]), log=tmp_path / "log")
        with pytest.raises(launcher.LaunchError, match="folder /nonexistent/repo does not exist"):
            launcher.connect(client, launch_file(tmp_path, [sys.executable], "/nonexistent/repo"),
                             log=tmp_path / "log")


def test_a_backend_that_never_listens_times_out(tmp_path):
    sleeper = [sys.executable, "-c", "import time; time.sleep(3)"]
    started = time.monotonic()
    with Client(free_endpoint()) as client, pytest.raises(launcher.LaunchError, match="did not answer within 1 s"):
        launcher.connect(client, launch_file(tmp_path, sleeper), timeout=1.0, log=tmp_path / "log")
    assert time.monotonic() - started < 2.5


def test_stop_while_starting(tmp_path):
    sleeper = [sys.executable, "-c", "import time; time.sleep(3)"]
    with Client(free_endpoint()) as client, pytest.raises(launcher.Stopped):
        launcher.connect(client, launch_file(tmp_path, sleeper), pause=lambda seconds: False, log=tmp_path / "log")


def test_the_backend_is_started_detached(tmp_path):
    """Its own session (GIMP's kill of the plug-in doesn't reach it), no stdin, output in the log."""
    report = ("import os, sys; print('session', os.getsid(0), 'pid', os.getpid(), 'stdin', repr(sys.stdin.read()),"
              " 'args', sys.argv[1:])")
    log = tmp_path / "log"
    process = launcher.start_backend(launcher.LaunchCommand([sys.executable, "-c", report], str(tmp_path)),
                                     "tcp://127.0.0.1:5999", log)
    assert process.wait(30) == 0
    words = log.read_text().split()
    assert words[words.index("session") + 1] == words[words.index("pid") + 1] != str(os.getsid(0))
    assert "stdin ''" in log.read_text()
    assert f"['--bind', 'tcp://127.0.0.1:5999', '--idle-timeout', '1800', '--log-file', '{log}']" in log.read_text()


@pytest.mark.usefixtures("transport")
def test_a_real_backend_is_started(tmp_path):
    """The real thing: backend.json as install.py writes it (hed weights: no network here)."""
    command = [sys.executable, "-m", "backend", "serve", "--weights", "hed"]
    statuses: list[str] = []
    with Client(free_endpoint()) as client:
        found = launcher.connect(client, launch_file(tmp_path, command, str(ROOT)), statuses.append,
                                 log=tmp_path / "log")
    try:
        assert found.started is not None and found.hello["weights"] == "hed"
        assert statuses == [launcher.START_MESSAGE]
    finally:
        if found.started:
            found.started.terminate()
            found.started.wait(30)


# ---- session: one dream against the real backend ---------------------------------------------------


@pytest.mark.usefixtures("transport")
def test_a_whole_dream_keeps_every_kth(backend):
    with backend.client() as client:
        job = session.DreamSession(client, "whole", 5, 2)
        job.submit(image(), 48, 40, 3, "tiny", 7, 0)
        assert job.progress.status == "Sending the image to the backend…"
        seen: list[session.Progress] = []
        kept: list[session.Kept] = []
        while not job.finished:
            kept += job.poll(0.1)
            seen.append(job.progress)
    assert job.state is session.State.DONE and job.error is None
    assert [k.number for k in kept] == [2, 4, 5]
    assert all((k.width, k.height, k.channels, len(k.pixels)) == (48, 40, 3, 48 * 40 * 3) for k in kept)
    assert kept[0].pixels != kept[1].pixels != kept[2].pixels
    assert "Dreaming…" in {p.status for p in seen}
    assert any(p.seconds_left is not None for p in seen)
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert (job.progress.iteration, job.progress.status) == (5, "Done")


def test_octave_settings_reach_the_backend_and_every_iteration_comes_back_full_size(backend):
    assert choices.octave_params(0, 0.0) == {}  # the preset's own
    with pytest.raises(ValueError, match="over 1"):
        choices.octave_params(3, 0.9)
    params = choices.octave_params(2, 1.5)
    assert params == {"octaves": 2, "octave_scale": 1.5}
    with backend.client() as client:
        job = session.DreamSession(client, "octaves", 3, 1)
        job.submit(image(), 48, 40, 3, "tiny", 1, 0, params)
        kept: list[session.Kept] = []
        while not job.finished:
            kept += job.poll(0.1)
        assert job.state is session.State.DONE
        assert [(k.width, k.height, len(k.pixels)) for k in kept] == [(48, 40, 48 * 40 * 3)] * 3
        refused = session.DreamSession(client, "bad-scale", 1, 1)
        refused.submit(image(), 48, 40, 3, "tiny", 1, 0, {"octaves": 2, "octave_scale": 9.0})
        while not refused.finished:
            refused.poll(0.1)
    assert refused.state is session.State.FAILED and "octave_scale" in refused.error


def test_alpha_comes_back_as_sent(backend):
    rgba = structured_image(32, 24, 4)
    with backend.client() as client:
        job = session.DreamSession(client, "alpha", 1, 1)
        job.submit(rgba.tobytes(), 32, 24, 4, "tiny", 1, 0)
        (kept,) = run_to_end(job)
    assert kept.channels == 4 and kept.pixels[3::4] == rgba[..., 3].tobytes()


@pytest.mark.usefixtures("transport")
def test_stop_mid_dream(backend):
    with backend.client() as client:
        job = session.DreamSession(client, "stopped", 100, 1)
        job.submit(image(), 48, 40, 3, "tiny", 1, 0)
        kept = []
        while not kept:
            kept += job.poll(0.1)
        job.stop()
        assert job.progress.status == "Stopping…"
        kept += run_to_end(job, 30)
    assert job.state is session.State.CANCELLED and job.error is None
    assert len(kept) == 1 and job.iteration < 100


def test_an_error_from_the_backend(backend):
    with backend.client() as client:
        job = session.DreamSession(client, "bad", 2, 1)
        job.submit(image(), 48, 40, 3, "nope", None, 0)
        assert run_to_end(job) == []
    assert job.state is session.State.FAILED and "unknown preset 'nope'" in job.error


def test_queued_behind_another_dream(backend):
    with backend.client() as first, backend.client() as second:
        ahead = session.DreamSession(first, "ahead", 50, 50)
        ahead.submit(image(), 48, 40, 3, "tiny", 1, 0)
        while ahead.state is not session.State.RUNNING:
            ahead.poll(0.1)
        behind = session.DreamSession(second, "behind", 1, 1)
        behind.submit(image(), 48, 40, 3, "tiny", 1, 0)
        while behind.state is session.State.SUBMITTED:
            behind.poll(0.1)
        assert (behind.state, behind.position) == (session.State.QUEUED, 1)
        assert behind.progress.status == "Waiting for 1 other dream to finish…"
        ahead.stop()
        run_to_end(ahead, 30)
        assert [k.number for k in run_to_end(behind)] == [1]
    assert behind.state is session.State.DONE


@pytest.mark.usefixtures("transport")
def test_a_backend_killed_mid_dream(tmp_path):
    doomed = BackendProcess(tmp_path)
    try:
        with doomed.client() as client:
            job = session.DreamSession(client, "doomed", 200, 1, liveness_interval=1.0)
            job.submit(image(), 48, 40, 3, "tiny", 1, 0)
            kept = []
            while not kept:
                kept += job.poll(0.1)
            doomed.process.kill()
            killed = time.monotonic()
            kept += run_to_end(job, 30)
    finally:
        doomed.process.kill()
        doomed.process.wait(30)
    assert job.state is session.State.FAILED and job.error == session.BACKEND_STOPPED
    assert time.monotonic() - killed < 5 and 1 <= len(kept) < 200


def test_a_backend_that_never_accepts():
    mute = ScriptedBackend({})
    try:
        with Client(mute.endpoint) as client:
            job = session.DreamSession(client, "mute", 2, 1, accept_timeout=1.0)
            job.submit(image(), 48, 40, 3, "tiny", None, 0)
            run_to_end(job, 10)
    finally:
        mute.close()
    assert job.state is session.State.FAILED and job.error == "the backend did not accept the dream within 1 s"
    assert mute.received == ["dream"]


def test_a_reply_of_the_wrong_size_fails_the_dream():
    iteration = {"type": "iteration", "iteration": 0, "loss": 1.0, "width": 8, "height": 8, "channels": 3}
    liar = ScriptedBackend({"dream": [({"type": "accepted", "position": 0, "seed": 1}, None),
                                      ({"type": "started"}, None), (iteration, bytes(8 * 8 * 3))]})
    try:
        with Client(liar.endpoint) as client:
            job = session.DreamSession(client, "liar", 2, 1)
            job.submit(image(), 48, 40, 3, "tiny", None, 0)
            assert run_to_end(job, 10) == []
    finally:
        liar.close()
    assert job.state is session.State.FAILED
    assert job.error.startswith("the backend sent iteration 1 as 8×8×3") and "48×40×3" in job.error


def test_a_cancel_we_did_not_ask_for_is_a_failure():
    rogue = ScriptedBackend({"dream": [({"type": "accepted", "position": 0, "seed": 1}, None),
                                       ({"type": "cancelled"}, None)]})
    try:
        with Client(rogue.endpoint) as client:
            job = session.DreamSession(client, "rogue", 2, 1)
            job.submit(image(), 48, 40, 3, "tiny", None, 0)
            run_to_end(job, 10)
    finally:
        rogue.close()
    assert job.state is session.State.FAILED and "cancelled the dream" in job.error


ACCEPTED_AND_STARTED: list[Reply] = [({"type": "accepted", "position": 0, "seed": 1}, None),
                                     ({"type": "started"}, None)]


@pytest.mark.parametrize("bad, why", [
    (GARBAGE, "frame 1 is not UTF-8 JSON"),
    ([b"{}"], 'the JSON object needs a string "type"'),
    (({"type": "progress", "iteration": "two", "evaluation": 1, "loss": 1.0}, None),
     "'progress' has iteration='two', not a number"),
    (({"type": "progress", "iteration": 1, "evaluation": 1, "loss": "low"}, None),
     "'progress' has loss='low', not a number"),
])
def test_a_message_outside_the_protocol_mid_dream(bad, why):
    """It ends the dream with a message; the iteration that came before it is still kept."""
    first = ({"type": "iteration", "iteration": 0, "loss": 1.0, "width": 48, "height": 40, "channels": 3},
             image())
    babbler = ScriptedBackend({"dream": [*ACCEPTED_AND_STARTED, first, bad]})
    try:
        with Client(babbler.endpoint) as client:
            job = session.DreamSession(client, "babble", 3, 1)
            job.submit(image(), 48, 40, 3, "tiny", None, 0)
            kept = run_to_end(job, 10)
    finally:
        babbler.close()
    assert job.state is session.State.FAILED and [k.number for k in kept] == [1]
    assert job.error.startswith(f"the backend at {babbler.endpoint} sent a message outside the Deep Dream protocol "
                                f"({why}")
    assert job.error.endswith("); the layers received so far are kept")


def test_a_broken_presets_file_is_reported_as_the_backend_words_it(backend):
    """The backend's presets_file message says where the file is broken: the user gets it word for word."""
    presets = Path(backend.process.args[backend.process.args.index("--presets") + 1])
    kept_text = presets.read_text()
    presets.write_text('{"ghost": ')
    try:
        assert list(choices.backend_presets(backend.endpoint)) == list(choices.BUILTIN_PRESETS)  # built-ins on
        with backend.client() as client:
            client.dream("raw", image(), 48, 40, 3, "ghost", 1)
            while (reply := client.receive(10))[0]["type"] != protocol.ERROR:
                pass
            job = session.DreamSession(client, "ghost", 1, 1)
            job.submit(image(), 48, 40, 3, "ghost", None, 0)
            run_to_end(job, 10)
    finally:
        presets.write_text(kept_text)
    assert reply[0]["code"] == protocol.E_PRESETS_FILE and str(presets) in reply[0]["message"]
    assert job.state is session.State.FAILED and job.error == reply[0]["message"]


# ---- time left ------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_time_left_from_the_pace_so_far():
    clock = FakeClock()
    left = session.TimeLeft(4, clock)
    assert left.seconds() is None and left.fraction() == 0.0
    left.start()
    assert left.seconds() is None  # no estimate from the dialog, no pace yet
    clock.now += 2.0
    left.evaluation(2)  # 1 s per evaluation, 7 per iteration guessed: 28 in all
    assert left.seconds() == pytest.approx(26.0)
    clock.now += 3.0
    left.evaluation(5)
    left.iteration_done()  # the first iteration took 5 evaluations: 20 in all, 15 to go
    assert left.seconds() == pytest.approx(15.0) and left.fraction() == pytest.approx(0.25)
    left.evaluation(5)
    assert left.fraction() == pytest.approx(0.5)


def test_time_left_starts_from_the_dialogs_estimate_and_weighs_the_octaves():
    """The progress window counts down the estimate the dialog showed until the pace is known, and counts
    work as the estimate does: an iteration of a small octave is quicker than one at full size."""
    expected = estimate.Estimate.of(400, 200, 0, 2, 2.0, 4, {"seconds_per_megapixel": 10.0,
                                                             "evaluations_per_iteration": 5})
    assert expected.megapixels == [0.02, 0.02, 0.08, 0.08]  # 200×100 twice, then 400×200 twice
    assert expected.seconds == pytest.approx(0.2 * 5 * 10.0)
    clock = FakeClock()
    left = session.TimeLeft(4, clock, evaluations_per_iteration=expected.evaluations_per_iteration,
                            estimate=expected.seconds, weights=expected.megapixels)
    left.start()
    clock.now += 3.0
    assert left.seconds() == pytest.approx(7.0)  # the estimate, counting down
    clock.now += 2.0
    left.evaluation(5)
    left.iteration_done()  # 5 s for 5 evaluations of 0.02 MP: 0.1 of 1.0 weighted work done
    assert left.fraction() == pytest.approx(0.1)
    assert left.seconds() == pytest.approx(45.0)  # 0.9 left at 50 s per unit
    clock.now += 5.0
    left.evaluation(5)
    left.iteration_done()
    assert left.fraction() == pytest.approx(0.2) and left.seconds() == pytest.approx(40.0)


def test_the_fraction_never_goes_back():
    """An iteration that takes more evaluations than expected fills its share and no more."""
    left = session.TimeLeft(3, FakeClock(), evaluations_per_iteration=5)
    seen = []
    for evaluations in (9, 3, 7):
        for evaluation in range(1, evaluations + 1):
            left.evaluation(evaluation)
            seen.append(left.fraction())
        left.iteration_done()
        seen.append(left.fraction())
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert seen[8] == pytest.approx(1 / 3)  # the 9th evaluation of the first: its whole share, not more


@pytest.mark.parametrize("seconds, text", [
    (None, "estimating the time left…"), (0.2, "about 1 s left"), (42, "about 42 s left"),
    (150, "about 2 min left"), (3 * 3600 + 20 * 60, "about 3 h 20 min left"),
])
def test_time_left_in_words(seconds, text):
    assert session.describe_seconds(seconds) == text


def test_progress_texts_need_no_jargon():
    progress = session.Progress("Dreaming…", 3, 10, 4, -1234.56, 0.25, 90.0, 7.4)
    assert (progress.iteration_text, progress.evaluation_text, progress.time_left_text) == (
        "Iteration 3 of 10", "Refining it: step 4 of about 7", "about 2 min left")
    assert session.Progress("Starting…", 0, 10, 0, None, 0.0, None).evaluation_text == ""


@pytest.mark.parametrize("height, width, octaves, scale, iterations", [
    (450, 900, 1, 1.4, 10), (450, 900, 4, 1.35, 10), (40, 48, 4, 1.35, 10), (32, 500, 3, 1.3, 2),
    (1000, 700, 8, 4.0, 3), (33, 33, 2, 1.2, 7), (2048, 2048, 3, 1.3, 1),
])
def test_the_estimates_octave_plan_is_the_backends(height, width, octaves, scale, iterations):
    from backend.core.dream import Octaves, octave_plan

    assert estimate.octave_plan(height, width, octaves, scale, iterations) == octave_plan(
        height, width, Octaves(octaves, scale), iterations, protocol.MIN_SIDE)


def test_the_estimate_follows_size_max_size_and_iterations():
    speed = {"seconds_per_megapixel": 2.0}
    full = estimate.Estimate.of(1000, 500, 0, 1, 1.4, 10, speed)
    assert full.seconds == pytest.approx(0.5 * 10 * estimate.EVALUATIONS_PER_ITERATION * 2.0)
    assert estimate.Estimate.of(1000, 500, 500, 1, 1.4, 10, speed).seconds == pytest.approx(full.seconds / 4)
    assert estimate.Estimate.of(1000, 500, 0, 1, 1.4, 20, speed).seconds == pytest.approx(full.seconds * 2)
    assert estimate.Estimate.of(1000, 500, 0, 3, 1.4, 9, speed).seconds < full.seconds  # smaller octaves first
    for broken in (None, {}, {"seconds_per_megapixel": 0}, {"seconds_per_megapixel": "fast"},
                   {"seconds_per_megapixel": True}, {"seconds_per_megapixel": float("nan")}, [1.0]):
        assert estimate.Estimate.of(1000, 500, 0, 1, 1.4, 10, broken).seconds is None


@pytest.mark.parametrize("seconds, cached, words", [
    (None, True, "estimated once the backend has run"),
    (42, False, "Time for 96 × 64 pixels: about 42 s (from the backend's measured speed)"),
    (150, True, "Time for 96 × 64 pixels: about 2 min (from the backend's speed last time)"),
])
def test_the_estimate_in_words(seconds, cached, words):
    assert words in estimate.estimate_text(seconds, cached, 96, 64)


def test_the_last_speed_is_kept_for_the_next_dialog(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert estimate.load_speed() is None
    estimate.save_speed({"seconds_per_megapixel": 0})  # nothing measured: nothing kept
    assert estimate.load_speed() is None
    estimate.save_speed({"seconds_per_megapixel": 3.5, "evaluations_per_iteration": 6.5, "measured_by": "dream"})
    assert estimate.load_speed() == {"seconds_per_megapixel": 3.5, "evaluations_per_iteration": 6.5,
                                     "measured_by": "dream"}
    estimate.speed_file().write_text("{broken")
    assert estimate.load_speed() is None
    estimate.speed_file().unlink()
    estimate.speed_file().mkdir()  # unwritable: a cache, nothing fails
    estimate.save_speed({"seconds_per_megapixel": 1.0})


def test_the_backends_measured_speed_reaches_the_dialog(backend, silent_endpoint):
    """hello reports the speed measured at start, then each dream's: the dialog's estimate uses it."""
    speed = estimate.fetch_speed(backend.endpoint, timeout=5.0)
    assert speed is not None and speed["seconds_per_megapixel"] > 0
    with backend.client() as client:
        job = session.DreamSession(client, "speed", 2, 1)
        job.submit(image(), 48, 40, 3, "tiny", 1, 0)
        run_to_end(job)
        assert job.state is session.State.DONE
        after = client.hello()["speed"]
    assert after["measured_by"] == "dream" and after["seconds_per_megapixel"] > 0
    assert 1 <= after["evaluations_per_iteration"] <= 30
    assert estimate.fetch_speed(silent_endpoint) is None and estimate.fetch_speed(free_endpoint()) is None


def test_the_plugin_file_is_executable_and_thin():
    """GIMP runs it through its shebang; it may use GIMP's GI modules, the standard library and pyzmq only."""
    plugin = ROOT / "gimp_plugin" / "deep_dream" / "deep_dream.py"
    assert os.access(plugin, os.X_OK) and plugin.read_text().startswith("#!/usr/bin/env python3\n")
    code = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]); "
         "import choices, estimate, launcher, layers, recipes, session; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'tensorflow', 'gi', 'PIL')))",
         str(ROOT / "gimp_plugin" / "deep_dream"), str(ROOT)],
        capture_output=True, text=True, check=True)
    assert code.stdout.strip() == "[]"


def test_the_plugin_file_is_annotated():
    """Every function and method of deep_dream.py (which only GIMP can run) declares its types."""
    import ast

    tree = ast.parse((ROOT / "gimp_plugin" / "deep_dream" / "deep_dream.py").read_text())
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    missing = [
        f"{function.name}:{function.lineno}" for function in functions
        if function.returns is None or any(
            argument.annotation is None for argument in
            [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs,
             *filter(None, [function.args.vararg, function.args.kwarg])]
            if argument.arg not in ("self", "cls"))
    ]
    assert len(functions) >= 25 and missing == []
