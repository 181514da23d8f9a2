#!/usr/bin/env bash
# The test command (README, .ci/run): from a fresh clone, set up what the tests need and run them all.
#   1. the backend's environment (.venv, pinned) — install.py, without the first dream;
#   2. GIMP 3.0 and 3.2, each in a cached Debian root (13 "trixie", testing "forky") — tools/gimp3_root.sh
#      (a few minutes each the first time only; one after the other, as both may apt-get on the host);
#   3. ruff, then pytest (the GIMP acceptance tests included; under CI=true a skipped GIMP test fails).
# Extra arguments go to pytest, e.g. `tools/run_tests.sh -k server`.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 install.py --no-dream --skip-gimp
bash tools/gimp3_root.sh --gimp 3.0 ensure
bash tools/gimp3_root.sh --gimp 3.2 ensure
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
