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


def test_the_fit_and_its_profiles_record_their_timing(problem, fitted):
    from abscopal.calibrate.report import _profile_timing_rows
    from abscopal.calibrate.uncertainty import with_uncertainty

    timing = fitted.provenance["timing"]
    assert timing["fit_s"] > 0 and timing["n_patients_per_arm"] == 12 and timing["threads"] >= 1
    assert _profile_timing_rows(fitted.provenance) == []
    both = with_uncertainty(fitted, timing={"profiles_s": 12.5, "profile_workers": 2, "profile_scheduler": None})
    assert both.provenance["timing"] == timing | {"profiles_s": 12.5, "profile_workers": 2, "profile_scheduler": None}
    assert _profile_timing_rows(both.provenance) == [["elapsed (profiles)", "12.5 s (2 local worker processes)"]]


def _fit_args(tmp_path, *extra: str):
    import argparse

    from abscopal.cli.fit import add_fit_command

    parser = argparse.ArgumentParser(prog="abscopal")
    add_fit_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["fit", str(TARGETS), "--out", str(tmp_path / "x.json"), *extra])


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--workers", "2"], r"--workers 2: runs the profile likelihood's re-fits in parallel, but no --profile"),
        (["--scheduler", "tcp://h:1"], r"--scheduler tcp://h:1: runs the profile likelihood's re-fits in parallel"),
        (["--profile", "--workers", "0"], r"--workers 0: give a number of worker processes >= 1"),
        (["--profile", "--scheduler", "nohost"], r"--scheduler 'nohost' is not a Dask scheduler address"),
        (["--profile", "--scheduler", "tcp://127.0.0.1:9"], r"--scheduler 'tcp://127.0.0.1:9': cannot connect"),
    ],
)
def test_cli_fit_checks_workers_and_scheduler_before_any_work(tmp_path, monkeypatch, extra, match):
    import abscopal.trials as targets_module

    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 2)
    monkeypatch.setattr(targets_module, "load_all", lambda *a, **k: pytest.fail("loaded targets before checking"))
    args = _fit_args(tmp_path, *extra)
    with pytest.raises(AbscopalError, match=match):
        args.func(args)
    assert not (tmp_path / "x.json").exists()


def test_cli_fit_takes_workers_or_scheduler_not_both(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _fit_args(tmp_path, "--profile", "--workers", "2", "--scheduler", "tcp://h:1")
    assert "not allowed with argument" in capsys.readouterr().err
