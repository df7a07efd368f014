"""Toxicity: radiation pneumonitis risk from an LKB NTCP on the EQD2-corrected mean lung dose.

The probability is the Lyman-Kutcher-Burman NTCP of the EQD2 mean lung dose (Seppenwoolde 2003), times an
interaction factor when RT and the checkpoint drug are given together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..radiobiology import eqd2, lkb_ntcp

__all__ = ["PneumonitisModel"]


@dataclass(frozen=True, kw_only=True)
class PneumonitisModel:
    """Radiation pneumonitis probability: LKB NTCP on the EQD2 mean lung dose x ICI interaction.

    Defaults: TD50 30.8 Gy, m 0.37 (Seppenwoolde 2003, grade >= 2, MLD with n about 1); lung
    alpha/beta 3 Gy (late-lung convention); the interaction multiplies the NTCP when the first
    fraction and the first drug dose are within ``concurrent_window_day`` days (Tian 2020 defined
    concurrent as within 30 days); ``concurrent_multiplier`` 1.8 is the ratio 7.1%/3.9% of
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

    def probability(
        self, mean_lung_dose_gy: float, n_fractions: float, rt_first_day: float, drug_first_day: float
    ) -> float:
        """Pneumonitis probability of one arm's plan."""
        if not (mean_lung_dose_gy > 0 and n_fractions >= 1):
            return 0.0
        p = self.ntcp(mean_lung_dose_gy, n_fractions)
        if math.isfinite(drug_first_day):
            concurrent = abs(rt_first_day - drug_first_day) <= self.concurrent_window_day
            p *= self.concurrent_multiplier if concurrent else self.sequential_multiplier
        return min(p, 1.0)
