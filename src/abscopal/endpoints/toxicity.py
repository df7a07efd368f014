"""Toxicity: radiation pneumonitis risk from an LKB NTCP on the EQD2-corrected mean lung dose.

The probability is the Lyman-Kutcher-Burman NTCP of the EQD2 mean lung dose (Seppenwoolde 2003), times an
interaction factor for RT given together with the checkpoint drug.

The concurrency rule (one rule, used by :func:`abscopal.score` and by the scenario studies): RT and the drug are
**concurrent when some checkpoint-drug dose is given within** ``concurrent_window_day`` **days, before or after,
of some RT fraction** (Tian 2020 called RT and ICI concurrent when given within 30 days of each other). It only
needs the smallest interval between a fraction and a dose (:func:`rt_drug_gap_day`): concurrent when that gap is
at most the window, sequential when it is larger, no interaction when there is no drug dose. RT given during
maintenance therapy is therefore concurrent, whatever the day of the first drug dose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..radiobiology import eqd2, lkb_ntcp
from ..treatment.plan import rt_drug_gap_day

if TYPE_CHECKING:
    from ..treatment.plan import TreatmentPlan

__all__ = ["PneumonitisModel", "rt_drug_gap_day"]


@dataclass(frozen=True, kw_only=True)
class PneumonitisModel:
    """Radiation pneumonitis probability: LKB NTCP on the EQD2 mean lung dose x ICI interaction.

    Defaults: TD50 30.8 Gy, m 0.37 (Seppenwoolde 2003, grade >= 2, MLD with n about 1); lung
    alpha/beta 3 Gy (late-lung convention); the interaction multiplies the NTCP when RT and the drug are
    concurrent: some drug dose within ``concurrent_window_day`` days of some fraction (module docstring;
    Tian 2020 defined concurrent as within 30 days); ``concurrent_multiplier`` 1.8 is the ratio 7.1%/3.9% of
    grade >= 3 pneumonitis concurrent vs sequential in Li B 2021 [SEED, weak: to be calibrated].
    """

    td50_gy: float = 30.8
    m: float = 0.37
    alpha_beta_lung_gy: float = 3.0
    concurrent_window_day: float = 30.0
    concurrent_multiplier: float = 1.8
    sequential_multiplier: float = 1.0

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
