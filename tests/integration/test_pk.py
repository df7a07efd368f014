"""Checkpoint-drug PK of the default model: exact modal form vs ODE form vs published exposure."""

from __future__ import annotations

import numpy as np
import pytest

import abscopal as ab
from abscopal.errors import ParameterError

_TIMES = np.array([0.0, 1.0, 20.999999, 21.0, 41.999999, 42.0, 100.0, 365.0])


def _pembro_run(pk: str):
    pem = ab.drug_regimen("pembrolizumab_200mg_q3w")
    arms = {"pembro": ab.TreatmentPlan(drug=pem)}
    pop = ab.VirtualPopulation(n_patients=4, variability=ab.default_variability(), seed=11)
    opts = ab.SolverOptions(rtol=1e-10, atol_scale=1e-6)
    kw = dict(population=pop, solver=opts, output_times_day=_TIMES, t_end_day=365.0)
    return ab.simulate(ab.nsclc_model(3, pk=pk), arms, **kw)


@pytest.fixture(scope="module")
def pembro_analytic():
    return _pembro_run("analytic")


@pytest.mark.slow  # compiles the ODE-PK variant of the NSCLC model (40 s cold); runs in CI's slow stage
def test_analytic_pk_equals_ode_pk(pembro_analytic):
    analytic, ode = pembro_analytic, _pembro_run("ode")
    c_a, c_o = analytic.drug_concentration.values, ode.drug_concentration.values
    np.testing.assert_allclose(c_a, c_o, rtol=1e-8)  # both exact up to the ODE solver's rtol 1e-10
    for var in ("viable_volume", "E", "pdl1", "receptor_occupancy"):
        np.testing.assert_allclose(analytic[var].values, ode[var].values, rtol=1e-6, atol=1e-9)


def test_pembrolizumab_exposure_matches_published_derivation(pembro_analytic):
    # derived independently [D] (scipy solve_ivp of the Ahamadi 2017 model at its reference covariates, 200 mg
    # q3w, bolus):
    # Cmax/Ctrough dose 1 57.5/12.7 ug/mL, dose 2 70.2/20.0 ug/mL (values rounded to 0.1)
    analytic = pembro_analytic
    # the population varies tumour/immune parameters only, so PK is the typical patient's
    c = analytic.drug_concentration.sel(arm="pembro", patient=0)
    assert float(c.sel(time=0.0)) == pytest.approx(57.5, abs=0.05)
    assert float(c.sel(time=20.999999)) == pytest.approx(12.7, abs=0.05)
    assert float(c.sel(time=21.0)) == pytest.approx(70.2, abs=0.05)
    assert float(c.sel(time=41.999999)) == pytest.approx(20.0, abs=0.05)


def test_analytic_pk_refuses_time_varying_clearance():
    niv = ab.drug_regimen("nivolumab_240mg_q2w")
    with pytest.raises(ParameterError, match=r"pk_cl_time_emax.*pk='ode'"):
        ab.simulate(ab.nsclc_model(1), {"niv": ab.TreatmentPlan(drug=niv)}, t_end_day=30.0)


@pytest.mark.slow  # needs the ODE-PK variant (time-varying clearance; 35 s cold compile); runs in CI's slow stage
def test_nivolumab_time_varying_clearance_lowers_clearance_over_time():
    # Bajaj 2017: clearance falls by about 25% (Emax -0.295) with T50 58.75 d, so exposure
    # after a year is higher than with the baseline clearance held constant
    niv = ab.drug_regimen("nivolumab_240mg_q2w")
    model = ab.nsclc_model(3, pk="ode")  # same kernel as test_analytic_pk_equals_ode_pk
    opts = ab.SolverOptions(rtol=1e-9, atol_scale=1e-3)
    times = np.array([0.0, 13.999999, 363.999999])
    tv = ab.simulate(model, {"niv": ab.TreatmentPlan(drug=niv)}, solver=opts, output_times_day=times, t_end_day=364.0)
    const = ab.simulate(
        model,
        [ab.Arm(name="niv", plan=ab.TreatmentPlan(drug=niv), parameters={"pk_cl_time_emax": 0.0})],
        solver=opts,
        output_times_day=times,
        t_end_day=364.0,
    )
    first_trough = tv.drug_concentration.values[0, 0, 1], const.drug_concentration.values[0, 0, 1]
    assert first_trough[0] == pytest.approx(first_trough[1], rel=2e-3)  # CL change negligible on day 14
    late_tv, late_const = tv.drug_concentration.values[0, 0, 2], const.drug_concentration.values[0, 0, 2]
    assert late_tv > 1.2 * late_const  # steady-state trough rises with the lower clearance
