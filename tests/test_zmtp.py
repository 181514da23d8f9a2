"""wire/zmtp.py, the standard-library DEALER, against real libzmq: pyzmq ROUTERs, the real backend, and plain
TCP servers that speak junk or nothing (stand-ins for foreign programs on the port, which libzmq can't be).

The whole protocol suite runs through it as well (tests/test_server.py, the `transport` fixture); this file
covers what is particular to it: the handshake, framing, heartbeats, reconnecting and bad peers.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import zmq

from tests.conftest import ROOT, free_endpoint, structured_image
from wire import zmtp
from wire.client import TRANSPORT_ERRORS, TRANSPORT_VARIABLE, BackendError, Client, pick_transport


def address(endpoint: str) -> tuple[str, int]:
    return zmtp.tcp_address(endpoint)


def heartbeat_router(interval_ms: int, timeout_ms: int) -> tuple[zmq.Socket, str]:
    """A real libzmq ROUTER bound to a free port, dropping peers silent for timeout_ms."""
    socket_ = zmq.Context.instance().socket(zmq.ROUTER)
    socket_.setsockopt(zmq.LINGER, 0)
    socket_.setsockopt(zmq.HEARTBEAT_IVL, interval_ms)
    socket_.setsockopt(zmq.HEARTBEAT_TIMEOUT, timeout_ms)
    endpoint = free_endpoint()
    socket_.bind(endpoint)
    return socket_, endpoint


@pytest.fixture
def router() -> Iterator[tuple[zmq.Socket, str]]:
    """A ROUTER with the backend's heartbeat settings."""
    socket_, endpoint = heartbeat_router(1000, 3000)
    yield socket_, endpoint
    socket_.close(linger=0)


@pytest.fixture
def dealer_for() -> Iterator[Callable[[str], zmtp.DealerSocket]]:
    made: list[zmtp.DealerSocket] = []

    def make(endpoint: str, **options) -> zmtp.DealerSocket:
        made.append(zmtp.DealerSocket(endpoint, b"fallback-1", **options))
        return made[-1]

    yield make
    for dealer in made:
        dealer.close()


def routed(router: zmq.Socket, timeout_ms: int = 5000) -> list[bytes]:
    assert router.poll(timeout_ms), "the ROUTER received nothing"
    return router.recv_multipart()


def received(dealer: zmtp.DealerSocket, timeout_ms: int = 5000) -> list[bytes]:
    assert dealer.poll(timeout_ms), f"the DEALER received nothing ({dealer.problem})"
    return dealer.recv_multipart()


class TcpPeer:
    """A plain TCP server whose `talk(connection)` plays the peer, one connection at a time."""

    def __init__(self, talk: Callable[[socket.socket], None]) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.talk = talk
        self.closed_by_client = threading.Event()  # after sending something: not a mere is_listening() probe
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(10)
                try:
                    self.talk(connection)
                    heard = False
                    while connection.recv(65536):  # until the client hangs up
                        heard = True
                    if heard:
                        self.closed_by_client.set()
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def tcp_peer() -> Iterator[Callable[[Callable[[socket.socket], None]], TcpPeer]]:
    peers: list[TcpPeer] = []

    def make(talk: Callable[[socket.socket], None]) -> TcpPeer:
        peers.append(TcpPeer(talk))
        return peers[-1]

    yield make
    for peer in peers:
        peer.close()


def handshake_as_router(connection: socket.socket) -> None:
    """The server side of a NULL handshake, by hand."""
    connection.sendall(zmtp.GREETING[:32] + b"\x01" + bytes(31))  # as-server
    connection.sendall(zmtp.command(b"READY", zmtp.metadata({b"Socket-Type": b"ROUTER"})))


# ---- endpoints and transport choice -------------------------------------------------------------------


@pytest.mark.parametrize("endpoint, words", [
    ("ipc:///tmp/dream", "speaks tcp:// only; ipc:// needs pyzmq"),
    ("inproc://dream", "inproc:// needs pyzmq"),
    ("127.0.0.1:5570", "not a tcp://HOST:PORT endpoint"),
    ("tcp://127.0.0.1", "not a tcp://HOST:PORT endpoint"),
    ("tcp://127.0.0.1:port", "not a tcp://HOST:PORT endpoint"),
    ("tcp://*:5570", "not a tcp://HOST:PORT endpoint"),
])
def test_endpoints_it_cannot_use_are_refused_clearly(endpoint, words):
    with pytest.raises(zmtp.ZmtpError, match=re.escape(words)):
        Client(endpoint, transport="zmtp")
    assert issubclass(zmtp.ZmtpError, TRANSPORT_ERRORS)


def test_the_transport_is_chosen_by_argument_then_environment(monkeypatch):
    monkeypatch.delenv(TRANSPORT_VARIABLE, raising=False)
    assert pick_transport() == "pyzmq"  # importable here
    monkeypatch.setenv(TRANSPORT_VARIABLE, "zmtp")
    assert pick_transport() == "zmtp" and pick_transport("pyzmq") == "pyzmq"
    monkeypatch.setenv(TRANSPORT_VARIABLE, "carrier-pigeon")
    with pytest.raises(BackendError, match="unknown transport 'carrier-pigeon': choose pyzmq or zmtp"):
        Client(free_endpoint())


UNIMPORTABLE_PYZMQ = """
import sys
sys.modules["zmq"] = None  # what `import zmq` does in GIMP for Windows' Python: ImportError
sys.path.insert(0, {root!r})
from wire.client import Client, pick_transport
try:
    pick_transport("pyzmq")
except Exception as exc:
    print("asked for pyzmq:", exc)
with Client({endpoint!r}) as client:
    print("transport", client.transport)
    print("protocol", client.hello()["protocol"])
    client.dream("no-pyzmq", bytes(range(256)) * 18, 48, 32, 3, "tiny", 1)
    while (message := client.receive(60)) and message[0]["type"] not in ("done", "error"):
        pass
    print("ended with", message[0]["type"] if message else None)
"""


def test_without_pyzmq_the_client_falls_back_and_dreams(backend, monkeypatch):
    monkeypatch.delenv(TRANSPORT_VARIABLE, raising=False)
    script = UNIMPORTABLE_PYZMQ.format(root=str(ROOT), endpoint=backend.endpoint)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "asked for pyzmq: the pyzmq transport was asked for, but pyzmq cannot be imported here",
        "transport zmtp", "protocol 1", "ended with done"]


# ---- talking to libzmq ----------------------------------------------------------------------------------


def test_handshake_identity_and_both_directions(router, dealer_for):
    router, endpoint = router
    dealer = dealer_for(endpoint)
    dealer.send_multipart([b"hello"])
    assert routed(router) == [b"fallback-1", b"hello"]  # the ROUTER knows it by the Identity of its READY
    router.send_multipart([b"fallback-1", b"welcome"])
    assert received(dealer) == [b"welcome"] and dealer.problem is None


@pytest.mark.parametrize("sizes", [[0], [1, 0, 255], [256, 70_000], [3 * 1024 * 1024, 5, 65_536]],
                         ids=["empty", "short", "long", "megabytes"])
def test_multipart_short_and_long_frames_both_ways(router, dealer_for, sizes):
    router, endpoint = router
    dealer = dealer_for(endpoint)
    frames = [os.urandom(size) for size in sizes]
    dealer.send_multipart(frames)
    assert routed(router) == [b"fallback-1", *frames]
    router.send_multipart([b"fallback-1", *reversed(frames)])
    assert received(dealer) == list(reversed(frames))


def test_frames_split_anywhere_are_put_back_together():
    message = b"".join(zmtp.frame(body, flags) + body for body, flags in
                       [(b"a" * 300, zmtp.MORE), (b"", zmtp.MORE), (b"end", 0)])
    reader = zmtp.FrameReader()
    frames = [frame for byte in message for frame in reader.feed(bytes((byte,)))]
    assert frames == [(zmtp.MORE | zmtp.LONG, b"a" * 300), (zmtp.MORE, b""), (0, b"end")]


def test_heartbeats_are_answered_while_the_caller_is_silent(dealer_for):
    """A ROUTER that drops peers silent for 800 ms; the DEALER is left alone for 2 s and stays connected.
    The control, a peer that does the handshake but answers no PING, is dropped: the test can fail."""
    router, endpoint = heartbeat_router(200, 800)
    monitor = router.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        dealer = dealer_for(endpoint)
        dealer.send_multipart([b"hi"])
        routed(router)
        deaf = socket.create_connection(address(endpoint), timeout=5)
        deaf.sendall(zmtp.GREETING + zmtp.command(b"READY", zmtp.metadata({b"Socket-Type": b"DEALER"})))
        time.sleep(2.0)
        assert monitor.poll(0), "the deaf control peer was not dropped"
        monitor.recv_multipart()
        assert not monitor.poll(0), "the DEALER was dropped too"
        deaf.settimeout(1)
        while deaf.recv(65536):  # the ROUTER's greeting, READY and PINGs, then the end: it hung up
            pass
        router.send_multipart([b"fallback-1", b"still there?"])
        assert received(dealer) == [b"still there?"]
    finally:
        router.disable_monitor()
        monitor.close(linger=0)
        router.close(linger=0)


def test_the_backend_keeps_a_silent_fallback_client(backend):
    """A client that reads nothing for 4 s while its dream runs keeps the job, and loses no message (were it
    dropped, the backend would cancel the job and forget it)."""
    with Client(backend.endpoint, transport="zmtp") as client:
        client.dream("patient", structured_image(96, 96).tobytes(), 96, 96, 3, "doggos", 200,
                     params={"features": {"block2_conv1": 0.05}})
        time.sleep(4.0)
        client.cancel("patient")
        kinds, iterations = [], []
        while (message := client.receive(30)) is not None:
            kinds.append(message[0]["type"])
            if message[0]["type"] == "iteration":
                iterations.append(message[0]["iteration"])
            if kinds[-1] in ("cancelled", "error", "done"):
                break
    assert kinds[:2] == ["accepted", "started"] and kinds[-1] == "cancelled", kinds[-3:]
    assert len(iterations) >= 2 and iterations == list(range(len(iterations)))  # nothing lost while silent
    assert not any("client of job 'patient' is gone" in line for line in backend.output)


def test_an_upload_slower_than_a_few_seconds_reaches_the_backend(backend, monkeypatch):
    """libzmq hears nothing from a peer until a whole frame is in: a 3-MB layer sent in 64-KB pieces,
    a tenth of a second apart (about 5 s, a slow link), must not be taken for a vanished peer."""
    real_write = zmtp.DealerSocket._write

    class SlowLink:
        """The connection, taking at most 64 KB per write round; a full kernel buffer looks the same."""

        def __init__(self, connection: socket.socket) -> None:
            self.connection, self.budget = connection, 65_536

        def send(self, data: memoryview) -> int:
            if self.budget <= 0:
                raise BlockingIOError
            sent = self.connection.send(data[: self.budget])
            self.budget -= sent
            return sent

    def slow_write(self, connection, out):
        real_write(self, SlowLink(connection), out)
        time.sleep(0.1)

    monkeypatch.setattr(zmtp.DealerSocket, "_write", slow_write)
    pixels = structured_image(1000, 1000).tobytes()
    started = time.monotonic()
    with Client(backend.endpoint, transport="zmtp") as client:
        client.dream("slow", pixels, 1000, 1000, 3, "tiny", 1, max_size=100)
        reply = client.receive(60)
        uploaded = time.monotonic() - started
        while (message := client.receive(60)) is not None and message[0]["type"] not in ("done", "error"):
            pass
    assert reply is not None and reply[0]["type"] == "accepted", reply
    assert uploaded > 4  # it was slow
    assert message is not None and message[0]["type"] == "done"


def test_connect_before_the_server_exists(dealer_for):
    endpoint = free_endpoint()
    dealer = dealer_for(endpoint)
    dealer.send_multipart([b"early"])  # queued
    assert dealer.poll(300) == 0 and "cannot connect to" in dealer.problem
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    try:
        router.bind(endpoint)
        assert routed(router) == [b"fallback-1", b"early"]
        router.send_multipart([b"fallback-1", b"late"])
        assert received(dealer) == [b"late"]
    finally:
        router.close(linger=0)


def test_a_server_restart(router, dealer_for):
    first, endpoint = router
    dealer = dealer_for(endpoint)
    dealer.send_multipart([b"one"])
    routed(first)
    first.close(linger=0)
    deadline = time.monotonic() + 5
    while dealer.problem is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert dealer.problem, "the DEALER did not notice the server went away"
    second = zmq.Context.instance().socket(zmq.ROUTER)
    second.setsockopt(zmq.LINGER, 0)
    try:
        second.bind(endpoint)
        dealer.send_multipart([b"two"])
        assert routed(second) == [b"fallback-1", b"two"]
        second.send_multipart([b"fallback-1", b"back"])
        assert received(dealer) == [b"back"]
    finally:
        second.close(linger=0)


def test_the_send_queue_is_bounded_while_nobody_listens(dealer_for):
    dealer = dealer_for(free_endpoint(), max_queued=2)
    dealer.send_multipart([b"1"])
    dealer.send_multipart([b"2"])
    with pytest.raises(zmtp.ZmtpError, match="2 messages already wait to go to tcp://"):
        dealer.send_multipart([b"3"])


def test_a_closed_socket_says_so(dealer_for):
    dealer = dealer_for(free_endpoint())
    dealer.close()
    with pytest.raises(zmtp.ZmtpError, match="the socket is closed"):
        dealer.send_multipart([b"late"])
    with pytest.raises(zmtp.ZmtpError, match="the socket is closed"):
        dealer.poll(0)


# ---- peers that are not what they should be -------------------------------------------------------------


def test_a_curve_server_is_refused_with_a_reason():
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.CURVE_SERVER, 1)
    router.setsockopt(zmq.CURVE_SECRETKEY, zmq.curve_keypair()[1])
    endpoint = free_endpoint()
    router.bind(endpoint)
    try:
        with Client(endpoint, transport="zmtp") as client, pytest.raises(BackendError) as caught:
            client.hello(timeout=1.5)
    finally:
        router.close(linger=0)
    assert caught.value.code == "not_backend"
    assert "wants CURVE security; the standard-library ZeroMQ client speaks only NULL (CURVE needs pyzmq)" in \
        caught.value.message


@pytest.mark.parametrize("reply, words", [
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "is not a ZeroMQ peer: its greeting starts b'HTTP/1.1"),
    (b"\xff" + bytes(8) + b"\x7f\x02\x05", "speaks ZMTP 2.x; this client speaks 3.x"),
    (b"", "accepted the connection but has not finished a ZMTP handshake"),
], ids=["junk", "zmtp 2", "silence"])
def test_a_foreign_peer_is_named_in_the_time_out(tcp_peer, reply, words):
    peer = tcp_peer(lambda connection: connection.sendall(reply))
    started = time.monotonic()
    with Client(peer.endpoint, transport="zmtp") as client, pytest.raises(BackendError) as caught:
        client.hello(timeout=1.0)
    assert time.monotonic() - started < 2.0
    assert caught.value.code == "not_backend" and words in caught.value.message, caught.value.message
    if reply:
        assert peer.closed_by_client.wait(2), "the connection to a foreign peer was kept open"


def test_an_absurd_frame_length_drops_the_connection(tcp_peer, dealer_for):
    def huge(connection: socket.socket) -> None:
        handshake_as_router(connection)
        connection.sendall(struct.pack(">BQ", zmtp.LONG, 1 << 62))

    peer = tcp_peer(huge)
    dealer = dealer_for(peer.endpoint)
    assert peer.closed_by_client.wait(5), "the client kept a connection that announced a 4 EiB frame"
    assert dealer.poll(0) == 0
    assert "a frame of 4,611,686,018,427,387,904 bytes, over the 1,073,741,824 this client accepts" in dealer.problem


def test_reserved_flags_and_an_error_command_are_refused(tcp_peer, dealer_for):
    def reserved(connection: socket.socket) -> None:
        handshake_as_router(connection)
        connection.sendall(b"\x80\x00")

    def refusing(connection: socket.socket) -> None:
        connection.sendall(zmtp.GREETING[:32] + b"\x01" + bytes(31) + zmtp.command(b"ERROR", b"\x0bnot welcome"))

    for talk, words in ((reserved, "reserved flag bits set (0x80)"), (refusing, "refused the connection: not welcome")):
        peer = tcp_peer(talk)
        dealer = dealer_for(peer.endpoint)
        assert peer.closed_by_client.wait(5)
        deadline = time.monotonic() + 2
        while words not in (dealer.problem or "") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert words in dealer.problem
