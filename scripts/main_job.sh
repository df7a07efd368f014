#!/usr/bin/env bash
# README command 1: set up (.venv) and run the main job into results/ (overwrites results/).
# Until the scenario-study command exists (issue 5), the main job simulates two trial designs
# and scores them like the trials did: PEMBRO-RT (ORR at week 12, non-irradiated lesions) and
# MDACC (best out-of-field response).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p results
.venv/bin/abscopal simulate scenarios/pembro_sbrt.toml --patients 500 --seed 2019 \
  --out results/pembro_sbrt.nc --figure results/pembro_sbrt.png --force \
  --endpoints --orr-visit-day 84 --endpoints-out results/pembro_sbrt_endpoints.nc \
  --endpoints-figure results/pembro_sbrt_endpoints.png
.venv/bin/abscopal simulate scenarios/mdacc_fractionation.toml --patients 500 --seed 2020 \
  --out results/mdacc_fractionation.nc --figure results/mdacc_fractionation.png --force \
  --endpoints --endpoints-out results/mdacc_endpoints.nc --endpoints-figure results/mdacc_endpoints.png
.venv/bin/abscopal cite --result results/pembro_sbrt.nc
