"""Named radiation and checkpoint-inhibitor regimens, with their sources.

Default calendars (an assumption; the trial abstracts, e.g. PEMBRO-RT and MDACC, do not give the
day-by-day schedule):

* SBRT (3-5 fractions, >= 6 Gy): :class:`EveryOtherDay`. Non-consecutive-day delivery is
  common SBRT practice and keeps a 3-fraction course within one week (Mon-Wed-Fri).
* Conventional and palliative (>= 10 fractions, <= 3 Gy): :class:`WeekdayDaily`,
  once daily Monday to Friday.
* Single fraction: any calendar gives day ``start_day``.
* PULSAR: :class:`SpacedPulses` 10 days apart (Rouf 2024 J Theor Biol 111974; Xing 2025 Math Biosci Eng).

Pass ``dataclasses.replace(course, calendar=...)`` to change a calendar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Real
from types import MappingProxyType
from typing import Any

from ..errors import ParameterError, ScheduleError, unknown_name_message
from ..radiobiology import bed, eqd2
from .drugs import DrugRegimen
from .radiation import (
    Daily,
    EveryOtherDay,
    FractionCalendar,
    RadiationCourse,
    SpacedPulses,
    WeekdayDaily,
)

__all__ = [
    "DRUG_REGIMENS",
    "RADIATION_REGIMENS",
    "DrugRegimenSpec",
    "RadiationRegimenSpec",
    "drug_regimen",
    "radiation_regimen",
    "regimen_table",
]


@dataclass(frozen=True, kw_only=True)
class RadiationRegimenSpec:
    """A named fractionation with its source and default calendar.

    Attributes
    ----------
    name
        Registry key, e.g. ``"sbrt_24gy_3fx"``.
    dose_per_fraction_gy
        Dose per fraction in Gy.
    n_fractions
        Number of fractions.
    calendar
        Default fraction calendar.
    source
        Trial or reference that uses the regimen.
    """

    name: str
    dose_per_fraction_gy: float
    n_fractions: int
    calendar: FractionCalendar = field(default_factory=EveryOtherDay)
    source: str

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise ScheduleError(f"source must be a non-empty string, got {self.source!r}; cite the regimen's source")
        # Validates dose, fraction count and calendar with the RadiationCourse rules.
        RadiationCourse(
            dose_per_fraction_gy=self.dose_per_fraction_gy,
            n_fractions=self.n_fractions,
            calendar=self.calendar,
            name=self.name,
        )

    @property
    def total_dose_gy(self) -> float:
        """Total physical dose in Gy."""
        return self.dose_per_fraction_gy * self.n_fractions


@dataclass(frozen=True, kw_only=True)
class DrugRegimenSpec:
    """A named checkpoint-inhibitor schedule with its source.

    Attributes
    ----------
    name
        Registry key, e.g. ``"pembrolizumab_200mg_q3w"``.
    drug
        Key of :data:`~abscopal.treatment.drugs.DRUG_PK`.
    dose_mg, dose_mg_per_kg
        Flat or weight-based dose (exactly one is given).
    interval_day
        Days between doses.
    max_duration_day
        Default treatment duration in days.
    source
        Label, trial or reference for the schedule.
    """

    name: str
    drug: str
    dose_mg: float | None = None
    dose_mg_per_kg: float | None = None
    interval_day: float
    # default 730 d: PEMBRO-RT gave pembrolizumab up to 24 months (Theelen 2019)
    max_duration_day: float = 730.0
    source: str

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise ScheduleError(f"source must be a non-empty string, got {self.source!r}; cite the regimen's source")
        # Validates drug name, doses, interval and duration with the DrugRegimen rules.
        DrugRegimen(
            drug=self.drug,
            dose_mg=self.dose_mg,
            dose_mg_per_kg=self.dose_mg_per_kg,
            interval_day=self.interval_day,
            max_duration_day=self.max_duration_day,
            name=self.name,
        )


_PEMBRO_RT = "PEMBRO-RT, Theelen 2019 JAMA Oncol 5:1276"
_MDACC = "MDACC, Welsh 2020 J Immunother Cancer 8:e001001"
_BED100 = "SBRT cohort with BED10 100-105 Gy, PMC7020355"
_RTOG0236 = "peripheral early-stage SBRT dose (RTOG 0236) [U]"
_PULSAR = (
    "PULSAR-style pulses 10 d apart: Rouf 2024 J Theor Biol 111974, Xing 2025 Math "
    "Biosci Eng doi:10.3934/mbe.2025044; 3 x 10 Gy is an illustrative pulse dose "
    "[assumption]"
)
_SBRT, _CONV = EveryOtherDay(), WeekdayDaily()


def _rt(name: str, dose: float, n: int, calendar: FractionCalendar, source: str) -> RadiationRegimenSpec:
    return RadiationRegimenSpec(
        name=name,
        dose_per_fraction_gy=dose,
        n_fractions=n,
        calendar=calendar,
        source=source,
    )


RADIATION_REGIMENS: Mapping[str, RadiationRegimenSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _rt("sbrt_24gy_3fx", 8.0, 3, _SBRT, _PEMBRO_RT),
            _rt("sbrt_50gy_4fx", 12.5, 4, _SBRT, _MDACC),
            _rt("sbrt_50gy_5fx", 10.0, 5, _SBRT, _BED100),
            _rt("sbrt_54gy_3fx", 18.0, 3, _SBRT, _RTOG0236),
            _rt("sbrt_30gy_5fx", 6.0, 5, _SBRT, "Formenti phase I (SBRT + ipilimumab, 6 Gy x 5)"),
            _rt("sbrt_28p5gy_3fx", 9.5, 3, _SBRT, "Formenti phase II (SBRT + ipilimumab, 9.5 Gy x 3)"),
            _rt(
                "sbrt_8gy_1fx",
                8.0,
                1,
                Daily(),
                "single palliative fraction (standard palliative schedule)",
            ),
            _rt(
                "conv_60gy_30fx",
                2.0,
                30,
                _CONV,
                "conventional thoracic RT (standard 60 Gy in 30 fractions)",
            ),
            _rt("conv_66gy_33fx", 2.0, 33, _CONV, "NICOLAS (ETOP phase II, stage III NSCLC)"),
            _rt("conv_45gy_15fx", 3.0, 15, _CONV, _MDACC),
            _rt(
                "conv_30gy_10fx",
                3.0,
                10,
                _CONV,
                "palliative, Saito 2021 J Radiat Res (PMC8273801)",
            ),
            _rt("pulsar_3x10gy", 10.0, 3, SpacedPulses(interval_day=10.0), _PULSAR),
        )
    }
)
"""Read-only registry of named radiation regimens."""


def _ici(
    name: str,
    interval_day: float,
    source: str,
    *,
    mg: float | None = None,
    mg_per_kg: float | None = None,
    max_duration_day: float = 730.0,
) -> DrugRegimenSpec:
    """Registry entry; the drug is the name's prefix (``"nivolumab_240mg_q2w"``)."""
    return DrugRegimenSpec(
        name=name,
        drug=name.split("_")[0],
        dose_mg=mg,
        dose_mg_per_kg=mg_per_kg,
        interval_day=interval_day,
        max_duration_day=max_duration_day,
        source=source,
    )


_KEYTRUDA = "Keytruda (pembrolizumab) label"
_KEYTRUDA_TRIALS = (
    "Keytruda label; PEMBRO-RT (Theelen 2019 JAMA Oncol 5:1276), MDACC (Welsh 2020 J Immunother Cancer 8:e001001)"
)
_OPDIVO = "Opdivo (nivolumab) label, flat dosing"
_CHECKMATE = "CheckMate-017/057; Ratnayake 2020 Asia Pac J Clin Oncol 16:56 [U]"
_SINTILIMAB = "dose [U]; Li 2022 Front Immunol 13:991431 gives no dose"

DRUG_REGIMENS: Mapping[str, DrugRegimenSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _ici("pembrolizumab_200mg_q3w", 21.0, _KEYTRUDA_TRIALS, mg=200.0),
            _ici("pembrolizumab_400mg_q6w", 42.0, _KEYTRUDA, mg=400.0),
            _ici(
                "pembrolizumab_2mgkg_q3w",
                21.0,
                "KEYNOTE-010 (Herbst 2016 Lancet 387:1540), 2 mg/kg q3w for up to 24 months",
                mg_per_kg=2.0,
            ),
            _ici("nivolumab_240mg_q2w", 14.0, _OPDIVO, mg=240.0),
            _ici("nivolumab_480mg_q4w", 28.0, _OPDIVO, mg=480.0),
            _ici("nivolumab_3mgkg_q2w", 14.0, _CHECKMATE, mg_per_kg=3.0),
            _ici(
                "durvalumab_1500mg_q4w",
                28.0,
                "Imfinzi (durvalumab) label [S]",
                mg=1500.0,
            ),
            # PACIFIC: durvalumab 10 mg/kg q2w for up to 12 months (Antonia 2017, N Engl J Med 377:1919)
            _ici(
                "durvalumab_10mgkg_q2w",
                14.0,
                "PACIFIC (Antonia 2017 N Engl J Med 377:1919), up to 12 months",
                mg_per_kg=10.0,
                max_duration_day=365.0,
            ),
            _ici("atezolizumab_1200mg_q3w", 21.0, "Tecentriq (atezolizumab) label", mg=1200.0),
            _ici("sintilimab_200mg_q3w", 21.0, _SINTILIMAB, mg=200.0),
        )
    }
)
"""Read-only registry of named checkpoint-inhibitor regimens."""


def _lookup(kind: str, name: object, registry: Mapping[str, Any]) -> Any:
    if not isinstance(name, str) or name not in registry:
        raise ScheduleError(unknown_name_message(kind, str(name), registry))
    return registry[name]


def radiation_regimen(
    name: str,
    *,
    start_day: float = 0.0,
    target_lesions: tuple[int, ...] = (0,),
    blood_dose_per_fraction_gy: float | None = None,
    mean_lung_dose_gy: float | None = None,
    prior: bool = False,
) -> RadiationCourse:
    """Build a :class:`RadiationCourse` from a named regimen.

    Parameters
    ----------
    name
        Key of :data:`RADIATION_REGIMENS`, e.g. ``"sbrt_24gy_3fx"``.
    start_day
        Day of the first fraction (day 0 = first drug dose).
    target_lesions, blood_dose_per_fraction_gy, mean_lung_dose_gy, prior
        As :class:`RadiationCourse` (``prior=True``: RT before enrolment, the patient's history).

    Returns
    -------
    RadiationCourse
        Named after the regimen, on its default calendar.

    Raises
    ------
    ScheduleError
        If ``name`` is unknown (with the closest names suggested) or a value is invalid.
    """
    spec: RadiationRegimenSpec = _lookup("radiation regimen", name, RADIATION_REGIMENS)
    return RadiationCourse(
        dose_per_fraction_gy=spec.dose_per_fraction_gy,
        n_fractions=spec.n_fractions,
        calendar=spec.calendar,
        start_day=start_day,
        target_lesions=target_lesions,
        blood_dose_per_fraction_gy=blood_dose_per_fraction_gy,
        mean_lung_dose_gy=mean_lung_dose_gy,
        name=spec.name,
        prior=prior,
    )


def drug_regimen(name: str, *, start_day: float = 0.0, max_duration_day: float | None = None) -> DrugRegimen:
    """Build a :class:`DrugRegimen` from a named schedule.

    Parameters
    ----------
    name
        Key of :data:`DRUG_REGIMENS`, e.g. ``"pembrolizumab_200mg_q3w"``.
    start_day
        Day of the first dose (0 by the time convention).
    max_duration_day
        Treatment duration in days; ``None`` uses the regimen's default (730 d, or
        365 d for the PACIFIC durvalumab schedule).

    Raises
    ------
    ScheduleError
        If ``name`` is unknown (with the closest names suggested) or a value is invalid.
    """
    spec: DrugRegimenSpec = _lookup("drug regimen", name, DRUG_REGIMENS)
    duration_day = spec.max_duration_day if max_duration_day is None else max_duration_day
    return DrugRegimen(
        drug=spec.drug,
        dose_mg=spec.dose_mg,
        dose_mg_per_kg=spec.dose_mg_per_kg,
        interval_day=spec.interval_day,
        start_day=start_day,
        max_duration_day=duration_day,
        name=spec.name,
    )


def regimen_table(alpha_beta_tumour_gy: float = 10.0, alpha_beta_lung_gy: float = 3.0) -> list[dict[str, Any]]:
    """Rows describing every named radiation regimen, for a CLI listing.

    Each row has ``name``, ``dose_per_fraction_gy``, ``n_fractions``, ``total_dose_gy``,
    ``bed{T}``, ``eqd2_{T}``, ``bed{L}``, ``eqd2_{L}``, ``calendar`` and ``source``, where
    ``T`` and ``L`` are the alpha/beta values formatted with ``:g``: with the defaults
    the keys are ``bed10``, ``eqd2_10``, ``bed3`` and ``eqd2_3``.

    Raises
    ------
    ParameterError
        If an alpha/beta value is not > 0.
    """
    for arg, value in zip(
        ("alpha_beta_tumour_gy", "alpha_beta_lung_gy"),
        (alpha_beta_tumour_gy, alpha_beta_lung_gy),
        strict=True,
    ):
        bad = isinstance(value, bool) or not isinstance(value, Real)
        if bad or not math.isfinite(value) or value <= 0.0:
            raise ParameterError(f"{arg} must be > 0, got {value!r}; give alpha/beta in Gy")
    tumour, lung = f"{alpha_beta_tumour_gy:g}", f"{alpha_beta_lung_gy:g}"
    rows = []
    for spec in RADIATION_REGIMENS.values():
        total, n = spec.total_dose_gy, spec.n_fractions
        rows.append(
            {
                "name": spec.name,
                "dose_per_fraction_gy": spec.dose_per_fraction_gy,
                "n_fractions": n,
                "total_dose_gy": total,
                f"bed{tumour}": float(bed(total, n, alpha_beta_tumour_gy)),
                f"eqd2_{tumour}": float(eqd2(total, n, alpha_beta_tumour_gy)),
                f"bed{lung}": float(bed(total, n, alpha_beta_lung_gy)),
                f"eqd2_{lung}": float(eqd2(total, n, alpha_beta_lung_gy)),
                "calendar": spec.calendar.describe(),
                "source": spec.source,
            }
        )
    return rows
