#!/usr/bin/env python3
"""Set up Deep Dream for GIMP: the backend's environment, the plug-in in GIMP, and a first dream.

    python3 install.py                   # everything, ending with a first dream
    python3 install.py --gimp-dir DIR    # the plug-in into that GIMP profile only
    python3 install.py --uninstall       # remove the plug-in from GIMP (the backend stays)

Run it again at any time: it only fixes what is missing. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements.txt"
STAMP = VENV / ".requirements.sha256"
PLUGIN_NAME = "deep_dream"
PLUGIN_SOURCE = ROOT / "gimp_plugin" / PLUGIN_NAME
WIRE_SOURCE = ROOT / "wire"
HELP_DIR = "help"  # the plug-in's help pages (its GIMP help domain): help/en/gimp-help.xml maps the id to a page
LAUNCH_FILE = "backend.json"  # how the plug-in starts the backend; read by gimp_plugin/deep_dream/launcher.py
VENDOR_DIR = "_vendor"
FLATPAK_GIMP = "org.gimp.GIMP"
TENSORFLOWS = ("tensorflow", "tensorflow-cpu")  # the CUDA build and the CPU one: both install site-packages/tensorflow/
PYZMQ_HINT = ("the plug-in works without it, with its standard-library ZeroMQ client (tcp:// endpoints only); "
              "for pyzmq, install python3-zmq for GIMP's Python or re-run with network")
SAMPLE = ROOT / "samples" / "chelsea.png"
FIRST_DREAM_PREFIX = ROOT / "dreams" / "chelsea"
# The plug-in's default preset and iterations (gimp_plugin/deep_dream/choices.py, deep_dream.py): the first
# dream shows what a first run in GIMP gives. Not the CLI's default silently: tests/test_default_preset.py.
FIRST_DREAM_PRESET = "dreamy"
FIRST_DREAM_ITERATIONS = 10

EPILOG = f"""\
where the plug-in goes (each as plug-ins/{PLUGIN_NAME}/): every GIMP 3 profile found, i.e. Linux
  ~/.config/GIMP/3.* (the Flatpak GIMP reads these too), macOS ~/Library/Application Support/GIMP/3.*,
  Windows %APPDATA%\\GIMP\\3.*; or only the --gimp-dir folders given.

pyzmq: the plug-in uses it where the Python GIMP runs plug-ins with can load it, else its own
  standard-library ZeroMQ client (tcp:// endpoints, no CURVE). On Linux it is vendored by default
  (unpacked into plug-ins/{PLUGIN_NAME}/{VENDOR_DIR}/, downloaded once per run, skipped where the pinned
  version is there already) when a Flatpak GIMP is installed or /usr/bin/python3 cannot import gi and
  zmq; on macOS and Windows only with --vendor-pyzmq.

exit status: 0 when everything was done; 1 when some step could not be done: it is reported when it
  fails (with the output of the command that failed) and named again at the end; the other steps are
  done anyway.
"""


class StepFailed(Exception):
    """A step of the set-up that could not be done; the message says what and why, in words."""


def say(message: str, *, error: bool = False) -> None:
    print(f"[install] {message}", file=sys.stderr if error else sys.stdout, flush=True)


def run(command: list[str], **kwargs: object) -> None:
    """Run COMMAND, its output shown; StepFailed when it cannot start or exits non-zero."""
    say("$ " + " ".join(command))
    label = " ".join([Path(command[0]).name, *command[1:4]])
    try:
        completed = subprocess.run(command, **kwargs)  # type: ignore[call-overload]
    except OSError as error:
        raise StepFailed(f"`{label} …` could not start: {error}") from error
    if completed.returncode != 0:
        raise StepFailed(f"`{label} …` exited with status {completed.returncode} (its output is above)")


@contextlib.contextmanager
def step(what: str, hint: str = "") -> Iterator[None]:
    """Turn a failure inside into StepFailed("could not WHAT: why[; HINT]")."""
    try:
        yield
    except (StepFailed, OSError, zipfile.BadZipFile) as error:
        raise StepFailed(f"could not {what}: {error}" + (f"; {hint}" if hint else "")) from error


def attempt(failures: list[str], action: Callable[..., object], *args: object) -> bool:
    """Do ACTION(*ARGS); when it fails, say why and add that to FAILURES. Whether it succeeded."""
    try:
        action(*args)
    except StepFailed as failure:
        say(str(failure), error=True)
        failures.append(str(failure))
        return False
    return True


def pinned(name: str) -> str:
    """The version requirements.txt pins for a package."""
    for line in REQUIREMENTS.read_text().splitlines():
        if line.split("==")[0].strip().lower().replace("_", "-") == name:
            return line.split("==")[1].strip()
    raise StepFailed(f"requirements.txt pins no {name}")


# ---- the backend's environment ------------------------------------------------------------------


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def installed_tensorflows(python: Path) -> set[str]:
    """Which of the TensorFlow distributions the environment of PYTHON holds."""
    probe = ("import importlib.metadata as metadata\n"
             f"for name in {TENSORFLOWS!r}:\n"
             "    try:\n"
             "        metadata.version(name)\n"
             "        print(name)\n"
             "    except metadata.PackageNotFoundError:\n"
             "        pass\n")
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tempfile.gettempdir())
    if result.returncode != 0:
        raise StepFailed(f"cannot list the packages of {python}: {result.stderr.strip()}")
    return set(result.stdout.split())


def requirements_without_tensorflow_cpu(folder: Path) -> Path:
    """requirements.txt minus tensorflow-cpu, written into FOLDER: what --gpu installs, and its constraints."""
    lines = [line for line in REQUIREMENTS.read_text().splitlines()
             if not line.lower().replace("_", "-").startswith("tensorflow-cpu")]
    path = folder / "requirements-gpu.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def install_commands(python: Path, gpu: bool, installed: set[str], requirements: Path) -> list[list[str]]:
    """The pip commands that install REQUIREMENTS and exactly one TensorFlow: the CUDA build (GPU) or the CPU one.

    When the other build is INSTALLED, every TensorFlow goes first: the two share site-packages/tensorflow/, so
    removing one breaks the other, which must then be installed afresh.
    """
    pip = [str(python), "-m", "pip"]
    unwanted = "tensorflow-cpu" if gpu else "tensorflow"
    doomed = sorted(installed & set(TENSORFLOWS)) if unwanted in installed else []
    commands = [[*pip, "uninstall", "-y", *doomed]] if doomed else []
    commands.append([*pip, "install", "--no-deps", "-r", str(requirements)])
    if gpu:  # the CUDA build brings NVIDIA's libraries as dependencies: pip resolves those, constrained by the pins
        commands.append([*pip, "install", f"tensorflow[and-cuda]=={pinned('tensorflow-cpu')}", "-c", str(requirements)])
    return commands


def check_imports(python: Path) -> None:
    check = subprocess.run([str(python), "-c", "import tensorflow, keras, scipy, zmq, PIL, h5py"],
                           cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if check.returncode != 0:
        last_line = (check.stderr.strip().splitlines() or [f"exit status {check.returncode}"])[-1]
        raise StepFailed(f"it does not import ({last_line})")


def setup_venv(gpu: bool) -> None:
    """Create .venv and install exactly requirements.txt (no dependency resolution: see its header)."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes() + (b"gpu" if gpu else b"cpu")).hexdigest()
    if venv_python().exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        say(f"backend environment {VENV} is up to date")
        return
    with step(f"set up the backend's environment {VENV}"), tempfile.TemporaryDirectory() as scratch:
        if not venv_python().exists():
            say(f"creating the backend's virtual environment in {VENV}")
            run([sys.executable, "-m", "venv", str(VENV)])
        python = venv_python()
        run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        requirements = requirements_without_tensorflow_cpu(Path(scratch)) if gpu else REQUIREMENTS
        for command in install_commands(python, gpu, installed_tensorflows(python), requirements):
            run(command)
        check_imports(python)
        STAMP.write_text(wanted)
    say("backend environment ready")


# ---- the plug-in in GIMP ------------------------------------------------------------------------


def gimp_profiles() -> list[Path]:
    """Every GIMP 3 user profile folder on this machine (3.0, 3.2, …; the Flatpak reads the Linux ones)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "GIMP"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support" / "GIMP"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "GIMP"
    return sorted(path for path in base.glob("3.*") if path.is_dir())


def launch_command() -> dict[str, object]:
    """What the plug-in runs to start a backend (it adds --bind ENDPOINT)."""
    return {
        "command": [str(venv_python()), "-m", "backend", "serve"],
        "cwd": str(ROOT),
    }


def flatpak_gimp_installed() -> bool:
    """Whether GIMP's Flatpak is here: its data folder ~/.var/app/org.gimp.GIMP exists, or `flatpak info` knows it."""
    if (Path.home() / ".var" / "app" / FLATPAK_GIMP).is_dir():
        return True
    flatpak = shutil.which("flatpak")
    if flatpak is None:
        return False
    try:
        return subprocess.run([flatpak, "info", FLATPAK_GIMP], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def native_gimp_python_has_zmq() -> bool | None:
    """Whether /usr/bin/python3, the Python a distribution's GIMP runs plug-ins with, imports gi and zmq; None: none."""
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if system_python is None:
        return None
    return subprocess.run([system_python, "-c", "import gi, zmq"], capture_output=True).returncode == 0


def gimp_python_has_zmq() -> bool | None:
    """Whether the Python GIMP runs plug-ins with imports zmq; False means the plug-in gets a vendored pyzmq.

    Linux: False when GIMP's Flatpak is installed (its Python has no pyzmq, and it reads the same profiles as a
    native GIMP); else whether /usr/bin/python3, a native GIMP's Python, imports gi and zmq (None: no such Python).
    macOS: False — GIMP's bundled CPython has no pyzmq, and PyPI's macOS wheel loads in it.
    Windows: None (unknown) — GIMP's MSYS2 Python cannot load PyPI's wheels anyway; see README.
    """
    if sys.platform == "darwin":
        return False
    if sys.platform == "win32":
        return None
    if flatpak_gimp_installed():
        return False
    return native_gimp_python_has_zmq()


def wheel_platforms() -> list[str]:
    """The platform tags of pyzmq's wheel for this OS."""
    if sys.platform == "win32":
        return ["win_amd64"]
    if sys.platform == "darwin":
        return ["macosx_10_15_universal2"]
    return [f"manylinux_2_28_{platform.machine()}"]


def download_pyzmq(folder: Path) -> Path:
    """Download pyzmq's pinned abi3 wheel (CPython ≥ 3.12, libzmq bundled) for this OS into FOLDER."""
    python = venv_python() if venv_python().exists() else Path(sys.executable)
    command = [str(python), "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--abi", "abi3", "--implementation", "cp", "-d", str(folder),
               f"pyzmq=={pinned('pyzmq')}"]
    for tag in wheel_platforms():
        command += ["--platform", tag]
    run(command)
    wheels = sorted(folder.glob("pyzmq-*.whl"))
    if len(wheels) != 1:
        raise StepFailed(f"pip download left {len(wheels)} pyzmq wheels in {folder}")
    return wheels[0]


class PyzmqWheel:
    """pyzmq's wheel, downloaded into a folder when first needed; at most once (a failed download is not retried)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.wheel: Path | None = None
        self.failure: StepFailed | None = None

    def get(self) -> Path:
        if self.failure is not None:
            raise self.failure
        if self.wheel is None:
            try:
                self.wheel = download_pyzmq(self.folder)
            except StepFailed as failure:
                self.failure = failure
                raise
        return self.wheel


def vendor_pyzmq(target: Path, wheel: PyzmqWheel) -> None:
    """Unpack pyzmq into the plug-in's _vendor/ folder TARGET, unless the pinned version is there already."""
    with step(f"vendor pyzmq for GIMP's Python into {target}", PYZMQ_HINT):
        version = pinned("pyzmq")
        if (target / f"pyzmq-{version}.dist-info").is_dir():
            say(f"pyzmq {version} already vendored in {target}")
            return
        path = wheel.get()
        shutil.rmtree(target, ignore_errors=True)
        with zipfile.ZipFile(path) as archive:
            archive.extractall(target)
    say(f"vendored {path.name} into {target}")


def install_plugin(profile: Path) -> None:
    """Copy the plug-in and the wire package into PROFILE/plug-ins/deep_dream/, record the launch command."""
    target = profile / "plug-ins" / PLUGIN_NAME
    with step(f"install the plug-in into {target}"):
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(PLUGIN_SOURCE.glob("*.py")):
            shutil.copy2(source, target / source.name)
        (target / f"{PLUGIN_NAME}.py").chmod(0o755)
        shutil.copytree(PLUGIN_SOURCE / HELP_DIR, target / HELP_DIR, dirs_exist_ok=True)  # F1's page
        wire = target / "wire"
        wire.mkdir(exist_ok=True)
        for source in sorted(WIRE_SOURCE.glob("*.py")):
            shutil.copy2(source, wire / source.name)
        (target / LAUNCH_FILE).write_text(json.dumps(launch_command(), indent=2) + "\n")
    say(f"plug-in installed in {target}")


def install_everywhere(profiles: list[Path], vendor: bool | None, failures: list[str]) -> bool:
    """The plug-in into every profile, with pyzmq when VENDOR (None: if GIMP's Python lacks it). Whether any got it."""
    if vendor is None:
        vendor = gimp_python_has_zmq() is False
    installed = False
    with tempfile.TemporaryDirectory(prefix="deep-dream-pyzmq-") as download:
        wheel = PyzmqWheel(Path(download))
        for profile in profiles:
            if attempt(failures, install_plugin, profile):
                installed = True
                if vendor:
                    attempt(failures, vendor_pyzmq, profile / "plug-ins" / PLUGIN_NAME / VENDOR_DIR, wheel)
    return installed


def uninstall_plugin(profile: Path) -> None:
    target = profile / "plug-ins" / PLUGIN_NAME
    if not (target.is_dir() and (target / f"{PLUGIN_NAME}.py").exists()):
        say(f"nothing of ours in {profile}")
        return
    with step(f"remove {target}"):
        shutil.rmtree(target)
    say(f"removed {target}")


def remove_backend() -> None:
    with step(f"remove {VENV}"):
        shutil.rmtree(VENV)
    say(f"removed {VENV}")


# ---- the first dream ----------------------------------------------------------------------------


def first_dream() -> None:
    say(f"a first dream: {FIRST_DREAM_ITERATIONS} iterations of the {FIRST_DREAM_PRESET} preset on "
        "samples/chelsea.png at 256 px (about a minute)")
    with step("dream the first dream"):
        run([str(venv_python()), "-m", "backend", "dream", str(SAMPLE), str(FIRST_DREAM_PREFIX),
             "--preset", FIRST_DREAM_PRESET, "--iterations", str(FIRST_DREAM_ITERATIONS), "--max-size", "256",
             "--seed", "1"], cwd=ROOT)
    last = FIRST_DREAM_ITERATIONS - 1
    say(f"the iterations are in {FIRST_DREAM_PREFIX.parent}/ ({FIRST_DREAM_PREFIX.name}_at_iteration_0..{last}.png)")


# ---- the whole -----------------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gimp-dir", type=Path, action="append", metavar="DIR",
                        help="install into this GIMP profile folder (repeatable) instead of every one found")
    parser.add_argument("--uninstall", action="store_true",
                        help="remove the plug-in from GIMP's folders (only --gimp-dir's when given)")
    parser.add_argument("--remove-backend", action="store_true", help="with --uninstall: also delete .venv")
    parser.add_argument("--gpu", action="store_true",
                        help="install TensorFlow's CUDA build (tensorflow[and-cuda]; pip resolves NVIDIA's libraries) "
                             "in place of the CPU one; a later run without --gpu swaps back")
    parser.add_argument("--vendor-pyzmq", action=argparse.BooleanOptionalAction, default=None,
                        help="bundle pyzmq with the plug-in, or not (default: only when GIMP's Python lacks it; "
                             "see below)")
    parser.add_argument("--skip-backend", action="store_true", help="do not create or check .venv (and no dream)")
    parser.add_argument("--skip-gimp", action="store_true", help="do not install the plug-in into GIMP")
    parser.add_argument("--no-dream", action="store_true",
                        help=f"skip the first dream at the end (written to {FIRST_DREAM_PREFIX.parent.name}/)")
    return parser.parse_args(argv)


def report(failures: list[str]) -> int:
    """The exit status: 0 when everything was done, else 1, after naming again what was not."""
    if not failures:
        return 0
    say(f"not done ({len(failures)}):", error=True)
    for failure in failures:
        say(f"  - {failure}", error=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    profiles = [] if args.skip_gimp else (args.gimp_dir or gimp_profiles())
    failures: list[str] = []
    if args.uninstall:
        for profile in profiles:
            attempt(failures, uninstall_plugin, profile)
        if args.remove_backend and VENV.exists():
            attempt(failures, remove_backend)
        return report(failures)

    backend_ready = args.skip_backend or attempt(failures, setup_venv, args.gpu)
    if profiles:
        if install_everywhere(profiles, args.vendor_pyzmq, failures):
            say("restart GIMP, then open an image: Filters ▸ Artistic ▸ Deep Dream…")
    elif not args.skip_gimp:
        say("no GIMP 3 profile found (start GIMP 3 once, then run this again, or pass --gimp-dir); "
            "the backend and its command line are set up anyway")
    if not (args.no_dream or args.skip_backend):
        if backend_ready:
            attempt(failures, first_dream)
        else:
            say("no first dream: the backend's environment is not ready", error=True)
    return report(failures)


if __name__ == "__main__":
    sys.exit(main())
