"""SBML export (:mod:`abscopal.sbml`) checked by libRoadRunner, a solver that shares no code with abscopal.

The main requirement: libRoadRunner (CVODE, rtol 1e-12, atol 1e-14) on the exported default NSCLC model (whatever
``nsclc_model()`` returns, and ``nsclc_model(version=2)`` explicitly) reproduces abscopal's typical patient over 730
days of SBRT 24 Gy/3 + pembrolizumab 200 mg q3w, every state at every daily output, within 1e-6 relative, with

    relative error = |a - b| / (|b| + abs_tol_s)

where a is abscopal (compiled Dormand-Prince at rtol 1e-12, atol 1e-6 x the state's abs_tol), b roadrunner and
abs_tol_s the state's own absolute tolerance (``State.abs_tol``). The rest state and the analytic PK are exact
after export; Kosinsky 2018 (with RT fractions) agrees as well; an export read back by :func:`abscopal.sbml.read_sbml`
is the same model (rates, rest state, observables; rational powers and piecewise conditions survive).

Run:  PYTHONPATH=src python -m pytest tests/integration/test_sbml_export.py -v -s   (``-s`` prints the errors)
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

roadrunner = pytest.importorskip("roadrunner")
libsbml = pytest.importorskip("libsbml")

import abscopal as ab  # noqa: E402
from abscopal.model import compile_model  # noqa: E402
from abscopal.model.library import kosinsky2018, nsclc_model  # noqa: E402
from abscopal.sbml import export_sbml, read_sbml, to_sbml  # noqa: E402
from abscopal.solver import EventSchedule, SolverOptions, solve  # noqa: E402
from abscopal.treatment import RadiationCourse  # noqa: E402
from abscopal.treatment.radiation import ExplicitDays  # noqa: E402

REL_REQUIRED = 1e-6
TIGHT = SolverOptions(rtol=1e-12, atol_scale=1e-6)
RR_RTOL, RR_ATOL = 1e-12, 1e-14
PLAN = ab.TreatmentPlan(  # SBRT from day -7 (PEMBRO-RT): SBML time 0 is day -7
    radiation=(ab.radiation_regimen("sbrt_24gy_3fx", start_day=-7.0),),
    drug=ab.drug_regimen("pembrolizumab_200mg_q3w"),
)


def rr_of(text: str, atol: float = RR_ATOL):
    rr = roadrunner.RoadRunner(text)
    rr.integrator.relative_tolerance = RR_RTOL
    rr.integrator.absolute_tolerance = atol
    rr.integrator.maximum_num_steps = 1_000_000
    return rr


def rr_states(rr, names, t_out, start_day: float = 0.0) -> np.ndarray:
    """States at abscopal days ``t_out`` (SBML time = day - start_day)."""
    rr.timeCourseSelections = ["time", *names]
    res = np.asarray(rr.simulate(times=list(t_out - start_day)))
    np.testing.assert_allclose(res[:, 0], t_out - start_day, rtol=0, atol=1e-9)
    return res[:, 1:]


def rel_error(spec, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    atol = np.array([s.abs_tol for s in spec.states])
    return np.abs(a - b) / (np.abs(b) + atol)


def report(title: str, spec, rel: np.ndarray) -> float:
    worst = rel.reshape(-1, rel.shape[-1]).max(axis=0)
    top = sorted(zip(worst, spec.state_names, strict=True), reverse=True)[:4]
    print(f"\n{title}: max relative error {worst.max():.2e} (" + ", ".join(f"{n} {e:.1e}" for e, n in top) + ")")
    return float(worst.max())


def abscopal_states(spec, plan, t_out, parameters=None, solver=TIGHT) -> np.ndarray:
    ds = ab.simulate(
        spec, plan, parameters=parameters, t_end_day=float(t_out[-1]), output_times_day=t_out, solver=solver
    )
    cols = []
    for s in spec.states:
        da = ds[s.group].isel(arm=0, patient=0)
        cols.append((da if s.lesion is None else da.isel(lesion=s.lesion)).values)
    return np.column_stack(cols)


@pytest.mark.parametrize("options", [{}, {"version": 2}], ids=["nsclc_model()", "version=2"])
def test_typical_patient_730_days_matches_roadrunner(options):
    spec = nsclc_model(**options)
    export = export_sbml(spec, PLAN, t_end_day=730.0)
    assert export.n_events == 3 + 35  # 3 fractions, 35 doses on days 0, 21, ..., 714
    assert export.start_day == -7.0
    t_out = np.arange(export.start_day, 731.0)
    ref = rr_states(rr_of(export.text), spec.state_names, t_out, export.start_day)
    got = abscopal_states(spec, PLAN, t_out)
    worst = report(f"{spec.name}, SBRT 24 Gy/3 from day -7 + pembrolizumab q3w, 730 d", spec, rel_error(spec, got, ref))
    assert worst <= REL_REQUIRED
    # the treatment did something: lesion 0 shrinks, the drug is there
    assert got[-1, spec.state_names.index("V_0")] < 0.5 * got[0, spec.state_names.index("V_0")]
    assert got[-1, spec.state_names.index("pk_ref_day")] == 714.0


def test_rest_state_and_its_derivative_are_exact():
    """Untreated export: roadrunner's initial values (initial assignments) and rates equal the compiled kernels."""
    spec = nsclc_model()
    model = compile_model(spec)
    rr = rr_of(to_sbml(spec))
    rr.reset()
    p = np.array(list(spec.default_values().values()))
    y0 = model.initial(p)
    got = np.array([rr[n] for n in spec.state_names])
    np.testing.assert_allclose(got, y0, rtol=1e-14, atol=0)
    rates = rr.getRatesOfChangeNamedArray()
    rates = dict(zip([c.rstrip("'") for c in rates.colnames], rates[0], strict=True))
    dy = model.rhs(0.0, y0, p)
    np.testing.assert_allclose([rates[n] for n in spec.state_names], dy, rtol=1e-12, atol=1e-15)
    # a changed parameter moves the rest state exactly as in abscopal (initial assignments are re-evaluated)
    rr[f"init({'baseline_volume_mm3_0'})"] = 5000.0
    rr.reset()
    p2 = p.copy()
    p2[spec.parameter_names.index("baseline_volume_mm3_0")] = 5000.0
    np.testing.assert_allclose([rr[n] for n in spec.state_names], model.initial(p2), rtol=1e-14, atol=0)


def test_analytic_pk_stays_exact():
    """Drug-only plan: the closed-form concentration of the exported model equals abscopal's to rounding."""
    spec = nsclc_model()
    plan = ab.TreatmentPlan(drug=ab.drug_regimen("pembrolizumab_200mg_q3w"))
    export = export_sbml(spec, plan, t_end_day=120.0)
    t_out = np.arange(0.0, 120.5, 0.5)
    rr = rr_of(export.text)
    rr.timeCourseSelections = ["time", "drug_concentration"]
    ref = np.asarray(rr.simulate(times=list(t_out)))[:, 1]
    ds = ab.simulate(spec, plan, t_end_day=120.0, output_times_day=t_out, solver=TIGHT)
    got = ds["drug_concentration"].values[0, 0]
    assert ref.min() > 10.0  # troughs of pembrolizumab 200 mg q3w
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_kosinsky2018_with_rt_matches_roadrunner():
    spec = kosinsky2018()
    plan = ab.TreatmentPlan(
        radiation=(
            RadiationCourse(
                dose_per_fraction_gy=0.5, n_fractions=2, calendar=ExplicitDays(offsets_day=(0.0, 1.0)), start_day=5.0
            ),
        )
    )
    export = export_sbml(spec, plan, {"mAb": 10.0}, t_end_day=40.0)
    assert export.n_events == 2 and export.unexpressed_units == ()
    t_out = np.arange(0.0, 40.25, 0.25)
    # TV falls to about 1e-9 µL after the fractions (the SBML's DSB repair): absolute tolerances 1e-18 (roadrunner)
    # and 1e-15 µL (abscopal) here
    ref = rr_states(rr_of(export.text, atol=1e-18), spec.state_names, t_out)
    got = abscopal_states(spec, plan, t_out, {"mAb": 10.0}, SolverOptions(rtol=1e-12, atol_scale=1e-9))
    worst = report("kosinsky2018, 2 x 0.5 Gy, mAb 10 nM", spec, rel_error(spec, got, ref))
    assert worst <= REL_REQUIRED
    assert ref[-1, spec.state_names.index("TVd")] > 0  # the fractions really moved volume into TVd


def test_simultaneous_events_run_in_abscopal_order():
    """A fraction and a dose on the same day: roadrunner applies them in abscopal's order (priorities)."""
    spec = nsclc_model()
    plan = ab.TreatmentPlan(
        radiation=(ab.radiation_regimen("sbrt_8gy_1fx", start_day=21.0),),
        drug=ab.drug_regimen("pembrolizumab_200mg_q3w"),
    )
    export = export_sbml(spec, plan, t_end_day=60.0)
    doc = libsbml.readSBMLFromString(export.text)
    events = doc.getModel().getListOfEvents()
    day21 = [e.getId() for e in events if "day 21" in e.getName()]
    assert day21[0].startswith("radiation_fraction") and day21[1].startswith("drug_dose")
    assert all(not e.getUseValuesFromTriggerTime() for e in events)
    t_out = np.arange(0.0, 61.0)
    ref = rr_states(rr_of(export.text), spec.state_names, t_out)
    got = abscopal_states(spec, plan, t_out)
    assert report("fraction and dose on day 21", spec, rel_error(spec, got, ref)) <= REL_REQUIRED


def test_consistency_check_units_and_the_report():
    export = export_sbml(nsclc_model(), PLAN)
    doc = libsbml.readSBMLFromString(export.text)
    assert doc.getLevel() == 3 and doc.getVersion() == 2
    assert doc.checkConsistency() == len(export.warnings)  # every message is a warning
    assert all("unit consistency" in w for w in export.warnings)
    assert export.unexpressed_units == ()
    m = doc.getModel()
    assert m.getTimeUnits() == "day"
    assert m.getParameter("V_0").getUnits() == "mm3"
    assert m.getParameter("max_kill_per_day").getUnits() == "per_day"
    assert m.getParameter("on_checkpoint_blockade").getConstant()  # a mechanism switch is a parameter
    assert m.getRule("lesion_diameter_0").isAssignment() and m.getRule("V_0").isRate()
    assert m.getInitialAssignmentBySymbol("A") is not None  # the analytic rest state
    # a unit string without an SBML form is listed, and the quantity has no units
    spec = nsclc_model()
    odd = ab.ModelSpec(
        name="odd",
        description="",
        states=(ab.model.State(name="x", units="widgets/fortnight", long_name="x", initial=1.0),),
        parameters=(ab.model.Parameter(name="rate", units="1/day", default=0.1),),
        rates={"x": -ab.model.sym("rate") * ab.model.sym("x")},
    )
    out = export_sbml(odd)
    assert out.unexpressed_units == ("widgets/fortnight",)
    assert not libsbml.readSBMLFromString(out.text).getModel().getParameter("x").isSetUnits()
    assert spec.content_hash() in export.text  # the notes name the exported model


@pytest.mark.parametrize(
    "build",
    [pytest.param(nsclc_model, marks=pytest.mark.slow), kosinsky2018],  # nsclc: compiles the re-read model (90 s cold)
    ids=["nsclc", "kosinsky2018"],
)
def test_round_trip_through_read_sbml_is_the_same_model(build, tmp_path):
    spec = build()
    path = tmp_path / "m.xml"
    path.write_text(to_sbml(spec))
    back = read_sbml(path).spec
    assert back.state_names == spec.state_names
    assert set(spec.parameter_names) <= set(back.parameter_names)
    assert [o.name for o in back.observables] == [o.name for o in spec.observables]
    rng = np.random.default_rng(7)
    d = spec.default_values()
    a, b = compile_model(spec), compile_model(back)
    p_a = np.array([d[n] for n in spec.parameter_names])
    p_b = np.array([d[n] for n in back.parameter_names])
    y0 = a.initial(p_a)
    np.testing.assert_allclose(b.initial(p_b), y0, rtol=1e-14, atol=0)
    for _ in range(20):
        y = y0 * rng.uniform(0.5, 1.5, y0.size) + rng.uniform(0, 1e-3, y0.size)
        t = float(rng.uniform(0, 100))
        np.testing.assert_allclose(b.rhs(t, y, p_b), a.rhs(t, y, p_a), rtol=1e-12, atol=1e-14)
    for ob_a, ob_b in zip(spec.observables, back.observables, strict=True):
        diff = sp.simplify(ob_a.expr - ob_b.expr)
        assert diff == 0, (ob_a.name, diff)
    if spec.n_lesions:  # the sphere-equivalent diameter keeps its exact 1/3 power
        assert any(p.exp == sp.Rational(1, 3) for p in back.observables[1].expr.atoms(sp.Pow))
        # and the piecewise of the new-lesion hazard keeps its condition
        pw = back.rates["H"].atoms(sp.Piecewise)
        assert pw and any(isinstance(c, sp.Eq) for p in pw for _, c in p.args)


def test_round_trip_of_a_plan_becomes_scheduled_events(tmp_path):
    """An export with a plan, read back: the events are argument-less jumps fired by the import's schedule, and
    abscopal on the import reproduces abscopal on the original."""
    spec = kosinsky2018()
    plan = ab.TreatmentPlan(
        radiation=(
            RadiationCourse(
                dose_per_fraction_gy=0.5, n_fractions=2, calendar=ExplicitDays(offsets_day=(0.0, 1.0)), start_day=5.0
            ),
        )
    )
    path = tmp_path / "k.xml"
    path.write_text(to_sbml(spec, plan, {"mAb": 10.0}, t_end_day=40.0))
    imp = read_sbml(path)
    assert [(t, n) for t, n, _ in imp.schedule] == [(5.0, "radiation_fraction_1"), (6.0, "radiation_fraction_2")]
    t_out = np.arange(0.0, 41.0)
    model = compile_model(imp.spec)
    d = imp.spec.default_values()
    P = np.array([[d[n] for n in imp.spec.parameter_names]])
    got = solve(model, P, t_out, events=EventSchedule.from_lists(model, imp.event_lists(1)), options=TIGHT).y[0]
    ref = abscopal_states(spec, plan, t_out, {"mAb": 10.0})
    assert report("kosinsky2018 plan, export -> import", spec, rel_error(spec, got, ref)) <= 1e-9
