"""install.py, run as users run it (the backend part is what every other test runs on), and its decisions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import install
from tests.conftest import ROOT

PYZMQ = install.pinned("pyzmq")
NO_REGISTRY = "http://127.0.0.1:9/simple"  # a closed loopback port: pip finds no registry there


def install_py(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "install.py", "--skip-backend", "--no-dream", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)


def pip_env(**settings: str) -> dict[str, str]:
    """This environment without pip's settings (no config files, no cache, no retries), then SETTINGS."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1", "PIP_RETRIES": "0", **settings}


def stand_in_registry(folder: Path) -> dict[str, str]:
    """A pip environment whose only source is FOLDER, holding a stand-in for pyzmq's pinned wheel."""
    name = f"pyzmq-{PYZMQ}"
    tag = f"cp312-abi3-{install.wheel_platforms()[0]}"
    folder.mkdir()
    with zipfile.ZipFile(folder / f"{name}-{tag}.whl", "w") as wheel:
        wheel.writestr("zmq/__init__.py", "STAND_IN = True\n")
        wheel.writestr(f"{name}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: pyzmq\nVersion: {PYZMQ}\n")
        wheel.writestr(f"{name}.dist-info/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n")
        wheel.writestr(f"{name}.dist-info/RECORD", "")
    return pip_env(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(folder))


def downloads(result: subprocess.CompletedProcess) -> int:
    return sum(line.startswith("[install] $ ") and " pip download " in line for line in result.stdout.splitlines())


def test_install_is_idempotent_and_uninstall_removes_only_ours(tmp_path):
    profile, other = tmp_path / "3.0", tmp_path / "3.2"
    for _ in range(2):
        result = install_py("--gimp-dir", str(profile), "--gimp-dir", str(other), "--no-vendor-pyzmq")
        assert result.returncode == 0, result.stderr
        assert all(line.startswith("[install] ") for line in result.stdout.splitlines()), result.stdout
    plugin = profile / "plug-ins" / "deep_dream"
    assert os.access(plugin / "deep_dream.py", os.X_OK)
    assert (plugin / "animation.py").read_text() == (ROOT / "gimp_plugin" / "deep_dream" / "animation.py").read_text()
    assert (plugin / "wire" / "protocol.py").read_text() == (ROOT / "wire" / "protocol.py").read_text()
    assert (plugin / "recipes.py").read_text() == (ROOT / "gimp_plugin" / "deep_dream" / "recipes.py").read_text()
    assert (plugin / "wire" / "recipe.py").read_text() == (ROOT / "wire" / "recipe.py").read_text()
    for page in ("gimp-help.xml", "index.html"):  # the help domain's map and the page F1 shows
        shipped = ROOT / "gimp_plugin" / "deep_dream" / "help" / "en" / page
        assert (plugin / "help" / "en" / page).read_bytes() == shipped.read_bytes()
    launch = json.loads((plugin / "backend.json").read_text())
    assert launch["command"][1:] == ["-m", "backend", "serve"] and Path(launch["cwd"]) == ROOT
    assert Path(launch["command"][0]).name.startswith("python")
    (profile / "plug-ins" / "someone_elses").mkdir()
    result = install_py("--uninstall", "--gimp-dir", str(profile))
    assert result.returncode == 0 and not plugin.exists()
    assert (profile / "plug-ins" / "someone_elses").is_dir()
    assert (other / "plug-ins" / "deep_dream" / "deep_dream.py").exists()  # not named: left alone


def test_every_gimp3_profile_is_found_and_none_is_said(tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path), APPDATA=str(tmp_path))
    none = install_py(env=env)
    assert none.returncode == 0 and "no GIMP 3 profile found" in none.stdout
    for version in ("3.0", "3.2", "2.10"):
        (tmp_path / "GIMP" / version).mkdir(parents=True)
    found = install_py("--no-vendor-pyzmq", env=env)
    assert found.returncode == 0, found.stderr
    assert (tmp_path / "GIMP" / "3.0" / "plug-ins" / "deep_dream" / "deep_dream.py").exists()
    assert (tmp_path / "GIMP" / "3.2" / "plug-ins" / "deep_dream" / "deep_dream.py").exists()
    assert not (tmp_path / "GIMP" / "2.10" / "plug-ins").exists()


def test_pyzmq_is_downloaded_once_for_all_profiles_and_not_again(tmp_path):
    profiles = [tmp_path / "3.0", tmp_path / "3.2"]
    gimp_dirs = [arg for profile in profiles for arg in ("--gimp-dir", str(profile))]
    first = install_py(*gimp_dirs, "--vendor-pyzmq", env=stand_in_registry(tmp_path / "registry"))
    assert first.returncode == 0, first.stdout + first.stderr
    assert downloads(first) == 1, first.stdout
    for profile in profiles:
        vendored = profile / "plug-ins" / "deep_dream" / "_vendor"
        assert (vendored / f"pyzmq-{PYZMQ}.dist-info").is_dir() and (vendored / "zmq" / "__init__.py").exists()
    again = install_py(*gimp_dirs, "--vendor-pyzmq", env=pip_env(PIP_INDEX_URL=NO_REGISTRY))
    assert again.returncode == 0, again.stdout + again.stderr
    assert downloads(again) == 0 and f"pyzmq {PYZMQ} already vendored" in again.stdout


def test_no_registry_is_reported_in_words_and_every_profile_still_installed(tmp_path):
    profiles = [tmp_path / "gd1", tmp_path / "gd2"]
    gimp_dirs = [arg for profile in profiles for arg in ("--gimp-dir", str(profile))]
    result = install_py(*gimp_dirs, "--vendor-pyzmq", env=pip_env(PIP_INDEX_URL=NO_REGISTRY))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "No matching distribution found for pyzmq" in output  # pip's own words
    assert downloads(result) == 1, output
    for profile in profiles:
        assert (profile / "plug-ins" / "deep_dream" / "deep_dream.py").exists()
        assert not (profile / "plug-ins" / "deep_dream" / "_vendor").exists()
    summary = result.stderr[result.stderr.index("[install] not done"):].splitlines()
    assert len(summary) == 1 + len(profiles), summary
    for line, profile in zip(summary[1:], profiles, strict=True):
        assert line.startswith(f"[install]   - could not vendor pyzmq for GIMP's Python into {profile}")
        assert line.endswith("the plug-in works without it, with its standard-library ZeroMQ client (tcp:// "
                             "endpoints only); for pyzmq, install python3-zmq for GIMP's Python or re-run with network")


def test_a_failed_step_does_not_stop_the_first_dream(tmp_path, monkeypatch, capsys):
    dreams: list[bool] = []

    def no_registry(folder: Path) -> Path:
        raise install.StepFailed("no registry")

    monkeypatch.setattr(install, "setup_venv", lambda gpu: None)
    monkeypatch.setattr(install, "first_dream", lambda: dreams.append(True))
    monkeypatch.setattr(install, "download_pyzmq", no_registry)
    assert install.main(["--gimp-dir", str(tmp_path / "3.0"), "--vendor-pyzmq"]) == 1
    assert dreams == [True]
    assert "could not vendor pyzmq for GIMP's Python" in capsys.readouterr().err


def test_help_says_what_each_option_does_and_what_the_exit_status_means():
    result = subprocess.run([sys.executable, "install.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for option in ("--gimp-dir", "--uninstall", "--remove-backend", "--gpu", "--vendor-pyzmq", "--no-vendor-pyzmq",
                   "--skip-backend", "--skip-gimp", "--no-dream"):
        assert option in result.stdout
    assert "exit status" in result.stdout.lower() and "flatpak" in result.stdout.lower()


# ---- TensorFlow: exactly one build in .venv ------------------------------------------------------


@pytest.mark.parametrize(("gpu", "installed", "removed"), [
    (True, {"tensorflow-cpu"}, ["tensorflow-cpu"]),
    (True, {"tensorflow"}, []),
    (True, set(), []),
    (True, {"tensorflow", "tensorflow-cpu"}, ["tensorflow", "tensorflow-cpu"]),  # what --gpu used to leave
    (False, {"tensorflow"}, ["tensorflow"]),
    (False, {"tensorflow-cpu"}, []),
    (False, {"tensorflow", "tensorflow-cpu"}, ["tensorflow", "tensorflow-cpu"]),  # they share tensorflow/: both go
])
def test_the_other_tensorflow_is_uninstalled_before_installing(gpu, installed, removed):
    python, requirements = Path("/venv/bin/python"), Path("/tmp/requirements.txt")
    commands = install.install_commands(python, gpu, installed, requirements)
    pip = [str(python), "-m", "pip"]
    expected = [[*pip, "uninstall", "-y", *removed]] if removed else []
    expected.append([*pip, "install", "--no-deps", "-r", str(requirements)])
    if gpu:
        expected.append([*pip, "install", f"tensorflow[and-cuda]=={install.pinned('tensorflow-cpu')}",
                         "-c", str(requirements)])
    assert commands == expected


def test_the_installed_tensorflows_are_read_from_the_environment():
    assert install.installed_tensorflows(install.venv_python()) == {"tensorflow-cpu"}  # as requirements.txt pins


def test_the_gpu_requirements_are_requirements_txt_without_tensorflow_cpu(tmp_path):
    gpu = install.requirements_without_tensorflow_cpu(tmp_path).read_text().splitlines()
    cpu = install.REQUIREMENTS.read_text().splitlines()
    assert [line for line in cpu if line not in gpu] == [f"tensorflow_cpu=={install.pinned('tensorflow-cpu')}"]


# ---- which Python GIMP runs plug-ins with -----------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="GIMP's Flatpak is a Linux thing")
@pytest.mark.parametrize("flatpak_gimp", ["data folder", "flatpak info", None])
def test_a_flatpak_gimp_means_its_python_has_no_pyzmq(tmp_path, monkeypatch, flatpak_gimp):
    monkeypatch.setattr(install, "native_gimp_python_has_zmq", lambda: True)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    (tmp_path / "bin").mkdir()
    flatpak = tmp_path / "bin" / "flatpak"  # knows org.gimp.GIMP only when told to
    flatpak.write_text(f'#!/bin/sh\n[ "{flatpak_gimp}" = "flatpak info" ] && [ "$*" = "info org.gimp.GIMP" ]\n')
    flatpak.chmod(0o755)
    if flatpak_gimp == "data folder":
        (tmp_path / ".var" / "app" / "org.gimp.GIMP").mkdir(parents=True)
    assert install.gimp_python_has_zmq() is (flatpak_gimp is None)


@pytest.mark.parametrize("system, expected", [("darwin", False), ("win32", None)])
def test_macos_gimp_gets_pyzmq_and_windows_is_unknown(monkeypatch, system, expected):
    """macOS GIMP bundles a CPython without pyzmq (PyPI's wheel loads there); Windows' MSYS2 Python can't load it."""
    monkeypatch.setattr(install.sys, "platform", system)
    assert install.gimp_python_has_zmq() is expected
