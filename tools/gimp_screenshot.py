#!/usr/bin/env python3
"""Screenshot of GIMP 3 (GUI) after a Deep Dream run: docs/screenshot-gimp.png.

    sudo python3 tools/gimp_screenshot.py [--preset dreamy] [--iterations 10] [--width 400] [--output FILE.png]

Everything is real: a backend from the repo's .venv on the host, the plug-in installed by install.py into a
throw-away profile, and GIMP's GUI on an Xvfb screen, both inside the GIMP 3 root of tools/gimp3_root.sh
(the root shares the host's network). GIMP opens samples/chelsea.png scaled down, shows it, and runs
Filters ▸ Artistic ▸ Deep Dream the way Filters ▸ Repeat does (RUN_WITH_LAST_VALS, with the settings
given here written as the last values; by default the dialog's own defaults: its default preset, 10
iterations): the plug-in's own progress window appears, the layers arrive one by one. The screen is
captured with xwd while the dream runs (--progress-shot) and once it has ended. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "gimp3_root.sh"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
SCREEN = (1100, 700)  # no window manager: GIMP's window is given exactly this size (sessionrc)
POINTER_REST = (940, 620)  # the Layers dock's empty part: no brush outline over the picture, no tooltip
WIDTH = 400  # the sample is scaled to this width: big enough to see the dream, a few seconds an iteration
PLUGIN_ITERATIONS = 10  # the dialog's default (deep_dream.py)

sys.path[:0] = [str(ROOT), str(ROOT / "gimp_plugin" / "deep_dream")]
from choices import DEFAULT_PRESET  # noqa: E402 - the plug-in's, standard library only

# Runs inside GIMP (python-fu-eval, on stdin). Settings in the JSON file named by $DD_SHOT.
BATCH = r"""
import json, os
import gi
gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio

shot = json.loads(open(os.environ["DD_SHOT"]).read())
image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(shot["image"]))
image.scale(shot["width"], round(image.get_height() * shot["width"] / image.get_width()))
image.undo_disable()  # a fresh undo history: only the dream's step shows
image.undo_enable()
Gimp.Display.new(image)
Gimp.displays_flush()
procedure = Gimp.get_pdb().lookup_procedure("python-fu-deep-dream")
config = procedure.create_config()
config.set_property("run-mode", Gimp.RunMode.WITH_LAST_VALS)
config.set_property("image", image)
config.set_core_object_array("drawables", image.get_selected_drawables())
result = procedure.run(config)
status = result.index(0)
group = image.get_layers()[0]
with open(shot["done"] + ".part", "w") as handle:
    if status == Gimp.PDBStatusType.SUCCESS:
        handle.write("success: " + group.get_name() + ": " + ", ".join(c.get_name() for c in group.get_children()))
    else:
        handle.write(status.value_nick + ": " + str(result.index(1)))
os.replace(shot["done"] + ".part", shot["done"])  # whole or not there: the host polls for it
"""


def say(message: str) -> None:
    print(f"[screenshot] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_display(root: Path) -> int:
    for number in range(57, 99):
        taken = (root / "tmp" / f".X{number}-lock", root / "tmp" / ".X11-unix" / f"X{number}")
        if not any(path.exists() for path in taken):
            return number
    raise SystemExit("no free X display number")


def start(command: list[str], env: dict[str, str] | None = None, **kwargs: object) -> subprocess.Popen:
    """A process in its own session, so that it and its children can be ended together."""
    return subprocess.Popen(command, env={**os.environ, **(env or {})}, start_new_session=True, **kwargs)  # type: ignore[call-overload]


def end(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def wait_for(condition, timeout: float, what: str) -> None:  # noqa: ANN001 - a plain predicate
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.5)


def write_last_values(profile: Path, settings: dict[str, object]) -> None:
    """What an interactive run's OK saves (GimpConfig's text format), where WITH_LAST_VALS reads it."""
    lines = [f'({name} {json.dumps(value) if isinstance(value, str) else value})' for name, value in settings.items()]
    folder = profile / "plug-in-settings"
    folder.mkdir(parents=True, exist_ok=True)
    text = "# settings\n\n" + "\n".join(lines) + "\n\n# end of settings\n"
    # the name of the config class libgimp makes for a run (the caller's is GimpProcedureConfig-…)
    (folder / "GimpProcedureConfigRun-python-fu-deep-dream.last").write_text(text)


def write_session(profile: Path) -> None:
    """One window filling the screen: Undo History on the left, Layers on the right (GIMP's sessionrc)."""

    def dockable(name: str) -> str:
        return f'(dockable "{name}" (tab-style icon) (preview-size 32) (aux-info (show-button-bar "true")))'

    (profile / "sessionrc").write_text(f"""
(session-info "toplevel"
    (factory-entry "gimp-single-image-window")
    (position 0 0)
    (size {SCREEN[0]} {SCREEN[1]})
    (open-on-exit)
    (aux-info (left-docks-width "260") (right-docks-width "330") (maximized "no"))
    (gimp-toolbox (side left)
        (book (current-page 0) {dockable("gimp-undo-history")} {dockable("gimp-tool-options")}))
    (gimp-dock (side right)
        (book (current-page 0) {dockable("gimp-layer-list")} {dockable("gimp-channel-list")})))
(hide-docks no)
""")


def batch_failed(work: Path) -> bool:
    log = work / "gimp.log"
    return log.exists() and "batch command experienced" in log.read_text(errors="replace")


def capture(display: int, inside: str, name: str, gimp: str = "3.0") -> None:
    """The whole screen into `inside`/name, a PNG, in the root of that GIMP version."""
    subprocess.run([str(TOOL), "--gimp", gimp, "run", "--", "sh", "-c",
                    f"DISPLAY=:{display} xdotool mousemove --sync {POINTER_REST[0]} {POINTER_REST[1]} && sleep 1 && "
                    f"xwd -root -silent -display :{display} | xwdtopnm 2>/dev/null | pnmtopng > {inside}/{name}"],
                   check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="(default: %(default)s, the plug-in's)")
    parser.add_argument("--iterations", type=int, default=PLUGIN_ITERATIONS, help="(default: %(default)s)")
    parser.add_argument("--width", type=int, default=WIDTH, help="scale the sample to this width (default: "
                        "%(default)s)")
    parser.add_argument("--weights", default="auto", help="the backend's --weights (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "screenshot-gimp.png")
    parser.add_argument("--progress-shot", type=Path, help="also save a capture taken while the dream runs")
    args = parser.parse_args(argv)

    root = Path(subprocess.run([str(TOOL), "path"], check=True, capture_output=True, text=True).stdout.strip())
    work = Path(tempfile.mkdtemp(prefix="deep-dream-shot-", dir=root / "tmp"))
    inside = "/" + str(work.relative_to(root))
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    display = free_display(root)
    backend = xvfb = gimp = None
    try:
        say(f"backend on {endpoint}")
        backend = start([str(VENV_PYTHON), "-m", "backend", "serve", "--bind", endpoint, "--weights", args.weights],
                        cwd=ROOT, stdout=(work / "backend.log").open("w"), stderr=subprocess.STDOUT)
        subprocess.run([sys.executable, str(ROOT / "install.py"), "--gimp-dir", str(work / "profile"),
                        "--skip-backend", "--no-dream"], check=True, stdout=subprocess.DEVNULL)
        (work / "profile" / "gimprc").write_text("(show-welcome-dialog no)\n")
        write_session(work / "profile")
        settings = {"preset": args.preset, "iterations": args.iterations, "keep-every": 1, "seed": 1,
                    "endpoint": endpoint}
        write_last_values(work / "profile", settings)
        shutil.copy(ROOT / "samples" / "chelsea.png", work / "chelsea.png")
        (work / "shot.json").write_text(json.dumps({"image": f"{inside}/chelsea.png", "width": args.width,
                                                    "done": f"{inside}/done"}))
        wait_for(lambda: "backend ready on" in (work / "backend.log").read_text(), 180, "the backend")

        say(f"Xvfb :{display} in {root}")
        screen = f"{SCREEN[0]}x{SCREEN[1]}x24"
        xvfb = start([str(TOOL), "run", "--", "Xvfb", f":{display}", "-screen", "0", screen, "-nolisten", "tcp"])
        wait_for(lambda: (root / "tmp" / ".X11-unix" / f"X{display}").exists(), 30, "Xvfb")

        say("GIMP")
        env = {"GIMP3_PASS_ENV": "DISPLAY GIMP3_DIRECTORY GIMP3_CACHEDIR DEEP_DREAM_ENDPOINT DD_SHOT",
               "DISPLAY": f":{display}", "GIMP3_DIRECTORY": f"{inside}/profile", "GIMP3_CACHEDIR": f"{inside}/cache",
               "DEEP_DREAM_ENDPOINT": endpoint, "DD_SHOT": f"{inside}/shot.json"}
        gimp = start([str(TOOL), "run", "--", "gimp-3.0", "--no-splash", "--batch-interpreter=python-fu-eval",
                      "-b", "-"], env, stdin=subprocess.PIPE, stdout=(work / "gimp.log").open("w"),
                     stderr=subprocess.STDOUT, text=True)
        gimp.stdin.write(BATCH)
        gimp.stdin.close()
        if args.progress_shot:
            wait_for(lambda: "accepted" in (work / "backend.log").read_text() or (work / "done").exists()
                     or batch_failed(work), 300,
                     "the dream to start")
            time.sleep(4.0)  # a layer or two
            capture(display, inside, "progress.png")
            shutil.copy(work / "progress.png", args.progress_shot)
            say(f"wrote {args.progress_shot}")
        wait_for(lambda: (work / "done").exists() or batch_failed(work), 600, "the dream to end")
        if batch_failed(work):
            raise SystemExit("the batch code failed in GIMP")
        say(f"the run ended: {(work / 'done').read_text()}")
        time.sleep(3.0)  # the last redraw
        capture(display, inside, "final.png")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "final.png", args.output)
        say(f"wrote {args.output}")
        return 0 if (work / "done").read_text().startswith("success") else 1
    except BaseException:
        for log in ("backend.log", "gimp.log"):
            if (work / log).exists():
                print(f"---- {log}\n" + (work / log).read_text()[-4000:], file=sys.stderr)
        raise
    finally:
        end(gimp)
        end(xvfb)
        end(backend)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
