"""How a trial assessed its patients: :class:`TrialAssessment` (scans, response rules, censoring, models).

One object holds every setting of a trial's assessment: the scan visits (:func:`trial_scans` by default),
RECIST 1.1 or iRECIST thresholds, the ORR visit, whether irradiated lesions are scored, the end of
follow-up, the lesion sites, the death model (the published tumour-growth-rate link
:class:`~abscopal.endpoints.survival_link.TumourGrowthSurvival`, the default, or model v1's burden hazard
:class:`~abscopal.endpoints.death.SurvivalModel`) and the pneumonitis model
(:class:`~abscopal.endpoints.toxicity.PneumonitisModel`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError, unknown_name_message
from .death import SurvivalModel
from .recist import RECIST_1_1, SITES, RecistRules
from .scans import ExplicitScans, ScanSchedule
from .survival_link import TumourGrowthSurvival
from .toxicity import PneumonitisModel

__all__ = ["DEATH_MODELS", "DeathModel", "TrialAssessment", "trial_scans"]

DeathModel = SurvivalModel | TumourGrowthSurvival
"""A death model of a :class:`TrialAssessment`."""
DEATH_MODELS = (SurvivalModel, TumourGrowthSurvival)
"""The death-model classes (each declares ``FITTABLE``: its fields a calibration may fit, with bounds)."""


def trial_scans(
    start_day: float,
    *,
    interval_week: float = 6.0,
    switch_week: float = 52.0,
    later_interval_week: float = 9.0,
    end_day: float = 730.0,
) -> ExplicitScans:
    """Baseline scan at ``start_day``, then scans every ``interval_week`` counted from day 0 (first
    drug dose) until ``switch_week``, then every ``later_interval_week`` until ``end_day``."""
    days = [float(start_day)]
    t = interval_week * 7.0
    while t <= min(switch_week * 7.0, end_day) + 1e-9:
        if t > start_day:
            days.append(t)
        t += interval_week * 7.0
    t = days[-1] + later_interval_week * 7.0
    while t <= end_day + 1e-9:
        days.append(t)
        t += later_interval_week * 7.0
    return ExplicitScans(days=tuple(days))


@dataclass(frozen=True, kw_only=True)
class TrialAssessment:
    """How a trial assessed its patients.

    Parameters
    ----------
    scans
        Scan visits (visit 0 = baseline); default :func:`trial_scans` from the simulation start.
    rules
        RECIST 1.1 (default) or iRECIST thresholds.
    orr_visit_day
        ORR at the first scan on or after this day (PEMBRO-RT: 84, week 12); ``None`` = best
        overall response.
    exclude_irradiated
        Score only non-irradiated lesions (out-of-field response; PEMBRO-RT, MDACC).
    follow_up_day
        Administrative censoring; default the last scan.
    lesion_sites
        Site of each model lesion (lesion 0 is the lung primary); used for RECIST per-organ rules.
    survival, pneumonitis
        The death model (default :class:`~abscopal.endpoints.survival_link.TumourGrowthSurvival`: the
        published tumour-growth-rate link on the trial-measured SLD, Struemper 2025; or
        :class:`~abscopal.endpoints.death.SurvivalModel`: a hazard on the simulated total burden, model v1's) and
        the pneumonitis model.
    seed
        Seed of the Exp(1) event draws when the dataset carries none (default: the dataset's seed).
    """

    scans: ScanSchedule | ExplicitScans | None = None
    rules: RecistRules = RECIST_1_1
    orr_visit_day: float | None = None
    exclude_irradiated: bool = True
    follow_up_day: float | None = None
    lesion_sites: tuple[str, ...] = ("lung", "lymph_node", "liver", "adrenal", "bone", "brain", "lung", "liver")
    survival: DeathModel = field(default_factory=TumourGrowthSurvival)
    pneumonitis: PneumonitisModel = field(default_factory=PneumonitisModel)
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("orr_visit_day", "follow_up_day"):
            v = getattr(self, name)
            if v is not None and (
                isinstance(v, bool)
                or not isinstance(v, int | float | np.integer | np.floating)
                or not math.isfinite(v)
                or v < 0
            ):
                hint = "None for the best overall response" if name == "orr_visit_day" else "None for the last scan"
                raise ParameterError(f"{name} must be a finite day >= 0 or None, got {v!r}; give a day or {hint}")
        if not isinstance(self.survival, DEATH_MODELS):
            raise ParameterError(
                f"survival must be a SurvivalModel or a TumourGrowthSurvival, got {type(self.survival).__name__}"
            )
        if not isinstance(self.exclude_irradiated, bool | np.bool_):
            raise ParameterError(f"exclude_irradiated must be True or False, got {self.exclude_irradiated!r}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or self.seed < 0
        ):
            raise ParameterError(f"seed must be a non-negative integer or None, got {self.seed!r}")
        if not isinstance(self.lesion_sites, tuple | list):
            raise ParameterError(
                f"lesion_sites must be a tuple of sites, got {self.lesion_sites!r}; e.g. ('lung', 'liver')"
            )
        object.__setattr__(self, "lesion_sites", tuple(self.lesion_sites))
        for s in self.lesion_sites:
            if not isinstance(s, str):
                raise ParameterError(f"lesion_sites must hold site names, got {s!r}; e.g. ('lung', 'liver')")
            if s not in SITES:
                raise ParameterError("lesion_sites: " + unknown_name_message("site", s, SITES))

    def describe(self) -> dict[str, object]:
        """Plain description for provenance."""
        return {
            "rules": self.rules.describe(),
            "orr_visit_day": self.orr_visit_day,
            "exclude_irradiated": self.exclude_irradiated,
            "follow_up_day": self.follow_up_day,
            "lesion_sites": list(self.lesion_sites),
            "survival": self.survival.describe(),
            "pneumonitis": self.pneumonitis.__dict__,
        }
