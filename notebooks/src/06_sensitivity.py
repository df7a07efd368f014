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
# # 06 Sensitivity: do the study's conclusions survive the assumptions?
#
# Most parameters of the default model are assumptions (the model card's `parameters.sourced_fraction`).
# `abscopal sensitivity` varies every parameter that is **not sourced** (2-fold around its value, within its
# bounds) and every **fitted** value (over its uncertainty), runs only the study cells that the headline
# conclusions need on the *same* virtual patients, and asks, for each conclusion, in what share of the runs its
# sign holds:
#
# * the 12-month OS hazard ratio of SBRT (24 Gy/3, 50 Gy/4) vs no RT;
# * the out-of-field (abscopal) ORR of SBRT minus conventional RT (45 Gy/15, 60 Gy/30);
# * the best RT timing of SBRT 24 Gy/3 (longest 12-month restricted mean OS).
#
# A conclusion is **robust** when its sign holds in at least 90% of the runs. From the shell, for the default
# study (docs/sensitivity.md):
#
# ```bash
# abscopal sensitivity studies/default.toml --method morris --samples 6 --patients 60 \
#     --out results/default_study/sensitivity
# ```
#
# Here: a small Morris screening on a reduced design (two timings) and a handful of factors.

# %%
import os
import tempfile
from pathlib import Path

from IPython.display import Image, Markdown, display

from abscopal.fitted import Fit
from abscopal.fitted.shipped import default_fit_path
from abscopal.model.library import get_model, version_options
from abscopal.studies import parse_study
from abscopal.studies.sensitivity import SensitivitySpec, format_verdicts, parameter_ranges, run_sensitivity

SMALL = os.environ.get("ABSCOPAL_NOTEBOOK_SMALL") == "1"
ROOT = Path.cwd().resolve()
while not (ROOT / "pyproject.toml").exists():
    ROOT = ROOT.parent
HAVE_FIT = (ROOT / "fits" / "default.json").exists()
N_PATIENTS = 20 if SMALL else 60
TRAJECTORIES = 2 if SMALL else 4
print(f"SMALL={SMALL}, shipped fit present: {HAVE_FIT}; {N_PATIENTS} patients, {TRAJECTORIES} trajectories")

# %% [markdown]
# ## What varies, and over what range
#
# `parameter_ranges` applies the rule: the model card's source categories decide which parameters are not
# sourced (an assumption, animal data, only the seed review, no source); each gets `[v/2, 2v]` cut to its bounds
# (log-uniform); the fit's free values get their 95% profile interval, or 2 standard errors (log scale for
# positive values, as the fit's parameter draws). Human-sourced parameters stay at their values.

# %%
fit = Fit.load(default_fit_path()) if HAVE_FIT else None
prov = {} if fit is None else fit.provenance
spec = get_model(
    "nsclc", n_lesions=int(prov.get("n_lesions") or 3), **version_options("nsclc", prov.get("model_version"))
)
factors, fixed = parameter_ranges(spec, fit, {} if fit is None else fit.all_values(), SensitivitySpec())
print(f"{len(factors)} factors ({sum(f.kind == 'fitted' for f in factors)} fitted), {len(fixed)} held fixed")
for f in factors[:12]:
    print(f"  {f.name:<36} {f.kind:<12} {f.category:<12} [{f.lower:.4g}, {f.upper:.4g}] ({f.scale}; {f.rule})")
print("  ...")

# %% [markdown]
# ## A small screening
#
# Every run is one parameter draw of each needed study cell (the study's own `run_cell`); run 0 is the
# reference, the study's own values. `factors=` limits the analysis to a few factors (the others stay at their
# reference values) — the way to follow a Morris screening with a Sobol' analysis of its top factors.

# %%
design = parse_study(
    {
        "title": "Notebook 06: sensitivity of a reduced timing x fractionation study",
        "fit": "default" if HAVE_FIT else "none",
        "population": {"mix": "pembro_rt", "n_patients": N_PATIENTS, "seed": 2026},
        "assessment": {"scan_interval_week": 6, "orr_visit_day": 84},
        "simulation": {"t_end_day": 730},
        "axes": {
            "timing": [-7, 21],
            "fractionation": ["none", "sbrt_24gy_3fx", "sbrt_50gy_4fx", "conv_45gy_15fx", "conv_60gy_30fx"],
        },
    }
)
chosen = [f.name for f in factors if f.kind == "fitted"][:1] + [
    n
    for n in ("dc_rest_signal", "kill_half_sat_relative", "pd1_max_inhibition", "immune_burden_scale_mm3")
    if any(f.name == n for f in factors)
][: 2 if SMALL else 4]
sens = SensitivitySpec(method="morris", samples=TRAJECTORIES, seed=0, factors=tuple(chosen))
out = Path(tempfile.mkdtemp(prefix="abscopal_nb06_")) / "sensitivity"
result = run_sensitivity(design, sens, out)
print(format_verdicts(result))

# %% [markdown]
# ## The figure
#
# One panel per contrast: Morris `mu*` (the mean absolute change of the contrast when a factor crosses its whole
# range; error bar: 95% bootstrap interval) and `sigma` (x: interactions or non-linearity), blue for not-sourced
# parameters, orange for fitted values; the last panel shows in what share of the runs each timing is best.

# %%
display(Image(filename=str(out / "tornado.png")))

# %% [markdown]
# ## Reading the verdicts
#
# * **robust**: the conclusion's sign holds in >= 90% of the runs: the assumed ranges do not overturn it;
# * **not robust**: it holds in most runs but not 90%: say which parameters move it (the top of its `mu*` list);
# * **reversed**: the opposite holds in most runs: the reference value is atypical of the ranges;
# * **undetermined**: no sign at the reference (e.g. a zero difference) or no finite run.
#
# With a handful of factors and runs, these verdicts are illustrations. `report.md` in the output folder lists
# every factor's range, the top factors per contrast and the provenance; `samples.nc` holds every run.

# %%
display(Markdown((out / "report.md").read_text().split("## Most influential parameters")[0]))

# %% [markdown]
# ## The shipped screening of the default study
#
# `docs/sensitivity/default_morris/` holds the Morris screening of `studies/default.toml` on the shipped fit
# (command and verdicts in docs/sensitivity.md). Written into the study's folder (`OUT/sensitivity/`), the same
# verdicts appear in the study report under "How robust are these conclusions".

# %%
shipped = ROOT / "docs" / "sensitivity" / "default_morris" / "report.md"
if shipped.exists():
    display(Markdown(shipped.read_text().split("### Best RT timing")[0]))
else:
    print("no shipped screening in this checkout")
