"""`serve --log-file PATH`: everything the backend writes goes to one log that is rotated by size.

A backend started by the plug-in runs detached for days, its output in the user's cache folder. Python's
logging rotates its own records, but TensorFlow's native messages, prints and a crash's traceback go to
file descriptors 1 and 2; so each time the log is (re)opened, those descriptors are pointed at it too.
"""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

MAX_BYTES = 1024 * 1024
BACKUPS = 3  # backend.log.1 … .3: at most 4 MB in all
FORMAT = "%(asctime)s %(levelname)s %(message)s"


class RotatingLog(RotatingFileHandler):
    """A RotatingFileHandler that also carries stdout and stderr."""

    def _open(self):  # type: ignore[no-untyped-def]  (the base class leaves it unannotated)
        stream = super()._open()
        for output in (sys.stdout, sys.stderr):
            output.flush()
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        return stream

    def doRollover(self) -> None:  # noqa: N802  (the base class's name)
        """Let go of the log on descriptors 1 and 2 first: Windows cannot rename a file that is open."""
        with open(os.devnull, "w") as nowhere:
            os.dup2(nowhere.fileno(), 1)
            os.dup2(nowhere.fileno(), 2)
        super().doRollover()


def log_to(path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
    """Send logging, stdout and stderr to path, rotated at max_bytes with that many old files kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingLog(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=False)
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
