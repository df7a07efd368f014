"""Pneumonitis in the fit: ``ntcp__`` values fitted to the toxicity-only cohorts of ``fits/targets/pneumonitis.toml``
(predicted from the plans, no simulation), saved in the fit, and carried into study intervals.

The pneumonitis-only problems simulate nothing (so they take milliseconds); the joint-objective test simulates two
PEMBRO-RT arms of 12 patients and the study test one cell of 4 patients, on the session's cached kernel.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from abscopal.calibrate import CalibrationProblem, calibrate, default_parameters
from abscopal.calibrate.objective import NTCP_FREE
from abscopal.endpoints.outcomes import DEFAULT_FIT_OUTCOMES, OUTCOMES, PNEUMONITIS_OUTCOMES
from abscopal.endpoints.toxicity import PneumonitisModel
from abscopal.errors import ParameterError
from abscopal.fitted.format import Fit
from abscopal.fitted.values import split_values
from abscopal.studies import parse_study, run_study, summary_table
from abscopal.studies.run import prepare_study
from abscopal.trials import load_targets

TARGETS = Path(__file__).resolve().parents[2] / "fits" / "targets"
TRUTH = {"ntcp__td50_gy": 22.0, "ntcp__concurrent_multiplier": 4.0}
FREE = tuple(TRUTH)  # both identified by exact synthetic rates (NTCP_FREE fits the factor alone on the real ones)


@pytest.fixture(scope="module")
def tox(nsclc3_spec) -> CalibrationProblem:
    return CalibrationProblem(
        targets=(load_targets(TARGETS / "pneumonitis.toml"),), model=nsclc3_spec, outcomes=PNEUMONITIS_OUTCOMES
    )


def _lkb(mld_gy: float, n: int, td50: float, m: float = 0.37, ab: float = 3.0) -> float:
    """Independent reference: LKB NTCP of the EQD2 (alpha/beta 3 Gy) mean lung dose (Seppenwoolde 2003 form)."""
    eqd2 = mld_gy * (mld_gy / n + ab) / (2.0 + ab)
    return float(norm.cdf((eqd2 - td50) / (m * td50)))


def test_toxicity_cohorts_are_predicted_from_their_plans(tox):
    """Every irradiated cohort with a grade >= 2 / grade 2 / grade 3 outcome is a residual; cohorts without RT are
    not (the model has no pneumonitis without lung dose); predictions match the LKB formula by hand."""
    assert tox.keys == [
        ("pneumonitis", "hwang2018_thoracic_rt", "pneumonitis_grade2plus"),
        ("pneumonitis", "tian2020_sbrt_ici", "pneumonitis_grade3"),
        ("pneumonitis", "tian2020_sbrt_alone", "pneumonitis_grade3"),
        ("pneumonitis", "von_reibnitz2018", "pneumonitis_grade2plus"),
        ("pneumonitis", "saito2021", "pneumonitis_grade2"),
        ("pneumonitis", "saito2021", "pneumonitis_grade3"),
    ]
    exposure = {e["arm"]: e for e in tox.toxicity_exposure}
    hwang, tian, alone = (
        exposure["hwang2018_thoracic_rt"],
        exposure["tian2020_sbrt_ici"],
        exposure["tian2020_sbrt_alone"],
    )
    assert hwang["mean_lung_dose_gy"] == pytest.approx(0.25 * 60) and hwang["mean_lung_dose_assumed"]
    assert not hwang["concurrent"] and hwang["rt_drug_gap_day"] > 30  # RT ended > 30 days before nivolumab
    assert tian["concurrent"] and tian["mean_lung_dose_gy"] == pytest.approx(0.10 * 50)
    assert alone["rt_drug_gap_day"] is None  # SBRT without a drug: no interaction (None, not NaN)
    pred = tox.predict(TRUTH)
    td50, k, f3 = TRUTH["ntcp__td50_gy"], TRUTH["ntcp__concurrent_multiplier"], PneumonitisModel().grade3_fraction
    assert pred[("pneumonitis", "hwang2018_thoracic_rt", "pneumonitis_grade2plus")] == pytest.approx(
        _lkb(15.0, 30, td50), rel=1e-12
    )
    assert pred[("pneumonitis", "tian2020_sbrt_ici", "pneumonitis_grade3")] == pytest.approx(
        f3 * k * _lkb(5.0, 5, td50), rel=1e-12
    )
    assert pred[("pneumonitis", "tian2020_sbrt_alone", "pneumonitis_grade3")] == pytest.approx(
        f3 * _lkb(5.0, 5, td50), rel=1e-12
    )
    assert pred[("pneumonitis", "saito2021", "pneumonitis_grade2")] == pytest.approx(
        (1 - f3) * k * _lkb(7.5, 10, td50), rel=1e-12
    )
    # the report value of a probability is the probability; the residual is the registry's binomial one
    report, smooth, res = tox.evaluate(TRUTH)
    assert report == smooth == pred
    obs = load_targets(TARGETS / "pneumonitis.toml").arm("von_reibnitz2018").outcomes[0]
    key = ("pneumonitis", "von_reibnitz2018", "pneumonitis_grade2plus")
    i = tox.keys.index(key)
    assert res[i] == pytest.approx((pred[key] - 0.06) / math.sqrt(0.06 * 0.94 / 79) * math.sqrt(obs.weight))


def test_grade_shares_add_up(tox):
    plan = next(iter(tox._toxicity.values())).plan
    model = PneumonitisModel(grade3_fraction=0.4)
    g2plus, g2, g3 = (
        OUTCOMES[n].of_plan(model, plan)
        for n in ("pneumonitis_grade2plus", "pneumonitis_grade2", "pneumonitis_grade3plus")
    )
    assert g2plus > 0 and g2 + g3 == pytest.approx(g2plus, rel=1e-12) and g3 == pytest.approx(0.4 * g2plus)


def test_ntcp_values_are_recovered_from_synthetic_cohorts(tox):
    """Rates generated at TRUTH on the shipped cohorts (same n, binomial SE) are fitted back from the defaults
    (TD50 30.8 Gy, factor 1.8) to within 0.1% (the targets are exact: chi-square ~ 0 at TRUTH)."""
    synthetic = replace(tox, targets=tox.synthetic_targets(TRUTH))
    assert np.allclose(synthetic.residuals_from_values(TRUTH), 0.0, atol=1e-12)
    params = default_parameters(synthetic, FREE)
    assert params["ntcp__td50_gy"].value == 30.8 and params["ntcp__concurrent_multiplier"].value == 1.8
    cal = calibrate(synthetic, params)
    for name, want in TRUTH.items():
        assert cal.values[name] == pytest.approx(want, rel=1e-3), name
        assert cal.stderr[name] is not None and 0 < cal.stderr[name] < 10 * want
    assert cal.chisqr < 1e-8
    assert [e["arm"] for e in cal.provenance["pneumonitis_exposure"]] == [
        "hwang2018_thoracic_rt",
        "tian2020_sbrt_ici",
        "tian2020_sbrt_alone",
        "von_reibnitz2018",
        "saito2021",
    ]


def test_bad_ntcp_names_and_values_fail_naming_them(tox, nsclc3_spec):
    with pytest.raises(ParameterError, match=r"'ntcp__td50'.*did you mean 'td50_gy'"):
        split_values(nsclc3_spec, {"ntcp__td50": 25.0})
    with pytest.raises(ParameterError, match=r"'ntcp__td50_gy' = -1.0: .*must be > 0"):
        split_values(nsclc3_spec, {"ntcp__td50_gy": -1.0})
    with pytest.raises(ParameterError, match=r"'ntcp__grade3_fraction' = 1.5: .*\[0, 1\]"):
        split_values(nsclc3_spec, {"ntcp__grade3_fraction": 1.5})
    with pytest.raises(ParameterError, match=r"'ntcp__m'.*finite"):
        split_values(nsclc3_spec, {"ntcp__m": math.nan})
    with pytest.raises(ParameterError, match="alpha_beta_lung_gy"):  # not a fittable field (named in the choices)
        default_parameters(tox, ("ntcp__alpha_beta_lung_gy",))
    with pytest.raises(ParameterError, match="concurrent_multiplier"):
        PneumonitisModel(concurrent_multiplier=-0.5)
    with pytest.raises(ParameterError, match="nothing to fit"):  # toxicity cohorts are fitted only when asked
        CalibrationProblem(targets=(load_targets(TARGETS / "pneumonitis.toml"),), model=nsclc3_spec)
    efficacy = CalibrationProblem(targets=(load_targets(TARGETS / "pembro_rt.toml"),), model=nsclc3_spec)
    with pytest.raises(ParameterError, match="move only pneumonitis outcomes"):  # a free value nothing identifies
        default_parameters(efficacy, ("max_kill_per_day", "ntcp__td50_gy"))


def test_cli_fits_the_ntcp_values_with_pneumonitis_outcomes(tmp_path, capsys):
    from abscopal.cli import main

    out = tmp_path / "ntcp.json"
    argv = ["fit", str(TARGETS / "pneumonitis.toml"), "--out", str(out), "--free", *NTCP_FREE]
    assert main([*argv, "--outcomes", "orrr"]) != 0
    assert "--outcomes orrr: not fittable" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--outcomes", *PNEUMONITIS_OUTCOMES]) == 0
    cal = Fit.load(out)
    assert set(cal.values) == set(NTCP_FREE) and all(cal.stderr[n] for n in NTCP_FREE)
    assert cal.provenance["outcomes"] == list(PNEUMONITIS_OUTCOMES)
    assert "ntcp__concurrent_multiplier" in capsys.readouterr().out


def test_joint_objective_reuses_the_simulation_when_only_ntcp_values_change(nsclc3, reachable_os_base, monkeypatch):
    """In a joint fit the pneumonitis residuals are those of the standalone problem, and changing only ``ntcp__``
    values simulates nothing (the efficacy residuals stay bit-identical)."""
    joint = CalibrationProblem(
        targets=(load_targets(TARGETS / "pembro_rt.toml"), load_targets(TARGETS / "pneumonitis.toml")),
        model=nsclc3,
        n_patients_per_arm=12,
        seed=1,
        base_parameters=reachable_os_base,
        outcomes=DEFAULT_FIT_OUTCOMES + PNEUMONITIS_OUTCOMES,
    )
    alone = CalibrationProblem(
        targets=(load_targets(TARGETS / "pneumonitis.toml"),), model=nsclc3, outcomes=PNEUMONITIS_OUTCOMES
    )
    calls = []
    real = CalibrationProblem._simulate_arm
    monkeypatch.setattr(
        CalibrationProblem, "_simulate_arm", lambda self, s, split: calls.append(1) or real(self, s, split)
    )
    tox = [i for i, k in enumerate(joint.keys) if k[0] == "pneumonitis"]
    eff = [i for i, k in enumerate(joint.keys) if k[0] != "pneumonitis"]
    first = joint.residuals_from_values({"max_kill_per_day": 0.08} | TRUTH)
    n_sim = len(calls)
    assert n_sim == 2  # the two PEMBRO-RT arms; the toxicity cohorts are not simulated
    second = joint.residuals_from_values({"max_kill_per_day": 0.08, "ntcp__td50_gy": 30.0})
    assert len(calls) == n_sim
    np.testing.assert_array_equal(first[eff], second[eff])
    np.testing.assert_allclose(first[tox], alone.residuals_from_values(TRUTH), rtol=1e-14)
    assert not np.allclose(first[tox], second[tox])
    joint.residuals_from_values({"max_kill_per_day": 0.09, "ntcp__td50_gy": 30.0})
    assert len(calls) == 2 * n_sim


def test_study_pneumonitis_interval_carries_the_fit_uncertainty(tox, tmp_path):
    """A study on a fit with ``ntcp__`` values and standard errors: each draw's pneumonitis risk is the LKB risk of
    that draw's values (by hand), so the interval has width (before the fix every draw gave the same risk)."""
    cal = calibrate(tox, default_parameters(tox, FREE))
    path = tmp_path / "ntcp.json"
    cal.save(path)
    design = parse_study(
        {
            "title": "pneumonitis interval",
            "fit": str(path),
            "population": {"mix": "pembro_rt", "n_patients": 4, "seed": 3},
            "simulation": {"t_end_day": 200},
            "uncertainty": {"n_draws": 6, "seed": 1},
            "axes": {"timing": ["concurrent"], "fractionation": ["sbrt_24gy_3fx"]},
        }
    )
    setup = prepare_study(design)
    ds = run_study(design)
    risk = ds.pneumonitis_risk.isel(timing=0, fractionation=0, site=0, drug=0).values
    for d, values in enumerate(setup.draws):  # every patient gets 24 Gy/3 to the lung primary on day 0 (concurrent)
        want = values["ntcp__concurrent_multiplier"] * _lkb(2.4, 3, values["ntcp__td50_gy"])
        assert risk[d] == pytest.approx(want, rel=1e-12), d
    assert setup.draws[0]["ntcp__td50_gy"] == cal.values["ntcp__td50_gy"]
    row = summary_table(ds)[0]
    assert row["pneumonitis_risk_upper"] - row["pneumonitis_risk_lower"] > 0.1 * row["pneumonitis_risk"]
    assert Fit.load(path).values == cal.values  # the ntcp values round-trip through the file


def test_simulate_endpoints_use_the_fits_ntcp_values(tox, tmp_path, capsys):
    """``abscopal simulate --endpoints`` on a scenario with a fit scores pneumonitis with the fit's ``ntcp__``
    values (the scenario gives the SBRT course a 4 Gy mean lung dose; RT on day -7 is within 30 days of dose 1)."""
    import xarray as xr

    from abscopal.cli import main

    synthetic = replace(tox, targets=tox.synthetic_targets(TRUTH))
    cal = calibrate(synthetic, default_parameters(synthetic, FREE))
    fit = tmp_path / "fit.json"
    cal.save(fit)
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        f"""title = "ntcp"
fit = "{fit}"
[simulation]
t_end_day = 120
[[arm]]
name = "sbrt+pembro"
drug = "pembrolizumab_200mg_q3w"
[[arm.radiation]]
regimen = "sbrt_24gy_3fx"
start_day = -7
mean_lung_dose_gy = 4.0
"""
    )
    out, ep_out = tmp_path / "o.nc", tmp_path / "ep.nc"
    argv = ["simulate", str(scenario), "--out", str(out), "--patients", "2", "--endpoints-out", str(ep_out)]
    assert main(argv) == 0
    capsys.readouterr()
    with xr.open_dataset(ep_out, engine="h5netcdf") as ep:
        got = float(ep.pneumonitis_probability.values[0])
    td50, k = cal.values["ntcp__td50_gy"], cal.values["ntcp__concurrent_multiplier"]
    assert got == pytest.approx(k * _lkb(4.0, 3, td50), rel=1e-12)
    assert got != pytest.approx(1.8 * _lkb(4.0, 3, 30.8), rel=1e-3)  # not the model defaults
