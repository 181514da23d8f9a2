"""install.py's GIMP part, run as users run it (the backend part is what every other test runs on)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "install.py", "--skip-backend", "--no-dream", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)


def test_install_is_idempotent_and_uninstall_removes_only_ours(tmp_path):
    profile, other = tmp_path / "3.0", tmp_path / "3.2"
    for _ in range(2):
        result = install("--gimp-dir", str(profile), "--gimp-dir", str(other), "--no-vendor-pyzmq")
        assert result.returncode == 0, result.stderr
    plugin = profile / "plug-ins" / "deep_dream"
    assert os.access(plugin / "deep_dream.py", os.X_OK)
    assert (plugin / "wire" / "protocol.py").read_text() == (ROOT / "wire" / "protocol.py").read_text()
    launch = json.loads((plugin / "backend.json").read_text())
    assert launch["command"][1:] == ["-m", "backend", "serve"] and Path(launch["cwd"]) == ROOT
    assert Path(launch["command"][0]).name.startswith("python")
    (profile / "plug-ins" / "someone_elses").mkdir()
    result = install("--uninstall", "--gimp-dir", str(profile))
    assert result.returncode == 0 and not plugin.exists()
    assert (profile / "plug-ins" / "someone_elses").is_dir()
    assert (other / "plug-ins" / "deep_dream" / "deep_dream.py").exists()  # not named: left alone


def test_every_gimp3_profile_is_found_and_none_is_said(tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path), APPDATA=str(tmp_path))
    none = install(env=env)
    assert none.returncode == 0 and "no GIMP 3 profile found" in none.stdout
    for version in ("3.0", "3.2", "2.10"):
        (tmp_path / "GIMP" / version).mkdir(parents=True)
    found = install("--no-vendor-pyzmq", env=env)
    assert found.returncode == 0, found.stderr
    assert (tmp_path / "GIMP" / "3.0" / "plug-ins" / "deep_dream" / "deep_dream.py").exists()
    assert (tmp_path / "GIMP" / "3.2" / "plug-ins" / "deep_dream" / "deep_dream.py").exists()
    assert not (tmp_path / "GIMP" / "2.10" / "plug-ins").exists()
