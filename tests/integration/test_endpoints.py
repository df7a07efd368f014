"""score(): trial scoring of simulated patients, on populations whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import abscopal as ab
from abscopal.endpoints import PneumonitisModel, SurvivalModel, TrialAssessment, score, trial_scans
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


def test_a_drug_with_huge_effect_gives_orr_near_one():
    ds = _sim(
        {"pembro": ab.TreatmentPlan(drug=_pem())}, parameters={"max_kill_per_day": 1.5, "kill_half_sat_ratio": 0.01}
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
