"""Time zero: prior RT courses are history before enrolment; the drawn sizes hold at time zero (abscopal.history).

Synthetic plans and targets only: no shipped target file marks a course prior (that changes the shipped fit's
predictions and comes with its re-fit).
"""

from __future__ import annotations

import json
import math
import sys
import tomllib
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from abscopal.arms import arm_patients, baseline_day, run_arm
from abscopal.calibrate.objective import CalibrationProblem
from abscopal.endpoints import TrialAssessment, score
from abscopal.endpoints.readout import read_outputs, trial_segment
from abscopal.errors import ScheduleError, SterilisedLesionWarning, TargetError
from abscopal.fitted import Fit, resolve_fit_path, split_values
from abscopal.history import HISTORY_RTOL, size_parameters
from abscopal.patients import MIXES
from abscopal.scenario import load_scenario, parse_scenario
from abscopal.simulate import Arm, plan_events, simulate
from abscopal.solver import EventSchedule, solve
from abscopal.targeting import place_rt_targets
from abscopal.treatment import RadiationCourse, TreatmentPlan, drug_regimen, radiation_regimen
from abscopal.trials import AssessmentSpec, parse_targets

ROOT = Path(__file__).resolve().parents[2]
N = 24
DRUG = "pembrolizumab_200mg_q3w"
quiet_sterilised = pytest.mark.filterwarnings("ignore::abscopal.errors.SterilisedLesionWarning")


@pytest.fixture(scope="module")
def patients_and_target():
    patients = arm_patients(MIXES["pembro_rt"], N, 3, seed=5)
    return place_rt_targets(patients, "largest")


@pytest.fixture(scope="module")
def split(nsclc3, patients_and_target):
    fit = Fit.load(resolve_fit_path("default"))
    return split_values(nsclc3.spec, fit.all_values(), tuple(patients_and_target[0].variability))


def _plan(lesions, *, prior: bool, start_day: float = -90.0, regimen: str = "conv_30gy_10fx", drug: bool = True):
    course = radiation_regimen(regimen, start_day=start_day, target_lesions=lesions, prior=prior)
    return TreatmentPlan(radiation=(course,), drug=drug_regimen(DRUG) if drug else None, name="arm")


def _run(nsclc3, split, patients, plan, start_day=-90.0, t_end_day=365.0, **kw):
    assessment = AssessmentSpec(scan_interval_week=6).to_assessment(baseline_day(plan, start_day), t_end_day)
    return run_arm(nsclc3, plan, patients, assessment, split, start_day=start_day, t_end_day=t_end_day, **kw)


@pytest.fixture(scope="module")
def prior_run(nsclc3, split, patients_and_target):
    patients, lesions = patients_and_target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SterilisedLesionWarning)
        return _run(nsclc3, split, patients, _plan(lesions, prior=True))


def _day0_rel_error(ds, patients, day=0.0):
    k = int(np.flatnonzero(np.isclose(ds.time.values, day))[0])
    d = read_outputs(ds).lesion_diameter_mm[0, :, :, k]
    drawn = np.asarray(patients.baseline_diameter_mm)
    return np.abs(d - drawn) / np.where(patients.present, drawn, 1.0)


# ---- the drawn sizes hold at day 0 ---------------------------------------------------------------------------------
def _start_volumes(ds, model) -> np.ndarray:
    """Start volumes (patient, lesion) of arm 0: the size parameters, times the start-size factors (model v2)."""
    cols, _, factor_cols = size_parameters(model.spec)
    p = ds.parameter_value.values[0]
    return p[:, cols] * (p[:, factor_cols] if factor_cols is not None else 1.0)


def test_the_drawn_sizes_hold_at_day_0_with_rt_90_days_before_the_drug(prior_run, patients_and_target, nsclc3):
    patients, lesions = patients_and_target
    ds = prior_run.simulation
    assert ds.time.values[0] == -90.0 and ds.attrs["time_zero_day"] == 0.0 and ds.attrs["history_start_day"] == -90.0
    sterilised = ds.history_sterilised.values[0]
    held = np.asarray(patients.present) & ~sterilised
    err = _day0_rel_error(ds, patients)
    assert held.sum() > 0.6 * np.asarray(patients.present).sum()
    assert err[held].max() <= 1e-6
    # the full run reproduces the shooting's last evaluation: its error is the shooting's own (volume to 1e-10)
    k = int(np.flatnonzero(ds.time.values == 0.0)[0])
    vol = ds.lesion_volume.values[0, :, :, k]
    drawn = ds.baseline_volume_drawn_mm3.values[0]
    assert np.all(np.abs(vol[held] / drawn[held] - 1.0) <= 10 * HISTORY_RTOL)
    # the start sizes are what moved: mostly much larger for the irradiated lesion, smaller for the others (they grew)
    start = _start_volumes(ds, nsclc3)
    irr = np.zeros_like(held)
    irr[:, list(lesions)] = True
    ratio = start / np.where(held, drawn, 1.0)
    assert np.median(ratio[held & irr]) > 10.0 and np.median(ratio[held & ~irr]) < 1.0
    assert np.array_equal(start[~np.asarray(patients.present)], np.zeros((~np.asarray(patients.present)).sum()))
    prov = json.loads(ds.attrs["provenance"])["time_zero"]
    assert prov["time_zero_day"] == 0.0 and prov["history_start_day"] == -90.0
    assert prov["arms"]["arm"]["max_rel_volume_error"] <= HISTORY_RTOL
    assert 1 <= prov["arms"]["arm"]["iterations"] <= 60


def test_a_lesion_the_prior_rt_sterilises_starts_at_the_bound_and_is_reported(
    prior_run, patients_and_target, nsclc3, split
):
    patients, lesions = patients_and_target
    ds = prior_run.simulation
    sterilised = ds.history_sterilised.values[0]
    assert (
        sterilised.any()
    )  # 30 Gy / 10 leaves about 1/85 of the volume at day 0: the largest lesions cannot be reached
    assert not sterilised[:, [j for j in range(3) if j not in lesions]].any()  # only irradiated lesions
    cols, _, factor_cols = size_parameters(nsclc3.spec)
    drawn = ds.parameter_value.values[0][:, cols]  # model v2: the size parameters stay the drawn (time-zero) sizes
    np.testing.assert_array_equal(drawn, ds.baseline_volume_drawn_mm3.values[0])
    assert factor_cols is not None
    upper = np.minimum(
        np.array([nsclc3.spec.all_parameters[c].upper for c in cols]),
        drawn * np.array([nsclc3.spec.all_parameters[c].upper for c in factor_cols]),
    )
    start = _start_volumes(ds, nsclc3)
    np.testing.assert_allclose(start[sterilised], upper[sterilised], rtol=1e-12)
    k = int(np.flatnonzero(ds.time.values == 0.0)[0])
    assert np.all(ds.lesion_volume.values[0, :, :, k][sterilised] < ds.baseline_volume_drawn_mm3.values[0][sterilised])
    prov = json.loads(ds.attrs["provenance"])["time_zero"]["arms"]["arm"]
    assert prov["n_sterilised"] == int(sterilised.sum())
    with pytest.warns(SterilisedLesionWarning, match="sterilised by the prior RT"):
        _run(nsclc3, split, patients, _plan(lesions, prior=True), t_end_day=7.0)


def test_without_the_prior_flag_the_sizes_sit_at_the_first_fraction(nsclc3, split, patients_and_target):
    patients, lesions = patients_and_target
    run = _run(nsclc3, split, patients, _plan(lesions, prior=False))
    ds = run.simulation
    assert "time_zero_day" not in ds.attrs and "history_sterilised" not in ds
    assert _day0_rel_error(ds, patients, day=-90.0)[np.asarray(patients.present)].max() < 1e-12
    assert _day0_rel_error(ds, patients)[np.asarray(patients.present)].max() > 0.1  # what issue 11 measured
    assert run.scored.start_day == -90.0 and run.scored.endpoints.visit_day.values[0] == -90.0


# ---- scans, PFS and OS count from day 0 ----------------------------------------------------------------------------
def test_scans_start_at_day_0_and_survival_counts_from_it(prior_run):
    ep, scored, ds = prior_run.scored.endpoints, prior_run.scored, prior_run.simulation
    assert scored.start_day == 0.0 and ep.attrs["start_day"] == 0.0
    visits = ep.visit_day.values
    assert visits[0] == 0.0 and visits[1] == 42.0
    follow = float(ep.attrs["follow_up_day"])
    death, os_day = ep.death_day.values[0], ep.os_day.values[0]
    assert np.all(death > 0.0)
    assert np.array_equal(os_day, np.minimum(death, follow))  # from day 0, not from the history start
    prog, pfs_day, pfs_event = ep.progression_day.values[0], ep.pfs_day.values[0], ep.pfs_event.values[0]
    ev = np.minimum(prog, death)
    assert np.array_equal(pfs_day[pfs_event], ev[pfs_event])
    assert np.all(ep.new_lesion_day.values[0] > 0.0)
    # new lesions before enrolment are baseline disease: the hazard counts from day 0
    k = int(np.flatnonzero(ds.time.values == 0.0)[0])
    assert np.all(ds.H.values[0, :, k] > 0.0)
    trial = trial_segment(ds)
    assert trial.time.values[0] == 0.0 and np.all(trial.H.values[0, :, 0] == 0.0)
    assert trial.H.attrs == ds.H.attrs


def test_the_default_scans_of_score_start_at_time_zero(prior_run):
    ep = score(prior_run.simulation, TrialAssessment())
    assert ep.visit_day.values[0] == 0.0 and ep.attrs["start_day"] == 0.0


def test_trial_segment_needs_time_zero_on_the_output_grid(prior_run):
    ds = prior_run.simulation
    off = ds.isel(time=ds.time.values != 0.0)
    with pytest.raises(Exception, match="time zero"):
        trial_segment(off)
    assert trial_segment(ds.drop_attrs(deep=False)) is not None


# ---- other layouts of the history ----------------------------------------------------------------------------------
@quiet_sterilised
def test_protocol_rt_before_the_drug_is_time_zero_and_the_sizes_hold_there(nsclc3, split, patients_and_target):
    patients, lesions = patients_and_target
    prior = radiation_regimen("conv_30gy_10fx", start_day=-60, target_lesions=lesions, prior=True)
    sbrt = radiation_regimen("sbrt_24gy_3fx", start_day=-5, target_lesions=(1,))
    plan = TreatmentPlan(radiation=(prior, sbrt), drug=drug_regimen(DRUG))
    assert plan.time_zero_day == -5.0 and plan.history_start_day == -60.0 and baseline_day(plan, -60.0) == -5.0
    run = _run(nsclc3, split, patients, plan, start_day=-60.0)
    ds = run.simulation
    assert ds.attrs["time_zero_day"] == -5.0 and -5.0 in ds.time.values  # added to the weekly grid
    held = np.asarray(patients.present) & ~ds.history_sterilised.values[0]
    assert _day0_rel_error(ds, patients, day=-5.0)[held].max() <= 1e-6
    assert run.scored.start_day == -5.0 and run.scored.endpoints.visit_day.values[0] == -5.0


@quiet_sterilised
def test_a_history_without_a_later_event_runs_to_the_end_and_still_holds(nsclc3, split, patients_and_target):
    patients, lesions = patients_and_target
    plan = _plan(lesions, prior=True, drug=False)  # prior RT and nothing else: no event at or after time zero
    run = _run(nsclc3, split, patients, plan, t_end_day=120.0)
    ds = run.simulation
    held = np.asarray(patients.present) & ~ds.history_sterilised.values[0]
    assert _day0_rel_error(ds, patients)[held].max() <= 1e-6


@quiet_sterilised
def test_every_arm_of_a_simulation_with_a_history_holds_its_sizes(nsclc3, split, patients_and_target):
    patients, lesions = patients_and_target
    arms = [
        Arm(name="drug", plan=TreatmentPlan(drug=drug_regimen(DRUG))),
        Arm(name="prior", plan=_plan(lesions, prior=True)),
    ]
    ds = simulate(
        nsclc3,
        arms,
        population=patients.population(),
        parameters=split.typical,
        t_end_day=84.0,
        output_interval_day=7.0,
        out_of_bounds="clip",
    )
    assert ds.time.values[0] == -90.0 and ds.attrs["time_zero_day"] == 0.0
    k = int(np.flatnonzero(ds.time.values == 0.0)[0])
    d = read_outputs(ds).lesion_diameter_mm[..., k]
    drawn = np.asarray(patients.baseline_diameter_mm)
    held = np.asarray(patients.present)[None] & ~ds.history_sterilised.values
    assert (np.abs(d - drawn[None]) / np.where(held, drawn[None], 1.0))[held].max() <= 1e-6
    assert not ds.history_sterilised.values[0].any()  # untreated history: nothing sterilised


@quiet_sterilised
def test_salvage_rt_moves_the_protocol_course_and_keeps_the_history(nsclc3, split, patients_and_target):
    patients, lesions = patients_and_target
    prior = radiation_regimen("conv_30gy_10fx", start_day=-90, target_lesions=lesions, prior=True)
    salvage = radiation_regimen("sbrt_24gy_3fx", start_day=0, target_lesions=(1,))
    plan = TreatmentPlan(radiation=(prior, salvage), drug=drug_regimen(DRUG))
    moved = plan.with_rt_offset(100.0, drug_to_day0=False)
    assert moved.radiation[0] == prior and moved.radiation[1].start_day == 100.0
    starts = np.where(np.arange(N) % 2 == 0, np.nan, 84.0)
    arm = Arm(name="a", plan=plan, rt_start_day=starts)
    plans = arm.patient_plans(N)
    assert plans[0].radiation == (prior,) and plans[1].radiation[1].start_day == 84.0
    run = _run(nsclc3, split, patients, plan, rt_start_day=starts)
    held = np.asarray(patients.present) & ~run.simulation.history_sterilised.values[0]
    assert _day0_rel_error(run.simulation, patients)[held].max() <= 1e-6
    with pytest.raises(ScheduleError, match="has no radiation course to move"):
        Arm(name="b", plan=_plan(lesions, prior=True), rt_start_day=starts)


# ---- without prior courses nothing changes -------------------------------------------------------------------------
def test_a_plan_without_prior_courses_is_the_plain_solve(nsclc3, split, patients_and_target, monkeypatch):
    """Exactly what simulate did before time zero existed: the drawn sizes at the start, the grid from the start."""
    sim_module = sys.modules["abscopal.simulate"]  # the module (abscopal.simulate is also the function)

    def refuse(*args, **kwargs):
        raise AssertionError("no shooting without prior courses")

    monkeypatch.setattr(sim_module, "hold_sizes_at_time_zero", refuse)
    patients, lesions = patients_and_target
    plan = TreatmentPlan(
        radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=-7, target_lesions=lesions),), drug=drug_regimen(DRUG)
    ).for_model(nsclc3.spec)
    run = _run(nsclc3, split, patients, plan, start_day=-7.0, t_end_day=182.0)
    ds = run.simulation
    assert not {"time_zero_day", "history_start_day"} & set(ds.attrs)
    assert not {"history_sterilised", "baseline_volume_drawn_mm3"} & set(ds.data_vars)
    assert "time_zero" not in json.loads(ds.attrs["provenance"])
    t_out = np.unique(np.concatenate([[-7.0], 7.0 * np.arange(0, 26), [182.0]]))
    assert np.array_equal(ds.time.values, t_out)
    P = ds.parameter_value.values[0]
    cols, _, _ = size_parameters(nsclc3.spec)
    assert np.array_equal(P[:, cols], math.pi / 6.0 * np.asarray(patients.baseline_diameter_mm) ** 3)
    sched = EventSchedule.concatenate([(EventSchedule.from_lists(nsclc3, [plan_events(nsclc3.spec, plan, 182.0)]), N)])
    sol = solve(nsclc3, P, t_out, events=sched, t0=-7.0)
    viable = sol.y[:, :, [nsclc3.spec.state_names.index(f"V_{j}") for j in range(3)]].transpose(0, 2, 1)
    assert np.array_equal(ds.viable_volume.values[0], viable)
    assert run.scored.start_day == -7.0
    ep = score(ds, run.scored.assessment, patients=patients)
    assert ep.identical(run.scored.endpoints)


# ---- targets and the calibration problem ---------------------------------------------------------------------------
def _keynote(prior: object = True, start_day: float = -90.0) -> dict:
    data = tomllib.loads((ROOT / "fits/targets/keynote001_shaverdian2017.toml").read_text())
    course = data["arm"][1]["radiation"][0]
    course["prior"], course["start_day"] = prior, start_day
    return data


def test_only_the_retrospective_cohorts_mark_their_pre_enrolment_courses_prior():
    """KEYNOTE-001 (RT before the first pembrolizumab dose) and Ratnayake 2020 (counted from the first nivolumab
    dose) give RT before time zero: history. PEMBRO-RT's SBRT at day -7 and MDACC's RT are protocol treatment."""
    marked = set()
    for path in sorted((ROOT / "fits/targets").glob("*.toml")):
        for arm in tomllib.loads(path.read_text()).get("arm", []):
            if any(r.get("prior") for r in arm.get("radiation", [])):
                marked.add((path.name, arm["name"]))
    assert marked == {("keynote001_shaverdian2017.toml", "prior_rt"), ("ratnayake2020.toml", "rt+nivolumab")}


@quiet_sterilised
def test_a_target_file_with_prior_parses_and_the_problem_uses_time_zero(nsclc3):
    targets = parse_targets(_keynote(), "keynote_prior.toml")
    (course,) = targets.arm("prior_rt").radiation
    assert course.prior and course.build(target_lesions=(0,)).prior
    plain = parse_targets(_keynote(prior=False), "keynote.toml")
    assert targets.content_hash() != plain.content_hash()
    assert '"prior":' not in json.dumps(plain.canonical())  # files without the key keep their hash
    problem = CalibrationProblem(targets=(targets,), model=nsclc3, n_patients_per_arm=12, seed=1)
    setup = problem._setups[(targets.id, "prior_rt")]
    assert setup.start_day == -90.0 and setup.plan.time_zero_day == 0.0
    assert setup.assessment.scans.visit_days()[0] == 0.0
    run = problem._simulate_arm(setup, problem._split({}))
    assert run.simulation.time.values[0] == -90.0 and run.simulation.attrs["time_zero_day"] == 0.0
    assert run.scored.start_day == 0.0 and run.scored.endpoints.visit_day.values[0] == 0.0
    other = problem._setups[(targets.id, "no_prior_rt")]
    assert other.start_day == 0.0 and other.assessment.scans.visit_days()[0] == 0.0
    assert np.all(np.isfinite(problem.residuals_from_values({})))


@pytest.mark.parametrize(
    ("prior", "start_day", "match"),
    [
        ("yes", -90.0, r"prior must be true or false, got 'yes'; write prior = true"),
        (1, -90.0, "prior must be true or false, got 1"),
        (
            True,
            -5.0,
            r"radiation\[0\]: prior = true, but conv_30gy_10fx from start_day = -5 has fractions on days -5 to 6",
        ),
        (True, 0.0, r"give start_day <= -12"),
    ],
)
def test_bad_prior_values_in_a_target_file_are_clear_errors(prior, start_day, match):
    with pytest.raises(TargetError, match=match) as info:
        parse_targets(_keynote(prior, start_day), "keynote_prior.toml")
    assert str(info.value).startswith("keynote_prior.toml: arm[1]['prior_rt'].radiation[0]")


def test_a_prior_course_after_a_protocol_event_is_refused_in_a_target_file():
    data = _keynote(True, -30.0)
    data["arm"][1]["radiation"].append({"regimen": "sbrt_24gy_3fx", "start_day": -20, "target": [1]})
    with pytest.raises(TargetError, match=r"radiation\[0\]: prior = true, but its last fraction \(day -19\)"):
        parse_targets(data, "t.toml")


# ---- the objects ---------------------------------------------------------------------------------------------------
def test_radiation_course_prior_validation():
    assert not radiation_regimen("sbrt_24gy_3fx").prior
    course = radiation_regimen("sbrt_24gy_3fx", start_day=-30, prior=True)
    assert course.prior and course.describe().startswith("prior (history) ")
    with pytest.raises(ScheduleError, match="prior must be true or false, got 'true'"):
        RadiationCourse(dose_per_fraction_gy=8.0, n_fractions=3, start_day=-30, prior="true")  # type: ignore[arg-type]
    with pytest.raises(ScheduleError, match=r"has a fraction at day 0, at or after day 0.*from day -2 to 2"):
        radiation_regimen("sbrt_24gy_3fx", start_day=-2, prior=True)
    with pytest.raises(ScheduleError, match="all its fractions must be before day 0"):
        course.shifted(40.0)
    with pytest.raises(ScheduleError, match=r"has a fraction at day -26, not before the plan's time zero \(day -27"):
        TreatmentPlan(radiation=(course, radiation_regimen("sbrt_24gy_3fx", start_day=-27, target_lesions=(1,))))
    plan = TreatmentPlan(radiation=(course,), drug=replace(drug_regimen(DRUG), start_day=-3.0))
    assert plan.time_zero_day == -3.0 and plan.prior_courses == (course,) and plan.protocol_courses == ()
    assert TreatmentPlan(radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=-7),)).history_start_day is None


def test_a_model_without_lesion_start_sizes_refuses_a_history(toy):
    plan = TreatmentPlan(radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=-30, prior=True),))
    with pytest.raises(ScheduleError, match="cannot hold lesion sizes at time zero"):
        simulate(toy, plan, t_end_day=10.0)


# ---- scenario files ------------------------------------------------------------------------------------------------
SCENARIO = """
title = "prior RT"
fit = "none"
[simulation]
t_end_day = 70
output_interval_day = 7
[population]
n_patients = 3
[[arm]]
name = "prior"
drug = "pembrolizumab_200mg_q3w"
[[arm.radiation]]
regimen = "conv_30gy_10fx"
start_day = {start}
target_lesions = [1]
prior = {prior}
[[arm.radiation]]
dose_per_fraction_gy = 8
n_fractions = 1
start_day = -40
target_lesions = [2]
prior = true
"""


def test_a_scenario_with_prior_courses_holds_the_sizes(tmp_path, nsclc3):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(start="-90", prior="true"))
    sc = load_scenario(path)
    assert [c.prior for c in sc.arms[0].plan.radiation] == [True, True]
    ds = simulate(nsclc3, sc.arms, **sc.simulate_kwargs())
    assert ds.time.values[0] == -90.0 and ds.attrs["time_zero_day"] == 0.0
    k = int(np.flatnonzero(ds.time.values == 0.0)[0])
    vol = ds.lesion_volume.values[0, :, :, k]
    drawn = ds.baseline_volume_drawn_mm3.values[0]
    assert np.all(np.abs(vol / drawn - 1.0) <= 10 * HISTORY_RTOL) and not ds.history_sterilised.values.any()


@pytest.mark.parametrize(
    ("start", "prior", "match"),
    [
        ("-90", '"yes"', r"s.toml: arm\[0\].radiation\[0\]: prior must be true or false, got 'yes'"),
        ("-5", "true", r"s.toml: arm\[0\].radiation\[0\]: prior course 'conv_30gy_10fx' has a fraction at day 2"),
    ],
)
def test_bad_prior_values_in_a_scenario_are_clear_errors(tmp_path, start, prior, match):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(start=start, prior=prior))
    with pytest.raises(ScheduleError, match=match):
        load_scenario(path)
    data = tomllib.loads(SCENARIO.format(start="-90", prior="true"))
    data["arm"][0]["radiation"][1]["start_day"] = -1
    data["arm"][0]["radiation"][1]["n_fractions"] = 2
    with pytest.raises(ScheduleError, match=r"arm\[0\].radiation\[1\]: prior course .* has a fraction at day 0"):
        parse_scenario(data)
