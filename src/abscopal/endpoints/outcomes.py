"""Reported outcomes, defined once: a registry of what a trial reports and what the model predicts for it.

Each outcome is one object that knows

* its trial-style ``value`` (what a trial would report from the simulated patients: the RECIST ORR, a
  Kaplan-Meier median or landmark, a Cox hazard ratio),
* its ``smooth`` surrogate (a deterministic, piecewise-smooth function of the model parameters that a
  least-squares calibration can follow; it tends to the trial-style value as the widths below go to 0),
* the ``observed`` value of a reported target with its standard error and the scale of the residual, and
* its ``residual``: ``(smooth - observed) / SE`` on that scale.

The calibration objective, validation, cross-validation and studies loop over :data:`OUTCOMES` and
:data:`COMPARISONS`; adding an endpoint means adding one object here.

Smooth surrogates (``w``, ``h``, bandwidths: the module constants):

* ``orr``: mean over patients of ``expit((-30 - pct) / w)`` with ``pct`` the percent change of the target sum
  at the ORR visit (or the best change when the ORR is a best overall response), times ``expit((visit -
  new_lesion_day) / h)`` (a new lesion before the visit is PD). Non-target progression is ignored. With
  confirmation (``rules.require_confirmation``; best response only) a patient's value is the largest over scans
  ``k`` of ``expit((-30 - max(pct_k .. pct_c)) / w) * expit((new_lesion_day - day_c) / h)``, ``c`` the first scan
  >= ``rules.confirmation_min_day`` after ``k``, both scans before progression (RECIST codes not ``NA``): the
  response must still hold at its confirmation scan, before any new lesion. A target-sum progression between ``k``
  and ``c`` whose sum stays 30% below baseline is ignored (a ``PD`` confirmation scan is still counted).
* ``dcr``: the soft probability of no RECIST progression (target sum or new lesion) by the first scan that can
  count as stable disease (``rules.sd_min_day`` after the start). Like the RECIST score it approximates, it does
  not look at death (scans are scored as simulated); a response before that scan is ignored.
* survival at ``t`` (medians, landmarks): OS is :func:`~abscopal.endpoints.survival.smooth_survival_at` of the
  simulated deaths (bandwidth :data:`OS_BANDWIDTH_DAY`). Simulated PFS times sit on scan days, so PFS uses a
  soft RECIST surrogate: at scan ``v`` progression has probability ``1 - (1 - q_v)(1 - n_v)`` with ``q_v =
  expit((sum_v - thr_v) / 1 mm)``, ``thr_v = max((1 + 0.2) nadir, nadir + 5 mm)`` (the assessment's RECIST
  rules; nadir = smallest earlier sum, baseline included) and ``n_v = expit((s_v - new_lesion_day) / h)``; the
  first-progression masses are spread over time with a logistic of bandwidth half the scan interval and
  multiplied by a soft survival ``expit((death - t) / 7 d)``. Non-target progression and iRECIST confirmation
  are ignored.
* ``median_<e>_month``: the smooth survival at the *reported* median; its target is 0.5. The residual is
  ``(S - 0.5) / SE_S`` with ``SE_S = 0.5 ln 2 SE(log median)`` (delta method: for exponential survival
  ``S(t) = 2^(-t/m)``, ``dS/d log m = S ln 2 t / m = 0.5 ln 2`` at ``t = m``).
* landmarks ``<e>_<k>mo``: the smooth survival at ``k`` months (``k`` x 30.44 days).
* ``pneumonitis_grade2plus``: the arm's pneumonitis probability (it depends on the plan, not on the tumour
  model, so it is its own surrogate); ``pneumonitis_grade3plus`` (and ``pneumonitis_grade3``, scored as grade >= 3)
  that times the pneumonitis model's ``grade3_fraction``, ``pneumonitis_grade2`` (exactly grade 2) the rest
  (:data:`PNEUMONITIS_OUTCOMES`; :meth:`PneumonitisRate.of_plan` predicts them from a plan alone).
* ``hr_<e>``: a Cox HR depends on the ranks of the times only, so it is step-valued in the parameters. The smooth
  HR is ``log S_arm(t) / log S_ref(t)`` at ``t`` = the reference arm's reported median (exact under proportional
  hazards); without that median, the Cox HR of :func:`~abscopal.endpoints.survival.hazard_ratio`.

Survival times count from each arm's own start (:attr:`ScoredArm.start_day`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np
import xarray as xr
from scipy.optimize import brentq
from scipy.special import expit

from ..errors import ParameterError, unknown_name_message
from .survival import DAYS_PER_MONTH, hazard_ratio, kaplan_meier, smooth_survival_at

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from ..treatment.plan import TreatmentPlan
    from .assessment import TrialAssessment
    from .toxicity import PneumonitisModel

__all__ = [
    "COMPARISONS",
    "DEFAULT_FIT_OUTCOMES",
    "EVENT_WIDTH_DAY",
    "ORR_WIDTH_PCT",
    "OS_BANDWIDTH_DAY",
    "OUTCOMES",
    "PFS_SUM_WIDTH_MM",
    "PNEUMONITIS_OUTCOMES",
    "ArmOutcome",
    "ComparisonOutcome",
    "DiseaseControlRate",
    "HazardRatio",
    "MedianSurvival",
    "PneumonitisRate",
    "ResponseRate",
    "ScoredArm",
    "SurvivalLandmark",
    "fittable_outcomes",
    "outcome",
]

ORR_WIDTH_PCT = 2.0
"""Logistic width (percentage points) of the soft response indicator at -30%."""
EVENT_WIDTH_DAY = 7.0
"""Logistic width (days) of the soft 'new lesion / death before day t' indicators."""
OS_BANDWIDTH_DAY = 7.0
"""Bandwidth of the smooth OS survival (days)."""
PFS_SUM_WIDTH_MM = 1.0
"""Logistic width (mm) of the soft PD indicator of the target sum."""
_SE_S_FACTOR = 0.5 * math.log(2.0)
_Z95 = 1.959963984540054
_CLIP = 1e-9


class Target(Protocol):
    """What a reported arm outcome offers (:class:`abscopal.trials.Outcome` has it)."""

    @property
    def value(self) -> float: ...
    @property
    def ci_lower(self) -> float | None: ...
    @property
    def ci_upper(self) -> float | None: ...

    def standard_error(self) -> float: ...

    def log_standard_error(self) -> float: ...


class ComparisonTarget(Protocol):
    """What a reported hazard ratio offers (:class:`abscopal.trials.ComparisonTarget` has it)."""

    @property
    def hr(self) -> float: ...
    @property
    def ci_lower(self) -> float | None: ...
    @property
    def ci_upper(self) -> float | None: ...

    def log_standard_error(self) -> float: ...


if TYPE_CHECKING:
    # synthetic() copies a target with dataclasses.replace: a dataclass with the protocol's fields

    class _TargetRecord(Target, DataclassInstance, Protocol): ...

    class _ComparisonRecord(ComparisonTarget, DataclassInstance, Protocol): ...


_TargetT = TypeVar("_TargetT", bound="_TargetRecord")
_ComparisonT = TypeVar("_ComparisonT", bound="_ComparisonRecord")


# ---- one scored arm ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ScoredArm:
    """The endpoints of one simulated arm and what its smooth surrogates need.

    Parameters
    ----------
    endpoints
        The :func:`~abscopal.endpoints.pipeline.score` dataset of the arm (``arm`` dimension of length 1).
    assessment
        The assessment it was scored with (its RECIST rules shape the soft PFS).
    start_day
        Day survival is counted from: the simulation start, or time zero when the arm has a history (prior RT
        before enrolment; :func:`abscopal.arms.run_arm`).
    t_end_day
        End of the simulation (the search interval of :meth:`median_day`).
    pfs_bandwidth_day
        Bandwidth of the soft PFS in time (default: half the median interval between scans).
    """

    endpoints: xr.Dataset
    assessment: TrialAssessment
    start_day: float
    t_end_day: float
    pfs_bandwidth_day: float | None = None

    def __post_init__(self) -> None:
        if self.pfs_bandwidth_day is None:
            visits = self.endpoints.visit_day.values
            gap = float(np.median(np.diff(visits))) if visits.size > 1 else 2.0 * EVENT_WIDTH_DAY
            object.__setattr__(self, "pfs_bandwidth_day", 0.5 * gap)

    def survival(self, endpoint: str, t_day: float) -> float:
        """Smooth survival of ``endpoint`` (``"pfs"`` or ``"os"``) ``t_day`` days after the start."""
        if endpoint == "pfs":
            return float(np.mean(self._soft_progression_free(t_day + self.start_day)))
        ep = self.endpoints
        return float(
            smooth_survival_at(ep.os_day.values[0], ep.os_event.values[0], t_day, bandwidth_day=OS_BANDWIDTH_DAY)
        )

    def km_survival(self, endpoint: str, t_day: float) -> float:
        """Kaplan-Meier survival of ``endpoint`` ``t_day`` days after the start (trial-style)."""
        ep = self.endpoints
        km = kaplan_meier(ep[f"{endpoint}_day"].values[0], ep[f"{endpoint}_event"].values[0])
        return float(np.asarray(km.survival_at(np.array([t_day])), dtype=float)[0])

    def median_day(self, endpoint: str) -> float:
        """Day (after the start) where the smooth survival of ``endpoint`` is 0.5 (brentq).

        If the survival is still above 0.5 at the end of follow-up ``T`` (median not reached), the median is
        extrapolated with an exponential tail through ``S(T)``: ``T ln 0.5 / ln S(T)`` (continuous at
        ``S(T) = 0.5``, so the surrogate stays smooth for a calibration that crosses the boundary); ``inf`` if
        nobody has had the event."""
        end = self.t_end_day - self.start_day
        s_end = self.survival(endpoint, end)
        if s_end > 0.5:
            return end * math.log(0.5) / math.log(s_end) if s_end < 1.0 else math.inf
        if self.survival(endpoint, 1.0) <= 0.5:
            return float(brentq(lambda t: self.survival(endpoint, t) - 0.5, 0.0, 1.0, xtol=1e-9))
        return float(brentq(lambda t: self.survival(endpoint, t) - 0.5, 1.0, end, xtol=1e-6))

    @cached_property
    def _progression_free_at_scans(self) -> np.ndarray:
        """Soft probability of no detected RECIST progression up to each post-baseline scan (patient, scan).

        Computed once per arm: every PFS, DCR and HR query of the arm reads it."""
        ep, rules = self.endpoints, self.assessment.rules
        visits = ep.visit_day.values
        follow = float(ep.attrs["follow_up_day"])
        sums = np.nan_to_num(ep.sum_of_diameters.values[0], nan=0.0)  # (patient, visit)
        new_day = ep.new_lesion_day.values[0]
        nadir = np.minimum.accumulate(sums, axis=1)[:, :-1]  # smallest sum before each later visit
        thr = np.maximum((1.0 + rules.pd_fraction) * nadir, nadir + rules.pd_absolute_mm)
        q = np.where(nadir > 0, expit((sums[:, 1:] - thr) / PFS_SUM_WIDTH_MM), 0.0)
        n = expit((visits[None, 1:] - new_day[:, None]) / EVENT_WIDTH_DAY)
        free = np.cumprod((1.0 - q) * (1.0 - n), axis=1) * (visits[None, 1:] <= follow)
        free.setflags(write=False)  # cached: shared by every query of this arm
        return free

    def _soft_progression_free(self, t_abs_day: float) -> np.ndarray:
        """Per-patient soft PFS at absolute day ``t_abs_day`` (module docstring)."""
        ep = self.endpoints
        visits = ep.visit_day.values
        free = self._progression_free_at_scans
        g = np.concatenate([np.ones((free.shape[0], 1)), free], axis=1)
        mass = g[:, :-1] - g[:, 1:]  # probability of first detected progression at each post-baseline scan
        prog_free = 1.0 - mass @ expit((t_abs_day - visits[1:]) / self.pfs_bandwidth_day)
        alive = expit((ep.death_day.values[0] - t_abs_day) / OS_BANDWIDTH_DAY)
        return prog_free * alive


# ---- outcome kinds -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArmOutcome:
    """An outcome of one arm. Subclasses define :meth:`value` and :meth:`smooth`."""

    name: str
    long_name: str
    units: str = "1"
    kind = "proportion"

    def value(self, arm: ScoredArm) -> float:
        """Trial-style value from the simulated patients."""
        raise NotImplementedError

    def smooth(self, arm: ScoredArm, target: Target | None = None) -> float:
        """Smooth surrogate (compared with ``target`` by :meth:`residual`)."""
        raise NotImplementedError

    def observed(self, target: Target) -> tuple[float, float, str]:
        """Observed value, its SE on the residual scale and the scale (``linear`` or ``log``)."""
        return float(target.value), float(target.standard_error()), "linear"

    def residual(self, smooth: float, target: Target) -> float:
        """Unweighted residual of a smooth prediction (proportions: ``(p - obs) / SE_binomial``)."""
        return (smooth - target.value) / target.standard_error()

    def synthetic(self, arm: ScoredArm, target: _TargetT) -> _TargetT:
        """``target`` with its value replaced by the smooth prediction (residual 0; CI dropped: binomial SE)."""
        return replace(target, value=self.smooth(arm, target), ci_lower=None, ci_upper=None)


@dataclass(frozen=True)
class ResponseRate(ArmOutcome):
    """Objective response rate (CR or PR) at the assessment's ORR visit, or best overall response."""

    def value(self, arm: ScoredArm) -> float:
        return float(arm.endpoints.orr.values[0])

    def smooth(self, arm: ScoredArm, target: Target | None = None) -> float:
        ep, a = arm.endpoints, arm.assessment
        visits = ep.visit_day.values
        if a.orr_visit_day is None and a.rules.require_confirmation:
            return float(np.mean(_soft_confirmed_response(ep, a)))
        if a.orr_visit_day is None:
            pct, day = ep.best_percent_change.values[0], visits[min(1, visits.size - 1)]
        else:
            k = int(np.searchsorted(visits, a.orr_visit_day - 1e-9))
            pct, day = ep.percent_change.values[0, :, k], visits[k]
        pct = np.nan_to_num(pct, nan=0.0)
        soft = expit((-100.0 * a.rules.pr_fraction - pct) / ORR_WIDTH_PCT)
        return float(np.mean(soft * expit((ep.new_lesion_day.values[0] - day) / EVENT_WIDTH_DAY)))


def _soft_confirmed_response(ep: xr.Dataset, a: TrialAssessment) -> np.ndarray:
    """Per-patient soft confirmed response (module docstring, ``orr`` with confirmation)."""
    visits = ep.visit_day.values
    pct = np.nan_to_num(ep.percent_change.values[0], nan=0.0)  # (patient, visit)
    scored = ep.response.values[0] != "NA"  # scans up to and including progression
    new_day = ep.new_lesion_day.values[0]
    threshold = -100.0 * a.rules.pr_fraction
    best = np.zeros(pct.shape[0])
    for k in range(1, visits.size):
        later = np.flatnonzero(visits - visits[k] >= a.rules.confirmation_min_day - 1e-9)
        later = later[later >= k]
        if later.size == 0:  # no scan late enough to confirm a response at k (nor at any later scan)
            break
        c = int(later[0])
        held = expit((threshold - pct[:, k : c + 1].max(axis=1)) / ORR_WIDTH_PCT)
        soft = held * expit((new_day - visits[c]) / EVENT_WIDTH_DAY) * (scored[:, k] & scored[:, c])
        best = np.maximum(best, soft)
    return best


@dataclass(frozen=True)
class DiseaseControlRate(ArmOutcome):
    """Disease control rate (best overall response CR, PR or SD)."""

    def value(self, arm: ScoredArm) -> float:
        return float(arm.endpoints.dcr.values[0])

    def smooth(self, arm: ScoredArm, target: Target | None = None) -> float:
        visits = arm.endpoints.visit_day.values
        first = arm.start_day + arm.assessment.rules.sd_min_day
        k = int(np.searchsorted(visits[1:], first - 1e-9))  # first post-baseline scan that can count as SD
        k = min(k, visits.size - 2)
        return float(np.mean(arm._progression_free_at_scans[:, k]))


@dataclass(frozen=True)
class SurvivalLandmark(ArmOutcome):
    """Survival of ``endpoint`` (``"pfs"`` or ``"os"``) at ``months`` after the start."""

    endpoint: str = "os"
    months: float = 12.0

    def value(self, arm: ScoredArm) -> float:
        return arm.km_survival(self.endpoint, self.months * DAYS_PER_MONTH)

    def smooth(self, arm: ScoredArm, target: Target | None = None) -> float:
        return arm.survival(self.endpoint, self.months * DAYS_PER_MONTH)


@dataclass(frozen=True)
class PneumonitisRate(ArmOutcome):
    """Radiation pneumonitis probability of the arm's plan at ``grade``: ``"2plus"`` (the pneumonitis model's
    probability), ``"3plus"`` (that times its ``grade3_fraction``) or ``"2"`` (exactly grade 2: the rest)."""

    grade: str = "2plus"

    def share(self, model: PneumonitisModel) -> float:
        """The share of grade >= 2 events this outcome counts."""
        f3 = model.grade3_fraction
        return {"2plus": 1.0, "3plus": f3, "2": 1.0 - f3}[self.grade]

    def value(self, arm: ScoredArm) -> float:
        p = float(arm.endpoints.pneumonitis_probability.values[0])
        return p * self.share(arm.assessment.pneumonitis)

    def smooth(self, arm: ScoredArm, target: Target | None = None) -> float:
        return self.value(arm)

    def of_plan(self, model: PneumonitisModel, plan: TreatmentPlan, until_day: float = math.inf) -> float:
        """The probability for ``plan`` alone (no simulated patients: it depends on the plan's exposure only), the
        same number :meth:`value` gives for an arm with this plan scored with ``model``."""
        return model.plan_probability(plan, until_day) * self.share(model)


@dataclass(frozen=True)
class MedianSurvival(ArmOutcome):
    """Kaplan-Meier median of ``endpoint`` in months (inf: not reached; NaN: not evaluable, e.g. OS of a model
    without a tumour-burden role); smooth: survival at the reported one."""

    endpoint: str = "os"
    kind = "median"

    def value(self, arm: ScoredArm) -> float:
        day = float(arm.endpoints[f"median_{self.endpoint}_day"].values[0])
        return day / DAYS_PER_MONTH  # inf stays inf (not reached), NaN stays NaN (not evaluable)

    def smooth(self, arm: ScoredArm, target: Target | None = None) -> float:
        if target is None:
            raise ValueError(f"{self.name}: the smooth surrogate is the survival at a reported median; pass target")
        return arm.survival(self.endpoint, target.value * DAYS_PER_MONTH)

    def observed(self, target: Target) -> tuple[float, float, str]:
        return float(target.value), float(target.log_standard_error()), "log"

    def residual(self, smooth: float, target: Target) -> float:
        return (smooth - 0.5) / (_SE_S_FACTOR * target.log_standard_error())

    def synthetic(self, arm: ScoredArm, target: _TargetT) -> _TargetT:
        m, se = arm.median_day(self.endpoint) / DAYS_PER_MONTH, target.log_standard_error()
        return replace(target, value=m, ci_lower=m * math.exp(-_Z95 * se), ci_upper=m * math.exp(_Z95 * se))


@dataclass(frozen=True)
class ComparisonOutcome:
    """An outcome comparing two arms of one trial."""

    name: str
    long_name: str
    endpoint: str = "os"
    units: str = "1"
    kind = "hr"

    def value(self, arm: ScoredArm, reference: ScoredArm) -> float:
        """Trial-style value of ``arm`` against ``reference`` from the simulated patients."""
        raise NotImplementedError

    def smooth(self, arm: ScoredArm, reference: ScoredArm, reference_median_day: float | None) -> float:
        """Smooth surrogate (compared with a target by :meth:`residual`)."""
        raise NotImplementedError

    def observed(self, target: ComparisonTarget) -> tuple[float, float, str]:
        """Observed value, its SE on the residual scale and the scale (``linear`` or ``log``)."""
        raise NotImplementedError

    def residual(self, smooth: float, target: ComparisonTarget) -> float:
        """Unweighted residual of a smooth prediction."""
        raise NotImplementedError

    def synthetic(self, hr: float, target: _ComparisonT) -> _ComparisonT:
        """``target`` with its value replaced by ``hr`` (a prediction)."""
        raise NotImplementedError


@dataclass(frozen=True)
class HazardRatio(ComparisonOutcome):
    """Hazard ratio of ``endpoint`` of an arm versus its reference."""

    def value(self, arm: ScoredArm, reference: ScoredArm) -> float:
        """Cox HR from the simulated times (rank-based, so step-valued in the parameters)."""
        times, events, group = [], [], []
        for g, a in enumerate((reference, arm)):
            times.append(a.endpoints[f"{self.endpoint}_day"].values[0])
            events.append(a.endpoints[f"{self.endpoint}_event"].values[0])
            group.append(np.full(times[-1].size, g))
        return float(hazard_ratio(np.concatenate(times), np.concatenate(events), np.concatenate(group), reference=0).hr)

    def smooth(self, arm: ScoredArm, reference: ScoredArm, reference_median_day: float | None) -> float:
        """``log S_arm(t) / log S_ref(t)`` at the reference's reported median; Cox without one."""
        if reference_median_day is None:
            return self.value(arm, reference)
        s_ref, s_arm = (
            min(max(a.survival(self.endpoint, reference_median_day), _CLIP), 1.0 - _CLIP) for a in (reference, arm)
        )
        return math.log(s_arm) / math.log(s_ref)

    def observed(self, target: ComparisonTarget) -> tuple[float, float, str]:
        """Observed HR, SE of its log, ``"log"``."""
        return float(target.hr), float(target.log_standard_error()), "log"

    def residual(self, smooth: float, target: ComparisonTarget) -> float:
        """``(log hr_pred - log hr_obs) / SE(log HR)``."""
        return (math.log(max(smooth, 1e-12)) - math.log(target.hr)) / target.log_standard_error()

    def synthetic(self, hr: float, target: _ComparisonT) -> _ComparisonT:
        """``target`` with the HR replaced by ``hr`` and the CI rebuilt with the same SE(log HR)."""
        se = target.log_standard_error()
        return replace(target, hr=hr, ci_lower=hr * math.exp(-_Z95 * se), ci_upper=hr * math.exp(_Z95 * se))


# ---- the registry --------------------------------------------------------------------------------------------------
def _landmarks() -> list[ArmOutcome]:
    out: list[ArmOutcome] = []
    for endpoint, months in (("pfs", 6), ("pfs", 12), ("os", 6), ("os", 12), ("os", 24)):
        long = "progression-free" if endpoint == "pfs" else "overall"
        out.append(
            SurvivalLandmark(f"{endpoint}_{months}mo", f"{long} survival at {months} months", "1", endpoint, months)
        )
    return out


OUTCOMES: Mapping[str, ArmOutcome] = {
    o.name: o
    for o in (
        ResponseRate("orr", "objective response rate (RECIST 1.1)"),
        DiseaseControlRate("dcr", "disease control rate (CR, PR or SD)"),
        MedianSurvival("median_pfs_month", "median progression-free survival", "month", "pfs"),
        MedianSurvival("median_os_month", "median overall survival", "month", "os"),
        *_landmarks(),
        PneumonitisRate("pneumonitis_grade2plus", "grade >= 2 radiation pneumonitis"),
        PneumonitisRate("pneumonitis_grade2", "grade 2 radiation pneumonitis", grade="2"),
        PneumonitisRate("pneumonitis_grade3plus", "grade >= 3 radiation pneumonitis", grade="3plus"),
        PneumonitisRate("pneumonitis_grade3", "grade 3 radiation pneumonitis (predicted as grade >= 3)", grade="3plus"),
    )
}
"""Arm outcomes the model predicts, by the name trial targets use."""
COMPARISONS: Mapping[str, ComparisonOutcome] = {
    "hr_pfs": HazardRatio("hr_pfs", "hazard ratio of progression-free survival", "pfs"),
    "hr_os": HazardRatio("hr_os", "hazard ratio of overall survival", "os"),
}
"""Outcomes comparing two arms, by name (``hr_<endpoint>``)."""
PNEUMONITIS_OUTCOMES = tuple(name for name, o in OUTCOMES.items() if isinstance(o, PneumonitisRate))
"""The pneumonitis outcomes: a calibration that fits them (``outcomes=DEFAULT_FIT_OUTCOMES + PNEUMONITIS_OUTCOMES``)
predicts toxicity-only cohorts (arms without a population mix) from their plans alone
(:class:`~abscopal.calibrate.objective.CalibrationProblem`). ``pneumonitis_grade3`` counts grade-3 events as grade >=
3: of the cohorts that report it, Saito 2021 lists grades 1-3 only and Tian 2020's abstract names grade 3."""
DEFAULT_FIT_OUTCOMES = ("orr", "median_pfs_month", "median_os_month", "hr_pfs", "hr_os")
"""What a calibration, validation and cross-validation use unless told otherwise (the shipped fit's outcomes)."""


def fittable_outcomes() -> tuple[str, ...]:
    """Every outcome name a calibration can use: :data:`OUTCOMES` then :data:`COMPARISONS`."""
    return (*OUTCOMES, *COMPARISONS)


def outcome(name: str) -> ArmOutcome | ComparisonOutcome:
    """The definition of outcome ``name`` (:class:`~abscopal.errors.ParameterError` with the choices if unknown)."""
    found = OUTCOMES.get(name) or COMPARISONS.get(name)
    if found is None:
        raise ParameterError("outcome: " + unknown_name_message("outcome", name, fittable_outcomes()))
    return found
