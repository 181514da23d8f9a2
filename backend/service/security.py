"""Who may talk to the backend: anyone on this machine, or — with CURVE — the clients whose keys are listed.

Without keys the backend binds only loopback addresses: whoever reaches the port can make it compute and
read what it dreams, so another machine must prove who it is. With `--curve DIR` ZeroMQ's CURVE encrypts
every message and a ZAP handler (pyzmq's ThreadAuthenticator) admits only the public keys in
DIR/authorized_clients/. Key files are ZeroMQ's own certificate format (zmq.auth).

DIR, as `python -m backend keys DIR` makes it:
    server.key, server.key_secret      the backend's key pair (server.key is public: clients need it)
    authorized_clients/NAME.key        a public key per client allowed in (delete one to refuse it)
    clients/NAME.key, NAME.key_secret  each client's pair, to copy to that machine
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from wire.endpoints import is_loopback

SERVER = "server"
AUTHORIZED = "authorized_clients"
CLIENTS = "clients"
DEFAULT_CLIENT = "laptop"


class SecurityError(Exception):
    """The keys cannot be used, or an address would be open without them; the message says what to do."""


def check_bind(endpoint: str, curve_dir: Path | None) -> None:
    """SecurityError for a bind other machines could reach while no CURVE keys are configured."""
    if curve_dir is None and not is_loopback(endpoint):
        raise SecurityError(
            f"refusing to bind {endpoint} without CURVE keys: other machines could use this backend. Bind a "
            "loopback address (tcp://127.0.0.1:PORT), or create keys with `python -m backend keys DIR` and "
            "serve with --curve DIR (README: Dreaming on a GPU machine from a laptop)"
        )


def create_keys(directory: Path, clients: list[str]) -> list[Path]:
    """The server's key pair (kept if it exists) and a new pair per client, authorised; the files written."""
    written: list[Path] = []
    for sub in (AUTHORIZED, CLIENTS):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    private = os.umask(0o077)  # secret keys are never readable by others, not even for a moment
    try:
        if not (directory / f"{SERVER}.key_secret").exists():
            written += [Path(p) for p in zmq.auth.create_certificates(directory, SERVER)]
        for name in clients:
            if (directory / CLIENTS / f"{name}.key").exists():
                raise SecurityError(f"{directory / CLIENTS / name}.key exists already: choose another client name")
            public, secret = (Path(p) for p in zmq.auth.create_certificates(directory / CLIENTS, name))
            authorised = directory / AUTHORIZED / public.name
            authorised.write_bytes(public.read_bytes())
            written += [public, secret, authorised]
    finally:
        os.umask(private)
    return written


def load_server_keys(directory: Path) -> tuple[bytes, bytes, list[str]]:
    """The server's public and secret key and the authorised clients' names; SecurityError saying what to do."""
    secret_file = directory / f"{SERVER}.key_secret"
    authorised = directory / AUTHORIZED
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot read the server's secret key {secret_file} ({exc}): create it with "
                            f"`python -m backend keys {directory}`") from None
    if secret is None:
        raise SecurityError(f"{secret_file} holds no secret key")
    keys = sorted(authorised.glob("*.key")) if authorised.is_dir() else []
    for key in keys:  # pyzmq's authenticator skips the lot, silently, when one file is bad: say which
        try:
            zmq.auth.load_certificate(key)
        except (OSError, ValueError) as exc:
            raise SecurityError(f"{key} is not a ZeroMQ public key file ({exc}): remove it or replace it with "
                                "a client's NAME.key from `python -m backend keys`") from None
    clients = [key.stem for key in keys]
    if not clients:
        raise SecurityError(f"no client may connect: {authorised} has no public keys (*.key); add one with "
                            f"`python -m backend keys {directory} --client NAME`")
    return public, secret, clients


class CurveServer:
    """CURVE on the backend's socket, admitting the keys in DIR/authorized_clients/ (read at start-up)."""

    def __init__(self, context: zmq.Context, directory: Path) -> None:
        self.public, self.secret, self.clients = load_server_keys(directory)
        self.authenticator = ThreadAuthenticator(context)
        self.authenticator.start()
        self.authenticator.configure_curve(domain="*", location=str(directory / AUTHORIZED))

    def apply(self, socket: zmq.Socket) -> None:
        socket.curve_secretkey = self.secret
        socket.curve_publickey = self.public
        socket.curve_server = True

    def close(self) -> None:
        self.authenticator.stop()
