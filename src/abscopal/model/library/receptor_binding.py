r"""A stiff benchmark model: explicit antibody-receptor binding (target-mediated drug disposition) and a tumour.

The default NSCLC model treats receptor occupancy as quasi-steady (``RO = C/(C + EC50)``) because an explicit
binding state makes the system stiff (docs/model_nsclc.md). This model keeps the binding explicit, on purpose: it
is the stiff test and benchmark problem of the compiled Rosenbrock solver (:mod:`abscopal.solver`,
``tests/integration/test_rosenbrock.py``, ``benchmarks/run.py``). It is not calibrated to any trial.

Use::

    from abscopal.model.library.receptor_binding import receptor_binding_model
    spec = receptor_binding_model()

Equations (concentrations in nM, time in days)::

    CL(t)   = CL exp(Emax t^g / (T50^g + t^g))                    time-varying clearance (0 = constant)
    dC/dt   = -CL(t)/Vc C - Q/Vc (C - Cp) - kon C R + koff RC     free drug, central
    dCp/dt  = Q/Vp (C - Cp)                                        free drug, peripheral
    dR/dt   = kdeg (R0 - R) - kon C R + koff RC                    free receptor (synthesis kdeg R0)
    dRC/dt  = kon C R - koff RC - kint RC                          drug-receptor complex
    dV/dt   = g V ln(K/V) - kmax RO V,   RO = RC/(R + RC)          tumour volume (Gompertz + occupancy kill)

(in the code ``RO = RC/(|R| + |RC| + 1e-12)`` and ``ln(K/(|V| + 1e-6))``: the same on the solution, and finite at
the far-off trial stages of an explicit step).

with ``koff = kon Kd`` and ``Kd`` the drug's EC50 (``ro_ec50_ug_per_ml``) in nM. Events: ``drug_dose`` adds
``(dose_mg + dose_mg_per_kg * body_weight_kg) / Vc`` (mg/L, converted to nM with the molar mass) to ``C``;
``radiation_fraction`` multiplies ``V`` by ``exp(-alpha d - beta d^2)``. The drug PK parameters have the names of
the NSCLC model's (``pk_*``, ``ro_ec50_ug_per_ml``), so a drug regimen's PK applies (:mod:`abscopal.treatment`).

Why it is stiff: binding runs at ``kon C`` = 86.4 /(nM day) x 140-570 nM = 1.2e4-5e4 per day at pembrolizumab
200 mg q3w troughs and peaks, while everything else moves at 1e-3-1 per day. An explicit method must keep
``h kon C`` below about 3.3 for stability, i.e. steps of 1e-4 day for two years (several million steps); the
implicit Rodas4 steps at the accuracy of the slow dynamics. This is the model structure of Mager & Jusko 2001.
"""

from __future__ import annotations

import sympy as sp

from ...treatment.drugs import PD1_KD_EC50_UG_PER_ML
from ..spec import TIME, Event, EventArgument, ModelSpec, Observable, Parameter, State, sym

__all__ = ["receptor_binding_model"]

_REFERENCES = {
    "MagerJusko2001": "Mager D.E., Jusko W.J. General pharmacokinetic model for drugs exhibiting target-mediated "
    "drug disposition. J Pharmacokinet Pharmacodyn 2001;28:507-532",
    "Ahamadi2017": "Ahamadi M. et al. Model-based characterization of the pharmacokinetics of pembrolizumab. "
    "CPT Pharmacometrics Syst Pharmacol 2017;6:49-57",
    "Bajaj2017": "Bajaj G. et al. Model-based population pharmacokinetic analysis of nivolumab in patients with "
    "solid tumors. CPT Pharmacometrics Syst Pharmacol 2017;6:58-66",
}
_ASSUMED = "assumption: benchmark value (model not calibrated)"


def _parameters() -> tuple[Parameter, ...]:
    def P(name: str, units: str, default: float, lo: float, hi: float, description: str, source: str) -> Parameter:
        return Parameter(
            name=name, units=units, default=default, lower=lo, upper=hi, description=description, source=source
        )

    return (
        P("pk_cl_l_per_day", "L/day", 0.22, 0.01, 5.0, "clearance", "Ahamadi 2017: CL 0.22 L/d"),
        P("pk_vc_l", "L", 3.48, 0.5, 20.0, "central volume", "Ahamadi 2017: Vc 3.48 L"),
        P("pk_q_l_per_day", "L/day", 0.795, 0.01, 10.0, "inter-compartmental clearance", "Ahamadi 2017: Q"),
        P("pk_vp_l", "L", 4.06, 0.1, 20.0, "peripheral volume", "Ahamadi 2017: Vp 4.06 L"),
        P("pk_cl_time_emax", "1", 0.0, -2.0, 2.0, "log-fold change of clearance with time", "Ahamadi 2017: 0"),
        P("pk_cl_time_t50_day", "day", 58.75, 1.0, 1000.0, "time of half the clearance change", "Bajaj 2017"),
        P("pk_cl_time_hill", "1", 1.0, 0.1, 10.0, "Hill exponent of the clearance change", _ASSUMED),
        P(
            "ro_ec50_ug_per_ml",
            "ug/mL",
            PD1_KD_EC50_UG_PER_ML,
            1e-5,
            10.0,
            "dissociation constant Kd of drug-receptor binding",
            "pembrolizumab PD-1 Kd about 29 pM (abscopal.treatment.drugs.PD1_KD_EC50_UG_PER_ML)",
        ),
        P("drug_mw_g_per_mol", "g/mol", 149_000.0, 1e3, 1e6, "molar mass of the antibody", "IgG4, about 149 kDa"),
        P(
            "kon_per_nm_day",
            "1/(nM day)",
            86.4,
            1e-3,
            1e5,
            "association rate constant (86.4 = 1e6 /M/s)",
            "assumption: typical antibody association rate 1e6 /M/s",
        ),
        P("receptor_baseline_nm", "nM", 0.5, 1e-4, 100.0, "free receptor before treatment", _ASSUMED),
        P("receptor_turnover_per_day", "1/day", 0.5, 1e-3, 100.0, "receptor degradation rate kdeg", _ASSUMED),
        P("complex_internalisation_per_day", "1/day", 0.2, 0.0, 100.0, "complex internalisation kint", _ASSUMED),
        P("growth_per_day", "1/day", 0.005, 0.0, 1.0, "Gompertz growth rate g", _ASSUMED),
        P("carrying_capacity_mm3", "mm3", 1e6, 1.0, 1e9, "Gompertz carrying capacity K", _ASSUMED),
        P("baseline_volume_mm3", "mm3", 3e4, 1e-3, 1e8, "tumour volume at the start", _ASSUMED),
        P("max_kill_per_day", "1/day", 0.03, 0.0, 10.0, "tumour kill at full receptor occupancy", _ASSUMED),
        P("tumour_alpha_per_gy", "1/Gy", 0.15, 0.0, 2.0, "LQ alpha of the tumour", _ASSUMED),
        P("tumour_beta_per_gy2", "1/Gy2", 0.015, 0.0, 1.0, "LQ beta of the tumour", _ASSUMED),
        P("body_weight_kg", "kg", 76.8, 1.0, 500.0, "body weight (mg/kg dosing)", "Ahamadi 2017 reference weight"),
    )


def receptor_binding_model() -> ModelSpec:
    """The stiff two-compartment PK + receptor binding + tumour model (see the module docstring)."""
    C, Cp, R, RC, V = (sym(n) for n in ("C", "Cp", "R", "RC", "V"))
    s = sym
    cl_t = s("pk_cl_l_per_day") * sp.exp(
        s("pk_cl_time_emax") / (1 + (s("pk_cl_time_t50_day") / sp.Max(TIME, sp.Float(1e-9))) ** s("pk_cl_time_hill"))
    )
    nm_per_mg_l = 1e6 / s("drug_mw_g_per_mol")
    kon = s("kon_per_nm_day")
    koff = kon * s("ro_ec50_ug_per_ml") * nm_per_mg_l  # Kd (ug/mL = mg/L) in nM
    binding = kon * C * R - koff * RC
    # |R| + |RC| + 1e-12 equals R + RC for the (nonnegative) solution; it cannot vanish at the trial stages of an
    # explicit step, where R and RC are far off and huge (numba raises on a division by zero)
    occupancy = RC / (sp.Abs(R) + sp.Abs(RC) + sp.Float(1e-12))
    rates = {
        "C": -cl_t / s("pk_vc_l") * C - s("pk_q_l_per_day") / s("pk_vc_l") * (C - Cp) - binding,
        "Cp": s("pk_q_l_per_day") / s("pk_vp_l") * (C - Cp),
        "R": s("receptor_turnover_per_day") * (s("receptor_baseline_nm") - R) - binding,
        "RC": binding - s("complex_internalisation_per_day") * RC,
        "V": s("growth_per_day") * V * sp.log(s("carrying_capacity_mm3") / (sp.Abs(V) + sp.Float(1e-6)))
        - s("max_kill_per_day") * occupancy * V,
    }
    dose, dose_mg, dose_kg = sym("dose_gy"), sym("dose_mg"), sym("dose_mg_per_kg")
    return ModelSpec(
        name="receptor_binding",
        description=(
            "Stiff benchmark model: two-compartment antibody PK with explicit receptor binding (kon/koff), "
            "receptor turnover and complex internalisation (target-mediated drug disposition, Mager & Jusko "
            "2001), and a Gompertz tumour killed in proportion to receptor occupancy, with LQ radiation jumps. "
            "Binding at kon C ~ 1e4/day makes it stiff. Not calibrated."
        ),
        states=(
            State(name="C", units="nM", long_name="free drug, central", abs_tol=1e-6),
            State(name="Cp", units="nM", long_name="free drug, peripheral", abs_tol=1e-6),
            State(name="R", units="nM", long_name="free receptor", initial=s("receptor_baseline_nm"), abs_tol=1e-9),
            State(name="RC", units="nM", long_name="drug-receptor complex", abs_tol=1e-9),
            State(name="V", units="mm3", long_name="tumour volume", initial=s("baseline_volume_mm3"), abs_tol=1e-3),
        ),
        parameters=_parameters(),
        rates=rates,
        events=(
            Event(
                name="radiation_fraction",
                arguments=(EventArgument(name="dose_gy", units="Gy"),),
                jumps={"V": V * sp.exp(-s("tumour_alpha_per_gy") * dose - s("tumour_beta_per_gy2") * dose**2)},
            ),
            Event(
                name="drug_dose",
                arguments=(
                    EventArgument(name="dose_mg", units="mg"),
                    EventArgument(name="dose_mg_per_kg", units="mg/kg"),
                ),
                jumps={"C": C + (dose_mg + dose_kg * s("body_weight_kg")) / s("pk_vc_l") * nm_per_mg_l},
            ),
        ),
        observables=(
            Observable(name="receptor_occupancy", units="1", long_name="receptor occupancy RC/(R+RC)", expr=occupancy),
            Observable(
                name="diameter",
                units="mm",
                long_name="sphere-equivalent tumour diameter",
                expr=(6 * V / sp.pi) ** sp.Rational(1, 3),
            ),
        ),
        references=_REFERENCES,
        roles={"lesion_volume": "V", "tumour_burden": "V"},
    )
