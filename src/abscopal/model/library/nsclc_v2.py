r"""Model v2 of stage IV NSCLC RT + anti-PD-(L)1 (``nsclc_model(version=2)``).

Model v2 (issue 11) starts from v1 (:mod:`abscopal.model.library.nsclc`, whose docstring has every equation) and
changes what is marked ``[v2]`` below: (1) the untreated steady state as the initial state, (2) trial time zero,
(3) an immune route to unirradiated lesions that does not saturate, (4) lymphocytes killed by a blood-flow dose
model, (5) clonogen sterilisation for local control, (7) no radiation-driven macrophage switch. Names are
``nsclc_v2_rt_icb_...``, so v2 fits and kernels never mix with v1's. Notation as in v1; ``V0_j`` =
``baseline_volume_mm3_j`` is lesion j's size **at the trial's time zero** (the drawn baseline), ``B0 = sum_j V0_j``,
``E0`` = ``effector_baseline``, ``VDT`` = ``tumour_doubling_time_day``.

Equations (time in days; unchanged terms abbreviated, see v1)::

    B, C, RO, b, S, Pbar, TCD, dI/dt, dG/dt, dL/dt, dR/dt, dM/dt, PK, dH/dt   as v1
    r = E B_ref / (B + eps),  r0 = E0 B_ref / (B0 + eps)                effector-to-burden ratio, now and at rest
    rho = r / r0                                                       [v2] effectors per burden relative to rest
    kill_j = k_max a_j S (1 - i_max P_j (1 - b)) rho / (kappa + rho) + k_M1 M1      [v2] kappa =
       kill_half_sat_relative: the kill at rest is 1 / (1 + kappa) of its maximum (kappa in [0.25, 20]), so it
       always responds to effector numbers (v1's r / (K + r) could be fitted to ~1 at rest)
    P0  = z + (1 - z) TPS                                              [v2] baseline PD-L1, z = pdl1_tps_zero_level
    dV_j/dt = g_j(V_j, D_j) + (kill_j(0) - kill_j) V_j                  as v1, with the growth anchored at V0_j [v2]:
       gompertz:    g_j = a_j V_j ln(K/(V_j + D_j)),  a_j = -ln(1 - ln2/ln(K/V0_j)) / VDT
       logistic:    g_j = a_j V_j (1 - (V_j + D_j)/K), a_j = ln(2 (K - V0_j)/(K - 2 V0_j)) / VDT
       exponential: g_j = ln2/VDT V_j
    dP_j/dt = k_pdl (P* - P_j),  odds(P*) = odds(P0) rho'              [v2] IFN-gamma induction relative to rest,
       rho' = 1 + [ifng_pdl1] (rho - 1)                                 (Kosinsky 2018's r/(K_p + r) with the
                                                                        half-saturation fixed by P*(r0) = P0)
    x   = x0 TCD / TCD0 + I                                            [v2] priming signal, in units of the DC
    dA/dt = k_A (x^2 / (1 + x^2) - A)                                  half-saturation; x0 = dc_rest_signal, so the
                                                                       resting DC level A0 = x0^2/(1 + x0^2) leaves
                                                                       room for RT (Kosinsky 2018 Hill n = 2)
    TCD = d0 + ([immunogenic_cell_death] sum_j kd_j D_j + sum_j kill_j V_j) / B   (without v1's + I)
    dE/dt = d_E (E0 (1 + [antigen_priming] (B/B0 - 1)) (L/L0)(A/A0)(S/S0)
                 (1 - [pd_l1_axis] i_max Pbar (1 - b))/(1 - i_max P0) - E)
       [v2] priming proportional to the antigen load B/B0 (Kosinsky 2018: Ag_sys = DCm (TV + TVd)), so that
       untreated growth leaves rho, and with it the kill, at rest
    dM_1/dt, dM_2/dt                                                   as v1

Radiation fraction (doses ``d_j``, mean blood dose ``b`` and exposed blood share ``f`` of the fraction, ``last`` =
1 at the last fraction of a course) [v2]::

    s_j  = exp(-alpha d_j - beta d_j^2)                                 pure LQ (the local-control anchors are BED10)
    V_j -> 0                    if last, d_j > 0 and q_j < exp(-mu_j)  sterilised: no clonogen survives (Poisson),
                                                                        mu_j = rho_c s_j V_j / 1000 surviving
                                                                        clonogens, q_j ~ U(0, 1) per patient/lesion
           max(s_j V_j, 1000/rho_c)   if last and d_j > 0 otherwise    (at least the one clonogen that survived)
           s_j V_j                    otherwise
    D_j -> D_j + (V_j - V_j');  kd_j, P_j, G, E                         as v1
    I   -> I + [immunogenic_cell_death] c_I sum_j d_j T(d_j) (V_j + D_j) / B0     antigen / cytosolic-DNA signal
       of the cells in the field (viable or doomed), linear in the dose per fraction below the TREX1 threshold and
       declining above it (T(d) = 1/(1 + [trex1_decline] (d/d_T)^h); Vanpouille-Box 2017), per unit baseline burden
    L   -> L (1 - [lymphocyte_kill] f (1 - exp(-alpha_L b / f)))        Jin 2020 / HEDOS: the exposed share f of the
       blood receives b / f; b and f come from the course's field (:mod:`abscopal.blood_dose`)
    M1, M2                                                              as v1 with macrophage_rt_shift = 0 [v2]

Initial state: the untreated steady state at B0 (analytic) when ``start_volume_factor_j = 1``: ``V_j = V0_j``,
``D_j = 0``, ``P_j = P0``, ``E = E0``, ``A = A0``, ``L = L0``, ``R``, ``M`` as v1, the macrophages with the
IFN-gamma conversion at rest. With a history (prior RT before time zero),
:func:`abscopal.history.hold_sizes_at_time_zero` sets ``start_volume_factor_j`` so that the lesions reach ``V0_j``
at time zero; the simulation then starts at
``V_j = V0_j start_volume_factor_j`` and ``E = E0 B(start)/B0`` (the resting effector-to-burden ratio), while the
growth constants, PD-L1 and priming stay anchored at the time-zero sizes ``V0_j``. A lesion within a factor 2 of
the carrying capacity cannot double; its growth constant is capped (Gompertz: ``ln2/ln(K/V0) <= 0.9``; logistic:
``V0/K <= 0.45``), so it doubles more slowly than ``VDT``.

Parameters: v1's changed by :func:`v2_parameters` (every change names its source there).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sympy as sp

from ..spec import EventArgument, Mechanism, Parameter, State, sym
from .nsclc_base import _EPS_MM3, MECHANISMS, NsclcBuilder

__all__ = ["MECHANISMS_V2", "NsclcV2Builder", "v2_parameters"]

_DESCRIPTION = __doc__ or ""

_EPS_RATIO = 1e-9
"""Added to both effector-to-burden ratios (now and at rest): a model without effector cells
(``effector_baseline = 0``) keeps a defined kill and PD-L1 target; it cancels exactly at rest."""
_EPS_SHARE = 1e-12
"""Below this exposed blood share the lymphocyte kill is 0 (then ``b = 0`` too; guards ``b / f``)."""
_MM3_PER_CM3 = 1000.0

_MAX_DOUBLING_SHARE = 0.9
"""Gompertz: the first doubling uses at most this share of ``ln(K / V0)`` (a lesion within a factor
``2**(1/0.9)`` of the carrying capacity doubles more slowly than ``VDT`` instead of never)."""
_MAX_LOGISTIC_FILL = 0.45
"""Logistic: the baseline volume counts as at most this share of the carrying capacity (same purpose)."""

_V2_SOURCES = {
    "ifng_pdl1": "; v2: relative to rest, odds(P*) = odds(P0) r/r0 (half-saturation fixed by P*(r0) = P0)",
    "immunogenic_cell_death": "; v2: signal per fraction proportional to the dose and the cells in the field "
    "(Vanpouille-Box 2017: IFN-beta rises with the dose per fraction below the TREX1 threshold; Golden 2014: "
    "calreticulin, HMGB1 and ATP release rise with dose)",
    "lymphocyte_kill": "; v2: blood dose and exposed share per fraction from a blood-flow model (HEDOS, Shin 2021; "
    "Jin 2020 in vivo alpha 0.40 /Gy; abscopal.blood_dose)",
    "macrophage_polarisation": "; v2: no radiation-driven switch by default (macrophage_rt_shift = 0): no monotone "
    "dose -> M1 rule holds for human NSCLC (Klug 2013 low-dose M1 in pancreatic cancer; Chiang 2012 M2 after RT "
    "in hypoxia; Genard 2017 review)",
}

MECHANISMS_V2: tuple[Mechanism, ...] = (
    *(
        replace(m, source=m.source + _V2_SOURCES[m.name]) if m.name in _V2_SOURCES else m
        for m in MECHANISMS
        if m.name != "lq_linear_high_dose"
    ),
    Mechanism(
        name="antigen_priming",
        description="effector priming proportional to the antigen load (tumour burden relative to baseline)",
        source="Kosinsky 2018: systemic antigen Ag_sys = DCm (TV + TVd) drives T-cell priming",
    ),
    Mechanism(
        name="clonogen_sterilisation",
        description="a course sterilises its lesion when no clonogen survives (Poisson, per-lesion draw)",
        source="Poisson TCP (Munro & Gilbert 1961) with inter-patient radiosensitivity (Webb & Nahum 1993)",
    ),
)
"""v1's mechanisms without the LQ-L tail (v2 is pure LQ, as the local-control anchors), ``ifng_pdl1`` acting
relative to rest, ``antigen_priming`` (off: v1's burden-independent priming) and ``clonogen_sterilisation`` (off:
the LQ surviving fraction applied to the volume, as v1)."""

_REMOVED = frozenset(
    {
        "growth_reference_volume_mm3",
        "pdl1_ifng_half_sat",
        "kill_half_sat_ratio",
        "icd_yield_per_mm3",
        "dc_maturation_half_sat_per_day",
        "blood_fraction_exposed",
        "lql_transition_dose_gy",
    }
)
"""v1 parameters v2 does not have: the growth is anchored at each lesion's baseline volume; the half-saturations of
IFN-gamma PD-L1 induction and of the kill are relative to rest; the DC signal is in units of its half-saturation;
the exposed blood share is a property of each fraction's field (an event argument); v2 is pure LQ."""

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
    "tumour_alpha_per_gy": {
        "default": 0.236,
        "description": "linear LQ radiosensitivity of tumour clonogens (typical patient; varies between patients)",
        "source": "Webb & Nahum 1993 population TCP calibrated to lung-SBRT local control (Shirata 2012 Radiat "
        "Oncol 7:182; Baba 2010 Radiat Oncol 5:81) with alpha/beta 10 Gy: mean 0.236, SD 0.061 /Gy "
        "(abscopal.tumour_control); inside the NSCLC range 0.12-0.365 (Jeong 2017)",
    },
    "danger_decay_per_day": {
        "description": "decay rate of the RT priming signal (type-I IFN / antigen release)",
    },
    "macrophage_rt_shift": {
        "default": 0.0,
        "source": "0 (no radiation-driven switch): no monotone dose -> M1 rule is supported for human NSCLC; Klug "
        "2013 (Cancer Cell 24:589) showed low-dose M1 programming in pancreatic cancer and mouse T-cell-transfer "
        "settings, Chiang 2012 (Front Oncol 2:89) M2 after RT in hypoxia, Genard 2017 (Front Immunol 8:828) either "
        "way; a sensitivity parameter, not a default effect",
    },
    "macrophage_polarisation_dose_gy": {
        "source": "assumption (inert while macrophage_rt_shift = 0); sign convention: above this dose per fraction "
        "the shift is towards M1",
    },
    "lymphocyte_alpha_per_gy": {
        "default": 0.40,
        "description": "in vivo radiosensitivity of circulating lymphocytes (1/Gy)",
        "source": "Jin 2020 (Radiother Oncol 144:105): median in vivo alpha 0.40 /Gy fitted to weekly lymphocyte "
        "counts of 51 patients against the dose to the circulating lymphocytes (in vitro 0.41)",
    },
    "treg_turnover_per_day": {
        "source": "human in vivo: regulatory T cells double every 8 days (0.087/day; deuterium labelling, "
        "Vukmanovic-Stejic M et al., J Clin Invest 2006;116:2423, doi:10.1172/JCI28941); 0.1 within 15% of it",
    },
    "dc_turnover_per_day": {
        "source": "human in vivo: circulating cDC1 and DC2 stay 1.32 and 2.20 days (0.76 and 0.45 /day; Lubin R "
        "et al., J Exp Med 2024;221:e20220867); 0.5 inside that range",
    },
    "alc_recovery_per_day": {
        "source": "human cohorts: after lung SBRT the lymphocyte count nadirs at about 1 week and is almost "
        "restored by about 3 months (Li 2024, Chin J Radiat Oncol 33:909); after thoracic chemoradiation it is not "
        "recovered at 2 months (Zhao 2019, Radiat Oncol 14:86): a half-life of 46 days (0.015/day) reproduces "
        "both time courses (Sung 2020 first-order structure)",
    },
    "m1_baseline_fraction": {
        "description": "M1 share of newly recruited tumour-associated macrophages (the resting M1 share is higher "
        "by the IFN-gamma M2-to-M1 conversion at rest)",
        "source": "human NSCLC: M1/M2 ratio 0.2-0.7 in resected NSCLC (M1 share 0.17-0.41; Ma J et al., BMC "
        "Cancer 2010;10:112, Table 2); 0.3 inside that range",
    },
    "pdl1_tps": {
        "description": "baseline PD-L1 tumour proportion score (fraction); baseline PD-L1 expression = "
        "pdl1_tps_zero_level + (1 - pdl1_tps_zero_level) pdl1_tps",
    },
}
"""v1 parameters whose default, description or source v2 changes."""


def _lesion_changes(j: int) -> dict[str, Any]:
    return {
        "description": f"volume of lesion {j} at the trial's time zero (its drawn baseline size; 0 = absent); the "
        "anchor of its growth constant",
    }


_ADDED_AFTER: dict[str, tuple[Parameter, ...]] = {
    "tumour_alpha_beta_gy": (
        Parameter(
            name="clonogen_density_per_cm3",
            units="1/cm3",
            default=1.0e7,
            lower=1.0e5,
            upper=1.0e9,
            description="clonogenic tumour cells per cm3 of viable tumour (sets the surviving clonogens of a course)",
            source="Webb & Nahum 1993 (Phys Med Biol 38:653): 1e7 per cm3 [memory, unverified], the value with which "
            "alpha was calibrated to lung-SBRT local control",
        ),
    ),
    "trex1_hill": (
        Parameter(
            name="icd_signal_per_gy",
            units="1/Gy",
            default=0.1,
            lower=0.0,
            upper=10.0,
            description="RT priming signal (in DC half-saturations) per Gy per fraction when the whole baseline "
            "burden is in the field",
            source="assumption (structure: Vanpouille-Box 2017, signal rising with the dose per fraction below the "
            "TREX1 threshold): 24 Gy/3 to a lesion of 70% of the burden raises the signal to about 1.2 half-"
            "saturations; fitted (fits/)",
        ),
    ),
    "baseline_turnover_per_day": (
        Parameter(
            name="dc_rest_signal",
            units="1",
            default=1.0 / 3.0,
            lower=0.05,
            upper=1.0,
            description="untreated DC maturation signal in units of its half-saturation (resting DC level "
            "x0^2 / (1 + x0^2))",
            source="assumption: the resting DC level is 10% of its maximum, leaving room for RT-driven priming (in "
            "v1 the signal sat at 99% of saturation, so no regimen could raise it)",
        ),
    ),
    "max_kill_per_day": (
        Parameter(
            name="kill_half_sat_relative",
            units="1",
            default=2.0,
            lower=0.25,
            upper=20.0,
            description="effector-to-burden ratio (relative to rest) of half-maximal kill; the kill at rest is "
            "1 / (1 + kill_half_sat_relative) of its maximum",
            source="assumption (ratio-dependent kill, de Pillis 2005); bounded so that the kill at rest is 5-80% of "
            "its maximum and responds to effector numbers",
        ),
    ),
    "pdl1_tps": (
        Parameter(
            name="pdl1_tps_zero_level",
            units="1",
            default=0.1,
            lower=0.0,
            upper=0.5,
            description="PD-L1 expression (fraction of maximum) of a tumour with TPS 0: the PD-L1 that the tumour "
            "proportion score does not count (on infiltrating immune cells, below-threshold tumour staining); also "
            "the floor from which IFN-gamma induces PD-L1",
            source="assumption: the TPS counts only tumour cells with membranous staining, while PD-L1 on immune "
            "cells also engages PD-1, and PD-L1-negative (TPS < 1%) NSCLC still gains from anti-PD-1 (largest SBRT "
            "benefit in PD-L1-negative patients in PEMBRO-RT, Theelen 2019); with 0, a TPS-0 tumour would have no "
            "PD-L1 axis and no IFN-gamma induction at all",
        ),
    ),
}
"""Parameters v2 adds, after the named v1 parameter."""


def _lesion_added(j: int) -> tuple[Parameter, ...]:
    return (
        Parameter(
            name=f"control_quantile_{j}",
            units="1",
            default=0.5,
            lower=0.0,
            upper=1.0,
            description=f"uniform draw of lesion {j}'s local control: a course sterilises the lesion when this is "
            "below exp(-surviving clonogens)",
            source="per-patient draw (abscopal.patients); 0.5 for the typical patient",
        ),
        Parameter(
            name=f"start_volume_factor_{j}",
            units="1",
            default=1.0,
            lower=0.0,
            upper=1.0e4,
            description=f"volume of lesion {j} at the start of the simulation relative to its time-zero size; 1 "
            "without a history, set by abscopal.history when prior RT precedes time zero",
            source="time-zero shooting (abscopal.history)",
        ),
    )


def v2_parameters(v1: tuple[Parameter, ...]) -> tuple[Parameter, ...]:
    """v2's parameters from v1's: without :data:`_REMOVED`, with :data:`_CHANGED` and the added ones."""
    out: list[Parameter] = []
    for p in v1:
        if p.name in _REMOVED:
            continue
        if p.name in _CHANGED:
            p = replace(p, **_CHANGED[p.name])
        elif p.name.startswith("baseline_volume_mm3_"):
            p = replace(p, **_lesion_changes(int(p.name.rsplit("_", 1)[1])))
        out.append(p)
        out.extend(_ADDED_AFTER.get(p.name, ()))
        if p.name.startswith("immune_access_"):
            out.extend(_lesion_added(int(p.name.rsplit("_", 1)[1])))
    return tuple(out)


class NsclcV2Builder(NsclcBuilder):
    """Model v2: v1's pieces (:class:`~abscopal.model.library.nsclc_base.NsclcBuilder`) with the changes of the
    module docstring."""

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

    def baseline_kill_saturation(self) -> sp.Expr:
        """``1 / (1 + kappa)``: the kill saturation at rest (rho = 1)."""
        return 1 / (1 + sym("kill_half_sat_relative"))

    def baseline_dc(self) -> sp.Expr:
        """``A0 = x0^2 / (1 + x0^2)``, x0 = ``dc_rest_signal``."""
        x0 = sym("dc_rest_signal")
        return x0**2 / (1 + x0**2)

    def start_burden(self) -> sp.Expr:
        """Total lesion volume at the start of the simulation (the time-zero burden without a history)."""
        return sum(sym(f"baseline_volume_mm3_{j}") * sym(f"start_volume_factor_{j}") for j in range(self.L))

    # ---- rate pieces --------------------------------------------------------------------------------------------
    def relative_ratio(self) -> sp.Expr:
        """``rho = r / r0``: the effector-to-burden ratio relative to rest."""
        return (self.ratio + _EPS_RATIO) / (self.baseline_ratio() + _EPS_RATIO)

    def kill_saturation(self) -> sp.Expr:
        """``rho / (kappa + rho)``: half-maximal at ``kappa`` times the resting ratio."""
        rho = self.relative_ratio()
        return rho / (sym("kill_half_sat_relative") + rho)

    def pdl1_target(self, j: int) -> sp.Expr:
        """``odds(P*) = odds(P0) rho``: IFN-gamma induction relative to the resting ratio, so P*(r0) = P0."""
        p0 = self.baseline_pdl1()
        rho = 1 + self.on["ifng_pdl1"] * (self.relative_ratio() - 1)
        return p0 * rho / (p0 * rho + (1 - p0))

    def dc_target(self, kill: list[sp.Expr]) -> sp.Expr:
        """``x^2 / (1 + x^2)`` with ``x = x0 TCD / TCD0 + I`` (module docstring)."""
        s, L = sym, self.L
        tcd = self.cell_death(kill)
        kill0 = self.baseline_kill()
        b0 = self.baseline_burden() + _EPS_MM3
        tcd0 = s("baseline_turnover_per_day") + sum(kill0[j] * s(f"baseline_volume_mm3_{j}") for j in range(L)) / b0
        x = s("dc_rest_signal") * tcd / tcd0 + self.I
        return x**2 / (1 + x**2)

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

    # ---- states and events --------------------------------------------------------------------------------------
    def states(self) -> tuple[State, ...]:
        """v1's states at rest, with the lesions at their start sizes (``start_volume_factor_j``) and the effector
        pool at the resting ratio for the start burden."""
        s = sym
        scale = (self.start_burden() + _EPS_MM3) / (self.baseline_burden() + _EPS_MM3)
        out = []
        for st in super().states():
            if st.group == "viable_volume" and st.lesion is not None:
                st = replace(st, initial=s(f"baseline_volume_mm3_{st.lesion}") * s(f"start_volume_factor_{st.lesion}"))
            elif st.name == "E":
                st = replace(st, initial=s("effector_baseline") * scale)
            out.append(st)
        return tuple(out)

    # ---- the radiation fraction (the shared structure is NsclcBuilder.radiation_event) ---------------------------
    radiation_description = (
        "one radiotherapy fraction (LQ kill and clonogen sterilisation, priming signal, PD-L1, suppressors, "
        "lymphocytes)"
    )
    radiation_source = (
        "LQ: Fowler 1989; Poisson TCP: Munro & Gilbert 1961, Webb & Nahum 1993; doomed compartment: "
        "Kosinsky 2018; blood dose: Shin 2021 (HEDOS), Jin 2020"
    )

    def radiation_arguments(self) -> tuple[EventArgument, ...]:
        """The doses, the fraction's mean blood dose and exposed blood share, and whether it ends its course."""
        return (
            *(EventArgument(name=f"dose_gy_{j}", units="Gy", description=f"dose to lesion {j}") for j in range(self.L)),
            EventArgument(
                name="mean_blood_dose_gy",
                units="Gy",
                description="mean dose to the whole blood pool in this fraction (HEDOS MBD; abscopal.blood_dose)",
            ),
            EventArgument(
                name="exposed_blood_fraction",
                units="1",
                description="share of the blood that passes the field during this fraction (abscopal.blood_dose)",
                upper=1.0,
            ),
            EventArgument(
                name="course_last_fraction",
                units="1",
                description="1 at the last fraction of a radiation course, else 0",
                upper=1.0,
            ),
        )

    def fraction_kill(self, j: int, d: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
        """Pure LQ, and at a course's last fraction the Poisson sterilisation of the lesion (module docstring)."""
        s, on = sym, self.on
        alpha = s("tumour_alpha_per_gy")
        beta = alpha / s("tumour_alpha_beta_gy")
        rho_c = s("clonogen_density_per_cm3")
        one_clonogen = _MM3_PER_CM3 / rho_c
        half = sp.Rational(1, 2)
        survivors = sp.exp(-(alpha * d + beta * d**2)) * self.V[j]
        ends_course = sp.And(s("course_last_fraction") > half, d > 0, on["clonogen_sterilisation"] > half)
        mu = rho_c * survivors / _MM3_PER_CM3
        v_new = sp.Piecewise(
            (0, sp.And(ends_course, s(f"control_quantile_{j}") < sp.exp(-mu))),
            (one_clonogen, sp.And(ends_course, survivors < one_clonogen)),
            (survivors, True),
        )
        return v_new, self.V[j] - v_new

    def priming_term(self, j: int, d: sp.Expr, trex: sp.Expr, killed: sp.Expr) -> sp.Expr:
        """The dose times the cells in the field (viable or doomed), TREX1-weighted."""
        return d * trex * (self.V[j] + self.D[j])

    def priming_jump(self, total: sp.Expr) -> sp.Expr:
        """``c_I`` per unit baseline burden, in DC half-saturations."""
        return sym("icd_signal_per_gy") * total / (self.baseline_burden() + _EPS_MM3)

    def lymphocyte_kill_share(self) -> sp.Expr:
        """``f (1 - exp(-alpha_L b / f))`` with the fraction's own blood dose ``b`` and exposed share ``f``."""
        s = sym
        share = s("exposed_blood_fraction")
        return sp.Piecewise(
            (share * (1 - sp.exp(-s("lymphocyte_alpha_per_gy") * s("mean_blood_dose_gy") / share)), share > _EPS_SHARE),
            (0, True),
        )
