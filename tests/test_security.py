"""A backend for other machines: loopback only without keys; with CURVE, only authorised clients get answers.

Real `serve` processes and real ZeroMQ CURVE handshakes; the keys are made by `python -m backend keys`.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backend.service.security import check_bind
from tests.conftest import ROOT, BackendProcess, free_endpoint
from tests.test_server import dream, events_until_end
from wire import curve
from wire.client import BackendError, Client
from wire.endpoints import is_loopback

SILENCE_S = 3.0  # how long an unauthorised client waits for an answer that must not come


def run_backend(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    made = run_backend("keys", str(directory), "--client", "laptop", "--client", "tablet")
    assert made.returncode == 0, made.stderr
    # A pair that is a valid key but was never authorised: made elsewhere, then its public key removed.
    stranger = run_backend("keys", str(directory / "elsewhere"), "--client", "stranger")
    assert stranger.returncode == 0, stranger.stderr
    return directory


@pytest.fixture(scope="module")
def secured(keys: Path, tmp_path_factory: pytest.TempPathFactory):
    """A CURVE backend bound to every interface, which only --curve allows."""
    endpoint = free_endpoint()
    process = BackendProcess(tmp_path_factory.mktemp("secured"), "--bind", endpoint.replace("127.0.0.1", "0.0.0.0"),
                             "--curve", str(keys))
    process.endpoint = endpoint
    yield process
    process.stop()


def with_keys(endpoint: str, server_key: Path | str, client_key: Path) -> str:
    return f"{endpoint}?server_key={server_key}&client_key={client_key}"


def test_keys_layout(keys):
    assert (keys / "server.key").is_file() and (keys / "server.key_secret").is_file()
    assert sorted(p.name for p in (keys / "authorized_clients").iterdir()) == ["laptop.key", "tablet.key"]
    assert (keys / "clients" / "laptop.key_secret").stat().st_mode & 0o077 == 0  # secret: the owner's only
    again = run_backend("keys", str(keys), "--client", "laptop")
    assert again.returncode == 1 and "exists already" in again.stderr


def test_an_authorised_client_dreams(secured, keys):
    endpoint = with_keys(secured.endpoint, keys / "server.key", keys / "clients" / "laptop.key_secret")
    with Client(endpoint) as client:
        assert client.hello()["protocol"] == 1
        dream(client, "secure", width=16, height=16, iterations=1)
        assert events_until_end(client, "secure")[-1][0]["type"] == "done"
    with Client(with_keys(secured.endpoint, keys / "server.key", keys / "clients" / "tablet.key_secret")) as client:
        assert client.hello()["weights"] == "hed"  # another authorised client


@pytest.mark.parametrize("who", ["no key", "unauthorised key", "wrong server key"])
def test_others_get_nothing(secured, keys, who):
    endpoints = {
        "no key": secured.endpoint,
        "unauthorised key": with_keys(secured.endpoint, keys / "server.key",
                                      keys / "elsewhere" / "clients" / "stranger.key_secret"),
        "wrong server key": with_keys(secured.endpoint, keys / "elsewhere" / "server.key",
                                      keys / "clients" / "laptop.key_secret"),
    }
    started = time.monotonic()
    with Client(endpoints[who]) as client, pytest.raises(BackendError) as caught:
        client.hello(timeout=SILENCE_S)
    assert caught.value.code == "not_backend" and time.monotonic() - started < SILENCE_S + 2
    assert ("authorized_clients folder" in caught.value.message) is (who != "no key")
    with Client(with_keys(secured.endpoint, keys / "server.key", keys / "clients" / "laptop.key_secret")) as client:
        assert client.hello()["protocol"] == 1  # and the backend serves on
    assert any("authorised client(s)" in line for line in secured.output)


@pytest.mark.parametrize("who", ["no key", "unauthorised key"])
def test_a_refused_client_that_waited_is_told_too(secured, keys, who):
    """libzmq gives a connection up about a second after its CURVE handshake fails; a send after that used to
    wait forever (CI once hung here), so the plug-in would have hung in GIMP. Now it is told, in time. The hello
    runs in a thread so that a send that blocks fails this test instead of hanging the suite."""
    endpoint = secured.endpoint if who == "no key" else with_keys(
        secured.endpoint, keys / "server.key", keys / "elsewhere" / "clients" / "stranger.key_secret")
    outcome: list[BaseException] = []
    with Client(endpoint) as client:
        time.sleep(1.5)  # the handshake has failed and libzmq has given up (1 s measured)

        def hello() -> None:
            try:
                client.hello(timeout=SILENCE_S)
            except BaseException as exc:  # noqa: BLE001 - whatever it is, the test looks at it
                outcome.append(exc)

        asker = threading.Thread(target=hello, daemon=True)
        asker.start()
        asker.join(SILENCE_S + 5)
        assert not asker.is_alive(), "the hello still waits: the send blocked"
    assert isinstance(outcome[0], BackendError) and outcome[0].code == "not_backend", outcome


@pytest.mark.parametrize("bind", ["tcp://0.0.0.0:{port}", "tcp://*:{port}", "tcp://192.0.2.7:{port}"])
def test_a_non_loopback_bind_without_keys_is_refused(bind):
    port = free_endpoint().rsplit(":", 1)[1]
    started = time.monotonic()
    refused = run_backend("serve", "--bind", bind.format(port=port), "--weights", "hed")
    assert refused.returncode == 2 and "refusing to bind" in refused.stderr and "--curve DIR" in refused.stderr
    assert time.monotonic() - started < 30  # before TensorFlow is even imported


def test_curve_without_usable_keys_is_refused(tmp_path):
    missing = run_backend("serve", "--bind", free_endpoint(), "--weights", "hed", "--curve", str(tmp_path))
    assert missing.returncode == 2 and "cannot read the server's secret key" in missing.stderr
    assert run_backend("keys", str(tmp_path), "--client", "gone").returncode == 0
    (tmp_path / "authorized_clients" / "gone.key").unlink()
    nobody = run_backend("serve", "--bind", free_endpoint(), "--weights", "hed", "--curve", str(tmp_path))
    assert nobody.returncode == 2 and "no client may connect" in nobody.stderr
    # One bad file would make pyzmq's authenticator admit nobody, silently: refused, naming it.
    assert run_backend("keys", str(tmp_path), "--client", "fine").returncode == 0
    (tmp_path / "authorized_clients" / "notes.key").write_text("hello")
    bad = run_backend("serve", "--bind", free_endpoint(), "--weights", "hed", "--curve", str(tmp_path))
    assert bad.returncode == 2 and "notes.key is not a ZeroMQ public key file" in bad.stderr


def test_the_plugin_does_not_start_a_backend_for_keys(keys, tmp_path):
    """Keys in the endpoint mean a backend its owner runs with --curve: one started here would lack them."""
    sys.path.insert(0, str(ROOT / "gimp_plugin" / "deep_dream"))
    import launcher

    endpoint = with_keys(free_endpoint(), keys / "server.key", keys / "clients" / "laptop.key_secret")
    launch = tmp_path / "backend.json"
    launch.write_text('{"command": ["/nonexistent/python"]}')
    with Client(endpoint) as client, pytest.raises(launcher.NotListening):
        launcher.connect(client, launch, log=tmp_path / "log")
    assert not (tmp_path / "log").exists()


@pytest.mark.parametrize("endpoint, local", [
    ("tcp://127.0.0.1:5570", True), ("tcp://127.3.2.1:5570", True), ("tcp://localhost:5570", True),
    ("tcp://[::1]:5570", True), ("ipc:///tmp/dream", True), ("tcp://0.0.0.0:5570", False), ("tcp://*:5570", False),
    ("tcp://eth0:5570", False), ("tcp://192.168.1.5:5570", False), ("tcp://[::]:5570", False),
])
def test_loopback_addresses(endpoint, local):
    assert is_loopback(endpoint) is local
    if local:
        check_bind(endpoint, None)


@pytest.mark.parametrize("query, words", [
    ("server_key=/nonexistent/server.key&client_key=/nonexistent/c.key_secret", "server_key=/nonexistent"),
    ("server_key=x", "missing: client_key"),
    ("colour=red&server_key=a&client_key=b", "unknown: colour"),
])
def test_endpoint_keys_that_cannot_be_used_say_why(query, words):
    with pytest.raises(BackendError) as caught:
        Client(f"tcp://127.0.0.1:5570?{query}")
    assert caught.value.code == "endpoint" and words in caught.value.message


def test_a_public_key_is_not_a_client_key(keys):
    with pytest.raises(curve.CurveError, match="holds no secret key"):
        curve.split_endpoint(with_keys("tcp://127.0.0.1:5570", keys / "server.key", keys / "clients" / "laptop.key"))
