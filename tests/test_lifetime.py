"""A backend's life as the plug-in sees it: started detached, killed, started afresh, idle, gone; its log.

Real processes throughout: the launcher starts `python -m backend serve` as install.py's backend.json
says (hed weights: no network here), with a short DEEP_DREAM_IDLE_TIMEOUT.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, free_endpoint
from tests.test_server import dream, wait_for
from wire.client import Client

sys.path.insert(0, str(ROOT / "gimp_plugin" / "deep_dream"))

import launcher  # noqa: E402

IDLE_S = 3


def launch_file(tmp_path: Path) -> Path:
    path = tmp_path / "backend.json"
    path.write_text(json.dumps({"command": [sys.executable, "-m", "backend", "serve", "--weights", "hed"],
                                "cwd": str(ROOT)}))
    return path


def test_killed_then_started_afresh_then_gone_when_idle(tmp_path, monkeypatch):
    monkeypatch.setenv(launcher.IDLE_VARIABLE, str(IDLE_S))
    endpoint, log = free_endpoint(), tmp_path / "cache" / "backend.log"
    processes: list[subprocess.Popen] = []
    try:
        with Client(endpoint) as client:
            first = launcher.connect(client, launch_file(tmp_path), log=log)
            processes.append(first.started)
            first.started.kill()  # the backend crashes (or is killed) between two runs
            first.started.wait(30)
        with Client(endpoint) as client:  # the next run
            second = launcher.connect(client, launch_file(tmp_path), log=log)
            processes.append(second.started)
            assert second.started is not None and second.started.pid != first.started.pid
            # Busy for longer than the idle time-out: a running dream is not idleness.
            dream(client, "long", width=96, height=96, iterations=500)
            wait_for(client, "long", "started")
            time.sleep(IDLE_S + 1)
            assert second.started.poll() is None
            client.cancel("long")
            wait_for(client, "long", "cancelled")
            last_word = time.monotonic()
        # Then it goes by itself, cleanly, and not before its idle time: the wait bounds it from above
        # (generously: a loaded machine takes seconds to tear TensorFlow down).
        assert second.started.wait(IDLE_S + 15) == 0
        assert time.monotonic() - last_word >= IDLE_S
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    text = log.read_text()
    assert text.count("backend ready on") == 2 and f"--idle-timeout {IDLE_S}" in text
    assert f"idle for {IDLE_S} s: stopping" in text and "Deep Dream backend stopped" in text


ROTATING = """
import logging, os, sys
from pathlib import Path
from backend.logfile import log_to
log_to(Path(sys.argv[1]), max_bytes=2000, backups=2)
for index in range(200):
    logging.info("record %d", index)
    if index % 50 == 0:
        os.write(2, b"native stderr %d\\n" % index)  # as TensorFlow's C++ code writes
        print("stdout", index, flush=True)
os.write(2, b"native stderr at the end\\n")
print("stdout at the end", flush=True)
"""


def test_the_log_is_rotated_and_carries_all_output(tmp_path):
    log = tmp_path / "logs" / "backend.log"
    subprocess.run([sys.executable, "-c", ROTATING, str(log)], cwd=ROOT, check=True, timeout=60)
    files = sorted(path.name for path in log.parent.iterdir())
    assert files == ["backend.log", "backend.log.1", "backend.log.2"]
    assert all(path.stat().st_size <= 2100 for path in log.parent.iterdir())
    current = log.read_text()  # after many rotations, descriptors 1 and 2 still write to the current file
    assert "record 199" in current and "native stderr at the end" in current and "stdout at the end" in current
    kept = "".join(path.read_text() for path in log.parent.iterdir())
    assert "native stderr 150" in kept and "stdout 150" in kept and "record 0\n" not in kept
