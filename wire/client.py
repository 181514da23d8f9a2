"""The one client of the dream backend: a ZeroMQ DEALER speaking wire/protocol.py.

Used by the GIMP plug-in and by the tests; standard library and pyzmq only (no NumPy). Where pyzmq
cannot be imported (GIMP for Windows' MSYS2 Python cannot load PyPI's wheels), or when asked to, the
DEALER is wire/zmtp.py's standard-library one instead: tcp:// and NULL security only.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from wire import curve, protocol, zmtp
from wire.endpoints import is_loopback

try:
    import zmq
except ImportError:
    zmq = None

Message = tuple[dict[str, Any], bytes | None]
PYZMQ = "pyzmq"
ZMTP = "zmtp"  # wire/zmtp.py
TRANSPORT_VARIABLE = "DEEP_DREAM_TRANSPORT"  # pyzmq or zmtp; unset: pyzmq when it can be imported
# How long a message may wait to be taken by libzmq. A DEALER's send blocks while it has no connection to
# queue on: after a CURVE handshake fails (keys the backend refuses, or none for a backend that wants
# them) libzmq gives the connection up within about a second, and a send after that waited forever.
SEND_TIMEOUT_S = 10.0
# What a bad endpoint or a broken socket raises, whichever the transport.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (zmtp.ZmtpError,) + ((zmq.ZMQError,) if zmq else ())


class BackendError(Exception):
    """The backend answered with an error, or could not be reached as a Deep Dream backend."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotListening(BackendError):
    """Nothing accepts connections at the endpoint: the backend can be started there."""


def tcp_address(endpoint: str) -> tuple[str, int] | None:
    """(host, port) of a tcp:// endpoint, None for other transports (ipc://, inproc://)."""
    if not endpoint.startswith("tcp://"):
        return None
    parts = urlsplit(endpoint)
    if parts.hostname is None or parts.port is None:
        raise BackendError("endpoint", f"{endpoint!r} is not a tcp://HOST:PORT endpoint")
    return parts.hostname, parts.port


def pick_transport(requested: str | None = None) -> str:
    """The transport a Client uses: the one requested, else $DEEP_DREAM_TRANSPORT, else pyzmq if it imports."""
    choice = requested or os.environ.get(TRANSPORT_VARIABLE) or (PYZMQ if zmq else ZMTP)
    if choice not in (PYZMQ, ZMTP):
        raise BackendError("transport", f"unknown transport {choice!r}: choose {PYZMQ} or {ZMTP}")
    if choice == PYZMQ and zmq is None:
        raise BackendError("transport", "the pyzmq transport was asked for, but pyzmq cannot be imported here")
    return choice


def is_listening(endpoint: str, timeout: float = 1.0) -> bool:
    """Whether anything accepts a TCP connection at the endpoint (True for non-TCP endpoints)."""
    address = tcp_address(endpoint)
    if address is None:
        return True
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


class Client:
    """A connection to one backend. Not thread-safe: use it from one thread."""

    def __init__(self, endpoint: str = protocol.DEFAULT_ENDPOINT, context: zmq.Context | None = None,
                 transport: str | None = None) -> None:
        """endpoint: a ZeroMQ endpoint, optionally with CURVE keys for a remote backend (wire/curve.py)."""
        self.transport = pick_transport(transport)  # for messages and logs too
        try:
            self.endpoint, keys = curve.split_endpoint(endpoint)
        except curve.CurveError as exc:
            raise BackendError("endpoint", str(exc)) from None
        self.max_message_bytes: int | None = None  # the backend's limit, once hello has told it
        self.secured = keys is not None
        if self.transport == ZMTP:  # NULL security only
            if keys is not None:
                raise BackendError("endpoint", f"{endpoint!r} asks for CURVE security, which needs pyzmq: the "
                                   "standard-library transport this GIMP uses speaks only unsecured ZeroMQ")
            self._socket = zmtp.DealerSocket(self.endpoint, uuid.uuid4().hex.encode())
            return
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.IDENTITY, uuid.uuid4().hex.encode())
        if keys is not None:
            curve.apply(self._socket, keys)
        self._socket.connect(self.endpoint)

    def close(self) -> None:
        self._socket.close()  # pending messages are dropped: LINGER 0

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, header: dict[str, Any], pixels: bytes | None = None, guide: bytes | None = None,
             timeout: float = SEND_TIMEOUT_S) -> None:
        """BackendError "timeout" when nothing takes the message within `timeout` seconds (see SEND_TIMEOUT_S)."""
        frames = protocol.encode(header, pixels, guide)
        largest = max(len(frame) for frame in frames)
        if self.max_message_bytes is not None and largest > self.max_message_bytes:  # libzmq would drop us silently
            raise BackendError(protocol.E_TOO_LARGE, f"this {header.get('type')} message has a {largest:,}-byte "
                               f"frame; the backend at {self.endpoint} takes at most {self.max_message_bytes:,}: "
                               "dream a smaller layer or selection")
        self._put(frames, repr(header.get("type")), timeout)

    def send_frames(self, frames: list[bytes]) -> None:
        """Raw frames, for tests that speak malformed messages on purpose."""
        self._put(frames, "raw", SEND_TIMEOUT_S)

    def _put(self, frames: list[bytes], kind: str, timeout: float) -> None:
        """Hand a message to the transport, waiting at most `timeout` seconds (see SEND_TIMEOUT_S)."""
        if self.transport == ZMTP:  # queues without blocking, up to a limit of its own
            self._socket.send_multipart(frames, copy=False)
            return
        self._socket.setsockopt(zmq.SNDTIMEO, max(1, int(timeout * 1000)))
        try:
            self._socket.send_multipart(frames, copy=False)
        except zmq.Again:
            raise BackendError("timeout", f"nothing at {self.endpoint} took the {kind} message within "
                               f"{timeout:g} s") from None

    def receive(self, timeout: float) -> Message | None:
        """The next message, or None when none arrives within timeout seconds."""
        if not self._socket.poll(int(timeout * 1000)):
            return None
        return protocol.decode(self._socket.recv_multipart())

    def request(self, header: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a request and return its reply's header; BackendError on an error reply or a time-out."""
        deadline = time.monotonic() + timeout
        self.send(header, timeout=timeout)
        while (left := deadline - time.monotonic()) > 0:
            reply = self.receive(left)
            if reply is None:
                break
            message, _ = reply
            if message["type"] == protocol.ERROR:
                raise BackendError(message.get("code", "error"), message.get("message", "error"))
            if message["type"] == header["type"]:
                return message
        problem = self._why_silent()
        raise BackendError("timeout", f"no answer to {header['type']!r} from {self.endpoint} within {timeout:g} s"
                           + (f" ({problem})" if problem else ""))

    def _keys_hint(self) -> str:
        """What keys may have to do with a silent endpoint: CURVE gives a refused key no answer at all."""
        if self.secured:
            return (" or, if it is a backend secured with CURVE, it does not accept these keys: check that "
                    "server_key is its server.key and that this client's public key is in its "
                    "authorized_clients folder")
        if not is_loopback(self.endpoint):
            return (" or, if it is a backend on another machine, give its keys: ENDPOINT?server_key=FILE&"
                    "client_key=FILE (README: Dreaming on a GPU machine from a laptop)")
        return ""

    def _why_silent(self) -> str | None:
        """What the standard-library transport knows of a silent peer (pyzmq tells nothing), for messages."""
        return self._socket.problem if self.transport == ZMTP else None

    def hello(self, timeout: float = 5.0) -> dict[str, Any]:
        """The backend's hello. Tells a stopped backend, a foreign program and another protocol apart."""
        if not is_listening(self.endpoint):
            raise NotListening("not_listening", f"no Deep Dream backend is running at {self.endpoint}")
        try:
            reply = self.request(protocol.hello_request(), timeout)
        except BackendError as exc:
            if exc.code == "timeout":
                hint = self._keys_hint()
                problem = self._why_silent()
                raise BackendError(
                    "not_backend",
                    f"something is listening at {self.endpoint} but it does not answer as a Deep Dream backend "
                    f"(no hello within {timeout:g} s{'; ' + problem if problem else ''}); stop it or choose another "
                    f"endpoint{hint}",
                ) from None
            raise
        if reply.get("protocol") != protocol.PROTOCOL_VERSION:
            raise BackendError(
                protocol.E_PROTOCOL,
                f"the backend at {self.endpoint} speaks protocol {reply.get('protocol')}, "
                f"this plug-in speaks {protocol.PROTOCOL_VERSION}: update both from the same release",
            )
        limit = reply.get("max_message_bytes")
        self.max_message_bytes = limit if type(limit) is int and limit > 0 else None
        return reply

    def presets(self, timeout: float = 5.0) -> dict[str, Any]:
        return self.request(protocol.presets_request(), timeout)["presets"]

    def dream(
        self,
        job: str | int,
        pixels: bytes,
        width: int,
        height: int,
        channels: int,
        preset: str,
        iterations: int,
        params: dict[str, Any] | None = None,
        seed: int | None = None,
        max_size: int = 0,
        guide: tuple[bytes, int, int, int] | None = None,
        *,
        sample_format: str = protocol.U8,
    ) -> None:
        """Submit a dream; its events (accepted, progress, iteration, done, …) arrive through receive().
        guide: (pixels, width, height, channels) of an 8-bit guide image to dream toward. sample_format (u8, u16
        or f32) is that of `pixels` and of the iterations that come back."""
        shape = guide[1:] if guide else None
        self.send(protocol.dream_request(job, width, height, channels, preset, iterations, params, seed, max_size,
                                         shape, sample_format=sample_format), pixels, guide[0] if guide else None)

    def animate(self, job: str | int, pixels: bytes, width: int, height: int, channels: int, preset: str,
                iterations: int, frames: int, **animation: Any) -> None:
        """Submit a dream animation (protocol.animate_request's keywords: zoom, rotate, pan, centre, blend,
        params, seed, max_size); its events (accepted, progress, frame, done, …) arrive through receive()."""
        self.send(protocol.animate_request(job, width, height, channels, preset, iterations, frames, **animation),
                  pixels)

    def cancel(self, job: str | int) -> None:
        self.send(protocol.cancel_request(job))
