"""Profile likelihoods on Dask (``profile_likelihood(..., workers=N | scheduler=ADDRESS)``) give the serial result.

A small PEMBRO-RT problem (12 virtual patients per arm) with two free values; the profile of one of them has two
sides, which run as two tasks on a local cluster of two worker processes. Each worker builds its own
CalibrationProblem from the problem's settings and loads the compiled kernels from the disk cache.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from abscopal import parallel
from abscopal.calibrate.fit import calibrate
from abscopal.calibrate.objective import CalibrationProblem, default_parameters
from abscopal.calibrate.uncertainty import _problem_recipe, profile_likelihood
from abscopal.errors import AbscopalError
from abscopal.trials import load_targets

TARGETS = Path(__file__).resolve().parents[2] / "fits" / "targets" / "pembro_rt.toml"
FREE = ("max_kill_per_day", "tumour_doubling_time_day")


@pytest.fixture(scope="module")
def problem(nsclc3, reachable_os_base) -> CalibrationProblem:
    return CalibrationProblem(
        targets=(load_targets(TARGETS),),
        model=nsclc3,
        n_patients_per_arm=12,
        seed=4,
        base_parameters=reachable_os_base,
    )


@pytest.fixture(scope="module")
def fitted(problem):
    return calibrate(problem, default_parameters(problem, FREE))


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN, recursively (bit for bit for floats)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def test_profiles_on_a_local_cluster_equal_the_serial_run(problem, fitted):
    kwargs = {"names": ["max_kill_per_day"], "n_points": 3, "max_extend": 1, "n_refine": 1}
    serial = profile_likelihood(problem, fitted, **kwargs)
    on_dask = profile_likelihood(problem, fitted, workers=2, **kwargs)
    for prof in (serial, on_dask):
        assert prof["max_kill_per_day"].pop("elapsed_s") > 0
    assert len(serial["max_kill_per_day"]["values"]) >= 3 and serial["max_kill_per_day"]["nfev"] > 3
    assert _same(serial, on_dask)
    assert not _same(serial, {"max_kill_per_day": serial["max_kill_per_day"] | {"chisqr": [0.0]}})  # can fail


def test_the_recipe_rebuilds_the_same_problem(problem, fitted):
    key, recipe = _problem_recipe(problem)
    again = CalibrationProblem(**recipe)
    assert _problem_recipe(again)[0] == key
    assert (again.residuals(fitted.parameters()) == problem.residuals(fitted.parameters())).all()
    other = CalibrationProblem(**(recipe | {"seed": 5}))
    assert _problem_recipe(other)[0] != key


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"workers": 0}, r"workers 0: give a number of worker processes >= 1"),
        ({"workers": 2.5}, r"workers 2.5: give a number of worker processes >= 1"),
        ({"workers": 2, "scheduler": "tcp://127.0.0.1:8786"}, r"give scheduler ADDRESS or workers N, not both"),
        ({"scheduler": "no port"}, r"scheduler 'no port' is not a Dask scheduler address; give \[tcp://\]host:port"),
    ],
)
def test_bad_parallel_settings_fail_before_any_simulation(problem, fitted, monkeypatch, kwargs, match):
    monkeypatch.setattr(type(problem), "residuals", lambda *a, **k: pytest.fail("simulated before the check"))
    with pytest.raises(AbscopalError, match=match):
        profile_likelihood(problem, fitted, **kwargs)


def test_a_scheduler_that_does_not_answer_fails_before_any_simulation(problem, fitted, monkeypatch):
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 2)
    monkeypatch.setattr(type(problem), "residuals", lambda *a, **k: pytest.fail("simulated before connecting"))
    with pytest.raises(AbscopalError, match=r"scheduler 'tcp://127.0.0.1:9': cannot connect to a Dask scheduler"):
        profile_likelihood(problem, fitted, scheduler="tcp://127.0.0.1:9")
