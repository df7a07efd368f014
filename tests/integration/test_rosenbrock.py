"""The compiled Rosenbrock solver (Rodas4): closed forms, a stiff model against scipy's Radau, and the switches.

* Toy model (Gompertz + LQ jumps, one-compartment PK + boluses): ``method="rosenbrock"`` against the closed forms
  of ``test_analytic.py`` (relative error ``|a - b| / |b|``, bound in each assert).
* Stiff model (:mod:`abscopal.model.library.receptor_binding`: receptor binding at kon C ~ 1e4-5e4 per day):
  Rodas4 at rtol 1e-9 against Radau at rtol 1e-10, both with absolute tolerance ``abs_tol x 1e-3``, error
  ``|a - b| / (|b| + abs_tol_i)`` on every state and day (the metric of ``test_radau_agreement.py``), <= 1e-5.
  Pembrolizumab (constant clearance) and nivolumab (time-varying clearance: the generated df/dt enters every
  stage) with SBRT, two years.
* The switches: the explicit method gives up on the stiff model; its fallback (``"dopri5"``) and the stiffness
  test of ``"auto"`` hand every patient to Rodas4, with results bit-identical to ``"rosenbrock"``; on the non-stiff
  toy, ``"auto"`` is bit-identical to ``"dopri5"``.
* The dense LU of the kernel against numpy, and the generated df/dt against central differences of the RHS.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from abscopal.errors import SolverError
from abscopal.model.compile import compile_model
from abscopal.model.library.receptor_binding import receptor_binding_model
from abscopal.parameters import parameter_vector, resolve_values
from abscopal.population import LogNormal, VirtualPopulation
from abscopal.simulate import plan_events
from abscopal.solver import EventSchedule, SolverOptions, solve
from abscopal.treatment import TreatmentPlan, drug_regimen, radiation_regimen

# toy defaults (tests/conftest.py) and the closed forms of test_analytic.py
G, K, V0, ALPHA, BETA, K_EL, VD, BW = 0.05, 1.0e5, 100.0, 0.3, 0.03, 0.03, 3.0, 70.0
FRACTIONS = [(10.0, 2.0), (11.0, 2.0), (12.0, 8.0), (15.5, 3.0), (40.0, 20.0), (41.25, 0.5)]


def _p(spec, **values) -> np.ndarray:
    return parameter_vector(spec, spec.default_values() | values)


def _rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.abs(b)


def _fraction_events(fractions) -> list[tuple[float, str, list[float]]]:
    return [(tf, "radiation_fraction", [d]) for tf, d in fractions]


def gompertz_exact(t: np.ndarray, fractions) -> np.ndarray:
    """Gompertz closed form restarted after each LQ jump; the value at a fraction time is post-jump."""
    out = np.empty(len(t))
    for i, ti in enumerate(t):
        t_start, v = 0.0, V0
        for tf, d in sorted(fractions):
            if tf > ti:
                break
            v = K * math.exp(math.log(v / K) * math.exp(-G * (tf - t_start))) * math.exp(-ALPHA * d - BETA * d * d)
            t_start = tf
        out[i] = K * math.exp(math.log(v / K) * math.exp(-G * (ti - t_start)))
    return out


# ---------------------------------------------------------------------------------------------- toy model


def test_rosenbrock_matches_gompertz_with_lq_jumps(toy, toy_spec):
    eps = 1e-9
    special = np.array([x for tf, _ in FRACTIONS for x in (tf - eps, tf)])
    t_out = np.unique(np.concatenate([np.linspace(0.0, 120.0, 241), special]))
    sched = EventSchedule.from_lists(toy, [_fraction_events(FRACTIONS)])
    opts = SolverOptions(method="rosenbrock", rtol=1e-10, atol_scale=1e-8)
    sol = solve(toy, _p(toy_spec)[None], t_out, events=sched, options=opts)
    assert sol.stiff_patients == (0,) and sol.n_fallback == 0
    err = _rel(sol.y[0, :, 0], gompertz_exact(t_out, FRACTIONS))
    assert err.max() <= 1e-7, (t_out[err.argmax()], err.max())  # dense output included (241 grid points)
    accepted, _, n_rhs = sol.counts[0]
    assert accepted > 0 and n_rhs >= 5 * accepted


def test_rosenbrock_matches_bolus_superposition(toy, toy_spec):
    dose_times = 21.0 * np.arange(6)
    events = [(t, "drug_dose", [200.0, 1.0]) for t in dose_times]
    t_out = np.unique(np.concatenate([np.linspace(0.0, 150.0, 301), dose_times - 1e-9, dose_times]))
    t_out = t_out[t_out >= 0.0]
    opts = SolverOptions(method="rosenbrock", rtol=1e-10)
    sol = solve(toy, _p(toy_spec)[None], t_out, events=EventSchedule.from_lists(toy, [events]), options=opts)
    exact = np.array(
        [sum((200.0 + BW) / VD * math.exp(-K_EL * (t - ti)) for ti in dose_times if ti <= t) for t in t_out]
    )
    c = sol.y[0, :, 1]
    pos = exact > 0
    assert np.all(c[~pos] == 0.0)
    assert _rel(c[pos], exact[pos]).max() <= 1e-8


def test_auto_on_a_non_stiff_model_is_dopri5_bit_for_bit(toy, toy_spec):
    P = np.stack([_p(toy_spec), _p(toy_spec, g=0.08), _p(toy_spec, k_el=0.3)])
    sched = EventSchedule.from_lists(toy, [_fraction_events(FRACTIONS)] * 3)
    t_out = np.linspace(0.0, 200.0, 201)
    ref = solve(toy, P, t_out, events=sched, options=SolverOptions())
    auto = solve(toy, P, t_out, events=sched, options=SolverOptions(method="auto"))
    assert auto.stiff_patients == () and auto.n_fallback == 0
    assert auto.y.tobytes() == ref.y.tobytes()
    np.testing.assert_array_equal(auto.counts, ref.counts)


def test_rosenbrock_serial_equals_parallel(toy, toy_spec):
    P = np.stack([_p(toy_spec, g=g) for g in (0.02, 0.05, 0.1, 0.2)])
    t_out = np.linspace(0.0, 100.0, 51)
    a = solve(toy, P, t_out, options=SolverOptions(method="rosenbrock"))
    b = solve(toy, P, t_out, options=SolverOptions(method="rosenbrock", parallel=False))
    assert a.y.tobytes() == b.y.tobytes()


# ------------------------------------------------------------------------------------------- kernel parts


def test_kernel_lu_solves_like_numpy(toy):
    mod = toy.module
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 9):
        for _ in range(20):
            A = rng.normal(size=(n, n))
            if n > 1:
                A[0, 0] = 0.0  # needs a row swap
            b = rng.normal(size=n)
            LU, piv, x = A.copy(), np.zeros(n, np.int64), b.copy()
            assert mod._lu_factor(LU, piv)
            mod._lu_solve(LU, piv, x)
            np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-9, atol=1e-9 * np.abs(x).max())
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    assert not mod._lu_factor(singular, np.zeros(2, np.int64))


@pytest.fixture(scope="module")
def binding():
    """The stiff receptor-binding model, compiled."""
    return compile_model(receptor_binding_model())


def _time_derivative_check(model, p, y, t):
    mod = model.module
    pe = model.extended(p)
    ft = np.empty(len(y))
    mod.dfdt(t, y, pe, ft)
    dt = 1e-4 * max(1.0, abs(t))
    fd = (model.rhs(t + dt, y, p) - model.rhs(t - dt, y, p)) / (2 * dt)
    scale = np.abs(fd).max() + 1e-300
    return ft, fd, scale


def test_generated_time_derivative_matches_central_differences(binding, nsclc3, nsclc3_spec):
    spec = binding.spec
    values = resolve_values(spec, {"pk_cl_time_emax": -0.3, "pk_cl_time_t50_day": 60.0, "pk_cl_time_hill": 2.0})
    p = parameter_vector(spec, values)
    y = np.array([150.0, 120.0, 0.01, 1.0, 2e4])
    assert binding.module.TIME_DEPENDENT
    for t in (3.0, 40.0, 300.0):
        ft, fd, scale = _time_derivative_check(binding, p, y, t)
        assert np.abs(ft[0]) > 0 and np.all(ft[1:] == 0.0)  # only the clearance depends on t
        np.testing.assert_allclose(ft, fd, rtol=1e-6, atol=1e-8 * scale)
    # the default NSCLC model (exact modal PK: exp(lambda (t - tau)) in the rates)
    p = parameter_vector(nsclc3_spec, resolve_values(nsclc3_spec))
    y = nsclc3.initial(p)
    y[nsclc3_spec.state_names.index("pk_mode_1")] = 50.0
    y[nsclc3_spec.state_names.index("pk_mode_2")] = 20.0
    ft, fd, scale = _time_derivative_check(nsclc3, p, y, 5.0)
    assert np.abs(ft).max() > 0
    np.testing.assert_allclose(ft, fd, rtol=1e-5, atol=1e-7 * scale)


# ------------------------------------------------------------------------------------------- stiff model


def _binding_inputs(model, drug: str, n: int):
    spec = model.spec
    plan = TreatmentPlan(drug=drug_regimen(drug), radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=-7),))
    pop = VirtualPopulation(
        n_patients=n,
        variability={"kon_per_nm_day": LogNormal(omega=0.5), "pk_cl_l_per_day": LogNormal(omega=0.3)},
        seed=11,
    )
    P = pop.parameter_matrix(spec, resolve_values(spec, plan.parameter_overrides()))
    sched = EventSchedule.from_lists(model, [plan_events(spec, plan, 730.0)] * n)
    return P, sched, np.arange(-7.0, 731.0)


@pytest.mark.slow  # Radau reference on the stiff model (15-30 s per drug); runs in CI's slow stage
@pytest.mark.parametrize("drug", ["pembrolizumab_200mg_q3w", "nivolumab_240mg_q2w"])
def test_rosenbrock_agrees_with_radau_on_the_stiff_model(binding, drug):
    spec = binding.spec
    P, sched, t_out = _binding_inputs(binding, drug, 2)
    ros = solve(
        binding, P, t_out, events=sched, t0=-7.0, options=SolverOptions(method="rosenbrock", rtol=1e-9, atol_scale=1e-3)
    )
    ref = solve(
        binding, P, t_out, events=sched, t0=-7.0, options=SolverOptions(method="radau", rtol=1e-10, atol_scale=1e-3)
    )
    atol = np.array([s.abs_tol for s in spec.states])
    err = np.abs(ros.y - ref.y) / (np.abs(ref.y) + atol)
    p, t, i = np.unravel_index(int(np.argmax(err)), err.shape)
    assert err.max() <= 1e-5, (
        f"max error {err.max():.3g} for state {spec.state_names[i]} of patient {p} at t = {t_out[t]} "
        f"(rodas4 {ros.y[p, t, i]!r}, radau {ref.y[p, t, i]!r})"
    )
    # the scenario is stiff: binding runs at kon C > 1e4 per day during treatment, and the receptor is saturated
    c = spec.state_names.index("C")
    kon = P[:, spec.parameter_names.index("kon_per_nm_day")]
    assert np.all(kon * ref.y[:, t_out == 100.0, c][:, 0] > 5e3)
    ro = [o.name for o in spec.observables].index("receptor_occupancy")
    assert np.all(ref.obs[:, (t_out >= 1.0) & (t_out <= 700.0), ro] > 0.99)


@pytest.mark.slow  # 35 s; runs in CI's slow stage
def test_explicit_method_gives_up_and_hands_over_to_rodas4(binding):
    P, sched, t_out = _binding_inputs(binding, "pembrolizumab_200mg_q3w", 3)
    kw = {"events": sched, "t0": -7.0}
    with pytest.raises(SolverError, match=r"patient 0 at t = .*too many steps"):
        solve(binding, P, t_out, options=SolverOptions(stiff_fallback=False, max_steps=20_000), **kw)
    ros = solve(binding, P, t_out, options=SolverOptions(method="rosenbrock"), **kw)
    fallback = solve(binding, P, t_out, options=SolverOptions(max_steps=20_000), **kw)
    auto = solve(binding, P, t_out, options=SolverOptions(method="auto"), **kw)
    assert fallback.fallback_patients == (0, 1, 2) == fallback.stiff_patients
    assert auto.stiff_patients == (0, 1, 2) and auto.n_fallback == 0
    for other in (fallback, auto):  # Rodas4 restarts each patient from t0: the same numbers
        assert other.y.tobytes() == ros.y.tobytes()
        np.testing.assert_array_equal(other.counts, ros.counts)
    assert np.all(ros.counts[:, 0] < 5000)  # vs millions of explicit steps
