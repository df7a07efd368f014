#!/usr/bin/env bash
# README command 1: set up (.venv) and run the main job, the default scenario study (studies/default.toml):
# RT timing x fractionation added to pembrolizumab, on the shipped calibration (fits/default.json) with parameter
# draws of its uncertainty. Writes results/default_study/ (report.html, summary.csv, endpoints.nc, figures) and
# results/validation.txt (the shipped fit's predictions vs every trial target, with intervals and z-scores).
# Reruns reuse finished study cells; --force rewrites the outputs of a completed run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p results
.venv/bin/abscopal study studies/default.toml --out results/default_study --workers "${ABSCOPAL_WORKERS:-2}" --force
.venv/bin/abscopal validate --fit fits/default.json fits/targets/*.toml --resamples 4 --draws 8 \
  --out results/validation.txt --force
echo "report: results/default_study/report.html"
