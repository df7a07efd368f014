#!/usr/bin/env bash
# The static checks CI runs before the tests: the formatter decides the layout, the linter, the type checker.
# Needs .venv from scripts/setup.sh (its lint extra installs the pinned ruff and mypy).
set -euo pipefail
cd "$(dirname "$0")/.."
PATHS=(src tests scripts benchmarks docs fits)
.venv/bin/ruff format --check "${PATHS[@]}"
.venv/bin/ruff check "${PATHS[@]}"
.venv/bin/mypy
