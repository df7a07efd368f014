"""The rules of the sensitivity analysis, without simulations: which parameters vary and over what range (the model
card's source rule, bounds, fitted uncertainty), SALib through the module's wrapper on functions whose indices are
known analytically, the restricted mean survival, the verdicts and the specification's checks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from abscopal.diagnose import SOURCED_CATEGORIES, parameter_sources
from abscopal.errors import ParameterError
from abscopal.fitted import Fit
from abscopal.fitted.shipped import default_fit_path
from abscopal.model.spec import Parameter
from abscopal.studies.robustness import ROBUST_SHARE, verdict
from abscopal.studies.sensitivity import (
    NOT_SOURCED,
    Factor,
    SensitivitySpec,
    _conclusion,
    analyze_indices,
    parameter_ranges,
    restricted_mean_month,
    sample_unit,
)


@pytest.fixture(scope="module")
def fit():
    return Fit.load(default_fit_path())


@pytest.fixture(scope="module")
def shipped(fit):
    """The model of the shipped fit (spec only, nothing compiled)."""
    from abscopal.model.library import get_model, version_options

    prov = fit.provenance
    return get_model("nsclc", n_lesions=int(prov["n_lesions"]), **version_options("nsclc", prov.get("model_version")))


def _free(fit):
    return [k for k, p in fit.parameters().items() if p.vary and k in fit.values]


def test_not_sourced_parameters_vary_two_fold_within_their_bounds_and_sourced_ones_stay(shipped, fit):
    values = fit.all_values()
    factors, fixed = parameter_ranges(shipped, fit, values, SensitivitySpec())
    src = parameter_sources(shipped, fitted=_free(fit), fixed_by_fit=fit.provenance.get("base_parameters") or {})
    by = {f.name: f for f in factors}
    params = {p.name: p for p in shipped.parameters}
    n_cut = 0
    for stem, category in src["categories"].items():
        if category in SOURCED_CATEGORIES:
            assert (stem in by) == (category == "fit"), stem
            if category == "human":
                assert fixed[stem] == "sourced (human)"
            continue
        assert category in NOT_SOURCED
        p = params[src["members"][stem][0]]
        v = values.get(p.name, p.default)
        if v == 0:
            assert stem not in by and "no fold range" in fixed[stem]
            continue
        f = by[stem]
        assert (f.kind, f.category, f.scale, f.centre) == ("not sourced", category, "log", v)
        assert f.lower == pytest.approx(max(p.lower, v / 2)) and f.upper == pytest.approx(min(p.upper, 2 * v))
        assert f.parameters == tuple(src["members"][stem])
        n_cut += "cut to the bounds" in f.rule
    assert n_cut >= 1  # e.g. pd1_max_inhibition 0.8 in [0, 1]: [0.4, 1.0]
    every = {n for f in factors for n in f.parameters}
    assert not every & set(src["excluded"])  # per-patient inputs and drug PK never vary
    assert len(factors) == len(set(by))


def test_fitted_values_vary_over_two_standard_errors_on_the_scale_of_the_fits_draws(shipped, fit):
    fit = dataclasses.replace(fit, profiles=None)  # without profiles: the standard-error rule (profiles: below)
    factors, _ = parameter_ranges(shipped, fit, fit.all_values(), SensitivitySpec())
    by = {f.name: f for f in factors}
    records = fit.parameters()
    for name in _free(fit):
        v, se, rec = fit.values[name], fit.stderr[name], records[name]
        f = by[name]
        assert (f.kind, f.category, f.centre) == ("fitted", "fit", v)
        if v > 0 and rec.min >= 0:  # log-normal in abscopal.fitted.draws
            lo, hi, scale = v * math.exp(-2 * se / v), v * math.exp(2 * se / v), "log"
        else:
            lo, hi, scale = v - 2 * se, v + 2 * se, "linear"
        assert f.scale == scale
        assert f.lower == pytest.approx(max(lo, rec.min)) and f.upper == pytest.approx(min(hi, rec.max))
    wider = parameter_ranges(shipped, fit, fit.all_values(), SensitivitySpec(n_se=3.0))[0]
    name = _free(fit)[0]
    assert next(f for f in wider if f.name == name).upper > by[name].upper


def test_a_closed_profile_interval_replaces_the_standard_errors_and_no_error_falls_back_to_the_fold(shipped, fit):
    name = _free(fit)[0]
    v = fit.values[name]
    lo, hi = v * 0.9, v * 1.3
    prof = {name: {"interval_95": [lo, hi], "closed_95": [True, True]}}
    f = {
        x.name: x for x in parameter_ranges(shipped, dataclasses.replace(fit, profiles=prof), {}, SensitivitySpec())[0]
    }
    assert (f[name].lower, f[name].upper) == pytest.approx((lo, hi)) and "profile" in f[name].rule
    half_open = {name: {"interval_95": [lo, hi], "closed_95": [True, False]}}
    g = {
        x.name: x
        for x in parameter_ranges(shipped, dataclasses.replace(fit, profiles=half_open), {}, SensitivitySpec())[0]
    }
    assert "SE" in g[name].rule  # an open profile is not an interval: the standard errors are used
    no_se = dataclasses.replace(fit, stderr={**fit.stderr, name: None})
    h = {x.name: x for x in parameter_ranges(shipped, no_se, {}, SensitivitySpec())[0]}
    assert "without a standard error" in h[name].rule
    rec = fit.parameters()[name]
    assert (h[name].lower, h[name].upper) == pytest.approx((max(rec.min, v / 2), min(rec.max, v * 2)))


def test_the_source_text_decides_for_a_model_without_a_fit(make_toy_spec):
    spec = make_toy_spec()
    sources = {"g": "Smith 2020: cohort of 40 patients", "K": "assumption: room to grow", "alpha": ""}
    params = tuple(dataclasses.replace(p, source=sources.get(p.name, p.source)) for p in spec.parameters)
    spec = dataclasses.replace(spec, parameters=params)
    factors, fixed = parameter_ranges(spec, None, {}, SensitivitySpec(fold=3.0))
    by = {f.name: f for f in factors}
    assert fixed["g"] == "sourced (human)" and "g" not in by
    assert by["K"].category == "assumption" and (by["K"].lower, by["K"].upper) == pytest.approx((1e5 / 3, 3e5))
    assert by["alpha"].category == "unsourced" and (by["alpha"].lower, by["alpha"].upper) == pytest.approx((0.1, 0.9))
    assert "body_weight_kg" not in by and "body_weight_kg" not in fixed  # dosing, not biology
    tight = dataclasses.replace(
        spec,
        parameters=tuple(
            Parameter(name=p.name, units=p.units, default=p.default, lower=p.default, upper=p.default, source="")
            if p.name == "beta"
            else p
            for p in spec.parameters
        ),
    )
    _, fixed = parameter_ranges(tight, None, {}, SensitivitySpec())
    assert "leave no range" in fixed["beta"]


def test_factor_values_map_the_unit_cube_linearly_or_log_uniformly():
    log = Factor(
        name="k",
        parameters=("k",),
        kind="not sourced",
        category="assumption",
        centre=1.0,
        lower=0.5,
        upper=2.0,
        scale="log",
        rule="2-fold",
    )
    lin = dataclasses.replace(log, centre=0.0, lower=-1.0, upper=3.0, scale="linear")
    np.testing.assert_allclose(log.value(np.array([0.0, 0.5, 1.0])), [0.5, 1.0, 2.0])
    np.testing.assert_allclose(lin.value(np.array([0.0, 0.25, 1.0])), [-1.0, 0.0, 3.0])


LINEAR = np.array([4.0, 2.0, 0.0])


def test_morris_recovers_the_elementary_effects_of_a_linear_model_exactly():
    names = ["x1", "x2", "x3"]
    spec = SensitivitySpec(method="morris", samples=20, seed=3)
    x = sample_unit(spec, names)
    assert x.shape == (20 * 4, 3) and x.min() >= 0 and x.max() <= 1
    r = analyze_indices(spec, names, x, x @ LINEAR)
    np.testing.assert_allclose(r["mu"], LINEAR, atol=1e-9)
    np.testing.assert_allclose(r["mu_star"], LINEAR, atol=1e-9)
    np.testing.assert_allclose(r["sigma"], 0.0, atol=1e-9)
    y = x @ LINEAR
    y[4 * 7 + 2] = np.nan  # one run of trajectory 7 failed: that trajectory is left out, the rest still exact
    r = analyze_indices(spec, names, x, y)
    assert r["note"].startswith("1 of 20 trajectories") and r["n_used"] == 19 * 4
    np.testing.assert_allclose(r["mu_star"], LINEAR, atol=1e-9)
    assert sample_unit(spec, names).tolist() == x.tolist()  # seeded
    assert sample_unit(dataclasses.replace(spec, seed=4), names).tolist() != x.tolist()


def test_sobol_recovers_the_indices_of_a_linear_model_and_of_the_ishigami_function():
    names = ["x1", "x2", "x3"]
    spec = SensitivitySpec(method="sobol", samples=2048, seed=5)
    x = sample_unit(spec, names)
    assert x.shape == (2048 * 5, 3)
    r = analyze_indices(spec, names, x, x @ LINEAR)
    share = LINEAR**2 / (LINEAR**2).sum()  # independent uniform inputs: S1 = ST = a_i^2 var(u) / sum
    np.testing.assert_allclose(r["S1"], share, atol=0.03)
    np.testing.assert_allclose(r["ST"], share, atol=0.03)
    # Ishigami & Homma (1990), a = 7, b = 0.1, x_i uniform on [-pi, pi]: closed-form partial variances
    a, b, pi = 7.0, 0.1, math.pi
    v1, v2, v13 = 0.5 * (1 + b * pi**4 / 5) ** 2, a**2 / 8, 8 * b**2 * pi**8 / 225
    v = v1 + v2 + v13
    factors = [
        Factor(
            name=n,
            parameters=(n,),
            kind="not sourced",
            category="assumption",
            centre=0.0,
            lower=-pi,
            upper=pi,
            scale="linear",
            rule="test",
        )
        for n in names
    ]
    val = np.column_stack([f.value(x[:, j]) for j, f in enumerate(factors)])
    y = np.sin(val[:, 0]) + a * np.sin(val[:, 1]) ** 2 + b * val[:, 2] ** 4 * np.sin(val[:, 0])
    r = analyze_indices(spec, names, x, y)
    np.testing.assert_allclose(r["S1"], [v1 / v, v2 / v, 0.0], atol=0.05)
    np.testing.assert_allclose(r["ST"], [(v1 + v13) / v, v2 / v, v13 / v], atol=0.05)
    assert np.all(r["ST_conf"] > 0) and np.all(r["ST_conf"] < 0.1)
    const = analyze_indices(spec, names, x, np.ones(x.shape[0]))
    assert const["note"] == "constant output: every index 0" and not np.any(const["ST"])
    bad = analyze_indices(spec, names, x, np.where(np.arange(x.shape[0]) == 3, np.nan, y))
    assert np.all(np.isnan(bad["S1"])) and "non-finite" in bad["note"]


def test_restricted_mean_is_the_area_under_the_kaplan_meier_curve():
    from lifelines import KaplanMeierFitter
    from lifelines.utils import restricted_mean_survival_time

    rng = np.random.default_rng(0)
    t = rng.exponential(300.0, 80)
    h = 365.25
    all_events = np.ones(t.size, bool)
    assert restricted_mean_month(t, all_events, h) == pytest.approx(np.minimum(t, h).mean() / 30.44, rel=1e-12)
    censored = rng.random(t.size) < 0.3
    kmf = KaplanMeierFitter().fit(t, ~censored)
    reference = restricted_mean_survival_time(kmf, t=h) / 30.44
    assert restricted_mean_month(t, ~censored, h) == pytest.approx(reference, rel=1e-9)


def test_verdicts_and_the_share_in_which_a_sign_holds():
    assert ROBUST_SHARE == 0.9
    assert verdict(0.9, 10) == "robust" and verdict(0.89, 100) == "not robust" and verdict(0.5, 10) == "not robust"
    assert (
        verdict(0.49, 10) == "reversed"
        and verdict(math.nan, 10) == "undetermined"
        and verdict(1.0, 0) == "undetermined"
    )
    c = _conclusion("x", "s", -0.5, "r", np.array([-1.0, 0.0, 1.0, -2.0, np.nan]), 0.9)
    assert (c.sign, c.n, c.share, c.verdict) == (-1, 4, 0.5, "not robust")  # a zero does not hold
    assert _conclusion("x", "s", 0.0, "r", np.array([1.0, 2.0]), 0.9).verdict == "undetermined"
    assert _conclusion("x", "s", 2.0, "r", np.arange(1.0, 11.0), 0.9).verdict == "robust"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "lhs"}, r"method = 'lhs' \(--method\): unknown sensitivity method; give one of morris, sobol"),
        ({"method": "morris", "samples": 1}, r"samples = 1 \(--samples\).*morris needs at least 2 trajectories"),
        ({"method": "sobol", "samples": 2}, r"samples = 2 \(--samples\).*sobol needs at least 4"),
        ({"method": "sobol", "samples": 100}, r"samples = 100 \(--samples\).*power of 2.*give 64 or 128"),
        ({"seed": -1}, r"seed = -1 \(--seed\)"),
        ({"num_levels": 3}, r"num_levels = 3.*even"),
        ({"conf_level": 1.0}, r"conf_level = 1.0"),
        ({"fold": 1.0}, r"fold = 1.0"),
        ({"factors": ()}, r"factors = \(\) \(--factors\)"),
    ],
)
def test_bad_specifications_name_the_argument_the_value_and_the_fix(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        SensitivitySpec(**kwargs)


def test_the_number_of_runs_of_each_design():
    assert SensitivitySpec().samples == 10 and SensitivitySpec(method="sobol").samples == 64
    assert SensitivitySpec(samples=8).n_runs(46) == 8 * 47
    assert SensitivitySpec(method="sobol", samples=16).n_runs(5) == 16 * 7
