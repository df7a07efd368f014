# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 Timing and fractionation: a scenario study and how to read it
#
# When should RT be added to pembrolizumab, and how should it be fractionated? The study runner
# (`abscopal.studies`) simulates every combination of the levels of four axes — **timing** x
# **fractionation** x **site** x **drug** — on the *same* virtual patients (common random numbers),
# scores each cell like a trial (RECIST 1.1, ORR, PFS, OS, pneumonitis risk) and writes a summary
# table, figures and an HTML report.
#
# Here we run a small grid: timing {day -7, day 21, at progression} x fractionation {no RT,
# SBRT 24 Gy/3, conventional 45 Gy/15}, RT to the lung primary, pembrolizumab 200 mg q3w.
#
# The same study from the shell, for the full default design (`studies/default.toml`):
#
# ```bash
# abscopal study studies/default.toml --out results/default_study [--workers 2]
# ```
#
# Finished cells are cached in `OUT/cells/`, so an interrupted run resumes where it stopped.

# %%
import os
import tempfile
from pathlib import Path

from IPython.display import Image, display

from abscopal.studies import parse_study, run_study, summary_table
from abscopal.studies.table import format_summary

SMALL = os.environ.get("ABSCOPAL_NOTEBOOK_SMALL") == "1"
ROOT = Path.cwd().resolve()
while not (ROOT / "pyproject.toml").exists():
    ROOT = ROOT.parent
HAVE_FIT = (ROOT / "fits" / "default.json").exists()
N_PATIENTS = 30 if SMALL else 150
N_DRAWS = 0 if (SMALL or not HAVE_FIT) else 5
print(f"SMALL={SMALL}, shipped fit present: {HAVE_FIT}; {N_PATIENTS} patients, {N_DRAWS} parameter draws")

# %% [markdown]
# ## The design
#
# A design is a mapping with the same keys as a study TOML file (see `studies/default.toml` and the
# docstring of `abscopal.studies.design`). `fit = "default"` uses the shipped calibration
# `fits/default.json`; `"none"` uses the model's default (uncalibrated) parameter values, which is
# what this notebook falls back to when no shipped fit exists yet. `n_draws` parameter vectors are
# drawn from the fit's uncertainty to give each metric an interval (0: point values only).

# %%
design = parse_study({
    "title": "Notebook 03: timing x fractionation with pembrolizumab",
    "fit": "default" if HAVE_FIT else "none",
    "population": {"mix": "pembro_rt", "n_patients": N_PATIENTS, "seed": 2026},
    "treatment": {"drug": "pembrolizumab_200mg_q3w", "salvage_delay_day": 7},
    "assessment": {"scan_interval_week": 6, "orr_visit_day": 84, "exclude_irradiated": False},
    "uncertainty": {"n_draws": N_DRAWS, "seed": 7},
    "simulation": {"t_end_day": 730},
    "axes": {
        "timing": [-7, 21, "at_progression"],
        "fractionation": ["none", "sbrt_24gy_3fx", "conv_45gy_15fx"],
        "site": ["lung_primary"],
    },
})
design

# %% [markdown]
# ## Run it
#
# Each cell simulates the fit's point values (draw 0) and the `n_draws` parameter draws. With
# `out_dir`, finished cells, `endpoints.nc`, `summary.csv`, the figures and `report.html` are written
# there. `workers=N` would run the cells on a local Dask cluster with identical results.

# %%
tmp = Path(tempfile.mkdtemp(prefix="abscopal_study_"))
out = tmp / "study"
ds = run_study(design, out_dir=out)
rows = summary_table(ds)
print(format_summary(rows))

# %%
sorted(p.name for p in out.iterdir())

# %% [markdown]
# ## How to read the results
#
# * **Timing** is the day of the first RT fraction relative to the first pembrolizumab dose
#   (-7: RT a week before the drug; 21: RT at the second cycle). **At progression** is salvage RT:
#   every patient first receives the drug alone; a patient whose RECIST progression is seen at a
#   scan gets the course 7 days (`salvage_delay_day`) after that scan, and patients who never progress
#   get no RT. PFS of the at-progression cells therefore equals the no-RT PFS by construction; salvage
#   RT acts on overall survival, later response and pneumonitis.
# * **Intervals** (in brackets, and error bars in the figures) are the central 95% of the metric over
#   the parameter draws from the fit's uncertainty — parameter uncertainty, not sampling error of
#   the virtual population. Without draws (as in the small run, or without a fit) only point values
#   are shown.
# * **Hazard ratios** (`hr_pfs`, `hr_os` in the summary rows) compare each cell with the **no-RT cell
#   of the same timing, site and drug**, on the same patients.
# * **Pneumonitis** is the mean over patients of the LKB NTCP of the EQD2 mean lung dose (a fixed
#   fraction of the prescribed dose by target and fractionation unless a level sets it), raised when
#   a drug dose falls close to an RT fraction; non-irradiated patients count as 0.

# %%
for r in rows:
    if r["fractionation"] != "none":
        print(f"{r['timing']:>16} {r['fractionation']:>16}: HR PFS {r['hr_pfs']:.2f}, HR OS {r['hr_os']:.2f}")

# %% [markdown]
# ### Heatmap of 12-month overall survival
#
# Rows are timings, columns fractionations; each cell shows the point value (and, with draws, its 95%
# interval). Compare along a row for fractionation and down a column for timing.

# %%
display(Image(filename=str(out / "heatmap_os_12mo.png")))

# %% [markdown]
# ### Therapeutic ratio
#
# 12-month OS against pneumonitis risk, one point per cell (colour: fractionation, marker: timing).
# The dotted line is the no-RT reference and the dashed vertical line the 5% pneumonitis threshold
# the report uses for "low toxicity". Cells up and to the left are better; a cell whose interval
# overlaps the no-RT line is not distinguishable from no RT under the fit's uncertainty.

# %%
display(Image(filename=str(out / "therapeutic_ratio.png")))

# %% [markdown]
# `report.html` in the output folder collects these figures, the full summary table, a computed
# "what the model favours" section, the parameter sources and the provenance. With `fit = "none"`
# the model is uncalibrated and the numbers illustrate mechanisms, not predictions.
