"""Survival endpoints: Kaplan-Meier, log-rank test, Cox hazard ratio, smooth KM surrogate.

Simulated patients are scored exactly as trial patients are, so each estimator is the
standard trial analysis (tested against lifelines):

* :func:`kaplan_meier`: product limit (Kaplan & Meier 1958, JASA 53:457), Greenwood (1926)
  variance, log(-log) band (Kalbfleisch & Prentice 1980, *The Statistical Analysis of Failure
  Time Data*, sec. 1.3; lifelines' and R's ``conf.type="log-log"``), median with the
  band-crossing interval of Brookmeyer & Crowley (1982, Biometrics 38:29).
* :func:`logrank_test`: Mantel (1966, Cancer Chemother Rep 50:163), chi-squared with 1 df.
* :func:`hazard_ratio`: Cox (1972, JRSS-B 34:187) model with one binary covariate, Efron
  (1977, JASA 72:557) ties, Wald interval and p-value.
* :func:`smooth_survival_at`: a differentiable KM surrogate for calibration.

Interval censoring: trials see progression only at scans, so progression times are
interval-censored. These functions do not model that; they take the times given, and
the caller passes scan days (as trial reports do).

Inputs are validated before any work; bad values raise
:class:`~abscopal.errors.ParameterError` naming the argument, showing the value and
saying how to fix it. Functions are pure; results are immutable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, ndtri
from scipy.stats import chi2

from ..errors import ParameterError, SolverError

__all__ = [
    "DAYS_PER_MONTH",
    "HazardRatio",
    "KaplanMeier",
    "LogRankResult",
    "hazard_ratio",
    "kaplan_meier",
    "logrank_test",
    "smooth_survival_at",
]

DAYS_PER_MONTH = 30.44  # mean calendar month (365.25 / 12 d), the usual convention for survival medians
_FloatArray = NDArray[np.float64]
_IntArray = NDArray[np.int64]
# An estimate within this of 0.5 counts as reaching 0.5: exact-arithmetic ties such as
# S = 5/10 must not depend on the last bit of a floating-point product.
_CROSSING_TOL = 1e-12


# ----------------------------------------------------------------------------- validation
def _show(array: NDArray[Any], bad: NDArray[np.bool_]) -> str:
    index = int(np.argmax(bad))
    return f"{array[index].item()!r} at index {index}"


def _vector(name: str, value: ArrayLike) -> NDArray[Any]:
    array = np.asarray(value)
    if array.ndim != 1 or array.size == 0:
        raise ParameterError(f"{name} must be a non-empty 1-D sequence, got {value!r}; give one entry per patient")
    return array


def _points(name: str, value: ArrayLike) -> _FloatArray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ParameterError(f"{name} must be numeric, got {value!r}; give times as numbers")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array) | (array < 0.0)
    if np.any(bad):
        shown = repr(float(array)) if array.ndim == 0 else _show(array.ravel(), bad.ravel())
        raise ParameterError(f"{name} must be finite and >= 0, got {shown}; give non-negative finite times")
    return array


def _times(name: str, value: ArrayLike) -> _FloatArray:
    return _points(name, _vector(name, value))


def _events(name: str, value: ArrayLike, n: int, times_name: str) -> NDArray[np.bool_]:
    array = _vector(name, value)
    if array.size != n:
        raise ParameterError(f"{name} has {array.size} entries but {times_name} has {n}; give one flag per time")
    bad = np.ones(n, bool) if array.dtype.kind not in "biuf" else (array != 0) & (array != 1)
    if np.any(bad):
        raise ParameterError(f"{name} must be 0/1 or bool, got {_show(array, bad)}; give 1 (event) or 0 (censored)")
    return array.astype(bool)


def _alpha(alpha: float) -> float:
    if not (isinstance(alpha, int | float | np.floating) and 0.0 < alpha < 1.0):
        raise ParameterError(f"alpha must be in (0, 1), got {alpha!r}; use e.g. 0.05 for a 95% interval")
    return float(alpha)


def _out(values: NDArray[Any], like: _FloatArray) -> Any:
    """Scalar in, Python scalar out; array in, array out."""
    return values.item() if like.ndim == 0 else values


# ----------------------------------------------------------------------------- Kaplan-Meier
@dataclass(frozen=True, eq=False)
class KaplanMeier:
    """A Kaplan-Meier estimate (Kaplan & Meier 1958) with its pointwise confidence band.

    Attributes
    ----------
    time_day
        Distinct event and censoring times, ascending, starting at 0.
    survival
        Product-limit estimate ``S(t) = prod_{t_j <= t} (1 - d_j / n_j)`` at ``time_day``.
    lower, upper
        Pointwise ``1 - alpha`` band: Greenwood (1926) variance on the log(-log) scale
        (Kalbfleisch & Prentice 1980), ``S ** exp(+-z sigma / log S)`` with
        ``sigma**2 = sum d_j / (n_j (n_j - d_j))``; equal to ``S`` where ``S`` is 0 or 1.
    at_risk
        Patients at risk just before each time (``T_i >= t``).
    events, censored
        Events and censorings at each time.
    alpha
        Significance level of the band. Arrays are read-only; the estimate is a
        right-continuous step function.
    """

    time_day: _FloatArray
    survival: _FloatArray
    lower: _FloatArray
    upper: _FloatArray
    at_risk: _IntArray
    events: _IntArray
    censored: _IntArray
    alpha: float

    def _index(self, name: str, t_day: ArrayLike) -> tuple[NDArray[np.intp], _FloatArray]:
        t = _points(name, t_day)
        return np.searchsorted(self.time_day, t, side="right") - 1, t

    def survival_at(self, t_day: ArrayLike) -> Any:
        """``S(t_day)`` (float, or array shaped like ``t_day``); right-continuous, last value after the end."""
        index, t = self._index("t_day", t_day)
        return _out(self.survival[index], t)

    def landmark(self, t_day: float) -> tuple[float, float, float]:
        """Landmark survival ``(estimate, lower, upper)`` at one time ``t_day`` (days)."""
        index, t = self._index("t_day", t_day)
        if t.ndim != 0:
            raise ParameterError(f"t_day must be a single time, got {t_day!r}; call landmark once per time")
        return float(self.survival[index]), float(self.lower[index]), float(self.upper[index])

    def median_day(self) -> float:
        """Median survival: the first time with ``S(t) <= 0.5`` (as lifelines); inf if not reached."""
        return _first_crossing(self.time_day, self.survival)

    def median_ci_day(self) -> tuple[float, float]:
        """Confidence interval of the median (Brookmeyer & Crowley 1982 style).

        The limits are the first times at which the lower and the upper band reach 0.5,
        i.e. lifelines' ``median_survival_times(kmf.confidence_interval_)``; a limit is
        inf when its band never reaches 0.5.
        """
        return _first_crossing(self.time_day, self.lower), _first_crossing(self.time_day, self.upper)

    def numbers_at_risk(self, times_day: ArrayLike) -> Any:
        """Numbers at risk ``#{T_i >= t}`` at ``times_day`` (R ``summary.survfit`` ``n.risk``), for KM plots.

        Int, or int array shaped like ``times_day``. lifelines' ``add_at_risk_counts`` instead
        shows ``#{T_i > t}`` when ``t`` is itself an observation time.
        """
        t = _points("times_day", times_day)
        index = np.searchsorted(self.time_day, t, side="left")
        padded = np.append(self.at_risk, 0)
        return _out(padded[index], t)


def _first_crossing(time_day: _FloatArray, curve: _FloatArray, level: float = 0.5) -> float:
    reached = curve <= level + _CROSSING_TOL
    return float(time_day[np.argmax(reached)]) if np.any(reached) else float("inf")


def _table(time: _FloatArray, event: NDArray[np.bool_]) -> tuple[_FloatArray, _IntArray, _IntArray, _IntArray]:
    """Distinct times (with 0 prepended if absent), at-risk counts, events, censorings."""
    times, inverse = np.unique(time, return_inverse=True)
    events = np.bincount(inverse, weights=event.astype(np.float64), minlength=times.size).astype(np.int64)
    removed = np.bincount(inverse, minlength=times.size).astype(np.int64)
    at_risk = time.size - np.concatenate(([0], np.cumsum(removed)[:-1]))
    if times[0] > 0.0:
        times, at_risk = np.append(0.0, times), np.append(time.size, at_risk)
        events, removed = np.append(0, events), np.append(0, removed)
    return times, at_risk, events, removed - events


def kaplan_meier(time_day: ArrayLike, event: ArrayLike, *, alpha: float = 0.05) -> KaplanMeier:
    """Kaplan-Meier estimate with a log(-log) Greenwood confidence band.

    Parameters
    ----------
    time_day
        Event or censoring time of each patient, days (finite, >= 0). For progression,
        pass the scan day at which progression was seen.
    event
        1/True if the event was observed, 0/False if censored.
    alpha
        Significance level of the pointwise band and of the median interval, in (0, 1).

    Returns
    -------
    KaplanMeier
        Estimate, band, at-risk table and query methods.

    Notes
    -----
    Kaplan & Meier (1958) product limit; Greenwood (1926) variance; log(-log) band of
    Kalbfleisch & Prentice (1980), the lifelines default; tied events precede tied
    censorings. Matches lifelines ``KaplanMeierFitter`` (tested to 1e-10 / 1e-8).
    """
    time = _times("time_day", time_day)
    flags = _events("event", event, time.size, "time_day")
    z = float(ndtri(1.0 - _alpha(alpha) / 2.0))
    times, at_risk, events, censored = _table(time, flags)
    survival = np.cumprod(1.0 - events / at_risk, dtype=np.float64)
    survivors = at_risk - events
    safe = np.where(survivors > 0, at_risk * survivors, 1)
    greenwood = np.cumsum(np.where(survivors > 0, events / safe, 0.0))
    inside = (survival > 0.0) & (survival < 1.0)
    log_s = np.log(np.where(inside, survival, 0.5))
    shift = np.where(inside, z * np.sqrt(greenwood) / log_s, 0.0)  # log_s < 0
    lower = np.where(inside, np.exp(log_s * np.exp(-shift)), survival)
    upper = np.where(inside, np.exp(log_s * np.exp(shift)), survival)
    km = KaplanMeier(times, survival, lower, upper, at_risk, events, censored, alpha=float(alpha))
    for array in (times, survival, lower, upper, at_risk, events, censored):
        array.flags.writeable = False
    return km


# ----------------------------------------------------------------------------- log-rank
class LogRankResult(NamedTuple):
    """Log-rank test result: chi-squared statistic (1 df) and its p-value."""

    statistic: float
    p_value: float


def logrank_test(time_a: ArrayLike, event_a: ArrayLike, time_b: ArrayLike, event_b: ArrayLike) -> LogRankResult:
    """Two-sample log-rank test (Mantel 1966).

    Parameters
    ----------
    time_a, time_b
        Event or censoring times of arms a and b (same unit for both, finite, >= 0).
    event_a, event_b
        1/True for an observed event, 0/False for censoring.

    Returns
    -------
    LogRankResult
        ``(statistic, p_value)``: ``(O_a - E_a)^2 / V`` with the hypergeometric variance
        ``V = sum n_a n_b d (n - d) / (n^2 (n - 1))``, referred to chi-squared, 1 df.
        Matches lifelines ``logrank_test``.

    Raises
    ------
    ParameterError
        If ``V = 0`` (no event time with both arms at risk and survivors): the test has no
        information (lifelines silently returns statistic 0, p 1).
    """
    ta, tb = _times("time_a", time_a), _times("time_b", time_b)
    ea = _events("event_a", event_a, ta.size, "time_a")
    eb = _events("event_b", event_b, tb.size, "time_b")
    time, event = np.concatenate((ta, tb)), np.concatenate((ea, eb))
    in_a = np.concatenate((np.ones(ta.size, bool), np.zeros(tb.size, bool)))
    n, n_a, d, d_a = _two_group_table(time, event, in_a)
    expected = n_a * d / n
    variance = np.sum(n_a * (n - n_a) * d * (n - d) / (n**2 * np.maximum(n - 1, 1)))
    if not variance > 0.0:
        raise ParameterError(
            f"log-rank test undefined: arms have {int(ea.sum())} and {int(eb.sum())} events and no event time "
            f"with both arms at risk and survivors (variance 0); check the event flags or extend follow-up"
        )
    statistic = float(np.sum(d_a - expected) ** 2 / variance)
    return LogRankResult(statistic, float(chi2.sf(statistic, 1)))


def _two_group_table(time: _FloatArray, event: NDArray[np.bool_], in_1: NDArray[np.bool_]) -> tuple[_FloatArray, ...]:
    """At each distinct event time: at risk (all, group 1), events (all, group 1)."""
    event_times = np.unique(time[event])
    order = np.sort(time)
    order_1 = np.sort(time[in_1])
    n = (time.size - np.searchsorted(order, event_times, side="left")).astype(float)
    n_1 = (order_1.size - np.searchsorted(order_1, event_times, side="left")).astype(float)
    index = np.searchsorted(event_times, time[event])
    d = np.bincount(index, minlength=event_times.size).astype(float)
    # numpy's stubs type bincount as integer; with weights it returns float64
    d_1: _FloatArray = np.bincount(index, weights=in_1[event], minlength=event_times.size)  # type: ignore[assignment]
    return n, n_1, d, d_1


# ----------------------------------------------------------------------------- Cox model
@dataclass(frozen=True)
class HazardRatio:
    """Hazard ratio of ``comparator`` vs ``reference`` from a Cox model (Cox 1972).

    Attributes
    ----------
    hr, lower, upper
        ``exp(beta)`` and its Wald ``1 - alpha`` interval ``exp(beta +- z se)``.
    p_value
        Wald test of ``beta = 0`` (chi-squared, 1 df).
    method
        ``"cox (lifelines)"`` or ``"cox (abscopal)"`` (the built-in fallback).
    reference, comparator
        The levels compared (``hr < 1``: lower hazard in ``comparator``).
    """

    hr: float
    lower: float
    upper: float
    p_value: float
    method: str
    reference: Any = None
    comparator: Any = None


def _group(group: ArrayLike, n: int, reference: Any) -> tuple[NDArray[np.float64], Any, Any]:
    array = _vector("group", group)
    if array.size != n:
        raise ParameterError(f"group has {array.size} entries but time_day has {n}; give one group label per time")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ParameterError(
            f"group must not contain NaN/inf, got {_show(array, ~np.isfinite(array))}; drop patients without a group"
        )
    try:
        levels = np.unique(array)
    except TypeError as exc:
        raise ParameterError(f"group labels must be comparable, got {group!r}; use one type of label") from exc
    if levels.size != 2:
        raise ParameterError(
            f"group must have exactly two levels, got {levels.size}: {levels.tolist()!r}; compare two arms at a time"
        )
    names = levels.tolist()
    if reference is not None and reference not in names:
        raise ParameterError(
            f"reference must be one of the group levels {names!r}, got {reference!r}; pick the control arm's label"
        )
    treated = 0 if reference is not None and reference == names[1] else 1
    return (array == levels[treated]).astype(np.float64), names[1 - treated], names[treated]


def _efron_terms(time: _FloatArray, event: NDArray[np.bool_], x: _FloatArray) -> tuple[_FloatArray, ...]:
    """Efron (1977) risk-set terms ``a0 + a1 exp(beta)``, one per tied death (k = 0..d-1)."""
    n, n_1, d, d_1 = _two_group_table(time, event, x.astype(bool))
    repeats = d.astype(np.int64)
    k_over_d = (np.arange(repeats.sum()) - np.repeat(np.cumsum(repeats) - repeats, repeats)) / np.repeat(d, repeats)
    a0 = np.repeat(n - n_1, repeats) - k_over_d * np.repeat(d - d_1, repeats)
    a1 = np.repeat(n_1, repeats) - k_over_d * np.repeat(d_1, repeats)
    return a0, a1


def _check_estimable(time: _FloatArray, event: NDArray[np.bool_], x: _FloatArray, levels: tuple[Any, Any]) -> None:
    """Raise if the partial likelihood is monotone (maximum-likelihood HR 0 or infinite).

    The score tends to ``sum_j d1_j 1{n0_j > 0}`` as ``beta -> -inf`` and to
    ``-sum_j d0_j 1{n1_j > 0}`` as ``beta -> +inf``; a finite root needs both nonzero.
    """
    (reference, comparator), (n, n_1, d, d_1) = levels, _two_group_table(time, event, x.astype(bool))
    n_0, d_0 = n - n_1, d - d_1
    for events, others_at_risk, who, other, limit in (
        (d_1, n_0, comparator, reference, "0"),
        (d_0, n_1, reference, comparator, "infinite"),
    ):
        if not np.any((events > 0) & (others_at_risk > 0)):
            raise ParameterError(
                f"hazard ratio of group {comparator!r} vs {reference!r} is not estimable (its maximum-likelihood "
                f"value is {limit}): no patient of group {who!r} ({int(events.sum())} events in all) has an event "
                f"while group {other!r} is at risk; check event and group, or report logrank_test instead"
            )


def _cox_abscopal(time: _FloatArray, event: NDArray[np.bool_], x: _FloatArray) -> tuple[float, float]:
    """Newton-Raphson with step halving on the Efron partial log-likelihood (concave in beta)."""
    a0, a1 = _efron_terms(time, event, x)
    deaths_1 = float(np.sum(x[event]))
    with np.errstate(divide="ignore"):
        log_a0, log_a1 = np.log(a0), np.log(a1)

    def loglik(beta: float) -> float:
        return beta * deaths_1 - float(np.sum(np.logaddexp(log_a0, log_a1 + beta)))

    def derivatives(beta: float) -> tuple[float, float]:
        p = np.exp(log_a1 + beta - np.logaddexp(log_a0, log_a1 + beta))
        return deaths_1 - float(np.sum(p)), float(np.sum(p * (1.0 - p)))

    beta = 0.0
    for _ in range(200):
        score, information = derivatives(beta)
        step, current = score / information, loglik(beta)
        while loglik(beta + step) < current - 1e-12 * abs(current) and abs(step) > 1e-14:
            step /= 2.0
        beta += step
        if abs(step) < 1e-12 * max(1.0, abs(beta)):
            return beta, 1.0 / np.sqrt(derivatives(beta)[1])
    raise SolverError(f"Cox Newton-Raphson did not converge (beta = {beta!r}); report this data set")


def _cox_lifelines(time: _FloatArray, event: NDArray[np.bool_], x: _FloatArray) -> tuple[float, float]:
    import pandas as pd
    from lifelines import CoxPHFitter

    frame = pd.DataFrame({"time_day": time, "event": event.astype(np.int64), "x": x})
    fitter = CoxPHFitter().fit(
        frame, duration_col="time_day", event_col="event", fit_options={"precision": 1e-16, "r_precision": 1e-16}
    )
    return float(fitter.params_["x"]), float(fitter.standard_errors_["x"])


def hazard_ratio(
    time_day: ArrayLike, event: ArrayLike, group: ArrayLike, *, alpha: float = 0.05, reference: Any = None
) -> HazardRatio:
    """Cox proportional-hazards hazard ratio for one binary covariate (two arms).

    Parameters
    ----------
    time_day
        Event or censoring time of each patient, days (finite, >= 0).
    event
        1/True for an observed event, 0/False for censoring.
    group
        Arm label of each patient; exactly two distinct levels.
    alpha
        Significance level of the confidence interval, in (0, 1).
    reference
        The control level; default the first level in sorted order (``False``, ``0``, or
        alphabetically first). The HR is that of the other level relative to it.

    Returns
    -------
    HazardRatio
        HR with Wald interval and p-value.

    Raises
    ------
    ParameterError
        For invalid input, and when the maximum-likelihood HR is 0 or infinite (e.g. no
        events in one group). We raise rather than return inf with a warning: an infinite
        HR would silently poison calibration losses (lifelines returns a meaningless large
        coefficient with a ConvergenceWarning).

    Notes
    -----
    Cox (1972) partial likelihood with Efron (1977) ties, lifelines' only method (same as
    Breslow's without ties). Fitted by lifelines ``CoxPHFitter`` if importable (tight
    tolerances: its defaults stop up to ~3e-4 short in log HR), else by the built-in
    Newton-Raphson; the two agree to 1e-6 in log HR (tested).
    """
    time = _times("time_day", time_day)
    flags = _events("event", event, time.size, "time_day")
    x, reference, comparator = _group(group, time.size, reference)
    z = float(ndtri(1.0 - _alpha(alpha) / 2.0))
    _check_estimable(time, flags, x, (reference, comparator))
    try:
        import lifelines  # noqa: F401
    except ImportError:
        (beta, se), method = _cox_abscopal(time, flags, x), "cox (abscopal)"
    else:
        (beta, se), method = _cox_lifelines(time, flags, x), "cox (lifelines)"
    p_value = float(chi2.sf((beta / se) ** 2, 1))
    return HazardRatio(
        float(np.exp(beta)),
        float(np.exp(beta - z * se)),
        float(np.exp(beta + z * se)),
        p_value,
        method,
        reference,
        comparator,
    )


# ----------------------------------------------------------------------------- smooth KM
def smooth_survival_at(time_day: ArrayLike, event: ArrayLike, t_day: ArrayLike, *, bandwidth_day: float) -> Any:
    """Differentiable surrogate of the Kaplan-Meier estimate at ``t_day``.

    KM is a weighted empirical distribution, ``S(t) = 1 - sum_i w_i 1{T_i <= t}``, with
    ``w_i`` the KM jump at patient ``i``'s event (0 if censored, ``1/n`` without censoring):
    the redistribution to the right of Efron (1967, Proc 5th Berkeley Symp 4:831), i.e. the
    inverse-probability-of-censoring weights of Satten & Datta (2001, Am Stat 55:207). Replacing each indicator by a
    logistic gives ``S~(t) = 1 - sum_i w_i expit((t - T_i) / bandwidth_day)``, smooth in
    ``t`` and, with the weights held fixed (exactly so without censoring), in the ``T_i``.
    Calibration uses it to compare "simulated survival at the reported median" with 0.5
    without the zero gradients of a step function. As ``bandwidth_day -> 0`` it tends to
    KM at every ``t`` that is not an event time (to the mid-point of the jump at one).

    Parameters
    ----------
    time_day, event
        Event or censoring times (days, finite, >= 0) and event flags (1/True = event).
    t_day
        Time(s) at which to evaluate, days (finite, >= 0).
    bandwidth_day
        Logistic scale in days, > 0; the error is at most ``expit(-gap / bandwidth_day)``,
        ``gap`` the distance from ``t_day`` to the nearest event time.

    Returns
    -------
    float or numpy.ndarray
        ``S~(t_day)``, shaped like ``t_day``.
    """
    time = _times("time_day", time_day)
    flags = _events("event", event, time.size, "time_day")
    t = _points("t_day", t_day)
    if not (isinstance(bandwidth_day, int | float | np.floating) and np.isfinite(bandwidth_day) and bandwidth_day > 0):
        raise ParameterError(
            f"bandwidth_day must be a finite number > 0, got {bandwidth_day!r}; "
            f"use e.g. a few days (small relative to the median)"
        )
    times, at_risk, events, _ = _table(time, flags)
    survival = np.cumprod(1.0 - events / at_risk, dtype=np.float64)
    jumps = -np.diff(survival, prepend=1.0)
    smooth = 1.0 - expit((t[..., None] - times) / float(bandwidth_day)) @ jumps
    return _out(np.asarray(smooth), t)
