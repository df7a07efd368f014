r"""The default stage IV NSCLC model: radiotherapy + anti-PD-(L)1, several lesions.

Build it with :func:`nsclc_model`. Notation: lesions :math:`j = 0..L-1`; viable volume
:math:`V_j`, lethally damaged ("doomed") volume :math:`D_j` (mm3), doomed-cell clearance rate
:math:`k_j`, PD-L1 expression :math:`P_j`; systemic compartments: mature-DC signal :math:`A`,
RT danger/IFN-I signal :math:`I`, RT TGF-beta signal :math:`G`, effector CD8 T cells :math:`E`,
circulating lymphocytes :math:`L`, Tregs :math:`R`, MDSCs :math:`M`, macrophages
:math:`M_1, M_2`, drug amounts :math:`A_c, A_p` (mg), new-lesion cumulative hazard :math:`H`.
Each bracketed tag names the mechanism switch ``on_<tag>`` that multiplies the term.

Equations (time in days)::

    B   = sum_j (V_j + D_j)                                   visible tumour burden [mm3]
    C   = A_c / Vc ;  RO = C / (C + EC50)                      drug conc. [ug/mL], occupancy (QSS)
    b   = [checkpoint_blockade] * RO                           blockade of the PD-1/PD-L1 axis
    r   = E * B_ref / (B + eps)                                effector-to-burden ratio (same
                                                               density in every lesion; Poleszczuk 2016
                                                               trafficking with access weights a_j)
    S   = 1 / (1 + s_R R + s_M M + s_2 M_2)                    suppression of effector function
    Pbar= sum_j (V_j + D_j) P_j / B                            burden-weighted PD-L1
    dV_j/dt = growth(V_j, D_j) - kill_j V_j
                + (kill_j(0) - kill_j) V_j                       kill_j(0): kill at the untreated start,
                                                               so VDT is the observed net doubling time
       growth  = ln2/(VDT ln(K/V_ref)) V_j ln(K/(V_j + D_j))   (Gompertz; logistic/exponential optional)
       kill_j  = kmax a_j S (1 - [pd_l1_axis] i_max P_j (1 - b)) r/(K_r + r) + k_M1 M_1
    dD_j/dt = - k_j D_j                                        doomed cells still occupy volume
    dk_j/dt = 0                                                set at each fraction (dose-dependent delay)
    dP_j/dt = k_pdl (P0 + (1 - P0) [ifng_pdl1] r/(K_p + r) - P_j)        (Kosinsky 2018)
    TCD = d0 + ([immunogenic_cell_death] sum_j k_j D_j + sum_j kill_j V_j)/(B + eps) + [icd] I
    dA/dt = k_A (TCD^2/(TCD^2 + K_tcd^2) - A)                  DC maturation, Hill 2 (Kosinsky 2018)
    dI/dt = - k_I I ;  dG/dt = - k_G G
    dE/dt = d_E (E0 (L/L0)(A/A0)(S/S0)(1 - [pd_l1_axis] i_max Pbar (1 - b))/(1 - i_max P0) - E)
              priming normalised by its untreated baseline (A0, S0, P0), so E(0) = E0 is a steady
              state before treatment; ICI, ICD and lymphopenia move E away from it
    dL/dt = k_L (L0 - L)                                        ALC recovery (Sung 2020)
    dR/dt = k_R (1 + [burden_suppression] a_R f_B + [rt_suppression] b_R G) - k_R R (1 + [tnf] c E)
    dM/dt = same form with MDSC parameters;  f_B = B/(B + B_half)
    dM_1/dt = k_mac (m1 (1 + a_mac f_B) - M_1) + ([macrophage_repolarisation] (k_b b + k_g r/(1+r)) M_2
              - k_t G M_1)
    dM_2/dt = k_mac ((1 - m1)(1 + a_mac f_B) - M_2) - (same exchange)
    dA_c/dt = -(CL(t) + Q)/Vc A_c + Q/Vp A_p ;  dA_p/dt = Q/Vc A_c - Q/Vp A_p
       CL(t) = CL0 exp(Emax t^g/(T50^g + t^g))                  (Bajaj 2017 time-varying clearance)
    dH/dt = [new_lesions] lambda (sum_j V_j / V_new)^gamma      new-lesion hazard

Events (jumps applied exactly at their times):

``radiation_fraction`` (arguments ``dose_gy_<j>`` per lesion, ``blood_dose_gy``): with
``-ln SF(d) = alpha d + beta d^2 - [lq_linear_high_dose] beta (d - d_t)^2 (d > d_t)`` (LQ-L,
Astrahan 2008): ``V_j -> SF V_j``; ``D_j -> D_j + (1-SF) V_j``; ``k_j`` -> volume-weighted mean
of the old rate and ``min(max(k0 + c d, k0), kmax)`` (Friedrich 2022 dose-dependent death);
``I -> I + [immunogenic_cell_death] y sum_j (1-SF_j) V_j T(d_j)`` with the TREX1 factor
``T(d) = 1/(1 + (d/d_trex)^h)`` under ``[trex1_decline]`` (Vanpouille-Box 2017);
``P_j -> P_j + [rt_pdl1] (1 - P_j)(1 - exp(-p d_j))``; ``G -> G + [rt_suppression] g sum_j d_j``;
macrophages re-polarise by ``s = m tanh((d - d_pol)/w)`` (M2 -> M1 above about 1 Gy, M1 -> M2
below; Klug 2013); ``[lymphocyte_kill]``: ``L -> L (1 - phi (1 - exp(-alpha_L b/phi)))`` for the
mean blood dose ``b`` (a fraction ``phi`` of the blood receives ``b/phi``, so the kill per fraction
saturates and 15 small fractions deplete more than 4 large ones; Jin 2021, HEDOS) and
``E -> E (1 - f_T sum_j w_j (1 - exp(-alpha_T d_j)))`` for effector cells in the field.

``drug_dose`` (arguments ``dose_mg``, ``dose_mg_per_kg``): ``A_c -> A_c + dose_mg +
dose_mg_per_kg * body_weight_kg``.

Design decision: receptor occupancy is quasi-steady (``RO = C/(C + EC50)``). Antibody binding
(Kd about 29 pM) is orders of magnitude faster than PK (half-life about 3 weeks), and an explicit
binding state makes the system stiff (explicit solvers were about 1,500x slower at realistic binding
rates in our design benchmarks) without changing occupancy, which stays saturating during dosing
(pembrolizumab troughs of 13-30 ug/mL, Ahamadi 2017, against an EC50 of about 0.004 ug/mL).
"""

from __future__ import annotations

from typing import Any

from ...errors import ModelError
from ..spec import ModelSpec
from .nsclc_base import GROWTH_LAWS, MECHANISMS, NsclcBuilder
from .nsclc_v2 import NsclcV2Builder

__all__ = [
    "GROWTH_LAWS",
    "MECHANISMS",
    "VERSIONS",
    "NsclcV1Builder",
    "default_variability",
    "model_variability",
    "nsclc_model",
]

_DESCRIPTION = __doc__ or ""
"""The equations of version 1 (this module's docstring), the description of its spec."""

VERSIONS = (1, 2)
"""Versions of the NSCLC model: 2 (the default, :mod:`.nsclc_v2`) and 1 (this module, kept for comparison)."""


def nsclc_model(n_lesions: int = 3, *, version: int = 2, growth: str = "gompertz", pk: str = "analytic") -> ModelSpec:
    """Build the default NSCLC RT + anti-PD-(L)1 model.

    Parameters
    ----------
    n_lesions
        Number of lesions (1 to 8); lesion 0 is by convention the lung primary.
    version
        ``2`` (default): model v2 (:mod:`abscopal.model.library.nsclc_v2`, name ``nsclc_v2_rt_icb_...``; the
        shipped fit ``fits/default.json`` is for it): at rest before treatment, growth anchored at the time-zero
        sizes, a dose-dependent priming route to unirradiated lesions, lymphocytes killed by a blood-flow dose
        model, clonogen sterilisation. ``1``: the model of this module's docstring (name ``nsclc_rt_icb_...``;
        its last fit is ``fits/v1.json``), kept for comparison.
    growth
        ``"gompertz"`` (default), ``"logistic"`` or ``"exponential"``.
    pk
        ``"analytic"`` (default): the linear two-compartment PK is solved exactly in modal form
        (two modal amplitudes and the time of the last dose are states that only jump at doses;
        the concentration is computed in closed form, as NONMEM's ADVAN3 does). This is exact and
        takes the PK out of the step-size control (a third of the steps). Requires constant
        clearance (``pk_cl_time_emax`` fixed at 0). ``"ode"``: amounts ``Ac``, ``Ap`` as ODE
        states, needed for time-varying clearance (nivolumab, Bajaj 2017).

    Returns
    -------
    ModelSpec
        The model; its ``description`` is the equations (this module's docstring for version 1).
    """
    if isinstance(version, bool) or version not in VERSIONS:
        raise ModelError(
            f"nsclc model version must be one of {list(VERSIONS)} (1: the default model, 2: model v2), got {version!r}"
        )
    if version == 2:
        return NsclcV2Builder(n_lesions, growth, pk).build()
    return NsclcV1Builder(n_lesions, growth, pk).build()


class NsclcV1Builder(NsclcBuilder):
    """Version 1: the shared pieces (:class:`~abscopal.model.library.nsclc_base.NsclcBuilder`) as they are,
    described by this module's docstring."""

    description = _DESCRIPTION


def model_variability(spec: Any) -> dict[str, Any]:
    """:func:`default_variability` of the NSCLC version a spec was built as (by its name: ``nsclc_rt_icb_...`` is
    version 1, anything else the default version)."""
    return default_variability(1 if str(spec.name).startswith("nsclc_rt_icb_") else 2)


def default_variability(version: int = 2) -> dict[str, Any]:
    """Inter-patient variability of the NSCLC model ``version`` (log-normal omega = SD of the log).

    Version 1 (assumptions to be refitted by the calibration, ``fits/``): effector baseline (pre-existing
    immunity) and kill capacity vary most, in line with the wide spread of responses to anti-PD-1 monotherapy (ORR
    18-25%: PEMBRO-RT control arm, Theelen 2019; MDACC, Welsh 2020); the doubling-time spread matches the wide VDT
    ranges of untreated NSCLC (Detterbeck 2008).

    Version 2: the effector baseline drops out (v2's kill depends on the effectors relative to rest, so it would
    not vary anything); the kill capacity carries the spread of responses (omega 0.7, assumption); tumour
    radiosensitivity has the spread of the population TCP that fits lung-SBRT local control (SD 0.061 around 0.236
    /Gy, CV 0.26; Webb & Nahum 1993 form, abscopal.tumour_control); the baseline lymphocyte count varies with
    omega 0.4 (assumption: lymphocyte counts of advanced NSCLC patients span about 0.5-3 x 1e9/L, a CV near 40%,
    around the 1.65 mean of the EDIC cohort, Yu et al.).
    """
    from ...population import LogitNormal, LogNormal

    if version == 1:
        return {
            "tumour_doubling_time_day": LogNormal(omega=0.5),
            "effector_baseline": LogNormal(omega=1.0),
            "max_kill_per_day": LogNormal(omega=0.5),
            "pdl1_tps": LogitNormal(omega=1.5),
            "tumour_alpha_per_gy": LogNormal(omega=0.3),
        }
    return {
        "tumour_doubling_time_day": LogNormal(omega=0.5),
        "max_kill_per_day": LogNormal(omega=0.7),
        "pdl1_tps": LogitNormal(omega=1.5),
        "tumour_alpha_per_gy": LogNormal(omega=0.26),
        "alc_baseline_1e9_per_l": LogNormal(omega=0.4),
    }
