"""The tumour-growth-rate OS link on simulated patients: irradiating one of three lesions changes OS only through
the trial-measured sum of diameters, so SBRT's OS benefit is smaller than under the burden hazard.

The link (:class:`TumourGrowthSurvival`) is the default death model; the burden hazard (:class:`SurvivalModel`) is
model v1's, and only v1's fit (``fits/v1.json``) calibrates it. So the ablation runs model v1 with its fit and
variability, and compares its calibrated burden hazard with the link on the same simulations."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import abscopal as ab
from abscopal.arms import run_arm
from abscopal.endpoints import DAYS_PER_MONTH, SurvivalModel, TrialAssessment, TumourGrowthSurvival, score, trial_scans
from abscopal.endpoints.survival import hazard_ratio, kaplan_meier
from abscopal.fitted.shipped import load_fit
from abscopal.fitted.values import split_values
from abscopal.model.compile import compile_model
from abscopal.model.library.nsclc import model_variability
from abscopal.patients import MIXES, draw_patients
from abscopal.targeting import place_rt_targets
from abscopal.treatment.plan import TreatmentPlan

ROOT = Path(__file__).resolve().parents[2]
START, END, N = -7.0, 730.0, 300
CALIBRATED_INTERCEPT = 5.6
"""``survival__intercept_log_day`` that puts the control arm's median OS at 7.9 months, near PEMBRO-RT's 7.6."""


@pytest.fixture(scope="module")
def trial():
    """PEMBRO-RT-like arms on the same 300 pretreated patients with exactly three lesions (the pembro_rt mix
    with lesion_count {3: 1}): pembrolizumab alone, or after SBRT 3 x 8 Gy to the lung primary (days -7..-3);
    model v1 with its fit (fits/v1.json: the calibrated burden hazard) and variability; irradiated lesions not
    scored (PEMBRO-RT)."""
    fit = load_fit(ROOT / "fits" / "v1.json")
    model = compile_model(ab.nsclc_model(3, version=1))
    variability = {k: v for k, v in model_variability(model.spec).items() if k != "pdl1_tps"}  # TPS: from the mix
    patients = draw_patients(
        replace(MIXES["pembro_rt"], lesion_count={3: 1.0}, name="three_lesions"),
        N,
        n_lesions=3,
        seed=11,
        variability=variability,
    )
    patients, lesions = place_rt_targets(patients, "lung_primary")
    pem = ab.drug_regimen("pembrolizumab_200mg_q3w")
    sbrt = ab.radiation_regimen("sbrt_24gy_3fx", start_day=START, target_lesions=lesions)
    plans = {"pembro": TreatmentPlan(drug=pem), "sbrt": TreatmentPlan(drug=pem, radiation=(sbrt,))}
    base = TrialAssessment(scans=trial_scans(START, end_day=END), orr_visit_day=84.0, exclude_irradiated=True)
    split = split_values(model.spec, fit.all_values(), tuple(patients.variability))
    runs = {
        k: run_arm(model, p, patients, base, split, start_day=START, t_end_day=END, name=k) for k, p in plans.items()
    }
    return {"model": model, "fit": fit, "patients": patients, "plans": plans, "base": base, "split": split} | {
        "runs": runs
    }


def _os(trial, assessment):
    """Per arm: the endpoints; the Cox OS HR of SBRT vs pembrolizumab alone; KM median OS (months)."""
    eps = {k: score(r.simulation, assessment, patients=trial["patients"]) for k, r in trial["runs"].items()}
    t = np.concatenate([e.os_day.values[0] for e in eps.values()])
    event = np.concatenate([e.os_event.values[0] for e in eps.values()])
    hr = hazard_ratio(t, event, np.repeat([0, 1], N)).hr
    med = {
        k: kaplan_meier(e.os_day.values[0], e.os_event.values[0]).median_day() / DAYS_PER_MONTH for k, e in eps.items()
    }
    return eps, hr, med


def test_sbrt_os_benefit_is_smaller_with_the_growth_rate_link(trial):
    """Same patients, same simulations, same Exp(1) death draws (seed 11, 300 per arm), measured:

    ================================================  ============  ==========================
    death model                                        OS HR SBRT    median OS, months
    ================================================  ============  ==========================
    burden hazard SurvivalModel (v1 fit)               0.80          6.4 -> 10.5 (+4.1)
    TumourGrowthSurvival, published values             0.89          not reached in 24 months
    TumourGrowthSurvival, intercept 5.6 (control 7.9)  0.93          7.9 -> 9.8 (+1.9)
    ================================================  ============  ==========================

    The burden hazard reads the total burden, so the irradiated lesion's shrinkage lowers it; the link reads the
    SLD of the non-irradiated targets only (PEMBRO-RT), so SBRT acts on OS only through its abscopal effect on
    them, and through the smaller measured baseline SLD of the SBRT arm (the irradiated lesion is not a target:
    the published SLD0 term; without it the HR is 0.94). Seeds 1, 2, 3 give burden 0.79-0.81 vs link 0.83-0.90.
    """
    burden = trial["split"].assessment(trial["base"])  # the v1 fit's survival field selects the burden hazard
    assert isinstance(burden.survival, SurvivalModel)
    _, hr_burden, med_burden = _os(trial, burden)
    _, hr_link, med_link = _os(trial, replace(trial["base"], survival=TumourGrowthSurvival()))
    calibrated = replace(trial["base"], survival=TumourGrowthSurvival(intercept_log_day=CALIBRATED_INTERCEPT))
    _, hr_cal, med_cal = _os(trial, calibrated)
    assert hr_burden == pytest.approx(0.80, abs=0.01)
    assert hr_link == pytest.approx(0.89, abs=0.01) and hr_cal == pytest.approx(0.93, abs=0.01)
    assert hr_link > hr_burden + 0.05 and hr_cal > hr_burden + 0.05
    assert med_burden["sbrt"] - med_burden["pembro"] == pytest.approx(4.1, abs=0.1)
    assert med_cal["pembro"] == pytest.approx(7.9, abs=0.1)
    assert med_cal["sbrt"] - med_cal["pembro"] == pytest.approx(1.9, abs=0.1)
    assert med_link["pembro"] == np.inf  # the published link: the simulated SLD grows slowly (see docs)


def test_os_does_not_read_the_irradiated_lesion_when_the_trial_does_not_score_it(trial):
    """Shrink the irradiated lesion (and the burden) after the start in the SBRT arm's dataset: deaths under the
    link are unchanged, whether the trial scores irradiated lesions or not (the link reads the lesions outside the
    fields), and change when the link is told to read them (``irradiated_lesions_in_sld=True``); deaths under the
    burden hazard (the v1 fit's) change."""
    ds = trial["runs"]["sbrt"].simulation
    roles = json.loads(ds.attrs["roles"])
    changed = ds.copy(deep=True)
    later = changed.time > START
    irradiated = int(np.flatnonzero(ds.rt_dose_gy.values[0] > 0)[0])
    diameter = changed[roles["lesion_diameter"]]
    diameter.loc[{"lesion": diameter.lesion[irradiated], "time": changed.time[later]}] *= 0.5
    burden = changed[roles["tumour_burden"]]
    burden.loc[{"time": changed.time[later]}] *= 0.5
    link = replace(trial["base"], survival=TumourGrowthSurvival())
    pats = trial["patients"]

    def deaths(data, assessment):
        return score(data, assessment, patients=pats).death_day.values

    np.testing.assert_array_equal(deaths(changed, link), deaths(ds, link))
    scored_all = replace(link, exclude_irradiated=False)
    np.testing.assert_array_equal(deaths(changed, scored_all), deaths(ds, scored_all))
    reading = replace(scored_all, survival=TumourGrowthSurvival(irradiated_lesions_in_sld=True))
    assert not np.array_equal(deaths(changed, reading), deaths(ds, reading))
    burden = trial["split"].assessment(trial["base"])
    assert isinstance(burden.survival, SurvivalModel)
    assert not np.array_equal(deaths(changed, burden), deaths(ds, burden))


def test_post_progression_survival_correlates_with_os_as_published(trial):
    """Among patients who progress and die within follow-up, the correlation of post-progression survival with OS
    under the link: 0.77 (pembrolizumab alone) and 0.95 (SBRT). Published: r = 0.85, second-line nivolumab
    (Imai 2021 Thorac Cancer 12:1171) and 0.76, first-line pembrolizumab (https://acemap.info/paper/291622260).
    The burden hazard (v1 fit) gives 0.66 and 0.80."""
    eps, _, _ = _os(trial, replace(trial["base"], survival=TumourGrowthSurvival()))
    for arm, expected in (("pembro", 0.77), ("sbrt", 0.95)):
        ep = eps[arm]
        prog, death = ep.progression_day.values[0], ep.death_day.values[0]
        both = np.isfinite(prog) & np.isfinite(death) & (death <= END)
        r = np.corrcoef(death[both] - prog[both], death[both] - START)[0, 1]
        assert r == pytest.approx(expected, abs=0.01), arm
        assert 0.7 < r < 1.0


def test_fitted_survival_fields_reach_the_link_through_run_arm(trial):
    """``survival__intercept_log_day`` in the values of :func:`run_arm` sets the link's intercept (the same
    mechanism as ``survival__base_hazard_per_day`` for the burden hazard). The fields name the death model: the v1
    fit's ``survival__base_hazard_per_day`` selects the burden hazard even on an assessment with the link; fields
    of both models at once, or a field of neither, are refused."""
    values = {k: v for k, v in trial["fit"].all_values().items() if not k.startswith("survival__")}
    values["survival__intercept_log_day"] = CALIBRATED_INTERCEPT
    assessment = replace(trial["base"], survival=TumourGrowthSurvival())
    run = run_arm(
        trial["model"],
        trial["plans"]["pembro"],
        trial["patients"],
        assessment,
        values,
        start_day=START,
        t_end_day=END,
        variability_names=tuple(trial["patients"].variability),
        name="pembro",
    )
    assert run.scored.assessment.survival == TumourGrowthSurvival(intercept_log_day=CALIBRATED_INTERCEPT)
    direct = score(trial["runs"]["pembro"].simulation, run.scored.assessment, patients=trial["patients"])
    np.testing.assert_array_equal(run.scored.endpoints.death_day.values, direct.death_day.values)
    kw = {"start_day": START, "t_end_day": END, "variability_names": tuple(trial["patients"].variability)}
    args = (trial["model"], trial["plans"]["pembro"], trial["patients"], assessment)
    burden = run_arm(*args, trial["fit"].all_values(), name="pembro", **kw)
    hazard = trial["fit"].values["survival__base_hazard_per_day"]
    assert burden.scored.assessment.survival == SurvivalModel(base_hazard_per_day=hazard)
    mixed = trial["fit"].all_values() | {"survival__intercept_log_day": CALIBRATED_INTERCEPT}
    with pytest.raises(ab.ParameterError, match="base_hazard_per_day"):  # one death model per fit
        run_arm(*args, mixed, **kw)
    with pytest.raises(ab.ParameterError, match="survival-model field"):
        run_arm(*args, values | {"survival__intercept_log": 6.0}, **kw)


def test_os_is_evaluable_without_a_tumour_burden_output(trial):
    """A model without a ``tumour_burden`` role: no deaths under the burden hazard (OS NaN), deaths from the SLD
    under the link (the default death model), with a note saying so."""
    ds = trial["runs"]["pembro"].simulation.copy()
    roles = json.loads(ds.attrs["roles"])
    roles.pop("tumour_burden")
    ds.attrs["roles"] = json.dumps(roles)
    plain = score(ds, replace(trial["base"], survival=SurvivalModel()), patients=trial["patients"])
    assert np.all(np.isnan(plain.os_day.values))
    assert trial["base"].survival == TumourGrowthSurvival()  # the default
    linked = score(ds, trial["base"], patients=trial["patients"])
    assert np.all(np.isfinite(linked.os_day.values)) and linked.os_event.values.any()
    assert any("tumour-growth-rate link" in n for n in json.loads(linked.attrs["notes"]))


def test_a_calibration_fits_the_links_fields_with_the_bounds_it_declares(nsclc3):
    """A calibration problem of the default model scores its arms with the link (the default death model):
    ``survival__intercept_log_day`` starts at the published 6.94 within the declared bounds (5, 9) and moves the OS
    (and, through deaths, PFS) residuals, not the ORR; fields of two death models at once, or of none, are
    refused."""
    from pathlib import Path

    from abscopal.calibrate.objective import CalibrationProblem, default_parameters
    from abscopal.trials import load_targets

    targets = load_targets(Path(__file__).resolve().parents[2] / "fits" / "targets" / "pembro_rt.toml")
    problem = CalibrationProblem(targets=(targets,), model=nsclc3, n_patients_per_arm=30, seed=1)
    assert all(s.assessment.survival == TumourGrowthSurvival() for s in problem._setups.values())
    params = default_parameters(problem, ["survival__intercept_log_day"])
    p = params["survival__intercept_log_day"]
    assert (p.value, p.min, p.max) == (6.94, 5.0, 9.0)
    base = problem.residuals_from_values({})
    shorter = problem.residuals_from_values({"survival__intercept_log_day": 5.6})
    os_rows = [i for i, k in enumerate(problem.keys) if k[2] in ("median_os_month", "hr_os")]
    orr_rows = [i for i, k in enumerate(problem.keys) if k[2] == "orr"]
    assert not np.allclose(base[os_rows], shorter[os_rows])
    np.testing.assert_array_equal(base[orr_rows], shorter[orr_rows])
    with pytest.raises(ab.ParameterError, match="base_hazard_per_day"):
        problem.residuals_from_values({"survival__intercept_log_day": 5.6, "survival__base_hazard_per_day": 0.002})
    with pytest.raises(ab.ParameterError, match="survival-model field"):
        problem.residuals_from_values({"survival__base_hazard": 0.002})
