r"""Dose to the circulating blood and radiation-induced lymphopenia, per fraction and over a course.

A ground-floor building block: it imports only numpy, :mod:`abscopal.errors` and :mod:`abscopal.treatment`.
It replaces the fixed "blood dose = 10% of the fraction dose" assumption
(:data:`abscopal.treatment.DEFAULT_BLOOD_DOSE_RATIO`) with a blood-flow model that depends on the dose per
fraction, the number of fractions, the treated site, the field size and the beam-on time. The numbers and their
sources are in ``docs/blood_dose.md``.

Model (one fraction of ``d`` Gy to a target of ``V`` cm3 in site ``s``; time in days)::

    V_dw  = V + h * A(V),  A(V) = (36 pi)^(1/3) V^(2/3)     dose-weighted irradiated volume [cm3]: the target plus
                                                            a low-dose spill shell of thickness h over its surface
    v_o   = min(share_{s,o} V_dw / V_o, 1)                  irradiated share of compartment o (lung, heart, ...)
    Dbar_o = d v_o                                          mean dose to compartment o in this fraction [Gy]
    b     = sum_o w_o Dbar_o                                mean dose to the whole blood pool (HEDOS MBD) [Gy]
    f     = 1 - exp(-sum_o v_o (w_o + q_o CO T / TBV))      share of the blood that passes the field during the
                                                            beam-on time T (well-mixed compartments)
    K     = f (1 - S(b / f))                                share of circulating lymphocytes killed; S is the
                                                            lymphocyte survival, S(D) = exp(-alpha D - beta D^2)
    L     -> L (1 - K)                                      at each fraction
    dL/dt = k (L0 - L)                                      recovery towards the patient's baseline L0

``w_o`` and ``q_o`` are the ICRP 89 blood-volume and blood-flow fractions of compartment ``o``; TBV is the total
blood volume and CO the cardiac output. ``b`` is the mean blood dose of the HEDOS model (Shin 2021:
``MBD = sum_i V_blood,i Dbar_i / TBV``); summed over a course it plays the role of Jin's effective dose to the
circulating immune cells (EDIC, :func:`edic_gy`), whose lung and heart coefficients (0.12, 0.08) are close to the
ICRP 89 blood fractions used here (0.125, 0.10). Lymphocytes exposed in one fraction receive ``b / f`` on average
(few fractions give a small exposed share a higher dose; Yovino 2013, HEDOS), so ``K`` saturates when
``alpha b / f`` is large.

``alpha`` is an in vivo value fitted to measured lymphocyte counts against the dose to the circulating
lymphocytes (Jin 2020), not an in vitro D0: it lumps the kill of blood-borne lymphocytes with that of lymphocytes
sitting in the irradiated tissue (the blood holds only ~2% of all lymphocytes; Westermann & Pabst 1992). ``L`` is
the absolute lymphocyte count (ALC); the blood mixes with the whole recirculating pool within about a day
(ibid.), so one compartment with instantaneous kill and first-order recovery is used.

Everything here is a pure function of its inputs; invalid inputs raise
:class:`~abscopal.errors.ParameterError` naming the argument, the value and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import ParameterError, unknown_name_message
from .treatment import RadiationCourse

__all__ = [
    "BASELINE_ALC_1E9_PER_L",
    "COMPARTMENTS",
    "FEMALE",
    "MALE",
    "REFERENCE_FIELDS",
    "SITES",
    "BloodCompartment",
    "BloodDoseModel",
    "Circulation",
    "Field",
    "FractionExposure",
    "LymphocyteCourse",
    "LymphocyteKinetics",
    "TreatedSite",
    "beam_on_time_s",
    "blood_dose_per_fraction_gy",
    "course_blood_dose_gy",
    "course_edic_gy",
    "dose_weighted_volume_cm3",
    "edic_gy",
    "exposed_blood_fraction",
    "fraction_exposure",
    "lymphocyte_kill_fraction",
    "lymphocyte_surviving_fraction",
    "mean_organ_doses_per_fraction_gy",
    "nadir_ratio",
    "reference_field",
    "simulate_lymphocytes",
]

_FloatArray = NDArray[np.float64]


# ---- validation -----------------------------------------------------------------------------------------------
def _number(name: str, value: object, fix: str, *, minimum: float | None = None, positive: bool = False) -> float:
    """Return ``value`` as a finite float (> 0 if ``positive``, >= ``minimum`` if given), else raise."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ParameterError(f"{name} must be a finite number, got {value!r}; {fix}")
    number = float(value)
    if positive and number <= 0.0:
        raise ParameterError(f"{name} must be > 0, got {value!r}; {fix}")
    if minimum is not None and number < minimum:
        raise ParameterError(f"{name} must be >= {minimum:g}, got {value!r}; {fix}")
    return number


def _share(name: str, value: object, fix: str) -> float:
    """Return ``value`` as a float in [0, 1], else raise."""
    number = _number(name, value, fix, minimum=0.0)
    if number > 1.0:
        raise ParameterError(f"{name} must be <= 1, got {value!r}; {fix}")
    return number


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ParameterError(f"{name} must be a non-empty string, got {value!r}; give a name or a source")
    return value


# ---- circulation and blood compartments -------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Circulation:
    """Total blood volume and cardiac output of a patient.

    Attributes
    ----------
    total_blood_volume_l
        Total blood volume (TBV) in litres, > 0.
    cardiac_output_l_per_min
        Cardiac output (CO) in litres per minute, > 0.
    source
        Where the values come from.
    """

    total_blood_volume_l: float
    cardiac_output_l_per_min: float
    source: str

    def __post_init__(self) -> None:
        fix = "give a physiological value, e.g. 5.3 L and 6.5 L/min (ICRP 89 reference male)"
        for name in ("total_blood_volume_l", "cardiac_output_l_per_min"):
            object.__setattr__(self, name, _number(name, getattr(self, name), fix, positive=True))
        _text("source", self.source)


# HEDOS reference patients (Shin J et al., Phys Med Biol 2021;66(16), doi:10.1088/1361-6560/ac16ea; repository
# mghro/hedos, examples/BloodDose.py): male TBV 5.3 L, CO 6.5 L/min; female TBV 3.9 L, CO 5.9 L/min (ICRP 89).
MALE = Circulation(
    total_blood_volume_l=5.3,
    cardiac_output_l_per_min=6.5,
    source="ICRP 89 reference male, as used by HEDOS (Shin 2021 Phys Med Biol 66(16); mghro/hedos)",
)
FEMALE = Circulation(
    total_blood_volume_l=3.9,
    cardiac_output_l_per_min=5.9,
    source="ICRP 89 reference female, as used by HEDOS (Shin 2021 Phys Med Biol 66(16); mghro/hedos)",
)


@dataclass(frozen=True, kw_only=True)
class BloodCompartment:
    """An organ or tissue of the whole-body blood-flow model that a field can irradiate.

    Attributes
    ----------
    name
        Compartment name, e.g. ``"lung"``.
    blood_volume_fraction
        Share of the total blood volume inside the compartment, in [0, 1] (``w_o``).
    blood_flow_fraction
        Share of the cardiac output that flows through the compartment, in [0, 1] (``q_o``).
    tissue_volume_cm3
        Volume over which a field's dose to this compartment is spread (``V_o``), > 0.
    source
        Source of the three numbers.
    """

    name: str
    blood_volume_fraction: float
    blood_flow_fraction: float
    tissue_volume_cm3: float
    source: str

    def __post_init__(self) -> None:
        _text("name", self.name)
        _text("source", self.source)
        fix = "give a share of the total blood volume or cardiac output between 0 and 1"
        for name in ("blood_volume_fraction", "blood_flow_fraction"):
            object.__setattr__(self, name, _share(name, getattr(self, name), fix))
        volume = _number("tissue_volume_cm3", self.tissue_volume_cm3, "give the organ volume in cm3", positive=True)
        object.__setattr__(self, "tissue_volume_cm3", volume)


# ICRP 89 (male) blood-volume and blood-flow shares as tabulated in the HEDOS compartment model
# (mghro/hedos, input/phantom/ICRP89_compartment_model.xlsx, sheet "male"; Shin 2021 Phys Med Biol 66(16)).
# Tissue volumes: ICRP 89 reference male organ masses (liver 1.8 kg, brain 1.45 kg, kidneys 0.31 kg, skeleton
# 10.5 kg, skeletal muscle 29 kg) divided by tissue density; these masses are recalled from ICRP 89, not read
# from the HEDOS table, and the lung and heart volumes are assumptions (see each entry).
_ICRP89 = "ICRP 89 male via HEDOS (mghro/hedos ICRP89_compartment_model.xlsx; Shin 2021 Phys Med Biol 66(16))"
COMPARTMENTS: Mapping[str, BloodCompartment] = MappingProxyType(
    {
        c.name: c
        for c in (
            # lung 10.5% + bronchial 2.0% of TBV; pulmonary 97.5% + bronchial 2.5% of CO. Volume: assumption, an
            # adult CT lung volume of 4 L (the field's dose is spread over the aerated lung as planned on CT).
            BloodCompartment(
                name="lung",
                blood_volume_fraction=0.125,
                blood_flow_fraction=1.0,
                tissue_volume_cm3=4000.0,
                source=_ICRP89 + "; volume 4 L is an assumption (adult CT lung volume)",
            ),
            # right + left heart chambers 4.5% + 4.5%, coronary 1% of TBV; the whole CO passes the chambers.
            # Volume: assumption, ~530 mL of chamber blood plus ~330 g of wall.
            BloodCompartment(
                name="heart",
                blood_volume_fraction=0.10,
                blood_flow_fraction=1.0,
                tissue_volume_cm3=850.0,
                source=_ICRP89 + "; volume 850 cm3 is an assumption (chamber blood + wall)",
            ),
            # liver 10% of TBV, 25.5% of CO (hepatic artery + portal inflow); 1.8 kg / 1.06 g/cm3.
            BloodCompartment(
                name="liver",
                blood_volume_fraction=0.10,
                blood_flow_fraction=0.255,
                tissue_volume_cm3=1700.0,
                source=_ICRP89 + "; volume from the ICRP 89 liver mass 1.8 kg (recalled)",
            ),
            # brain 1.2% of TBV, 12% of CO; 1.45 kg / 1.04 g/cm3.
            BloodCompartment(
                name="brain",
                blood_volume_fraction=0.012,
                blood_flow_fraction=0.12,
                tissue_volume_cm3=1400.0,
                source=_ICRP89 + "; volume from the ICRP 89 brain mass 1.45 kg (recalled)",
            ),
            # red marrow 4 + spongy 1.2 + compact 0.8 + other skeleton 1.0 = 7% of TBV; 3 + 0.9 + 0.6 + 0.5 = 5% of
            # CO; skeleton 10.5 kg / ~1.4 g/cm3.
            BloodCompartment(
                name="bone",
                blood_volume_fraction=0.07,
                blood_flow_fraction=0.05,
                tissue_volume_cm3=7500.0,
                source=_ICRP89 + "; volume from the ICRP 89 skeleton mass 10.5 kg (recalled)",
            ),
            # kidneys 2% of TBV, 19% of CO; adrenals (0.06%, 0.3%) are lumped here; 0.31 kg / 1.05 g/cm3.
            BloodCompartment(
                name="kidney",
                blood_volume_fraction=0.02,
                blood_flow_fraction=0.19,
                tissue_volume_cm3=300.0,
                source=_ICRP89 + "; volume from the ICRP 89 kidney mass 0.31 kg (recalled)",
            ),
            # skeletal muscle 14% of TBV, 17% of CO; 29 kg / 1.05 g/cm3; stands for chest wall and other soft tissue.
            BloodCompartment(
                name="soft_tissue",
                blood_volume_fraction=0.14,
                blood_flow_fraction=0.17,
                tissue_volume_cm3=27600.0,
                source=_ICRP89 + " (skeletal muscle); volume from the ICRP 89 muscle mass 29 kg (recalled)",
            ),
        )
    }
)
"""Read-only table of the blood compartments a field can irradiate."""


@dataclass(frozen=True, kw_only=True)
class TreatedSite:
    """Where a field sits: how its dose-weighted volume splits over the blood compartments.

    Attributes
    ----------
    name
        Site name (the lesion-site vocabulary of :mod:`abscopal.sites`, plus ``"thorax_central"``).
    compartment_shares
        ``{compartment name: share}`` of the dose-weighted volume; shares in [0, 1] summing to 1.
    source
        Why these shares (all are assumptions about typical field geometry).
    """

    name: str
    compartment_shares: Mapping[str, float]
    source: str

    def __post_init__(self) -> None:
        _text("name", self.name)
        _text("source", self.source)
        shares = dict(self.compartment_shares)
        if not shares:
            raise ParameterError(f"compartment_shares of site {self.name!r} is empty; give e.g. {{'lung': 1.0}}")
        for key, value in shares.items():
            if key not in COMPARTMENTS:
                raise ParameterError(unknown_name_message("blood compartment", str(key), COMPARTMENTS))
            shares[key] = _share(f"compartment_shares[{key!r}]", value, "give a share between 0 and 1")
        total = sum(shares.values())
        if abs(total - 1.0) > 1e-9:
            raise ParameterError(
                f"compartment_shares of site {self.name!r} must sum to 1, got {total!r}; rescale the shares"
            )
        object.__setattr__(self, "compartment_shares", MappingProxyType(shares))

    def __reduce__(self) -> tuple[object, tuple[str, dict[str, float], str]]:
        """Pickle through a plain dict (a ``MappingProxyType`` cannot be pickled; worker processes need this)."""
        return (_treated_site, (self.name, dict(self.compartment_shares), self.source))


def _treated_site(name: str, shares: dict[str, float], source: str) -> TreatedSite:
    return TreatedSite(name=name, compartment_shares=shares, source=source)


_GEOMETRY = "assumption: typical field geometry for this site"
SITES: Mapping[str, TreatedSite] = MappingProxyType(
    {
        s.name: s
        for s in (
            # peripheral lung lesion: the spill is in the lung, some in the chest wall
            TreatedSite(name="lung", compartment_shares={"lung": 0.85, "soft_tissue": 0.15}, source=_GEOMETRY),
            # central thorax (primary + mediastinal nodes, the stage III conventional field): lung, heart and great
            # vessels, chest wall / spine
            TreatedSite(
                name="thorax_central",
                compartment_shares={"lung": 0.65, "heart": 0.15, "soft_tissue": 0.20},
                source=_GEOMETRY + " (central thorax, primary + mediastinal nodes)",
            ),
            # NSCLC nodal disease is mostly mediastinal/hilar: same geometry as the central thorax
            TreatedSite(
                name="lymph_node",
                compartment_shares={"lung": 0.65, "heart": 0.15, "soft_tissue": 0.20},
                source=_GEOMETRY + " (mediastinal/hilar nodes, as thorax_central)",
            ),
            TreatedSite(name="pleura", compartment_shares={"lung": 0.5, "soft_tissue": 0.5}, source=_GEOMETRY),
            TreatedSite(name="liver", compartment_shares={"liver": 0.8, "soft_tissue": 0.2}, source=_GEOMETRY),
            TreatedSite(
                name="adrenal",
                compartment_shares={"kidney": 0.3, "soft_tissue": 0.7},
                source=_GEOMETRY + " (adrenal next to the kidney)",
            ),
            TreatedSite(name="kidney", compartment_shares={"kidney": 0.6, "soft_tissue": 0.4}, source=_GEOMETRY),
            TreatedSite(name="bone", compartment_shares={"bone": 0.5, "soft_tissue": 0.5}, source=_GEOMETRY),
            TreatedSite(name="brain", compartment_shares={"brain": 1.0}, source=_GEOMETRY),
            TreatedSite(name="soft_tissue", compartment_shares={"soft_tissue": 1.0}, source=_GEOMETRY),
            TreatedSite(name="peritoneum", compartment_shares={"soft_tissue": 1.0}, source=_GEOMETRY),
            TreatedSite(name="skin", compartment_shares={"soft_tissue": 1.0}, source=_GEOMETRY),
            TreatedSite(name="other", compartment_shares={"soft_tissue": 1.0}, source=_GEOMETRY),
        )
    }
)
"""Read-only table of treated sites (every lesion site of :mod:`abscopal.sites`, plus ``thorax_central``)."""


def _site(value: object) -> TreatedSite:
    if isinstance(value, TreatedSite):
        return value
    if not isinstance(value, str) or value not in SITES:
        raise ParameterError(unknown_name_message("treated site", str(value), SITES))
    return SITES[value]


# ---- field and model parameters ---------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Field:
    """The irradiated target of one course.

    Attributes
    ----------
    site
        Key of :data:`SITES` (e.g. ``"lung"``, ``"thorax_central"``, ``"liver"``) or a :class:`TreatedSite`.
    target_volume_cm3
        Planning target volume in cm3, > 0.
    beam_on_time_s
        Beam-on time of one fraction in seconds, > 0; ``None`` derives it from the dose per fraction and
        :attr:`BloodDoseModel.target_dose_rate_gy_per_min`.
    """

    site: str | TreatedSite
    target_volume_cm3: float
    beam_on_time_s: float | None = None

    def __post_init__(self) -> None:
        _site(self.site)
        volume = _number("target_volume_cm3", self.target_volume_cm3, "give the PTV in cm3", positive=True)
        object.__setattr__(self, "target_volume_cm3", volume)
        if self.beam_on_time_s is not None:
            fix = "give the beam-on time of one fraction in seconds, or None"
            object.__setattr__(
                self, "beam_on_time_s", _number("beam_on_time_s", self.beam_on_time_s, fix, positive=True)
            )

    @property
    def treated_site(self) -> TreatedSite:
        """The :class:`TreatedSite` (looked up if ``site`` is a name)."""
        return _site(self.site)


# Reference fields for the named regimens (assumptions; no plan data are available in this project):
# * SBRT: a peripheral lung lesion with a 40 cm3 PTV (a ~3 cm lesion with a 5 mm margin is ~35-40 cm3);
# * conventional thoracic RT: primary + mediastinal nodes with a 500 cm3 PTV (stage III-like field).
REFERENCE_FIELDS: Mapping[str, Field] = MappingProxyType(
    {
        "sbrt_lung": Field(site="lung", target_volume_cm3=40.0),
        "conventional_thorax": Field(site="thorax_central", target_volume_cm3=500.0),
    }
)
"""Read-only reference fields: ``sbrt_lung`` (peripheral lung, 40 cm3) and ``conventional_thorax`` (500 cm3)."""

SBRT_MIN_DOSE_PER_FRACTION_GY = 5.0
"""Courses with at least this dose per fraction use the SBRT reference field in :func:`reference_field`."""


def reference_field(course: RadiationCourse) -> Field:
    """The reference field of a course: ``sbrt_lung`` if >= 5 Gy per fraction, else ``conventional_thorax``.

    Raises
    ------
    ParameterError
        If ``course`` is not a :class:`~abscopal.treatment.RadiationCourse`.
    """
    _course(course)
    key = "sbrt_lung" if course.dose_per_fraction_gy >= SBRT_MIN_DOSE_PER_FRACTION_GY else "conventional_thorax"
    return REFERENCE_FIELDS[key]


@dataclass(frozen=True, kw_only=True)
class BloodDoseModel:
    """Parameters of the blood-dose geometry.

    Attributes
    ----------
    circulation
        Total blood volume and cardiac output (default :data:`MALE`).
    spill_shell_thickness_cm
        Thickness ``h`` of the low-dose shell around the target, in cm (>= 0), such that the dose-weighted
        irradiated volume is ``V + h A(V)``. Assumption: 5 cm gives a mean lung dose of ~3.4 Gy for the reference
        50 Gy lung SBRT field (clinical lung SBRT plans typically reach a few Gy) and a course mean blood dose of
        ~4.7 Gy for the reference 60 Gy/30 thoracic field (RTOG 0617 median EDIC 5.6 Gy, range 2.1-12.2; Jin JY
        et al., Cancers 2021;13:6193).
    target_dose_rate_gy_per_min
        Dose rate at the target used to derive the beam-on time when a :class:`Field` does not give it, > 0.
        Assumption: 4 Gy/min (600-1400 MU/min at roughly 1.5-3 MU per cGy), i.e. 0.5 min for 2 Gy and 3 min for
        12.5 Gy.
    """

    circulation: Circulation = MALE
    spill_shell_thickness_cm: float = 5.0
    target_dose_rate_gy_per_min: float = 4.0

    def __post_init__(self) -> None:
        if not isinstance(self.circulation, Circulation):
            raise ParameterError(f"circulation must be a Circulation, got {self.circulation!r}; use MALE or FEMALE")
        fix = "give the spill-shell thickness in cm (0 = no dose outside the target)"
        thickness = _number("spill_shell_thickness_cm", self.spill_shell_thickness_cm, fix, minimum=0.0)
        object.__setattr__(self, "spill_shell_thickness_cm", thickness)
        fix = "give the dose rate at the target in Gy/min, e.g. 4"
        rate = _number("target_dose_rate_gy_per_min", self.target_dose_rate_gy_per_min, fix, positive=True)
        object.__setattr__(self, "target_dose_rate_gy_per_min", rate)


@dataclass(frozen=True, kw_only=True)
class LymphocyteKinetics:
    """Lymphocyte radiosensitivity and recovery.

    Attributes
    ----------
    alpha_per_gy
        Linear radiosensitivity of circulating lymphocytes in 1/Gy, > 0. Default 0.40: the median in vivo value
        fitted to weekly lymphocyte counts of 51 patients against the dose to the circulating lymphocytes, which
        the authors note agrees with an in vitro 0.41 (Jin JY, Mereniuk T, Yalamanchali A, et al., Radiother Oncol
        2020;144:105-113). Sensitivity range: in vivo D0 = 1.2 Gy in total-body-irradiation patients (alpha 0.83;
        PMID 3303160); in vitro D0 of unstimulated subsets 0.55 (CD8) to 1.15 Gy (CD4).
    beta_per_gy2
        Quadratic term in 1/Gy^2, >= 0. Default 0 (exponential survival, as in Jin 2020 and the TBI D0 data).
    recovery_per_day
        First-order recovery rate ``k`` of the count towards baseline in 1/day, >= 0. Default 0.015 (half-time
        46 d), the value the default NSCLC model already uses. Bracketing observations: after lung SBRT the
        nadir is ~1 week after treatment and the count is almost back to baseline at ~3 months (Li R et al.,
        Chin J Radiat Oncol 2024;33:909-914); after thoracic chemoradiation the count has not recovered 2 months
        after RT (Zhao Q et al., Radiat Oncol 2019;14:86); "substantial recovery within 3 weeks" after
        mediastinal RT (Stratton JA et al., J Clin Invest 1975;56:88). Assumption within that range.
    """

    alpha_per_gy: float = 0.40
    beta_per_gy2: float = 0.0
    recovery_per_day: float = 0.015

    def __post_init__(self) -> None:
        alpha = _number("alpha_per_gy", self.alpha_per_gy, "give alpha in 1/Gy, e.g. 0.40", positive=True)
        beta = _number("beta_per_gy2", self.beta_per_gy2, "give beta in 1/Gy^2 (0 = exponential)", minimum=0.0)
        fix = "give the recovery rate in 1/day (0 = no recovery)"
        recovery = _number("recovery_per_day", self.recovery_per_day, fix, minimum=0.0)
        object.__setattr__(self, "alpha_per_gy", alpha)
        object.__setattr__(self, "beta_per_gy2", beta)
        object.__setattr__(self, "recovery_per_day", recovery)


BASELINE_ALC_1E9_PER_L: Mapping[str, float] = MappingProxyType(
    {
        # median pre-SBRT count, early-stage NSCLC (Zhao Q et al., Technol Cancer Res Treat 2022;21:15330338221112287)
        "early_nsclc_sbrt_zhao2022": 1.70,
        # median baseline, early-stage NSCLC SBRT (Li R et al., Chin J Radiat Oncol 2024;33:909-914)
        "early_nsclc_sbrt_li2024": 1.90,
        # mean pre-RT count, LS-SCLC chemoradiation (Yu Y et al., EDIC cohort; the NSCLC model's default)
        "ls_sclc_crt_yu": 1.65,
    }
)
"""Published baseline absolute lymphocyte counts (1e9/L); patients differ, so pass each patient's own."""


# ---- geometry: dose-weighted volume, organ doses, blood dose, exposed fraction ----------------------------------
def _dose(name: str, value: object) -> float:
    return _number(name, value, "give a non-negative dose in Gy", minimum=0.0)


def dose_weighted_volume_cm3(target_volume_cm3: float, model: BloodDoseModel | None = None) -> float:
    """Dose-weighted irradiated volume ``V + h (36 pi)^(1/3) V^(2/3)`` in cm3 (integral dose / fraction dose).

    Raises
    ------
    ParameterError
        If ``target_volume_cm3`` is not > 0.
    """
    model = _model(model)
    volume = _number("target_volume_cm3", target_volume_cm3, "give the PTV in cm3", positive=True)
    surface_cm2 = (36.0 * math.pi) ** (1.0 / 3.0) * volume ** (2.0 / 3.0)
    return volume + model.spill_shell_thickness_cm * surface_cm2


def _irradiated_shares(field: Field, model: BloodDoseModel) -> dict[str, float]:
    """``{compartment: v_o}``, the irradiated share of each compartment (<= 1)."""
    dose_weighted = dose_weighted_volume_cm3(field.target_volume_cm3, model)
    return {
        name: min(share * dose_weighted / COMPARTMENTS[name].tissue_volume_cm3, 1.0)
        for name, share in field.treated_site.compartment_shares.items()
    }


def _model(model: object) -> BloodDoseModel:
    if model is None:
        return BloodDoseModel()
    if not isinstance(model, BloodDoseModel):
        raise ParameterError(f"model must be a BloodDoseModel or None, got {model!r}; e.g. BloodDoseModel()")
    return model


def _field(field: object) -> Field:
    if not isinstance(field, Field):
        raise ParameterError(
            f"field must be a Field, got {field!r}; e.g. Field(site='lung', target_volume_cm3=40.0) or "
            "REFERENCE_FIELDS['sbrt_lung']"
        )
    return field


def _kinetics(kinetics: object) -> LymphocyteKinetics:
    if kinetics is None:
        return LymphocyteKinetics()
    if not isinstance(kinetics, LymphocyteKinetics):
        raise ParameterError(f"kinetics must be a LymphocyteKinetics or None, got {kinetics!r}")
    return kinetics


def _course(course: object) -> RadiationCourse:
    if not isinstance(course, RadiationCourse):
        raise ParameterError(
            f"course must be a RadiationCourse, got {course!r}; build one with "
            "abscopal.treatment.radiation_regimen('sbrt_24gy_3fx') or RadiationCourse(...)"
        )
    return course


def mean_organ_doses_per_fraction_gy(
    dose_per_fraction_gy: float, field: Field, model: BloodDoseModel | None = None
) -> dict[str, float]:
    """Mean dose to each irradiated compartment in one fraction, ``{compartment: d v_o}`` in Gy.

    Raises
    ------
    ParameterError
        If the dose is negative or the field or model is invalid.
    """
    dose = _dose("dose_per_fraction_gy", dose_per_fraction_gy)
    return {name: dose * share for name, share in _irradiated_shares(_field(field), _model(model)).items()}


def blood_dose_per_fraction_gy(dose_per_fraction_gy: float, field: Field, model: BloodDoseModel | None = None) -> float:
    """Mean dose to the whole blood pool from one fraction, ``b = sum_o w_o d v_o`` in Gy (HEDOS MBD).

    Raises
    ------
    ParameterError
        If the dose is negative or the field or model is invalid.
    """
    doses = mean_organ_doses_per_fraction_gy(dose_per_fraction_gy, field, model)
    return float(sum(COMPARTMENTS[name].blood_volume_fraction * dose for name, dose in doses.items()))


def beam_on_time_s(dose_per_fraction_gy: float, model: BloodDoseModel | None = None) -> float:
    """Beam-on time of one fraction in seconds: ``60 d / target_dose_rate_gy_per_min``.

    Raises
    ------
    ParameterError
        If the dose is negative or the model invalid.
    """
    dose = _dose("dose_per_fraction_gy", dose_per_fraction_gy)
    return 60.0 * dose / _model(model).target_dose_rate_gy_per_min


def exposed_blood_fraction(dose_per_fraction_gy: float, field: Field, model: BloodDoseModel | None = None) -> float:
    """Share of the blood pool that passes the field in one fraction, ``f = 1 - exp(-sum_o v_o (w_o + q_o CO T/TBV))``.

    The beam-on time ``T`` is ``field.beam_on_time_s`` if given, else :func:`beam_on_time_s`. Zero dose gives
    zero beam-on time, and ``f`` is then the share of the blood inside the field at one instant.

    Raises
    ------
    ParameterError
        If the dose is negative or the field or model is invalid.
    """
    field, model = _field(field), _model(model)
    seconds = field.beam_on_time_s if field.beam_on_time_s is not None else beam_on_time_s(dose_per_fraction_gy, model)
    circ = model.circulation
    turnovers = circ.cardiac_output_l_per_min * seconds / 60.0 / circ.total_blood_volume_l
    exponent = 0.0
    for name, share in _irradiated_shares(field, model).items():
        c = COMPARTMENTS[name]
        exponent += share * (c.blood_volume_fraction + c.blood_flow_fraction * turnovers)
    return float(-math.expm1(-exponent))


# ---- lymphocyte kill -------------------------------------------------------------------------------------------
def lymphocyte_surviving_fraction(dose_gy: ArrayLike, kinetics: LymphocyteKinetics | None = None) -> _FloatArray:
    """Surviving fraction of lymphocytes that receive ``dose_gy``: ``exp(-alpha D - beta D^2)`` (broadcasts).

    Raises
    ------
    ParameterError
        If a dose is negative or not finite.
    """
    kin = _kinetics(kinetics)
    try:
        dose = np.asarray(dose_gy, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"dose_gy must be numeric, got {dose_gy!r}; give doses in Gy") from exc
    if not np.all(np.isfinite(dose)) or np.any(dose < 0.0):
        raise ParameterError(f"dose_gy must be finite and >= 0, got {dose_gy!r}; give non-negative doses in Gy")
    result: _FloatArray = np.exp(-(kin.alpha_per_gy * dose + kin.beta_per_gy2 * dose**2))
    return result


def lymphocyte_kill_fraction(
    blood_dose_gy: float, exposed_fraction: float, kinetics: LymphocyteKinetics | None = None
) -> float:
    """Share of circulating lymphocytes killed in one fraction, ``K = f (1 - S(b / f))``.

    ``b`` is the mean blood dose of the fraction and ``f`` the exposed share of the blood; the exposed share
    receives ``b / f`` on average. ``f = 1`` is uniform exposure, ``K = 1 - S(b)``.

    Raises
    ------
    ParameterError
        If ``blood_dose_gy < 0``, ``exposed_fraction`` is not in (0, 1], or ``b > 0`` with ``f = 0``.
    """
    blood = _dose("blood_dose_gy", blood_dose_gy)
    share = _share("exposed_fraction", exposed_fraction, "give the exposed share of the blood, in (0, 1]")
    if blood == 0.0:
        return 0.0
    if share == 0.0:
        raise ParameterError(
            f"exposed_fraction must be > 0 when blood_dose_gy > 0, got {exposed_fraction!r}; a blood dose needs "
            "exposed blood"
        )
    return share * float(1.0 - lymphocyte_surviving_fraction(blood / share, kinetics))


@dataclass(frozen=True, kw_only=True)
class FractionExposure:
    """What one fraction does to the blood and its lymphocytes.

    Attributes
    ----------
    dose_per_fraction_gy
        Prescribed dose of the fraction in Gy.
    mean_blood_dose_gy
        Mean dose to the whole blood pool ``b`` in Gy (the value for ``Fraction.blood_dose_gy``).
    exposed_blood_fraction
        Share ``f`` of the blood that passes the field during the beam-on time.
    beam_on_time_s
        Beam-on time used, in seconds.
    lymphocyte_kill_fraction
        Share ``K`` of circulating lymphocytes killed; the count jumps ``L -> L (1 - K)``.
    """

    dose_per_fraction_gy: float
    mean_blood_dose_gy: float
    exposed_blood_fraction: float
    beam_on_time_s: float
    lymphocyte_kill_fraction: float

    @property
    def dose_to_exposed_blood_gy(self) -> float:
        """Mean dose to the exposed blood, ``b / f`` in Gy (0 if nothing is exposed)."""
        if self.exposed_blood_fraction == 0.0:
            return 0.0
        return self.mean_blood_dose_gy / self.exposed_blood_fraction


def fraction_exposure(
    dose_per_fraction_gy: float,
    field: Field,
    model: BloodDoseModel | None = None,
    kinetics: LymphocyteKinetics | None = None,
    *,
    blood_dose_gy: float | None = None,
) -> FractionExposure:
    """Blood dose, exposed share and lymphocyte kill of one fraction.

    Parameters
    ----------
    dose_per_fraction_gy
        Prescribed dose per fraction in Gy, >= 0.
    field
        The irradiated target (:class:`Field`).
    model, kinetics
        Geometry and lymphocyte parameters (defaults: :class:`BloodDoseModel`, :class:`LymphocyteKinetics`).
    blood_dose_gy
        Mean blood dose of the fraction if known (e.g. from a HEDOS calculation on a real plan); ``None`` uses
        :func:`blood_dose_per_fraction_gy`.

    Raises
    ------
    ParameterError
        If an input is invalid.
    """
    field, model = _field(field), _model(model)
    dose = _dose("dose_per_fraction_gy", dose_per_fraction_gy)
    if blood_dose_gy is None:
        blood = blood_dose_per_fraction_gy(dose, field, model)
    else:
        blood = _dose("blood_dose_gy", blood_dose_gy)
    exposed = exposed_blood_fraction(dose, field, model)
    seconds = field.beam_on_time_s if field.beam_on_time_s is not None else beam_on_time_s(dose, model)
    kill = lymphocyte_kill_fraction(blood, exposed, kinetics) if blood > 0.0 else 0.0
    return FractionExposure(
        dose_per_fraction_gy=dose,
        mean_blood_dose_gy=blood,
        exposed_blood_fraction=exposed,
        beam_on_time_s=seconds,
        lymphocyte_kill_fraction=kill,
    )


def course_blood_dose_gy(
    course: RadiationCourse, field: Field | None = None, model: BloodDoseModel | None = None
) -> float:
    """Mean blood dose summed over a course in Gy (``n b``; the course's explicit blood dose if it has one).

    ``field`` defaults to :func:`reference_field`.

    Raises
    ------
    ParameterError
        If an input is invalid.
    """
    course = _course(course)
    field = reference_field(course) if field is None else _field(field)
    if course.blood_dose_per_fraction_gy is not None:
        return course.n_fractions * course.blood_dose_per_fraction_gy
    return course.n_fractions * blood_dose_per_fraction_gy(course.dose_per_fraction_gy, field, model)


# ---- EDIC (Jin et al.) -----------------------------------------------------------------------------------------
# Thoracic EDIC as quoted by Chen F, Jin JY, ..., Kong FM, Front Oncol 2022;12:768956 and used for RTOG 0617
# (Jin JY et al., Cancers 2021;13:6193); the liver term is the oesophageal variant (Xu et al., Radiother Oncol
# 2020;146:180-186, PMID 32182504, which normalises the integral dose by 62 L instead of 61.8 L):
#   EDIC = 0.12 MLD + 0.08 MHD + 0.15 * 0.85 * sqrt(n/45) * MlD + [0.45 + 0.35 * 0.85 * sqrt(n/45)] * ITD / 61.8 L
EDIC_LUNG_COEFFICIENT = 0.12
EDIC_HEART_COEFFICIENT = 0.08
EDIC_LIVER_COEFFICIENT = 0.15 * 0.85
EDIC_BODY_CONSTANT = 0.45
EDIC_BODY_FRACTION_COEFFICIENT = 0.35 * 0.85
EDIC_REFERENCE_FRACTIONS = 45
EDIC_BODY_VOLUME_CM3 = 61.8e3


def edic_gy(
    *,
    mean_lung_dose_gy: float,
    mean_heart_dose_gy: float,
    integral_total_dose_gy_cm3: float,
    n_fractions: int,
    mean_liver_dose_gy: float = 0.0,
) -> float:
    """Effective dose to the circulating immune cells (EDIC) of a course, in Gy (Jin et al.).

    ``EDIC = 0.12 MLD + 0.08 MHD + 0.15 0.85 sqrt(n/45) MlD + [0.45 + 0.35 0.85 sqrt(n/45)] ITD / 61.8e3 cm3``,
    with course mean lung, heart and liver doses in Gy and the integral total dose to the scanned body ``ITD`` in
    Gy cm3. The liver term is zero for thoracic plans (the thoracic form).

    Raises
    ------
    ParameterError
        If a dose is negative or ``n_fractions`` is not an integer >= 1.
    """
    mld = _dose("mean_lung_dose_gy", mean_lung_dose_gy)
    mhd = _dose("mean_heart_dose_gy", mean_heart_dose_gy)
    mlid = _dose("mean_liver_dose_gy", mean_liver_dose_gy)
    itd = _number("integral_total_dose_gy_cm3", integral_total_dose_gy_cm3, "give Gy cm3", minimum=0.0)
    if isinstance(n_fractions, bool) or not isinstance(n_fractions, Integral) or n_fractions < 1:
        raise ParameterError(f"n_fractions must be an integer >= 1, got {n_fractions!r}; give the course's fractions")
    root = math.sqrt(int(n_fractions) / EDIC_REFERENCE_FRACTIONS)
    body = (EDIC_BODY_CONSTANT + EDIC_BODY_FRACTION_COEFFICIENT * root) * itd / EDIC_BODY_VOLUME_CM3
    return EDIC_LUNG_COEFFICIENT * mld + EDIC_HEART_COEFFICIENT * mhd + EDIC_LIVER_COEFFICIENT * root * mlid + body


def course_edic_gy(course: RadiationCourse, field: Field | None = None, model: BloodDoseModel | None = None) -> float:
    """EDIC of a course from this module's geometry (organ mean doses and integral dose ``n d V_dw``), in Gy.

    A cross-check of :func:`course_blood_dose_gy` against Jin's formula; ``field`` defaults to
    :func:`reference_field`.

    Raises
    ------
    ParameterError
        If an input is invalid.
    """
    course = _course(course)
    field = reference_field(course) if field is None else _field(field)
    model = _model(model)
    n, dose = course.n_fractions, course.dose_per_fraction_gy
    organ = mean_organ_doses_per_fraction_gy(dose, field, model)
    return edic_gy(
        mean_lung_dose_gy=n * organ.get("lung", 0.0),
        mean_heart_dose_gy=n * organ.get("heart", 0.0),
        mean_liver_dose_gy=n * organ.get("liver", 0.0),
        integral_total_dose_gy_cm3=n * dose * dose_weighted_volume_cm3(field.target_volume_cm3, model),
        n_fractions=n,
    )


# ---- the count through a course ---------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True, eq=False)
class LymphocyteCourse:
    """The absolute lymphocyte count through a radiation course.

    Attributes
    ----------
    baseline_alc_1e9_per_l
        Baseline count ``L0`` (1e9/L).
    fraction_days
        Fraction times (days).
    exposures
        One :class:`FractionExposure` per fraction.
    alc_after_fraction_1e9_per_l
        Count just after each fraction (1e9/L).
    recovery_per_day
        Recovery rate ``k`` used (1/day).
    """

    baseline_alc_1e9_per_l: float
    fraction_days: _FloatArray
    exposures: tuple[FractionExposure, ...]
    alc_after_fraction_1e9_per_l: _FloatArray
    recovery_per_day: float = 0.0

    @property
    def nadir_alc_1e9_per_l(self) -> float:
        """Lowest count (1e9/L); between fractions the count only rises, so it is the lowest post-fraction count."""
        return float(np.min(self.alc_after_fraction_1e9_per_l))

    @property
    def nadir_day(self) -> float:
        """Day of the nadir (the fraction after which the count is lowest)."""
        return float(self.fraction_days[int(np.argmin(self.alc_after_fraction_1e9_per_l))])

    @property
    def nadir_ratio(self) -> float:
        """Nadir / baseline."""
        return self.nadir_alc_1e9_per_l / self.baseline_alc_1e9_per_l

    def alc_1e9_per_l(self, days: ArrayLike) -> _FloatArray:
        """Count at ``days`` (a fraction's own day gives the count just after it; before the first: baseline).

        Raises
        ------
        ParameterError
            If a day is not finite.
        """
        try:
            t = np.asarray(days, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"days must be numeric, got {days!r}; give times in days") from exc
        if not np.all(np.isfinite(t)):
            raise ParameterError(f"days must be finite, got {days!r}; give times in days")
        base = self.baseline_alc_1e9_per_l
        index = np.searchsorted(self.fraction_days, t, side="right") - 1
        last = np.clip(index, 0, None)
        since = t - self.fraction_days[last]
        after = self.alc_after_fraction_1e9_per_l[last]
        relaxed = base + (after - base) * np.exp(-self.recovery_per_day * since)
        result: _FloatArray = np.where(index < 0, base, relaxed)
        return result


def simulate_lymphocytes(
    course: RadiationCourse,
    baseline_alc_1e9_per_l: float,
    *,
    field: Field | None = None,
    model: BloodDoseModel | None = None,
    kinetics: LymphocyteKinetics | None = None,
) -> LymphocyteCourse:
    """Follow the count through a course: ``L -> L (1 - K)`` at each fraction, ``dL/dt = k (L0 - L)`` between.

    Parameters
    ----------
    course
        The radiation course; its ``blood_dose_per_fraction_gy``, if given, replaces the geometric blood dose.
    baseline_alc_1e9_per_l
        The patient's baseline count ``L0`` in 1e9/L, > 0.
    field
        The irradiated target; ``None`` uses :func:`reference_field`.
    model, kinetics
        Geometry and lymphocyte parameters.

    Raises
    ------
    ParameterError
        If an input is invalid.
    """
    course = _course(course)
    base = _number("baseline_alc_1e9_per_l", baseline_alc_1e9_per_l, "give the baseline ALC in 1e9/L", positive=True)
    field = reference_field(course) if field is None else _field(field)
    model, kin = _model(model), _kinetics(kinetics)
    exposure = fraction_exposure(
        course.dose_per_fraction_gy, field, model, kin, blood_dose_gy=course.blood_dose_per_fraction_gy
    )
    days = np.asarray(course.fraction_days, dtype=np.float64)
    counts = np.empty(days.size)
    count, previous = base, days[0]
    for i, day in enumerate(days):
        count = base + (count - base) * math.exp(-kin.recovery_per_day * (day - previous))
        count *= 1.0 - exposure.lymphocyte_kill_fraction
        counts[i], previous = count, day
    days.setflags(write=False)
    counts.setflags(write=False)
    return LymphocyteCourse(
        baseline_alc_1e9_per_l=base,
        fraction_days=days,
        exposures=(exposure,) * days.size,
        alc_after_fraction_1e9_per_l=counts,
        recovery_per_day=kin.recovery_per_day,
    )


def nadir_ratio(
    course: RadiationCourse,
    baseline_alc_1e9_per_l: float = BASELINE_ALC_1E9_PER_L["early_nsclc_sbrt_zhao2022"],
    *,
    field: Field | None = None,
    model: BloodDoseModel | None = None,
    kinetics: LymphocyteKinetics | None = None,
) -> float:
    """Nadir / baseline of the lymphocyte count through ``course`` (see :func:`simulate_lymphocytes`).

    With first-order recovery towards the baseline the ratio does not depend on the baseline; the baseline sets
    the absolute nadir (:attr:`LymphocyteCourse.nadir_alc_1e9_per_l`).

    Raises
    ------
    ParameterError
        If an input is invalid.
    """
    return simulate_lymphocytes(course, baseline_alc_1e9_per_l, field=field, model=model, kinetics=kinetics).nadir_ratio
