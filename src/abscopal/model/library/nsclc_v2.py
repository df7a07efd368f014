r"""Model v2 of stage IV NSCLC RT + anti-PD-(L)1 (opt-in: ``nsclc_model(version=2)``; in progress).

Model v2 (issue 11) starts from v1 (:mod:`abscopal.model.library.nsclc`, whose docstring has every equation)
and changes what is marked ``[v2]`` below. Done so far: item 1, the rest state. Every immune, PD-L1 and
suppressor state starts at its untreated steady state for the patient's baseline burden and PD-L1 TPS
(analytically; no root solve), baseline PD-L1 is the TPS-derived level, and an untreated lesion doubles from its
baseline volume in ``tumour_doubling_time_day``. Names are ``nsclc_v2_rt_icb_...``, so v2 fits and kernels never
mix with v1's. Notation as in v1; ``B0 = sum_j V0_j`` is the patient's baseline burden (``V0_j`` =
``baseline_volume_mm3_j``), ``E0`` = ``effector_baseline``, ``VDT`` = ``tumour_doubling_time_day``.

Equations (time in days; unchanged terms abbreviated, see v1)::

    B, C, RO, b, S, Pbar, kill_j, TCD, dA/dt, dI/dt, dG/dt, dL/dt, dR/dt, dM/dt, PK, dH/dt   as v1
    r   = E B_ref / (B + eps) ;  r0 = E0 B_ref / (B0 + eps)            effector-to-burden ratio, now and at rest
    P0  = z + (1 - z) TPS                                              [v2] baseline PD-L1, z = pdl1_tps_zero_level
    dV_j/dt = g_j(V_j, D_j) + (kill_j(0) - kill_j) V_j                  as v1 (kill_j(0): the kill at rest), with
       the intrinsic growth anchored at the lesion's baseline volume [v2]: its first doubling from V0_j,
       at the resting kill, takes exactly VDT
       gompertz:    g_j = a_j V_j ln(K/(V_j + D_j)),  a_j = -ln(1 - ln2/ln(K/V0_j)) / VDT
       logistic:    g_j = a_j V_j (1 - (V_j + D_j)/K), a_j = ln(2 (K - V0_j)/(K - 2 V0_j)) / VDT
       exponential: g_j = ln2/VDT V_j
    dP_j/dt = k_pdl (P* - P_j)                                         [v2] IFN-gamma induction relative to rest:
       odds(P*) = odds(P0) r'/r0,  r' = r0 + [ifng_pdl1] (r - r0)      (Kosinsky 2018's r/(K_p + r) with the
       P* = P0 r' / (P0 r' + (1 - P0) r0)                               half-saturation fixed by P*(r0) = P0)
    dE/dt = d_E (E0 (1 + [antigen_priming] (B/B0 - 1)) (L/L0)(A/A0)(S/S0)
                 (1 - [pd_l1_axis] i_max Pbar (1 - b))/(1 - i_max P0) - E)
       [v2] priming proportional to the antigen load B/B0 (Kosinsky 2018: Ag_sys = DCm (TV + TVd)), so that
       untreated growth leaves the effector-to-burden ratio, and with it the kill, at rest
    dM_1/dt, dM_2/dt                                                   as v1 (recruitment split m1 : 1 - m1)

Initial state (the untreated steady state at B0; analytic): ``V_j = V0_j``, ``D_j = 0``, ``P_j = P0``, ``E = E0``,
``L = L0``, ``R``, ``M`` as v1, ``A = A0`` as v1 (with the v2 kill at rest), and the macrophages with the
IFN-gamma conversion ``c0 = [macrophage_polarisation] k_g r0 / (1 + r0)`` at rest [v2]:
``M_2(0) = k_mac (1 - m1) T0 / (k_mac + c0)``, ``M_1(0) = T0 - M_2(0)``, ``T0 = 1 + [burden_suppression] a_mac
f_B(B0)``. A lesion within a factor 2 of the carrying capacity cannot double; its growth constant is capped
(Gompertz: ``ln2/ln(K/V0) <= 0.9``; logistic: ``V0/K <= 0.45``), so it doubles more slowly than ``VDT``.

Events as v1. Parameters: v1's, without ``growth_reference_volume_mm3`` (the growth is anchored at each lesion's
baseline) and ``pdl1_ifng_half_sat`` (fixed by the rest condition), with ``pdl1_tps_zero_level`` added and the
carrying capacity raised to 1e7 mm3 (a 100 mm lesion could not double under v1's 1e6 mm3); see
:func:`v2_parameters`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sympy as sp

from ..spec import Mechanism, Parameter, sym
from .nsclc_base import _EPS_MM3, MECHANISMS, NsclcBuilder

__all__ = ["MECHANISMS_V2", "NsclcV2Builder", "v2_parameters"]

_DESCRIPTION = __doc__ or ""

_EPS_RATIO = 1e-9
"""Added to both effector-to-burden ratios of the PD-L1 odds (now and at rest): a model without effector cells
(``effector_baseline = 0``) keeps a defined PD-L1 target; it cancels exactly at rest."""

_MAX_DOUBLING_SHARE = 0.9
"""Gompertz: the first doubling uses at most this share of ``ln(K / V0)`` (a lesion within a factor
``2**(1/0.9)`` of the carrying capacity doubles more slowly than ``VDT`` instead of never)."""
_MAX_LOGISTIC_FILL = 0.45
"""Logistic: the baseline volume counts as at most this share of the carrying capacity (same purpose)."""

MECHANISMS_V2: tuple[Mechanism, ...] = (
    *(
        replace(
            m,
            source=m.source + "; v2: relative to rest, odds(P*) = odds(P0) r/r0 (half-saturation fixed by P*(r0) = P0)",
        )
        if m.name == "ifng_pdl1"
        else m
        for m in MECHANISMS
    ),
    Mechanism(
        name="antigen_priming",
        description="effector priming proportional to the antigen load (tumour burden relative to baseline)",
        source="Kosinsky 2018: systemic antigen Ag_sys = DCm (TV + TVd) drives T-cell priming",
    ),
)
"""v1's mechanisms (``ifng_pdl1`` acting relative to rest) and ``antigen_priming`` (switched off: v1's
burden-independent priming)."""

_REMOVED = frozenset({"growth_reference_volume_mm3", "pdl1_ifng_half_sat"})
"""v1 parameters v2 does not have: the growth is anchored at each lesion's baseline volume, and the half-saturation
of IFN-gamma PD-L1 induction is fixed by the rest condition P*(r0) = P0."""

_CHANGED: dict[str, dict[str, Any]] = {
    "tumour_doubling_time_day": {
        "description": "untreated volume doubling time of a lesion from its baseline volume (its first doubling, "
        "net of the immune kill at rest)",
    },
    "carrying_capacity_mm3": {
        "default": 1.0e7,
        "description": "Gompertz/logistic plateau volume of one lesion; must exceed twice the largest baseline "
        "lesion for it to double in the stated doubling time",
        "source": "assumption: about 27 cm sphere-equivalent diameter, 19 times the volume of the largest baseline "
        "lesion (100 mm, 5.2e5 mm3; RECIST 1.1 target lesions 10-100 mm in the virtual patients), so that every "
        "baseline lesion doubles at the stated doubling time (v1's 1e6 mm3, 124 mm, would not let a 100 mm lesion "
        "double at all under Gompertz growth)",
    },
    "m1_baseline_fraction": {
        "description": "M1 share of newly recruited tumour-associated macrophages (the resting M1 share is higher "
        "by the IFN-gamma M2-to-M1 conversion at rest)",
    },
    "pdl1_tps": {
        "description": "baseline PD-L1 tumour proportion score (fraction); baseline PD-L1 expression = "
        "pdl1_tps_zero_level + (1 - pdl1_tps_zero_level) pdl1_tps",
    },
}
"""v1 parameters whose default, description or source v2 changes."""

_ADDED_AFTER: dict[str, Parameter] = {
    "pdl1_tps": Parameter(
        name="pdl1_tps_zero_level",
        units="1",
        default=0.1,
        lower=0.0,
        upper=0.5,
        description="PD-L1 expression (fraction of maximum) of a tumour with TPS 0: the PD-L1 that the tumour "
        "proportion score does not count (on infiltrating immune cells, below-threshold tumour staining); also the "
        "floor from which IFN-gamma induces PD-L1",
        source="assumption: the TPS counts only tumour cells with membranous staining, while PD-L1 on immune cells "
        "also engages PD-1, and PD-L1-negative (TPS < 1%) NSCLC still gains from anti-PD-1 (largest SBRT benefit "
        "in PD-L1-negative patients in PEMBRO-RT, Theelen 2019); with 0, a TPS-0 tumour would have no PD-L1 axis "
        "and no IFN-gamma induction at all",
    ),
}
"""Parameters v2 adds, each after the named v1 parameter."""


def v2_parameters(v1: tuple[Parameter, ...]) -> tuple[Parameter, ...]:
    """v2's parameters from v1's: without :data:`_REMOVED`, with :data:`_CHANGED` and :data:`_ADDED_AFTER`."""
    out: list[Parameter] = []
    for p in v1:
        if p.name in _REMOVED:
            continue
        out.append(replace(p, **_CHANGED[p.name]) if p.name in _CHANGED else p)
        if p.name in _ADDED_AFTER:
            out.append(_ADDED_AFTER[p.name])
    return tuple(out)


class NsclcV2Builder(NsclcBuilder):
    """Model v2: v1's pieces (:class:`~abscopal.model.library.nsclc_base.NsclcBuilder`) with the untreated steady state
    as the initial state and the doubling time anchored at each lesion's baseline (module docstring)."""

    version = 2
    description = _DESCRIPTION
    mechanisms = MECHANISMS_V2

    def name(self) -> str:
        """``nsclc_v2_rt_icb_<L>lesion_<growth>[_odepk]``."""
        return f"nsclc_v2_rt_icb_{self.L}lesion_{self.growth}" + ("_odepk" if self.pk == "ode" else "")

    def parameters(self) -> tuple[Parameter, ...]:
        """v1's parameters changed by :func:`v2_parameters`."""
        return v2_parameters(super().parameters())

    # ---- the untreated steady state (analytic) ------------------------------------------------------------------
    def baseline_pdl1(self) -> sp.Expr:
        """``P0 = z + (1 - z) TPS``: the TPS-derived PD-L1 expression at rest."""
        z = sym("pdl1_tps_zero_level")
        return z + (1 - z) * sym("pdl1_tps")

    def baseline_cells(self) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
        """Tregs and MDSCs as v1; the macrophages at their steady state with the IFN-gamma M2-to-M1 conversion of
        the resting effector-to-burden ratio (v1 left it out, so M1 and M2 drifted at rest)."""
        s = sym
        r0, m0, m1_v1, m2_v1 = super().baseline_cells()
        total = m1_v1 + m2_v1  # the burden-induced recruitment target T0, which polarisation does not change
        ratio0 = self.baseline_ratio()
        k = s("macrophage_turnover_per_day")
        conv0 = self.on["macrophage_polarisation"] * s("m2_to_m1_ifng_per_day") * ratio0 / (1 + ratio0)
        m2 = k * (1 - s("m1_baseline_fraction")) * total / (k + conv0)
        return r0, m0, total - m2, m2

    # ---- rate pieces --------------------------------------------------------------------------------------------
    def pdl1_target(self, j: int) -> sp.Expr:
        """``odds(P*) = odds(P0) r / r0``: IFN-gamma induction relative to the resting ratio, so P*(r0) = P0."""
        p0, r0 = self.baseline_pdl1(), self.baseline_ratio()
        r = r0 + self.on["ifng_pdl1"] * (self.ratio - r0)
        return p0 * (r + _EPS_RATIO) / (p0 * (r + _EPS_RATIO) + (1 - p0) * (r0 + _EPS_RATIO))

    def effector_source(self) -> sp.Expr:
        """v1's priming times the antigen load ``B / B0`` (``antigen_priming``)."""
        load = self.B / (self.baseline_burden() + _EPS_MM3)
        return super().effector_source() * (1 + self.on["antigen_priming"] * (load - 1))

    def growth_rate(self, j: int) -> sp.Expr:
        """Intrinsic growth whose first doubling from the baseline volume ``V0_j`` takes ``VDT`` (module
        docstring); it is the net growth at the resting kill."""
        s = sym
        vdt, K = s("tumour_doubling_time_day"), s("carrying_capacity_mm3")
        v0 = s(f"baseline_volume_mm3_{j}") + _EPS_MM3
        V, D = self.V[j], self.D[j]
        ln2 = sp.log(2)
        if self.growth == "gompertz":
            share = ln2 / sp.Max(sp.log(K / v0), ln2 / _MAX_DOUBLING_SHARE)
            return -sp.log(1 - share) / vdt * V * sp.log(K / (V + D + _EPS_MM3))
        if self.growth == "logistic":
            fill = sp.Min(v0 / K, _MAX_LOGISTIC_FILL)
            return sp.log(2 * (1 - fill) / (1 - 2 * fill)) / vdt * V * (1 - (V + D) / K)
        return ln2 / vdt * V
