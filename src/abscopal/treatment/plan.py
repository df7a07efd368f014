"""Treatment plans: radiation courses plus a checkpoint-inhibitor regimen.

Time is in days; day 0 is the first checkpoint-inhibitor dose, so radiation given
before the drug has negative days. Courses marked ``prior`` are the patient's history
(before enrolment); the others, and the drug, are protocol treatment. The plan's time zero
(:attr:`TreatmentPlan.time_zero_day`) is day 0 or its first protocol event if earlier.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from numbers import Real
from typing import Any

import numpy as np

from ..errors import ScheduleError
from .drugs import DrugDose, DrugRegimen
from .radiation import Fraction, RadiationCourse

__all__ = ["TreatmentPlan", "rt_drug_gap_day"]

# Two fractions closer than this (days) count as "at the same time".
_SAME_TIME_TOL_DAY = 1e-9


@dataclass(frozen=True, kw_only=True)
class TreatmentPlan:
    """Radiation courses and an optional drug regimen, on one time axis.

    Attributes
    ----------
    radiation
        Radiation courses (a tuple; a single course or a list is accepted and converted).
        Courses may overlap in time if they irradiate different lesions.
    drug
        Checkpoint-inhibitor regimen, or ``None`` for RT alone.
    name
        Optional label (e.g. the arm name).

    Raises
    ------
    ScheduleError
        If an element is not a :class:`RadiationCourse`, ``drug`` is not a
        :class:`DrugRegimen`, two courses irradiate the same lesion at the same time, or a
        prior course has a fraction at or after the plan's time zero (its first protocol event).
    """

    radiation: tuple[RadiationCourse, ...] = ()
    drug: DrugRegimen | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        courses = self.radiation
        if isinstance(courses, RadiationCourse):
            courses = (courses,)
        try:
            courses = tuple(courses)
        except TypeError as exc:
            raise ScheduleError(
                f"radiation must be a tuple of RadiationCourse, got {self.radiation!r}; "
                "give e.g. (RadiationCourse(...),) or ()"
            ) from exc
        for index, course in enumerate(courses):
            if not isinstance(course, RadiationCourse):
                raise ScheduleError(
                    f"radiation[{index}] must be a RadiationCourse, got {course!r}; "
                    "build courses with RadiationCourse(...) or radiation_regimen(name)"
                )
        if self.drug is not None and not isinstance(self.drug, DrugRegimen):
            raise ScheduleError(
                f"drug must be a DrugRegimen or None, got {self.drug!r}; "
                "build it with DrugRegimen(...) or drug_regimen(name)"
            )
        if self.name is not None and not isinstance(self.name, str):
            raise ScheduleError(f"name must be a string or None, got {self.name!r}; give a short label")
        object.__setattr__(self, "radiation", courses)
        self._check_clashes()
        self._check_history()

    @property
    def prior_courses(self) -> tuple[RadiationCourse, ...]:
        """The courses given before enrolment (``prior=True``): the patient's history."""
        return tuple(c for c in self.radiation if c.prior)

    @property
    def protocol_courses(self) -> tuple[RadiationCourse, ...]:
        """The courses that are protocol treatment (not ``prior``)."""
        return tuple(c for c in self.radiation if not c.prior)

    @property
    def history_start_day(self) -> float | None:
        """Day of the first prior fraction (the start of the history), or ``None`` without prior courses."""
        prior = self.prior_courses
        return min(float(c.fraction_days[0]) for c in prior) if prior else None

    @property
    def time_zero_day(self) -> float:
        """The trial's time zero: day 0, or the first protocol event (fraction of a protocol course, drug dose)
        if that is earlier (PEMBRO-RT's SBRT from day -7). Prior courses are not protocol events."""
        first = [float(c.fraction_days[0]) for c in self.protocol_courses]
        if self.drug is not None:
            doses = self.drug.doses(0.0)
            first += [doses[0].time_day] if doses else []
        return min([0.0, *first])

    def _check_history(self) -> None:
        """Raise if a prior course has a fraction at or after the time zero (a protocol event precedes it)."""
        start = self.history_start_day
        if start is None:
            return
        zero = self.time_zero_day
        for index, course in enumerate(self.radiation):
            if course.prior and (late := float(course.fraction_days[-1])) >= zero:
                raise ScheduleError(
                    f"prior course {self._course_label(index)} has a fraction at day {late:g}, not before the "
                    f"plan's time zero (day {zero:g}: its first protocol event); prior courses are history before "
                    "enrolment: start it before the protocol treatment or drop prior"
                )

    def _course_label(self, index: int) -> str:
        return f"radiation[{index}] ({self.radiation[index].label})"

    def _check_clashes(self) -> None:
        """Raise if two courses irradiate the same lesion at the same time."""
        for i, first in enumerate(self.radiation):
            days_i = first.fraction_days
            for j in range(i + 1, len(self.radiation)):
                second = self.radiation[j]
                shared = sorted(set(first.target_lesions) & set(second.target_lesions))
                if not shared:
                    continue
                for day in second.fraction_days:
                    if any(abs(day - d) <= _SAME_TIME_TOL_DAY for d in days_i):
                        raise ScheduleError(
                            f"radiation courses {self._course_label(i)} and {self._course_label(j)} both "
                            f"irradiate lesion(s) {shared} at day {float(day):g}; shift one course "
                            "(start_day) or target different lesions"
                        )

    def course_fractions(self) -> tuple[tuple[Fraction, RadiationCourse, bool], ...]:
        """Every fraction with its course and whether it is that course's last, sorted by time (ties keep course
        order)."""
        every = []
        for course in self.radiation:
            frs = course.fractions()
            every += [(fr, course, i == len(frs) - 1) for i, fr in enumerate(frs)]
        return tuple(sorted(every, key=lambda x: x[0].time_day))

    def fractions(self) -> tuple[Fraction, ...]:
        """All fractions of all courses, sorted by time (ties keep course order)."""
        return tuple(fr for fr, _, _ in self.course_fractions())

    def drug_doses(self, until_day: float = math.inf) -> tuple[DrugDose, ...]:
        """The drug doses up to ``until_day`` (inclusive); ``()`` without a drug."""
        return () if self.drug is None else self.drug.doses(until_day)

    def for_model(self, spec: Any) -> TreatmentPlan:
        """This plan as a trial arm runs it on ``spec``: the one place of the constant-clearance rule.

        A model with exact analytic PK fixes ``pk_cl_time_emax`` at 0 (bounds [0, 0]). On such a model a drug
        with time-varying clearance (nivolumab, Bajaj 2017) is given its baseline clearance throughout
        (:attr:`DrugRegimen.constant_clearance` says why the PD effect is unchanged). :func:`~abscopal.simulate`
        itself refuses that combination, so a direct simulation never changes a drug silently.
        """
        drug = self.drug
        if drug is None or drug.pk.cl_time_emax == 0.0 or not _fixes_constant_clearance(spec):
            return self
        return replace(self, drug=replace(drug, constant_clearance=True))

    def parameter_overrides(self) -> dict[str, Any]:
        """Model parameters set by the plan: the drug's PK (``{}`` without a drug)."""
        return {} if self.drug is None else self.drug.pk.as_parameters()

    def with_rt_offset(self, offset_day: float, *, drug_to_day0: bool = True) -> TreatmentPlan:
        """Return a plan whose first protocol RT fraction is ``offset_day`` after the first drug dose.

        The drug is moved to start on day 0 (the time convention) unless ``drug_to_day0`` is false, in which case
        it keeps its own schedule (RT days are then days of the time axis, e.g. salvage RT at a patient's
        progression scan); all protocol radiation courses are shifted together, so their relative spacing is kept;
        prior courses (history) stay where they are. A negative offset puts RT before the drug.

        Raises
        ------
        ScheduleError
            If ``offset_day`` is not a finite number or the plan has no protocol radiation course.
        """
        if isinstance(offset_day, bool) or not isinstance(offset_day, Real) or not math.isfinite(offset_day):
            raise ScheduleError(f"offset_day must be a finite number of days, got {offset_day!r}; e.g. -7.0")
        if not self.protocol_courses:
            raise ScheduleError(
                f"with_rt_offset needs a radiation course, got radiation={self.radiation!r}; "
                "add a RadiationCourse before setting the RT offset (prior courses are history and do not move)"
            )
        first_fraction_day = min(float(course.fraction_days[0]) for course in self.protocol_courses)
        shift = float(offset_day) - first_fraction_day
        drug = self.drug
        if drug is not None and drug_to_day0:
            drug = replace(drug, start_day=0.0)
        courses = tuple(course if course.prior else course.shifted(shift) for course in self.radiation)
        return replace(self, radiation=courses, drug=drug)

    def describe(self) -> str:
        """One-line human summary of the plan."""
        parts = [course.describe() for course in self.radiation]
        if self.drug is not None:
            parts.append(self.drug.describe())
        body = " + ".join(parts) if parts else "no treatment"
        return f"{self.name}: {body}" if self.name is not None else body


def _fixes_constant_clearance(spec: Any) -> bool:
    """True if ``spec`` fixes the time-varying clearance at 0 (exact analytic PK)."""
    if "pk_cl_time_emax" not in spec.parameter_names:
        return False
    p = spec.parameter("pk_cl_time_emax")
    return p.lower == p.upper == 0.0


def rt_drug_gap_day(rt_days: Iterable[float], drug_days: Iterable[float]) -> float:
    """Smallest interval (days) between an RT fraction and a drug dose; NaN without fractions or without doses."""
    rt = np.asarray(list(rt_days), dtype=float)
    drug = np.asarray(list(drug_days), dtype=float)
    if rt.size == 0 or drug.size == 0:
        return math.nan
    return float(np.min(np.abs(drug[:, None] - rt[None, :])))
