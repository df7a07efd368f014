"""Building blocks of the NSCLC RT + anti-PD-(L)1 models (v1 and v2): :class:`NsclcBuilder` and the shared pieces.

:class:`NsclcBuilder` builds version 1 (the equations are in :mod:`abscopal.model.library.nsclc`, whose docstring is
v1's description); :class:`abscopal.model.library.nsclc_v2.NsclcV2Builder` overrides the pieces v2 changes. Build
either with :func:`abscopal.model.library.nsclc.nsclc_model`.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from ...errors import ModelError, unknown_name_message
from ..spec import TIME, Event, EventArgument, Mechanism, ModelSpec, Observable, Parameter, State, sym
from .nsclc_parameters import REFERENCES, global_parameters, lesion_parameters

__all__ = ["GROWTH_LAWS", "MECHANISMS", "PK_FORMS", "ROLES", "NsclcBuilder"]

GROWTH_LAWS = ("gompertz", "logistic", "exponential")

MECHANISMS = (
    Mechanism(
        name="checkpoint_blockade",
        description="drug receptor occupancy blocks the PD-1/PD-L1 axis",
        source="seed review; Kosinsky 2018 IAR",
    ),
    Mechanism(
        name="pd_l1_axis",
        description="PD-L1 inhibits effector priming and killing",
        source="Kosinsky 2018 IAR = 1 - PDL1/(1 + mAb/KD)",
    ),
    Mechanism(
        name="ifng_pdl1",
        description="effector IFN-gamma up-regulates PD-L1 (adaptive resistance)",
        source="Kosinsky 2018 kpdl dTeff/(Kpdl + dTeff)",
    ),
    Mechanism(
        name="rt_pdl1",
        description="radiation up-regulates PD-L1 in the irradiated lesion",
        source="seed review (RT-induced PD-L1)",
    ),
    Mechanism(
        name="immunogenic_cell_death",
        description="dying irradiated cells release antigen and danger signals that mature DCs",
        source="seed review; Kosinsky 2018 TCD",
    ),
    Mechanism(
        name="trex1_decline",
        description="IFN-I signalling declines above about 12 Gy per fraction",
        source="Vanpouille-Box 2017",
    ),
    Mechanism(
        name="lq_linear_high_dose",
        description="LQ-L correction: survival log-linear above the transition dose",
        source="Astrahan 2008",
    ),
    Mechanism(
        name="dose_dependent_death",
        description="doomed cells die faster after larger fractions",
        source="Friedrich 2022",
    ),
    Mechanism(
        name="lymphocyte_kill",
        description="RT kills circulating lymphocytes (blood dose) and in-field effector cells",
        source="Jin 2021 (EDIC); Sung 2020; Yu et al. (EDIC, LS-SCLC)",
    ),
    Mechanism(
        name="burden_suppression",
        description="tumour burden induces Tregs, MDSCs and macrophages (TGF-beta, IL-10)",
        source="seed review",
    ),
    Mechanism(name="rt_suppression", description="radiation induces TGF-beta, Tregs and MDSCs", source="seed review"),
    Mechanism(
        name="tnf_suppressor_kill",
        description="activated CD8 T cells eliminate suppressors (TNF-alpha)",
        source="seed review",
    ),
    Mechanism(
        name="suppression",
        description="Tregs, MDSCs and M2 macrophages inhibit effector function",
        source="seed review",
    ),
    Mechanism(
        name="macrophage_polarisation",
        description="RT re-polarises macrophages dose-dependently; PD-1 blockade and IFN-gamma shift M2 to M1",
        source="seed review; Klug 2013",
    ),
    Mechanism(
        name="new_lesions",
        description="new metastases appear at a burden-dependent rate",
        source="assumption (needed for RECIST progression by new lesion)",
    ),
)

_EPS_MM3 = 1e-6  # guards divisions by the burden when every lesion has vanished


def _growth(law: str, V: sp.Expr, D: sp.Expr) -> sp.Expr:
    vdt, K, vref = sym("tumour_doubling_time_day"), sym("carrying_capacity_mm3"), sym("growth_reference_volume_mm3")
    ln2 = sp.log(2)
    if law == "gompertz":
        return ln2 / (vdt * sp.log(K / vref)) * V * sp.log(K / (V + D + _EPS_MM3))
    if law == "logistic":
        return ln2 / vdt * V * (1 - (V + D) / K) / (1 - vref / K)
    return ln2 / vdt * V


PK_FORMS = ("analytic", "ode")


ROLES = {
    "lesion_diameter": "lesion_diameter",
    "lesion_volume": "lesion_volume",
    "new_lesion_hazard": "H",
    "tumour_burden": "total_burden",
    "lymphocytes": "L",
}
"""Roles of the model's outputs in trial scoring (:data:`abscopal.model.spec.OBSERVABLE_ROLES`); irradiated lesions
come from the treatment plan (no ``rt_dose`` output)."""


class NsclcBuilder:
    """The pieces of the NSCLC model as version 1 has them (equations: :mod:`abscopal.model.library.nsclc`);
    :meth:`build` assembles the spec.

    Each piece is a method, so a later version (:class:`abscopal.model.library.nsclc_v2.NsclcV2Builder`) reuses
    the pieces it keeps and overrides the ones it changes. The untreated baseline (``baseline_*``) is analytic.
    """

    version = 1
    description = ""
    """The spec's description (the equations); set by the version's module."""
    mechanisms: tuple[Mechanism, ...] = MECHANISMS

    def __init__(self, n_lesions: int, growth: str, pk: str) -> None:
        if not isinstance(n_lesions, int) or isinstance(n_lesions, bool) or not 1 <= n_lesions <= 8:
            raise ModelError(f"n_lesions must be an integer from 1 to 8, got {n_lesions!r}")
        if growth not in GROWTH_LAWS:
            raise ModelError(unknown_name_message("growth law", str(growth), GROWTH_LAWS))
        if pk not in PK_FORMS:
            raise ModelError(unknown_name_message("pk form", str(pk), PK_FORMS))
        self.L, self.growth, self.pk = n_lesions, growth, pk
        L, s = n_lesions, sym
        self.on = {m.name: m.switch for m in self.mechanisms}
        self.V = [s(f"V_{j}") for j in range(L)]
        self.D = [s(f"D_{j}") for j in range(L)]
        self.kd = [s(f"kd_{j}") for j in range(L)]
        self.Pl = [s(f"P_{j}") for j in range(L)]
        self.A, self.I, self.G, self.E, self.Ly, self.R, self.M, self.M1, self.M2 = (
            s(n) for n in ("A", "I", "G", "E", "L", "R", "M", "M1", "M2")
        )
        self.pk_form = _pk_analytic() if pk == "analytic" else _pk_ode()
        self.burden = sum(self.V[j] + self.D[j] for j in range(L))
        self.B = self.burden + _EPS_MM3
        self.conc = self.pk_form["central_amount"] / s("pk_vc_l")
        self.ro = self.conc / (self.conc + s("ro_ec50_ug_per_ml"))
        self.block = self.on["checkpoint_blockade"] * self.ro
        self.ratio = self.E * s("immune_burden_scale_mm3") / self.B
        self.imax = s("pd1_max_inhibition") * self.on["pd_l1_axis"]
        self.f_burden = self.burden / (self.burden + s("suppressor_burden_half_mm3"))

    # ---- identity --------------------------------------------------------------------------------------------
    def name(self) -> str:
        """The model name: version, lesion count, growth law and PK form."""
        return f"nsclc_rt_icb_{self.L}lesion_{self.growth}" + ("_odepk" if self.pk == "ode" else "")

    def parameters(self) -> tuple[Parameter, ...]:
        """The model's parameters (switches excluded; the PK form may fix some)."""
        params = global_parameters() + tuple(p for j in range(self.L) for p in lesion_parameters(j))
        return tuple(self.pk_form["fix"].get(p.name, p) for p in params)

    # ---- the untreated baseline (analytic) -------------------------------------------------------------------
    def baseline_burden(self) -> sp.Expr:
        """Total baseline volume (mm3), without the division guard."""
        return sum(sym(f"baseline_volume_mm3_{j}") for j in range(self.L))

    def baseline_ratio(self) -> sp.Expr:
        """Effector-to-burden ratio at the untreated start (E = E0)."""
        s = sym
        return s("effector_baseline") * s("immune_burden_scale_mm3") / (self.baseline_burden() + _EPS_MM3)

    def baseline_pdl1(self) -> sp.Expr:
        """PD-L1 expression at the untreated start (v1: the TPS)."""
        return sym("pdl1_tps")

    def baseline_cells(self) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
        """Untreated initial Tregs, MDSCs, M1 and M2 (burden-induced steady state at E = E0)."""
        s, on = sym, self.on
        b0 = self.baseline_burden()
        fb0 = on["burden_suppression"] * b0 / (b0 + s("suppressor_burden_half_mm3"))
        tnf0 = 1 + on["tnf_suppressor_kill"] * s("tnf_suppressor_kill") * s("effector_baseline")
        mac = 1 + s("macrophage_burden_induction") * fb0
        return (
            (1 + s("treg_burden_induction") * fb0) / tnf0,
            (1 + s("mdsc_burden_induction") * fb0) / tnf0,
            s("m1_baseline_fraction") * mac,
            (1 - s("m1_baseline_fraction")) * mac,
        )

    def baseline_supp(self) -> sp.Expr:
        """Suppression factor S at the untreated initial state."""
        r0, m0, _, m20 = self.baseline_cells()
        return self.suppression(r0, m0, m20)

    def baseline_kill(self) -> list[sp.Expr]:
        """Per-lesion immune kill rate at the untreated initial state (E = E0)."""
        s = sym
        sat0 = self.baseline_kill_saturation()
        supp0 = self.baseline_supp()
        m1_0 = self.baseline_cells()[2]
        inh0 = 1 - s("pd1_max_inhibition") * self.on["pd_l1_axis"] * self.baseline_pdl1()
        return [
            s("max_kill_per_day") * s(f"immune_access_{j}") * supp0 * inh0 * sat0 + s("m1_kill_per_day") * m1_0
            for j in range(self.L)
        ]

    def baseline_dc(self) -> sp.Expr:
        """Untreated quasi-steady mature-DC signal (spontaneous turnover + baseline immune kill)."""
        s = sym
        b0 = self.baseline_burden() + _EPS_MM3
        kill0 = self.baseline_kill()
        tcd0 = (
            s("baseline_turnover_per_day") + sum(kill0[j] * s(f"baseline_volume_mm3_{j}") for j in range(self.L)) / b0
        )
        return tcd0**2 / (tcd0**2 + s("dc_maturation_half_sat_per_day") ** 2)

    # ---- rate pieces -------------------------------------------------------------------------------------------
    def suppression(self, R: sp.Expr, M: sp.Expr, M2: sp.Expr) -> sp.Expr:
        """Suppression factor S of effector function for Tregs R, MDSCs M and M2 macrophages."""
        s = sym
        return 1 / (
            1
            + self.on["suppression"]
            * (s("treg_suppression") * R + s("mdsc_suppression") * M + s("m2_suppression") * M2)
        )

    def kill_saturation(self) -> sp.Expr:
        """Ratio-dependent saturation of the effector kill (de Pillis 2005): ``r / (K + r)``."""
        return self.ratio / (sym("kill_half_sat_ratio") + self.ratio)

    def baseline_kill_saturation(self) -> sp.Expr:
        """:meth:`kill_saturation` at the untreated start (E = E0)."""
        r0 = self.baseline_ratio()
        return r0 / (sym("kill_half_sat_ratio") + r0)

    def cell_death(self, kill: list[sp.Expr]) -> sp.Expr:
        """Tumour-cell death per unit burden (Kosinsky 2018 TCD, 1/day): turnover, doomed cells clearing (counted
        with ``immunogenic_cell_death``) and the immune kill."""
        s, on, L = sym, self.on, self.L
        return (
            s("baseline_turnover_per_day")
            + (
                on["immunogenic_cell_death"] * sum(self.kd[j] * self.D[j] for j in range(L))
                + sum(kill[j] * self.V[j] for j in range(L))
            )
            / self.B
        )

    def dc_target(self, kill: list[sp.Expr]) -> sp.Expr:
        """The mature-DC level ``A`` relaxes to: a Hill function (n = 2) of the tumour-cell death signal (Kosinsky
        2018 TCD), with the RT danger signal ``I`` added."""
        tcd = self.cell_death(kill) + self.on["immunogenic_cell_death"] * self.I
        ktcd = sym("dc_maturation_half_sat_per_day")
        return tcd**2 / (tcd**2 + ktcd**2)

    def kill(self) -> list[sp.Expr]:
        """Per-lesion immune kill rate of viable cells (1/day)."""
        s = sym
        supp = self.suppression(self.R, self.M, self.M2)
        sat = self.kill_saturation()
        return [
            s("max_kill_per_day")
            * s(f"immune_access_{j}")
            * supp
            * (1 - self.imax * self.Pl[j] * (1 - self.block))
            * sat
            + s("m1_kill_per_day") * self.M1
            for j in range(self.L)
        ]

    def growth_rate(self, j: int) -> sp.Expr:
        """Intrinsic (untreated, net of the baseline immune kill) growth of lesion ``j`` (mm3/day)."""
        return _growth(self.growth, self.V[j], self.D[j])

    def pdl1_target(self, j: int) -> sp.Expr:
        """The level PD-L1 of lesion ``j`` relaxes to (Kosinsky 2018 IFN-gamma induction on top of the TPS)."""
        s, p0 = sym, sym("pdl1_tps")
        return p0 + (1 - p0) * self.on["ifng_pdl1"] * self.ratio / (s("pdl1_ifng_half_sat") + self.ratio)

    def effector_source(self) -> sp.Expr:
        """Effector priming relative to the death rate: E0 times the lymphocyte count, DC signal, suppression and
        PD-L1 inhibition, each relative to its untreated baseline (A0, S0, P0), so E(0) = E0 is a steady state."""
        s = sym
        supp = self.suppression(self.R, self.M, self.M2)
        pbar = sum((self.V[j] + self.D[j]) * self.Pl[j] for j in range(self.L)) / self.B
        return (
            s("effector_baseline")
            * self.Ly
            / s("alc_baseline_1e9_per_l")
            * (self.A / self.baseline_dc())
            * (supp / self.baseline_supp())
            * (1 - self.imax * pbar * (1 - self.block))
            / (1 - self.imax * self.baseline_pdl1())
        )

    def effector_rate(self) -> sp.Expr:
        """dE/dt = d_E (source - E)."""
        return sym("effector_death_per_day") * (self.effector_source() - self.E)

    def rates(self) -> dict[str, sp.Expr]:
        """Every state's rate of change."""
        s, on, L = sym, self.on, self.L
        V, D, kd, Pl, I, G, E, Ly, R, M, M1, M2 = (
            self.V,
            self.D,
            self.kd,
            self.Pl,
            self.I,
            self.G,
            self.E,
            self.Ly,
            self.R,
            self.M,
            self.M1,
            self.M2,
        )
        kill = self.kill()
        f_burden = self.f_burden
        m2_to_m1 = on["macrophage_polarisation"] * (
            s("m2_to_m1_icb_per_day") * self.block + s("m2_to_m1_ifng_per_day") * self.ratio / (1 + self.ratio)
        )
        m1_to_m2 = on["macrophage_polarisation"] * s("m1_to_m2_tgfb_per_day") * G
        mac_target = 1 + on["burden_suppression"] * s("macrophage_burden_induction") * f_burden

        def suppressor_rate(X: sp.Symbol, prefix: str) -> sp.Expr:
            k = s(f"{prefix}_turnover_per_day")
            induction = (
                1
                + on["burden_suppression"] * s(f"{prefix}_burden_induction") * f_burden
                + on["rt_suppression"] * s(f"{prefix}_rt_induction") * G
            )
            return k * induction - k * X * (1 + on["tnf_suppressor_kill"] * s("tnf_suppressor_kill") * E)

        rates: dict[str, sp.Expr] = {}
        kill0 = self.baseline_kill()
        for j in range(L):
            # observed (net) untreated growth + the baseline immune kill it already contains
            rates[f"V_{j}"] = self.growth_rate(j) + (kill0[j] - kill[j]) * V[j]
            rates[f"D_{j}"] = -kd[j] * D[j]
            rates[f"kd_{j}"] = sp.Integer(0)
            rates[f"P_{j}"] = s("pdl1_turnover_per_day") * (self.pdl1_target(j) - Pl[j])
        rates["A"] = s("dc_turnover_per_day") * (self.dc_target(kill) - self.A)
        rates["I"] = -s("danger_decay_per_day") * I
        rates["G"] = -s("tgfb_decay_per_day") * G
        rates["E"] = self.effector_rate()
        rates["L"] = s("alc_recovery_per_day") * (s("alc_baseline_1e9_per_l") - Ly)
        rates["R"] = suppressor_rate(R, "treg")
        rates["M"] = suppressor_rate(M, "mdsc")
        rates["M1"] = (
            s("macrophage_turnover_per_day") * (s("m1_baseline_fraction") * mac_target - M1)
            + m2_to_m1 * M2
            - m1_to_m2 * M1
        )
        rates["M2"] = (
            s("macrophage_turnover_per_day") * ((1 - s("m1_baseline_fraction")) * mac_target - M2)
            - m2_to_m1 * M2
            + m1_to_m2 * M1
        )
        rates.update(self.pk_form["rates"])
        rel_burden = sum(V) / s("new_lesion_reference_mm3")
        rates["H"] = (
            on["new_lesions"]
            * s("new_lesion_rate_per_day")
            * sp.Piecewise(
                (rel_burden, sp.Eq(s("new_lesion_burden_exponent"), 1)),  # skips pow() for linear seeding
                (rel_burden ** s("new_lesion_burden_exponent"), True),
            )
        )
        return rates

    # ---- states, events, outputs -----------------------------------------------------------------------------
    def states(self) -> tuple[State, ...]:
        """The states with their initial values: the untreated baseline."""
        s = sym
        r_init, m_init, m1_init, m2_init = self.baseline_cells()
        k0 = s("doomed_clearance_low_dose_per_day")
        p0 = self.baseline_pdl1()
        states: list[State] = []
        for j in range(self.L):
            states += [
                State(
                    name=f"V_{j}",
                    units="mm3",
                    long_name="viable tumour volume",
                    group="viable_volume",
                    lesion=j,
                    initial=s(f"baseline_volume_mm3_{j}"),
                    abs_tol=1e-3,
                ),
                State(
                    name=f"D_{j}",
                    units="mm3",
                    long_name="lethally damaged (doomed) tumour volume",
                    group="doomed_volume",
                    lesion=j,
                    initial=0,
                    abs_tol=1e-3,
                ),
                State(
                    name=f"kd_{j}",
                    units="1/day",
                    long_name="clearance rate of doomed cells",
                    group="doomed_clearance",
                    lesion=j,
                    initial=k0,
                    abs_tol=1e-8,
                ),
                State(
                    name=f"P_{j}",
                    units="1",
                    long_name="PD-L1 expression (fraction of maximum)",
                    group="pdl1",
                    lesion=j,
                    initial=p0,
                    abs_tol=1e-6,
                ),
            ]
        states += [
            State(
                name="A", units="1", long_name="mature dendritic-cell signal", initial=self.baseline_dc(), abs_tol=1e-6
            ),
            State(name="I", units="1", long_name="RT danger / IFN-I signal", initial=0, abs_tol=1e-6),
            State(name="G", units="1", long_name="RT-induced TGF-beta signal", initial=0, abs_tol=1e-6),
            State(
                name="E",
                units="1",
                long_name="effector CD8 T cells (normalised)",
                initial=s("effector_baseline"),
                abs_tol=1e-6,
            ),
            State(
                name="L",
                units="1e9/L",
                long_name="absolute lymphocyte count",
                initial=s("alc_baseline_1e9_per_l"),
                abs_tol=1e-6,
            ),
            State(name="R", units="1", long_name="regulatory T cells (normalised)", initial=r_init, abs_tol=1e-6),
            State(
                name="M",
                units="1",
                long_name="myeloid-derived suppressor cells (normalised)",
                initial=m_init,
                abs_tol=1e-6,
            ),
            State(name="M1", units="1", long_name="M1 macrophages (normalised)", initial=m1_init, abs_tol=1e-6),
            State(name="M2", units="1", long_name="M2 macrophages (normalised)", initial=m2_init, abs_tol=1e-6),
            *self.pk_form["states"],
            State(name="H", units="1", long_name="cumulative new-lesion hazard", initial=0, abs_tol=1e-6),
        ]
        return tuple(states)

    def events(self) -> tuple[Event, ...]:
        """The radiation fraction and the drug dose."""
        return (self.radiation_event(), self.pk_form["event"])

    # ---- the radiation fraction: shared structure, version-specific pieces -------------------------------------
    radiation_description = "one radiotherapy fraction (LQ / LQ-L kill, ICD, PD-L1, suppressors, lymphocytes)"
    radiation_source = "LQ: Fowler 1989; LQ-L: Astrahan 2008; doomed compartment: Kosinsky 2018"

    def radiation_arguments(self) -> tuple[EventArgument, ...]:
        """The fraction's arguments: the dose to each lesion and the mean dose to circulating blood."""
        return (
            *(EventArgument(name=f"dose_gy_{j}", units="Gy", description=f"dose to lesion {j}") for j in range(self.L)),
            EventArgument(name="blood_dose_gy", units="Gy", description="mean dose to circulating blood"),
        )

    def fraction_kill(self, j: int, d: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
        """Viable volume of lesion ``j`` after a fraction of ``d`` Gy, and the volume killed (LQ / LQ-L)."""
        s = sym
        alpha = s("tumour_alpha_per_gy")
        beta = alpha / s("tumour_alpha_beta_gy")
        dt = s("lql_transition_dose_gy")
        neg_log_sf = (
            alpha * d
            + beta * d**2
            - self.on["lq_linear_high_dose"] * sp.Piecewise((beta * (d - dt) ** 2, d > dt), (0, True))
        )
        sf = sp.exp(-neg_log_sf)
        return sf * self.V[j], (1 - sf) * self.V[j]

    def priming_term(self, j: int, d: sp.Expr, trex: sp.Expr, killed: sp.Expr) -> sp.Expr:
        """Lesion ``j``'s contribution to the danger signal of a fraction: the killed volume, TREX1-weighted."""
        return killed * trex

    def priming_jump(self, total: sp.Expr) -> sp.Expr:
        """The rise of the danger signal ``I`` from the summed :meth:`priming_term` (before the ICD switch)."""
        return sym("icd_yield_per_mm3") * total

    def lymphocyte_kill_share(self) -> sp.Expr:
        """Share of circulating lymphocytes one fraction kills: ``phi (1 - exp(-alpha b / phi))``."""
        s = sym
        phi = s("blood_fraction_exposed")
        return phi * (1 - sp.exp(-s("lymphocyte_alpha_per_gy") * s("blood_dose_gy") / phi))

    def radiation_event(self) -> Event:
        """One radiotherapy fraction: the pieces above, and the jumps every version shares (doomed clearance,
        PD-L1, TGF-beta, macrophage shift, in-field effector kill)."""
        s, on, L = sym, self.on, self.L
        V, D, kd, Pl = self.V, self.D, self.kd, self.Pl
        dose = [s(f"dose_gy_{j}") for j in range(L)]
        jumps: dict[str, sp.Expr] = {}
        icd = sp.Integer(0)
        mac_shift = sp.Integer(0)
        weight_total = sum(V[j] + D[j] for j in range(L)) + _EPS_MM3
        infield = sp.Integer(0)
        k0, kslope, kmax = (
            s("doomed_clearance_low_dose_per_day"),
            s("doomed_clearance_per_gy_per_day"),
            s("doomed_clearance_max_per_day"),
        )
        for j in range(L):
            d = dose[j]
            v_new, killed = self.fraction_kill(j, d)
            k_new = sp.Min(sp.Max(k0 + on["dose_dependent_death"] * kslope * d, k0), kmax)
            jumps[f"V_{j}"] = v_new
            jumps[f"D_{j}"] = D[j] + killed
            jumps[f"kd_{j}"] = sp.Piecewise(
                ((kd[j] * D[j] + k_new * killed) / (D[j] + killed), D[j] + killed > 0), (kd[j], True)
            )
            jumps[f"P_{j}"] = Pl[j] + on["rt_pdl1"] * (1 - Pl[j]) * (1 - sp.exp(-s("pdl1_rt_per_gy") * d))
            trex = 1 / (1 + on["trex1_decline"] * (d / s("trex1_threshold_gy")) ** s("trex1_hill"))
            icd += self.priming_term(j, d, trex, killed)
            share = (V[j] + D[j]) / weight_total
            mac_shift += share * sp.Piecewise(
                (sp.tanh((d - s("macrophage_polarisation_dose_gy")) / s("macrophage_polarisation_width_gy")), d > 0),
                (0, True),
            )
            infield += share * (1 - sp.exp(-s("effector_alpha_per_gy") * d))
        jumps["I"] = self.I + on["immunogenic_cell_death"] * self.priming_jump(icd)
        jumps["G"] = self.G + on["rt_suppression"] * s("tgfb_rt_per_gy") * sum(dose)
        shift = on["macrophage_polarisation"] * s("macrophage_rt_shift") * mac_shift
        to_m1 = sp.Max(shift, 0) * self.M2 + sp.Min(shift, 0) * self.M1
        jumps["M1"] = self.M1 + to_m1
        jumps["M2"] = self.M2 - to_m1
        jumps["L"] = self.Ly * (1 - on["lymphocyte_kill"] * self.lymphocyte_kill_share())
        jumps["E"] = self.E * (1 - on["lymphocyte_kill"] * s("effector_tumour_fraction") * infield)
        return Event(
            name="radiation_fraction",
            arguments=self.radiation_arguments(),
            jumps=jumps,
            description=self.radiation_description,
            source=self.radiation_source,
        )

    def observables(self) -> tuple[Observable, ...]:
        """Lesion volumes and diameters, burdens, drug concentration and occupancy, effector-to-burden ratio."""
        observables = []
        for j in range(self.L):
            vol = self.V[j] + self.D[j]
            observables += [
                Observable(
                    name=f"lesion_volume_{j}",
                    units="mm3",
                    long_name="lesion volume (viable + doomed)",
                    expr=vol,
                    group="lesion_volume",
                    lesion=j,
                ),
                Observable(
                    name=f"lesion_diameter_{j}",
                    units="mm",
                    long_name="sphere-equivalent lesion diameter",
                    expr=(6 * vol / sp.pi) ** sp.Rational(1, 3),
                    group="lesion_diameter",
                    lesion=j,
                ),
            ]
        Ac = self.pk_form["central_amount"]
        observables += [
            Observable(name="total_burden", units="mm3", long_name="total tumour burden", expr=self.burden),
            Observable(name="viable_burden", units="mm3", long_name="viable tumour burden", expr=sum(self.V)),
            Observable(name="drug_concentration", units="ug/mL", long_name="serum drug concentration", expr=self.conc),
            Observable(name="drug_amount_central", units="mg", long_name="drug amount, central compartment", expr=Ac),
            Observable(name="receptor_occupancy", units="1", long_name="checkpoint receptor occupancy", expr=self.ro),
            Observable(
                name="effector_to_burden_ratio", units="1", long_name="effector-to-burden ratio", expr=self.ratio
            ),
        ]
        return tuple(observables)

    def build(self) -> ModelSpec:
        """The model spec."""
        return ModelSpec(
            name=self.name(),
            description=self.description,
            states=self.states(),
            parameters=self.parameters(),
            rates=self.rates(),
            events=self.events(),
            observables=self.observables(),
            mechanisms=self.mechanisms,
            references=REFERENCES,
            n_lesions=self.L,
            roles=ROLES,
        )


def _dose_amount() -> sp.Expr:
    return sym("dose_mg") + sym("dose_mg_per_kg") * sym("body_weight_kg")


_DRUG_EVENT_ARGS = (
    EventArgument(name="dose_mg", units="mg", description="flat dose"),
    EventArgument(name="dose_mg_per_kg", units="mg/kg", description="weight-based dose"),
)
_DRUG_EVENT_SOURCE = "two-compartment popPK: Ahamadi 2017, Bajaj 2017"


def _pk_ode() -> dict[str, Any]:
    """Two-compartment PK as ODEs, with time-varying clearance (Bajaj 2017)."""
    s = sym
    Ac, Ap = s("Ac"), s("Ap")
    # t^g/(T50^g + t^g) written as 1/(1 + (T50/t)^g) so that pow() occurs once, inside the branch
    frac = 1 / (1 + (s("pk_cl_time_t50_day") / sp.Max(TIME, sp.Float(1e-9))) ** s("pk_cl_time_hill"))
    cl = s("pk_cl_l_per_day") * sp.Piecewise(
        (1, sp.Eq(s("pk_cl_time_emax"), 0)), (sp.exp(s("pk_cl_time_emax") * frac), True)
    )
    q, vc, vp = s("pk_q_l_per_day"), s("pk_vc_l"), s("pk_vp_l")
    return {
        "central_amount": Ac,
        "rates": {"Ac": -(cl + q) / vc * Ac + q / vp * Ap, "Ap": q / vc * Ac - q / vp * Ap},
        "states": (
            State(name="Ac", units="mg", long_name="drug amount, central compartment", initial=0, abs_tol=1e-6),
            State(name="Ap", units="mg", long_name="drug amount, peripheral compartment", initial=0, abs_tol=1e-6),
        ),
        "event": Event(
            name="drug_dose",
            arguments=_DRUG_EVENT_ARGS,
            jumps={"Ac": Ac + _dose_amount()},
            description="intravenous checkpoint-inhibitor dose (bolus into the central compartment)",
            source=_DRUG_EVENT_SOURCE,
        ),
        "fix": {},
    }


def _pk_eigen() -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
    """Eigenvalues (negative rates) of the two-compartment system, k21 and k12."""
    s = sym
    k10 = s("pk_cl_l_per_day") / s("pk_vc_l")
    k12 = s("pk_q_l_per_day") / s("pk_vc_l")
    k21 = s("pk_q_l_per_day") / s("pk_vp_l")
    tr = k10 + k12 + k21
    root = sp.sqrt(tr**2 - 4 * k10 * k21)
    return (-tr + root) / 2, (-tr - root) / 2, k21, k12


def _pk_analytic() -> dict[str, Any]:
    r"""Exact two-compartment PK in modal form.

    With eigenvalues :math:`\lambda_{1,2}` of ``[[-(k10+k12), k21], [k12, -k21]]`` and
    eigenvectors ``(lambda_i + k21, k12)``, the amounts are
    ``Ac = sum_i (lambda_i + k21) z_i exp(lambda_i (t - tau))`` and
    ``Ap = k12 sum_i z_i exp(lambda_i (t - tau))``; a bolus ``D`` adds ``+-D/(lambda_1 - lambda_2)``
    to ``z_1``/``z_2`` after propagating them to the dose time, and sets ``tau`` to it.
    """
    s = sym
    z1, z2, tau = s("pk_mode_1"), s("pk_mode_2"), s("pk_ref_day")
    l1, l2, k21, _ = _pk_eigen()
    e1, e2 = sp.exp(l1 * (TIME - tau)), sp.exp(l2 * (TIME - tau))
    dz = _dose_amount() / (l1 - l2)
    fixed = Parameter(
        name="pk_cl_time_emax",
        units="1",
        default=0.0,
        lower=0.0,
        upper=0.0,
        description="fixed at 0: the analytic PK needs constant clearance; use "
        "nsclc_model(pk='ode') for time-varying clearance (e.g. nivolumab)",
        source="Ahamadi 2017 base model: constant CL",
    )
    return {
        "central_amount": (l1 + k21) * z1 * e1 + (l2 + k21) * z2 * e2,
        "rates": {"pk_mode_1": sp.Integer(0), "pk_mode_2": sp.Integer(0), "pk_ref_day": sp.Integer(0)},
        "states": (
            State(
                name="pk_mode_1",
                units="mg",
                long_name="drug PK modal amplitude 1 (at pk_ref_day)",
                initial=0,
                nonnegative=False,
                abs_tol=1e-6,
            ),
            State(
                name="pk_mode_2",
                units="mg",
                long_name="drug PK modal amplitude 2 (at pk_ref_day)",
                initial=0,
                nonnegative=False,
                abs_tol=1e-6,
            ),
            State(
                name="pk_ref_day",
                units="day",
                long_name="time of the last drug dose (PK reference)",
                initial=0,
                nonnegative=False,
                abs_tol=1e-6,
            ),
        ),
        "event": Event(
            name="drug_dose",
            arguments=_DRUG_EVENT_ARGS,
            jumps={
                "pk_mode_1": z1 * sp.exp(l1 * (TIME - tau)) + dz,
                "pk_mode_2": z2 * sp.exp(l2 * (TIME - tau)) - dz,
                "pk_ref_day": TIME,
            },
            description="intravenous checkpoint-inhibitor dose (bolus into the central compartment); "
            "exact modal two-compartment PK",
            source=_DRUG_EVENT_SOURCE,
        ),
        "fix": {"pk_cl_time_emax": fixed},
    }
