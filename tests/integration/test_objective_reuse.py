"""The calibration objective reuses what does not change between evaluations, and gives the same residuals.

The objective prepares each arm's simulation once (plan adapted to the model, events, output grid, the outputs the
scoring reads: :func:`abscopal.arms.prepare_arm`) and then only simulates and scores. Its residuals must equal, bit
for bit, those of the straightforward path: every arm through :func:`abscopal.arms.run_arm` from scratch, all outputs
stored. Small problems (PEMBRO-RT, and Ratnayake 2020 whose RT arm has a prior course, so the history shooting runs)
keep each evaluation short.
"""

from __future__ import annotations

import warnings
from importlib import import_module
from pathlib import Path

import numpy as np
import pytest

from abscopal.arms import prepare_arm, run_arm
from abscopal.calibrate.objective import CalibrationProblem
from abscopal.errors import ParameterError, SterilisedLesionWarning, StiffFallbackWarning
from abscopal.simulate import Arm, prepare_simulation, simulate, simulate_prepared
from abscopal.trials import load_targets

simulate_module = import_module("abscopal.simulate")  # the module (abscopal.simulate is also the function)
TARGETS = Path(__file__).resolve().parents[2] / "fits" / "targets"
VALUES = {
    "max_kill_per_day": 0.07,
    "tumour_doubling_time_day": 110.0,
    "omega__max_kill_per_day": 0.4,
    "effect__pretreated__max_kill_per_day": -0.2,
}


@pytest.fixture(scope="module")
def problem(nsclc3, reachable_os_base) -> CalibrationProblem:
    return CalibrationProblem(
        targets=(load_targets(TARGETS / "pembro_rt.toml"), load_targets(TARGETS / "ratnayake2020.toml")),
        model=nsclc3,
        n_patients_per_arm=24,
        seed=3,
        base_parameters=reachable_os_base,
    )


def _straightforward(problem: CalibrationProblem, values) -> np.ndarray:
    """Residuals with every arm run from scratch (run_arm without a prepared simulation, all outputs kept)."""
    split = problem._split(values)
    scored = {
        key: run_arm(
            problem._compiled(),
            s.plan,
            s.patients,
            s.assessment,
            split,
            start_day=s.start_day,
            t_end_day=s.t_end_day,
            name=s.arm.name,
            pfs_bandwidth_day=s.bandwidth_pfs_day,
        ).scored
        for key, s in problem._setups.items()
    }
    return problem._weighted(problem._smooth_from(scored, problem._toxicity_predictions(values)))


@pytest.mark.filterwarnings("ignore::abscopal.errors.SterilisedLesionWarning")
def test_reused_objective_equals_the_straightforward_path_bit_for_bit(problem):
    assert any(s.plan.prior_courses for s in problem._setups.values())  # the history path is covered
    first = problem.residuals_from_values(VALUES)
    np.testing.assert_array_equal(first, _straightforward(problem, VALUES))
    moved = VALUES | {"max_kill_per_day": 0.09, "omega__max_kill_per_day": 0.2}
    np.testing.assert_array_equal(problem.residuals_from_values(moved), _straightforward(problem, moved))
    assert not np.array_equal(first, problem.residuals_from_values(moved))  # the comparison can fail


@pytest.mark.filterwarnings("ignore::abscopal.errors.SterilisedLesionWarning")
def test_later_evaluations_build_no_plans_events_or_grids(problem, monkeypatch):
    problem.residuals_from_values(VALUES)  # the first evaluation prepares every arm
    calls = {"prepare": 0, "events": 0}
    real_prepare, real_events = simulate_module.prepare_simulation, simulate_module.plan_events

    def counting_prepare(*args, **kwargs):
        calls["prepare"] += 1
        return real_prepare(*args, **kwargs)

    def counting_events(*args, **kwargs):
        calls["events"] += 1
        return real_events(*args, **kwargs)

    monkeypatch.setattr("abscopal.arms.prepare_simulation", counting_prepare)
    monkeypatch.setattr(simulate_module, "plan_events", counting_events)
    problem.residuals_from_values(VALUES | {"max_kill_per_day": 0.05})
    assert calls == {"prepare": 0, "events": 0}
    # the counters count: the straightforward path prepares every arm
    _straightforward(problem, VALUES)
    assert calls["prepare"] == len(problem._setups) and calls["events"] == len(problem._setups)


def test_warnings_about_an_arms_patients_are_said_once_per_arm_naming_it(monkeypatch):
    """Ratnayake 2020's RT arm has a prior course that sterilises some lesions; a fit evaluates it hundreds of times,
    the warning comes once, at the first evaluation, with the arm's name. Other warnings of the runs pass through."""
    # 100 patients: at 24 (the fixture) no lesion is sterilised
    fresh = CalibrationProblem(targets=(load_targets(TARGETS / "ratnayake2020.toml"),), n_patients_per_arm=100, seed=3)
    values = {"max_kill_per_day": 0.07}
    real_run_arm = run_arm

    def noisy_run_arm(*args, **kwargs):
        warnings.warn("another warning", RuntimeWarning, stacklevel=2)
        warnings.warn(f"stiff patients in {kwargs['name']}", StiffFallbackWarning, stacklevel=2)
        return real_run_arm(*args, **kwargs)

    monkeypatch.setattr("abscopal.calibrate.objective.run_arm", noisy_run_arm)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh.residuals_from_values(values)
        fresh.residuals_from_values({"max_kill_per_day": 0.05})
    monkeypatch.undo()
    said = [str(w.message) for w in caught if issubclass(w.category, SterilisedLesionWarning)]
    assert len(said) == 1 and said[0].startswith("ratnayake2020, arm 'rt+nivolumab': ") and "once per arm" in said[0]
    assert [str(w.message) for w in caught if w.category is RuntimeWarning] == ["another warning"] * 4  # 2 arms x 2
    stiff = sorted(str(w.message) for w in caught if w.category is StiffFallbackWarning)
    assert [m.split(" (said once")[0] for m in stiff] == [
        "ratnayake2020, arm 'nivolumab': stiff patients in nivolumab",
        "ratnayake2020, arm 'rt+nivolumab': stiff patients in rt+nivolumab",
    ]
    # the same problem run without the objective warns at every run: the objective is what says it once
    s = fresh._setups[("ratnayake2020", "rt+nivolumab")]
    with warnings.catch_warnings(record=True) as direct:
        warnings.simplefilter("always")
        for _ in range(2):
            run_arm(
                fresh._compiled(),
                s.plan,
                s.patients,
                s.assessment,
                fresh._split(values),
                start_day=s.start_day,
                t_end_day=s.t_end_day,
            )
    assert sum(issubclass(w.category, SterilisedLesionWarning) for w in direct) == 2


def test_simulate_prepared_is_simulate(nsclc3, problem):
    s = next(iter(problem._setups.values()))
    arm = Arm(name="a", plan=s.plan.for_model(nsclc3.spec))
    population = s.patients.population()
    kwargs = {"t_end_day": 400.0, "output_interval_day": 7.0, "start_day": s.start_day}
    direct = simulate(nsclc3, [arm], population=population, parameters={"max_kill_per_day": 0.07}, **kwargs)
    prepared = prepare_simulation(nsclc3, [arm], n_patients=population.n_patients, **kwargs)
    again = simulate_prepared(nsclc3, prepared, population=population, parameters={"max_kill_per_day": 0.07})
    assert set(direct.data_vars) == set(again.data_vars)
    for name in direct.data_vars:
        np.testing.assert_array_equal(direct[name].values, again[name].values)
    assert direct.attrs == again.attrs


def test_a_prepared_simulation_for_other_patients_or_arm_is_refused(nsclc3, problem):
    s = next(iter(problem._setups.values()))
    prepared = prepare_arm(nsclc3, s.plan, s.patients.n_patients + 1, start_day=s.start_day, t_end_day=400.0, name="x")
    with pytest.raises(ParameterError, match=r"prepared: made for arm 'x' with 25 patients"):
        run_arm(
            nsclc3,
            s.plan,
            s.patients,
            s.assessment,
            {},
            start_day=s.start_day,
            t_end_day=400.0,
            name="x",
            prepared=prepared,
        )
    with pytest.raises(ParameterError, match="population has 24 patients, the prepared simulation 25"):
        simulate_prepared(nsclc3, prepared, population=s.patients.population())
