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
# # 04 Your own model: write it in the spec language, run it through the same pipeline
#
# A model in abscopal is **data**: a `ModelSpec` of `State`s, `Parameter`s (units, default, bounds,
# source), sympy rate expressions, `Event` jump maps applied exactly at their times, `Observable`s
# and switchable `Mechanism`s. `compile_model` generates the right-hand side, its analytic Jacobian,
# the jumps and the observables as a Python module, numba-compiles it and caches it on disk by content
# hash; `simulate` then runs any treatment plan on it.
#
# As an example we write a compact, continuous-time model with the structure of the Serre-family
# radio-immune model (Serre et al., *Cancer Res* 2016;76:4931-40, as implemented by Cho et al.,
# *Phys Med Biol* 2023;68:165010): viable tumour `T`, lethally damaged ("doomed") tumour `D`,
# tumour-reactive lymphocytes `L`, plus a two-compartment anti-PD-1 antibody (amounts `Ac`, `Ap`).
# **This is a simplified re-expression for illustration, not a reproduction of either paper**: the
# published model is a daily discrete map without drug PK (anti-PD-1 is a constant there), and the way
# receptor occupancy weakens suppression here is an assumption.
#
# $$
# \begin{aligned}
# C &= A_c / V_c, \qquad RO = \frac{C}{C + EC_{50}} &&\text{serum concentration, PD-1 occupancy}\\
# Z &= \frac{\omega L}{1 + \kappa\,(1 - E_{\max} RO)\,T^{2/3}} &&\text{immune kill rate; suppression scales with tumour surface}\\
# \dot T &= \mu T - Z T \\
# \dot D &= Z T - \lambda_T D \\
# \dot L &= \rho T + \psi D - \lambda_L L \\
# \dot A_c &= -\frac{CL}{V_c} A_c - \frac{Q}{V_c} A_c + \frac{Q}{V_p} A_p, \qquad
# \dot A_p = \frac{Q}{V_c} A_c - \frac{Q}{V_p} A_p
# \end{aligned}
# $$
#
# A radiation fraction of dose $d$ moves $T(1 - e^{-\alpha d - \beta d^2})$ from `T` to `D` and kills
# a fraction `f_L` of the lymphocytes in the field by the LQ model; a drug dose of $m$ mg adds $m$ to
# $A_c$.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
from IPython.display import Math, display
from scipy.integrate import solve_ivp

import abscopal as ab
from abscopal.model.spec import Event, EventArgument, Mechanism, ModelSpec, Observable, Parameter, State, sym
from abscopal.simulate import plan_events

SMALL = os.environ.get("ABSCOPAL_NOTEBOOK_SMALL") == "1"
N_PATIENTS = 20 if SMALL else 200
print(f"SMALL={SMALL}: {N_PATIENTS} virtual patients per arm")
%matplotlib inline

# %% [markdown]
# ## Parameters
#
# Every parameter carries units, a default, plausible bounds and its source. Values marked
# `assumption` are not taken from the papers. Tumour values follow the patient script of Cho et al.
# 2023 (Phys Med Biol 68:165010; growth 0.03/day, i.e. a 23-day
# doubling time; tumour alpha 0.214/Gy, beta 0.0214/Gy^2; lymphocyte alpha 0.182/Gy, beta 0.143/Gy^2).

# %%
SERRE = "Serre et al. 2016 Cancer Res 76:4931 (structure)"
CHO = "Cho et al. 2023 Phys Med Biol 68:165010, patient script"
params = (
    Parameter(name="mu", units="1/day", default=0.03, lower=1e-3, upper=0.5,
              description="net growth rate of viable tumour", source=f"{CHO}: doubling 23 d"),
    Parameter(name="omega", units="1/day", default=0.02, lower=0.0, upper=1.0,
              description="immune kill per unit lymphocytes", source=f"{SERRE}; value assumption"),
    Parameter(name="kappa", units="mm^-2", default=0.5, lower=0.0, upper=10.0,
              description="surface-limited immune suppression", source=f"{CHO}: kappa = 0.5 (units assumption)"),
    Parameter(name="rho", units="1/(mm3 day)", default=2e-5, lower=0.0, upper=1.0,
              description="lymphocyte recruitment by viable tumour", source=f"{SERRE}; value assumption"),
    Parameter(name="psi", units="1/(mm3 day)", default=1e-4, lower=0.0, upper=1.0,
              description="lymphocyte recruitment by dying (doomed) tumour", source=f"{SERRE}; value assumption"),
    Parameter(name="lam_T", units="1/day", default=float(np.log(2) / 15), lower=1e-3, upper=1.0,
              description="clearance of doomed cells", source=f"{CHO}: 15 d half-life"),
    Parameter(name="lam_L", units="1/day", default=float(np.log(2) / 12), lower=1e-3, upper=1.0,
              description="lymphocyte loss", source=f"{CHO}: 12 d half-life"),
    Parameter(name="alpha", units="1/Gy", default=0.214, lower=0.0, upper=1.0,
              description="tumour LQ alpha", source=CHO),
    Parameter(name="beta", units="1/Gy^2", default=0.0214, lower=0.0, upper=0.5,
              description="tumour LQ beta", source=CHO),
    Parameter(name="alpha_L", units="1/Gy", default=0.182, lower=0.0, upper=2.0,
              description="lymphocyte LQ alpha", source=CHO),
    Parameter(name="beta_L", units="1/Gy^2", default=0.143, lower=0.0, upper=1.0,
              description="lymphocyte LQ beta", source=CHO),
    Parameter(name="f_L", units="1", default=0.2, lower=0.0, upper=1.0,
              description="fraction of lymphocytes in the field", source="assumption"),
    Parameter(name="emax", units="1", default=0.8, lower=0.0, upper=1.0,
              description="maximal relief of suppression at full PD-1 occupancy", source="assumption"),
    # Drug PK: these names are the ones a DrugRegimen sets (DrugPK.as_parameters), so every named
    # regimen (abscopal regimens) supplies its own published popPK values; defaults: pembrolizumab.
    Parameter(name="pk_cl_l_per_day", units="L/day", default=0.22, lower=0.01, upper=5.0,
              description="antibody clearance", source="set by the drug regimen (pembrolizumab popPK default)"),
    Parameter(name="pk_vc_l", units="L", default=3.48, lower=0.5, upper=20.0,
              description="central volume", source="set by the drug regimen"),
    Parameter(name="pk_q_l_per_day", units="L/day", default=0.795, lower=0.01, upper=10.0,
              description="inter-compartmental clearance", source="set by the drug regimen"),
    Parameter(name="pk_vp_l", units="L", default=4.06, lower=0.5, upper=20.0,
              description="peripheral volume", source="set by the drug regimen"),
    Parameter(name="pk_cl_time_emax", units="1", default=0.0, lower=0.0, upper=0.0,
              description="time-varying clearance: not modelled, so fixed at 0 (drugs that need it are rejected)",
              source="model restriction"),
    Parameter(name="ro_ec50_ug_per_ml", units="ug/mL", default=0.0043, lower=1e-5, upper=100.0,
              description="serum concentration for 50% PD-1 occupancy", source="set by the drug regimen"),
    Parameter(name="T0", units="mm3", default=4000.0, lower=1.0, upper=1e6,
              description="initial viable volume (about 2 cm diameter)", source="assumption"),
    Parameter(name="L0", units="1", default=1.0, lower=0.0, upper=100.0,
              description="initial tumour-reactive lymphocytes (relative units)", source="assumption"),
)

# %% [markdown]
# ## States, rates, events, observables, mechanisms
#
# Each `Mechanism` owns a switch parameter `on_<name>` (default 1); we multiply the terms that belong
# to it by `mechanism.switch`, so `simulate(..., mechanisms_off=[name])` removes them. The event names
# and argument names matter: `simulate` fills a `radiation_fraction` event's `dose_gy` argument (for a
# model without lesion structure) and a `drug_dose` event's `dose_mg` argument from the treatment plan
# (`abscopal.simulate.plan_events`), and a drug regimen sets the `pk_*` and `ro_ec50_ug_per_ml`
# parameters, so a model that takes drug regimens declares them.

# %%
T, D, L, Ac, Ap = (sym(n) for n in ("T", "D", "L", "Ac", "Ap"))
p = {q.name: sym(q.name) for q in params}
mechanisms = (
    Mechanism(name="checkpoint_blockade", description="anti-PD-1 relieves surface-limited suppression",
              source="assumption"),
    Mechanism(name="rt_priming", description="lymphocyte recruitment by dying tumour cells (psi term)",
              source=SERRE),
)
s_icb, s_prime = (m.switch for m in mechanisms)

conc = Ac / p["pk_vc_l"]
occupancy = conc / (conc + p["ro_ec50_ug_per_ml"])
relief = 1 - s_icb * p["emax"] * occupancy
Z = p["omega"] * L / (1 + p["kappa"] * relief * T ** sp.Rational(2, 3))
rates = {
    "T": p["mu"] * T - Z * T,
    "D": Z * T - p["lam_T"] * D,
    "L": p["rho"] * T + s_prime * p["psi"] * D - p["lam_L"] * L,
    "Ac": -(p["pk_cl_l_per_day"] + p["pk_q_l_per_day"]) / p["pk_vc_l"] * Ac + p["pk_q_l_per_day"] / p["pk_vp_l"] * Ap,
    "Ap": p["pk_q_l_per_day"] / p["pk_vc_l"] * Ac - p["pk_q_l_per_day"] / p["pk_vp_l"] * Ap,
}
dose, mg = sym("dose_gy"), sym("dose_mg")
survive = sp.exp(-p["alpha"] * dose - p["beta"] * dose**2)
survive_L = 1 - p["f_L"] * (1 - sp.exp(-p["alpha_L"] * dose - p["beta_L"] * dose**2))
events = (
    Event(name="radiation_fraction",
          arguments=(EventArgument(name="dose_gy", units="Gy", description="fraction dose", upper=30.0),),
          jumps={"T": T * survive, "D": D + T * (1 - survive), "L": L * survive_L},
          description="LQ kill of tumour (to the doomed pool) and of in-field lymphocytes", source=SERRE),
    Event(name="drug_dose",
          arguments=(EventArgument(name="dose_mg", units="mg", description="antibody dose", upper=5000.0),),
          jumps={"Ac": Ac + mg},
          description="intravenous bolus into the central compartment", source="standard popPK"),
)
spec = ModelSpec(
    name="serre_like_tdla",
    description="Compact continuous-time model with the Serre 2016 / Cho 2023 structure (notebook 04).",
    states=(
        State(name="T", units="mm3", long_name="viable tumour volume", initial=p["T0"], abs_tol=1e-4),
        State(name="D", units="mm3", long_name="doomed tumour volume", abs_tol=1e-4),
        State(name="L", units="1", long_name="tumour-reactive lymphocytes", initial=p["L0"], abs_tol=1e-8),
        State(name="Ac", units="mg", long_name="anti-PD-1 amount, central", abs_tol=1e-6),
        State(name="Ap", units="mg", long_name="anti-PD-1 amount, peripheral", abs_tol=1e-6),
    ),
    parameters=params,
    rates=rates,
    events=events,
    observables=(Observable(name="volume", units="mm3", long_name="measured tumour volume (T + D)", expr=T + D),
                 Observable(name="occupancy", units="1", long_name="PD-1 receptor occupancy", expr=occupancy)),
    mechanisms=mechanisms,
    references={
        "Serre2016": "Serre R, Benzekry S, et al. Mathematical modeling of cancer immunotherapy and its synergy "
                     "with radiotherapy. Cancer Res 2016;76(17):4931-40.",
        "Cho2023": "Cho Y-B, Yoon N, Suh JH, Scott JG. Radio-immune response modelling for spatially "
                   "fractionated radiotherapy. Phys Med Biol 2023;68(16):165010.",
    },
)
print(spec.summary())

# %% [markdown]
# The equations as the code generator sees them (`spec.equations_latex()`):

# %%
latex = spec.equations_latex()
display(Math(latex.replace("\\begin{align}", "\\begin{aligned}").replace("\\end{align}", "\\end{aligned}")))

# %% [markdown]
# ## Compile and simulate
#
# `compile_model` generates the kernel module at once; numba compiles it lazily on the first call, so
# the first simulation of a new model includes tens of seconds of compilation. Both are cached on disk
# by content hash, and later runs (and other processes) start warm. We compare pembrolizumab 200 mg q3w alone, SBRT 8 Gy x 3
# alone and both (SBRT a week before the first dose), for a small population with log-normal
# variability on the growth rate and the immune kill. The toy has no carrying capacity, and with the
# Cho 2023 patient LQ values SBRT alone sterilises most of the viable volume: the curves illustrate
# the pipeline, not NSCLC (nothing here is calibrated).

# %%
t0 = time.perf_counter()
compiled = ab.compile_model(spec)
print(f"kernel module generated in {time.perf_counter() - t0:.1f} s")

pembro = ab.drug_regimen("pembrolizumab_200mg_q3w")
sbrt = ab.radiation_regimen("sbrt_24gy_3fx", start_day=-7, target_lesions=(0,))
arms = {"pembrolizumab": ab.TreatmentPlan(drug=pembro),
        "sbrt": ab.TreatmentPlan(radiation=(sbrt,)),
        "sbrt+pembrolizumab": ab.TreatmentPlan(drug=pembro, radiation=(sbrt,))}
pop = ab.VirtualPopulation(n_patients=N_PATIENTS,
                           variability={"mu": ab.LogNormal(omega=0.3), "omega": ab.LogNormal(omega=0.5)}, seed=3)
t0 = time.perf_counter()
ds = ab.simulate(compiled, arms, population=pop, t_end_day=365, output_interval_day=1)
print(f"simulated {len(arms) * N_PATIENTS} patients (first call: with numba compilation) in {time.perf_counter() - t0:.1f} s")

fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
for arm in ds.arm.values:
    v = ds.volume.sel(arm=arm)
    axes[0].plot(ds.time, v.median("patient"), label=str(arm))
    axes[0].fill_between(ds.time, v.quantile(0.25, "patient"), v.quantile(0.75, "patient"), alpha=0.2)
    axes[1].plot(ds.time, ds.L.sel(arm=arm).median("patient"), label=str(arm))
axes[0].set(yscale="log", xlabel="day", ylabel="tumour volume T + D (mm3)", title="median and 25-75%")
axes[1].set(yscale="log", xlabel="day", ylabel="lymphocytes L (relative)", title="median")
axes[0].legend(frameon=False)
plt.show()

# %% [markdown]
# Mechanism ablation works on your model as on the default one: here without checkpoint blockade.

# %%
ds_off = ab.simulate(compiled, arms, population=pop, t_end_day=365, output_interval_day=7,
                     mechanisms_off=["checkpoint_blockade"])
for arm in ds.arm.values:
    print(f"{arm:>20}: median volume at day 182 {float(ds.volume.sel(arm=arm, time=182).median()):8.0f} mm3, "
          f"without checkpoint blockade {float(ds_off.volume.sel(arm=arm, time=182).median()):8.0f} mm3")

# %% [markdown]
# ## Check against an independent solver
#
# We integrate the same patient (typical values, combined arm) with scipy's `solve_ivp` (Radau,
# rtol 1e-10), using rates and jumps lambdified directly from the sympy expressions — not the
# generated kernels — and stopping at each event to apply its jump map. States are clipped at zero in
# the reference right-hand side (as abscopal does for `nonnegative` states), because `T ** (2/3)` is
# undefined for the tiny negative values a Newton iteration can visit. The relative difference should
# be of the order of the requested tolerance.

# %%
plan = arms["sbrt+pembrolizumab"]
ref_ds = ab.simulate(compiled, {"combo": plan}, t_end_day=365, output_interval_day=1,
                     solver=ab.SolverOptions(rtol=1e-10, atol_scale=1e-3))
values = {**spec.default_values(), **plan.parameter_overrides()}  # the regimen sets the drug's PK
names = spec.state_names
ysyms = [sym(n) for n in names]
psyms = [sym(n) for n in spec.parameter_names]
pvec = [values[n] for n in spec.parameter_names]
f = sp.lambdify([ysyms, psyms], [spec.rates[n] for n in names], "numpy")
jumps = {ev.name: (ev, sp.lambdify([ysyms, psyms, [sym(a) for a in ev.argument_names]],
                                   [ev.jumps.get(n, sym(n)) for n in names], "numpy"))
         for ev in spec.events}
schedule = sorted(plan_events(spec, plan, 365.0), key=lambda e: e[0])
t_out = ref_ds.time.values
y = np.array([float(s.initial.subs({sym(k): v for k, v in values.items()})) for s in spec.states])
t = float(t_out[0])
pieces_t, pieces_y = [], []
for t_ev, name, args in [*schedule, (365.0, None, None)]:
    if t_ev > t:
        grid = t_out[(t_out >= t) & (t_out <= t_ev)]
        sol = solve_ivp(lambda tt, yy: f(np.maximum(yy, 0.0), pvec), (t, t_ev), y, method="Radau", rtol=1e-10, atol=1e-12,
                        t_eval=grid)
        pieces_t.append(sol.t)
        pieces_y.append(sol.y)
        y, t = sol.y[:, -1], t_ev
    if name is not None:
        y = np.array(jumps[name][1](y, pvec, args), dtype=float)
# keep the post-jump value where an output time coincides with an event (the last value at that time)
tt = np.concatenate(pieces_t)
yy = np.concatenate(pieces_y, axis=1)
_, last = np.unique(tt[::-1], return_index=True)
keep = len(tt) - 1 - last
ref = {n: yy[i, keep] for i, n in enumerate(names)}
ours = {n: ref_ds[n].sel(arm="combo").squeeze().values for n in names}
for n in names:
    scale = np.maximum(np.abs(ref[n]), 1e-6 * np.max(np.abs(ref[n])))
    print(f"{n}: max relative difference {np.max(np.abs(ours[n] - ref[n]) / scale):.2e}")
