"""Fixtures for the acceptance tests in a real GIMP: every test that uses them runs on GIMP 3.0 and 3.2.

GIMP 3.0 runs in the Debian 13 root of tools/gimp3_root.sh, GIMP 3.2 in its Debian testing root (`--gimp 3.2`),
or either natively where the host has it. Without one, its tests are skipped, unless CI=true: then that is a
failure. Backends run on the host (the roots share its network); one per test module serves both versions.

For a test module of your own (tests/gimp/test_gimp_<topic>.py and a batch script of its own):

    @pytest.fixture(scope="module")
    def report(run_batch):                      # one GIMP start per version for the whole module
        return run_batch(BATCH, {"my": "settings"}).report

The batch script runs inside GIMP (python-fu-eval, on stdin); it reads its settings from the JSON file named by
$DD_TEST_CONFIG ("out": a folder to write in, "endpoint": the backend's, "gimp_version", "native", plus yours)
and writes out/report.json. `gimp` gives the version, its root and commands run in it. A module that needs
another backend defines a module-scoped fixture named `gimp_backend` of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.conftest import ROOT, BackendProcess

TOOL = ROOT / "tools" / "gimp3_root.sh"
SCENARIOS_BATCH = Path(__file__).with_name("batch_scenarios.py")
HELPERS_END = "\n# ---- scenarios"  # batch_scenarios.py's helpers come before this line,
RUNNER = '\nreport = {"gimp"'  # and from here on it runs SCENARIOS and writes the report
GIMP_VERSIONS = ("3.0", "3.2")
ENSURE_TIMEOUT_S = 1800  # a first build of a root takes minutes
GIMP_TIMEOUT_S = 600
# What a batch run passes into the root (tools/gimp3_root.sh starts commands with a clean environment).
PASS_ENV = ("GIMP3_DIRECTORY", "GIMP3_CACHEDIR", "DEEP_DREAM_ENDPOINT", "DEEP_DREAM_CONFIG_DIR", "XDG_CACHE_HOME",
            "DD_TEST_CONFIG")


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"GIMP is required when CI=true: {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class GimpRoot:
    """One GIMP version, ready: where it runs on the host ("/" when native) and how to run commands there."""

    version: str
    root: Path

    @property
    def console(self) -> str:
        return f"gimp-console-{self.version}"

    @property
    def gui(self) -> str:
        return f"gimp-{self.version}"

    @property
    def native(self) -> bool:
        return str(self.root) == "/"

    def command(self, *command: str) -> list[str]:
        """COMMAND run in the root, with a clean environment plus the variables named in $GIMP3_PASS_ENV."""
        return [str(TOOL), "--gimp", self.version, "run", "--", *command]

    def folder(self, prefix: str) -> Path:
        """A new folder in the root's /tmp (on the host); remove it when done."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / "tmp"))

    def inside(self, path: Path) -> str:
        """The same path as GIMP sees it."""
        return "/" + str(path.relative_to(self.root))


@pytest.fixture(scope="module", params=GIMP_VERSIONS, ids=[f"gimp{version}" for version in GIMP_VERSIONS])
def gimp(request: pytest.FixtureRequest) -> GimpRoot:
    """Each GIMP version in turn, after checking that its console binary starts and reports that version."""
    version = request.param
    if not TOOL.exists():
        unavailable(f"{TOOL} is missing")
    found = subprocess.run([str(TOOL), "--gimp", version, "path"], capture_output=True, text=True,
                           timeout=ENSURE_TIMEOUT_S)
    if found.returncode != 0:
        unavailable(f"no GIMP {version} root: {found.stderr.strip()[-500:]}")
    ready = GimpRoot(version, Path(found.stdout.strip()))
    answer = subprocess.run(ready.command(ready.console, "--version"), capture_output=True, text=True, timeout=300)
    if f"version {version}." not in answer.stdout:
        unavailable(f"{ready.console} does not run: {answer.stdout.strip()} {answer.stderr.strip()[-500:]}")
    return ready


@pytest.fixture(scope="module")
def gimp_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    """A real backend for the module, shared by both GIMP versions (its presets file holds "tiny")."""
    process = BackendProcess(tmp_path_factory.mktemp("gimp-backend"))
    yield process
    process.stop()


def install_plugin(profile: Path) -> None:
    """The plug-in, installed by install.py into a throw-away GIMP profile."""
    subprocess.run(["python3", str(ROOT / "install.py"), "--gimp-dir", str(profile), "--skip-backend", "--no-dream"],
                   check=True, capture_output=True, cwd=ROOT)


def with_scenario_helpers(script: Path) -> str:
    """A batch script that defines only SCENARIOS ({name: function returning a JSON-able result}), placed
    between batch_scenarios.py's helpers (dream, new_layer, dump, tree, …) and its runner, which runs them and
    writes out/report.json: {"gimp": version, "scenarios": {name: result, or {"exception": traceback}}}."""
    shared = SCENARIOS_BATCH.read_text()
    assert HELPERS_END in shared and RUNNER in shared, f"{SCENARIOS_BATCH.name}'s helpers or runner have moved"
    return shared[:shared.index(HELPERS_END)] + "\n" + script.read_text() + shared[shared.index(RUNNER):]


@dataclass
class BatchRun:
    """What one GIMP start left: the script's report, GIMP's output and the run's folder (on the host), which
    holds profile/, config/ (the user's presets), xdg-cache/ (the plug-in's backend.log) and what the script
    wrote. The folder is removed at the end of the module."""

    report: dict[str, Any]
    output: str
    work: Path
    config: dict[str, Any]

    @property
    def backend_log(self) -> str:
        """The log of a backend the plug-in started itself (empty if it started none)."""
        log = self.work / "xdg-cache" / "deep-dream-gimp" / "backend.log"
        return log.read_text() if log.exists() else ""


@pytest.fixture(scope="module")
def run_batch(gimp: GimpRoot, gimp_backend: BackendProcess) -> Iterator[Callable[..., BatchRun]]:
    """run_batch(script, config=None, *, user_presets=None) -> BatchRun: one headless GIMP start, with a fresh
    profile the plug-in is installed into, running the batch script (a Path, or the script's text) on
    python-fu-eval's stdin.

    The script's settings ($DD_TEST_CONFIG) are `config` plus "out" (the run's folder as GIMP sees it; the script
    writes out/report.json there), "endpoint" (the module's backend; the plug-in's default too), "native" and
    "gimp_version". `user_presets` becomes the user's presets file the plug-in reads. Fails if GIMP fails or
    the script wrote no report."""
    folders: list[Path] = []

    def run(script: Path | str, config: dict[str, Any] | None = None, *,
            user_presets: dict[str, Any] | None = None) -> BatchRun:
        work = gimp.folder("deep-dream-gimp-test-")
        folders.append(work)
        inside = gimp.inside(work)
        (work / "config").mkdir()
        if user_presets is not None:
            (work / "config" / "presets.json").write_text(json.dumps(user_presets))
        install_plugin(work / "profile")
        settings = {"out": inside, "endpoint": gimp_backend.endpoint, "native": gimp.native,
                    "gimp_version": gimp.version, **(config or {})}
        (work / "config.json").write_text(json.dumps(settings))
        env = dict(os.environ, GIMP3_PASS_ENV=" ".join(PASS_ENV), GIMP3_DIRECTORY=f"{inside}/profile",
                   GIMP3_CACHEDIR=f"{inside}/cache", DEEP_DREAM_ENDPOINT=settings["endpoint"],
                   DEEP_DREAM_CONFIG_DIR=f"{inside}/config", XDG_CACHE_HOME=f"{inside}/xdg-cache",
                   DD_TEST_CONFIG=f"{inside}/config.json")
        done = subprocess.run(  # with fonts (no -f): text layers need them
            gimp.command(gimp.console, "-i", "-d", "--batch-interpreter=python-fu-eval", "-b", "-", "--quit"),
            input=script.read_text() if isinstance(script, Path) else script, capture_output=True, text=True,
            env=env, timeout=GIMP_TIMEOUT_S,
        )
        output = done.stdout + done.stderr
        report = work / "report.json"
        assert done.returncode == 0 and report.exists(), f"GIMP {gimp.version} failed ({done.returncode}):\n" \
                                                         f"{output[-6000:]}"
        return BatchRun(json.loads(report.read_text()), output, work, settings)

    yield run
    for work in folders:
        shutil.rmtree(work, ignore_errors=True)
