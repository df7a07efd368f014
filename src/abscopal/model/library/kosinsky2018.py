r"""Kosinsky et al. 2018: radiation + anti-PD-(L)1 in CT26 tumours, re-expressed as a ModelSpec.

The model is the curated BioModels SBML BIOMD0000000863 (6 species, 27 parameters, 13
reactions), written term by term in abscopal's specification language. Its agreement with the
SBML, simulated by libRoadRunner, is checked in ``tests/integration/test_kosinsky2018.py``.

Use::

    from abscopal.model.library.kosinsky2018 import kosinsky2018
    spec = kosinsky2018()

What differs from the SBML, and why
-----------------------------------
* **Radiation.** In the paper radiation is a dose-rate pulse :math:`R(t)` (Gy/day). In the SBML
  it is ``radiation_Dose``, an assignment rule fixed at 0, so the curated SBML runs without
  radiation. abscopal instead gives each fraction as the event ``radiation_fraction(dose_gy)``:
  the instantaneous-delivery limit of a pulse that delivers ``dose_gy`` in a vanishing time.
  ``U`` jumps by :math:`\delta d`. The linear term :math:`\alpha R\,TV`, integrated over the
  pulse, gives :math:`TV \to TV e^{-\alpha d}` and :math:`TVd \to TVd + TV(1 - e^{-\alpha d})`.
  The other terms are bounded, so they contribute nothing in the limit. The quadratic
  misrepair term :math:`0.2\alpha/(\tau\delta^2)\,U^2` then acts in the ODE. This is
  abscopal's reformulation of the pulse, not part of the SBML. The main comparison with the
  SBML is the curated SED-ML run, which has no radiation. The test also compares the radiation
  terms with roadrunner in two ways: from the state just after a fraction, and as the limit of
  a short pulse given to the SBML's ``radiation_Dose``.
* **Names.** The SBML parameter ``a`` (additive residual error) is called ``a_error``, because
  ``a`` is reserved in abscopal. Every other parameter keeps its SBML id (see
  :data:`SBML_PARAMETER_IDS`). ``kpdl`` (PD-L1 turnover rate) and ``Kpdl`` (half-saturation
  constant) are different parameters. The XPP export renames ``kpdl`` to ``kpdl_1`` because
  XPP ignores case.
* **Compartment.** The SBML multiplies every kinetic law by ``compartment`` (size 1) and its
  species are concentrations, so the compartment size cancels exactly. It is omitted here.
* **Initial volume.** The SBML's initial ``TV = 15`` is the parameter ``TV0`` (default 15 µL).
  The other species start at 0, as in the SBML.
* **Unused parameters.** ``omegaSL``, ``k_a``, ``V_d``, ``k_el_mAB``, ``a`` and ``b`` are in the
  SBML but in none of its rate laws: they belong to the NLME fit and to the mAb PK of the
  paper, which the SBML does not include. They are kept, with their SBML values, so that the
  parameter set is complete. ``mAb`` is a constant concentration (nM), as in the SBML.
* **Mechanism switches.** abscopal adds these. Each ``on_<name>`` multiplies the terms listed in
  :data:`MECHANISM_TERMS`. With every switch at 1 (the default), the equations are exactly
  those of the SBML.

DSB repair: the SBML and the paper appear to disagree
-----------------------------------------------------
The SBML (and its XPP export) repairs DSB as ``dU/dt = delta*R - tau*U``, with ``tau = 0.02``.
Table 1 of the paper calls tau the "DSB repair time", with unit d, and the SBML itself annotates
``tau`` in days. The radiation-free SED-ML run cannot tell the two readings apart, because
U = 0 throughout. After an acute dose d, however, ``U = delta*d*exp(-k t)``, where k is the
repair rate. The misrepair term then kills the fraction ``exp(-0.1*alpha*d^2/(k*tau))``:

* with the SBML reading (``k = tau = 0.02/day``), beta = 0.1*alpha/tau^2 = 36.5 Gy^-2. One
  fraction of 1 Gy or more effectively eradicates the tumour: TV falls below 1e-7 µL, and two
  fractions of 0.5 Gy (days 5 and 6, mAb = 10 nM) leave TV = 2.5e-9 µL on day 40;
* with the repair-time reading (``k = 1/tau = 50/day``), beta = 0.1*alpha and
  alpha/beta = 10 Gy, a standard tumour value. This is what the factor 0.2/(tau*delta^2)
  appears designed for. The supplement with the equations (S2) was not available to check this.

``kosinsky2018()`` follows the SBML by default (``dsb_repair="sbml"``), because that is the
reference it is tested against. ``kosinsky2018(dsb_repair="repair_time")`` uses
``dU/dt = -U/tau`` instead. It is the same model in every other respect, and its name is
``kosinsky2018_repair_time``. It is probably the better choice for radiation studies, but it
is an inference from the paper, not the curated model.
"""

from __future__ import annotations

import sympy as sp

from ...errors import ModelError
from ..spec import (
    Event,
    EventArgument,
    Mechanism,
    ModelSpec,
    Observable,
    Parameter,
    State,
    sym,
)

__all__ = ["MECHANISM_TERMS", "SBML_PARAMETER_IDS", "SOURCE", "kosinsky2018"]

SOURCE = "Kosinsky et al. 2018 J Immunother Cancer 6:17, Table 1; BioModels BIOMD0000000863"
"""Source of every parameter default (the SBML value)."""

_CITATION = (
    "Kosinsky Y, Dovedi SJ, Peskov K, Voronova V, Chu L, Tomkinson H, Al-Huniti N, Stanski DR, "
    "Helmlinger G. Radiation and PD-(L)1 treatment combinations: immune response and dose "
    "optimization via a predictive systems model. J Immunother Cancer. 2018;6:17. "
    "DOI 10.1186/s40425-018-0327-9. SBML: BioModels BIOMD0000000863 (curated; MODEL1911140003)."
)

_UL = "µL"

# (name, units, default, lower, upper, description). Order as in the SBML listOfParameters.
_PARAMETERS: tuple[tuple[str, str, float, float, float, str], ...] = (
    ("r", "1/day", 0.4, 0.0, 5.0, "tumour growth rate (logistic)"),
    ("TVmax", _UL, 2500.0, 1.0, 1e5, "maximal (carrying-capacity) tumour volume"),
    ("d0", "1/day", 0.01, 0.0, 1.0, "spontaneous tumour-cell death rate"),
    (
        "kLN",
        "cells/day",
        279.0,
        0.0,
        1e5,
        ("maximal influx of non-differentiated effector T cells from the lymph node (the SBML annotates 1/d)"),
    ),
    (
        "S_L",
        _UL,
        8.89,
        1e-3,
        1e4,
        (
            "T-cell infiltration ability: half-saturation of the influx in systemic antigen "
            "Ag_sys = DCm*(TV+TVd) (the paper lists it as dimensionless; it is compared with a volume); "
            "the only random effect of the NLME fit"
        ),
    ),
    (
        "omegaSL",
        "1",
        0.696,
        0.0,
        5.0,
        (
            "inter-animal variability (SD of the random effect) of S_L (Table 1 says 'random effects on "
            "kLN', the text puts it on S_L); not in any rate law"
        ),
    ),
    ("kpro", "1/day", 3.0, 0.0, 20.0, "proliferation rate of non-differentiated T cells"),
    ("kdif", "1/day", 3.2, 0.0, 20.0, "differentiation rate of T cells into cytotoxic T cells"),
    ("k_el", "1/day", 0.2, 0.0, 10.0, "elimination rate of non-differentiated T cells"),
    ("kapo", "1/day", 2.0, 0.0, 20.0, "apoptosis rate of differentiated (cytotoxic) T cells"),
    ("n_e", "1/(day*cell)", 0.001, 0.0, 1.0, "tumour-cell kill rate per differentiated T cell (e in the paper)"),
    ("Kpdl", "cells", 478.0, 1e-3, 1e6, "dTeff giving half-maximal PD-L1 expression (sensitivity of PD-L1 to T cells)"),
    ("kpdl", "1/day", 1.0, 1e-3, 100.0, "PD-L1 turnover rate (production scale and first-order breakdown)"),
    (
        "Ktcd",
        "1/day",
        0.2,
        1e-6,
        10.0,
        "tumour-cell death rate TCD giving half-maximal DC maturation (Hill coefficient 2)",
    ),
    (
        "S_R",
        _UL,
        30.5,
        1e-3,
        1e4,
        ("half-saturation of immunosuppression (ISC) in systemic antigen Ag_sys (the paper lists it as dimensionless)"),
    ),
    ("alpha", "1/Gy", 0.146, 0.0, 2.0, "linear radiosensitivity of proliferating tumour cells"),
    ("delta", "DSB/(Gy*cell)", 19.0, 1e-3, 1e3, "DNA double-strand breaks formed per cell per Gy"),
    (
        "tau",
        "1/day",
        0.02,
        1e-6,
        100.0,
        (
            "DSB repair rate: first-order rate in dU/dt = delta*R - tau*U as in the SBML "
            "(the SBML annotates it in days, the paper calls it the DSB repair time; "
            "see dsb_repair='repair_time')"
        ),
    ),
    (
        "k_a",
        "1/day",
        0.0,
        0.0,
        100.0,
        "mAb absorption rate after i.p. dosing (paper: 8.0; the SBML has 0 and no PK); not in any rate law",
    ),
    ("V_d", "L", 0.003, 1e-6, 10.0, "mAb volume of distribution (mouse); not in any rate law"),
    ("k_el_mAB", "1/day", 0.15, 0.0, 10.0, "mAb elimination rate; not in any rate law"),
    ("K_D", "nM", 30.0, 1e-3, 1e6, "affinity (dissociation constant) of the anti-PD-L1 mAb"),
    (
        "a_error",
        _UL,
        21.2,
        0.0,
        1e4,
        "additive residual error of the tumour-volume fit (SBML id 'a'); not in any rate law",
    ),
    ("b", "1", 0.176, 0.0, 10.0, "proportional residual error of the tumour-volume fit; not in any rate law"),
    ("mu", "1/day", 0.1725, 0.0, 10.0, "clearance rate of lethally damaged tumour volume TVd (half-life about 4 days)"),
    (
        "mAb",
        "nM",
        0.0,
        0.0,
        1e6,
        "anti-PD-L1 antibody concentration (constant, as in the SBML; the curated SED-ML varies it 1-100)",
    ),
)

SBML_PARAMETER_IDS: dict[str, str] = {name: name for name, *_ in _PARAMETERS}
"""abscopal parameter name -> SBML parameter id (identical except ``a_error`` -> ``a``)."""
SBML_PARAMETER_IDS["a_error"] = "a"

MECHANISM_TERMS: dict[str, str] = {
    "pd_l1_axis": "PDL1/(1 + mAb/K_D) in IAR = (1 - PDL1/(1 + mAb/K_D))*(1 - ISC)",
    "immunosuppression": "ISC = Ag_sys/(Ag_sys + S_R) in IAR",
    "radiation_dsb": "quadratic misrepair kill 0.2*alpha/(tau*delta^2)*U^2*TV (TV -> TVd)",
    "t_cell_priming": "T-cell influx kLN*Ag_sys/(Ag_sys + S_L) into nTeff",
    "t_cell_killing": "kill by differentiated T cells n_e*dTeff, in dTV/dt and in TCD",
}
"""Mechanism name -> the term its switch ``on_<name>`` multiplies."""

_EQUATIONS = r"""
Equations (Kosinsky et al. 2018, J Immunother Cancer 6:17; BioModels BIOMD0000000863),
with the abscopal mechanism switches s_pd = on_pd_l1_axis, s_isc = on_immunosuppression,
s_dsb = on_radiation_dsb, s_prime = on_t_cell_priming, s_kill = on_t_cell_killing (all 1 by
default, which gives exactly the SBML):

    TCD     = mu*TVd/(TV + TVd) + s_kill*n_e*dTeff + d0          (tumour-cell death rate)
    DCm     = TCD^2/(TCD^2 + Ktcd^2)                              (mature dendritic cells)
    Ag_sys  = DCm*(TV + TVd)                                      (systemic antigen)
    ISC     = Ag_sys/(Ag_sys + S_R)                               (immunosuppression)
    IAR     = (1 - s_pd*PDL1/(1 + mAb/K_D))*(1 - s_isc*ISC)       (immune activation rate)
    M       = s_dsb*0.2*alpha/(tau*delta^2)*U^2                   (DSB misrepair kill rate)

    dTV/dt    = r*TV*(1 - TV/TVmax) - M*TV - (s_kill*n_e*dTeff + d0)*TV
    dU/dt     = {du}
    dnTeff/dt = s_prime*kLN*Ag_sys/(Ag_sys + S_L) + IAR*nTeff*(kpro - kdif) - k_el*nTeff
    ddTeff/dt = IAR*kdif*nTeff - kapo*dTeff
    dPDL1/dt  = kpdl*dTeff/(Kpdl + dTeff) - kpdl*PDL1
    dTVd/dt   = M*TV - mu*TVd

Radiation. The paper's dose-rate terms alpha*R(t)*TV (TV -> TVd) and delta*R(t) (into U)
are replaced by the event radiation_fraction(dose_gy = d), which is their
instantaneous-delivery limit (abscopal's reformulation; the SBML fixes R = 0):

    U   -> U + delta*d
    TV  -> TV*exp(-alpha*d)
    TVd -> TVd + TV*(1 - exp(-alpha*d))

Initial state: TV = TV0 (15 uL), every other species 0.
"""


ROLES = {"lesion_volume": "total_volume", "tumour_burden": "total_volume"}
"""Roles of the model's outputs in trial scoring (:data:`abscopal.model.spec.OBSERVABLE_ROLES`): one tumour,
scored as one lesion by its sphere-equivalent diameter, which is also the death hazard's tumour burden. The model
has no new-lesion hazard and no lymphocytes: those endpoints are left out (NaN) when it is scored."""


def kosinsky2018(*, dsb_repair: str = "sbml") -> ModelSpec:
    """Return the Kosinsky et al. 2018 model (BioModels BIOMD0000000863) as a :class:`ModelSpec`.

    Parameters
    ----------
    dsb_repair
        ``"sbml"`` (default) repairs DSB as ``dU/dt = -tau*U``, exactly the curated SBML.
        ``"repair_time"`` repairs them as ``dU/dt = -U/tau``, with tau the repair time (day) of
        Table 1 of the paper. The model is then named ``kosinsky2018_repair_time``. See the
        module docstring for why the two differ.

    The states are ``TV`` (µL), ``U`` (DSB/cell), ``nTeff`` and ``dTeff`` (cells), ``PDL1``
    (normalised, 0-1) and ``TVd`` (µL). The parameters are every SBML parameter, with the SBML
    value as default (``a`` is called ``a_error``), plus ``TV0`` and one switch ``on_<name>``
    per mechanism. The mechanisms are ``pd_l1_axis``, ``immunosuppression``,
    ``radiation_dsb``, ``t_cell_priming`` and ``t_cell_killing`` (see
    :data:`MECHANISM_TERMS`). The observable is ``total_volume`` = TV + TVd (µL).

    Radiation is abscopal's reformulation of the paper's dose-rate pulse: the event
    ``radiation_fraction(dose_gy)`` delivers the dose instantaneously. ``U`` jumps by
    delta*d, and ``TV`` moves to ``TVd`` as TV*(1 - exp(-alpha*d)), which is the linear term
    integrated over the pulse. The quadratic U^2 misrepair term then acts in the ODE. The
    SBML has no radiation (its ``radiation_Dose`` rule is 0), so the main comparison with it,
    the curated SED-ML run, has no radiation either.
    """
    if dsb_repair not in ("sbml", "repair_time"):
        raise ModelError(
            f"dsb_repair must be 'sbml' (the curated SBML, dU/dt = -tau*U) or 'repair_time' "
            f"(dU/dt = -U/tau, tau a repair time in days), got {dsb_repair!r}"
        )
    TV, U, nTeff, dTeff, PDL1, TVd = (sym(n) for n in ("TV", "U", "nTeff", "dTeff", "PDL1", "TVd"))
    p = {name: sym(name) for name, *_ in _PARAMETERS}
    repair = p["tau"] * U if dsb_repair == "sbml" else U / p["tau"]
    mechanisms = (
        Mechanism(
            name="pd_l1_axis",
            description="PD-L1 inhibition of immune activation, relieved by the anti-PD-L1 mAb "
            "(the PDL1/(1 + mAb/K_D) term of IAR)",
            source=SOURCE,
        ),
        Mechanism(
            name="immunosuppression",
            description="antigen-driven lumped immunosuppression (Treg, MDSC; the ISC term of IAR)",
            source=SOURCE,
        ),
        Mechanism(
            name="radiation_dsb",
            description="quadratic kill by misrepair of radiation DSB, 0.2*alpha/(tau*delta^2)*U^2",
            source=SOURCE,
        ),
        Mechanism(
            name="t_cell_priming",
            description="antigen-driven influx of non-differentiated effector T cells, kLN*Ag_sys/(Ag_sys + S_L)",
            source=SOURCE,
        ),
        Mechanism(
            name="t_cell_killing",
            description="tumour-cell kill by differentiated T cells, n_e*dTeff (in dTV/dt and TCD)",
            source=SOURCE,
        ),
    )
    s_pd, s_isc, s_dsb, s_prime, s_kill = (m.switch for m in mechanisms)

    kill = s_kill * p["n_e"] * dTeff
    tcd = p["mu"] * TVd / (TV + TVd) + kill + p["d0"]
    dcm = tcd**2 / (tcd**2 + p["Ktcd"] ** 2)
    ag_sys = dcm * (TV + TVd)
    isc = ag_sys / (ag_sys + p["S_R"])
    iar = (1 - s_pd * PDL1 / (1 + p["mAb"] / p["K_D"])) * (1 - s_isc * isc)
    misrepair = s_dsb * sp.Rational(1, 5) * p["alpha"] / (p["tau"] * p["delta"] ** 2) * U**2

    rates = {
        "TV": p["r"] * TV * (1 - TV / p["TVmax"]) - misrepair * TV - (kill + p["d0"]) * TV,
        "U": -repair,
        "nTeff": s_prime * p["kLN"] * ag_sys / (ag_sys + p["S_L"])
        + iar * nTeff * (p["kpro"] - p["kdif"])
        - p["k_el"] * nTeff,
        "dTeff": iar * p["kdif"] * nTeff - p["kapo"] * dTeff,
        "PDL1": p["kpdl"] * dTeff / (p["Kpdl"] + dTeff) - p["kpdl"] * PDL1,
        "TVd": misrepair * TV - p["mu"] * TVd,
    }

    dose = sym("dose_gy")
    survive = sp.exp(-p["alpha"] * dose)
    radiation = Event(
        name="radiation_fraction",
        arguments=(
            EventArgument(
                name="dose_gy",
                units="Gy",
                description="physical dose of the fraction to the tumour",
                lower=0.0,
                upper=30.0,
            ),
        ),
        jumps={
            "U": U + p["delta"] * dose,
            "TV": TV * survive,
            "TVd": TVd + TV * (1 - survive),
        },
        description="instantaneous delivery of one fraction: U += delta*d; TV -> TV*exp(-alpha*d), "
        "the lost volume moves to TVd (limit of the paper's dose-rate pulse; abscopal reformulation)",
        source="abscopal reformulation (instantaneous-pulse limit) of the radiation terms of "
        "Kosinsky et al. 2018 J Immunother Cancer 6:17",
    )

    table = list(_PARAMETERS)
    if dsb_repair == "repair_time":
        i = [row[0] for row in table].index("tau")
        table[i] = (
            "tau",
            "day",
            0.02,
            1e-6,
            100.0,
            (
                "DSB repair time: dU/dt = delta*R - U/tau (Table 1 of the paper: 'DSB repair "
                "time', unit d; the curated SBML uses tau as a rate instead)"
            ),
        )
    parameters = (
        *(
            Parameter(name=n, units=u, default=v, lower=lo, upper=hi, description=d, source=SOURCE)
            for n, u, v, lo, hi, d in table
        ),
        Parameter(
            name="TV0",
            units=_UL,
            default=15.0,
            lower=1e-3,
            upper=1e5,
            description="initial proliferating tumour volume (SBML initial concentration of TV)",
            source=SOURCE,
        ),
    )

    states = (
        State(name="TV", units=_UL, long_name="proliferating tumour volume", initial=sym("TV0"), abs_tol=1e-6),
        State(name="U", units="DSB/cell", long_name="DNA double-strand breaks per cell", abs_tol=1e-6),
        State(name="nTeff", units="cells", long_name="non-differentiated effector T cells", abs_tol=1e-6),
        State(name="dTeff", units="cells", long_name="differentiated cytotoxic T cells", abs_tol=1e-6),
        State(name="PDL1", units="1", long_name="normalised PD-L1 expression", abs_tol=1e-9),
        State(name="TVd", units=_UL, long_name="lethally damaged tumour volume", abs_tol=1e-6),
    )

    equations = _EQUATIONS.replace(
        "{du}",
        "-tau*U   (as in the SBML; tau used as a repair rate)"
        if dsb_repair == "sbml"
        else "-U/tau   (tau the repair time of Table 1; the SBML has -tau*U)",
    )
    return ModelSpec(
        name="kosinsky2018" if dsb_repair == "sbml" else "kosinsky2018_repair_time",
        description=(
            "Kosinsky et al. 2018 QSP model of radiotherapy + anti-PD-(L)1 in CT26 mouse tumours: "
            "logistic tumour growth, linear-quadratic radiation kill via DSB misrepair, immunogenic "
            "cell death driving DC maturation and T-cell priming, adaptive PD-L1 and antigen-driven "
            "immunosuppression. Re-expressed from the curated SBML BioModels BIOMD0000000863.\n" + equations
        ),
        states=states,
        parameters=parameters,
        rates=rates,
        events=(radiation,),
        observables=(
            Observable(name="total_volume", units=_UL, long_name="total tumour volume (TV + TVd)", expr=TV + TVd),
        ),
        mechanisms=mechanisms,
        references={"Kosinsky2018": _CITATION},
        roles=ROLES,
    )
