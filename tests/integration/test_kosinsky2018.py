"""Kosinsky et al. 2018 re-expressed in abscopal's spec language, checked against libRoadRunner.

The reference is the curated SBML of BioModels BIOMD0000000863, simulated by libRoadRunner
(CVODE), a solver that abscopal does not share any code with. The main requirement: over the
curated SED-ML run (0-40 days, uniform grid, several ``mAb`` values), every species of
abscopal's re-expression agrees with the SBML to a relative error of at most 1e-6 at every
output time.

Relative error of species s at time t:  |a - b| / max(|b|, floor_s), where a is abscopal, b is
roadrunner and floor_s = max(1e-9 * max_t |b_s(t)|, smallest normal double). The floor only
matters where the reference is 0 or nearly 0. nTeff, dTeff and PDL1 start at exactly 0, and
without radiation U and TVd stay at exactly 0 for the whole run. With a floor of 0, a relative
error at those points would be 0/0. A billionth of the species' own range is far below any
meaningful amount: 1e-9 of about 1300 cells, or of a PD-L1 level of 0.3. For the species that
are identically 0, the floor is the smallest normal double, so abscopal must return exactly 0
there too. The floor therefore never loosens the 1e-6 requirement where a species is non-zero.

Run:  PYTHONPATH=src python -m pytest tests/integration/test_kosinsky2018.py -v -s
(``-s`` prints the measured per-species errors.)
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

roadrunner = pytest.importorskip("roadrunner")

from abscopal.model import compile_model  # noqa: E402
from abscopal.model.library.kosinsky2018 import SBML_PARAMETER_IDS, kosinsky2018  # noqa: E402
from abscopal.solver import EventSchedule, SolverOptions, solve  # noqa: E402

# shipped with the tests (BioModels BIOMD0000000863, CC0; attribution in tests/data/kosinsky2018/README.md)
MODELS = Path(__file__).resolve().parents[1] / "data" / "kosinsky2018"
SBML = MODELS / "Kosinsky2018.xml"
SEDML = MODELS / "Kosinsky2018.sedml"

REL_REQUIRED = 1e-6
FLOOR_FRACTION = 1e-9
# abscopal: compiled Dormand-Prince 5(4). State abs_tol (1e-6 for volumes, cells and DSB, 1e-9
# for PDL1) times 1e-4, so the absolute tolerances (1e-10, 1e-13) sit far below every
# compared value.
OPTIONS = SolverOptions(rtol=1e-10, atol_scale=1e-4)
# roadrunner: CVODE. Tolerances are tighter than abscopal's, so the reference error is negligible.
RR_RTOL, RR_ATOL = 1e-12, 1e-14
# Extra mAb values (nM) besides the SED-ML range; 0 is the SBML default.
EXTRA_MAB = (0.0, 12.0, 45.0)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _sedml_grid_and_mab() -> tuple[np.ndarray, np.ndarray]:
    """Output grid and mAb values of the curated SED-ML.

    In SED-ML L1V2, ``numberOfPoints`` of a uniformTimeCourse or uniformRange counts *steps*:
    the output has numberOfPoints + 1 points. Level 1 version 4 renamed the attribute
    ``numberOfSteps`` for this reason. The grid is therefore 0, 0.4, ..., 40 (101 points) and
    mAb = 1, 10.9, ..., 100 (11 values).
    """
    ns = {"s": "http://sed-ml.org/sed-ml/level1/version2"}
    root = ET.parse(SEDML).getroot()
    tc = root.find(".//s:uniformTimeCourse", ns)
    rng = root.find(".//s:uniformRange", ns)
    assert tc is not None and rng is not None
    t = np.linspace(float(tc.get("outputStartTime")), float(tc.get("outputEndTime")), int(tc.get("numberOfPoints")) + 1)
    mab = np.linspace(float(rng.get("start")), float(rng.get("end")), int(rng.get("numberOfPoints")) + 1)
    return t, mab


def _rr(path: Path = SBML):
    rr = roadrunner.RoadRunner(str(path))
    rr.integrator.relative_tolerance = RR_RTOL
    rr.integrator.absolute_tolerance = RR_ATOL
    rr.integrator.maximum_num_steps = 1_000_000
    return rr


def _rr_run(
    rr,
    t_out: np.ndarray,
    species: tuple[str, ...],
    params: dict[str, float] | None = None,
    state: dict[str, float] | None = None,
) -> np.ndarray:
    """Reset, apply parameters (SBML ids) and an optional start state, simulate on ``t_out``."""
    rr.resetAll()
    for k, v in (params or {}).items():
        rr[k] = v
    for k, v in (state or {}).items():
        rr[f"[{k}]"] = v
    res = rr.simulate(times=list(t_out))
    np.testing.assert_allclose(res["time"], t_out, rtol=0, atol=1e-12)
    return np.column_stack([res[f"[{s}]"] for s in species])


def _P(spec, rows: list[dict[str, float]]) -> np.ndarray:
    d = spec.default_values()
    for r in rows:
        unknown = set(r) - set(d)
        assert not unknown, unknown
    return np.array([[{**d, **r}[n] for n in spec.parameter_names] for r in rows])


def _rel_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Relative error (..., time, species) with the per-species floor of the module docstring."""
    scale = np.abs(b).max(axis=-2, keepdims=True)
    floor = np.maximum(FLOOR_FRACTION * scale, np.finfo(float).tiny)
    return np.abs(a - b) / np.maximum(np.abs(b), floor)


def _report(title: str, rel: np.ndarray, species: tuple[str, ...]) -> dict[str, float]:
    worst = {s: float(rel[..., i].max()) for i, s in enumerate(species)}
    print(f"\n{title}: max relative error per species: " + ", ".join(f"{s} {e:.2e}" for s, e in worst.items()))
    return worst


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec():
    return kosinsky2018()


@pytest.fixture(scope="module")
def model(spec):
    return compile_model(spec)  # default cache: numba's on-disk cache is reused between runs


@pytest.fixture(scope="module")
def rr():
    return _rr()


# ---------------------------------------------------------------------------------------------
# structure
# ---------------------------------------------------------------------------------------------
def test_spec_matches_sbml_structure(spec, rr):
    rr.resetAll()
    assert spec.state_names == tuple(rr.model.getFloatingSpeciesIds())
    sbml_params = set(rr.model.getGlobalParameterIds()) - {"radiation_Dose"}
    assert set(SBML_PARAMETER_IDS.values()) == sbml_params
    for name, sbml_id in SBML_PARAMETER_IDS.items():
        p = spec.parameter(name)
        assert p.default == rr[sbml_id], name
        assert p.units and p.description and "BIOMD0000000863" in p.source
        assert p.lower <= p.default <= p.upper
    init = dict(zip(rr.model.getFloatingSpeciesIds(), rr.model.getFloatingSpeciesConcentrations(), strict=True))
    d = spec.default_values()
    for s in spec.states:
        assert float(s.initial.subs({k: d[k.name] for k in s.initial.free_symbols})) == init[s.name]
    assert {"pd_l1_axis", "immunosuppression", "radiation_dsb"} <= set(spec.mechanism_names)
    assert "10.1186/s40425-018-0327-9" in spec.references["Kosinsky2018"]
    assert spec.state("TV").units == "µL" and spec.state("TVd").units == "µL"


def test_rhs_matches_sbml_rates_pointwise(spec, model, rr):
    """The compiled right-hand side equals roadrunner's rates of change at random states."""
    rng = np.random.default_rng(2018)
    d = spec.default_values()
    worst = 0.0
    for _ in range(200):
        y = np.array(
            [
                rng.uniform(0.1, 2500),
                rng.uniform(0, 100),
                rng.uniform(0, 2000),
                rng.uniform(0, 500),
                rng.uniform(0, 1),
                rng.uniform(0, 500),
            ]
        )
        mab = float(rng.choice([0.0, 1.0, 30.0, 100.0, 1e3]))
        rr.resetAll()
        rr["mAb"] = mab
        rr.model.setFloatingSpeciesConcentrations(y)
        ref = np.asarray(rr.getRatesOfChange(), float)
        got = model.rhs(0.0, y, _P(spec, [{**d, "mAb": mab}])[0])
        scale = np.maximum(np.abs(ref), 1e-12 * np.abs(y).max())
        worst = max(worst, float((np.abs(got - ref) / scale).max()))
    assert worst < 1e-12, worst


# ---------------------------------------------------------------------------------------------
# the curated SED-ML run: 0-40 d, mAb sweep, every species within 1e-6 relative
# ---------------------------------------------------------------------------------------------
def test_sedml_run_agrees_with_roadrunner(spec, model, rr):
    t_out, mab_sedml = _sedml_grid_and_mab()
    assert t_out.size == 101 and t_out[-1] == 40.0
    mabs = np.unique(np.concatenate([mab_sedml, EXTRA_MAB]))
    ref = np.stack([_rr_run(rr, t_out, spec.state_names, {"mAb": m}) for m in mabs])
    sol = solve(model, _P(spec, [{"mAb": m} for m in mabs]), t_out, options=OPTIONS)
    assert sol.n_fallback == 0
    rel = _rel_err(sol.y, ref)
    worst = _report(f"SED-ML run, mAb in {np.round(mabs, 2).tolist()}", rel, spec.state_names)
    # the sweep does something: anti-PD-L1 shrinks the day-40 tumour in both solvers
    tv40 = ref[:, -1, 0]
    assert tv40[-1] < 0.99 * tv40[0]
    # no radiation in the curated run: U and TVd are identically 0 in both
    assert not ref[..., [1, 5]].any() and not sol.y[..., [1, 5]].any()
    bad = {s: e for s, e in worst.items() if not e <= REL_REQUIRED}
    if bad:
        i_m, i_t, i_s = np.unravel_index(np.argmax(rel), rel.shape)
        pytest.fail(
            f"relative error above {REL_REQUIRED}: {bad}; worst at mAb={mabs[i_m]}, "
            f"t={t_out[i_t]}, {spec.state_names[i_s]}: abscopal {sol.y[i_m, i_t, i_s]!r} "
            f"vs roadrunner {ref[i_m, i_t, i_s]!r}"
        )


def test_post_fraction_state_agrees_with_roadrunner(spec, model, rr):
    """Every term of the SBML, including the U^2 misrepair and the TVd terms, against roadrunner.

    abscopal applies ``radiation_fraction(0.5 Gy)`` at t = 0. roadrunner starts from the
    post-jump state (TV*e^(-alpha d), U = delta*d, TVd = TV0*(1 - e^(-alpha d))). The two must
    then agree to 1e-6 everywhere. The dose is 0.5 Gy because, with the SBML's DSB repair
    (see the model docstring), 1 Gy already drives TV below 1e-7 µL (a tenth of a cell). At
    such values a relative comparison measures only the solvers' absolute tolerances.
    """
    t_out, _ = _sedml_grid_and_mab()
    d = spec.default_values()
    dose = 0.5
    s = math.exp(-d["alpha"] * dose)
    start = {"TV": d["TV0"] * s, "U": d["delta"] * dose, "TVd": d["TV0"] * (1 - s)}
    mabs = (1.0, 30.0, 100.0)
    ref = np.stack([_rr_run(rr, t_out, spec.state_names, {"mAb": m}, start) for m in mabs])
    events = EventSchedule.from_lists(model, [[(0.0, "radiation_fraction", [dose])]] * len(mabs))
    sol = solve(model, _P(spec, [{"mAb": m} for m in mabs]), t_out, events=events, options=OPTIONS)
    rel = _rel_err(sol.y, ref)
    worst = _report("post-fraction (0.5 Gy) run", rel, spec.state_names)
    assert ref[..., 1].min() > 0 and ref[..., 5].min() > 0  # U and TVd really exercised
    assert max(worst.values()) <= REL_REQUIRED, worst


def test_instantaneous_fraction_is_the_limit_of_the_sbml_dose_rate_pulse(spec, model):
    """abscopal's jump is the short-pulse limit of the SBML's own radiation terms.

    The assignment rule ``radiation_Dose = 0`` is removed, and roadrunner delivers 0.5 Gy as
    a pulse of rate d/eps over [5 - eps/2, 5 + eps/2]. The difference from abscopal's jump at
    day 5 must shrink in proportion to eps (first order: the pulse's U^2 term acts during the
    pulse).
    """
    rr = _rr()
    if not hasattr(rr, "removeRules"):
        pytest.skip("this libroadrunner cannot edit models (no removeRules)")
    rr.removeRules("radiation_Dose")
    rr.integrator.relative_tolerance = RR_RTOL
    rr.integrator.absolute_tolerance = RR_ATOL
    rr.integrator.maximum_num_steps = 1_000_000
    dose, t_rt, t_out = 0.5, 5.0, np.array([10.0, 20.0, 30.0, 40.0])
    sol = solve(
        model,
        _P(spec, [{"mAb": 10.0}]),
        np.concatenate([[0.0], t_out]),
        events=EventSchedule.from_lists(model, [[(t_rt, "radiation_fraction", [dose])]]),
        options=OPTIONS,
    )
    errs = []
    for eps in (1e-3, 1e-4):
        rr.resetAll()
        rr["mAb"] = 10.0
        rr["radiation_Dose"] = 0.0
        rr.simulate(0.0, t_rt - eps / 2, 2)
        rr["radiation_Dose"] = dose / eps
        # CVODE's own first-step guess underflows at the pulse's onset (a SUNDIALS warning);
        # give it one
        rr.integrator.initial_time_step = eps * 1e-3
        rr.simulate(t_rt - eps / 2, t_rt + eps / 2, 2)
        rr.integrator.initial_time_step = 0.0  # back to CVODE's own choice
        rr["radiation_Dose"] = 0.0
        res = rr.simulate(times=[t_rt + eps / 2, *t_out])
        ref = np.column_stack([res[f"[{s}]"] for s in spec.state_names])[1:]
        errs.append(float(_rel_err(sol.y[0, 1:], ref).max()))
    print(f"\npulse limit: max relative difference {errs[0]:.2e} (eps 1e-3 d), {errs[1]:.2e} (eps 1e-4 d)")
    assert errs[1] < 2e-5
    assert 5.0 < errs[0] / errs[1] < 20.0


# ---------------------------------------------------------------------------------------------
# mechanism switches
# ---------------------------------------------------------------------------------------------
def _compare_switch_with_sbml(spec, model, rr, off: tuple[str, ...], sbml_params: dict[str, float]):
    t_out, _ = _sedml_grid_and_mab()
    ref = _rr_run(rr, t_out, spec.state_names, sbml_params)
    sol = solve(model, _P(spec, [spec.ablation(off)]), t_out, options=OPTIONS)
    worst = _report(f"{'+'.join(off)} off vs SBML with {sbml_params}", _rel_err(sol.y[0], ref), spec.state_names)
    assert max(worst.values()) <= REL_REQUIRED, worst
    on = solve(model, _P(spec, [{}]), t_out, options=OPTIONS).y[0]
    return sol.y[0], on


def test_pd_l1_axis_off_equals_saturating_antibody(spec, model, rr):
    """Switching off pd_l1_axis equals removing PD-L1's effect (mAb/K_D -> infinity in the SBML)."""
    off, on = _compare_switch_with_sbml(spec, model, rr, ("pd_l1_axis",), {"mAb": 1e15})
    assert off[-1, 3] > 1.01 * on[-1, 3]  # more cytotoxic T cells without the PD-L1 brake
    assert off[-1, 0] < on[-1, 0]  # and a smaller tumour
    assert off[-1, 4] > 0  # PD-L1 is still expressed; it just no longer acts


def test_immunosuppression_off_equals_no_isc(spec, model, rr):
    """Switching off immunosuppression equals ISC -> 0 (S_R -> infinity in the SBML)."""
    off, on = _compare_switch_with_sbml(spec, model, rr, ("immunosuppression",), {"S_R": 1e15})
    assert off[-1, 3] > 1.01 * on[-1, 3]


def test_t_cell_killing_off_equals_zero_kill_rate(spec, model, rr):
    off, on = _compare_switch_with_sbml(spec, model, rr, ("t_cell_killing",), {"n_e": 0.0})
    assert off[-1, 0] > on[-1, 0]


def test_no_t_cells_gives_logistic_growth(spec, model, rr):
    """Without T-cell priming (alone, or with every immune term off) TV is logistic, r - d0."""
    t_out, _ = _sedml_grid_and_mab()
    _compare_switch_with_sbml(spec, model, rr, ("t_cell_priming",), {"kLN": 0.0})
    d = spec.default_values()
    g = d["r"] - d["d0"]
    k = d["TVmax"] * (1 - d["d0"] / d["r"])
    exact = k / (1 + (k / d["TV0"] - 1) * np.exp(-g * t_out))
    sets = [("t_cell_priming",), ("t_cell_priming", "t_cell_killing", "pd_l1_axis", "immunosuppression")]
    sol = solve(model, _P(spec, [spec.ablation(s) for s in sets]), t_out, options=OPTIONS)
    for i in range(len(sets)):
        assert not sol.y[i, :, 2:6].any()  # nTeff, dTeff, PDL1, TVd stay exactly 0
        np.testing.assert_allclose(sol.y[i, :, 0], exact, rtol=1e-8)
    with_t_cells = solve(model, _P(spec, [{}]), t_out, options=OPTIONS).y[0]
    assert with_t_cells[-1, 0] < 0.99 * exact[-1]


@pytest.mark.parametrize("dsb_repair", ["sbml", "repair_time"])
def test_linear_quadratic_kill_of_one_fraction(dsb_repair):
    """One fraction with growth, death and clearance frozen: the U^2 term gives the LQ kill.

    With r = d0 = mu = 0 and no T cells, after an acute dose d at t = 0,
    U = delta*d*exp(-k t) and TV(t) = TV0*exp(-alpha d - c*delta^2 d^2 (1 - exp(-2kt))/(2k)),
    where c = 0.2*alpha/(tau*delta^2). k = tau for the SBML and k = 1/tau for the repair-time
    reading (there beta = 0.1*alpha, alpha/beta = 10 Gy). TV + TVd stays TV0. With
    radiation_dsb off, only the linear kill exp(-alpha d) is left.
    """
    spec = kosinsky2018(dsb_repair=dsb_repair)
    model = compile_model(spec)
    d = spec.default_values()
    frozen = {"r": 0.0, "d0": 0.0, "mu": 0.0, **spec.ablation(("t_cell_priming",))}
    dose, t_out = 2.0, np.array([0.0, 0.01, 0.1, 1.0, 2.0, 40.0])
    rows = [frozen, {**frozen, **spec.ablation(("radiation_dsb",))}]
    # TV falls to ~1e-50 µL by day 40 with the SBML repair, so the absolute tolerances are
    # tightened here (TV: 1e-14 µL) to compare with the exact solution down to 1e-12 µL.
    sol = solve(
        model,
        _P(spec, rows),
        t_out,
        options=SolverOptions(rtol=1e-11, atol_scale=1e-8),
        events=EventSchedule.from_lists(model, [[(0.0, "radiation_fraction", [dose])]] * 2),
    )
    a, tau, delta, tv0 = d["alpha"], d["tau"], d["delta"], d["TV0"]
    k = tau if dsb_repair == "sbml" else 1.0 / tau
    c = 0.2 * a / (tau * delta**2)
    exact = tv0 * np.exp(-a * dose - c * delta**2 * dose**2 * (1 - np.exp(-2 * k * t_out)) / (2 * k))
    np.testing.assert_allclose(sol.y[0, :, 1], delta * dose * np.exp(-k * t_out), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(sol.y[0, :, 0], exact, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(sol.y[0, :, 0] + sol.y[0, :, 5], tv0, rtol=1e-9)
    np.testing.assert_allclose(sol.y[1, :, 0], tv0 * math.exp(-a * dose), rtol=1e-9)
    if dsb_repair == "repair_time":
        np.testing.assert_allclose(sol.y[0, -1, 0], tv0 * math.exp(-a * dose - 0.1 * a * dose**2), rtol=1e-7)


# ---------------------------------------------------------------------------------------------
# radiation event
# ---------------------------------------------------------------------------------------------
def test_radiation_fraction_moves_volume_to_tvd_at_the_jump(spec, model):
    d = spec.default_values()
    dose, t_rt = 2.0, 10.0
    t_out = np.array([0.0, 5.0, t_rt, 12.0])
    P = _P(spec, [{"mAb": 30.0}])
    # Integrate the no-event run up to t_rt only, so t_rt is a step end in both runs (same steps)
    # rather than a dense-output point: the pre-jump state is then bit-identical.
    before = solve(model, P, t_out[:3], options=OPTIONS).y[0]
    after = solve(
        model,
        P,
        t_out,
        options=OPTIONS,
        events=EventSchedule.from_lists(model, [[(t_rt, "radiation_fraction", [dose])]]),
    ).y[0]
    np.testing.assert_array_equal(after[:2], before[:2])  # nothing changes before the fraction
    pre, post = before[2], after[2]  # the output at the event time is the post-jump state
    survive = math.exp(-d["alpha"] * dose)
    assert post[0] + post[5] == pytest.approx(pre[0] + pre[5], rel=1e-14)  # TV + TVd conserved
    assert post[0] == pytest.approx(pre[0] * survive, rel=1e-14)
    assert post[5] == pytest.approx(pre[5] + pre[0] * (1 - survive), rel=1e-14)
    assert post[1] == pytest.approx(pre[1] + d["delta"] * dose, rel=1e-14)
    np.testing.assert_array_equal(post[2:5], pre[2:5])  # T cells and PD-L1 do not jump
    # the same through the kernel's jump map, and the total-volume observable
    jumped = model.jump("radiation_fraction", pre, P[0], np.array([dose]))
    np.testing.assert_allclose(jumped, post, rtol=1e-14)
    obs = solve(
        model,
        P,
        t_out,
        options=OPTIONS,
        events=EventSchedule.from_lists(model, [[(t_rt, "radiation_fraction", [dose])]]),
    ).obs[0]
    assert obs[2, 0] == pytest.approx(pre[0] + pre[5], rel=1e-14)
    later = solve(model, P, t_out, options=OPTIONS).y[0]
    assert after[3, 0] < later[3, 0] and after[3, 5] > 0
