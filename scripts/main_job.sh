#!/usr/bin/env bash
# README command 1: set up (.venv) and run the main job into results/ (overwrites results/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p results
.venv/bin/abscopal simulate scenarios/pembro_sbrt.toml --patients 500 --seed 2019 \
  --out results/pembro_sbrt.nc --figure results/pembro_sbrt.png --force
.venv/bin/abscopal simulate scenarios/mdacc_fractionation.toml --patients 500 --seed 2020 \
  --out results/mdacc_fractionation.nc --figure results/mdacc_fractionation.png --force
.venv/bin/abscopal cite --result results/pembro_sbrt.nc
