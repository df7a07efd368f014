"""Parameter draws from a calibration (``abscopal.fitted.draws``): covariance, bounds, seeds, posterior.

No simulation: the calibrations are built by hand from lmfit Parameters.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import lmfit
import numpy as np
import pytest

from abscopal.calibrate.fit import Calibration
from abscopal.errors import AbscopalError, ParameterError
from abscopal.fitted.draws import ParameterDraws, parameter_draws


def make_calibration(values, stderr, correlations=None, bounds=None, posterior=None):
    """A calibration with the given values/stderr (None: fixed), correlations and bounds."""
    bounds = bounds or {}
    params = lmfit.Parameters()
    for name, value in values.items():
        lo, hi = bounds.get(name, (-np.inf, np.inf))
        params.add(name, value=value, min=lo, max=hi, vary=stderr.get(name) is not None)
    cal = Calibration(
        values=dict(values),
        stderr=dict(stderr),
        correlations=correlations or {},
        chisqr=0.0,
        redchi=0.0,
        aic=0.0,
        bic=0.0,
        nfev=1,
        method="least_squares",
        predictions=[],
        params_json=params.dumps(),
        provenance={},
    )
    if posterior is None:
        return cal
    return SimpleNamespace(
        values=cal.values,
        stderr=cal.stderr,
        correlations=cal.correlations,
        parameters=cal.parameters,
        posterior=posterior,
    )


VALUES = {"rate_per_day": 0.05, "effect__pretreated__x": -0.3, "fixed": 2.0}
STDERR = {"rate_per_day": 0.005, "effect__pretreated__x": 0.1, "fixed": None}
CORR = {"rate_per_day": {"effect__pretreated__x": 0.6}, "effect__pretreated__x": {"rate_per_day": 0.6}}
BOUNDS = {"rate_per_day": (0.0, np.inf)}


def test_covariance_draws_reproduce_sd_and_correlation():
    """n = 20000: SD of log(rate) (log-normal, SD = stderr / value = 0.1) and of the effect (normal, 0.1) within
    3%, their correlation within 0.03, the median of the rate within 1% of the fitted value; fixed constant."""
    cal = make_calibration(VALUES, STDERR, CORR, BOUNDS)
    d = parameter_draws(cal, 20000, seed=3, source="covariance")
    assert d.source == "covariance" and d.array.shape == (20000, 3) and d.names == tuple(VALUES)
    assert d.log_scale == ("rate_per_day",)
    log_rate, effect = np.log(d.column("rate_per_day")), d.column("effect__pretreated__x")
    assert np.std(log_rate) == pytest.approx(0.1, rel=0.03)
    assert np.std(effect) == pytest.approx(0.1, rel=0.03)
    assert np.mean(effect) == pytest.approx(-0.3, abs=0.005)
    assert np.corrcoef(log_rate, effect)[0, 1] == pytest.approx(0.6, abs=0.03)
    assert np.median(d.column("rate_per_day")) == pytest.approx(0.05, rel=0.01)
    assert np.all(d.column("fixed") == 2.0)
    assert d.point == VALUES


def test_draws_respect_the_bounds():
    bounds = {"rate_per_day": (0.03, 0.08), "effect__pretreated__x": (-0.4, 0.0)}
    cal = make_calibration(VALUES, {**STDERR, "rate_per_day": 0.05}, CORR, bounds)
    d = parameter_draws(cal, 2000, seed=1)
    r, e = d.column("rate_per_day"), d.column("effect__pretreated__x")
    assert r.min() >= 0.03 and r.max() <= 0.08 and e.min() >= -0.4 and e.max() <= 0.0
    assert r.std() > 0.005  # not collapsed onto the fitted value


def test_truncation_gives_up_with_a_clear_error():
    cal = make_calibration(VALUES, {**STDERR, "rate_per_day": 0.05}, CORR, {"rate_per_day": (0.04999, 0.05001)})
    with pytest.raises(AbscopalError, match=r"within the bounds.*rate_per_day"):
        parameter_draws(cal, 50, seed=0)


def test_same_seed_same_draws_other_seed_other_draws():
    cal = make_calibration(VALUES, STDERR, CORR, BOUNDS)
    a, b, c = (parameter_draws(cal, 50, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a.array, b.array)
    assert not np.array_equal(a.array[:, 0], c.array[:, 0])
    assert a.seed == 7 and c.seed == 8


def test_as_dicts_and_immutability():
    cal = make_calibration(VALUES, STDERR, CORR, BOUNDS)
    d = parameter_draws(cal, 5, seed=0)
    rows = d.as_dicts()
    assert len(rows) == len(d) == d.n_draws == 5
    assert all(set(r) == set(VALUES) for r in rows)
    assert rows[2]["rate_per_day"] == d.array[2, 0]
    assert not any(r == VALUES for r in rows)  # draw 0 is an ordinary draw, not the point
    with pytest.raises(ValueError):
        d.array[0, 0] = 1.0
    with pytest.raises(AttributeError):
        d.source = "posterior"
    assert d.to_dict()["names"] == list(VALUES)


def test_posterior_rows_are_resampled_and_auto_prefers_them():
    samples = [[0.04, -0.1], [0.05, -0.2], [0.06, -0.3]]
    post = {"names": ["effect__pretreated__x", "rate_per_day"][::-1], "samples": samples}
    cal = make_calibration(VALUES, STDERR, CORR, BOUNDS, posterior=post)
    d = parameter_draws(cal, 300, seed=2)
    assert d.source == "posterior"
    pairs = {tuple(r) for r in zip(d.column("rate_per_day"), d.column("effect__pretreated__x"), strict=True)}
    assert pairs == {tuple(s) for s in samples}  # whole rows, all three seen in 300 draws
    assert np.all(d.column("fixed") == 2.0)
    assert np.array_equal(d.array, parameter_draws(cal, 300, seed=2).array)
    assert parameter_draws(cal, 10, seed=2, source="covariance").source == "covariance"


def test_missing_uncertainty_raises_with_the_fix():
    no_cov = make_calibration(VALUES, {**STDERR, "rate_per_day": math.nan}, {}, BOUNDS)
    with pytest.raises(AbscopalError, match=r"refit.*posterior"):
        parameter_draws(no_cov, 10, seed=0)
    with pytest.raises(AbscopalError, match="no posterior"):
        parameter_draws(make_calibration(VALUES, STDERR, CORR, BOUNDS), 10, seed=0, source="posterior")
    bad = make_calibration(VALUES, STDERR, CORR, BOUNDS, posterior={"names": ["a"], "samples": [[1.0, 2.0]]})
    with pytest.raises(AbscopalError, match="shape"):
        parameter_draws(bad, 10, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_draws": 0}, "n_draws"), ({"seed": -1}, "seed"), ({"source": "prior"}, "source"), ({"seed": 1.5}, "seed")],
)
def test_bad_arguments(kwargs, match):
    cal = make_calibration(VALUES, STDERR, CORR, BOUNDS)
    args = {"n_draws": 5, "seed": 0} | kwargs
    with pytest.raises(ParameterError, match=match):
        parameter_draws(cal, args.pop("n_draws"), **args)


def test_parameter_draws_checks_its_shape():
    with pytest.raises(ParameterError, match="shape"):
        ParameterDraws(names=("a", "b"), array=np.zeros((3, 1)), source="covariance", seed=0)
