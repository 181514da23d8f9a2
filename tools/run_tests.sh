#!/usr/bin/env bash
# The test command (README, .ci/run): from a fresh clone, set up what the tests need and run them all.
#   1. the backend's environment (.venv, pinned) — install.py, without the first dream;
#   2. GIMP 3 in a cached Debian 13 root — tools/gimp3_root.sh (a few minutes the first time only);
#   3. ruff, then pytest (the GIMP acceptance tests included; under CI=true a skipped GIMP test fails).
# Extra arguments go to pytest, e.g. `tools/run_tests.sh -k server`.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 install.py --no-dream --skip-gimp
bash tools/gimp3_root.sh ensure
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
