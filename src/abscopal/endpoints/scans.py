"""Tumour-assessment (scan) schedules: the days on which RECIST is scored.

Trials report PFS and response on their scan grid (PFS is measured at scan visits), e.g. every 6 weeks for a
year, then every 9 or 12 weeks (KEYNOTE-010 scanned every 9 weeks: Herbst RS et al., Lancet 2016;387:1540-1550).
Two schedules:

* :class:`ScanSchedule`: a baseline scan, then a regular interval up to ``switch_week``, then a
  longer interval up to ``end_day``;
* :class:`ExplicitScans`: any strictly increasing list of days (e.g. PEMBRO-RT's week-12 scan, or
  an extra iRECIST confirmation scan).

Both are frozen keyword-only dataclasses with ``visit_days()`` (days since the reference day of
the simulation, baseline first) and ``describe()``. :func:`as_visit_days` accepts either, or a
plain array of days, and validates it. Invalid schedules raise :class:`~abscopal.errors.ScheduleError`.
:func:`events_seen` counts the events (e.g. new lesions) visible at each scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ParameterError, ScheduleError

__all__ = ["ExplicitScans", "ScanSchedule", "as_visit_days", "events_seen"]

_DAYS_PER_WEEK = 7.0
# Rounding slack when deciding whether a computed visit falls on or before a limit (days).
_TOL_DAY = 1e-9


def _real(name: str, value: object, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a float, or raise ScheduleError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(float(value)):
        raise ScheduleError(f"{name} must be a number, got {value!r}; give a finite number")
    if not allow_inf and math.isinf(float(value)):
        raise ScheduleError(f"{name} must be finite, got {value!r}; give a finite number")
    return float(value)


def _check_increasing(name: str, days: NDArray[np.float64], fix: str) -> None:
    """Raise ScheduleError naming the first entry of ``days`` that is not after its predecessor."""
    bad = np.flatnonzero(np.diff(days) <= 0.0)
    if bad.size:
        i = int(bad[0]) + 1
        raise ScheduleError(
            f"{name} must be strictly increasing, but {name}[{i}] = {float(days[i])!r} is not after "
            f"{name}[{i - 1}] = {float(days[i - 1])!r}; {fix}"
        )


def _validated(name: str, visits: object, fix: str) -> NDArray[np.float64]:
    """Return ``visits`` as a 1-D, finite, strictly increasing float array, or raise ScheduleError."""
    try:
        days = np.asarray(visits, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ScheduleError(f"{name} must be numeric, got {visits!r}; {fix}") from exc
    if days.ndim != 1 or days.size == 0:
        raise ScheduleError(f"{name} must be a non-empty 1-D array, got shape {days.shape}; {fix}")
    bad = np.flatnonzero(~np.isfinite(days))
    if bad.size:
        i = int(bad[0])
        raise ScheduleError(f"{name} must be finite, but {name}[{i}] = {float(days[i])!r}; {fix}")
    _check_increasing(name, days, fix)
    return days


@dataclass(frozen=True, kw_only=True)
class ScanSchedule:
    """Baseline scan, then every ``interval_week`` until ``switch_week``, then every ``later_interval_week``.

    Attributes
    ----------
    interval_week
        Weeks between scans during the first phase, > 0 (default 6).
    switch_week
        Weeks after baseline up to which (inclusive) the first interval applies, >= 0 (default 52;
        ``math.inf`` for a single interval throughout).
    later_interval_week
        Weeks between scans after the switch, > 0 (default 9).
    baseline_day
        Day of the baseline scan (visit 0).
    end_day
        Last day on which a scan may fall (inclusive), >= ``baseline_day`` (default 730, two years).

    Notes
    -----
    The later phase continues from the last first-phase scan, not from ``switch_week``: with the
    defaults the scans are at weeks 0, 6, ..., 48 (54 > 52), then 57, 66, ... This follows protocols
    worded "every 6 weeks for 48 weeks, then every 9 weeks" (an assumption where a protocol says
    "for a year"; use :class:`ExplicitScans` for any other calendar).

    Examples
    --------
    >>> ScanSchedule(end_day=120.0).visit_days()
    array([ 0., 42., 84.])
    """

    interval_week: float = 6.0
    switch_week: float = 52.0
    later_interval_week: float = 9.0
    baseline_day: float = 0.0
    end_day: float = 730.0

    def __post_init__(self) -> None:
        for name in ("interval_week", "later_interval_week"):
            value = _real(name, getattr(self, name))
            if value <= 0.0:
                raise ScheduleError(f"{name} must be > 0, got {value!r}; give a positive interval in weeks")
            object.__setattr__(self, name, value)
        switch = _real("switch_week", self.switch_week, allow_inf=True)
        if switch < 0.0:
            raise ScheduleError(f"switch_week must be >= 0, got {switch!r}; give weeks after baseline")
        object.__setattr__(self, "switch_week", switch)
        baseline = _real("baseline_day", self.baseline_day)
        end = _real("end_day", self.end_day)
        if end < baseline:
            raise ScheduleError(f"end_day must be >= baseline_day = {baseline!r}, got {end!r}; give a later end_day")
        object.__setattr__(self, "baseline_day", baseline)
        object.__setattr__(self, "end_day", end)

    def visit_days(self) -> NDArray[np.float64]:
        """Return the scan days, baseline first, strictly increasing (float64 array)."""
        step = self.interval_week * _DAYS_PER_WEEK
        span = min(self.switch_week * _DAYS_PER_WEEK, self.end_day - self.baseline_day)
        # Multiples of the step (no accumulated rounding); the slack keeps e.g. week 48 of 48.
        early = self.baseline_day + step * np.arange(math.floor(span / step + _TOL_DAY) + 1)
        later_step = self.later_interval_week * _DAYS_PER_WEEK
        n_later = math.floor((self.end_day - early[-1]) / later_step + _TOL_DAY)
        later = early[-1] + later_step * np.arange(1, n_later + 1)
        return np.concatenate([early, later])

    def describe(self) -> str:
        """Return e.g. ``"scans every 6 wk to week 52, then every 9 wk, days 0-730"``."""
        first = f"scans every {self.interval_week:g} wk"
        if math.isfinite(self.switch_week):
            first += f" to week {self.switch_week:g}, then every {self.later_interval_week:g} wk"
        return f"{first}, days {self.baseline_day:g}-{self.end_day:g}"


@dataclass(frozen=True, kw_only=True)
class ExplicitScans:
    """Scans on explicit days (baseline first).

    Attributes
    ----------
    days
        Strictly increasing, finite scan days; ``days[0]`` is the baseline scan. Stored as a tuple
        of floats.

    Examples
    --------
    >>> ExplicitScans(days=(0, 84)).visit_days()
    array([ 0., 84.])
    """

    days: tuple[float, ...]

    def __post_init__(self) -> None:
        fix = "give strictly increasing scan days, baseline first, e.g. (0, 42, 84)"
        days = _validated("days", self.days, fix)
        object.__setattr__(self, "days", tuple(float(d) for d in days))

    def visit_days(self) -> NDArray[np.float64]:
        """Return the scan days as a float64 array."""
        return np.asarray(self.days, dtype=np.float64)

    def describe(self) -> str:
        """Return e.g. ``"scans on days 0, 42, 84"``."""
        return "scans on days " + ", ".join(f"{d:g}" for d in self.days)


def as_visit_days(visits: ScanSchedule | ExplicitScans | ArrayLike, name: str = "visit_days") -> NDArray[np.float64]:
    """Return validated scan days from a schedule object or an array of days.

    Parameters
    ----------
    visits
        A :class:`ScanSchedule`, an :class:`ExplicitScans` or a 1-D array of days.
    name
        The argument name used in error messages.

    Returns
    -------
    numpy.ndarray
        The days (float64, 1-D, finite, strictly increasing, at least one: the baseline).

    Raises
    ------
    ScheduleError
        If the days are not 1-D, not finite or not strictly increasing (the message gives the index).
    """
    if isinstance(visits, ScanSchedule | ExplicitScans):
        return visits.visit_days()
    return _validated(name, visits, "give strictly increasing scan days, baseline first (or a ScanSchedule)")


def events_seen(event_day: ArrayLike, visit_days: NDArray[np.float64], *, name: str = "event_day") -> NDArray[np.intp]:
    """Count the events (e.g. new lesions) seen by each scan: those on or before the scan day.

    Parameters
    ----------
    event_day
        Day of each event, after the baseline scan ``visit_days[0]``; ``inf`` for none. A scalar or 1-D.
    visit_days
        Validated scan days (see :func:`as_visit_days`).
    name
        The argument name used in error messages.

    Returns
    -------
    numpy.ndarray
        Integer count per scan.

    Raises
    ------
    ParameterError
        If an event day is NaN or not after the baseline scan.
    """
    events = np.sort(np.atleast_1d(np.asarray(event_day, dtype=np.float64)))
    if events.ndim != 1 or np.any(np.isnan(events)) or np.any(events <= visit_days[0]):
        raise ParameterError(
            f"{name} must be days after the baseline scan (day {visit_days[0]:g}) or inf, got {event_day!r}; "
            "disease present at baseline is a lesion, not an event"
        )
    return np.searchsorted(events, visit_days, side="right")
