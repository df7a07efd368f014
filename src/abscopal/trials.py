"""Trial targets: one TOML file per trial under ``fits/targets/`` (format: ``docs/targets.md``).

Files are validated completely on load (unknown keys with a suggestion, unknown regimen or mix, missing
``n_patients``, value outside its own CI, CI lower > upper, proportion outside [0, 1], unknown tag, comparison of
an unknown arm, a fitted comparison of a validate-only arm); each :class:`TargetError` names the file, the
table/key and the value. ``fit = false`` marks an arm or comparison validate-only (its patients are counted by other
fitted arms: predicted by ``abscopal validate``, left out of the calibration objective).
Weights by tag (:data:`TAG_WEIGHTS`; assumption: verified numbers count more than secondary or unverified ones): P 1.0,
S 0.5, SEED 0.25, U 0.1. Standard errors on the natural scale: proportions binomial ``sqrt(p (1-p) / n)`` (p = 0
or 1 replaced by ``(n p + 0.5) / (n + 1)``, assumption); medians and HRs ``value * SE(log)`` with
``SE(log) = (log U - log L) / 3.92`` from the 95% CI (one bound: ``|log bound - log value| / 1.96``); without a
CI ``SE(log median) = 1 / sqrt(d)`` (exponential-rate MLE, assumption) and ``SE(log HR) = 2 / sqrt(D)`` (variance
``4 / D`` at 1:1 allocation, Tierney 2007 Trials 8:16); event counts default to ``n`` (anti-conservative).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, overload

from ._frozen import FrozenMap
from ._inputs import control_character, read_toml
from .errors import TargetError, unknown_name_message
from .patients import LINES, MIXES, RT_TARGET_RULES, TPS_CATEGORIES, PatientMix
from .sites import SITES
from .treatment.regimens import DRUG_REGIMENS, RADIATION_REGIMENS, drug_regimen, radiation_regimen

if TYPE_CHECKING:
    from .endpoints.assessment import TrialAssessment
    from .treatment.drugs import DrugRegimen
    from .treatment.radiation import RadiationCourse

__all__ = [
    "CONFIDENCE_TAGS",
    "OUTCOME_KINDS",
    "TAG_WEIGHTS",
    "ArmTarget",
    "AssessmentSpec",
    "ComparisonTarget",
    "DrugSpec",
    "Outcome",
    "PopulationSpec",
    "RadiationSpec",
    "TargetError",
    "TrialTargets",
    "load_all",
    "load_targets",
    "parse_targets",
    "target_files",
]

TAG_WEIGHTS: Mapping[str, float] = FrozenMap({"P": 1.0, "S": 0.5, "SEED": 0.25, "U": 0.1})
CONFIDENCE_TAGS = tuple(TAG_WEIGHTS)
_Z95 = 1.959963984540054
_PROPORTIONS = (
    "orr",
    "dcr",
    "pfs_6mo",
    "pfs_12mo",
    "os_6mo",
    "os_12mo",
    "os_24mo",
    "pneumonitis_any_grade",
    "pneumonitis_grade1",
    "pneumonitis_grade2",
    "pneumonitis_grade3",
    "pneumonitis_grade2plus",
    "pneumonitis_grade3plus",
    "pulmonary_toxicity_any_grade",
    "irae_any_grade",
    "irae_grade2plus",
    "esophagitis_grade2plus",
    "dermatitis_grade2plus",
)
OUTCOME_KINDS: Mapping[str, str] = FrozenMap(
    {
        **dict.fromkeys(_PROPORTIONS, "proportion"),
        "median_pfs_month": "median",
        "median_os_month": "median",
        "hr_pfs": "hr",
        "hr_os": "hr",
    }
)
"""Outcome name -> kind (``proportion``: fraction in [0, 1]; ``median``: months > 0; ``hr``: ratio > 0)."""
_TOXICITY_PREFIXES = ("pneumonitis", "pulmonary", "irae", "esophagitis", "dermatitis")
_PER_PATIENT = frozenset(k for k in OUTCOME_KINDS if not k.startswith(_TOXICITY_PREFIXES))
_ENDPOINTS, _CRITERIA = ("pfs", "os"), ("recist1.1", "irecist", "irrc", "ctcae", "not_reported")
CRITERIA = _CRITERIA
"""Response criteria a target arm or a study assessment may name."""

_TOP = {"id", "title", "citation", "doi", "url", "confidence", "design", "seed_errors", "arm", "comparison"}
_ARM = {
    "name",
    "n_patients",
    "n_confidence",
    "drug",
    "radiation",
    "population",
    "assessment",
    "outcome",
    "notes",
    "citation",
    "doi",
    "url",
    "fit",
}
_DRUG = {"regimen", "start_day", "max_duration_day", "representative", "notes"}
_RT = {"regimen", "start_day", "target", "mean_lung_dose_gy", "representative", "notes", "prior"}
_POP = {"mix", "line_of_therapy", "pdl1_tps_mix", "notes"}
_ASSESS = {
    "criteria",
    "scan_interval_week",
    "orr_visit_day",
    "exclude_irradiated",
    "confirm_response",
    "follow_up_month",
    "notes",
}
_OUT = {"name", "value", "ci_lower", "ci_upper", "n", "n_events", "definition", "confidence", "source"}
_CMP = {
    "name",
    "reference",
    "arm",
    "endpoint",
    "hr",
    "ci_lower",
    "ci_upper",
    "p",
    "n",
    "n_events",
    "adjusted",
    "definition",
    "confidence",
    "source",
    "fit",
}


_FIT_FIX = (
    "write fit = false for a validate-only target (predicted and reported by 'abscopal validate', left out of the "
    "calibration objective), or leave it out (fitted)"
)


def _log_se(value: float, lower: float | None, upper: float | None, events: int, hr: bool) -> float:
    if lower is not None and upper is not None and lower > 0:
        return (math.log(upper) - math.log(lower)) / (2 * _Z95)
    if upper is not None and upper > value:
        return (math.log(upper) - math.log(value)) / _Z95
    if lower is not None and 0 < lower < value:
        return (math.log(value) - math.log(lower)) / _Z95
    return (2.0 if hr else 1.0) / math.sqrt(events)


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """One reported number of an arm. ``value`` is a fraction for proportions (0.18, not 18), months for medians.

    ``n``: patients (or courses) the value rests on (default: the arm's ``n_patients``); ``n_events``: events
    behind a median (optional, for the no-CI SE); ``confidence``: P, S, SEED or U.
    """

    name: str
    value: float
    ci_lower: float | None = None
    ci_upper: float | None = None
    n: int
    n_events: int | None = None
    definition: str = ""
    confidence: str
    source: str = ""

    kind = property(lambda self: OUTCOME_KINDS[self.name], doc="``proportion``, ``median`` or ``hr``.")
    weight = property(lambda self: TAG_WEIGHTS[self.confidence], doc="Fit weight of the tag (:data:`TAG_WEIGHTS`).")

    def log_standard_error(self) -> float:
        """SE of ``log(value)`` for medians and hazard ratios (module docstring)."""
        if self.kind == "proportion":
            raise TargetError(f"outcome {self.name!r} is a proportion; use standard_error()")
        return _log_se(self.value, self.ci_lower, self.ci_upper, self.n_events or self.n, self.kind == "hr")

    def standard_error(self) -> float:
        """SE on the natural scale: binomial for proportions, ``value * SE(log)`` otherwise."""
        if self.kind == "proportion":
            p = self.value
            if p <= 0.0 or p >= 1.0:
                p = (self.n * p + 0.5) / (self.n + 1)
            return math.sqrt(p * (1.0 - p) / self.n)
        return self.value * self.log_standard_error()


@dataclass(frozen=True, kw_only=True)
class ComparisonTarget:
    """A hazard ratio of ``arm`` versus ``reference`` (both arm names of the same file). ``fit``: False for a
    validate-only comparison (predicted and reported, never in the calibration objective; see :class:`ArmTarget`)."""

    name: str
    reference: str
    arm: str
    endpoint: str
    hr: float
    ci_lower: float | None = None
    ci_upper: float | None = None
    p: float | None = None
    n: int
    n_events: int | None = None
    adjusted: bool = False
    definition: str = ""
    confidence: str
    source: str = ""
    fit: bool = True

    weight = property(lambda self: TAG_WEIGHTS[self.confidence], doc="Fit weight of the tag (:data:`TAG_WEIGHTS`).")

    def log_standard_error(self) -> float:
        """SE of ``log(hr)`` from the CI, else ``2 / sqrt(events)`` (events default: ``n``)."""
        return _log_se(self.hr, self.ci_lower, self.ci_upper, self.n_events or self.n, True)

    def standard_error(self) -> float:
        """SE of the HR on the natural scale (delta method): ``hr * SE(log hr)``."""
        return self.hr * self.log_standard_error()


@dataclass(frozen=True, kw_only=True)
class DrugSpec:
    """Checkpoint-inhibitor regimen of an arm (key of ``DRUG_REGIMENS``); ``representative``: a stand-in for a
    heterogeneous or unregistered schedule."""

    regimen: str
    start_day: float = 0.0
    max_duration_day: float | None = None
    representative: bool = False
    notes: str = ""

    def build(self) -> DrugRegimen:
        """The :class:`~abscopal.treatment.DrugRegimen`."""
        return drug_regimen(self.regimen, start_day=self.start_day, max_duration_day=self.max_duration_day)


@dataclass(frozen=True, kw_only=True)
class RadiationSpec:
    """One RT course: a ``RADIATION_REGIMENS`` key, first-fraction day (day 0 = first drug dose), target rule
    (``RT_TARGET_RULES``, a site, or lesion indices) and optional mean lung dose. ``prior``: the course was given
    before enrolment (the patients' history, not protocol treatment; docs/design.md, "Time zero")."""

    regimen: str
    start_day: float
    target: str | tuple[int, ...] = "lung_primary"
    mean_lung_dose_gy: float | None = None
    representative: bool = False
    notes: str = ""
    prior: bool = False

    def build(self, target_lesions: tuple[int, ...] = (0,)) -> RadiationCourse:
        """The :class:`~abscopal.treatment.RadiationCourse` on ``target_lesions`` (resolve ``target`` with
        :func:`abscopal.patients.irradiated_lesions` per patient)."""
        return radiation_regimen(
            self.regimen,
            start_day=self.start_day,
            target_lesions=target_lesions,
            mean_lung_dose_gy=self.mean_lung_dose_gy,
            prior=self.prior,
        )


@dataclass(frozen=True, kw_only=True)
class PopulationSpec:
    """A ``MIXES`` key (None for toxicity-only cohorts) with optional line-of-therapy / PD-L1 overrides."""

    mix: str | None = None
    line_of_therapy: Mapping[str, float] | None = None
    pdl1_tps_mix: Mapping[str, float] | None = None
    notes: str = ""

    def patient_mix(self) -> PatientMix:
        """The :class:`~abscopal.patients.PatientMix` with the overrides applied."""
        if self.mix is None:
            raise TargetError("this population names no mix (toxicity-only cohort); set population.mix")
        over: dict[str, Any] = {
            k: dict(v) for k in ("line_of_therapy", "pdl1_tps_mix") if (v := getattr(self, k)) is not None
        }
        return replace(MIXES[self.mix], **over) if over else MIXES[self.mix]


@dataclass(frozen=True, kw_only=True)
class AssessmentSpec:
    """How the arm was scored: criteria, scan interval, ORR visit day or ``"best"``, lesions counted, and whether a
    CR/PR counts only once confirmed (``confirm_response``: a later scan >= 28 d after it still CR/PR, RECIST 1.1;
    only with ``orr_visit_day = "best"``)."""

    criteria: str = "recist1.1"
    scan_interval_week: float | None = None
    orr_visit_day: float | str = "best"
    exclude_irradiated: bool = False
    confirm_response: bool = False
    follow_up_month: float | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.criteria not in CRITERIA:
            raise TargetError(
                "assessment criteria: " + unknown_name_message("response criteria", str(self.criteria), CRITERIA)
            )
        visit = self.orr_visit_day
        if visit != "best" and (
            isinstance(visit, bool) or not isinstance(visit, int | float) or not math.isfinite(visit) or visit < 0
        ):
            raise TargetError(f"assessment orr_visit_day must be 'best' or a day >= 0, got {visit!r}")
        if self.confirm_response and visit != "best":
            raise TargetError(
                f"assessment confirm_response = true needs orr_visit_day = 'best' (confirmation applies to the best "
                f"overall response), got orr_visit_day = {visit!r}; drop confirm_response or score the best response"
            )

    def to_assessment(self, start_day: float = 0.0, end_day: float = 730.0) -> TrialAssessment:
        """An :class:`abscopal.endpoints.TrialAssessment` on :func:`trial_scans` (interval default 6 weeks,
        9 weeks after week 52) with ``require_confirmation = confirm_response``: iRECIST rules (Seymour 2017) when
        ``criteria = "irecist"``, RECIST 1.1 otherwise. The model has no bidimensional (irRC, WHO) measurements and
        no toxicity-based response, so ``"irrc"``, ``"ctcae"`` and ``"not_reported"`` record how the trial scored
        and are scored by RECIST 1.1, the closest rules it has. ``follow_up_month`` is a reported median, so it is
        not used for censoring."""
        from .endpoints import TrialAssessment, trial_scans
        from .endpoints.recist import IRECIST, RECIST_1_1

        interval = self.scan_interval_week or 6.0
        scans = trial_scans(start_day, interval_week=interval, later_interval_week=max(interval, 9.0), end_day=end_day)
        visit = None if self.orr_visit_day == "best" else float(self.orr_visit_day)
        rules = IRECIST if self.criteria == "irecist" else RECIST_1_1
        rules = replace(rules, require_confirmation=True) if self.confirm_response else rules
        return TrialAssessment(
            scans=scans, rules=rules, orr_visit_day=visit, exclude_irradiated=self.exclude_irradiated
        )


@dataclass(frozen=True, kw_only=True)
class ArmTarget:
    """One arm: size, treatment, population, assessment and outcomes (``n_confidence``: tag of ``n_patients``).

    ``fit``: False for a validate-only arm, e.g. one whose patients another fitted arm already counts (MDACC's
    overall arms pool its by-schema cohorts): ``abscopal validate`` and cross-validation predict and report it, the
    calibration objective leaves it out (:func:`abscopal.calibrate.objective.target_keys`)."""

    name: str
    n_patients: int
    n_confidence: str
    drug: DrugSpec | None = None
    radiation: tuple[RadiationSpec, ...] = ()
    population: PopulationSpec = PopulationSpec()
    assessment: AssessmentSpec = AssessmentSpec()
    outcomes: tuple[Outcome, ...] = ()
    notes: str = ""
    citation: str = ""
    doi: str = ""
    url: str = ""
    fit: bool = True

    def outcome(self, name: str) -> Outcome:
        """The outcome called ``name``."""
        return _named(self.outcomes, name, f"arm {self.name!r}", "outcome")


@dataclass(frozen=True, kw_only=True)
class TrialTargets:
    """The content of one target file (``path`` is not part of the content or its hash)."""

    id: str
    title: str
    citation: str
    doi: str = ""
    url: str = ""
    confidence: str
    design: str = ""
    seed_errors: tuple[str, ...] = ()
    arms: tuple[ArmTarget, ...]
    comparisons: tuple[ComparisonTarget, ...] = ()
    path: str = ""

    def arm(self, name: str) -> ArmTarget:
        """The arm called ``name``."""
        return _named(self.arms, name, self.id, "arm")

    def canonical(self) -> dict[str, Any]:
        """Plain, JSON-ready content (sorted mappings, no path). Keys added after the first fits appear only when
        they differ from their default (a course's ``prior`` and an assessment's ``confirm_response`` when true, an
        arm's or comparison's ``fit`` when false), so a file written before they existed keeps its hash (and the
        fits made from it stay valid)."""
        out = _plain(self)
        out.pop("path")
        for arm in out["arms"]:
            for course in arm["radiation"]:
                if not course["prior"]:
                    del course["prior"]
            if not arm["assessment"]["confirm_response"]:
                del arm["assessment"]["confirm_response"]
            if arm["fit"]:
                del arm["fit"]
        for comparison in out["comparisons"]:
            if comparison["fit"]:
                del comparison["fit"]
        return out

    def content_hash(self) -> str:
        """sha256 of the canonical JSON content; independent of comments, key order, file path."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def _named(items: tuple[_N, ...], name: str, where: str, kind: str) -> _N:
    for item in items:
        if item.name == name:
            return item
    raise TargetError(f"{where}: " + unknown_name_message(kind, name, [i.name for i in items]))


def _plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in sorted(obj.items())}
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    return obj


class _Ctx:  # error context (file and table) with validating getters
    def __init__(self, path: str, where: str = "") -> None:
        self.path, self.where = path, where

    def sub(self, where: str) -> _Ctx:
        return _Ctx(self.path, f"{self.where}.{where}" if self.where else where)

    def fail(self, msg: str) -> TargetError:
        return TargetError(f"{self.path}: {self.where or '<top level>'}: {msg}")

    def keys(self, table: Any, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(table, Mapping):
            raise self.fail(f"must be a table, got {table!r}")
        for key in table:
            if key not in allowed:
                raise self.fail(unknown_name_message("key", key, allowed))
        return table

    def require(self, t: Mapping[str, Any], key: str) -> Any:
        if key not in t:
            raise self.fail(f"missing required key {key!r}")
        return t[key]

    def text(self, t: Mapping[str, Any], key: str, default: str | None = None) -> str:
        v = t.get(key, default) if default is not None else self.require(t, key)
        if not isinstance(v, str) or (default is None and not v.strip()):
            raise self.fail(f"{key} must be a non-empty string, got {v!r}")
        if (bad := control_character(v)) is not None:
            raise self.fail(f"{key} contains the control character {bad!r}; remove it")
        return v

    @overload
    def number(
        self,
        t: Mapping[str, Any],
        key: str,
        *,
        low: float = ...,
        high: float = ...,
        required: Literal[True],
        positive: bool = ...,
    ) -> float: ...
    @overload
    def number(
        self,
        t: Mapping[str, Any],
        key: str,
        *,
        low: float = ...,
        high: float = ...,
        required: bool = ...,
        positive: bool = ...,
    ) -> float | None: ...
    def number(
        self,
        t: Mapping[str, Any],
        key: str,
        *,
        low: float = -math.inf,
        high: float = math.inf,
        required: bool = False,
        positive: bool = False,
    ) -> float | None:
        if key not in t and not required:
            return None
        v = self.require(t, key)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise self.fail(f"{key} must be a finite number, got {v!r}")
        if v < low or v > high or (positive and v <= 0):
            raise self.fail(f"{key} = {v!r} must be {'> 0' if positive else f'in [{low:g}, {high:g}]'}")
        return float(v)

    @overload
    def count(self, t: Mapping[str, Any], key: str, *, required: Literal[True]) -> int: ...
    @overload
    def count(self, t: Mapping[str, Any], key: str, *, required: bool = ...) -> int | None: ...
    def count(self, t: Mapping[str, Any], key: str, *, required: bool = False) -> int | None:
        v = self.require(t, key) if required else t.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise self.fail(f"{key} must be an integer >= 1, got {v!r}")
        return v

    def flag(self, t: Mapping[str, Any], key: str, fix: str = "", default: bool = False) -> bool:
        if not isinstance(v := t.get(key, default), bool):
            raise self.fail(f"{key} must be true or false, got {v!r}" + (f"; {fix}" if fix else ""))
        return v

    def tag(self, t: Mapping[str, Any], key: str, default: str | None = None) -> str:
        v = t.get(key, default) if default is not None else self.require(t, key)
        return self.choice(v, key, "confidence tag", CONFIDENCE_TAGS)

    def choice(self, value: Any, key: str, kind: str, known: Iterable[str]) -> str:
        if value not in (known := tuple(known)):
            raise self.fail(f"{key} = {value!r}: " + unknown_name_message(kind, str(value), known))
        return value

    def tables(self, t: Mapping[str, Any], key: str) -> list[Any]:
        if not isinstance(v := t.get(key, []), list):
            raise self.fail(f"{key} must be an array of tables ([[{key}]]), got {v!r}")
        return v


def _ci(c: _Ctx, t: Mapping[str, Any], value: float, low: float, high: float) -> tuple[float | None, float | None]:
    lo, hi = (c.number(t, k, low=low, high=high) for k in ("ci_lower", "ci_upper"))
    if lo is not None and hi is not None and lo > hi:
        raise c.fail(f"ci_lower = {lo!r} > ci_upper = {hi!r}; swap them")
    if lo is not None and hi is not None and lo == hi:
        raise c.fail(
            f"ci_lower = ci_upper = {lo!r}: a 95% CI of zero width gives a zero standard error; give the "
            "reported interval or leave both bounds out"
        )
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise c.fail(f"value {value!r} is outside its own 95% CI [{lo}, {hi}]")
    return lo, hi


def _outcome(c: _Ctx, t: Mapping[str, Any], arm_n: int, default_tag: str) -> Outcome:
    c.keys(t, _OUT)
    name = c.choice(c.require(t, "name"), "name", "outcome", OUTCOME_KINDS)
    c = _Ctx(c.path, f"{c.where}[{name!r}]")
    kind = OUTCOME_KINDS[name]
    high = 1.0 if kind == "proportion" else math.inf
    value = c.number(t, "value", low=0.0, high=high, required=True, positive=kind != "proportion")
    lo, hi = _ci(c, t, value, 0.0, high)
    # toxicity may be counted per course or lesion (more courses than patients), efficacy per patient
    n, n_events = _sizes(c, t, arm_n if name in _PER_PATIENT else None, "the arm's n_patients", arm_n)
    return Outcome(
        name=name,
        value=value,
        ci_lower=lo,
        ci_upper=hi,
        n=n,
        n_events=n_events,
        definition=c.text(t, "definition", ""),
        confidence=c.tag(t, "confidence", default_tag),
        source=c.text(t, "source", ""),
    )


def _sizes(c: _Ctx, t: Mapping[str, Any], total: int | None, what: str, default: int) -> tuple[int, int | None]:
    """``n`` (default ``default``, at most ``total`` unless None) and ``n_events`` (at most ``n``)."""
    n = c.count(t, "n") or default
    if total is not None and n > total:
        raise c.fail(f"n = {n} is larger than {what} ({total}); give the number of patients the value rests on")
    n_events = c.count(t, "n_events")
    if n_events is not None and n_events > n:
        raise c.fail(f"n_events = {n_events} is larger than n = {n}; events cannot outnumber patients")
    return n, n_events


def _frequencies(c: _Ctx, value: Any, key: str, known: tuple[str, ...]) -> FrozenMap | None:
    if value is None or isinstance(value, str):  # a level name means that level for everyone
        return None if value is None else FrozenMap({c.choice(value, key, "level", known): 1.0})
    c.sub(key).keys(value, set(known))
    out = {k: c.sub(key).number(value, k, low=0.0, high=1.0, required=True) for k in known if k in value}
    if abs(sum(out.values()) - 1.0) > 1e-9:
        raise c.fail(f"{key} = {dict(value)!r} must sum to 1")
    return FrozenMap(out)


def _arm(c: _Ctx, t: Mapping[str, Any], default_tag: str) -> ArmTarget:
    c.keys(t, _ARM)
    name = c.text(t, "name")
    c = _Ctx(c.path, f"{c.where}[{name!r}]")
    n = c.count(t, "n_patients", required=True)
    drug = None
    if "drug" in t:
        d = {"regimen": t["drug"]} if isinstance(t["drug"], str) else t["drug"]
        (dc := c.sub("drug")).keys(d, _DRUG)
        drug = DrugSpec(
            regimen=dc.choice(dc.require(d, "regimen"), "regimen", "drug regimen", DRUG_REGIMENS),
            start_day=dc.number(d, "start_day") or 0.0,
            max_duration_day=dc.number(d, "max_duration_day", positive=True),
            representative=dc.flag(d, "representative"),
            notes=dc.text(d, "notes", ""),
        )
    courses = []
    for k, r in enumerate(c.tables(t, "radiation")):
        (rc := c.sub(f"radiation[{k}]")).keys(r, _RT)
        raw_target = r.get("target", "lung_primary")
        target: str | tuple[int, ...]
        if isinstance(raw_target, list):
            if not raw_target or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in raw_target):
                raise rc.fail(f"target must be a rule name or a list of lesion indices >= 0, got {raw_target!r}")
            target = tuple(raw_target)
        else:
            target = rc.choice(raw_target, "target", "RT target rule or site", (*RT_TARGET_RULES, *SITES))
        course = RadiationSpec(
            regimen=rc.choice(rc.require(r, "regimen"), "regimen", "radiation regimen", RADIATION_REGIMENS),
            start_day=rc.number(r, "start_day", required=True),
            target=target,
            mean_lung_dose_gy=rc.number(r, "mean_lung_dose_gy", positive=True),
            representative=rc.flag(r, "representative"),
            notes=rc.text(r, "notes", ""),
            prior=rc.flag(
                r, "prior", "write prior = true for RT given before enrolment (history), or leave it out (protocol RT)"
            ),
        )
        if course.prior:
            _check_prior(rc, course)
        courses.append(course)
    _check_time_zero(c, drug, courses)
    pc, ac = c.sub("population"), c.sub("assessment")
    p, a = pc.keys(t.get("population", {}), _POP), ac.keys(t.get("assessment", {}), _ASSESS)
    mix = pc.choice(p["mix"], "mix", "population mix", MIXES) if "mix" in p else None
    population = PopulationSpec(
        mix=mix,
        line_of_therapy=_frequencies(pc, p.get("line_of_therapy"), "line_of_therapy", LINES),
        pdl1_tps_mix=_frequencies(pc, p.get("pdl1_tps_mix"), "pdl1_tps_mix", TPS_CATEGORIES),
        notes=pc.text(p, "notes", ""),
    )
    # "best", or a day (the key is present, so number() returns a float)
    visit: float | str = a.get("orr_visit_day", "best")
    visit = visit if visit == "best" else ac.number(a, "orr_visit_day", low=0.0, required=True)
    confirm = ac.flag(
        a,
        "confirm_response",
        "write confirm_response = true if a CR/PR counted only once a later scan >= 28 d after it confirmed it",
    )
    if confirm and visit != "best":
        raise ac.fail(
            f"confirm_response = true needs orr_visit_day = 'best' (confirmation applies to the best overall "
            f"response), got orr_visit_day = {visit:g}; drop confirm_response or score the best response"
        )
    assessment = AssessmentSpec(
        criteria=ac.choice(a.get("criteria", "recist1.1"), "criteria", "response criteria", _CRITERIA),
        scan_interval_week=ac.number(a, "scan_interval_week", positive=True),
        orr_visit_day=visit,
        exclude_irradiated=ac.flag(a, "exclude_irradiated"),
        confirm_response=confirm,
        follow_up_month=ac.number(a, "follow_up_month", positive=True),
        notes=ac.text(a, "notes", ""),
    )
    outcomes = tuple(_outcome(c.sub("outcome"), o, n, default_tag) for o in c.tables(t, "outcome"))
    names = [o.name for o in outcomes]
    if len(set(names)) != len(names):
        raise c.fail(f"outcome names repeat: {names}; give each outcome once per arm")
    return ArmTarget(
        name=name,
        n_patients=n,
        n_confidence=c.tag(t, "n_confidence", default_tag),
        drug=drug,
        radiation=tuple(courses),
        population=population,
        assessment=assessment,
        outcomes=outcomes,
        notes=c.text(t, "notes", ""),
        citation=c.text(t, "citation", ""),
        doi=c.text(t, "doi", ""),
        url=c.text(t, "url", ""),
        fit=c.flag(t, "fit", _FIT_FIX, default=True),
    )


def _fraction_days(course: RadiationSpec) -> tuple[float, float]:
    """First and last fraction day of a course."""
    days = radiation_regimen(course.regimen, start_day=course.start_day).fraction_days
    return float(days[0]), float(days[-1])


def _check_prior(c: _Ctx, course: RadiationSpec) -> None:
    """A prior course (history before enrolment) has every fraction before day 0."""
    first, last = _fraction_days(course)
    if last >= 0.0:
        raise c.fail(
            f"prior = true, but {course.regimen} from start_day = {course.start_day:g} has fractions on days "
            f"{first:g} to {last:g}; a prior course is history before enrolment (day 0), so all its fractions must "
            f"be before day 0: give start_day <= {course.start_day - last - 1.0:g}, or drop prior = true if the "
            "course is protocol treatment"
        )


def _check_time_zero(c: _Ctx, drug: DrugSpec | None, courses: list[RadiationSpec]) -> None:
    """Prior courses end before the arm's first protocol event (its time zero)."""
    if not any(r.prior for r in courses):
        return
    protocol = [_fraction_days(r)[0] for r in courses if not r.prior]
    zero = min([0.0, *protocol, *([drug.start_day] if drug is not None else [])])
    for k, r in enumerate(courses):
        if r.prior and (last := _fraction_days(r)[1]) >= zero:
            raise c.sub(f"radiation[{k}]").fail(
                f"prior = true, but its last fraction (day {last:g}) is not before the arm's first protocol event "
                f"(day {zero:g}, its time zero); prior courses are history before enrolment: start it earlier or "
                "drop prior = true"
            )


def _comparison(c: _Ctx, t: Mapping[str, Any], arms: Mapping[str, ArmTarget], default_tag: str) -> ComparisonTarget:
    c.keys(t, _CMP)
    ref = c.choice(c.require(t, "reference"), "reference", "arm", arms)
    arm = c.choice(c.require(t, "arm"), "arm", "arm", arms)
    endpoint = c.choice(c.require(t, "endpoint"), "endpoint", "endpoint", _ENDPOINTS)
    name = c.text(t, "name", f"hr_{endpoint}_{arm}_vs_{ref}")
    c = _Ctx(c.path, f"{c.where}[{name!r}]")
    if ref == arm:
        raise c.fail(f"reference and arm are both {arm!r}; compare two different arms")
    hr = c.number(t, "hr", required=True, positive=True)
    fit = c.flag(t, "fit", _FIT_FIX, default=True)
    if fit and (held := [a for a in (ref, arm) if not arms[a].fit]):
        raise c.fail(
            f"the comparison is fitted (fit = true, the default) but arm {held[0]!r} is validate-only (fit = false): "
            "a fitted hazard ratio would count that arm's patients; write fit = false on the comparison too"
        )
    lo, hi = _ci(c, t, hr, 0.0, math.inf)
    both = arms[ref].n_patients + arms[arm].n_patients
    n, n_events = _sizes(c, t, both, "the two arms together", both)
    return ComparisonTarget(
        name=name,
        reference=ref,
        arm=arm,
        endpoint=endpoint,
        hr=hr,
        ci_lower=lo,
        ci_upper=hi,
        p=c.number(t, "p", low=0.0, high=1.0),
        n=n,
        n_events=n_events,
        adjusted=c.flag(t, "adjusted"),
        definition=c.text(t, "definition", ""),
        confidence=c.tag(t, "confidence", default_tag),
        source=c.text(t, "source", ""),
        fit=fit,
    )


def parse_targets(data: Mapping[str, Any], path: str = "<string>") -> TrialTargets:
    """Validate a parsed TOML mapping and build :class:`TrialTargets` (``path`` only for messages)."""
    c = _Ctx(path)
    c.keys(data, _TOP)
    tag = c.tag(data, "confidence")
    if not isinstance(arms_data := data.get("arm"), list) or not arms_data:
        raise c.fail("no [[arm]] tables; define at least one arm")
    arms = tuple(_arm(c.sub(f"arm[{i}]"), a, tag) for i, a in enumerate(arms_data))
    by_name = {a.name: a for a in arms}
    if len(by_name) != len(arms):
        raise c.fail(f"arm names repeat: {[a.name for a in arms]}; give each arm a unique name")
    comparisons = tuple(
        _comparison(c.sub(f"comparison[{i}]"), t, by_name, tag) for i, t in enumerate(c.tables(data, "comparison"))
    )
    seed_errors = data.get("seed_errors", [])
    if not isinstance(seed_errors, list) or not all(isinstance(s, str) for s in seed_errors):
        raise c.fail(f"seed_errors must be a list of strings, got {seed_errors!r}")
    return TrialTargets(
        id=c.text(data, "id"),
        title=c.text(data, "title"),
        citation=c.text(data, "citation"),
        doi=c.text(data, "doi", ""),
        url=c.text(data, "url", ""),
        confidence=tag,
        design=c.text(data, "design", ""),
        seed_errors=tuple(seed_errors),
        arms=arms,
        comparisons=comparisons,
        path=path,
    )


def load_targets(path: str | Path) -> TrialTargets:
    """Read and validate one target TOML file (raises :class:`TargetError` naming the file and key)."""

    path = Path(path)
    return parse_targets(read_toml(path, "target file", TargetError), str(path))


def load_all(paths: str | Path | Iterable[str | Path]) -> dict[str, TrialTargets]:
    """Load several files (a directory means its ``*.toml``), keyed by trial id; ids must be unique."""
    if isinstance(paths, str | Path):
        p = Path(paths)
        paths = sorted(p.glob("*.toml")) if p.is_dir() else [p]
    out: dict[str, TrialTargets] = {}
    for path in paths:
        t = load_targets(path)
        if t.id in out:
            raise TargetError(f"{path}: id {t.id!r} is already used by {out[t.id].path}; ids must be unique")
        out[t.id] = t
    return out


def target_files(paths: Iterable[str | Path]) -> list[Path]:
    """The target files named by ``paths``: each file as given, each directory as its ``*.toml`` (sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.glob("*.toml")) if p.is_dir() else [p]
    return files
