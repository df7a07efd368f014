"""The compiled solver against closed-form solutions.

* Gompertz growth ``dV/dt = g V ln(K/V)``: ``V(t) = K exp(ln(V0/K) e^{-g t})``.
* LQ jumps ``V -> V exp(-alpha d - beta d^2)`` at fraction times: the same closed form restarted
  from the post-jump volume at each fraction.
* One-compartment PK ``dC/dt = -k C`` with boluses ``C -> C + dose/V``: superposition
  ``C(t) = sum_{t_i <= t} dose_i/V exp(-k (t - t_i))``.
* The NSCLC model's drug PK (two compartments, constant clearance): bi-exponential solution with
  the eigenvalues of the 2x2 system.
* Convergence: the error shrinks as rtol is tightened.

The relative error of a comparison is ``|a - b| / |b|``; the bound is stated in each assert.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from abscopal.parameters import parameter_vector, resolve_values
from abscopal.solver import EventSchedule, SolverOptions, solve

# toy defaults (tests/conftest.py)
G, K, V0, ALPHA, BETA, K_EL, VD, BW = 0.05, 1.0e5, 100.0, 0.3, 0.03, 0.03, 3.0, 70.0


def _p(spec, **values) -> np.ndarray:
    return parameter_vector(spec, spec.default_values() | values)


def gompertz_exact(t: np.ndarray, fractions: list[tuple[float, float]] = (), v0: float = V0) -> np.ndarray:
    """Closed form with LQ jumps; the value at a fraction time is the post-jump value."""
    t = np.asarray(t, float)
    out = np.empty_like(t)
    for i, ti in enumerate(t):
        t_start, v = 0.0, v0
        for tf, d in sorted(fractions):
            if tf > ti:
                break
            v = K * math.exp(math.log(v / K) * math.exp(-G * (tf - t_start)))
            v *= math.exp(-ALPHA * d - BETA * d * d)
            t_start = tf
        out[i] = K * math.exp(math.log(v / K) * math.exp(-G * (ti - t_start)))
    return out


def _rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.abs(b)


# --------------------------------------------------------------------------------- Gompertz
def test_untreated_gompertz_matches_closed_form(toy, toy_spec):
    t_out = np.linspace(0.0, 200.0, 401)
    sol = solve(toy, _p(toy_spec)[None], t_out, options=SolverOptions(rtol=1e-10))
    assert sol.n_fallback == 0
    exact = gompertz_exact(t_out)
    err = _rel(sol.y[0, :, 0], exact)
    assert err.max() <= 1e-7, err.max()
    # the drug compartment stays exactly 0 without doses
    np.testing.assert_array_equal(sol.y[0, :, 1], 0.0)
    # the observable is the sphere-equivalent diameter of V (rtol 1e-13: pure arithmetic)
    np.testing.assert_allclose(sol.obs[0, :, 0], (6 * sol.y[0, :, 0] / math.pi) ** (1 / 3), rtol=1e-13)


FRACTIONS = [(10.0, 2.0), (11.0, 2.0), (12.0, 8.0), (15.5, 3.0), (40.0, 20.0), (41.25, 0.5)]
# The 20 Gy fraction leaves V ~ 1e-4 mm3, where V's own abs_tol (1e-8) would dominate the error
# control; ATOL_SCALE makes the tolerance purely relative so the closed form can be met at 1e-7.
ATOL_SCALE = 1e-8


def _fraction_events(fractions) -> list[tuple[float, str, list[float]]]:
    return [(tf, "radiation_fraction", [d]) for tf, d in fractions]


def test_lq_jumps_match_piecewise_closed_form(toy, toy_spec):
    grid = np.linspace(0.0, 120.0, 241)
    eps = 1e-9
    special = np.array([x for tf, _ in FRACTIONS for x in (tf - eps, tf)])
    t_out = np.unique(np.concatenate([grid, special]))
    sched = EventSchedule.from_lists(toy, [_fraction_events(FRACTIONS)])
    sol = solve(toy, _p(toy_spec)[None], t_out, events=sched, options=SolverOptions(rtol=1e-10, atol_scale=ATOL_SCALE))
    v = sol.y[0, :, 0]
    err = _rel(v, gompertz_exact(t_out, FRACTIONS))
    assert err.max() <= 1e-7, (t_out[err.argmax()], err.max())
    for tf, d in FRACTIONS:
        before = v[np.searchsorted(t_out, tf - eps)]
        at = v[np.searchsorted(t_out, tf)]
        sf = math.exp(-ALPHA * d - BETA * d * d)
        # the output at t_f is post-jump, 1e-9 day earlier is pre-jump: the ratio is the LQ
        # survival up to growth over 1e-9 day (|dlnV/dt| < 0.5/day here), far below 1e-7
        assert abs(at / before / sf - 1.0) <= 1e-7, (tf, at / before, sf)


def test_lq_jump_through_simulate_is_applied_at_the_fraction_day(toy, toy_spec):
    """The same jump through simulate(): RT plan -> plan_events -> 'dose_gy' argument."""
    from abscopal.simulate import simulate
    from abscopal.treatment import ExplicitDays, RadiationCourse, TreatmentPlan

    course = RadiationCourse(
        dose_per_fraction_gy=8.0, n_fractions=3, calendar=ExplicitDays(offsets_day=(0, 2, 4)), start_day=10.0
    )
    t_out = np.array([0.0, 9.5, 10.0 - 1e-9, 10.0, 12.0 - 1e-9, 12.0, 14.0 - 1e-9, 14.0, 30.0])
    ds = simulate(
        toy,
        TreatmentPlan(radiation=(course,)),
        output_times_day=t_out,
        start_day=0.0,
        t_end_day=30.0,
        solver=SolverOptions(rtol=1e-10),
    )
    exact = gompertz_exact(t_out, [(10.0, 8.0), (12.0, 8.0), (14.0, 8.0)])
    err = _rel(ds["V"].values[0, 0], exact)
    assert err.max() <= 1e-7, err.max()


# ---------------------------------------------------------------------------- one-compartment PK
def test_one_compartment_boluses_match_superposition(toy, toy_spec):
    dose_times = 21.0 * np.arange(8)  # q21d, 8 doses
    doses_mg = np.array([200.0, 200.0, 400.0, 200.0, 200.0, 100.0, 200.0, 200.0])
    per_kg = np.array([0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0])  # one weight-based dose on top
    events = [(t, "drug_dose", [mg, kg]) for t, mg, kg in zip(dose_times, doses_mg, per_kg, strict=True)]
    t_out = np.unique(np.concatenate([np.linspace(0.0, 250.0, 501), dose_times - 1e-9, dose_times]))
    t_out = t_out[t_out >= 0.0]
    sol = solve(
        toy,
        _p(toy_spec)[None],
        t_out,
        events=EventSchedule.from_lists(toy, [events]),
        options=SolverOptions(rtol=1e-10),
        t0=0.0,
    )
    amount = doses_mg + per_kg * BW
    exact = np.array(
        [
            sum(a / VD * math.exp(-K_EL * (t - ti)) for ti, a in zip(dose_times, amount, strict=True) if ti <= t)
            for t in t_out
        ]
    )
    err = _rel(sol.y[0, :, 1], exact)
    assert err.max() <= 1e-8, (t_out[err.argmax()], err.max())
    # the Gompertz state is unaffected by drug doses (same closed form as without events)
    assert _rel(sol.y[0, :, 0], gompertz_exact(t_out)).max() <= 1e-7


# ---------------------------------------------------------------------- NSCLC two-compartment PK
@pytest.mark.slow  # compiles the ODE-PK variant of the NSCLC model (55 s cold); runs in CI's slow stage
@pytest.mark.parametrize("form", ["ode", "analytic"])
def test_nsclc_drug_pk_matches_biexponential(form, nsclc3, nsclc3_spec, nsclc3_ode, nsclc3_ode_spec):
    """Both PK forms of the default model against the closed form (ODE states Ac, Ap; exact modal
    form through the drug_amount_central observable)."""
    model, spec = (nsclc3_ode, nsclc3_ode_spec) if form == "ode" else (nsclc3, nsclc3_spec)
    values = resolve_values(spec)
    assert values["pk_cl_time_emax"] == 0.0  # pembrolizumab: constant clearance (Ahamadi 2017)
    cl, vc, q, vp = (values[k] for k in ("pk_cl_l_per_day", "pk_vc_l", "pk_q_l_per_day", "pk_vp_l"))
    assert (cl, vc, q, vp) == (0.22, 3.48, 0.795, 4.06)
    k10, k12, k21 = cl / vc, q / vc, q / vp
    # eigenvalues -a, -b of [[-(k10 + k12), k21], [k12, -k21]]  (amounts: dAc = -(k10+k12) Ac + k21 Ap)
    s, prod = k10 + k12 + k21, k10 * k21
    a = (s + math.sqrt(s * s - 4 * prod)) / 2
    b = (s - math.sqrt(s * s - 4 * prod)) / 2
    dose = 200.0
    t_out = np.linspace(0.0, 365.0, 731)

    def ac(t):
        return dose * ((a - k21) * np.exp(-a * t) + (k21 - b) * np.exp(-b * t)) / (a - b)

    def ap(t):
        return dose * k12 * (np.exp(-b * t) - np.exp(-a * t)) / (a - b)

    # the closed form solves the ODE (independent check of the formula, rtol 1e-12)
    t = t_out[1:]
    d_ac = dose * (-(a * (a - k21)) * np.exp(-a * t) - b * (k21 - b) * np.exp(-b * t)) / (a - b)
    np.testing.assert_allclose(d_ac, -(k10 + k12) * ac(t) + k21 * ap(t), rtol=1e-9, atol=1e-12)

    sched = EventSchedule.from_lists(model, [[(0.0, "drug_dose", [dose, 0.0])]])
    sol = solve(
        model,
        parameter_vector(spec, values)[None],
        t_out,
        events=sched,
        t0=0.0,
        options=SolverOptions(rtol=1e-10, atol_scale=1e-6),
    )

    def obs(name):
        return sol.obs[0, :, [o.name for o in spec.observables].index(name)]

    if form == "ode":
        i_c, i_p = spec.state_names.index("Ac"), spec.state_names.index("Ap")
        y = sol.y[0]
        assert y[0, i_c] == dose and y[0, i_p] == 0.0
        err_p = _rel(y[1:, i_p], ap(t_out[1:]))
        assert err_p.max() <= 1e-7, (t_out[1 + err_p.argmax()], err_p.max())
    central = obs("drug_amount_central")
    err_c = _rel(central, ac(t_out))
    assert err_c.max() <= 1e-7, (t_out[err_c.argmax()], err_c.max())
    # the drug-concentration observable is the central amount / Vc (rtol 1e-13)
    np.testing.assert_allclose(obs("drug_concentration"), central / vc, rtol=1e-13)


# --------------------------------------------------------------------------------- convergence
@pytest.mark.parametrize("with_jumps", [False, True], ids=["smooth", "with-LQ-jumps"])
def test_error_decreases_with_rtol(toy, toy_spec, with_jumps):
    fractions = FRACTIONS if with_jumps else []
    t_out = np.linspace(0.0, 120.0, 121)
    sched = EventSchedule.from_lists(toy, [_fraction_events(fractions)])
    exact = gompertz_exact(t_out, fractions)
    errors = []
    for rtol in (1e-4, 1e-6, 1e-8, 1e-10):
        sol = solve(
            toy, _p(toy_spec)[None], t_out, events=sched, options=SolverOptions(rtol=rtol, atol_scale=ATOL_SCALE)
        )
        errors.append(float(_rel(sol.y[0, :, 0], exact).max()))
    assert all(e1 > e2 for e1, e2 in itertools.pairwise(errors)), errors
    assert errors[-1] <= errors[0] / 100.0, errors
    assert errors[-1] <= 1e-7, errors
