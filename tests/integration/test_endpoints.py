"""score(): trial scoring of simulated patients, on populations whose answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import abscopal as ab
from abscopal.endpoints import (
    ExplicitScans,
    PneumonitisModel,
    RecistRules,
    SurvivalModel,
    TrialAssessment,
    score,
    trial_scans,
)
from abscopal.errors import ParameterError, ScheduleError
from abscopal.radiobiology import eqd2, lkb_ntcp

NO_DEATH = SurvivalModel(base_hazard_per_day=0.0, background_per_day=0.0)


def _pem():
    return ab.drug_regimen("pembrolizumab_200mg_q3w")


def _sim(arms, n=30, seed=5, parameters=None, mechanisms_off=(), t_end_day=365.0):
    pop = ab.VirtualPopulation(n_patients=n, variability=ab.default_variability(), seed=seed)
    return ab.simulate(
        ab.nsclc_model(3),
        arms,
        population=pop,
        t_end_day=t_end_day,
        output_interval_day=7.0,
        parameters=parameters,
        mechanisms_off=mechanisms_off,
    )


@pytest.fixture(scope="module")
def untreated():
    return _sim({"none": ab.TreatmentPlan()}, mechanisms_off=("new_lesions",))


def test_no_treatment_gives_no_response_and_pfs_at_the_first_scan_after_20pct_growth(untreated):
    ep = score(untreated, TrialAssessment(survival=NO_DEATH))
    assert float(ep.orr.values[0]) == 0.0
    # independent check: first scan at which the sum of all three lesions is >= 120% of the running
    # minimum and >= 5 mm above it (no new lesions, no deaths in this population)
    visits = ep.visit_day.values
    d = untreated.lesion_diameter.sel(arm="none", time=visits).sum("lesion").values  # (patient, visit)
    start = float(untreated.time.values[0])
    for p in range(d.shape[0]):
        nadir = np.minimum.accumulate(d[p])
        grown = (d[p, 1:] >= 1.2 * nadir[:-1] - 1e-9) & (d[p, 1:] - nadir[:-1] >= 5.0 - 1e-9)
        if grown.any():
            expected = visits[1 + int(np.argmax(grown))] - start
            assert bool(ep.pfs_event.values[0, p])
            assert float(ep.pfs_day.values[0, p]) == pytest.approx(expected, abs=1e-9)
        else:
            assert not bool(ep.pfs_event.values[0, p])


@pytest.mark.filterwarnings("ignore::abscopal.errors.StiffFallbackWarning")
def test_a_drug_with_huge_effect_gives_orr_near_one():
    """A kill far above the fit's (the stiff Rodas4 fallback takes the patients whose tumours collapse)."""
    ds = _sim(
        {"pembro": ab.TreatmentPlan(drug=_pem())},
        parameters={"max_kill_per_day": 0.3, "kill_half_sat_relative": 0.25},
    )
    ep = score(ds, TrialAssessment(survival=NO_DEATH))
    assert float(ep.orr.values[0]) >= 0.9


def test_endpoints_are_deterministic_and_patient_k_is_stable():
    arms = {
        "pembro": ab.TreatmentPlan(drug=_pem()),
        "sbrt": ab.TreatmentPlan(drug=_pem(), radiation=(ab.radiation_regimen("sbrt_24gy_3fx", start_day=-7),)),
    }
    small, big = _sim(arms, n=6), _sim(arms, n=24)
    a, b = score(small), score(small)
    xr.testing.assert_identical(a, b)
    big_ep = score(big)
    for var in ("pfs_day", "pfs_event", "os_day", "best_percent_change", "new_lesion_day", "best_overall_response"):
        np.testing.assert_array_equal(a[var].values, big_ep[var].isel(patient=slice(0, 6)).values)


def test_summaries_agree_with_the_per_patient_values(untreated):
    ep = score(untreated)
    from abscopal.endpoints.survival import kaplan_meier

    km = kaplan_meier(ep.pfs_day.values[0], ep.pfs_event.values[0])
    assert float(ep.median_pfs_day.values[0]) == km.median_day()
    assert float(ep.dcr.values[0]) == pytest.approx(ep.disease_control.values[0].mean(), abs=1e-15)
    assert np.all(ep.os_day.values >= ep.pfs_day.values - 1e-9)  # death ends PFS too


def test_hazard_ratio_favours_the_better_arm():
    arms = {"none": ab.TreatmentPlan(), "pembro": ab.TreatmentPlan(drug=_pem())}
    ep = score(_sim(arms, n=40, parameters={"max_kill_per_day": 0.2}))
    assert np.isnan(ep.hr_pfs.values[0])  # the reference arm
    assert float(ep.hr_pfs_upper.values[1]) < 1.0


def test_pneumonitis_is_the_lkb_ntcp_times_the_concurrency_factor():
    model = PneumonitisModel()
    sbrt_conc = ab.radiation_regimen("conv_60gy_30fx", start_day=0, mean_lung_dose_gy=18.0)
    sbrt_seq = ab.radiation_regimen("conv_60gy_30fx", start_day=-120, mean_lung_dose_gy=18.0)
    arms = {
        "concurrent": ab.TreatmentPlan(drug=_pem(), radiation=(sbrt_conc,)),
        "sequential": ab.TreatmentPlan(drug=_pem(), radiation=(sbrt_seq,)),
    }
    ep = score(_sim(arms, n=3, t_end_day=200.0))
    base = float(lkb_ntcp(float(eqd2(18.0, 30, 3.0)), td50_gy=30.8, m=0.37))  # Seppenwoolde 2003
    assert float(ep.pneumonitis_probability.sel(arm="concurrent")) == pytest.approx(
        base * model.concurrent_multiplier, rel=1e-12
    )
    assert float(ep.pneumonitis_probability.sel(arm="sequential")) == pytest.approx(base, rel=1e-12)


def test_one_concurrency_rule_any_drug_dose_within_the_window_of_any_fraction():
    model = PneumonitisModel()
    maintenance = ab.radiation_regimen("sbrt_50gy_4fx", start_day=84, mean_lung_dose_gy=6.0)
    long_course = ab.radiation_regimen("conv_60gy_30fx", start_day=-45, mean_lung_dose_gy=15.0)  # ends ~day -6
    arms = {
        "maintenance": ab.TreatmentPlan(drug=_pem(), radiation=(maintenance,)),
        "long_course": ab.TreatmentPlan(drug=_pem(), radiation=(long_course,)),
        "rt_only": ab.TreatmentPlan(radiation=(maintenance,)),
    }
    ds = _sim(arms, n=2, t_end_day=200.0)
    ep = score(ds)
    for arm, plan in arms.items():  # the endpoints and the studies (plan_probability) use the same rule
        assert float(ep.pneumonitis_probability.sel(arm=arm)) == model.plan_probability(plan, 200.0)
    sbrt = model.ntcp(6.0, 4)
    assert float(ep.pneumonitis_probability.sel(arm="maintenance")) == pytest.approx(sbrt * 1.8, rel=1e-12)
    assert float(ep.pneumonitis_probability.sel(arm="rt_only")) == pytest.approx(sbrt, rel=1e-12)  # no drug
    assert float(ep.pneumonitis_probability.sel(arm="long_course")) == pytest.approx(
        model.ntcp(15.0, 30) * 1.8, rel=1e-12
    )
    assert float(ds.rt_drug_gap_day.sel(arm="maintenance")) == 0.0  # a fraction on a dosing day
    assert np.isnan(float(ds.rt_drug_gap_day.sel(arm="rt_only")))


def test_rt_drug_gap_is_the_smallest_interval_between_a_fraction_and_a_dose():
    from abscopal.endpoints.toxicity import rt_drug_gap_day

    assert rt_drug_gap_day([-10.0, -9.0], [0.0, 21.0]) == 9.0
    assert rt_drug_gap_day([30.0], [0.0, 21.0, 42.0]) == 9.0
    assert np.isnan(rt_drug_gap_day([], [0.0])) and np.isnan(rt_drug_gap_day([1.0], []))
    model = PneumonitisModel()
    assert model.interaction(30.0) == 1.8 and model.interaction(30.5) == 1.0 and model.interaction(np.nan) == 1.0


def test_fifteen_fractions_lower_the_lymphocyte_nadir_more_than_four():
    arms = {
        "sbrt": ab.TreatmentPlan(drug=_pem(), radiation=(ab.radiation_regimen("sbrt_50gy_4fx"),)),
        "conv": ab.TreatmentPlan(drug=_pem(), radiation=(ab.radiation_regimen("conv_45gy_15fx"),)),
    }
    ep = score(_sim(arms, n=5, t_end_day=200.0))
    assert np.all(ep.lymphocyte_nadir.sel(arm="conv").values < ep.lymphocyte_nadir.sel(arm="sbrt").values)


def test_orr_at_a_fixed_visit_uses_that_scan(untreated):
    scans = trial_scans(float(untreated.time.values[0]), end_day=365.0)
    ep = score(untreated, TrialAssessment(scans=scans, orr_visit_day=84.0))
    k = int(np.searchsorted(ep.visit_day.values, 84.0))
    expected = np.isin(ep.response.values[0, :, k], ["CR", "PR"])
    np.testing.assert_array_equal(ep.objective_response.values[0], expected)


def test_every_variable_has_units_and_long_name(untreated):
    ep = score(untreated)
    for name in list(ep.data_vars) + list(ep.coords):
        assert "units" in ep[name].attrs and "long_name" in ep[name].attrs, name


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"scans": ab.endpoints.scans.ExplicitScans(days=(-7.0, 40.0))},
            ScheduleError,
            "not on the simulation's time grid",
        ),
        ({"lesion_sites": ("lung", "lymph_nod", "liver")}, ParameterError, "did you mean 'lymph_node'"),
        ({"orr_visit_day": 5000.0}, ScheduleError, "after the last scan"),
    ],
)
def test_bad_assessments_raise_clear_errors(untreated, kwargs, error, match):
    with pytest.raises(error, match=match):
        score(untreated, TrialAssessment(**kwargs))


def test_all_lesions_irradiated_and_excluded_is_an_error():
    rt = ab.radiation_regimen("sbrt_24gy_3fx", start_day=-7, target_lesions=(0, 1, 2))
    ds = _sim({"all": ab.TreatmentPlan(drug=_pem(), radiation=(rt,))}, n=2, t_end_day=100.0)
    with pytest.raises(ParameterError, match="every lesion is irradiated"):
        score(ds)


def test_duration_of_response_is_defined_for_responders_only():
    ep = score(_sim({"pembro": ab.TreatmentPlan(drug=_pem())}, n=30, parameters={"max_kill_per_day": 0.3}))
    resp = ep.objective_response.values[0]
    dor = ep.duration_of_response_day.values[0]
    assert resp.any() and (~resp).any()  # the test population has both
    assert np.all(np.isnan(dor[~resp]))
    assert np.all(dor[resp] >= 0.0)


def test_virtual_patients_drive_sites_absent_lesions_and_event_draws():
    from abscopal.patients import MIXES, draw_patients

    vp = draw_patients(MIXES["pembro_rt"].capped(3), 25, n_lesions=3, seed=9)
    sbrt = ab.radiation_regimen("sbrt_24gy_3fx", start_day=-7, target_lesions=(0,))
    ds = ab.simulate(
        ab.nsclc_model(3),
        {"sbrt+pembro": ab.TreatmentPlan(drug=_pem(), radiation=(sbrt,))},
        population=vp.population(),
        t_end_day=365.0,
        output_interval_day=7.0,
    )
    ep = score(ds, patients=vp)
    again = score(ds, patients=vp)
    xr.testing.assert_identical(ep, again)
    # the new-lesion day is where H crosses the patient's stored Exp(1) draw
    h = ds.H.values[0]
    for p in range(25):
        day = float(ep.new_lesion_day.values[0, p])
        if np.isfinite(day):
            k = int(np.searchsorted(ds.time.values, day))
            assert h[p, k - 1] <= vp.event_draws[p, 0] <= h[p, k] + 1e-12
        else:
            assert h[p, -1] < vp.event_draws[p, 0]
    with pytest.raises(ParameterError, match="pass the VirtualPatients"):
        score(ds, patients=vp.subset(5))


def test_km_confidence_bands_bracket_the_estimate(untreated):
    ep = score(untreated)
    for key in ("pfs", "os"):
        est, lo, hi = (ep[f"km_{key}{s}"].values for s in ("", "_lower", "_upper"))
        ok = np.isfinite(lo) & np.isfinite(hi)
        assert np.all(lo[ok] <= est[ok] + 1e-12) and np.all(est[ok] <= hi[ok] + 1e-12)


# ---- scoring by observable roles: any model, not only the default one -----------------------------------------
MOUSE_SCANS = (7.0, 14.0, 21.0, 28.0, 35.0)
# CT26 tumours are millimetres across: measurable from 2 mm, progression needs +1 mm (caliper scale)
MOUSE_RULES = RecistRules(measurable_mm=2.0, gone_mm=0.5, pd_absolute_mm=1.0)


def _mouse_assessment(**changes):
    kw = {
        "scans": ExplicitScans(days=MOUSE_SCANS),
        "rules": MOUSE_RULES,
        "exclude_irradiated": False,
        "lesion_sites": ("soft_tissue",),
    }
    return TrialAssessment(**(kw | changes))


@pytest.fixture(scope="module")
def kosinsky():
    """Kosinsky 2018 (one CT26 tumour, no lymphocytes, no new lesions): control vs RT 2 x 0.5 Gy + anti-PD-L1."""
    from abscopal.model.library.kosinsky2018 import kosinsky2018

    rt = ab.RadiationCourse(dose_per_fraction_gy=0.5, n_fractions=2, start_day=7.0)
    arms = [
        ab.Arm(name="control", plan=ab.TreatmentPlan()),
        ab.Arm(name="RT+anti-PD-L1", plan=ab.TreatmentPlan(radiation=(rt,)), parameters={"mAb": 10.0}),
    ]
    pop = ab.VirtualPopulation(n_patients=10, variability={"S_L": ab.LogNormal(omega=0.696)}, seed=1)
    return ab.simulate(kosinsky2018(), arms, population=pop, t_end_day=35.0, output_interval_day=1.0)


def test_the_kosinsky_model_is_scored_through_the_same_public_call(kosinsky):
    ep = ab.score(kosinsky, _mouse_assessment(survival=NO_DEATH))
    # independent check on the sphere-equivalent diameter of the tumour volume (role lesion_volume)
    d = np.cbrt(6.0 * kosinsky.total_volume.sel(time=list(MOUSE_SCANS)).values / np.pi)  # (arm, patient, visit)
    start = float(kosinsky.time.values[0])
    for a in range(2):
        for p in range(d.shape[1]):
            nadir = np.minimum.accumulate(d[a, p])
            grown = (d[a, p, 1:] >= 1.2 * nadir[:-1] - 1e-9) & (d[a, p, 1:] - nadir[:-1] >= 1.0 - 1e-9)
            shrunk = d[a, p, 1:] <= 0.7 * d[a, p, 0] + 1e-9
            if grown.any():
                expected = MOUSE_SCANS[1 + int(np.argmax(grown))] - start
                assert bool(ep.pfs_event.values[a, p]) and float(ep.pfs_day.values[a, p]) == pytest.approx(expected)
                shrunk = shrunk[: int(np.argmax(grown))]
            else:
                assert not bool(ep.pfs_event.values[a, p])
            assert bool(ep.objective_response.values[a, p]) == bool(shrunk.any())
    assert float(ep.orr.sel(arm="control")) == 0.0 and float(ep.orr.sel(arm="RT+anti-PD-L1")) == 1.0
    assert float(ep.median_pfs_day.sel(arm="control")) == pytest.approx(14.0 - start)
    # the roles the model lacks: no new lesions, no lymphocyte nadir, each with a note
    assert np.all(np.isinf(ep.new_lesion_day.values)) and np.all(np.isnan(ep.lymphocyte_nadir.values))
    notes = " ".join(json.loads(ep.attrs["notes"]))
    assert "'new_lesion_hazard'" in notes and "'lymphocytes'" in notes and "'total_volume'" in notes


def test_kosinsky_overall_survival_comes_from_its_tumour_burden_role(kosinsky):
    ep = ab.score(kosinsky, _mouse_assessment())
    deaths = ep.os_event.values.sum(axis=1)
    assert deaths[0] > deaths[1]  # the growing control tumours raise the death hazard
    assert np.isfinite(float(ep.median_os_day.sel(arm="control")))


def test_a_model_without_a_tumour_burden_role_has_no_overall_survival(kosinsky):
    """With the burden hazard (model v1's death model); the default TGI-OS link reads the SLD instead."""
    ds = kosinsky.copy()
    ds.attrs["roles"] = json.dumps({"lesion_volume": "total_volume"})
    ep = ab.score(ds, _mouse_assessment(survival=SurvivalModel()))
    assert np.all(np.isnan(ep.os_day.values)) and np.all(np.isnan(ep.median_os_day.values))
    assert not ep.os_event.values.any()
    no_death = ab.score(kosinsky, _mouse_assessment(survival=NO_DEATH))
    for name in ("pfs_day", "pfs_event", "duration_of_response_day", "objective_response"):
        np.testing.assert_array_equal(ep[name].values, no_death[name].values)
    assert "'tumour_burden'" in ep.attrs["notes"]


def test_a_model_without_a_lesion_size_role_is_an_error(kosinsky):
    ds = kosinsky.copy()
    ds.attrs["roles"] = json.dumps({"tumour_burden": "total_volume"})
    with pytest.raises(ParameterError, match="no 'lesion_diameter' or 'lesion_volume' role"):
        ab.score(ds, _mouse_assessment())


def test_a_role_whose_variable_was_not_simulated_is_named(untreated):
    with pytest.raises(ParameterError, match=r"dataset lacks 'H', the model's 'new_lesion_hazard' output"):
        score(untreated.drop_vars("H"))


def test_irradiated_lesions_from_an_rt_dose_role_match_those_from_the_plan(untreated):
    plan = untreated.copy()
    plan["rt_dose_gy"] = plan.rt_dose_gy.copy(data=np.array([[0.0, 24.0, 0.0]]))
    role = untreated.copy()
    dose = xr.zeros_like(untreated.lesion_diameter)
    dose[:, :, 1, 10:] = 24.0  # lesion 1 irradiated from week 10
    role["cumulative_dose"] = dose
    role.attrs["roles"] = json.dumps(json.loads(untreated.attrs["roles"]) | {"rt_dose": "cumulative_dose"})
    a, b = score(plan), score(role)
    xr.testing.assert_equal(a, b)
    assert not np.array_equal(a.sum_of_diameters.values, score(untreated).sum_of_diameters.values)
