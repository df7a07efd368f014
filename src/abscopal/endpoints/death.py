"""Death and survival times: a tumour-size-linked death hazard, PFS and OS with administrative censoring.

Death comes from a hazard linked to the simulated tumour burden (:class:`SurvivalModel`, the
tumour-growth-inhibition / overall-survival link of Claret 2009 and Bruno 2020) plus background
mortality: a patient dies when its cumulative hazard reaches the patient's Exp(1) draw
(:func:`~abscopal.endpoints.events.first_crossing`). PFS is the first RECIST progression scan or death;
both are censored at the end of follow-up (:func:`survival_times`).

A death model is any object with ``death_day(inputs, draw)`` (:class:`DeathInputs`: what a trial knows of its
patients), ``describe()``, ``requires_tumour_burden`` and ``FITTABLE`` (the fields a calibration may fit, as
``survival__<field>``, and their fitting bounds). :class:`SurvivalModel` is the default; the published
tumour-growth-rate link is :class:`~abscopal.endpoints.survival_link.TumourGrowthSurvival`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .._frozen import FrozenMap
from ..errors import ParameterError
from .events import first_crossing
from .survival import DAYS_PER_MONTH

__all__ = ["DeathInputs", "SurvivalModel", "SurvivalTimes", "death_day", "survival_times"]


@dataclass(frozen=True, kw_only=True, eq=False)
class DeathInputs:
    """What a death model may read of one arm's patients (arrays over patients, and over time or visits).

    Attributes
    ----------
    times
        The simulation's time grid (days); ``times[0]`` is the start (OS counts from it).
    tumour_burden
        Simulated total burden ``(patient, time)`` (role ``tumour_burden``; ``None`` if the model has none).
    new_lesion_day
        Day of each patient's first new lesion (inf: none).
    visit_days
        Scan days (baseline first).
    target_sum_mm
        Sum of the target-lesion diameters at each scan ``(patient, visit)``, as the trial measures it (RECIST
        target selection; irradiated lesions left out when the trial does not score them).
    progression_day
        First RECIST progression scan within follow-up (inf: none).
    pretreated
        Line of therapy: True for pretreated patients (from the virtual patients; all False without them).
    follow_up_day
        End of follow-up (administrative censoring).
    """

    times: np.ndarray
    tumour_burden: np.ndarray | None
    new_lesion_day: np.ndarray
    visit_days: np.ndarray
    target_sum_mm: np.ndarray
    progression_day: np.ndarray
    pretreated: np.ndarray
    follow_up_day: float


@dataclass(frozen=True, kw_only=True)
class SurvivalModel:
    """Death hazard linked to the simulated tumour burden (TGI-OS link).

    ``hazard(t) = base_hazard_per_day * (B(t)/B(0))**size_exponent * nl_hr**[new lesion] + background``

    The tumour-size dependence follows the tumour-growth-inhibition / OS models (Claret 2009,
    J Clin Oncol 27:4103; Bruno 2020, Clin Cancer Res 26:1787, NSCLC under atezolizumab). Values
    are assumptions to be calibrated: the base hazard gives a median OS of about 8 months at a
    constant burden (PEMBRO-RT control arm 7.6 months, Theelen 2019 JAMA Oncol 5:1276).
    """

    base_hazard_per_day: float = math.log(2) / (8.0 * DAYS_PER_MONTH)
    size_exponent: float = 1.0
    new_lesion_hazard_ratio: float = 1.5
    background_per_day: float = 0.05 / 365.25  # assumption: about 5%/year other-cause mortality

    FITTABLE: ClassVar[Mapping[str, tuple[float, float]]] = FrozenMap(
        {
            "base_hazard_per_day": (1e-5, 0.05),
            "size_exponent": (0.0, 3.0),
            "new_lesion_hazard_ratio": (1.0, 10.0),
            "background_per_day": (0.0, 1e-3),
        }
    )
    """Fields a calibration may fit (``survival__<field>``) and their bounds: base hazard from a median OS of
    about 14 days to 190 years at constant burden; size exponent up to 3; a new lesion at most multiplies the
    hazard by 10; background mortality at most about 30%/year."""
    requires_tumour_burden: ClassVar[bool] = True
    """Without a ``tumour_burden`` output no deaths are drawn (OS not evaluable)."""

    def __post_init__(self) -> None:
        for name in ("base_hazard_per_day", "size_exponent", "new_lesion_hazard_ratio", "background_per_day"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ParameterError(f"SurvivalModel.{name} must be a finite number >= 0, got {v!r}")

    def death_day(self, inputs: DeathInputs, draw: np.ndarray) -> np.ndarray:
        """Day of death of each patient (inf: none within the simulation): :func:`death_day` on the burden."""
        if inputs.tumour_burden is None:
            raise ParameterError("SurvivalModel needs the model's tumour_burden output; the model has none")
        return death_day(self, inputs.times, inputs.tumour_burden, inputs.new_lesion_day, draw)

    def describe(self) -> dict[str, object]:
        """Plain description for provenance (the field values)."""
        return dict(self.__dict__)


def death_day(
    model: SurvivalModel, times: np.ndarray, burden: np.ndarray, new_lesion_day: np.ndarray, draw: np.ndarray
) -> np.ndarray:
    """Day of death of each patient (inf: none within the simulation).

    ``burden`` is the tumour burden ``(patient, time)``; ``new_lesion_day`` the day of each patient's
    first new lesion (inf: none); ``draw`` the patients' Exp(1) death draws. The hazard is integrated
    by the trapezoidal rule on the simulation's time grid.
    """
    rel = burden / np.maximum(burden[:, :1], 1e-9)
    haz = (
        model.base_hazard_per_day
        * rel**model.size_exponent
        * np.where(times[None, :] >= new_lesion_day[:, None], model.new_lesion_hazard_ratio, 1.0)
    )
    haz = haz + model.background_per_day
    cum = np.concatenate(
        [np.zeros((burden.shape[0], 1)), np.cumsum(0.5 * (haz[:, 1:] + haz[:, :-1]) * np.diff(times), 1)], axis=1
    )
    return first_crossing(times, cum, draw)


@dataclass(frozen=True, kw_only=True, eq=False)
class SurvivalTimes:
    """PFS and OS of one arm's patients, in days from the simulation start (arrays over patients)."""

    pfs_day: np.ndarray  # progression or death; censored at the last scan within follow-up
    pfs_event: np.ndarray  # bool
    os_day: np.ndarray  # death; censored at the end of follow-up
    os_event: np.ndarray  # bool


def survival_times(
    progression_day: np.ndarray, death: np.ndarray, visits: np.ndarray, follow_up: float, start: float
) -> SurvivalTimes:
    """PFS (first progression scan or death) and OS, censored at the end of follow-up.

    ``progression_day`` is inf for patients without progression within follow-up; PFS without an
    event is censored at the last scan on or before the end of follow-up.
    """
    pfs_t = np.minimum(progression_day, death)
    pfs_event = np.isfinite(pfs_t) & (pfs_t <= follow_up)
    last_scan = visits[visits <= follow_up][-1]
    return SurvivalTimes(
        pfs_day=np.where(pfs_event, pfs_t, last_scan) - start,
        pfs_event=pfs_event,
        os_day=np.minimum(death, follow_up) - start,
        os_event=death <= follow_up,
    )
