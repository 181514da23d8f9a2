"""CURVE keys in the endpoint text, for a backend on another machine (backend/service/security.py).

The plug-in has one text setting for the backend, so the keys ride along as a query:

    tcp://gpu-box:5570?server_key=/path/server.key&client_key=/path/laptop.key_secret

`server_key` is the backend's public key file, `client_key` this machine's secret key file, both as
`python -m backend keys DIR` writes them. The paths are taken as written (no %-decoding; Windows paths
work), so a path may not contain "&". Standard library and pyzmq.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPTIONS = ("server_key", "client_key")


class CurveError(ValueError):
    """An endpoint whose keys cannot be used; the message says which and why."""


@dataclass(frozen=True)
class CurveKeys:
    server_public: bytes
    public: bytes
    secret: bytes


def split_endpoint(text: str) -> tuple[str, CurveKeys | None]:
    """The ZeroMQ endpoint and the CURVE keys named in its query (None without one)."""
    endpoint, _, query = text.partition("?")
    if not query:
        return endpoint, None
    options = dict(part.partition("=")[::2] for part in query.split("&"))
    unknown = sorted(set(options) - set(OPTIONS))
    missing = [name for name in OPTIONS if not options.get(name)]
    if unknown or missing:
        raise CurveError(f"the endpoint {text!r} needs exactly server_key=FILE&client_key=FILE after the '?'"
                        + (f" (unknown: {', '.join(unknown)})" if unknown else "")
                        + (f" (missing: {', '.join(missing)})" if missing else ""))
    server_public, _ = _load(Path(options["server_key"]), "server_key")
    public, secret = _load(Path(options["client_key"]), "client_key")
    if secret is None:
        raise CurveError(f"client_key={options['client_key']} holds no secret key: give this machine's "
                        "NAME.key_secret file, not NAME.key")
    return endpoint, CurveKeys(server_public, public, secret)


def _load(path: Path, option: str) -> tuple[bytes, bytes | None]:
    try:
        import zmq.auth  # only CURVE needs it: the plug-in works without pyzmq otherwise (wire/zmtp.py)
    except ImportError:
        raise CurveError(f"{option}: CURVE keys need pyzmq, which this Python does not have") from None
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise CurveError(f"{option}={path} cannot be read as a ZeroMQ key file: {exc}") from None


def apply(socket: Any, keys: CurveKeys) -> None:
    """Make a client socket speak CURVE to the server with that public key (before it connects)."""
    socket.curve_serverkey = keys.server_public
    socket.curve_publickey = keys.public
    socket.curve_secretkey = keys.secret
