"""Tests of abscopal.endpoints.survival against lifelines and hand calculations.

Reference implementation: lifelines (KaplanMeierFitter, logrank_test, CoxPHFitter).
Tolerances are stated at each comparison.
"""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test as lifelines_logrank_test
from lifelines.utils import median_survival_times
from scipy.special import ndtri

from abscopal.endpoints.survival import (
    HazardRatio,
    KaplanMeier,
    hazard_ratio,
    kaplan_meier,
    logrank_test,
    smooth_survival_at,
)
from abscopal.errors import ParameterError

KM_RTOL = 1e-10  # estimate vs lifelines
CI_RTOL = 1e-8  # confidence band vs lifelines
LOGRANK_RTOL = 1e-8
LOG_HR_ATOL = 1e-6  # log hazard ratio, fallback vs lifelines
LOG_CI_ATOL = 1e-5  # log of the CI limits
P_RTOL = 1e-5


@pytest.fixture(autouse=True)
def _restore_numpy_error_state():
    """lifelines' KaplanMeierFitter calls ``np.seterr(divide="ignore", ...)`` globally; undo it."""
    state = np.geterr()
    yield
    np.seterr(**state)


def make_dataset(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random two-arm data with censoring; odd seeds put times on a 6-weekly scan grid (ties)."""
    rng = np.random.default_rng(seed)
    n = (1, 7, 25, 60, 250, 12)[seed % 6]
    group = np.arange(n) % 2 == 0
    event_time = rng.exponential(np.where(group, 300.0, 200.0))
    censor_time = rng.uniform(0.0, 600.0, n)
    time = np.minimum(event_time, censor_time)
    event = event_time <= censor_time
    if seed % 2:
        time = np.ceil(time / 42.0) * 42.0  # progression seen at the next scan
    if seed % 3 == 0:
        time[:2] = 0.0  # events/censorings at day 0
    return time, event, group


SEEDS = list(range(12))
TWO_ARM_SEEDS = [s for s in SEEDS if s % 6]  # n = 1 has a single arm


def lifelines_km(time: np.ndarray, event: np.ndarray, alpha: float = 0.05) -> KaplanMeierFitter:
    return KaplanMeierFitter(alpha=alpha).fit(time, event)


# ----------------------------------------------------------------------------- Kaplan-Meier
@pytest.mark.parametrize("alpha", [0.05, 0.2])
@pytest.mark.parametrize("seed", SEEDS)
def test_kaplan_meier_matches_lifelines(seed: int, alpha: float) -> None:
    time, event, _ = make_dataset(seed)
    km = kaplan_meier(time, event, alpha=alpha)
    ref = lifelines_km(time, event, alpha)
    np.testing.assert_array_equal(km.time_day, ref.timeline)
    np.testing.assert_allclose(km.survival, ref.survival_function_.to_numpy()[:, 0], rtol=KM_RTOL, atol=0)
    band = ref.confidence_interval_.to_numpy()
    np.testing.assert_allclose(km.lower, band[:, 0], rtol=CI_RTOL, atol=0)
    np.testing.assert_allclose(km.upper, band[:, 1], rtol=CI_RTOL, atol=0)
    table = ref.event_table
    np.testing.assert_array_equal(km.at_risk, table["at_risk"].reindex(ref.timeline, fill_value=time.size))
    np.testing.assert_array_equal(km.events, table["observed"].reindex(ref.timeline, fill_value=0))
    np.testing.assert_array_equal(km.censored, table["censored"].reindex(ref.timeline, fill_value=0))
    # Medians are data times, compared exactly. Precondition: no estimate is a floating-point
    # tie with 0.5 (there lifelines' answer depends on the last bit; see test_median_exact_half).
    assert np.all(np.abs(km.survival - 0.5) > 1e-9)
    assert km.median_day() == ref.median_survival_time_
    assert km.median_ci_day() == tuple(median_survival_times(ref.confidence_interval_).to_numpy()[0])


def test_hand_computed_example() -> None:
    # times [1,2,2,3,4,5], events [1,1,0,1,0,1], worked by hand:
    #   t  n  d  c   S(t)                     Greenwood sum d/(n(n-d))
    #   0  6  0  0   1                        0
    #   1  6  1  0   5/6                      1/30
    #   2  5  1  1   5/6 * 4/5 = 2/3          1/30 + 1/20 = 1/12
    #   3  3  1  0   2/3 * 2/3 = 4/9          1/12 + 1/6  = 1/4
    #   4  2  0  1   4/9                      1/4
    #   5  1  1  0   4/9 * 0   = 0            (n = d: term dropped, band = 0)
    # median = 3 (first S <= 0.5); log(-log) band S**exp(-+z sqrt(V)/log S).
    km = kaplan_meier([1, 2, 2, 3, 4, 5], [1, 1, 0, 1, 0, 1])
    s = np.array([1, 5 / 6, 2 / 3, 4 / 9, 4 / 9, 0])
    v = np.array([0, 1 / 30, 1 / 12, 1 / 4, 1 / 4])
    np.testing.assert_array_equal(km.time_day, [0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(km.survival, s, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(km.at_risk, [6, 6, 5, 3, 2, 1])
    np.testing.assert_array_equal(km.events, [0, 1, 1, 1, 0, 1])
    np.testing.assert_array_equal(km.censored, [0, 0, 1, 0, 1, 0])
    z = ndtri(0.975)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = z * np.sqrt(v[1:]) / np.log(s[1:5])
    np.testing.assert_allclose(km.lower[1:5], s[1:5] ** np.exp(-shift), rtol=1e-12)
    np.testing.assert_allclose(km.upper[1:5], s[1:5] ** np.exp(shift), rtol=1e-12)
    assert (km.lower[0], km.upper[0], km.lower[5], km.upper[5]) == (1.0, 1.0, 0.0, 0.0)
    # lower band: 0.2731 at t=1 (first <= 0.5); upper band: 0.7849 at t=3,4, then 0 at t=5
    np.testing.assert_allclose([km.lower[1], km.upper[3]], [0.27312285, 0.78490837], atol=5e-9)
    assert km.median_day() == 3.0
    assert km.median_ci_day() == (1.0, 5.0)


def test_step_function_queries() -> None:
    km = kaplan_meier([1, 2, 2, 3, 4, 5], [1, 1, 0, 1, 0, 1])
    assert km.survival_at(0.0) == 1.0
    assert km.survival_at(1.999) == pytest.approx(5 / 6, rel=1e-14)
    assert km.survival_at(2.0) == pytest.approx(2 / 3, rel=1e-14)  # right-continuous
    assert km.survival_at(100.0) == 0.0  # last value after the last time
    np.testing.assert_allclose(km.survival_at([0.5, 1.5, 3.5]), [1.0, 5 / 6, 4 / 9], rtol=1e-14)
    estimate, lower, upper = km.landmark(3.5)
    assert (estimate, lower, upper) == (km.survival[3], km.lower[3], km.upper[3])
    assert isinstance(km, KaplanMeier)
    with pytest.raises(ValueError, match="read-only"):
        km.survival[0] = 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_numbers_at_risk(seed: int) -> None:
    time, event, _ = make_dataset(seed)
    km = kaplan_meier(time, event)
    grid = np.concatenate((np.unique(time), np.arange(0.0, 800.0, 30.0)))
    expected = [int(np.sum(time >= t)) for t in grid]
    np.testing.assert_array_equal(km.numbers_at_risk(grid), expected)
    assert km.numbers_at_risk(0.0) == time.size
    assert km.numbers_at_risk(time.max() + 1.0) == 0


def test_median_exact_half() -> None:
    # S(5) = 5/10 exactly: the median is 5 (first S <= 0.5, as lifelines; R's survfit
    # would report 5.5, the mid-point of the flat stretch at 0.5).
    time = np.arange(1.0, 11.0)
    km = kaplan_meier(time, np.ones(10))
    assert km.median_day() == 5.0 == lifelines_km(time, np.ones(10)).median_survival_time_


def test_median_not_reached() -> None:
    time = [10, 20, 30, 40, 50, 60, 70, 80]
    event = [1, 0, 1, 0, 0, 0, 0, 0]
    km = kaplan_meier(time, event)
    assert km.survival.min() > 0.5
    assert km.median_day() == math.inf
    assert km.median_ci_day()[1] == math.inf
    assert km.median_ci_day() == tuple(
        median_survival_times(lifelines_km(time, event).confidence_interval_).to_numpy()[0]
    )


def test_all_censored() -> None:
    km = kaplan_meier([3, 5, 5, 9], [0, 0, 0, 0])
    np.testing.assert_array_equal(km.survival, 1.0)
    np.testing.assert_array_equal(km.lower, 1.0)
    np.testing.assert_array_equal(km.upper, 1.0)
    assert km.median_day() == math.inf
    assert km.median_ci_day() == (math.inf, math.inf)
    assert km.landmark(7.0) == (1.0, 1.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.booleans()), min_size=1, max_size=40))
def test_kaplan_meier_properties(data: list[tuple[int, bool]]) -> None:
    time, event = zip(*data, strict=True)
    km = kaplan_meier(time, event)
    assert np.all(np.diff(km.survival) <= 0.0)
    assert np.all((km.lower <= km.survival + 1e-15) & (km.survival <= km.upper + 1e-15))
    assert np.all((km.lower >= 0.0) & (km.upper <= 1.0))
    assert km.at_risk[0] == len(time) and km.events.sum() == sum(event)


# ----------------------------------------------------------------------------- log-rank
@pytest.mark.parametrize("seed", TWO_ARM_SEEDS)
def test_logrank_matches_lifelines(seed: int) -> None:
    time, event, group = make_dataset(seed)
    result = logrank_test(time[group], event[group], time[~group], event[~group])
    ref = lifelines_logrank_test(time[group], time[~group], event[group], event[~group])
    np.testing.assert_allclose(result.statistic, ref.test_statistic, rtol=LOGRANK_RTOL, atol=1e-14)
    np.testing.assert_allclose(result.p_value, ref.p_value, rtol=LOGRANK_RTOL)
    swapped = logrank_test(time[~group], event[~group], time[group], event[group])
    np.testing.assert_allclose(swapped, result, rtol=1e-12)
    statistic, p_value = result  # plain tuple unpacking
    assert 0.0 <= p_value <= 1.0 and statistic >= 0.0


def test_logrank_without_information() -> None:
    with pytest.raises(ParameterError, match=r"log-rank test undefined.*0 and 0 events"):
        logrank_test([1, 2], [0, 0], [3, 4], [0, 0])
    with pytest.raises(ParameterError, match="variance 0"):
        logrank_test([1], [1], [1], [1])  # everyone at risk dies at once


# ----------------------------------------------------------------------------- hazard ratio
def reference_cox(time: np.ndarray, event: np.ndarray, x: np.ndarray, alpha: float = 0.05) -> tuple[float, ...]:
    """lifelines CoxPHFitter with tight tolerances (its defaults stop up to ~3e-4 short in beta)."""
    frame = pd.DataFrame({"T": time, "E": event.astype(int), "x": x.astype(float)})
    fit = CoxPHFitter(alpha=alpha).fit(frame, "T", "E", fit_options={"precision": 1e-16, "r_precision": 1e-16})
    ci = fit.confidence_intervals_.to_numpy()[0]
    return float(fit.params_["x"]), float(ci[0]), float(ci[1]), float(fit.summary["p"].iloc[0])


@pytest.fixture(params=["lifelines", "fallback"])
def cox_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run hazard_ratio through lifelines, or through the built-in fallback (lifelines hidden)."""
    if request.param == "fallback":
        monkeypatch.setitem(sys.modules, "lifelines", None)  # `import lifelines` -> ImportError
    return {"lifelines": "cox (lifelines)", "fallback": "cox (abscopal)"}[request.param]


@pytest.mark.parametrize("seed", TWO_ARM_SEEDS)
def test_hazard_ratio_matches_lifelines(seed: int, cox_path: str) -> None:
    time, event, group = make_dataset(seed)
    result = hazard_ratio(time, event, group, alpha=0.1)
    beta, lower, upper, p_value = reference_cox(time, event, group, alpha=0.1)
    assert result.method == cox_path
    assert (result.reference, result.comparator) == (False, True)
    np.testing.assert_allclose(math.log(result.hr), beta, atol=LOG_HR_ATOL, rtol=0)
    np.testing.assert_allclose(np.log([result.lower, result.upper]), [lower, upper], atol=LOG_CI_ATOL, rtol=0)
    np.testing.assert_allclose(result.p_value, p_value, rtol=P_RTOL)


def test_datasets_cover_sizes_and_ties() -> None:
    sizes = {time.size for time, _, _ in map(make_dataset, SEEDS)}
    ties = [np.unique(make_dataset(s)[0]).size < make_dataset(s)[0].size for s in SEEDS]
    assert sizes == {1, 7, 12, 25, 60, 250} and sum(ties) >= 4  # the comparisons cover ties


def test_hazard_ratio_large_sample(cox_path: str) -> None:
    # Exponential hazards 1/100 (control) and 1/200 (treated) per day, true HR 0.5,
    # uniform censoring on (0, 500) days; n = 4000 gives 2842 events, so se(log HR) ~ 0.038
    # and |HR - 0.5| < 0.05 is ~2.5 standard errors (this seed: HR = 0.530 on both paths).
    rng = np.random.default_rng(20240601)
    n = 4000
    treated = rng.random(n) < 0.5
    event_time = rng.exponential(np.where(treated, 200.0, 100.0))
    censor_time = rng.uniform(0.0, 500.0, n)
    time, event = np.minimum(event_time, censor_time), event_time <= censor_time
    result = hazard_ratio(time, event, np.where(treated, "RT+ICI", "ICI"), reference="ICI")
    assert result.method == cox_path
    assert abs(result.hr - 0.5) < 0.05
    assert result.lower < 0.5 < result.upper and result.p_value < 1e-10
    assert (result.reference, result.comparator) == ("ICI", "RT+ICI")


def test_hazard_ratio_reference_level(cox_path: str) -> None:
    time, event, group = make_dataset(5)
    labels = np.where(group, "b", "a")
    default = hazard_ratio(time, event, labels)
    flipped = hazard_ratio(time, event, labels, reference="b")
    assert isinstance(default, HazardRatio) and default.reference == "a" and flipped.reference == "b"
    np.testing.assert_allclose(
        [flipped.hr, flipped.lower, flipped.upper], [1 / default.hr, 1 / default.upper, 1 / default.lower], rtol=1e-9
    )
    np.testing.assert_allclose(flipped.p_value, default.p_value, rtol=1e-9)
    numeric = hazard_ratio(time, event.astype(int), group.astype(int))
    np.testing.assert_allclose(numeric.hr, default.hr, rtol=1e-12)


@pytest.mark.parametrize(
    ("time", "event", "group", "match"),
    [
        ([1, 2, 3, 4], [1, 1, 0, 0], [0, 0, 1, 1], r"not estimable \(its maximum-likelihood value is 0\)"),
        ([1, 2, 3, 4], [1, 1, 0, 0], [1, 1, 0, 0], r"not estimable \(its maximum-likelihood value is infinite\)"),
        # group 0's events all come after group 1 has left: monotone likelihood despite events in both
        ([1, 2, 5, 6], [1, 0, 1, 1], [1, 1, 0, 0], r"value is infinite.*no patient of group 0 \(2 events in all\)"),
        ([1, 2, 3, 4], [0, 0, 0, 0], [0, 1, 0, 1], "not estimable"),
    ],
)
def test_hazard_ratio_not_estimable(time: list, event: list, group: list, match: str, cox_path: str) -> None:
    with pytest.raises(ParameterError, match=match):
        hazard_ratio(time, event, group)


# ----------------------------------------------------------------------------- smooth KM
@pytest.mark.parametrize("censoring", [False, True])
def test_smooth_survival_converges_to_kaplan_meier(censoring: bool) -> None:
    rng = np.random.default_rng(7)
    time = np.round(rng.exponential(300.0, 80), 1)
    event = rng.random(80) < 0.7 if censoring else np.ones(80, bool)
    km = kaplan_meier(time, event)
    # evaluate half-way between consecutive distinct times (and past the end): gap >= 0.05 day
    distinct = np.unique(time)
    t = np.append((distinct[:-1] + distinct[1:]) / 2.0, distinct[-1] + 10.0)
    gap = np.min(np.abs(t[:, None] - distinct))
    errors = [
        np.max(np.abs(smooth_survival_at(time, event, t, bandwidth_day=h) - km.survival_at(t)))
        for h in (30.0, 3.0, 0.3, gap / 40.0)
    ]
    assert all(a > b for a, b in itertools.pairwise(errors))
    assert errors[-1] < 1e-12  # bound expit(-40) ~ 4e-18, plus rounding
    # at an event time the surrogate tends to the mid-point of the jump
    t_event = time[event][0]
    mid = (km.survival_at(t_event - 1e-9) + km.survival_at(t_event)) / 2.0
    assert smooth_survival_at(time, event, t_event, bandwidth_day=1e-6) == pytest.approx(mid, abs=1e-12)


def test_smooth_survival_no_censoring_formula() -> None:
    # no censoring: S~(t) = mean_i expit((T_i - t) / h), a smooth empirical survival function
    time = np.array([2.0, 5.0, 5.0, 9.0])
    t = np.array([0.0, 4.0, 7.5])
    expected = np.mean(1.0 / (1.0 + np.exp(-(time[None, :] - t[:, None]) / 1.5)), axis=1)
    np.testing.assert_allclose(smooth_survival_at(time, [1, 1, 1, 1], t, bandwidth_day=1.5), expected, rtol=1e-13)
    assert isinstance(smooth_survival_at(time, [1, 1, 1, 1], 4.0, bandwidth_day=1.5), float)


# ----------------------------------------------------------------------------- validation
BAD_INPUTS = [
    (lambda: kaplan_meier([1, 2, 3], [1, 0]), "event has 2 entries but time_day has 3"),
    (lambda: kaplan_meier([1, -2, 3], [1, 0, 1]), r"time_day must be finite and >= 0, got -2.0 at index 1"),
    (lambda: kaplan_meier([1, np.nan], [1, 0]), r"time_day must be finite and >= 0, got nan at index 1"),
    (lambda: kaplan_meier([1, np.inf], [1, 0]), "time_day must be finite"),
    (lambda: kaplan_meier([], []), "time_day must be a non-empty 1-D sequence"),
    (lambda: kaplan_meier([[1, 2]], [[1, 0]]), "time_day must be a non-empty 1-D sequence"),
    (lambda: kaplan_meier(["a", "b"], [1, 0]), "time_day must be numeric"),
    (lambda: kaplan_meier([1, 2], [1, 2]), r"event must be 0/1 or bool, got 2 at index 1"),
    (lambda: kaplan_meier([1, 2], [1, 0.5]), "event must be 0/1 or bool"),
    (lambda: kaplan_meier([1, 2], ["yes", "no"]), "event must be 0/1 or bool"),
    (lambda: kaplan_meier([1, 2], [1, 0], alpha=0.0), r"alpha must be in \(0, 1\), got 0.0"),
    (lambda: kaplan_meier([1, 2], [1, 0], alpha=1.5), r"alpha must be in \(0, 1\), got 1.5"),
    (lambda: kaplan_meier([1, 2], [1, 0], alpha=float("nan")), r"alpha must be in \(0, 1\)"),
    (lambda: kaplan_meier([1, 2], [1, 0]).survival_at(-1.0), r"t_day must be finite and >= 0, got -1.0"),
    (lambda: kaplan_meier([1, 2], [1, 0]).landmark([1.0, 2.0]), "t_day must be a single time"),
    (lambda: kaplan_meier([1, 2], [1, 0]).numbers_at_risk([1.0, np.nan]), "times_day must be finite"),
    (lambda: logrank_test([1, 2], [1], [1], [1]), "event_a has 1 entries but time_a has 2"),
    (lambda: logrank_test([1], [1], [-1], [1]), "time_b must be finite and >= 0"),
    (lambda: hazard_ratio([1, 2, 3], [1, 1, 1], [0, 0, 0]), r"group must have exactly two levels, got 1: \[0\]"),
    (lambda: hazard_ratio([1, 2, 3], [1, 1, 1], ["a", "b", "c"]), "exactly two levels, got 3"),
    (lambda: hazard_ratio([1, 2, 3], [1, 1, 1], [0, 1]), "group has 2 entries but time_day has 3"),
    (lambda: hazard_ratio([1, 2, 3], [1, 1, 1], [0.0, 1.0, np.nan]), "group must not contain NaN"),
    (lambda: hazard_ratio([1, 2], [1, 1], ["a", "b"], reference="c"), "reference must be one of the group levels"),
    (lambda: hazard_ratio([1, 2], [1, 1], [0, 1], alpha=-0.1), "alpha must be in"),
    (lambda: smooth_survival_at([1, 2], [1, 1], 1.0, bandwidth_day=0.0), "bandwidth_day must be a finite number > 0"),
    (lambda: smooth_survival_at([1, 2], [1, 1], -3.0, bandwidth_day=1.0), "t_day must be finite and >= 0"),
]


@pytest.mark.parametrize(("call", "match"), BAD_INPUTS)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        call()
