"""The interactive path in GIMP 3's real GUI (under Xvfb): the progress window's Stop button.

A real backend runs on the host; GIMP's GUI (3.0 and 3.2, see conftest.py) runs in the chroot of
tools/gimp3_root.sh on an Xvfb screen,
with a throw-away profile the plug-in was installed into by install.py. tests/gimp/batch_interactive.py,
fed to the GUI's python-fu-eval, opens an image in a display, selects a rectangle and runs a 200-iteration
dream the way Filters ▸ Repeat does (WITH_LAST_VALS): our progress window shows, no settings dialog. The image
window's title is set (gimprc image-title-format) to show the active drawable, which must be the newest
dreamt layer (not its mask, which Repeat would refuse), so the test sees from the host, with xdotool, when
layers have arrived in GIMP. Then it presses Alt+S ("_Stop") in
the window titled "Deep Dream" and judges the batch script's report, GIMP's output and the backend's log.
After the report it presses Ctrl+Z (Undo) once in the image window, then Ctrl+Y (Redo), and the batch script
(waiting for a signal file after each) records the layers again: one undo must take back the whole run. Last,
with a short dream as the last values, the batch script runs the dream again the way Filters ▸ Repeat does:
on the drawable GIMP has selected after all that, which must be the newest layer, not its mask.
Skipped without GIMP (and Xvfb, xdotool), unless CI=true: then that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import ROOT, USER_PRESETS, BackendProcess
from tests.gimp.conftest import GimpRoot, install_plugin, unavailable
from tools.gimp_screenshot import end, start, write_last_values, write_session

BATCH = Path(__file__).with_name("batch_interactive.py")
PRESET = "tiny"
ITERATIONS = 200  # ~4 per second at this size on a 2-core CPU: a minute, so Stop comes long before the end
WIDTH = 96
INSET = 8  # the selection: the image less this margin on every side
WANT_LAYERS = 2  # press Stop once GIMP shows this many dreamt layers
TITLE_FORMAT = "dd-test[%n]"  # the image window's title: the active drawable's name (the newest layer)
SHOWN = re.compile(r"^dd-test\[(.*)\]")  # GIMP appends " – GIMP" to the format
LAYER_TITLE = re.compile(r"dd-test\[" + re.escape(PRESET) + r" (\d+)\]")
PROGRESS_TITLE = "^Deep Dream$"  # our progress window (GimpUi.Dialog title=TITLE)
START_TIMEOUT_S = 120  # GIMP's first start with a fresh profile queries every plug-in: ~7 s here
STOP_TIMEOUT_S = 20  # from the key press to the report: the plug-in polls every 50 ms, the backend stops at once
EXIT_TIMEOUT_S = 60
# Pressed in the image window after the report, in this order. GIMP 3's Redo is Ctrl+Y: Ctrl+Shift+Z is
# Strong Undo there (gimp-edit-strong-undo in gimp-3.0.4's action table).
KEYS = {"undo": "ctrl+z", "redo": "ctrl+y"}
KEY_TIMEOUT_S = 5  # from a key press to the image window's new title (the active layer changes)
STAGE_TIMEOUT_S = 10  # from the signal file to the batch script's record of the layers (it polls every 0.1 s)
REPEAT_ITERATIONS = 1
REPEAT_TIMEOUT_S = 120  # a one-iteration dream of the selection, on a busy machine

T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T | None:
    """check() until it returns something other than None (returned), for at most timeout seconds (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def in_root(gimp: GimpRoot, *command: str, env: dict[str, str] | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(gimp.command(*command), env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


class Screen:
    """An Xvfb screen in the root (display number chosen by Xvfb itself: -displayfd) and xdotool on it."""

    def __init__(self, gimp: GimpRoot) -> None:
        self.gimp = gimp
        read, write = os.pipe()
        answer = b""
        try:
            self.process = start(gimp.command("Xvfb", "-displayfd", str(write), "-screen", "0", "1100x700x24",
                                              "-nolisten", "tcp"), pass_fds=(write,),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            os.close(write)
            # Xvfb writes the number and the newline separately, and dies if the pipe is closed in between.
            deadline = time.monotonic() + 30
            while not answer.endswith(b"\n") and time.monotonic() < deadline:
                ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(read, 32) if ready else b""
                if not chunk:
                    break  # Xvfb exited, or the time is up
                answer += chunk
        finally:
            os.close(read)
        number = answer.decode().strip()
        if not answer.endswith(b"\n") or not number.isdigit():
            end(self.process)
            pytest.fail(f"Xvfb did not report a display number within 30 s (it said {answer!r})")
        self.display = f":{number}"

    def xdotool(self, *arguments: str) -> subprocess.CompletedProcess:
        return in_root(self.gimp, "xdotool", *arguments, env={"GIMP3_PASS_ENV": "DISPLAY", "DISPLAY": self.display})

    def windows(self, name: str) -> dict[str, str]:
        """Visible windows whose title matches the regular expression: {id: title}."""
        found = self.xdotool("search", "--onlyvisible", "--name", name)
        titles = {}
        for window in found.stdout.split():
            titles[window] = self.xdotool("getwindowname", window).stdout.rstrip("\n")
        return titles

    def close(self) -> None:
        end(self.process)


def start_gui(gimp: GimpRoot, screen: Screen, work: Path, endpoint: str, script: str,
              **env: str) -> tuple[subprocess.Popen, Path]:
    """GIMP's GUI on the screen, running the batch script (python-fu-eval, on stdin) and then quitting; its
    profile, caches, the user's presets (config/) and the script's settings (config.json) in `work`, the
    plug-in's backend at `endpoint`, and `env` on top. Its output goes to work/gimp.log: (GIMP, the log)."""
    inside = gimp.inside(work)
    env = {"DISPLAY": screen.display, "GIMP3_DIRECTORY": f"{inside}/profile", "GIMP3_CACHEDIR": f"{inside}/cache",
           "DEEP_DREAM_ENDPOINT": endpoint, "DEEP_DREAM_CONFIG_DIR": f"{inside}/config",
           "XDG_CACHE_HOME": f"{inside}/xdg-cache", "DD_TEST_CONFIG": f"{inside}/config.json", **env}
    log = work / "gimp.log"
    with log.open("w") as output:
        process = start(gimp.command(gimp.gui, "--no-splash", "--console-messages",
                                     "--batch-interpreter=python-fu-eval", "-b", "-", "--quit"),
                        {**env, "GIMP3_PASS_ENV": " ".join(env)},
                        stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT, text=True)
    process.stdin.write(script)
    process.stdin.close()
    return process, log


def press_in_image_window(screen: Screen, key: str) -> dict[str, Any]:
    """Focus the image window and press the key: no click, which the active tool could turn into a stroke.
    GIMP has handled the key when the title (the active layer) changes: waited for, at most KEY_TIMEOUT_S."""
    windows = screen.windows(r"^dd-test\[")
    if len(windows) != 1:
        return {"error": f"not exactly one image window: {windows}"}
    window, before = next(iter(windows.items()))
    press = screen.xdotool("windowfocus", "--sync", window, "key", key)
    if press.returncode != 0:
        return {"error": f"xdotool could not press {key} in the image window: {press.stderr}"}

    def new_title() -> str | None:
        title = screen.xdotool("getwindowname", window).stdout.rstrip("\n")
        return title if title != before else None

    titles = [before, wait_until(new_title, KEY_TIMEOUT_S, 0.1) or before]
    return {"shown": [match.group(1) if (match := SHOWN.match(title)) else title for title in titles]}


@pytest.fixture(scope="module")
def stopped(gimp: GimpRoot, gimp_backend: BackendProcess) -> Iterator[dict[str, Any]]:
    """One GIMP GUI run: a long dream, Stop pressed once layers have arrived; what everything says after."""
    tools = in_root(gimp, "sh", "-c", "command -v Xvfb && command -v xdotool")
    if tools.returncode != 0:
        unavailable(f"Xvfb or xdotool missing in the GIMP {gimp.version} root "
                    f"(run tools/gimp3_root.sh --gimp {gimp.version} ensure): {tools.stdout}")
    work = gimp.folder("deep-dream-gimp-gui-")
    inside = gimp.inside(work)
    backend = gimp_backend
    logged = len(backend.output)  # the backend serves both versions: this run's part of its log starts here
    screen = process = None
    try:
        screen = Screen(gimp)
        profile = work / "profile"
        install_plugin(profile)
        (profile / "gimprc").write_text(f'(show-welcome-dialog no)\n(image-title-format "{TITLE_FORMAT}")\n')
        write_session(profile)
        last_values = {"preset": PRESET, "iterations": ITERATIONS, "keep-every": 1, "max-size": 0, "seed": 1,
                       "endpoint": backend.endpoint}
        write_last_values(profile, last_values)
        (work / "config").mkdir()
        (work / "config" / "presets.json").write_text(json.dumps(USER_PRESETS))
        shutil.copy(ROOT / "samples" / "chelsea.png", work / "chelsea.png")
        (work / "config.json").write_text(json.dumps({"out": inside, "image": f"{inside}/chelsea.png",
                                                      "width": WIDTH, "inset": INSET}))
        process, log = start_gui(gimp, screen, work, backend.endpoint, BATCH.read_text())
        report_file = work / "report.json"

        def gimp_output() -> str:
            return log.read_text(errors="replace")[-6000:]

        def layers_shown() -> int | None:
            """The newest dreamt layer's number once it is WANT_LAYERS or more; fails if the run ended first."""
            if report_file.exists() or process.poll() is not None:
                pytest.fail(f"the dream ended before Stop could be pressed:\n{gimp_output()}")
            numbers = [int(match.group(1)) for title in screen.windows(r"^dd-test\[").values()
                       if (match := LAYER_TITLE.search(title))]
            return max(numbers) if numbers and max(numbers) >= WANT_LAYERS else None

        shown = wait_until(layers_shown, START_TIMEOUT_S)
        if shown is None:
            pytest.fail(f"GIMP showed no {WANT_LAYERS} dreamt layers within {START_TIMEOUT_S} s:\n{gimp_output()}")
        progress = screen.windows(PROGRESS_TITLE)
        assert len(progress) == 1, f"not exactly one progress window titled 'Deep Dream': {progress}"
        window = next(iter(progress))
        pressed_at = time.monotonic()
        press = screen.xdotool("windowfocus", "--sync", window, "key", "alt+s")
        assert press.returncode == 0, f"xdotool could not press Alt+S in the progress window: {press.stderr}"
        if not wait_until(lambda: report_file.exists() or None, STOP_TIMEOUT_S):
            pytest.fail(f"the dream went on for {STOP_TIMEOUT_S} s after Stop was pressed (it would have run "
                        f"{ITERATIONS} iterations):\n{gimp_output()}")
        stop_seconds = time.monotonic() - pressed_at
        report = json.loads(report_file.read_text())
        wait_until(lambda: any(" cancelled" in line for line in backend.output[logged:]) or None, 10)  # judged below
        backend_log = "".join(backend.output[logged:])  # of the stopped run: the repeated one comes next
        after: dict[str, dict[str, Any]] = {}
        for stage, key in KEYS.items():
            after[stage] = press_in_image_window(screen, key)
            (work / f"{stage}.pressed").touch()  # the batch script records the layers now
            layers_file = work / f"{stage}.json"
            if wait_until(lambda file=layers_file: file.exists() or None, STAGE_TIMEOUT_S, 0.1):
                after[stage]["report"] = json.loads(layers_file.read_text())
        write_last_values(profile, {**last_values, "iterations": REPEAT_ITERATIONS})
        (work / "repeat.pressed").touch()
        repeat_file = work / "repeat.json"
        if wait_until(lambda: repeat_file.exists() or None, REPEAT_TIMEOUT_S):
            after["repeat"] = json.loads(repeat_file.read_text())
        try:
            process.wait(EXIT_TIMEOUT_S)  # --quit: GIMP ends after the batch script
        except subprocess.TimeoutExpired:
            pytest.fail(f"GIMP did not quit within {EXIT_TIMEOUT_S} s after the batch script:\n{gimp_output()}")
        yield {"report": report, "output": log.read_text(errors="replace"), "backend_log": backend_log,
               "shown": shown, "stop_seconds": stop_seconds, "gimp_exit": process.returncode, "after": after}
    finally:
        end(process)
        if screen is not None:
            screen.close()
        shutil.rmtree(work, ignore_errors=True)


def test_stop_returns_cancel(stopped):
    report = stopped["report"]
    assert "exception" not in report, report["exception"]
    assert (report["status"], report["status_value"]) == ("cancel", 4), report
    assert stopped["stop_seconds"] < STOP_TIMEOUT_S
    assert stopped["gimp_exit"] == 0, stopped["output"][-4000:]


def test_the_layers_received_are_kept(stopped):
    report = stopped["report"]
    layers = report["layers"]
    assert layers["top"] == [f"Dream: {PRESET}", "source"]
    names = [child["name"] for child in layers["children"]]
    # at least those GIMP showed before Stop was pressed, far fewer than asked for, newest on top, none missing
    assert stopped["shown"] <= len(names) < ITERATIONS
    assert names == [f"{PRESET} {n}" for n in range(len(names), 0, -1)]
    x, y, width, height = report["selection"]
    for child in layers["children"]:
        assert (child["size"], child["offsets"], child["mask"]) == ([width, height], [x, y], True)
        assert child["differs"], f"{child['name']} is the source"


def test_the_newest_layer_itself_is_active_after_the_run(stopped):
    """Not its mask: GIMP makes a new mask the active drawable, and Filters ▸ Repeat refuses a layer mask."""
    newest = stopped["report"]["layers"]["children"][0]["name"]
    assert stopped["report"]["selected"] == [{"name": newest, "mask": False}]


def test_the_saved_image_reloads_with_those_layers(stopped):
    report = stopped["report"]
    assert report["reloaded"] == report["layers"]


def test_the_backend_cancelled_the_job(stopped):
    log = stopped["backend_log"]
    accepted = re.findall(r"job '(\w+)' accepted", log)
    assert len(accepted) == 1, log
    assert f"job '{accepted[0]}' cancelled" in log, log
    # ... because the plug-in asked: a backend also cancels a job whose client has gone away, and says so
    assert f"client of job '{accepted[0]}' is gone" not in log, log


def test_undo_is_left_consistent(stopped):
    output = stopped["output"]
    assert "deep-dream-test: GIMP messages reach the console" in output  # so the next line could see one
    assert "left image undo in inconsistent state" not in output
    assert stopped["report"]["undo_enabled"]


def test_one_undo_removes_the_whole_run(stopped):
    """GIMP's PDB can neither count nor perform undo steps; its GUI can: one Ctrl+Z leaves the image as before."""
    assert stopped["report"]["layers"]["group"] == f"Dream: {PRESET}"  # there was a run to take back
    undo = stopped["after"]["undo"]
    assert "error" not in undo, undo["error"]
    assert "report" in undo, f"the batch script recorded no layers after Ctrl+Z:\n{stopped['output'][-4000:]}"
    assert undo["report"].get("layers") == {"top": ["source"], "group": None, "children": []}, undo
    assert undo["shown"][1] == "source", undo  # and the display shows it


def test_redo_brings_it_back(stopped):
    redo = stopped["after"]["redo"]
    assert "error" not in redo, redo["error"]
    assert "report" in redo, f"the batch script recorded no layers after Ctrl+Y:\n{stopped['output'][-4000:]}"
    assert redo["report"].get("layers") == stopped["report"]["layers"], redo
    newest = stopped["report"]["layers"]["children"][0]["name"]
    assert redo["shown"] == ["source", newest], redo


def test_repeat_after_redo_dreams_the_newest_layer(stopped):
    """Filters ▸ Repeat's run after the Redo: on the newest layer (a layer mask would be refused), a new group
    right above it."""
    repeat = stopped["after"].get("repeat")
    assert repeat is not None, f"the batch script recorded no repeated run:\n{stopped['output'][-4000:]}"
    assert "exception" not in repeat, repeat["exception"]
    before = stopped["report"]["layers"]["children"]
    assert repeat["drawables"] == [{"name": before[0]["name"], "mask": False}]
    assert (repeat["status"], repeat["message"]) == ("success", None), repeat
    names = [child["name"] for child in repeat["layers"]["children"]]
    assert names[0].startswith(f"Dream: {PRESET}") and names[1:] == [child["name"] for child in before], names
