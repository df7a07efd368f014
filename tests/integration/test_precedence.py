"""One precedence for parameter values, lowest first: model defaults < the arm's drug PK < the fit's typical
values < a scenario's ``[parameters]`` (``simulate(parameters=...)``) < ``[arm.parameters]`` (``Arm.parameters``).

Each layer is tested on the values the kernel actually received (``parameter_value``) and, for the drug PK, on the
simulated concentration, so a layer applied in the wrong order fails here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from abscopal.scenario import parse_scenario
from abscopal.simulate import Arm, simulate
from abscopal.treatment import DRUG_PK, TreatmentPlan, drug_regimen

CL = "pk_cl_l_per_day"
DURVA_CL = DRUG_PK["durvalumab"].cl_l_per_day


def _value(ds, arm: str, name: str) -> float:
    return float(ds["parameter_value"].sel(arm=arm, parameter=name).values[0])


def _run(model, arms, **kwargs):
    return simulate(model, arms, t_end_day=28.0, output_interval_day=7.0, variables=("drug_concentration",), **kwargs)


@pytest.fixture(scope="module")
def durva():
    return TreatmentPlan(drug=drug_regimen("durvalumab_1500mg_q4w"))


def test_drug_pk_overrides_the_model_default(nsclc3, durva):
    ds = _run(nsclc3, [Arm(name="durva", plan=durva), Arm(name="none", plan=TreatmentPlan())])
    assert DURVA_CL != nsclc3.spec.parameter(CL).default
    assert _value(ds, "durva", CL) == DURVA_CL
    assert _value(ds, "none", CL) == nsclc3.spec.parameter(CL).default


def test_parameters_override_the_drug_pk_in_every_arm(nsclc3, durva):
    base = _run(nsclc3, [Arm(name="durva", plan=durva)])
    ds = _run(nsclc3, [Arm(name="durva", plan=durva), Arm(name="none", plan=TreatmentPlan())], parameters={CL: 0.6})
    assert _value(ds, "durva", CL) == 0.6
    assert _value(ds, "none", CL) == 0.6
    # the kernel saw it: faster clearance, lower trough before the second dose (day 28)
    c_base = float(base["drug_concentration"].sel(arm="durva").isel(patient=0).sel(time=21.0))
    c_fast = float(ds["drug_concentration"].sel(arm="durva").isel(patient=0).sel(time=21.0))
    assert c_fast < 0.8 * c_base
    assert json.loads(ds.attrs["provenance"])["parameter_overrides"] == {CL: 0.6}


def test_arm_parameters_override_parameters(nsclc3, durva):
    ds = _run(
        nsclc3,
        [Arm(name="durva", plan=durva, parameters={CL: 0.5}), Arm(name="other", plan=durva)],
        parameters={CL: 0.6},
    )
    assert _value(ds, "durva", CL) == 0.5
    assert _value(ds, "other", CL) == 0.6


def _scenario(**tables):
    data = {
        "title": "precedence",
        "model": {"name": "nsclc", "n_lesions": 3},
        "simulation": {"t_end_day": 28, "output_interval_day": 7},
        "population": {"n_patients": 1, "seed": 0, "variability": {}},
        "arm": [{"name": "durva", "drug": "durvalumab_1500mg_q4w", "parameters": tables.pop("arm", {})}],
    }
    return parse_scenario(data | tables)


def test_scenario_layers_fit_then_parameters_then_arm(nsclc3):
    fitted = _scenario()  # the shipped fit's typical values
    assert fitted.fit is not None and "max_kill_per_day" in fitted.parameters
    fit_value = fitted.parameters["max_kill_per_day"]
    assert fit_value != nsclc3.spec.parameter("max_kill_per_day").default

    over = _scenario(parameters={"max_kill_per_day": 0.07, CL: 0.6})
    assert over.parameters["max_kill_per_day"] == 0.07  # [parameters] over the fit
    ds = simulate(nsclc3, over.arms, **over.simulate_kwargs())
    assert _value(ds, "durva", "max_kill_per_day") == 0.07
    assert _value(ds, "durva", CL) == 0.6  # [parameters] over the drug's PK

    arm = _scenario(parameters={"max_kill_per_day": 0.07}, arm={"max_kill_per_day": 0.08})
    ds = simulate(nsclc3, arm.arms, **arm.simulate_kwargs())
    assert _value(ds, "durva", "max_kill_per_day") == 0.08  # [arm.parameters] over [parameters]
    assert _value(ds, "durva", CL) == DURVA_CL  # and the drug's PK over the model default

    plain = simulate(nsclc3, fitted.arms, **fitted.simulate_kwargs())
    assert _value(plain, "durva", "max_kill_per_day") == pytest.approx(fit_value, rel=0, abs=0)
    assert np.isfinite(plain["drug_concentration"].values).all()


def test_the_model_pk_defaults_come_from_the_drug_table(nsclc3_spec):
    """One source for each PK value: the model's defaults are pembrolizumab's entry of DRUG_PK."""
    pembro = DRUG_PK["pembrolizumab"].as_parameters()
    assert pembro  # the constant-clearance drug leaves out the time-shape parameters
    for name, value in pembro.items():
        assert nsclc3_spec.parameter(name).default == value, name
    nivo = DRUG_PK["nivolumab"]
    assert nsclc3_spec.parameter("pk_cl_time_t50_day").default == nivo.cl_time_t50_day
    assert nsclc3_spec.parameter("pk_cl_time_hill").default == nivo.cl_time_hill
