"""A ZeroMQ DEALER in the standard library: ZMTP 3.1 over tcp:// with NULL security (rfc.zeromq.org 23, 37).

The fallback of wire/client.py where pyzmq cannot be imported, such as GIMP for Windows, whose MSYS2
Python cannot load PyPI's binary pyzmq wheels. It speaks to the backend's libzmq ROUTER the subset of
ZMTP that a DEALER needs, and behaves like a pyzmq DEALER where the client relies on it:

- It connects in a background thread and reconnects (every RECONNECT_S, RETRY_AFTER_ERROR_S after a peer
  that broke the protocol) when nothing listens yet or the connection is lost.
- Messages sent while no connection is up wait in a queue of at most MAX_QUEUED and go out once one is
  (one being written when a connection breaks is lost, as with libzmq); a send to a full queue raises
  ZmtpError instead of blocking. Messages received wait, unbounded, until the caller takes them.
- The thread answers the peer's heartbeat PINGs whether or not the caller is receiving: the backend
  drops peers that stay silent for 3 s.

Not spoken: other transports (ipc://, inproc://), security other than NULL (CURVE needs pyzmq), ZMTP
before 3.0, and heartbeats of its own (the backend's PING carries no TTL to honour).
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from urllib.parse import urlsplit

RECONNECT_S = 0.1  # libzmq's default ZMQ_RECONNECT_IVL
RETRY_AFTER_ERROR_S = 1.0  # a peer that broke the protocol is not hammered
CONNECT_TIMEOUT_S = 5.0
HANDSHAKE_TIMEOUT_S = 30.0  # libzmq's default ZMQ_HANDSHAKE_IVL
MAX_QUEUED = 1000  # libzmq's default send high-water mark
# Larger than any message of the wire format (a pixel frame is at most 400 MB); a length beyond it is junk.
MAX_FRAME_BYTES = 1 << 30
CLOSE_WAIT_S = 1.0  # at most this long in close(); a connect under way may take longer, in the background
RECV_CHUNK = 1 << 18
SEND_CHUNK = 1 << 20

SIGNATURE_SIZE = 10
GREETING_SIZE = 64
MECHANISM = b"NULL"
GREETING = (b"\xff" + bytes(8) + b"\x7f"  # signature; the padding is ignored
            + bytes((3, 1))  # version 3.1
            + MECHANISM.ljust(20, b"\0")
            + b"\0"  # as-server: a DEALER that connects is the client
            + bytes(31))
PEER_TYPES = {b"ROUTER", b"DEALER", b"REP"}  # the socket types a DEALER may talk to (RFC 28)

MORE = 0x01
LONG = 0x02
COMMAND = 0x04


class ZmtpError(Exception):
    """An endpoint this client cannot use, a peer that breaks ZMTP, or a socket used after close()."""


def tcp_address(endpoint: str) -> tuple[str, int]:
    """(host, port) of a tcp://HOST:PORT endpoint; ZmtpError for anything else."""
    scheme = endpoint.split("://", 1)[0] if "://" in endpoint else None
    if scheme not in ("tcp", None):
        raise ZmtpError(f"{endpoint!r}: the standard-library ZeroMQ client speaks tcp:// only; {scheme}:// needs "
                        "pyzmq")
    try:
        parts = urlsplit(endpoint)
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if scheme is None or not host or port is None or host == "*" or parts.path not in ("", "/"):
        raise ZmtpError(f"{endpoint!r} is not a tcp://HOST:PORT endpoint")
    return host, port


# ---- framing ---------------------------------------------------------------------------------------


def frame(body: bytes | memoryview, flags: int = 0) -> bytes:
    """The header of one frame (short or long by its size); the body is sent after it as it is."""
    size = len(body)
    if size > 255:
        return struct.pack(">BQ", flags | LONG, size)
    return struct.pack(">BB", flags, size)


def command(name: bytes, data: bytes = b"") -> bytes:
    body = bytes((len(name),)) + name + data
    return frame(body, COMMAND) + body


def metadata(properties: dict[bytes, bytes]) -> bytes:
    return b"".join(bytes((len(name),)) + name + struct.pack(">I", len(value)) + value
                    for name, value in properties.items())


def parse_metadata(data: bytes) -> dict[bytes, bytes]:
    """The properties of a READY command, names lower-cased (they are case-insensitive)."""
    properties, at = {}, 0
    while at < len(data):
        name_end = at + 1 + data[at]
        if name_end + 4 > len(data):
            raise ZmtpError("a READY command with truncated metadata")
        (size,) = struct.unpack_from(">I", data, name_end)
        if name_end + 4 + size > len(data):
            raise ZmtpError("a READY command with truncated metadata")
        properties[bytes(data[at + 1:name_end]).lower()] = bytes(data[name_end + 4:name_end + 4 + size])
        at = name_end + 4 + size
    return properties


def check_greeting(data: bytes, endpoint: str) -> None:
    """ZmtpError as soon as the (possibly partial) greeting shows that the peer is no ZMTP 3 NULL peer."""
    if (data[:1] and data[0] != 0xFF) or (len(data) >= SIGNATURE_SIZE and data[9] != 0x7F):
        raise ZmtpError(f"the peer at {endpoint} is not a ZeroMQ peer: its greeting starts {bytes(data[:16])!r}")
    if len(data) > SIGNATURE_SIZE and data[10] < 3:
        raise ZmtpError(f"the peer at {endpoint} speaks ZMTP {data[10]}.x; this client speaks 3.x")
    if len(data) >= GREETING_SIZE:
        mechanism = bytes(data[12:32]).rstrip(b"\0")
        if mechanism != MECHANISM:
            raise ZmtpError(f"the peer at {endpoint} wants {mechanism.decode('ascii', 'replace')} security; the "
                            "standard-library ZeroMQ client speaks only NULL (CURVE needs pyzmq)")


class FrameReader:
    """Splits the bytes received after the greeting into (flags, body) frames; ZmtpError for a broken frame."""

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.buffer = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buffer += data
        frames = []
        while self.buffer:
            flags = self.buffer[0]
            if flags & ~(MORE | LONG | COMMAND):
                raise ZmtpError(f"a frame with reserved flag bits set ({flags:#04x})")
            head = 9 if flags & LONG else 2
            if len(self.buffer) < head:
                break
            size = struct.unpack_from(">Q", self.buffer, 1)[0] if flags & LONG else self.buffer[1]
            if size > self.max_frame:
                raise ZmtpError(f"a frame of {size:,} bytes, over the {self.max_frame:,} this client accepts")
            if len(self.buffer) < head + size:
                break
            with memoryview(self.buffer) as view, view[head:head + size] as body:
                frames.append((flags, body.tobytes()))
            del self.buffer[:head + size]
        return frames


# ---- the socket --------------------------------------------------------------------------------------


class DealerSocket:
    """A DEALER connected to one tcp:// endpoint. Its methods are those of a pyzmq socket that
    wire/client.py uses; call them from one thread (the I/O runs in a thread of its own)."""

    def __init__(self, endpoint: str, identity: bytes, max_queued: int = MAX_QUEUED) -> None:
        self.endpoint = endpoint
        self.address = tcp_address(endpoint)
        if not 0 < len(identity) <= 255 or identity[0] == 0:
            raise ZmtpError("a ZMTP identity is 1 to 255 bytes and does not start with a zero byte")
        self.identity = identity
        self.max_queued = max_queued
        self._lock = threading.Condition()
        self._outgoing: deque[list[bytes]] = deque()
        self._incoming: deque[list[bytes]] = deque()
        self._partial: list[bytes] = []  # the frames received so far of a message (I/O thread only)
        self._state = f"not connected to {endpoint} yet"  # None while connected
        self._failure: str | None = None  # why the last connection failed; kept until one succeeds
        self._closed = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._thread = threading.Thread(target=self._run, name=f"zmtp {endpoint}", daemon=True)
        self._thread.start()

    # ---- the caller's side -------------------------------------------------------------------------

    @property
    def problem(self) -> str | None:
        """Why no connection is up right now, for error messages; None while one is."""
        if self._state is None:
            return None
        return self._failure or self._state

    def poll(self, timeout_ms: int | None = None) -> int:
        """1 when a message can be received, 0 when none arrives within timeout_ms (None or < 0: wait)."""
        deadline = None if timeout_ms is None or timeout_ms < 0 else time.monotonic() + timeout_ms / 1000
        with self._lock:
            while not self._incoming:
                self._check_open()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return 0
                self._lock.wait(left)
            return 1

    def recv_multipart(self) -> list[bytes]:
        """The next message's frames, waiting for one."""
        self.poll()
        with self._lock:
            return self._incoming.popleft()

    def send_multipart(self, frames: Iterable[bytes | bytearray | memoryview], copy: bool = True) -> None:
        """Queue a message for the I/O thread. `copy` is pyzmq's: frames are never copied here but kept,
        as immutable bytes, until sent."""
        message = [part if isinstance(part, bytes) else bytes(part) for part in frames]
        if not message:
            raise ValueError("a message needs at least one frame")
        with self._lock:
            self._check_open()
            if len(self._outgoing) >= self.max_queued:
                problem = self.problem
                raise ZmtpError(f"{len(self._outgoing)} messages already wait to go to {self.endpoint}"
                                + (f" ({problem})" if problem else ""))
            self._outgoing.append(message)
        self._wake()

    def close(self) -> None:
        """Stop at once; messages not yet sent are dropped (libzmq's LINGER 0)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake()
        with self._lock:
            self._lock.notify_all()
        self._thread.join(timeout=CLOSE_WAIT_S)  # the thread closes the connection and the wake-up pair

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise ZmtpError("the socket is closed")

    def _wake(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except (BlockingIOError, OSError):  # full: the thread wakes anyway; closed: it has stopped
            pass

    # ---- the I/O thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._closed.is_set():
                self._closed.wait(self._connect_once())
        finally:
            self._wake_reader.close()
            self._wake_writer.close()

    def _connect_once(self) -> float:
        """One connection attempt and, if it succeeds, its session; the time to wait before the next."""
        self._state = f"connecting to {self.endpoint}"
        try:
            connection = socket.create_connection(self.address, timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            self._failure = f"cannot connect to {self.endpoint}: {exc.strerror or exc}"
            return RECONNECT_S
        try:
            self._session(connection)
            self._failure = f"{self.endpoint} closed the connection"
            return RECONNECT_S
        except ZmtpError as exc:
            self._failure = str(exc)
            return RETRY_AFTER_ERROR_S
        except OSError as exc:
            self._failure = f"the connection to {self.endpoint} broke: {exc.strerror or exc}"
            return RECONNECT_S
        finally:
            self._state = self._state or f"{self.endpoint} is gone"
            connection.close()

    def _session(self, connection: socket.socket) -> None:
        """One connection, from the greeting until it ends (returns) or breaks the protocol (ZmtpError)."""
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.setblocking(False)
        self._state = f"{self.endpoint} accepted the connection but has not finished a ZMTP handshake"
        greeting = bytearray()
        ready = False
        reader = FrameReader()
        self._partial = []
        # The greeting's first 11 bytes, and the rest with READY once the peer's is in. libzmq sends its whole
        # greeting when it has those 11; a peer that gets ours whole with a mechanism it does not speak closes
        # the connection before sending its own, which would leave no reason to report.
        out: deque[memoryview] = deque([memoryview(GREETING)[:SIGNATURE_SIZE + 1]])
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
        while not self._closed.is_set():
            if ready and not out:
                with self._lock:
                    message = self._outgoing.popleft() if self._outgoing else None
                if message is not None:
                    for index, part in enumerate(message):
                        out += (memoryview(frame(part, MORE if index < len(message) - 1 else 0)), memoryview(part))
            timeout = None if ready else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                raise ZmtpError(f"{self.endpoint} accepted the connection but finished no ZMTP handshake within "
                                f"{HANDSHAKE_TIMEOUT_S:g} s")
            readable, writable, _ = select.select([connection, self._wake_reader], [connection] if out else [], [],
                                                  timeout)
            if self._wake_reader in readable:
                self._wake_reader.recv(4096)
            if writable:
                self._write(connection, out)
            if connection not in readable:
                continue
            try:
                data = connection.recv(RECV_CHUNK)
            except BlockingIOError:
                continue
            if not data:
                return
            if len(greeting) < GREETING_SIZE:
                taken = GREETING_SIZE - len(greeting)
                greeting += data[:taken]
                check_greeting(greeting, self.endpoint)
                data = data[taken:]
                if len(greeting) == GREETING_SIZE:
                    out += (memoryview(GREETING)[SIGNATURE_SIZE + 1:], memoryview(command(
                        b"READY", metadata({b"Socket-Type": b"DEALER", b"Identity": self.identity}))))
            for flags, body in reader.feed(data):
                if flags & COMMAND:
                    ready = self._command(flags, body, ready, out)
                elif not ready:
                    raise ZmtpError(f"{self.endpoint} sent a message before its READY command")
                else:
                    self._message_frame(flags, body)

    def _write(self, connection: socket.socket, out: deque[memoryview]) -> None:
        """As much of `out` as the kernel takes now."""
        while out:
            try:
                sent = connection.send(out[0][:SEND_CHUNK])
            except BlockingIOError:
                return
            out[0] = out[0][sent:]
            if out[0]:
                return
            out.popleft()

    def _command(self, flags: int, body: bytes, ready: bool, out: deque[memoryview]) -> bool:
        """Handle one command; whether the handshake is complete afterwards."""
        if flags & MORE or not body or len(body) < 1 + body[0]:
            raise ZmtpError(f"{self.endpoint} sent a malformed command")
        name, data = body[1:1 + body[0]], body[1 + body[0]:]
        if name == b"ERROR":
            reason = data[1:1 + data[0]].decode("utf-8", "replace") if data else ""
            raise ZmtpError(f"{self.endpoint} refused the connection: {reason or 'no reason given'}")
        if not ready:
            if name != b"READY":
                raise ZmtpError(f"{self.endpoint} sent {name!r} instead of READY")
            peer_type = parse_metadata(data).get(b"socket-type", b"")
            if peer_type not in PEER_TYPES:
                raise ZmtpError(f"{self.endpoint} is a {peer_type.decode('ascii', 'replace') or 'untyped'} "
                                "socket, which a DEALER cannot talk to")
            self._state = self._failure = None
            return True
        if name == b"PING":  # TTL (2 bytes), then a context to echo
            out.append(memoryview(command(b"PONG", data[2:18])))
        return True  # PONG and commands of other socket types mean nothing to a DEALER

    def _message_frame(self, flags: int, body: bytes) -> None:
        self._partial.append(body)
        if not flags & MORE:
            with self._lock:
                self._incoming.append(self._partial)
                self._lock.notify_all()
            self._partial = []
