"""Bad input gives a clear error before any work is done.

"Before any work": the simulate() tests replace ``compile_model`` and ``solve`` in
``abscopal.simulate`` by functions that fail the test if called, and pass the uncompiled spec, so
an error raised only after compilation or integration started would be caught.
"""

from __future__ import annotations

import importlib
import math
import re

import numpy as np
import pytest

from abscopal.errors import ParameterError, ScheduleError, SolverError
from abscopal.population import LogNormal, VirtualPopulation
from abscopal.simulate import Arm, simulate
from abscopal.solver import SolverOptions
from abscopal.treatment import (
    DrugRegimen,
    Fraction,
    RadiationCourse,
    TreatmentPlan,
    drug_regimen,
    radiation_regimen,
)

# ``abscopal.simulate`` (the attribute) is the re-exported function, which shadows the submodule.
simulate_module = importlib.import_module("abscopal.simulate")
outputs_module = importlib.import_module("abscopal.outputs")


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if simulate() compiles or integrates."""

    def boom(*args, **kwargs):
        raise AssertionError("simulate() started work (compile/solve) before rejecting its input")

    monkeypatch.setattr(simulate_module, "compile_model", boom)
    monkeypatch.setattr(outputs_module, "solve", boom)  # simulate integrates through abscopal.outputs


def _plan() -> TreatmentPlan:
    return TreatmentPlan(
        drug=drug_regimen("pembrolizumab_200mg_q3w"), radiation=(radiation_regimen("sbrt_24gy_3fx", start_day=-7),)
    )


# ------------------------------------------------------------------------------ treatment
def test_negative_dose_is_rejected():
    with pytest.raises(ScheduleError, match=r"dose_per_fraction_gy must be > 0, got -8\.0"):
        RadiationCourse(dose_per_fraction_gy=-8.0, n_fractions=3)
    with pytest.raises(ScheduleError, match=r"dose_per_fraction_gy must be > 0, got 0\.0"):
        RadiationCourse(dose_per_fraction_gy=0.0, n_fractions=3)
    with pytest.raises(ScheduleError, match=r"dose_gy must be >= 0, got -1\.0"):
        Fraction(time_day=0.0, dose_gy=-1.0, lesions=(0,), blood_dose_gy=0.0)
    with pytest.raises(ScheduleError, match=r"blood_dose_per_fraction_gy must be >= 0"):
        RadiationCourse(dose_per_fraction_gy=8.0, n_fractions=3, blood_dose_per_fraction_gy=-0.1)
    with pytest.raises(ScheduleError, match=r"dose_mg must be > 0, got -200\.0"):
        DrugRegimen(drug="pembrolizumab", dose_mg=-200.0, interval_day=21.0)


def test_zero_fractions_is_rejected():
    with pytest.raises(ScheduleError, match=r"n_fractions must be an integer >= 1, got 0"):
        RadiationCourse(dose_per_fraction_gy=8.0, n_fractions=0)
    with pytest.raises(ScheduleError, match=r"n_fractions must be an integer >= 1, got 2\.5"):
        RadiationCourse(dose_per_fraction_gy=8.0, n_fractions=2.5)


def test_two_fractions_at_the_same_time_on_the_same_lesion_are_rejected():
    a = radiation_regimen("sbrt_24gy_3fx", start_day=0.0, target_lesions=(0,))
    b = radiation_regimen("sbrt_30gy_5fx", start_day=4.0, target_lesions=(1, 0))
    with pytest.raises(ScheduleError, match=r"both irradiate lesion\(s\) \[0\] at day 4"):
        TreatmentPlan(radiation=(a, b))
    # the same days on different lesions are allowed
    TreatmentPlan(radiation=(a, radiation_regimen("sbrt_24gy_3fx", start_day=0.0, target_lesions=(1,))))


def test_unknown_regimen_name_suggests_the_close_name():
    with pytest.raises(ScheduleError, match=r"unknown radiation regimen 'sbrt_24gy_3fz'; did you mean 'sbrt_24gy_3fx'"):
        radiation_regimen("sbrt_24gy_3fz")
    with pytest.raises(
        ScheduleError,
        match=r"unknown drug regimen 'pembrolizumab_200mg_q3'; "
        r"did you mean 'pembrolizumab_200mg_q3w'",
    ):
        drug_regimen("pembrolizumab_200mg_q3")


# ------------------------------------------------------------------------------ simulate()
def test_unknown_parameter_name_suggests_the_close_name(nsclc3_spec, no_work):
    with pytest.raises(
        ParameterError,
        match=r"unknown parameter 'tumour_alpha_per_gyy'; "
        r"did you mean 'tumour_alpha_per_gy'",
    ):
        simulate(nsclc3_spec, _plan(), parameters={"tumour_alpha_per_gyy": 0.3})


def test_unknown_arm_parameter_is_rejected(nsclc3_spec, no_work):
    arm = Arm(name="sbrt", plan=_plan(), parameters={"efector_baseline": 2.0})
    with pytest.raises(ParameterError, match=r"did you mean 'effector_baseline'"):
        simulate(nsclc3_spec, [arm])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_parameter_is_rejected(nsclc3_spec, no_work, bad):
    with pytest.raises(ParameterError, match=r"parameter 'tumour_alpha_per_gy' must be a finite number"):
        simulate(nsclc3_spec, _plan(), parameters={"tumour_alpha_per_gy": bad})


def test_out_of_bounds_parameter_names_parameter_value_and_bounds(nsclc3_spec, no_work):
    with pytest.raises(ParameterError) as info:
        simulate(nsclc3_spec, _plan(), parameters={"tumour_alpha_per_gy": 5.0})
    msg = str(info.value)
    assert "'tumour_alpha_per_gy'" in msg
    assert "5.0" in msg
    assert "[0.01, 1.0]" in msg


def test_variability_pushing_a_patient_out_of_bounds_is_rejected(nsclc3_spec, no_work):
    pop = VirtualPopulation(n_patients=20, variability={"tumour_alpha_per_gy": LogNormal(omega=3.0)}, seed=1)
    with pytest.raises(
        ParameterError,
        match=r"arm 'a', patient \d+: parameter 'tumour_alpha_per_gy' = .* is outside "
        r"its bounds \[0\.01, 1\.0\]",
    ):
        simulate(nsclc3_spec, {"a": _plan()}, population=pop)


def test_unknown_variability_parameter_is_rejected(nsclc3_spec, no_work):
    pop = VirtualPopulation(n_patients=2, variability={"efector_baseline": LogNormal(omega=0.3)})
    with pytest.raises(ParameterError, match=r"did you mean 'effector_baseline'"):
        simulate(nsclc3_spec, _plan(), population=pop)


def test_unknown_mechanism_is_rejected(nsclc3_spec, no_work):
    with pytest.raises(ParameterError, match=r"unknown mechanism 'lymphocyte_kil'; did you mean 'lymphocyte_kill'"):
        simulate(nsclc3_spec, _plan(), mechanisms_off=("lymphocyte_kil",))


def test_target_lesion_beyond_the_model_is_rejected(nsclc3_spec, no_work):
    plan = TreatmentPlan(radiation=(radiation_regimen("sbrt_24gy_3fx", target_lesions=(0, 3)),))
    with pytest.raises(ScheduleError, match=r"targets lesion 3, but model .* has 3 lesion\(s\) \(indices 0\.\.2\)"):
        simulate(nsclc3_spec, plan)


@pytest.mark.parametrize(
    "times",
    [[0.0, 10.0, 5.0], [0.0, 10.0, 10.0], [], [0.0, math.nan], [0.0, math.inf]],
    ids=["decreasing", "repeated", "empty", "nan", "inf"],
)
def test_output_times_must_increase(nsclc3_spec, no_work, times):
    with pytest.raises(ScheduleError, match=r"output_times_day"):
        simulate(nsclc3_spec, TreatmentPlan(), output_times_day=np.array(times, dtype=float))


def test_output_times_before_start_are_rejected(nsclc3_spec, no_work):
    with pytest.raises(ScheduleError, match=r"output_times_day"):
        simulate(nsclc3_spec, _plan(), output_times_day=[-10.0, 0.0, 10.0])  # simulation starts at day -7


def test_start_after_first_event_is_rejected(nsclc3_spec, no_work):
    with pytest.raises(ScheduleError, match=r"start_day = 0.0 is after the first event at day -7"):
        simulate(nsclc3_spec, _plan(), start_day=0.0)


def test_duplicate_arm_names_are_rejected(nsclc3_spec, no_work):
    with pytest.raises(ScheduleError, match=r"arm names must be unique"):
        simulate(nsclc3_spec, [Arm(name="a", plan=_plan()), Arm(name="a", plan=TreatmentPlan())])


@pytest.mark.parametrize("rtol", [2.0, 1.0, 0.0, -1e-6, math.nan])
def test_solver_options_reject_bad_rtol(rtol):
    with pytest.raises(ParameterError, match=r"rtol must be in \(0, 1\)"):
        SolverOptions(rtol=rtol)


def test_solver_options_reject_unknown_method():
    with pytest.raises(ParameterError, match=r"unknown solver method 'rk45'") as info:
        SolverOptions(method="rk45")
    for name in ("dopri5", "auto", "rosenbrock", "radau"):  # the message lists the choices
        assert name in str(info.value)
    with pytest.raises(ParameterError, match=r"solver method must be one of .*'rosenbrock'"):
        SolverOptions(method=4)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ SolverError
_WHERE = re.compile(r"arm 'blow', patient (\d+) at t = ([-+0-9.e]+) day")


@pytest.mark.parametrize(
    "fallback",
    [pytest.param(True, marks=pytest.mark.slow), False],  # the fallback compiles Rodas4 for the toy (28 s cold)
    ids=["rodas4-fallback", "no-fallback"],
)
def test_solver_error_names_arm_patient_and_time(blowup, fallback):
    """dy/dt = y^2, y(0) = 1 is infinite at t = 1: both Dormand-Prince and its stiff fallback Rodas4 must give
    up, and the error says which arm, which patient and when."""
    with pytest.raises(SolverError) as info:
        simulate(
            blowup,
            {"blow": TreatmentPlan()},
            t_end_day=2.0,
            output_interval_day=0.5,
            solver=SolverOptions(stiff_fallback=fallback),
        )
    msg = str(info.value)
    assert "arm" in msg and "patient" in msg and "t =" in msg, msg
    match = _WHERE.search(msg)
    assert match is not None, msg
    assert int(match.group(1)) == 0
    assert 0.9 <= float(match.group(2)) <= 1.0, msg  # it fails just before the blow-up time
