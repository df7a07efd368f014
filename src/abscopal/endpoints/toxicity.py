"""Toxicity: radiation pneumonitis risk from an LKB NTCP on the EQD2-corrected mean lung dose.

The probability of grade >= 2 pneumonitis is the Lyman-Kutcher-Burman NTCP of the EQD2 mean lung dose
(Seppenwoolde 2003), times an interaction factor for RT given together with the checkpoint drug; grade >= 3 is a
fixed share of it (:attr:`PneumonitisModel.grade3_fraction`).

The concurrency rule (one rule, used by :func:`abscopal.score` and by the scenario studies): RT and the drug are
**concurrent when some checkpoint-drug dose is given within** ``concurrent_window_day`` **days, before or after,
of some RT fraction** (Tian 2020 called RT and ICI concurrent when given within 30 days of each other). It only
needs the smallest interval between a fraction and a dose (:func:`rt_drug_gap_day`): concurrent when that gap is
at most the window, sequential when it is larger, no interaction when there is no drug dose. RT given during
maintenance therapy is therefore concurrent, whatever the day of the first drug dose.

Mean lung dose: trials rarely report it, so a course without a given ``mean_lung_dose_gy`` takes
:func:`assumed_mean_lung_dose_gy`, a fraction (:data:`LUNG_DOSE_RATIO`) of its prescribed total dose
(studies and the pneumonitis cohorts of a calibration use the same rule).

The fields a calibration may fit (``ntcp__<field>``, :mod:`abscopal.fitted.values`) and their bounds are
:attr:`PneumonitisModel.FITTABLE`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .._frozen import FrozenMap
from ..errors import ParameterError
from ..radiobiology import SEPPENWOOLDE_2003_M, SEPPENWOOLDE_2003_TD50_GY, eqd2, lkb_ntcp
from ..treatment.plan import rt_drug_gap_day

if TYPE_CHECKING:
    from ..treatment.plan import TreatmentPlan

__all__ = [
    "GRADE3_FRACTION",
    "LUNG_DOSE_RATIO",
    "SBRT_MIN_DOSE_PER_FRACTION_GY",
    "PneumonitisModel",
    "assumed_mean_lung_dose_gy",
    "rt_drug_gap_day",
    "target_in_lung",
]

LUNG_DOSE_RATIO: Mapping[str, float] = FrozenMap({"lung_sbrt": 0.10, "lung_conventional": 0.25, "other": 0.03})
"""Mean lung dose as a fraction of the prescribed total dose, by target and fractionation [assumption].

Anchors: lung SBRT 24 Gy/3 to 50 Gy/4 gives a physical MLD of about 2.4-5 Gy (the 4 Gy assumed for PEMBRO-RT in
``scenarios/pembro_sbrt.toml``); conventional thoracic RT of 60 Gy gives about 15 Gy, under the QUANTEC MLD
limit of about 20 Gy (Marks 2010, Int J Radiat Oncol Biol Phys 76:S70, [U]); a metastasis outside the lung
(liver, adrenal, bone, node) gives about 3% of the prescription to the lung. ``lung_sbrt`` applies to doses of
:data:`SBRT_MIN_DOSE_PER_FRACTION_GY` or more per fraction. A course (or a study's fractionation level) that gives
``mean_lung_dose_gy`` overrides the rule."""
SBRT_MIN_DOSE_PER_FRACTION_GY = 5.0
"""Dose per fraction from which a lung course takes the ``lung_sbrt`` ratio of :data:`LUNG_DOSE_RATIO`."""
GRADE3_FRACTION = 0.33
"""Share of grade >= 2 radiation pneumonitis that reaches grade >= 3: 11.2% / 33.6% in the sequential
chemoradiotherapy arm of a 369-patient stage III NSCLC series scored with CTCAE 4.0 (Radiat Oncol 2014;9:172,
http://www.ro-journal.com/content/9/1/172, abstract seen [P]; its two concurrent arms gave 9.5/31 = 0.31 and
18.4/39.7 = 0.46). Not NSCLC stage IV with a checkpoint inhibitor: an assumption for those cohorts."""


def target_in_lung(target: Any) -> bool:
    """True if an RT target (a rule, a site or lesion indices) is a lung lesion: ``"lung_primary"``, ``"lung"`` or
    indices that include lesion 0 (the lung primary of the NSCLC models)."""
    return target in ("lung_primary", "lung") or (isinstance(target, tuple) and 0 in target)


def assumed_mean_lung_dose_gy(
    total_dose_gy: float, dose_per_fraction_gy: float, *, in_lung: bool = True, n_lesions: int = 1
) -> float:
    """Physical mean lung dose of a course that does not give one [assumption]: :data:`LUNG_DOSE_RATIO` times the
    prescribed total dose for the first target (lung SBRT from :data:`SBRT_MIN_DOSE_PER_FRACTION_GY` per fraction,
    else lung conventional; ``other`` outside the lung), plus the ``other`` ratio for each further lesion."""
    if not total_dose_gy > 0:
        return 0.0
    if in_lung:
        sbrt = dose_per_fraction_gy >= SBRT_MIN_DOSE_PER_FRACTION_GY
        first = LUNG_DOSE_RATIO["lung_sbrt" if sbrt else "lung_conventional"]
    else:
        first = LUNG_DOSE_RATIO["other"]
    return float(total_dose_gy * (first + LUNG_DOSE_RATIO["other"] * (n_lesions - 1)))


@dataclass(frozen=True, kw_only=True)
class PneumonitisModel:
    """Radiation pneumonitis probability: LKB NTCP on the EQD2 mean lung dose x ICI interaction.

    Defaults: TD50 30.8 Gy, m 0.37 (Seppenwoolde Y et al. 2003, Int J Radiat Oncol Biol Phys 55:724, SWOG grade
    >= 2, MLD with n about 1 [P]); lung alpha/beta 3 Gy (late-lung convention [U]); the interaction multiplies the
    NTCP when RT and the drug are concurrent: some drug dose within ``concurrent_window_day`` days of some fraction
    (module docstring; Tian S et al. 2020, Int J Radiat Oncol Biol Phys 108:304, defined concurrent as within 30
    days [P]); ``concurrent_multiplier`` 1.8 is the ratio 7.1%/3.9% of grade >= 3 pneumonitis concurrent vs
    sequential in Li B et al. 2021, Front Immunol 12:627197 [SEED, weak: calibrated by ``ntcp__concurrent_multiplier``,
    docs/calibration.md]; ``sequential_multiplier`` 1 (no interaction) [assumption]; ``grade3_fraction``:
    :data:`GRADE3_FRACTION`.

    :attr:`FITTABLE`: the fields a calibration may fit (``ntcp__<field>``) and their bounds.

    Raises
    ------
    ParameterError
        A field that is not a finite number, TD50, m or alpha/beta not > 0, a multiplier or window < 0, or
        ``grade3_fraction`` outside [0, 1].
    """

    td50_gy: float = SEPPENWOOLDE_2003_TD50_GY
    m: float = SEPPENWOOLDE_2003_M
    alpha_beta_lung_gy: float = 3.0
    concurrent_window_day: float = 30.0
    concurrent_multiplier: float = 1.8
    sequential_multiplier: float = 1.0
    grade3_fraction: float = GRADE3_FRACTION

    FITTABLE: ClassVar[Mapping[str, tuple[float, float]]] = FrozenMap(
        {
            "td50_gy": (5.0, 150.0),
            "m": (0.05, 2.0),
            "concurrent_multiplier": (0.1, 50.0),
            "sequential_multiplier": (0.1, 50.0),
            "grade3_fraction": (0.01, 1.0),
        }
    )
    """Fields a calibration may fit (``ntcp__<field>``) and their bounds: TD50 5-150 Gy (Seppenwoolde 30.8);
    m 0.05-2 (0.37); interaction multipliers 0.1-50 (a checkpoint drug might, at most, multiply the risk of a
    low-dose course fifty-fold); the grade >= 3 share 0.01-1. Bounds are plausibility limits, not sources."""

    def __post_init__(self) -> None:
        for name in (
            "td50_gy",
            "m",
            "alpha_beta_lung_gy",
            "concurrent_window_day",
            "concurrent_multiplier",
            "sequential_multiplier",
            "grade3_fraction",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ParameterError(f"PneumonitisModel.{name} must be a finite number, got {v!r}")
            positive = name in ("td50_gy", "m", "alpha_beta_lung_gy")
            if (positive and not v > 0) or v < 0:
                raise ParameterError(
                    f"PneumonitisModel.{name} must be {'> 0' if positive else '>= 0'}, got {v!r}; "
                    f"the default is {getattr(type(self), name)!r}"
                )
            object.__setattr__(self, name, float(v))
        if self.grade3_fraction > 1.0:
            raise ParameterError(
                f"PneumonitisModel.grade3_fraction must be in [0, 1] (a share of grade >= 2 events), got "
                f"{self.grade3_fraction!r}"
            )

    def ntcp(self, mean_lung_dose_gy: float, n_fractions: float) -> float:
        """LKB NTCP of the EQD2 mean lung dose, without the drug interaction (0 without lung dose)."""
        if not (mean_lung_dose_gy > 0 and n_fractions >= 1):
            return 0.0
        d = float(eqd2(mean_lung_dose_gy, int(n_fractions), self.alpha_beta_lung_gy))
        return float(lkb_ntcp(d, td50_gy=self.td50_gy, m=self.m))

    def interaction(self, rt_drug_gap_day: float) -> float:
        """The drug-interaction factor: concurrent, sequential, or 1 without a drug dose (gap NaN)."""
        if math.isnan(rt_drug_gap_day):
            return 1.0
        concurrent = rt_drug_gap_day <= self.concurrent_window_day
        return self.concurrent_multiplier if concurrent else self.sequential_multiplier

    def probability(self, mean_lung_dose_gy: float, n_fractions: float, rt_drug_gap_day: float) -> float:
        """Pneumonitis probability of a plan: its total mean lung dose, its number of fractions and the smallest
        interval between a fraction and a drug dose (:func:`rt_drug_gap_day`; NaN without a drug)."""
        if not (mean_lung_dose_gy > 0 and n_fractions >= 1):
            return 0.0
        p = self.ntcp(mean_lung_dose_gy, n_fractions)
        if not math.isnan(rt_drug_gap_day):
            p *= self.interaction(rt_drug_gap_day)
        return min(p, 1.0)

    def plan_probability(self, plan: TreatmentPlan, until_day: float = math.inf) -> float:
        """Pneumonitis probability of a :class:`~abscopal.treatment.TreatmentPlan` (drug doses up to ``until_day``)."""
        fractions = plan.fractions()
        if not fractions:
            return 0.0
        gap = rt_drug_gap_day((f.time_day for f in fractions), (d.time_day for d in plan.drug_doses(until_day)))
        return self.probability(sum(f.mean_lung_dose_gy for f in fractions), len(fractions), gap)
