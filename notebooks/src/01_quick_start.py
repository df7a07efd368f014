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
# # 01 Quick start: one arm, one control, scored like a trial
#
# This notebook simulates a PEMBRO-RT-like comparison with the default NSCLC model:
# pembrolizumab 200 mg q3w alone versus pembrolizumab plus SBRT 24 Gy in 3 fractions to the lung
# primary (lesion 0) starting on day -7 (day 0 = first drug dose). It then scores the virtual patients
# with RECIST 1.1 at 6-weekly scans (objective response rate at week 12, on non-irradiated lesions),
# draws Kaplan-Meier curves and prints the provenance of the result.
#
# **The default parameters are not calibrated**: the numbers illustrate the mechanisms and the
# pipeline, not predictions (notebook 02 shows calibration).
#
# Set `ABSCOPAL_NOTEBOOK_SMALL=1` to run with a tiny population (as CI does).

# %%
import os

import matplotlib.pyplot as plt

import abscopal as ab
from abscopal.endpoints import TrialAssessment, score
from abscopal.endpoints.table import format_table
from abscopal.plot import plot_km, plot_lesion_trajectories, plot_median_burden

SMALL = os.environ.get("ABSCOPAL_NOTEBOOK_SMALL") == "1"
N_PATIENTS = 30 if SMALL else 300
print(f"SMALL={SMALL}: {N_PATIENTS} virtual patients per arm")
%matplotlib inline

# %% [markdown]
# ## The model
#
# `nsclc_model(3)` declares three lesions (lesion 0 is the lung primary). The first simulation
# compiles the model's kernels with numba and caches them on disk, so later runs start quickly.

# %%
model = ab.nsclc_model(3)
print(f"{len(model.state_names)} states, {len(model.parameter_names)} parameters")
print("mechanisms that can be switched off:", ", ".join(model.mechanism_names))

# %% [markdown]
# ## Two arms and a virtual population
#
# A `TreatmentPlan` combines a drug regimen and radiation courses. `default_variability()` gives the
# between-patient variability (log-normal / logit-normal) of the model parameters; every patient gets
# its own random stream from the seed, so patient *k* is the same patient in both arms (common random
# numbers) and whatever the population size.

# %%
pembro = ab.drug_regimen("pembrolizumab_200mg_q3w")
sbrt = ab.radiation_regimen("sbrt_24gy_3fx", start_day=-7, target_lesions=(0,))
arms = {
    "pembrolizumab": ab.TreatmentPlan(drug=pembro),
    "sbrt+pembrolizumab": ab.TreatmentPlan(drug=pembro, radiation=(sbrt,)),
}
pop = ab.VirtualPopulation(n_patients=N_PATIENTS, variability=ab.default_variability(), seed=1)
ds = ab.simulate(model, arms, population=pop, t_end_day=365, output_interval_day=7)
ds

# %% [markdown]
# ## Lesion trajectories
#
# Left: the three lesions of one patient in the combined arm (irradiated lesion solid, the others
# dashed; a shrinking dashed lesion is an abscopal response). Right: median total tumour burden per
# arm with the 25-75 % band.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
plot_lesion_trajectories(ds, arm="sbrt+pembrolizumab", patient=0, ax=axes[0])
plot_median_burden(ds, ax=axes[1])
plt.show()

# %% [markdown]
# ## Scoring like the trial
#
# `score` applies RECIST 1.1 at the scan visits (6-weekly by default), takes the ORR at the first
# scan on or after day 84 (week 12, as PEMBRO-RT did) and, by default, scores only non-irradiated
# lesions. New lesions and deaths come from model hazards crossing per-patient Exp(1) draws. Because
# the simulation ends at day 365, PFS and OS are censored at the last scan.

# %%
ep = score(ds, TrialAssessment(orr_visit_day=84))
print(format_table(ep))

# %%
ax = plot_km(ep, "pfs")
plt.show()

# %% [markdown]
# ## Provenance
#
# Every dataset carries its provenance (model, parameter sources, treatment, solver, versions);
# `ab.cite` turns it into text with the references to cite. Only the first lines are shown here.

# %%
print("\n".join(ab.cite(ds).splitlines()[:15]))
