#!/usr/bin/env bash
# Create .venv (if absent) with python3 and install abscopal with its test extras from this repo, at the versions
# pinned in requirements/constraints.txt (refresh them with scripts/lock.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c requirements/constraints.txt -e ".[test,lint]"
