"""Checkpoint-inhibitor population PK and dosing regimens.

Each :class:`DrugPK` is a linear two-compartment model (CL, Vc, Q, Vp) with an optional
sigmoid time-varying clearance ``CL(t) = CL0 exp(Emax t^g / (T50^g + t^g))`` (t = time
since the first dose), plus the concentration for 50% receptor occupancy. Typical values
are the reference-covariate values of the cited population-PK models (Ahamadi 2017, Bajaj 2017,
Abegesah 2025, the atezolizumab SmPC); every number has its source next to it, and assumptions are
flagged in comments and in :attr:`DrugPK.assumptions`.

Time is in days; day 0 is the first checkpoint-inhibitor dose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from numbers import Integral, Real
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ParameterError, ScheduleError, unknown_name_message

__all__ = ["DRUG_PK", "PD1_KD_EC50_UG_PER_ML", "DrugDose", "DrugPK", "DrugRegimen"]

# PD-1 binding Kd ~ 29 pM (pembrolizumab; [S] Applied BioMath mechanistic PK/RO model, https://www.appliedbiomath.com/
# our-science/inferring-target-occupancy-fitting-nonlinear-pk-data-mechanistic-pkro-model).
# 29e-12 mol/L x ~149,000 g/mol (IgG4) = 4.3e-6 g/L = 0.0043 ug/mL.
# Simple binding gives RO = C / (C + Kd), so EC50 = Kd.
PD1_KD_EC50_UG_PER_ML = 0.0043

_TARGETS = ("PD-1", "PD-L1")
# model parameter name -> DrugPK field
_PARAMETER_NAMES = (
    ("pk_cl_l_per_day", "cl_l_per_day"),
    ("pk_vc_l", "vc_l"),
    ("pk_q_l_per_day", "q_l_per_day"),
    ("pk_vp_l", "vp_l"),
    ("pk_cl_time_emax", "cl_time_emax"),
    ("pk_cl_time_t50_day", "cl_time_t50_day"),
    ("pk_cl_time_hill", "cl_time_hill"),
    ("ro_ec50_ug_per_ml", "ec50_ug_per_ml"),
)
_POSITIVE_PK_FIELDS = [f for _, f in _PARAMETER_NAMES if f != "cl_time_emax"]


def _number(name: str, value: object, error: type[Exception], fix: str) -> float:
    """Return ``value`` as a finite float, or raise ``error`` naming ``name``."""
    bad = isinstance(value, bool) or not isinstance(value, Real)
    if bad or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise error(f"{name} must be a finite number, got {value!r}; {fix}")
    return float(value)  # type: ignore[arg-type]


def _bounded(name: str, value: object, error: type[Exception], *, strict: bool) -> float:
    """Return ``value`` as a finite float > 0 (``strict``) or >= 0, else raise."""
    fix = "give a positive value" if strict else "give a non-negative value"
    number = _number(name, value, error, fix)
    if number < 0.0 or (strict and number == 0.0):
        raise error(f"{name} must be {'>' if strict else '>='} 0, got {number!r}; {fix}")
    return number


@dataclass(frozen=True, kw_only=True)
class DrugPK:
    """Typical-value population PK of one checkpoint inhibitor.

    Attributes
    ----------
    name, target
        Lower-case drug name, e.g. ``"pembrolizumab"``; ``"PD-1"`` or ``"PD-L1"``.
    cl_l_per_day, vc_l, q_l_per_day, vp_l
        Clearance at the first dose (``CL0``, L/day), central volume (L),
        inter-compartmental clearance (L/day), peripheral volume (L).
    cl_time_emax, cl_time_t50_day, cl_time_hill
        ``Emax`` (log scale; 0 = constant clearance), ``T50`` (days, > 0) and Hill
        exponent (> 0) of the time-varying clearance.
    ec50_ug_per_ml
        Serum concentration for 50% receptor occupancy, ug/mL.
    source
        Full citation of the PK values.
    assumptions
        Values not taken from the source, each stated with its justification.
    """

    name: str
    target: str
    cl_l_per_day: float
    vc_l: float
    q_l_per_day: float
    vp_l: float
    cl_time_emax: float = 0.0
    cl_time_t50_day: float = 1.0
    cl_time_hill: float = 1.0
    ec50_ug_per_ml: float = PD1_KD_EC50_UG_PER_ML
    source: str
    assumptions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError(f"name must be a non-empty string, got {self.name!r}")
        if self.target not in _TARGETS:
            raise ParameterError(f"target must be 'PD-1' or 'PD-L1', got {self.target!r}; give the target")
        for name in _POSITIVE_PK_FIELDS:
            value = _bounded(name, getattr(self, name), ParameterError, strict=True)
            object.__setattr__(self, name, value)
        emax = _number("cl_time_emax", self.cl_time_emax, ParameterError, "give 0 or less")
        object.__setattr__(self, "cl_time_emax", emax)
        if not isinstance(self.source, str) or not self.source.strip():
            raise ParameterError(f"source must be a non-empty citation, got {self.source!r}; cite the model")
        object.__setattr__(self, "assumptions", tuple(self.assumptions))

    def as_parameters(self) -> dict[str, float]:
        """Map onto the model parameter names (``pk_*`` and ``ro_ec50_ug_per_ml``).

        For constant-clearance drugs (``cl_time_emax == 0``) the time-course shape parameters
        are omitted: they have no effect, and leaving the model's values keeps provenance clean.
        """
        shape = {"pk_cl_time_t50_day", "pk_cl_time_hill"}
        return {
            key: float(getattr(self, attr))
            for key, attr in _PARAMETER_NAMES
            if not (self.cl_time_emax == 0.0 and key in shape)
        }

    def clearance_l_per_day(self, time_day: ArrayLike) -> NDArray[np.float64]:
        """Clearance ``CL0 exp(Emax t^g / (T50^g + t^g))`` at ``time_day`` days after the first dose.

        Raises
        ------
        ScheduleError
            If a time is negative or not finite.
        """
        t = np.asarray(time_day, dtype=np.float64)
        if np.any(~np.isfinite(t)) or np.any(t < 0.0):
            raise ScheduleError(
                f"time_day must be finite and >= 0 (days since the first dose), got {time_day!r}; "
                "give times from the first dose"
            )
        tg = t**self.cl_time_hill
        return self.cl_l_per_day * np.exp(self.cl_time_emax * tg / (self.cl_time_t50_day**self.cl_time_hill + tg))

    def terminal_half_life_day(self, time_day: float = 0.0) -> float:
        """Terminal (beta-phase) half-life in days at the clearance of ``time_day``.

        ``ln 2 / beta`` with ``beta`` the smaller root of
        ``s^2 - (k10 + k12 + k21) s + k10 k21``, ``k10 = CL/Vc``, ``k12 = Q/Vc``,
        ``k21 = Q/Vp`` (the standard two-compartment solution).
        """
        k10 = float(self.clearance_l_per_day(time_day)) / self.vc_l
        k12 = self.q_l_per_day / self.vc_l
        k21 = self.q_l_per_day / self.vp_l
        total = k10 + k12 + k21
        beta = (total - math.sqrt(total * total - 4.0 * k10 * k21)) / 2.0
        return math.log(2.0) / beta


_PD1_CLASS_EC50 = (
    "ec50_ug_per_ml: pembrolizumab's PD-1 Kd (~29 pM = 0.0043 ug/mL) used as a class "
    "value (no published binding constant for this drug was found)"
)
_PDL1_PLACEHOLDER_EC50 = (
    "ec50_ug_per_ml: no published PD-L1 binding constant was found; the "
    "PD-1 value (0.0043 ug/mL) is a placeholder (troughs are far above it either way)"
)
_NIVO_Q_L_PER_DAY = 32.1 * 24.0 / 1000.0  # Bajaj 2017: Q 32.1 mL/h = 0.770 L/d


def _build_drug_pk() -> Mapping[str, DrugPK]:
    pembrolizumab = DrugPK(
        name="pembrolizumab",
        target="PD-1",
        # Ahamadi 2017 CPT:PSP 6:49, Table 3 (nlmixr2lib Ahamadi_2017_pembrolizumab),
        # reference covariates 76.8 kg, albumin 39.6 g/L [P].
        cl_l_per_day=0.22,
        vc_l=3.48,
        q_l_per_day=0.795,
        vp_l=4.06,
        cl_time_emax=0.0,  # constant CL, as in Ahamadi 2017 (no time-varying CL term)
        ec50_ug_per_ml=PD1_KD_EC50_UG_PER_ML,  # Kd ~29 pM ([S], see PD1_KD_EC50_UG_PER_ML)
        source=(
            "Ahamadi M, Freshwater T, Prohn M, et al. Model-based characterization of "
            "the pharmacokinetics of pembrolizumab: a humanized anti-PD-1 monoclonal "
            "antibody in advanced solid tumors. CPT Pharmacometrics Syst Pharmacol. "
            "2017;6(1):49-57 (Table 3)"
        ),
    )
    nivolumab = DrugPK(
        name="nivolumab",
        target="PD-1",
        # Bajaj 2017 CPT:PSP 6:58 (nlmixr2lib Bajaj_2017_nivolumab), reference 80 kg
        # white female, eGFR 90, ECOG 0 [P].
        cl_l_per_day=9.4 * 24.0 / 1000.0,  # 9.4 mL/h = 0.226 L/d
        vc_l=3.63,
        q_l_per_day=_NIVO_Q_L_PER_DAY,
        vp_l=2.78,
        cl_time_emax=-0.295,  # ~25% fall in CL over time
        cl_time_t50_day=1410.0 / 24.0,  # 1410 h = 58.75 d
        cl_time_hill=3.15,
        ec50_ug_per_ml=PD1_KD_EC50_UG_PER_ML,  # ASSUMPTION: see assumptions
        source=(
            "Bajaj G, Wang X, Agrawal S, Gupta M, Roy A, Feng Y. Model-based population "
            "pharmacokinetic analysis of nivolumab in patients with solid tumors. "
            "CPT Pharmacometrics Syst Pharmacol. 2017;6(1):58-66"
        ),
        assumptions=(_PD1_CLASS_EC50,),
    )
    durvalumab = DrugPK(
        name="durvalumab",
        target="PD-L1",
        # Abegesah 2025 (POSEIDON model updated, 3,141 pts incl. PACIFIC, ATLANTIC;
        # nlmixr2lib Abegesah_2025_durvalumab), reference 69.4 kg male [P].
        cl_l_per_day=0.298,  # at t = 0
        vc_l=3.42,
        q_l_per_day=0.452,
        vp_l=1.99,
        # The source's CL is sigmoid in time, but the values used here give no Emax/T50: constant
        # CL here. (nlmixr2lib's Table 4 transcription: Tmax -0.498, TC50 61.3 d, Hill 1;
        # not yet verified against the paper.)
        cl_time_emax=0.0,
        ec50_ug_per_ml=PD1_KD_EC50_UG_PER_ML,  # ASSUMPTION: placeholder, see assumptions
        source=(
            "Abegesah A, Oh D-Y, Lim K, et al. Population pharmacokinetics and "
            "exposure-response analysis of durvalumab in combination with gemcitabine "
            "and cisplatin in patients with advanced biliary tract cancer. Cancer "
            "Chemother Pharmacol. 2025;95:23 (POSEIDON model updated)"
        ),
        assumptions=(
            "cl_time_emax = 0: time-varying CL not used (no verified Emax/T50)",
            _PDL1_PLACEHOLDER_EC50,
        ),
    )
    atezolizumab = DrugPK(
        name="atezolizumab",
        target="PD-L1",
        # Adult popPK (472 pts, 1-20 mg/kg), SmPC text [S].
        cl_l_per_day=0.200,  # [U]: unverified (not in the SmPC text)
        vc_l=3.28,
        # ASSUMPTION: adult Q not given; median of the adult anti-PD-(L)1 values
        # above (pembrolizumab 0.795, nivolumab 0.770, durvalumab 0.452 L/d). The
        # paediatric Q (Shemesh 2019, 0.183 L/d) is not for adults.
        q_l_per_day=0.770,
        vp_l=6.91 - 3.28,  # Vss 6.91 L - Vc 3.28 L = 3.63 L
        cl_time_emax=0.0,
        ec50_ug_per_ml=PD1_KD_EC50_UG_PER_ML,  # ASSUMPTION: placeholder, see assumptions
        source=(
            "Atezolizumab (Tecentriq) SmPC section 5.2, adult population PK (472 "
            "patients, 1-20 mg/kg) "
            "(https://www.galenreasoner.com/substances/atezolizumab/pharmacology)"
        ),
        assumptions=(
            "cl_l_per_day = 0.200 L/d is tagged [U] (unverified: not in the SmPC text)",
            "q_l_per_day = 0.770 L/d: median of the adult anti-PD-(L)1 values (pembrolizumab, nivolumab, durvalumab)",
            _PDL1_PLACEHOLDER_EC50,
        ),
    )
    sintilimab = DrugPK(
        name="sintilimab",
        target="PD-1",
        # ASSUMPTION (no sintilimab popPK source was found): CL and Vc are the
        # midpoints of the anti-PD-1 class range (CL 0.179-0.290 L/d, Vc 2.98-4.46 L;
        # PMC9379304 [P]); Q and Vp (not in the range) are the means of pembrolizumab
        # (Ahamadi 2017) and nivolumab (Bajaj 2017), the other IgG4 anti-PD-1 models.
        cl_l_per_day=(0.179 + 0.290) / 2.0,  # 0.2345 L/d
        vc_l=(2.98 + 4.46) / 2.0,  # 3.72 L
        q_l_per_day=(0.795 + _NIVO_Q_L_PER_DAY) / 2.0,  # 0.783 L/d
        vp_l=(4.06 + 2.78) / 2.0,  # 3.42 L
        cl_time_emax=0.0,
        ec50_ug_per_ml=PD1_KD_EC50_UG_PER_ML,  # ASSUMPTION: see assumptions
        source=(
            "No sintilimab population-PK model found; class-typical values from the "
            "anti-PD-1 popPK class range (https://pmc.ncbi.nlm.nih.gov/articles/"
            "PMC9379304)"
        ),
        assumptions=(
            "cl_l_per_day, vc_l: midpoints of the anti-PD-1 class range (PMC9379304)",
            "q_l_per_day, vp_l: means of pembrolizumab (Ahamadi) and nivolumab (Bajaj)",
            _PD1_CLASS_EC50,
        ),
    )
    drugs = (pembrolizumab, nivolumab, durvalumab, atezolizumab, sintilimab)
    return MappingProxyType({pk.name: pk for pk in drugs})


DRUG_PK: Mapping[str, DrugPK] = _build_drug_pk()
"""Read-only table of the known checkpoint inhibitors' PK, keyed by lower-case name."""


def _known_drug(name: object) -> str:
    if not isinstance(name, str) or name not in DRUG_PK:
        raise ScheduleError(unknown_name_message("drug", str(name), DRUG_PK))
    return name


@dataclass(frozen=True, kw_only=True)
class DrugDose:
    """One infusion, the event the solver applies (treated as a bolus).

    Attributes
    ----------
    time_day
        Time of the dose in days (day 0 = first checkpoint-inhibitor dose).
    dose_mg
        Flat dose in mg (0 if the dose is weight-based).
    dose_mg_per_kg
        Weight-based dose in mg/kg (0 if the dose is flat).
    drug
        Name of the drug, a key of :data:`DRUG_PK`.
    """

    time_day: float
    dose_mg: float = 0.0
    dose_mg_per_kg: float = 0.0
    drug: str

    def __post_init__(self) -> None:
        time = _number("time_day", self.time_day, ScheduleError, "give the day")
        object.__setattr__(self, "time_day", time)
        for name in ("dose_mg", "dose_mg_per_kg"):
            value = _bounded(name, getattr(self, name), ScheduleError, strict=False)
            object.__setattr__(self, name, value)
        if (self.dose_mg > 0.0) == (self.dose_mg_per_kg > 0.0):
            raise ScheduleError(
                f"exactly one of dose_mg and dose_mg_per_kg must be > 0, got dose_mg={self.dose_mg!r}, "
                f"dose_mg_per_kg={self.dose_mg_per_kg!r}; give a flat or a weight-based dose, not both"
            )
        _known_drug(self.drug)

    def amount_mg(self, body_weight_kg: float) -> float:
        """Dose in mg for a patient of ``body_weight_kg`` (ignored for flat doses)."""
        if self.dose_mg > 0.0:
            return self.dose_mg
        weight = _bounded("body_weight_kg", body_weight_kg, ParameterError, strict=True)
        return self.dose_mg_per_kg * weight


@dataclass(frozen=True, kw_only=True)
class DrugRegimen:
    """Repeated infusions of one checkpoint inhibitor.

    Attributes
    ----------
    drug
        Drug name, a key of :data:`DRUG_PK` (unknown names raise with a suggestion).
    dose_mg, dose_mg_per_kg
        Flat or weight-based dose; give exactly one.
    interval_day
        Days between doses, > 0 (21 for q3w).
    start_day
        Day of the first dose (0 by the time convention).
    max_duration_day
        Doses are given strictly before ``start_day + max_duration_day``; default 730 d
        (PEMBRO-RT: pembrolizumab up to 24 months, Theelen 2019).
    n_doses
        Optional cap on the number of doses (e.g. 32 cycles in MDACC Welsh 2020).
    name
        Optional label.
    constant_clearance
        Use the drug's baseline clearance throughout (drop a time-varying clearance term). Models with exact
        analytic PK (``nsclc_model(pk="analytic")``) need constant clearance; for nivolumab (Bajaj 2017: clearance
        falls ~25% over months) this under-states late exposure slightly, while receptor occupancy at 3 mg/kg q2w
        stays saturated (troughs far above the EC50), so the PD effect is unchanged.
    """

    drug: str
    dose_mg: float | None = None
    dose_mg_per_kg: float | None = None
    interval_day: float
    start_day: float = 0.0
    max_duration_day: float = 730.0
    n_doses: int | None = None
    name: str | None = None
    constant_clearance: bool = False

    def __post_init__(self) -> None:
        _known_drug(self.drug)
        if (self.dose_mg is None) == (self.dose_mg_per_kg is None):
            raise ScheduleError(
                f"give exactly one of dose_mg and dose_mg_per_kg, got dose_mg={self.dose_mg!r}, "
                f"dose_mg_per_kg={self.dose_mg_per_kg!r}; e.g. dose_mg=200 or dose_mg_per_kg=3"
            )
        for name in ("dose_mg", "dose_mg_per_kg", "interval_day", "max_duration_day"):
            if (value := getattr(self, name)) is not None:
                value = _bounded(name, value, ScheduleError, strict=True)
                object.__setattr__(self, name, value)
        start = _number("start_day", self.start_day, ScheduleError, "give a day")
        object.__setattr__(self, "start_day", start)
        n = self.n_doses
        if n is not None and (isinstance(n, bool) or not isinstance(n, Integral) or n < 1):
            raise ScheduleError(f"n_doses must be an integer >= 1 or None, got {n!r}")
        if self.name is not None and not isinstance(self.name, str):
            raise ScheduleError(f"name must be a string or None, got {self.name!r}")

    @property
    def pk(self) -> DrugPK:
        """Population PK of the drug (with ``cl_time_emax = 0`` if :attr:`constant_clearance`)."""
        pk = DRUG_PK[self.drug]
        return replace(pk, cl_time_emax=0.0) if self.constant_clearance and pk.cl_time_emax != 0.0 else pk

    @property
    def schedule(self) -> str:
        """Dose and interval, e.g. ``"pembrolizumab 200 mg q21d"``."""
        kg = self.dose_mg is None
        amount = f"{self.dose_mg_per_kg:g} mg/kg" if kg else f"{self.dose_mg:g} mg"
        return f"{self.drug} {amount} q{self.interval_day:g}d"

    @property
    def label(self) -> str:
        """``name`` if given, else :attr:`schedule`."""
        return self.name if self.name is not None else self.schedule

    def doses(self, until_day: float = math.inf) -> tuple[DrugDose, ...]:
        """Doses at ``start_day + k interval_day`` up to ``until_day`` (inclusive).

        Doses fall strictly before ``start_day + max_duration_day`` and number at most
        ``n_doses``.
        """
        bad = isinstance(until_day, bool) or not isinstance(until_day, Real)
        if bad or math.isnan(until_day):
            raise ScheduleError(f"until_day must be a number, got {until_day!r}; give a day")
        # k * interval_day < max_duration_day  <=>  k < ceil(max / interval)
        count = math.ceil(self.max_duration_day / self.interval_day)
        if self.n_doses is not None:
            count = min(count, int(self.n_doses))
        times = (self.start_day + k * self.interval_day for k in range(count))
        mg, mg_per_kg = self.dose_mg or 0.0, self.dose_mg_per_kg or 0.0
        return tuple(
            DrugDose(time_day=t, dose_mg=mg, dose_mg_per_kg=mg_per_kg, drug=self.drug) for t in times if t <= until_day
        )

    def describe(self) -> str:
        """One-line summary, e.g. ``"pembrolizumab 200 mg q21d from day 0 for up to 730 d"``."""
        cap = f", at most {self.n_doses} doses" if self.n_doses is not None else ""
        return f"{self.schedule} from day {self.start_day:g} for up to {self.max_duration_day:g} d{cap}"
