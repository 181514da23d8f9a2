#!/usr/bin/env python3
"""Set up Deep Dream for GIMP: the backend's environment, the plug-in in GIMP, and a first dream.

    python3 install.py                   # everything, ending with a first dream
    python3 install.py --gimp-dir DIR    # the plug-in into that GIMP profile only
    python3 install.py --uninstall       # remove the plug-in from GIMP (the backend stays)

Run it again at any time: it only fixes what is missing. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements.txt"
STAMP = VENV / ".requirements.sha256"
PLUGIN_NAME = "deep_dream"
PLUGIN_SOURCE = ROOT / "gimp_plugin" / PLUGIN_NAME
WIRE_SOURCE = ROOT / "wire"
LAUNCH_FILE = "backend.json"  # how the plug-in starts the backend; read by gimp_plugin/deep_dream/launcher.py
VENDOR_DIR = "_vendor"
SAMPLE = ROOT / "samples" / "chelsea.png"
FIRST_DREAM_PREFIX = ROOT / "dreams" / "chelsea"


def say(message: str) -> None:
    print(f"[install] {message}", flush=True)


def run(command: list[str], **kwargs: object) -> None:
    say("$ " + " ".join(str(part) for part in command))
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


# ---- the backend's environment ------------------------------------------------------------------


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def pinned(name: str) -> str:
    """The version requirements.txt pins for a package."""
    for line in REQUIREMENTS.read_text().splitlines():
        if line.split("==")[0].strip().lower().replace("_", "-") == name:
            return line.split("==")[1].strip()
    raise SystemExit(f"requirements.txt pins no {name}")


def setup_venv(gpu: bool) -> None:
    """Create .venv and install exactly requirements.txt (no dependency resolution: see its header)."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes() + (b"gpu" if gpu else b"cpu")).hexdigest()
    if venv_python().exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        say(f"backend environment {VENV} is up to date")
        return
    if not venv_python().exists():
        say(f"creating the backend's virtual environment in {VENV}")
        run([sys.executable, "-m", "venv", str(VENV)])
    python = str(venv_python())
    run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    if gpu:
        requirements = [line for line in REQUIREMENTS.read_text().splitlines()
                        if not line.lower().replace("_", "-").startswith("tensorflow-cpu")]
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write("\n".join(requirements))
        run([python, "-m", "pip", "install", "--no-deps", "-r", handle.name])
        # The CUDA build brings NVIDIA's libraries as dependencies; resolve those, constrained by the pins.
        run([python, "-m", "pip", "install", f"tensorflow[and-cuda]=={pinned('tensorflow-cpu')}",
             "-c", handle.name])
        Path(handle.name).unlink()
    else:
        run([python, "-m", "pip", "install", "--no-deps", "-r", str(REQUIREMENTS)])
    check = subprocess.run([python, "-c", "import tensorflow, keras, scipy, zmq, PIL, h5py"],
                           cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if check.returncode != 0:
        raise SystemExit(f"[install] the backend's environment does not import:\n{check.stderr}")
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


def gimp_python_has_zmq() -> bool | None:
    """Whether the Python GIMP runs plug-ins with (Linux: python3 on PATH, with gi) imports zmq; None: unknown."""
    if sys.platform in ("win32", "darwin"):
        return None  # GIMP bundles its own Python there; see README
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if system_python is None:
        return None
    probe = subprocess.run([system_python, "-c", "import gi, zmq"], capture_output=True)
    return probe.returncode == 0


def vendor_pyzmq(target: Path) -> None:
    """Unpack pyzmq's abi3 wheel (CPython ≥ 3.12, libzmq bundled) for this OS into the plug-in's _vendor/."""
    platforms = {
        "linux": [f"manylinux_2_28_{platform.machine()}"],
        "darwin": ["macosx_10_15_universal2"],
        "win32": ["win_amd64"],
    }[sys.platform if sys.platform in ("win32", "darwin") else "linux"]
    with tempfile.TemporaryDirectory() as download:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--python-version", "3.12", "--abi", "abi3", "--implementation", "cp", "-d", download,
                   f"pyzmq=={pinned('pyzmq')}"]
        for tag in platforms:
            command += ["--platform", tag]
        pip = str(venv_python()) if venv_python().exists() else sys.executable
        run([pip, *command[1:]])
        (wheel,) = Path(download).glob("pyzmq-*.whl")
        shutil.rmtree(target, ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target)
    say(f"vendored {wheel.name} into {target}")


def install_plugin(profile: Path, vendor: bool | None) -> None:
    """Copy the plug-in and the wire package into PROFILE/plug-ins/deep_dream/, record the launch command."""
    target = profile / "plug-ins" / PLUGIN_NAME
    target.mkdir(parents=True, exist_ok=True)
    for source in sorted(PLUGIN_SOURCE.glob("*.py")):
        shutil.copy2(source, target / source.name)
    (target / f"{PLUGIN_NAME}.py").chmod(0o755)
    wire = target / "wire"
    wire.mkdir(exist_ok=True)
    for source in sorted(WIRE_SOURCE.glob("*.py")):
        shutil.copy2(source, wire / source.name)
    (target / LAUNCH_FILE).write_text(json.dumps(launch_command(), indent=2) + "\n")
    if vendor is None:
        vendor = gimp_python_has_zmq() is False
    if vendor:
        vendor_pyzmq(target / VENDOR_DIR)
    say(f"plug-in installed in {target}")


def uninstall_plugin(profile: Path) -> None:
    target = profile / "plug-ins" / PLUGIN_NAME
    if target.is_dir() and (target / f"{PLUGIN_NAME}.py").exists():
        shutil.rmtree(target)
        say(f"removed {target}")
    else:
        say(f"nothing of ours in {profile}")


# ---- the first dream ----------------------------------------------------------------------------


def first_dream() -> None:
    say("a first dream: 3 iterations on samples/chelsea.png at 256 px (about half a minute)")
    run([str(venv_python()), "-m", "backend", "dream", str(SAMPLE), str(FIRST_DREAM_PREFIX),
         "--iterations", "3", "--max-size", "256", "--seed", "1"], cwd=ROOT)
    say(f"the iterations are in {FIRST_DREAM_PREFIX.parent}/ ({FIRST_DREAM_PREFIX.name}_at_iteration_0..2.png)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gimp-dir", type=Path, action="append", metavar="DIR",
                        help="install into this GIMP profile folder (repeatable) instead of every one found")
    parser.add_argument("--uninstall", action="store_true",
                        help="remove the plug-in from GIMP's folders (only --gimp-dir's when given)")
    parser.add_argument("--remove-backend", action="store_true", help="with --uninstall: also delete .venv")
    parser.add_argument("--gpu", action="store_true", help="install TensorFlow's CUDA build instead of the CPU one")
    parser.add_argument("--vendor-pyzmq", action=argparse.BooleanOptionalAction, default=None,
                        help="bundle pyzmq with the plug-in (default: only when GIMP's Python lacks it)")
    parser.add_argument("--skip-backend", action="store_true", help="do not create or check .venv")
    parser.add_argument("--skip-gimp", action="store_true", help="do not install the plug-in into GIMP")
    parser.add_argument("--no-dream", action="store_true", help="skip the first dream at the end")
    args = parser.parse_args(argv)

    profiles = [] if args.skip_gimp else (args.gimp_dir or gimp_profiles())
    if args.uninstall:
        for profile in profiles:
            uninstall_plugin(profile)
        if args.remove_backend and VENV.exists():
            shutil.rmtree(VENV)
            say(f"removed {VENV}")
        return 0

    if not args.skip_backend:
        setup_venv(args.gpu)
    if profiles:
        for profile in profiles:
            install_plugin(profile, args.vendor_pyzmq)
        say("restart GIMP, then open an image: Filters ▸ Artistic ▸ Deep Dream…")
    elif not args.skip_gimp:
        say("no GIMP 3 profile found (start GIMP 3 once, then run this again, or pass --gimp-dir); "
            "the backend and its command line are set up anyway")
    if not (args.no_dream or args.skip_backend):
        first_dream()
    return 0


if __name__ == "__main__":
    sys.exit(main())
