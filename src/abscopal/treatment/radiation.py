"""Radiation courses: fraction calendars, target lesions, blood and lung dose.

Time is in days; day 0 is the first checkpoint-inhibitor dose, so radiation given
before the drug has negative days. A :class:`RadiationCourse` is a prescription
(dose per fraction x number of fractions) laid out on a calendar from ``start_day``;
:meth:`RadiationCourse.fractions` expands it into :class:`Fraction` records, the
events the solver applies. A course with ``prior=True`` is the patient's history (RT
given before enrolment, e.g. months before the trial), not protocol treatment: every
fraction of it is before day 0, and the simulation holds the patient's drawn lesion
sizes at the trial's time zero rather than at the start of the history (docs/design.md,
"Time zero").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from numbers import Integral, Real
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from ..errors import ScheduleError
from ..radiobiology import bed, eqd2

__all__ = [
    "DEFAULT_BLOOD_DOSE_RATIO",
    "Daily",
    "EveryOtherDay",
    "ExplicitDays",
    "Fraction",
    "FractionCalendar",
    "RadiationCourse",
    "SpacedPulses",
    "WeekdayDaily",
    "Weekly",
]

# ASSUMPTION: when no blood dose is given, the dose to the circulating blood exposed in
# one fraction is 10% of the prescribed fraction dose. Motivation: circulating
# lymphocytes are killed by the dose to the blood that flows through the field
# (HEDOS blood-flow model, Shin/Grassberger/Paganetti, MGHPhysicsResearch/hedos;
# Phys Med Biol 2021;66(16), doi:10.1088/1361-6560/ac16ea; effective dose to immune cells, EDIC, Jin et al. 2021
# Cancers 13:6193). RTOG 0617 median EDIC was 5.6 Gy for a 60 Gy course
# (Jin 2021, [P]), a ratio of ~0.09, rounded here to 0.1. This is
# an order of magnitude for conventional thoracic RT, not a fitted value: small SBRT
# fields expose less blood. Give blood_dose_per_fraction_gy explicitly when known.
DEFAULT_BLOOD_DOSE_RATIO = 0.1

_DOSE_FIX = "give a non-negative dose in Gy"


def _real(name: str, value: object, fix: str, *, minimum: float | None = None) -> float:
    """Return ``value`` as a finite float (>= ``minimum`` if given), else raise."""
    bad = isinstance(value, bool) or not isinstance(value, Real)
    if bad or not math.isfinite(value):  # type: ignore[arg-type]
        raise ScheduleError(f"{name} must be a finite number, got {value!r}; {fix}")
    if minimum is not None and value < minimum:  # type: ignore[operator]
        raise ScheduleError(f"{name} must be >= {minimum:g}, got {value!r}; {fix}")
    return float(value)  # type: ignore[arg-type]


def _whole(name: str, value: object, fix: str) -> int:
    """Return ``value`` as an int >= 1, else raise ScheduleError naming ``name``."""
    bad = isinstance(value, bool) or not isinstance(value, Integral)
    if bad or value < 1:  # type: ignore[operator]
        raise ScheduleError(f"{name} must be an integer >= 1, got {value!r}; {fix}")
    return int(value)  # type: ignore[call-overload]


def _lesion_tuple(name: str, value: object) -> tuple[int, ...]:
    """Validate a tuple of unique, non-negative 0-based lesion indices."""
    fix = "give unique 0-based lesion indices, e.g. (0,) or (0, 2)"
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ScheduleError(f"{name} must be a tuple of indices, got {value!r}; {fix}")
    lesions = tuple(value)
    if not lesions:
        raise ScheduleError(f"{name} must name a lesion, got {lesions!r}; {fix}")
    for i in lesions:
        if isinstance(i, bool) or not isinstance(i, Integral) or i < 0:
            raise ScheduleError(f"{name} must hold integers >= 0, got {i!r} in {lesions!r}; {fix}")
    if len(set(lesions)) != len(lesions):
        raise ScheduleError(f"{name} must not repeat a lesion, got {lesions!r}; {fix}")
    return tuple(int(i) for i in lesions)


@dataclass(frozen=True, kw_only=True)
class Fraction:
    """One delivered radiation fraction, the event the solver applies.

    Attributes
    ----------
    time_day
        Time of the fraction in days (day 0 = first checkpoint-inhibitor dose).
    dose_gy
        Physical dose to the target lesions in Gy, >= 0.
    lesions
        0-based indices of the lesions in the field.
    blood_dose_gy
        Dose to the circulating blood exposed during this fraction in Gy, >= 0.
    mean_lung_dose_gy
        This fraction's contribution to the physical mean lung dose in Gy, >= 0.
    """

    time_day: float
    dose_gy: float
    lesions: tuple[int, ...]
    blood_dose_gy: float
    mean_lung_dose_gy: float = 0.0

    def __post_init__(self) -> None:
        time = _real("time_day", self.time_day, "give the fraction time in days")
        object.__setattr__(self, "time_day", time)
        for name in ("dose_gy", "blood_dose_gy", "mean_lung_dose_gy"):
            value = _real(name, getattr(self, name), _DOSE_FIX, minimum=0.0)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "lesions", _lesion_tuple("lesions", self.lesions))


@runtime_checkable
class FractionCalendar(Protocol):
    """Lays out ``n`` fractions in time; implemented by the calendar classes below."""

    def days(self, n_fractions: int, start_day: float) -> NDArray[np.float64]:
        """Return the ``n_fractions`` fraction days (strictly increasing)."""
        ...

    def describe(self) -> str:
        """Return a short human label, e.g. ``"weekdays"``."""
        ...


class _Calendar:
    """Shared :meth:`days`: validate, then ``start_day + self._offsets(n)``."""

    def _offsets(self, n: int) -> NDArray[np.float64]:
        raise NotImplementedError

    def days(self, n_fractions: int, start_day: float) -> NDArray[np.float64]:
        """Return the fraction days from ``start_day`` (day of the first fraction).

        Raises
        ------
        ScheduleError
            If ``n_fractions`` is not an integer >= 1 or ``start_day`` is not finite.
        """
        n = _whole("n_fractions", n_fractions, "give a whole number of fractions")
        start = _real("start_day", start_day, "give the day of the first fraction")
        return start + np.asarray(self._offsets(n), dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class WeekdayDaily(_Calendar):
    """One fraction per weekday, Monday to Friday, skipping weekends.

    Attributes
    ----------
    start_weekday
        Weekday of ``start_day``: 0 = Monday ... 4 = Friday (not a weekend day).
    """

    start_weekday: int = 0

    def __post_init__(self) -> None:
        day = self.start_weekday
        if isinstance(day, bool) or not isinstance(day, Integral) or not 0 <= day <= 4:
            raise ScheduleError(
                f"start_weekday must be an integer 0 (Monday) to 4 (Friday), got {day!r}; start the course on a weekday"
            )

    def _offsets(self, n: int) -> NDArray[np.float64]:
        weekdays = (k for k in itertools.count() if (self.start_weekday + k) % 7 < 5)
        return np.fromiter(itertools.islice(weekdays, n), dtype=np.float64, count=n)

    def describe(self) -> str:
        """Return ``"weekdays"``."""
        return "weekdays"


@dataclass(frozen=True, kw_only=True)
class Daily(_Calendar):
    """One fraction every day, weekends included (offsets 0, 1, 2, ...)."""

    def _offsets(self, n: int) -> NDArray[np.float64]:
        return np.arange(n, dtype=np.float64)

    def describe(self) -> str:
        """Return ``"daily"``."""
        return "daily"


@dataclass(frozen=True, kw_only=True)
class EveryOtherDay(_Calendar):
    """One fraction every second calendar day, weekends not skipped (0, 2, 4, ...)."""

    def _offsets(self, n: int) -> NDArray[np.float64]:
        return 2.0 * np.arange(n, dtype=np.float64)

    def describe(self) -> str:
        """Return ``"every other day"``."""
        return "every other day"


@dataclass(frozen=True, kw_only=True)
class Weekly(_Calendar):
    """One fraction every 7 days (0, 7, 14, ...)."""

    def _offsets(self, n: int) -> NDArray[np.float64]:
        return 7.0 * np.arange(n, dtype=np.float64)

    def describe(self) -> str:
        """Return ``"weekly"``."""
        return "weekly"


@dataclass(frozen=True, kw_only=True)
class SpacedPulses(_Calendar):
    """Pulses ``interval_day`` apart (PULSAR-style personalised ultra-fractionated SABR).

    The 10-day default follows the PULSAR modelling papers (Rouf et al. 2024 J Theor
    Biol 111974; Xing et al. 2025 Math Biosci Eng): pulses >= 9-10 days apart synergise
    with checkpoint blockade, 1- or 4-day spacing does not.

    Attributes
    ----------
    interval_day
        Days between pulses, > 0.
    """

    interval_day: float = 10.0

    def __post_init__(self) -> None:
        fix = "give a positive interval in days"
        interval = _real("interval_day", self.interval_day, fix)
        if interval <= 0.0:
            raise ScheduleError(f"interval_day must be > 0, got {interval!r}; {fix}")

    def _offsets(self, n: int) -> NDArray[np.float64]:
        return float(self.interval_day) * np.arange(n, dtype=np.float64)

    def describe(self) -> str:
        """Return e.g. ``"every 10 d"``."""
        return f"every {self.interval_day:g} d"


@dataclass(frozen=True, kw_only=True)
class ExplicitDays(_Calendar):
    """Fractions on explicit day offsets from ``start_day``.

    Attributes
    ----------
    offsets_day
        Strictly increasing, finite offsets in days, one per fraction (usually starting
        at 0, so that ``start_day`` is the first fraction).
    """

    offsets_day: tuple[float, ...]

    def __post_init__(self) -> None:
        fix = "give strictly increasing day offsets, one per fraction, e.g. (0, 2, 7)"
        raw = self.offsets_day
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
            raise ScheduleError(f"offsets_day must be a tuple, got {raw!r}; {fix}")
        offsets = tuple(_real("offsets_day", v, fix) for v in raw)
        if not offsets:
            raise ScheduleError(f"offsets_day must not be empty, got {offsets!r}; {fix}")
        if any(b <= a for a, b in itertools.pairwise(offsets)):
            raise ScheduleError(f"offsets_day must be strictly increasing, got {offsets!r}; {fix}")
        object.__setattr__(self, "offsets_day", offsets)

    def _offsets(self, n: int) -> NDArray[np.float64]:
        if n != len(self.offsets_day):
            raise ScheduleError(
                f"n_fractions must equal len(offsets_day) = {len(self.offsets_day)}, "
                f"got {n}; give one offset per fraction"
            )
        return np.asarray(self.offsets_day, dtype=np.float64)

    def describe(self) -> str:
        """Return e.g. ``"days +0, +2, +7"``."""
        return "days " + ", ".join(f"+{v:g}" for v in self.offsets_day)


@dataclass(frozen=True, kw_only=True)
class RadiationCourse:
    """A course of equal radiation fractions on a calendar.

    Attributes
    ----------
    dose_per_fraction_gy
        Prescribed physical dose per fraction in Gy, > 0.
    n_fractions
        Number of fractions, an integer >= 1.
    calendar
        Lays out the fractions; default :class:`WeekdayDaily` (Mon-Fri).
    start_day
        Day of the first fraction (day 0 = first checkpoint-inhibitor dose; negative =
        RT before the drug).
    target_lesions
        0-based indices of the lesions in the field, non-empty and unique.
    blood_dose_per_fraction_gy
        Dose to the circulating blood exposed per fraction in Gy, >= 0. ``None`` derives
        it as ``DEFAULT_BLOOD_DOSE_RATIO`` (0.1, an assumption; see the module comment)
        times the fraction dose.
    mean_lung_dose_gy
        Physical mean lung dose of the whole course in Gy, >= 0; each fraction carries
        ``mean_lung_dose_gy / n_fractions``. ``None`` means no lung dose (0).
    name
        Optional label, used in error messages and summaries.
    prior
        ``True``: the course is history, given before enrolment (e.g. palliative RT months
        before the trial), not protocol treatment. Every fraction must be before day 0. The
        simulation starts at the first prior fraction, with each patient's lesion sizes
        chosen so that the drawn sizes hold at the trial's time zero (day 0, or the first
        protocol event if earlier); scans, PFS and OS count from time zero
        (:func:`abscopal.simulate`).
    """

    dose_per_fraction_gy: float
    n_fractions: int
    calendar: FractionCalendar = field(default_factory=WeekdayDaily)
    start_day: float = 0.0
    target_lesions: tuple[int, ...] = (0,)
    blood_dose_per_fraction_gy: float | None = None
    mean_lung_dose_gy: float | None = None
    name: str | None = None
    prior: bool = False

    def __post_init__(self) -> None:
        dose_fix = "give a positive dose in Gy"
        dose = _real("dose_per_fraction_gy", self.dose_per_fraction_gy, dose_fix)
        if dose <= 0.0:
            raise ScheduleError(f"dose_per_fraction_gy must be > 0, got {dose!r}; {dose_fix}")
        n = _whole("n_fractions", self.n_fractions, "give a whole number of fractions")
        start = _real("start_day", self.start_day, "give the first fraction's day")
        if not isinstance(self.calendar, FractionCalendar):
            raise ScheduleError(
                f"calendar must be a fraction calendar, got {self.calendar!r}; give "
                "e.g. WeekdayDaily(), EveryOtherDay() or ExplicitDays(offsets_day=(0, 2))"
            )
        for name in ("blood_dose_per_fraction_gy", "mean_lung_dose_gy"):
            if (value := getattr(self, name)) is not None:
                value = _real(name, value, _DOSE_FIX + ", or None", minimum=0.0)
                object.__setattr__(self, name, value)
        if self.name is not None and not isinstance(self.name, str):
            raise ScheduleError(f"name must be a string or None, got {self.name!r}")
        lesions = _lesion_tuple("target_lesions", self.target_lesions)
        object.__setattr__(self, "dose_per_fraction_gy", dose)
        object.__setattr__(self, "n_fractions", n)
        object.__setattr__(self, "start_day", start)
        object.__setattr__(self, "target_lesions", lesions)
        days = self.calendar.days(n, start)  # calendar checks, e.g. ExplicitDays length
        if not isinstance(self.prior, bool | np.bool_):
            raise ScheduleError(
                f"prior must be true or false, got {self.prior!r}; write prior = true for RT given before "
                "enrolment (history), or leave it out for protocol treatment"
            )
        object.__setattr__(self, "prior", bool(self.prior))
        if self.prior and days[-1] >= 0.0:
            late = float(days[days >= 0.0][0])
            raise ScheduleError(
                f"prior course {self.label!r} has a fraction at day {late:g}, at or after day 0; a prior course is "
                f"history before enrolment, so all its fractions must be before day 0 (its fractions run from day "
                f"{float(days[0]):g} to {float(days[-1]):g}): start it earlier (start_day) or drop prior = true if "
                "it is protocol treatment"
            )

    @property
    def total_dose_gy(self) -> float:
        """Total physical dose ``n d`` in Gy."""
        return self.dose_per_fraction_gy * self.n_fractions

    @property
    def fraction_days(self) -> NDArray[np.float64]:
        """Fraction times in days (a new array on each access)."""
        return self.calendar.days(self.n_fractions, self.start_day)

    @property
    def resolved_blood_dose_per_fraction_gy(self) -> float:
        """Blood dose per fraction in Gy: the given value or the 0.1 x dose default."""
        if self.blood_dose_per_fraction_gy is None:
            return DEFAULT_BLOOD_DOSE_RATIO * self.dose_per_fraction_gy
        return self.blood_dose_per_fraction_gy

    @property
    def label(self) -> str:
        """``name`` if given, else a prescription label such as ``"24 Gy/3 fx"``."""
        if self.name is not None:
            return self.name
        return f"{self.total_dose_gy:g} Gy/{self.n_fractions} fx"

    def bed_gy(self, alpha_beta_gy: float) -> float:
        """Biologically effective dose of the course in Gy (no repopulation)."""
        return float(bed(self.total_dose_gy, self.n_fractions, alpha_beta_gy))

    def eqd2_gy(self, alpha_beta_gy: float) -> float:
        """Equivalent dose in 2-Gy fractions of the course in Gy."""
        return float(eqd2(self.total_dose_gy, self.n_fractions, alpha_beta_gy))

    def fractions(self) -> tuple[Fraction, ...]:
        """Expand the course into :class:`Fraction` records, in time order."""
        lung_total = self.mean_lung_dose_gy or 0.0
        return tuple(
            Fraction(
                time_day=float(day),
                dose_gy=self.dose_per_fraction_gy,
                lesions=self.target_lesions,
                blood_dose_gy=self.resolved_blood_dose_per_fraction_gy,
                mean_lung_dose_gy=lung_total / self.n_fractions,
            )
            for day in self.fraction_days
        )

    def shifted(self, by_day: float) -> RadiationCourse:
        """Return a copy of the course moved ``by_day`` days later (negative = earlier)."""
        shift = _real("by_day", by_day, "give the shift in days")
        return replace(self, start_day=self.start_day + shift)

    def describe(self) -> str:
        """One-line summary, e.g. ``"24 Gy/3 fx (8 Gy x 3, weekdays) to lesion(s) 0 on days 0..2"``."""
        days = self.fraction_days
        span = f"day {days[0]:g}" if len(days) == 1 else f"days {days[0]:g}..{days[-1]:g}"
        lesions = ",".join(str(i) for i in self.target_lesions)
        prefix = f"{self.name}: " if self.name is not None else ""
        prefix = ("prior (history) " if self.prior else "") + prefix
        return (
            f"{prefix}{self.total_dose_gy:g} Gy/{self.n_fractions} fx "
            f"({self.dose_per_fraction_gy:g} Gy x {self.n_fractions}, "
            f"{self.calendar.describe()}) to lesion(s) {lesions} on {span}"
        )
