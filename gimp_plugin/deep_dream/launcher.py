"""Finding the backend, or starting it: hello at the endpoint, else the command install.py recorded.

install.py writes backend.json next to the plug-in: {"command": [python, "-m", "backend", "serve"], "cwd": repo}.
The backend is started detached (its own session, no inherited stdin, output to a log file in the user's
cache folder, which it rotates), so it outlives the plug-in and serves later runs without loading VGG16 again;
it exits by itself after IDLE_TIMEOUT_S without work (DEEP_DREAM_IDLE_TIMEOUT overrides it, 0 = never).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wire import protocol, user_folders
from wire.client import BackendError, Client, NotListening, is_listening
from wire.endpoints import is_loopback

LAUNCH_FILE = "backend.json"
START_MESSAGE = "Starting the Deep Dream backend (it loads its picture-recognition network)…"
START_TIMEOUT_S = 120.0
HELLO_TIMEOUT_S = 5.0
POLL_S = 0.25
LOG_TAIL_LINES = 6
STOPPED_MESSAGE = "stopped while the backend was starting (it goes on starting in the background)"
IDLE_TIMEOUT_S = 1800  # the model stays warm between runs, but not for days after the last one
IDLE_VARIABLE = "DEEP_DREAM_IDLE_TIMEOUT"


class LaunchError(Exception):
    """The backend could not be started; the message says why and what to do."""


class Stopped(Exception):
    """The user stopped the run while the backend was starting."""


@dataclass(frozen=True)
class LaunchCommand:
    command: list[str]
    cwd: str | None = None


@dataclass(frozen=True)
class Backend:
    hello: dict
    started: subprocess.Popen | None  # the process this plug-in started, None when one was running


def read_launch_file(path: Path) -> LaunchCommand:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LaunchError(f"{path} is missing, so the backend cannot be started: run install.py again") from None
    except (OSError, ValueError) as exc:
        raise LaunchError(f"{path} is unreadable ({exc}): run install.py again") from None
    command = data.get("command") if isinstance(data, dict) else None
    if not isinstance(command, list) or not command or not all(isinstance(part, str) for part in command):
        raise LaunchError(f'{path} has no "command" list: run install.py again')
    cwd = data.get("cwd")
    return LaunchCommand(command, cwd if isinstance(cwd, str) else None)


def log_file() -> Path:
    return user_folders.cache_dir() / "backend.log"


def is_local(endpoint: str) -> bool:
    """Whether a backend for this endpoint can be started here: TCP on a loopback address, which is
    also all the backend binds without CURVE keys."""
    return endpoint.startswith("tcp://") and is_loopback(endpoint)


def idle_timeout() -> int:
    """Seconds a backend we start waits for work before it exits: IDLE_VARIABLE, else IDLE_TIMEOUT_S."""
    text = os.environ.get(IDLE_VARIABLE, "").strip()
    if not text:
        return IDLE_TIMEOUT_S
    if not text.isdigit():
        raise LaunchError(f"{IDLE_VARIABLE}={text!r} must be a whole number of seconds (0 = never exit)")
    return int(text)


def start_backend(launch: LaunchCommand, endpoint: str, log: Path) -> subprocess.Popen:
    """Start `command --bind ENDPOINT …` detached from the plug-in. Its output goes to the log until the
    backend takes the log over itself (--log-file), to rotate it."""
    command = [*launch.command, "--bind", endpoint, "--idle-timeout", str(idle_timeout()), "--log-file", str(log)]
    if launch.cwd is not None and not Path(launch.cwd).is_dir():
        raise LaunchError(f"cannot start the Deep Dream backend: its folder {launch.cwd} does not exist; "
                          "run install.py again")
    log.parent.mkdir(parents=True, exist_ok=True)
    detach: dict = {"start_new_session": True}
    if sys.platform == "win32":
        detach = {"creationflags": subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP}
    with log.open("ab") as output:
        output.write(f"\n---- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(command)}\n".encode())
        output.flush()
        try:
            return subprocess.Popen(command, cwd=launch.cwd, stdin=subprocess.DEVNULL, stdout=output,
                                    stderr=subprocess.STDOUT, close_fds=True, **detach)
        except OSError as exc:
            raise LaunchError(f"cannot start the Deep Dream backend with {command[0]}: {exc.strerror or exc}. "
                              "Run install.py again, or start it yourself: python -m backend serve "
                              f"--bind {endpoint}") from None


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def exited(process: subprocess.Popen, log: Path) -> LaunchError:
    tail = log_tail(log)
    return LaunchError(f"the Deep Dream backend exited during start-up (exit status {process.returncode}); "
                       f"see {log}" + (f":\n{tail}" if tail else ""))


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True


def connect(
    client: Client,
    launch_file: Path,
    on_status: Callable[[str], None] = lambda text: None,
    pause: Callable[[float], bool] | None = None,
    timeout: float = START_TIMEOUT_S,
    log: Path | None = None,
) -> Backend:
    """The backend at the client's endpoint, started first if nothing listens there.

    `pause(seconds)` waits (an interactive caller keeps its window alive meanwhile) and returns False when
    the user wants to stop. BackendError passes through: something else on the port, another protocol; a
    reply that is not in the Deep Dream protocol at all becomes one too.
    """
    try:
        return _connect(client, launch_file, on_status, pause or _sleep, timeout, log or log_file())
    except protocol.ProtocolError as exc:
        raise BackendError(
            "not_backend",
            f"something at {client.endpoint} answered, but not in the Deep Dream protocol: {exc.message}; "
            "stop it or choose another endpoint",
        ) from None


def _connect(client: Client, launch_file: Path, on_status: Callable[[str], None], pause: Callable[[float], bool],
             timeout: float, log: Path) -> Backend:
    try:
        return Backend(client.hello(HELLO_TIMEOUT_S), None)
    except NotListening:
        if not is_local(client.endpoint) or client.secured:  # keys: a backend its owner runs with --curve
            raise
    process = start_backend(read_launch_file(launch_file), client.endpoint, log)
    on_status(START_MESSAGE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_listening(client.endpoint, POLL_S):  # first: another run's backend may have won the port
            return Backend(_first_hello(client, process, deadline, pause, log), process)
        if process.poll() is not None:
            raise exited(process, log)
        if not pause(POLL_S):
            raise Stopped(STOPPED_MESSAGE)
    raise LaunchError(f"the Deep Dream backend did not answer within {timeout:g} s of starting; it may still be "
                      f"loading: try again in a minute, or see {log}")


def _first_hello(client: Client, process: subprocess.Popen, deadline: float, pause: Callable[[float], bool],
                 log: Path) -> dict:
    """The hello of the backend we started, which may bind its port well before it answers (while it loads).

    One hello is sent and awaited until the start deadline, in slices (Stop and the window stay alive). Once
    anything answers, or our process has exited (then someone else holds the port), Client.hello asks
    again and judges the answer: the first reply only tells that the peer is awake.
    """
    client.send(protocol.hello_request())
    while time.monotonic() < deadline:
        if client.receive(0) is not None:
            return client.hello(HELLO_TIMEOUT_S)
        if process.poll() is not None:
            if not is_listening(client.endpoint, POLL_S):
                raise exited(process, log)
            return client.hello(HELLO_TIMEOUT_S)
        if not pause(POLL_S):
            raise Stopped(STOPPED_MESSAGE)
    raise BackendError("not_backend",
                       f"the Deep Dream backend started at {client.endpoint} listens but did not answer before the "
                       f"start-up deadline: it may still be loading (try again in a minute, or see {log}), or "
                       "another program holds the port (stop it or choose another endpoint)")
