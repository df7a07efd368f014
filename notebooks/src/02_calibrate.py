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
# # 02 Calibrate: fit parameters to a trial, inspect the uncertainty, validate on another trial
#
# abscopal calibrates against **published trial figures**: a target file (`fits/targets/*.toml`,
# format in `docs/targets.md`) lists each arm's design (drug, RT course, population mix, how response
# was assessed) and its observed outcomes (ORR, median PFS/OS, hazard ratios) with confidence
# intervals and a confidence tag. A `CalibrationProblem` simulates each arm with virtual patients
# drawn once (common random numbers, so the objective is deterministic and smooth in the parameters)
# and returns residuals divided by the targets' standard errors; `calibrate` minimises their sum of
# squares with lmfit.
#
# Here: fit `max_kill_per_day` (and, in the full run, `tumour_doubling_time_day`) to PEMBRO-RT
# (Theelen 2019), profile the likelihood, write a fit report, and check the fit on the MDACC trial
# (Welsh 2020), which was not used in the fit. The small run uses few patients per arm, so its numbers
# are noisy — this shows the workflow, not a usable calibration.
#
# From the shell: `abscopal fit fits/targets/pembro_rt.toml --out FIT.json`.

# %%
import os
import tempfile
import time
from pathlib import Path

from IPython.display import Image, Markdown, display

from abscopal.calibrate import CalibrationProblem, calibrate, default_parameters
from abscopal.calibrate.report import fit_report
from abscopal.calibrate.uncertainty import identifiability_report, profile_likelihood, with_uncertainty
from abscopal.calibrate.validate import validate
from abscopal.trials import load_targets

SMALL = os.environ.get("ABSCOPAL_NOTEBOOK_SMALL") == "1"
ROOT = Path.cwd().resolve()
while not (ROOT / "pyproject.toml").exists():
    ROOT = ROOT.parent
N_PER_ARM = 40 if SMALL else 100
FREE = ["max_kill_per_day"] if SMALL else ["max_kill_per_day", "tumour_doubling_time_day"]
print(f"SMALL={SMALL}: {N_PER_ARM} virtual patients per arm, free parameters {FREE}")

# %% [markdown]
# ## Targets and problem

# %%
targets = load_targets(ROOT / "fits" / "targets" / "pembro_rt.toml")
print(targets.title)
print(targets.citation)
for arm in targets.arms:
    print(f"  arm {arm.name}: " + ", ".join(f"{o.name} {o.value:g}" for o in arm.outcomes))

problem = CalibrationProblem(targets=(targets,), n_patients_per_arm=N_PER_ARM, seed=0)
params = default_parameters(problem, FREE)
params

# %% [markdown]
# ## Fit
#
# Least squares (lmfit / scipy `least_squares`) from the model defaults within the parameter bounds.
# Standard errors come from the Jacobian at the optimum; they are not rescaled by the reduced
# chi-square, because the residuals are already in units of the targets' standard errors.

# %%
t0 = time.perf_counter()
cal = calibrate(problem, params)
print(f"fit in {time.perf_counter() - t0:.0f} s\n")
print(cal.summary_table())

# %% [markdown]
# ## Profile likelihood and identifiability
#
# For each free parameter the profile fixes it on a grid around the optimum, re-fits the others and
# records the chi-square. By Wilks' theorem the 95% profile interval is where chi-square stays within
# 3.84 of its minimum (68%: within 1.0). A side that stays below 3.84 up to a parameter bound is
# *open*: the data do not bound the parameter from that side (practical non-identifiability, Raue et
# al. 2009). `identifiability_report` turns profiles, standard errors and correlations into
# sentences. When the fit's standard errors carry its misfit (reduced chi-square `c` > 1 with the reported
# errors), the thresholds are `c` and `3.84 c` (the quasi-likelihood profile), so profile and standard-error
# intervals agree; each profile stores the `thresholds` it used.

# %%
t0 = time.perf_counter()
profiles = profile_likelihood(problem, cal, n_points=5 if SMALL else 7, max_extend=1 if SMALL else 2)
print(f"profiles in {time.perf_counter() - t0:.0f} s")
cal_u = with_uncertainty(cal, profiles=profiles)
for name, prof in profiles.items():
    lo, hi = prof["interval_95"]
    print(f"{name}: optimum {prof['optimum']:.4g}, 95% profile interval [{lo:.4g}, {hi:.4g}] "
          f"({'closed' if prof['closed'] else 'open on a side'})")
print()
for line in identifiability_report(cal_u):
    print("-", line)

# %% [markdown]
# ## Fit report
#
# `fit_report` writes a self-contained HTML file or a Markdown file with PNG figures next to it
# (`abscopal fit-report FIT.json --out REPORT.html` for a saved fit): provenance, the parameter table
# with profile intervals, fit statistics, predicted vs observed for every target, a forest plot,
# weighted residuals, the profiles, the identifiability findings and the sources of the targets.

# %%
out = Path(tempfile.mkdtemp(prefix="abscopal_fit_"))
written = fit_report(cal_u, out / "pembro_rt_fit.md")
for f in written:
    print(f.name, f"{f.stat().st_size / 1024:.0f} kB")
forest = [f for f in written if f.name.endswith("-forest.png")]
if forest:
    display(Image(filename=str(forest[0])))

# %%
text = written[0].read_text(encoding="utf-8")
display(Markdown("\n".join(text.splitlines()[:30])))

# %% [markdown]
# ## Validation on a trial not in the fit
#
# `validate` predicts the outcomes of any target file with the calibration and compares them with the
# observed values. Prediction intervals combine re-drawn virtual populations at the fitted values
# (sampling noise of the finite population) and parameter draws from the fit's uncertainty. The
# MDACC randomised phase I/II trial (Welsh 2020: pembrolizumab alone, + SBRT, + conventional RT)
# was not used above. Two resamples and two draws are far too few for real intervals; they keep the
# notebook fast.

# %%
mdacc = load_targets(ROOT / "fits" / "targets" / "mdacc_welsh2020.toml")
t0 = time.perf_counter()
result = validate(cal, [mdacc], n_patients_per_arm=30 if SMALL else 100, n_population_resamples=2,
                  n_parameter_draws=2, seed=1)
print(f"validation in {time.perf_counter() - t0:.0f} s\n")
print(result.to_table())

# %% [markdown]
# `z` is the difference between predicted and observed in units of the target's standard error (on
# the log scale for medians and hazard ratios, as in the objective); `in CI` says whether the
# prediction falls inside the trial's confidence interval and `obs in PI` whether the observation falls
# inside the prediction interval. A validation that fails is a finding about the model (or about a
# fit to one small trial), not an error of the code: here one parameter fitted to PEMBRO-RT with 40
# patients per arm is asked to predict a different trial with other RT schedules.
