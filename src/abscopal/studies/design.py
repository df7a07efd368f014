"""Study designs: a base arm and the axes to vary (timing x fractionation x site x drug), read from TOML.

A study answers the seed review's questions (when to add RT to checkpoint therapy, how to fractionate it, where
to aim it, weighed against pneumonitis) by simulating every combination of the levels of four axes on the same
virtual patients (common random numbers):

``timing``
    Day of the first RT fraction relative to the first drug dose (negative: RT before the drug), or
    ``"at_progression"``: salvage RT for each patient who progresses, started ``salvage_delay_day`` after the scan
    that showed the progression (patients who never progress get no RT).
``fractionation``
    A named regimen (``abscopal regimens``), ``"none"`` (no RT), or a table of course fields
    (``dose_per_fraction_gy``, ``n_fractions``, ``calendar``; spaced pulses about 10 days apart are
    ``calendar = { type = "spaced_pulses", interval_day = 10 }``).
``site``
    Which lesion(s) the course treats: ``"lung_primary"``, ``"largest"``, ``"largest_metastasis"``, a RECIST site
    (``"liver"``, ...), optionally with ``n_lesions`` (1 to the model's lesion count).
``drug``
    A named drug regimen (``abscopal regimens``) or a table of ``DrugRegimen`` fields.

File format (every key is checked; unknown keys raise with the closest valid key; ``[axes]`` is required, so an
empty file is refused rather than run as a default study)::

    title = "RT timing x fractionation with pembrolizumab"
    fit = "default"              # "default" (fits/default.json), "none" (model defaults) or a calibration JSON

    [model]
    n_lesions = 3                # default: the fit's model
    version = 2                  # nsclc model version (1 or 2); default: the fit's (1 without a fit)
    # or an imported SBML model (see "Imported SBML models" below): sbml = "model.xml", roles = {...}, units = {...}

    [population]
    mix = "pembro_rt"            # a MIXES name; line_of_therapy / pdl1_tps_mix override it as in target files
    n_patients = 200
    seed = 2026

    [treatment]
    drug = "pembrolizumab_200mg_q3w"   # used when there is no drug axis
    salvage_delay_day = 7

    [assessment]                 # as in target files
    scan_interval_week = 6
    orr_visit_day = 84           # or "best"
    exclude_irradiated = false   # true: ORR and PFS of the lesions outside the field only (PEMBRO-RT's ORR)

    [uncertainty]
    n_draws = 20                 # parameter draws from the fit (0: point values only)
    seed = 7
    source = "auto"              # "covariance", "posterior" or "auto"

    [simulation]
    t_end_day = 730
    mechanisms_off = []

    [axes]
    timing = [-7, 0, 21, "at_progression"]
    fractionation = ["none", "sbrt_24gy_3fx", "conv_45gy_15fx",
                     { label = "3 x 10 Gy pulses", dose_per_fraction_gy = 10, n_fractions = 3,
                       calendar = { type = "spaced_pulses", interval_day = 10 } }]
    site = ["lung_primary", { label = "2 metastases", target = "largest_metastasis", n_lesions = 2 }]
    drug = ["pembrolizumab_200mg_q3w"]

Mean lung dose (for the pneumonitis NTCP) is a fraction of the prescribed total dose unless a level gives
``mean_lung_dose_gy``: see :func:`default_mean_lung_dose_gy`.

Imported SBML models (``[model] sbml = "model.xml"`` with a ``lesion_diameter`` or ``lesion_volume`` role;
:mod:`abscopal.sbml.table`; docs/studies.md, "Studies of an imported SBML model") run as in scenario files: the
patients are a plain population (``[population] n_patients, seed, variability``, the format of a scenario's
``[population.variability]``; no NSCLC covariates, so ``mix``, ``line_of_therapy`` and ``pdl1_tps_mix`` are
refused), the SBML file's values (``fit`` default ``"none"``), its own timed events in every cell, and scoring from
the lesion role without patients (``[assessment] lesion_sites`` and ``[assessment.rules]``, RECIST thresholds such
as ``measurable_mm``, apply only here). An SBML event cannot take a plan's doses, so the cells have no RT and no
drug regimen (``axes.fractionation`` and ``axes.drug`` default to ``"none"``; RT levels, drug regimens, the
``timing`` and ``site`` axes and ``salvage_delay_day`` are refused); a drug level is instead given as the model's
parameter values, as a scenario arm's ``[arm.parameters]``::

    [axes]
    drug = ["none", { label = "anti-PD-L1 10 nM", parameters = { mAb = 10.0 } }]
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._inputs import check_text, construct, names, read_toml, with_context
from ..endpoints.recist import RECIST_1_1, RecistRules
from ..endpoints.toxicity import LUNG_DOSE_RATIO, assumed_mean_lung_dose_gy, target_in_lung
from ..errors import AbscopalError, ModelError, ScheduleError, unknown_name_message
from ..patients import LINES, MIXES, RT_TARGET_RULES, TPS_CATEGORIES
from ..population import Variability
from ..sbml.table import ImportedModel, check_treatment, is_sbml_model, model_from_table
from ..scenario import _calendar, _values, _variability
from ..sites import SITES
from ..solver import SolverOptions
from ..treatment import DrugRegimen, RadiationCourse, drug_regimen, radiation_regimen
from ..treatment.plan import TreatmentPlan
from ..treatment.regimens import DRUG_REGIMENS, RADIATION_REGIMENS
from ..trials import CRITERIA, AssessmentSpec, PopulationSpec

if TYPE_CHECKING:
    from ..endpoints import TrialAssessment

__all__ = [
    "AXES",
    "LUNG_DOSE_RATIO",
    "STUDY_CRITERIA",
    "Cell",
    "DrugLevel",
    "FractionationLevel",
    "SiteLevel",
    "StudyDesign",
    "TimingLevel",
    "default_mean_lung_dose_gy",
    "load_study",
    "parse_study",
]

AXES = ("timing", "fractionation", "site", "drug")
"""The axes of a study grid, in the order of the result's dimensions."""


_TOP = {
    "title",
    "description",
    "fit",
    "model",
    "population",
    "treatment",
    "assessment",
    "uncertainty",
    "simulation",
    "solver",
    "axes",
}
_MODEL = {"name", "n_lesions", "growth", "version"}
_POP = {"mix", "n_patients", "seed", "line_of_therapy", "pdl1_tps_mix", "variability"}
_NSCLC_POP = ("mix", "line_of_therapy", "pdl1_tps_mix")
"""Population keys of NSCLC virtual patients (covariates): refused for an imported model."""
_TREAT = {"drug", "salvage_delay_day"}
_ASSESS = {"scan_interval_week", "orr_visit_day", "exclude_irradiated", "follow_up_month", "criteria"}
_IMPORTED_ASSESS = ("lesion_sites", "rules")
"""Assessment keys for an imported model only (a library study takes sites from the patients, RECIST 1.1 as fitted)."""
STUDY_CRITERIA = ("recist1.1", "irecist")
"""Response criteria a study can score by (``[assessment] criteria``): RECIST 1.1 (Eisenhauer 2009) or iRECIST
(Seymour 2017), whose unconfirmed progression (iUPD) must be confirmed at a later scan."""
RULE_KEYS = tuple(
    f for f in RecistRules.__dataclass_fields__ if f not in ("irecist", "require_confirmation", "irecist_window_day")
)
"""RECIST thresholds an imported model's study may set in ``[assessment.rules]`` (criteria choose the rest)."""
_UNC = {"n_draws", "seed", "source"}
_SIM = {"t_end_day", "mechanisms_off"}
_FRACTION = {
    "label",
    "regimen",
    "dose_per_fraction_gy",
    "n_fractions",
    "calendar",
    "mean_lung_dose_gy",
    "blood_dose_per_fraction_gy",
}
_SITE = {"label", "target", "n_lesions"}
_TIMING = {"label", "start_day", "at_progression"}
_DRUG = {"label", "regimen", "drug", "dose_mg", "dose_mg_per_kg", "interval_day", "max_duration_day", "n_doses"}
_DRUG_PARAMETERS = "parameters"
"""Drug-level key of an imported model: the drug as the model's parameter values."""


def _fail(where: str, msg: str) -> ScheduleError:
    return ScheduleError(f"{where}: {msg}")


def _keys(where: str, table: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(table, Mapping):
        raise _fail(where, f"must be a table, got {table!r}")
    for k in table:
        if k not in allowed:
            raise _fail(where, unknown_name_message("key", k, sorted(allowed)))
    return table


def _number(where: str, value: Any, *, low: float = -math.inf, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(where, f"must be a finite number, got {value!r}")
    if value < low or (positive and value <= 0):
        raise _fail(where, f"must be {'> 0' if positive else f'>= {low:g}'}, got {value!r}")
    return float(value)


def _label(where: str, table: Mapping[str, Any], default: str) -> str:
    """The level's ``label`` (text without control characters) or ``default``."""
    return check_text(f"{where}.label", table["label"]) if "label" in table else default


def _integer(where: str, value: Any, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(where, f"must be an integer >= {low}, got {value!r}")
    return int(value)


# ---- axis levels ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TimingLevel:
    """When RT starts: ``start_day`` after the first drug dose, or at each patient's progression."""

    label: str
    start_day: float | None = None
    at_progression: bool = False

    def describe(self) -> str:
        """Human description."""
        return "at progression (salvage)" if self.at_progression else f"first fraction on day {self.start_day:+g}"


@dataclass(frozen=True, kw_only=True)
class FractionationLevel:
    """A radiation course template (``None``: no RT) and an optional explicit mean lung dose."""

    label: str
    course: RadiationCourse | None = None
    mean_lung_dose_gy: float | None = None
    source: str = ""

    @property
    def total_dose_gy(self) -> float:
        """Prescribed total dose (0 without RT)."""
        return 0.0 if self.course is None else self.course.dose_per_fraction_gy * self.course.n_fractions


@dataclass(frozen=True, kw_only=True)
class SiteLevel:
    """Which lesion(s) to irradiate: a target rule and the number of lesions per patient."""

    label: str
    target: str | tuple[int, ...] = "lung_primary"
    n_lesions: int = 1

    @property
    def in_lung(self) -> bool:
        """True if the first target is a lung lesion (the primary or a lung site)."""
        return target_in_lung(self.target)


@dataclass(frozen=True, kw_only=True)
class DrugLevel:
    """A checkpoint-inhibitor regimen (``None``: RT alone); for an imported model, the drug as parameter values
    (``parameters``: the cell's arm parameters, over the fit's and the model's values)."""

    label: str
    regimen: DrugRegimen | None = None
    parameters: Mapping[str, float] = field(default_factory=dict)


def default_mean_lung_dose_gy(site: SiteLevel, fractionation: FractionationLevel) -> float:
    """Physical mean lung dose of a course: the level's ``mean_lung_dose_gy`` if given, else
    :func:`~abscopal.endpoints.toxicity.assumed_mean_lung_dose_gy` (:data:`LUNG_DOSE_RATIO` times the prescribed
    total dose for the first target, plus the ``other`` ratio for each further irradiated lesion [assumption])."""
    if fractionation.course is None:
        return 0.0
    if fractionation.mean_lung_dose_gy is not None:
        return fractionation.mean_lung_dose_gy
    return assumed_mean_lung_dose_gy(
        fractionation.total_dose_gy,
        fractionation.course.dose_per_fraction_gy,
        in_lung=site.in_lung,
        n_lesions=site.n_lesions,
    )


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One combination of axis levels (``index``: position of each level on its axis)."""

    timing: TimingLevel
    fractionation: FractionationLevel
    site: SiteLevel
    drug: DrugLevel
    index: tuple[int, int, int, int]

    @property
    def label(self) -> str:
        """``"timing | fractionation | site | drug"``."""
        return " | ".join((self.timing.label, self.fractionation.label, self.site.label, self.drug.label))

    @property
    def has_rt(self) -> bool:
        """True if this cell gives radiation."""
        return self.fractionation.course is not None

    def plan(self, target_lesions: tuple[int, ...]) -> TreatmentPlan:
        """The plan (RT on ``target_lesions``; at progression the course starts at day 0 and each patient's start
        is set per patient, :attr:`abscopal.simulate.Arm.rt_start_day`)."""
        drug, template = self.drug.regimen, self.fractionation.course
        if template is None:  # no RT (not has_rt)
            return TreatmentPlan(drug=drug, name=self.label)
        course = replace(
            template,
            target_lesions=target_lesions,
            mean_lung_dose_gy=default_mean_lung_dose_gy(self.site, self.fractionation),
        )
        plan = TreatmentPlan(radiation=(course,), drug=drug, name=self.label)
        # a level has a start_day unless it is at progression (_timing)
        start = 0.0 if self.timing.at_progression else float(self.timing.start_day)  # type: ignore[arg-type]
        return plan.with_rt_offset(start, drug_to_day0=False)  # the drug keeps its own schedule

    def canonical(self) -> dict[str, Any]:
        """What determines the cell's simulation (labels excluded; no-RT cells ignore the timing and site)."""
        rt = None
        c = self.fractionation.course
        if c is not None:  # has_rt
            rt = {
                "course": c.describe(),
                "calendar": repr(c.calendar),
                "n_fractions": c.n_fractions,
                "dose_per_fraction_gy": c.dose_per_fraction_gy,
                "blood_dose_per_fraction_gy": c.resolved_blood_dose_per_fraction_gy,
                "mean_lung_dose_gy": default_mean_lung_dose_gy(self.site, self.fractionation),
                "start_day": self.timing.start_day,
                "at_progression": self.timing.at_progression,
                "target": list(self.site.target) if isinstance(self.site.target, tuple) else self.site.target,
                "n_lesions": self.site.n_lesions,
            }
        drug = None if self.drug.regimen is None else self.drug.regimen.describe()
        params = {"parameters": dict(sorted(self.drug.parameters.items()))} if self.drug.parameters else {}
        return {"rt": rt, "drug": drug, **params}  # parameters only when set: library cells keep their hashes


# ---- the design -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class StudyDesign:
    """A parsed study: base arm, axes and run settings (see the module docstring for the file format).

    Attributes
    ----------
    title, description
        Free text for the report.
    fit
        ``"default"`` (the shipped ``fits/default.json``), ``None`` (model defaults) or a calibration file path.
    model_name, n_lesions, growth, model_version
        Library model options (``n_lesions`` / ``name`` / ``model_version`` None: the fit's; ``model_version`` is
        the ``nsclc`` option ``version``).
    population
        Patient mix and overrides (:class:`~abscopal.trials.PopulationSpec`).
    n_patients, seed
        Virtual patients (the same patients in every cell) and their seed.
    assessment
        Scans and response rules (:class:`~abscopal.trials.AssessmentSpec`).
    salvage_delay_day
        Days from the scan showing progression to the first salvage fraction.
    n_draws, draw_seed, draw_source
        Parameter draws from the fit's uncertainty (0: point values only).
    t_end_day, mechanisms_off, solver
        Simulation settings.
    axes
        ``{axis: levels}`` for every axis of :data:`AXES` (a missing axis has one level).
    source
        The file the design was read from.
    imported
        For ``[model] sbml = "model.xml"``: the imported model (:class:`~abscopal.sbml.table.ImportedModel`); None for
        a library model. :attr:`model_sbml` is its provenance.
    variability
        An imported model's between-patient variability (``[population.variability]``); empty for a library model,
        whose patients are drawn with the mix and the model's variability.
    lesion_sites, rules
        An imported model's scoring: the site of each lesion (default :class:`~abscopal.endpoints.TrialAssessment`'s)
        and RECIST thresholds over RECIST 1.1 (``[assessment.rules]``, names :data:`RULE_KEYS`).
    """

    title: str = "abscopal study"
    description: str = ""
    fit: str | None = "default"
    model_name: str | None = None
    n_lesions: int | None = None
    growth: str | None = None
    model_version: int | None = None
    population: PopulationSpec = field(default_factory=lambda: PopulationSpec(mix="pembro_rt"))
    n_patients: int = 200
    seed: int = 0
    assessment: AssessmentSpec = field(default_factory=lambda: AssessmentSpec(orr_visit_day=84.0))
    salvage_delay_day: float = 7.0
    n_draws: int = 0
    draw_seed: int = 0
    draw_source: str = "auto"
    t_end_day: float = 730.0
    mechanisms_off: tuple[str, ...] = ()
    solver: SolverOptions = field(default_factory=SolverOptions)
    axes: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    source: str = ""
    imported: ImportedModel | None = None
    variability: Mapping[str, Variability] = field(default_factory=dict)
    lesion_sites: tuple[str, ...] | None = None
    rules: Mapping[str, Any] = field(default_factory=dict)

    @property
    def model_sbml(self) -> Mapping[str, Any]:
        """The imported model's file path, sha256, roles and units
        (:meth:`abscopal.sbml.table.ImportedModel.provenance`); empty for a library model."""
        return {} if self.imported is None else self.imported.provenance()

    def trial_assessment(self, start_day: float, end_day: float) -> TrialAssessment:
        """The assessment of every cell: :meth:`abscopal.trials.AssessmentSpec.to_assessment` with an imported
        model's :attr:`lesion_sites` and :attr:`rules`."""
        a = self.assessment.to_assessment(start_day, end_day)
        if self.rules:
            a = replace(a, rules=replace(a.rules, **self.rules))
        return a if self.lesion_sites is None else replace(a, lesion_sites=self.lesion_sites)

    def _imported_canonical(self) -> dict[str, Any]:
        """What an imported model adds to :meth:`canonical` and :meth:`describe` (nothing for a library model)."""
        if self.imported is None:
            return {}
        return {
            "model_sbml": dict(self.model_sbml),
            "variability": {k: [type(v).__name__, v.omega] for k, v in self.variability.items()},
            "lesion_sites": None if self.lesion_sites is None else list(self.lesion_sites),
            "rules": dict(sorted(self.rules.items())),
        }

    def __post_init__(self) -> None:
        axes = dict(self.axes)
        unknown = [a for a in axes if a not in AXES]
        if unknown:
            raise ScheduleError("axes: " + unknown_name_message("axis", unknown[0], AXES))
        defaults = {
            "timing": (TimingLevel(label="day -7", start_day=-7.0),),
            "fractionation": (_fractionation("axes.fractionation[0]", "sbrt_24gy_3fx"),),
            "site": (SiteLevel(label="lung_primary"),),
            "drug": (DrugLevel(label="pembrolizumab_200mg_q3w", regimen=drug_regimen("pembrolizumab_200mg_q3w")),),
        }
        for a in AXES:
            levels = tuple(axes.get(a, defaults[a]))
            if not levels:
                raise ScheduleError(f"axes.{a} is empty; give at least one level or leave the axis out")
            labels = [lv.label for lv in levels]
            dup = sorted({x for x in labels if labels.count(x) > 1})
            if dup:
                raise ScheduleError(f"axes.{a}: labels repeat {dup}; give each level a unique label")
            axes[a] = levels
        object.__setattr__(self, "axes", axes)
        if self.n_lesions is not None:
            for s in axes["site"]:
                if s.n_lesions > self.n_lesions:
                    raise ScheduleError(
                        f"axes.site {s.label!r}: n_lesions = {s.n_lesions} but the model has "
                        f"{self.n_lesions} lesions; raise model.n_lesions or irradiate fewer"
                    )
        if self.draw_source not in ("auto", "covariance", "posterior"):
            raise ScheduleError(
                f"uncertainty.source = {self.draw_source!r}: "
                + unknown_name_message("source", self.draw_source, ("auto", "covariance", "posterior"))
            )

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of levels per axis, in :data:`AXES` order."""
        return tuple(len(self.axes[a]) for a in AXES)

    def cells(self) -> list[Cell]:
        """Every combination of levels, in C order of :data:`AXES`."""
        levels = [self.axes[a] for a in AXES]
        ranges = [range(len(lv)) for lv in levels]
        return [
            Cell(
                timing=levels[0][i],
                fractionation=levels[1][j],
                site=levels[2][k],
                drug=levels[3][m],
                index=(i, j, k, m),
            )
            for i, j, k, m in itertools.product(*ranges)
        ]

    def canonical(self) -> dict[str, Any]:
        """Everything except labels and text, for hashing."""
        return {
            "fit": self.fit,
            # the version only when set, so that the hashes of designs written before it existed stay
            "model": [self.model_name, self.n_lesions, self.growth]
            + ([] if self.model_version is None else [self.model_version]),
            "population": [
                self.population.mix,
                _plain(self.population.line_of_therapy),
                _plain(self.population.pdl1_tps_mix),
                self.n_patients,
                self.seed,
            ],
            "assessment": [
                self.assessment.scan_interval_week,
                self.assessment.orr_visit_day,
                self.assessment.exclude_irradiated,
                self.assessment.criteria,
            ],
            "salvage_delay_day": self.salvage_delay_day,
            "draws": [self.n_draws, self.draw_seed, self.draw_source],
            "t_end_day": self.t_end_day,
            "mechanisms_off": list(self.mechanisms_off),
            "solver": self.solver.as_dict(),
            "cells": [c.canonical() for c in self.cells()],
            # only when set, so that the hashes of library-model designs stay
            **self._imported_canonical(),
        }

    def content_hash(self) -> str:
        """sha256 of :meth:`canonical`."""
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True, default=str).encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """Plain description for provenance and reports."""
        return {
            "title": self.title,
            "description": self.description,
            "fit": self.fit,
            "source": self.source,
            "n_patients": self.n_patients,
            "seed": self.seed,
            "mix": self.population.mix,
            "n_draws": self.n_draws,
            "draw_seed": self.draw_seed,
            "salvage_delay_day": self.salvage_delay_day,
            "t_end_day": self.t_end_day,
            "mechanisms_off": list(self.mechanisms_off),
            "assessment": {
                "criteria": self.assessment.criteria,
                "scan_interval_week": self.assessment.scan_interval_week or 6.0,
                "orr_visit_day": self.assessment.orr_visit_day,
                "exclude_irradiated": self.assessment.exclude_irradiated,
                # an imported model's scoring, where the report prints the assessment settings
                **{k: v for k, v in self._imported_canonical().items() if k in ("lesion_sites", "rules")},
            },
            "axes": {a: [lv.label for lv in self.axes[a]] for a in AXES},
            **self._imported_canonical(),
        }


def _plain(x: Any) -> Any:
    return None if x is None else dict(x)


# ---- parsing ----------------------------------------------------------------------------------------------------
def _timing(where: str, spec: Any) -> TimingLevel:
    if spec == "at_progression":
        return TimingLevel(label="at progression", at_progression=True)
    if spec == "concurrent":
        return TimingLevel(label="concurrent (day 0)", start_day=0.0)
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        d = _number(where, spec)
        return TimingLevel(label=f"day {d:+g}", start_day=d)
    if isinstance(spec, Mapping):
        t = _keys(where, spec, _TIMING)
        if t.get("at_progression", False):
            if "start_day" in t:
                raise _fail(where, "give start_day or at_progression = true, not both")
            return TimingLevel(label=_label(where, t, "at progression"), at_progression=True)
        if "start_day" not in t:
            raise _fail(where, "needs start_day (days from the first drug dose) or at_progression = true")
        d = _number(f"{where}.start_day", t["start_day"])
        return TimingLevel(label=_label(where, t, f"day {d:+g}"), start_day=d)
    raise _fail(where, f"must be a day (number), 'concurrent', 'at_progression' or a table, got {spec!r}")


def _fractionation(where: str, spec: Any) -> FractionationLevel:
    if spec in ("none", "no_rt"):
        return FractionationLevel(label="no RT")
    if isinstance(spec, str):
        if spec not in RADIATION_REGIMENS:
            raise _fail(where, unknown_name_message("radiation regimen", spec, RADIATION_REGIMENS) + " or 'none'")
        return FractionationLevel(
            label=spec, course=radiation_regimen(spec, start_day=0.0), source=RADIATION_REGIMENS[spec].source
        )
    if not isinstance(spec, Mapping):
        raise _fail(where, f"must be a regimen name, 'none' or a table, got {spec!r}")
    t = dict(_keys(where, spec, _FRACTION))
    label = _label(where, t, "") or None
    t.pop("label", None)
    mld = t.pop("mean_lung_dose_gy", None)
    if mld is not None:
        mld = _number(f"{where}.mean_lung_dose_gy", mld, low=0.0)
    if "calendar" in t:
        t["calendar"] = _calendar(where, t["calendar"])
    if "regimen" in t:
        name = t.pop("regimen")
        if name not in RADIATION_REGIMENS:
            raise _fail(where, unknown_name_message("radiation regimen", str(name), RADIATION_REGIMENS))
        course = construct(where, lambda **kw: radiation_regimen(name, start_day=0.0, **kw), t)
        return FractionationLevel(
            label=str(label or name), course=course, mean_lung_dose_gy=mld, source=RADIATION_REGIMENS[name].source
        )
    for k in ("dose_per_fraction_gy", "n_fractions"):
        if k not in t:
            raise _fail(where, f"needs {k} (or a named regimen)")
    course = construct(where, lambda **kw: RadiationCourse(start_day=0.0, **kw), t)
    default_label = f"{course.dose_per_fraction_gy * course.n_fractions:g} Gy/{course.n_fractions}"
    return FractionationLevel(
        label=str(label or default_label), course=course, mean_lung_dose_gy=mld, source="user-defined"
    )


def _site(where: str, spec: Any) -> SiteLevel:
    known = (*RT_TARGET_RULES, *SITES)
    if isinstance(spec, str):
        if spec not in known:
            raise _fail(where, unknown_name_message("RT target", spec, known))
        return SiteLevel(label=spec, target=spec)
    if not isinstance(spec, Mapping):
        raise _fail(where, f"must be a target rule, a site or a table, got {spec!r}")
    t = _keys(where, spec, _SITE)
    target = t.get("target", "lung_primary")
    if isinstance(target, list):
        if not target or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in target):
            raise _fail(f"{where}.target", f"must be a rule, a site or a list of lesion indices, got {target!r}")
        target = tuple(target)
    elif target not in known:
        raise _fail(f"{where}.target", unknown_name_message("RT target", str(target), known))
    n = _integer(f"{where}.n_lesions", t.get("n_lesions", 1), low=1)
    label = _label(where, t, str(target) if n == 1 else f"{target} x{n}")
    return SiteLevel(label=label, target=target, n_lesions=n)


def _drug(where: str, spec: Any) -> DrugLevel:
    if spec == "none":
        return DrugLevel(label="no drug")
    if isinstance(spec, str):
        if spec not in DRUG_REGIMENS:
            raise _fail(where, unknown_name_message("drug regimen", spec, DRUG_REGIMENS) + " or 'none'")
        return DrugLevel(label=spec, regimen=drug_regimen(spec))
    if not isinstance(spec, Mapping):
        raise _fail(where, f"must be a drug regimen name or a table, got {spec!r}")
    t = dict(_keys(where, spec, _DRUG | {_DRUG_PARAMETERS}))
    label = _label(where, t, "") or None
    t.pop("label", None)
    params = t.pop(_DRUG_PARAMETERS, None)
    if params is not None:  # an imported model's drug as parameter values (names checked against the model later)
        if not isinstance(params, Mapping) or not params:
            raise _fail(
                f"{where}.parameters", f"must be a table of parameter values, e.g. {{ mAb = 10.0 }}, got {params!r}"
            )
        params = {k: _number(f"{where}.parameters.{k}", v) for k, v in params.items()}
        if not t:  # no regimen: the parameters are the drug
            default = ", ".join(f"{k} = {v:g}" for k, v in params.items())
            return DrugLevel(label=str(label or default), parameters=params)
    extra = {"parameters": params} if params else {}
    if "regimen" in t:
        name = t.pop("regimen")
        if name not in DRUG_REGIMENS:
            raise _fail(where, unknown_name_message("drug regimen", str(name), DRUG_REGIMENS))
        reg = construct(where, lambda **kw: drug_regimen(name, **kw), t)
        return DrugLevel(label=str(label or name), regimen=reg, **extra)
    reg = construct(where, DrugRegimen, t, ("drug", "interval_day"))
    return DrugLevel(label=str(label or reg.schedule), regimen=reg, **extra)


def _frequencies(where: str, value: Any, known: Sequence[str]) -> Mapping[str, float] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = {value: 1.0}
    t = _keys(where, value, set(known))
    probs = {k: _number(f"{where}.{k}", v, low=0.0) for k, v in t.items()}
    if abs(sum(probs.values()) - 1.0) > 1e-9:
        raise _fail(where, f"probabilities must sum to 1, got {sum(probs.values())!r}")
    return probs


def parse_study(
    data: Mapping[str, Any],
    *,
    source: str = "",
    n_patients: int | None = None,
    seed: int | None = None,
    n_draws: int | None = None,
) -> StudyDesign:
    """Build a :class:`StudyDesign` from a parsed TOML mapping (optional overrides of size, seed and draws).

    Raises
    ------
    ScheduleError
        Naming the table and key of the first invalid entry, before any simulation.
    """
    _keys("study", data, _TOP)
    kw: dict[str, Any] = {"source": source}
    for key in ("title", "description"):
        if key in data:
            kw[key] = check_text(key, data[key])
    imported = None
    if is_sbml_model(data.get("model")):  # [model] sbml = "model.xml" (or model = "model.xml")
        try:
            imported = model_from_table(
                data["model"], relative_to=Path(source).parent if source else None, require_roles=True
            )
        except ModelError as exc:
            raise ScheduleError(str(exc)) from None
        kw["imported"] = imported
    fit = data.get("fit", "default" if imported is None else "none")
    if not isinstance(fit, str):
        raise _fail("fit", f"must be 'default', 'none' or a calibration file path, got {fit!r}")
    if imported is not None and fit == "default":
        raise _fail(
            "fit",
            "'default' is the shipped calibration of the library model 'nsclc', not of the imported SBML model; "
            "leave fit out or write fit = 'none' (the SBML file's values)",
        )
    kw["fit"] = None if fit == "none" else fit
    m = _keys("model", {} if imported is not None else data.get("model", {}), _MODEL)
    from ..model.library import MODELS

    if "name" in m and m["name"] not in MODELS:
        raise _fail("model.name", unknown_name_message("model", str(m["name"]), MODELS))
    if "growth" in m and not isinstance(m["growth"], str):
        raise _fail("model.growth", f"must be a growth law name, got {m['growth']!r}")
    kw["model_name"] = m.get("name")
    if "n_lesions" in m:
        kw["n_lesions"] = _integer("model.n_lesions", m["n_lesions"], low=1)
    kw["growth"] = m.get("growth")
    if "version" in m:
        from ..model.library import version_options

        try:
            kw["model_version"] = version_options(m.get("name", "nsclc"), m["version"])["version"]
        except ModelError as exc:
            raise _fail("model.version", str(exc)) from None
    p = _keys("population", data.get("population", {}), _POP)
    if imported is not None:
        kw["population"] = PopulationSpec(mix=None)  # no NSCLC covariates: a plain population
        kw["variability"] = _imported_population(p, imported)
    else:
        if "variability" in p:
            raise _fail(
                "population.variability",
                "applies to an imported SBML model; the library model's patients are drawn from the population mix "
                "with the model's variability (omegas from the fit); remove the key",
            )
        mix = p.get("mix", "pembro_rt")
        if mix not in MIXES:
            raise _fail("population.mix", unknown_name_message("population mix", str(mix), MIXES))
        kw["population"] = PopulationSpec(
            mix=mix,
            line_of_therapy=_frequencies("population.line_of_therapy", p.get("line_of_therapy"), LINES),
            pdl1_tps_mix=_frequencies("population.pdl1_tps_mix", p.get("pdl1_tps_mix"), TPS_CATEGORIES),
        )
    kw["n_patients"] = _integer(
        "population.n_patients", n_patients if n_patients is not None else p.get("n_patients", 200), low=1
    )
    kw["seed"] = _integer("population.seed", seed if seed is not None else p.get("seed", 0), low=0)
    tr = _keys("treatment", data.get("treatment", {}), _TREAT)
    if "salvage_delay_day" in tr:
        if imported is not None:
            raise _fail("treatment.salvage_delay_day", _NO_RT + "; remove the key")
        kw["salvage_delay_day"] = _number("treatment.salvage_delay_day", tr["salvage_delay_day"], low=0.0)
    a = _keys("assessment", data.get("assessment", {}), _ASSESS | set(_IMPORTED_ASSESS))
    if imported is not None:
        kw |= _imported_scoring(a)
    else:
        for key in _IMPORTED_ASSESS:
            if key in a:
                raise _fail(
                    f"assessment.{key}",
                    "applies to an imported SBML model only; a library study takes each lesion's site from its "
                    "virtual patients and scores by RECIST 1.1 as the fit did; remove the key",
                )
    visit = a.get("orr_visit_day", 84.0)
    if visit != "best":
        visit = _number("assessment.orr_visit_day", visit, low=0.0)
    interval = a.get("scan_interval_week")
    criteria = a.get("criteria", "recist1.1")
    if criteria not in STUDY_CRITERIA:
        known = unknown_name_message("response criteria", str(criteria), STUDY_CRITERIA)
        extra = (
            f" ({criteria!r} can describe how a target trial scored, but a study scores its own virtual patients and "
            "the model has only RECIST 1.1 and iRECIST rules)"
            if criteria in CRITERIA
            else ""
        )
        raise _fail("assessment.criteria", known + extra)
    if not isinstance(a.get("exclude_irradiated", False), bool):
        raise _fail("assessment.exclude_irradiated", f"must be true or false, got {a['exclude_irradiated']!r}")
    kw["assessment"] = AssessmentSpec(
        criteria=criteria,
        scan_interval_week=None
        if interval is None
        else _number("assessment.scan_interval_week", interval, positive=True),
        orr_visit_day=visit,
        exclude_irradiated=bool(a.get("exclude_irradiated", False)),
        follow_up_month=None
        if "follow_up_month" not in a
        else _number("assessment.follow_up_month", a["follow_up_month"], positive=True),
    )
    u = _keys("uncertainty", data.get("uncertainty", {}), _UNC)
    kw["n_draws"] = _integer("uncertainty.n_draws", n_draws if n_draws is not None else u.get("n_draws", 0), low=0)
    kw["draw_seed"] = _integer("uncertainty.seed", u.get("seed", 0), low=0)
    if not isinstance(u.get("source", "auto"), str):
        raise _fail("uncertainty.source", f"must be 'auto', 'covariance' or 'posterior', got {u['source']!r}")
    kw["draw_source"] = u.get("source", "auto")
    s = _keys("simulation", data.get("simulation", {}), _SIM)
    if "t_end_day" in s:
        kw["t_end_day"] = _number("simulation.t_end_day", s["t_end_day"], positive=True)
    kw["mechanisms_off"] = names("simulation.mechanisms_off", s.get("mechanisms_off", []))
    solver = _keys("solver", data.get("solver", {}), set(SolverOptions.__dataclass_fields__))
    try:
        kw["solver"] = SolverOptions(**solver)
    except AbscopalError as exc:
        raise with_context(exc, "solver") from None
    if "axes" not in data:
        raise _fail(
            "axes",
            "the study has no [axes] table; give at least one axis to vary, e.g. "
            "[axes] timing = [-7, 0, 21] (the other axes default to one level each)",
        )
    ax = _keys("axes", data["axes"], set(AXES))
    if not ax:
        raise _fail("axes", f"is empty; give at least one of {', '.join(AXES)}")
    axes: dict[str, tuple[Any, ...]] = {}
    parsers = {"timing": _timing, "fractionation": _fractionation, "site": _site, "drug": _drug}
    for name, values in ax.items():
        if not isinstance(values, list):
            values = [values]
        axes[name] = tuple(parsers[name](f"axes.{name}[{i}]", v) for i, v in enumerate(values))
    if "drug" not in axes:
        default_drug = "pembrolizumab_200mg_q3w" if imported is None else "none"
        axes["drug"] = (_drug("treatment.drug", tr.get("drug", default_drug)),)
    elif "drug" in tr:
        raise _fail("treatment.drug", "the study has a drug axis; give the drugs in axes.drug only")
    given = set(ax)
    if imported is not None:  # no RT: the RT axes default to one level that says so
        axes.setdefault("fractionation", (FractionationLevel(label="no RT"),))
        axes.setdefault("timing", (TimingLevel(label="no RT", start_day=0.0),))
        axes.setdefault("site", (SiteLevel(label="no RT"),))
    _check_drug_parameters(axes["drug"], imported, "axes.drug" if "drug" in given else "treatment.drug")
    kw["axes"] = axes
    design = StudyDesign(**kw)
    if imported is not None:
        _check_imported_axes(design, imported.spec, given=given)
    return design


_NO_RT = (
    "an imported SBML model takes no RT in a study (an SBML event fires at its own time and cannot take a plan's "
    "doses), so RT timing, sites and salvage RT have nothing to act on"
)


def _imported_population(p: Mapping[str, Any], imported: ImportedModel) -> dict[str, Variability]:
    """An imported model's ``[population]``: no NSCLC covariates; ``variability`` as in scenario files."""
    for key in _NSCLC_POP:
        if key in p:
            raise _fail(
                f"population.{key}",
                "describes NSCLC virtual patients (covariates), which an imported SBML model does not take: its "
                "patients are a plain population; remove the key and give [population.variability] per parameter "
                "(e.g. S_L = { omega = 0.696 }), as in scenario files",
            )
    spec = imported.spec
    try:
        variability = _variability(spec, p.get("variability"), imported=True)
    except AbscopalError as exc:
        raise with_context(exc, "population") from None
    for name in variability:
        if name not in spec.parameter_names:
            raise _fail(
                "population.variability",
                unknown_name_message(f"parameter of model {spec.name!r}", name, spec.parameter_names),
            )
    return variability


def _imported_scoring(a: Mapping[str, Any]) -> dict[str, Any]:
    """An imported model's ``[assessment] lesion_sites`` and ``[assessment.rules]``, checked."""
    out: dict[str, Any] = {}
    if "lesion_sites" in a:
        sites = a["lesion_sites"]
        if not isinstance(sites, list) or not sites:
            raise _fail(
                "assessment.lesion_sites", f'must be a list of sites, one per lesion, e.g. ["liver"], got {sites!r}'
            )
        for s in sites:
            if s not in SITES:
                raise _fail("assessment.lesion_sites", unknown_name_message("site", str(s), SITES))
        out["lesion_sites"] = tuple(sites)
    if "rules" in a:
        rules = _keys("assessment.rules", a["rules"], set(RULE_KEYS))
        try:
            replace(RECIST_1_1, **rules)  # checks every value
        except AbscopalError as exc:
            raise with_context(exc, "assessment.rules") from None
        out["rules"] = dict(rules)
    return out


def _check_drug_parameters(levels: Sequence[DrugLevel], imported: ImportedModel | None, where: str) -> None:
    """Drug levels given as parameter values: for an imported model only, naming its parameters."""
    for i, level in enumerate(levels):
        if not level.parameters:
            continue
        at = f"{where}[{i}].parameters" if where == "axes.drug" else f"{where}.parameters"
        if imported is None:
            raise _fail(
                at,
                "a drug given as parameter values is for an imported SBML model (whose drug is a parameter); give "
                "the library model a drug regimen",
            )
        try:
            _values(at, level.parameters, imported.spec)
        except AbscopalError as exc:
            raise ScheduleError(str(exc)) from None


def _check_imported_axes(design: StudyDesign, spec: Any, given: set[str]) -> None:
    """Refuse axis levels that need RT or a drug when the imported model has no event for it, and the RT timing and
    site axes (before any work)."""
    for axis, needs in (("fractionation", "rt"), ("drug", "drug")):
        for i, level in enumerate(design.axes[axis]):
            treats = level.course is not None if axis == "fractionation" else level.regimen is not None
            if not treats:
                continue
            where, fix = f"axes.{axis}[{i}] ({level.label!r})", f'write axes.{axis} = ["none"]'
            if axis not in given:  # the drug of treatment.drug (RT has no default level here)
                where, fix = f"treatment.drug ({level.label!r})", 'write treatment.drug = "none"'
            fix += "; an imported model without these events takes no RT and no drug regimen" + (
                ", so give its drug as the model's parameter values: { label = ..., parameters = {...} }"
                if axis == "drug"
                else ""
            )
            check_treatment(spec, rt=needs == "rt", drug=needs == "drug", where=where, fix=fix)
    for axis in ("timing", "site"):
        if axis in given:
            raise ScheduleError(f"axes.{axis}: {_NO_RT}; leave axes.{axis} out (the cells differ by axes.drug)")


def load_study(path: str | Path, **overrides: Any) -> StudyDesign:
    """Read and validate a study TOML file (``overrides``: ``n_patients``, ``seed``, ``n_draws``).

    Raises
    ------
    AbscopalError
        A subclass whose message starts with the file name, then names the table/key, the value and the fix.
    """
    path = Path(path)
    data = read_toml(path, "study file", ScheduleError)
    try:
        return parse_study(data, source=str(path), **overrides)
    except AbscopalError as exc:
        raise with_context(exc, str(path)) from None
