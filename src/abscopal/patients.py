"""Virtual patients of a trial arm: covariates, baseline lesions and plausible parameter draws.

:func:`draw_patients` turns a :class:`PatientMix` into :class:`VirtualPatients`, whose
:meth:`~VirtualPatients.population` goes to :func:`abscopal.simulate`. Patient ``k`` draws from its own streams
``SeedSequence(seed, spawn_key=(k, i))`` (``i`` = attempt 0, 1, ... for the variability; ``2**31`` covariates and
lesions; ``2**31 + 1`` events), so it is the same whatever ``n_patients``. Per patient:

1. TPS category and a uniform within it (``pdl1_tps``, :attr:`CovariateEffects.tps_ranges`), line, histology;
   ``m`` lesions: lesion 0 the lung primary, 1..m-1 at sites from ``metastasis_sites``, the rest absent.
2. SLD ~ log-normal truncated to ``[m d_min, m d_max]``, its location solved so that the population median is
   ``baseline_sld_median_mm``; ``d_i = d_min + (SLD - m d_min) w_i``, ``w ~ Dirichlet(c)``; a split with a lesion
   above ``d_max`` is redrawn and counted (``size_rejections``; after 1000, equal lesions).
3. Variability draws ``z`` (Cholesky-correlated), redrawn from the next stream while the untreated doubling time
   is outside :attr:`PlausibilityRules.vdt_range_day` (counted: ``vdt_rejections``).
4. Exp(1) draws for endpoint events (:data:`EVENT_DRAW_COLUMNS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from numbers import Integral, Real
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from ._frozen import FrozenMap
from .errors import ParameterError, ScheduleError, unknown_name_message
from .model.library.nsclc import default_variability
from .model.library.nsclc_parameters import global_parameters, lesion_parameters
from .population import Variability, VirtualPopulation
from .sites import SITES

__all__ = [
    "EVENT_DRAW_COLUMNS",
    "HISTOLOGIES",
    "LINES",
    "MIXES",
    "RT_TARGET_RULES",
    "TPS_CATEGORIES",
    "CovariateEffects",
    "PatientMix",
    "PlausibilityRules",
    "RTTargetRule",
    "VirtualPatients",
    "draw_patients",
    "irradiated_lesions",
]

TPS_CATEGORIES = ("<1%", "1-49%", ">=50%")
LINES = ("first_line", "pretreated")
HISTOLOGIES = ("adenocarcinoma", "squamous")
EVENT_DRAW_COLUMNS = ("new_lesion", "death", "pneumonitis", "spare")
RT_TARGET_RULES = ("lung_primary", "largest", "largest_metastasis")
RTTargetRule = str | tuple[int, ...]  # "lung_primary", "largest", a site of SITES, or lesion indices

_BASELINE_KEY, _EVENT_KEY, _CONTROL_KEY = 2**31, 2**31 + 1, 2**31 + 2  # stream tags, far above any attempt number


def _real(name: str, value: object, *, low: float = -math.inf, high: float = math.inf, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ParameterError(f"{name} must be a finite number, got {value!r}; give a number")
    if float(value) < low or float(value) > high or (strict and float(value) == low):
        raise ParameterError(f"{name} must be {'>' if strict else '>='} {low:g} and <= {high:g}, got {value!r}")
    return float(value)


def _whole(name: str, value: object, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < low or (high and int(value) > high):
        raise ParameterError(f"{name} must be an integer >= {low}{f' and <= {high}' if high else ''}, got {value!r}")
    return int(value)


def _pair(name: str, value: object, *, low: float, high: float = math.inf, strict: bool = False) -> tuple[float, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ParameterError(f"{name} must be a pair (low, high), got {value!r}")
    first = _real(f"{name}[0]", value[0], low=low, high=high, strict=strict)
    return first, _real(f"{name}[1]", value[1], low=first, high=high, strict=strict)


def _probabilities(name: str, value: object, known: tuple[Any, ...]) -> FrozenMap:
    """Validate ``{level: probability}``: known levels, each in [0, 1], summing to 1 within 1e-9."""
    if not isinstance(value, Mapping) or not value:
        raise ParameterError(f"{name} must be a non-empty mapping of level to probability, got {value!r}")
    for key in value:
        if key not in known:
            raise ParameterError(f"{name}: " + unknown_name_message("level", str(key), [str(k) for k in known]))
    out = {k: _real(f"{name}[{k!r}]", value[k], low=0.0, high=1.0) for k in known if k in value}  # canonical order
    if abs(sum(out.values()) - 1.0) > 1e-9:
        raise ParameterError(
            f"{name} probabilities must sum to 1 (within 1e-9), got {sum(out.values())!r} for {out}; rescale them"
        )
    return FrozenMap(out)


def _pick(mix: Mapping[Any, float], u: float) -> Any:
    """Inverse-CDF choice of a level for a uniform ``u`` (levels in canonical order)."""
    levels = [k for k, p in mix.items() if p > 0]
    cum = np.cumsum([mix[k] for k in levels])
    return levels[min(int(np.searchsorted(cum / cum[-1], u, side="right")), len(levels) - 1)]


def _log_effects(name: str, value: object) -> FrozenMap:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ParameterError(f"{name} must be a mapping {{parameter name: log-multiplier}}, got {value!r}")
    return FrozenMap({k: _real(f"{name}[{k!r}]", v, low=-20.0, high=20.0) for k, v in value.items()})


@dataclass(frozen=True, kw_only=True)
class PatientMix:
    """Covariate proportions and baseline disease of a trial population.

    Parameters
    ----------
    name, source, baseline_sld_median_mm, baseline_sld_omega
        Identifier; citation text (sources and assumptions); median and log-SD of the baseline SLD.
    pdl1_tps_mix, line_of_therapy, histology, lesion_count, metastasis_sites
        ``{level: probability}`` summing to 1 within 1e-9, over :data:`TPS_CATEGORIES`, :data:`LINES`,
        :data:`HISTOLOGIES` (or None), lesion counts >= 1 (primary included), sites of the non-primary lesions.
    lesion_size_concentration, min_lesion_diameter_mm, max_lesion_diameter_mm
        Dirichlet ``c``: assumption 2 (moderately unequal sizes). 10 mm: RECIST 1.1 measurability (Eisenhauer 2009;
        nodes of 10-15 mm become non-targets). 100 mm: assumption, below the default model's carrying capacity
        (1e6 mm3, a 124 mm sphere), so untreated lesions grow.
    """

    name: str
    pdl1_tps_mix: Mapping[str, float]
    line_of_therapy: Mapping[str, float]
    histology: Mapping[str, float] | None
    lesion_count: Mapping[int, float]
    metastasis_sites: Mapping[str, float]
    baseline_sld_median_mm: float
    baseline_sld_omega: float
    source: str
    lesion_size_concentration: float = 2.0
    min_lesion_diameter_mm: float = 10.0
    max_lesion_diameter_mm: float = 100.0

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name and isinstance(self.source, str) and self.source):
            raise ParameterError(f"name and source must be non-empty strings, got {self.name!r}, {self.source!r}")
        counts = self.lesion_count if isinstance(self.lesion_count, Mapping) else {}
        levels = {
            "pdl1_tps_mix": TPS_CATEGORIES,
            "line_of_therapy": LINES,
            "histology": HISTOLOGIES,
            "lesion_count": tuple(sorted(_whole("lesion_count key", c, low=1) for c in counts)),
            "metastasis_sites": SITES,
        }
        checked: dict[str, object] = {
            k: _probabilities(k, getattr(self, k), v) for k, v in levels.items() if getattr(self, k) is not None
        }
        checked |= {
            k: _real(k, getattr(self, k), low=0.0, high=h, strict=True)
            for k, h in (
                ("baseline_sld_median_mm", math.inf),
                ("baseline_sld_omega", 5.0),
                ("lesion_size_concentration", 1e6),
            )
        }
        sizes = ("min_lesion_diameter_mm", "max_lesion_diameter_mm")
        checked |= zip(sizes, _pair(str(sizes), [getattr(self, k) for k in sizes], low=0.0, strict=True), strict=True)
        for key, value in checked.items():
            object.__setattr__(self, key, value)
        self.sld_log_location()  # raises if the median cannot be reached

    @property
    def max_lesions(self) -> int:
        """Largest lesion count with a non-zero probability."""
        return max(c for c, p in self.lesion_count.items() if p > 0)

    def capped(self, n_lesions: int) -> PatientMix:
        """This mix with lesion counts above ``n_lesions`` folded into ``n_lesions`` (same SLD distribution)."""
        n, folded = _whole("n_lesions", n_lesions, low=1), dict[int, float]()
        for c, p in self.lesion_count.items():
            folded[min(c, n)] = folded.get(min(c, n), 0.0) + p
        return replace(self, lesion_count=folded, name=f"{self.name}_max{n}lesions")

    def sld_log_location(self) -> float:
        """Log-normal location whose truncated draws (module docstring) have median ``baseline_sld_median_mm``."""
        omega, target = self.baseline_sld_omega, math.log(self.baseline_sld_median_mm)
        bounds = [
            (p, math.log(c * self.min_lesion_diameter_mm), math.log(c * self.max_lesion_diameter_mm))
            for c, p in self.lesion_count.items()
            if p > 0
        ]

        def excess_below(mu: float) -> float:  # P(SLD <= median) - 0.5, decreasing in mu
            total = 0.0
            for p, lo, hi in bounds:
                a, b, x = (ndtr((v - mu) / omega) for v in (lo, hi, target))
                total += p * (float(np.clip((x - a) / (b - a), 0.0, 1.0)) if b > a else float(target >= lo))
            return total - 0.5

        lo, hi = target - 12 * omega - 10, target + 12 * omega + 10
        if not excess_below(lo) > 0 > excess_below(hi):
            sizes = f"{self.min_lesion_diameter_mm:g}-{self.max_lesion_diameter_mm:g} mm"
            raise ParameterError(
                f"baseline_sld_median_mm = {self.baseline_sld_median_mm!r} cannot be the median SLD "
                f"of lesion_count {dict(self.lesion_count)} with lesions of {sizes}; give a median "
                "inside the SLD range of most patients"
            )
        return float(brentq(excess_below, lo, hi, xtol=1e-12))


_UNSELECTED_TPS = {"<1%": 0.40, "1-49%": 0.35, ">=50%": 0.25}
_COMMON: dict[str, Any] = {
    "histology": {"adenocarcinoma": 0.75, "squamous": 0.25},
    "baseline_sld_median_mm": 80.0,
    "baseline_sld_omega": 0.5,
}
_SITES = {"lymph_node": 0.35, "lung": 0.15, "bone": 0.15, "liver": 0.10, "adrenal": 0.10, "brain": 0.10, "pleura": 0.05}
_AT_LEAST_TWO = {2: 0.35, 3: 0.35, 4: 0.20, 5: 0.10}
_ONE_OR_MORE = {1: 0.15, 2: 0.30, 3: 0.30, 4: 0.15, 5: 0.10}  # monotherapy trials: no second lesion required
_ASSUMED = (
    "Assumptions (not in the trial reports): the TPS mix if unselected, histology, metastatic sites and lesion "
    "counts (values above); baseline SLD median 80 mm, log-SD 0.5 (the reports give no baseline sums)."
)
MIXES: Mapping[str, PatientMix] = FrozenMap(
    {
        "pembro_rt": PatientMix(
            name="pembro_rt",
            pdl1_tps_mix=_UNSELECTED_TPS,
            line_of_therapy={"pretreated": 1.0},
            lesion_count=_AT_LEAST_TWO,
            metastasis_sites=_SITES,
            **_COMMON,
            source="PEMBRO-RT (Theelen 2019, JAMA Oncol 5:1276): PD-L1 unselected; progressed after >= 1 "
            "chemotherapy regimen (Wang 2023 review, ref 52) -> pretreated 1.0; SBRT to one site and ORR of the "
            "non-irradiated lesions -> >= 2 lesions. " + _ASSUMED,
        ),
        "mdacc": PatientMix(
            name="mdacc",
            pdl1_tps_mix=_UNSELECTED_TPS,
            line_of_therapy={"first_line": 0.3, "pretreated": 0.7},
            lesion_count=_AT_LEAST_TWO,
            metastasis_sites=_SITES | {"lymph_node": 0.30, "liver": 0.15},
            **_COMMON,
            source="MDACC (Welsh 2020, J Immunother Cancer 8:e001001): PD-L1 unselected; a lung or liver lesion "
            "for RT plus >= 1 other lesion -> >= 2 lesions. Mixed lines, first line 0.3 / pretreated 0.7, and "
            "liver 0.15 / node 0.30: assumptions (not in the report). " + _ASSUMED,
        ),
        # MDACC's two randomised cohorts (Welsh 2020): randomisation was within cohorts defined by whether SBRT
        # 50 Gy/4 was feasible; where it was not (larger, central or more extensive disease: the usual reasons, not
        # reported per patient), patients got 45 Gy/15. The report gives no baseline table per cohort; only the
        # control arms' best out-of-field ORR differs (33% vs 17%). Everything below that differs is an assumption.
        "mdacc_sbrt_feasible": PatientMix(
            name="mdacc_sbrt_feasible",
            pdl1_tps_mix=_UNSELECTED_TPS,
            line_of_therapy={"first_line": 0.3, "pretreated": 0.7},
            lesion_count=_AT_LEAST_TWO,
            metastasis_sites=_SITES | {"lymph_node": 0.30, "liver": 0.15},
            histology=_COMMON["histology"],
            baseline_sld_median_mm=65.0,
            baseline_sld_omega=0.5,
            source="MDACC SBRT-feasible cohort (Welsh 2020, J Immunother Cancer 8:e001001): PD-L1 unselected; a lung "
            "or liver lesion for RT plus >= 1 other lesion -> >= 2 lesions; SBRT 50 Gy/4 feasible. Assumptions (not "
            "in the report): smaller disease than the conventional cohort, baseline SLD median 65 mm (vs 80 mm in "
            "the pooled 'mdacc' mix, 95 mm in 'mdacc_conventional'); lines, sites and the rest as 'mdacc'. " + _ASSUMED,
        ),
        "mdacc_conventional": PatientMix(
            name="mdacc_conventional",
            pdl1_tps_mix=_UNSELECTED_TPS,
            line_of_therapy={"first_line": 0.3, "pretreated": 0.7},
            lesion_count={2: 0.20, 3: 0.35, 4: 0.25, 5: 0.20},
            metastasis_sites=_SITES | {"lymph_node": 0.30, "liver": 0.15},
            histology=_COMMON["histology"],
            baseline_sld_median_mm=95.0,
            baseline_sld_omega=0.5,
            source="MDACC traditional-RT cohort (Welsh 2020, J Immunother Cancer 8:e001001): SBRT not feasible, so "
            "45 Gy/15; control-arm best out-of-field ORR 17% vs 33% in the SBRT-feasible cohort. Assumptions (not in "
            "the report): larger and more extensive disease, baseline SLD median 95 mm and more lesions (2: 0.20, "
            "3: 0.35, 4: 0.25, 5: 0.20; folded to the model's 3 lesion slots); lines, sites and the rest as "
            "'mdacc'. " + _ASSUMED,
        ),
        "keynote024": PatientMix(
            name="keynote024",
            pdl1_tps_mix={">=50%": 1.0},
            line_of_therapy={"first_line": 1.0},
            lesion_count=_ONE_OR_MORE,
            metastasis_sites=_SITES,
            **_COMMON,
            source="KEYNOTE-024 pembrolizumab arm (Reck 2016, N Engl J Med 375:1823): previously untreated stage IV "
            "NSCLC, PD-L1 TPS >= 50%, no EGFR/ALK aberration -> first line 1.0, TPS >= 50% 1.0 [P]; measurable "
            "disease, no lesion-count minimum -> 1 lesion allowed. The baseline table (histology, sites) was not "
            "seen: common assumptions. " + _ASSUMED,
        ),
        "keynote010": PatientMix(
            name="keynote010",
            pdl1_tps_mix={"1-49%": 1.0 - 442.0 / 1034.0, ">=50%": 442.0 / 1034.0},
            line_of_therapy={"pretreated": 1.0},
            lesion_count=_ONE_OR_MORE,
            metastasis_sites=_SITES,
            **_COMMON,
            source="KEYNOTE-010 (Herbst 2016, Lancet 387:1540): progressed after platinum chemotherapy, PD-L1 TPS >= "
            "1% -> pretreated 1.0 [P]; TPS >= 50% in 442 of the 1034 randomised patients [U: recall, not seen], "
            "used for the 2 mg/kg arm (randomisation stratified by TPS [U]); no lesion-count minimum -> 1 lesion "
            "allowed. The baseline table (histology, sites) was not seen: common assumptions. " + _ASSUMED,
        ),
        "first_line_pdl1_high": PatientMix(
            name="first_line_pdl1_high",
            pdl1_tps_mix={">=50%": 1.0},
            line_of_therapy={"first_line": 1.0},
            lesion_count=_ONE_OR_MORE,
            metastasis_sites=_SITES,
            **_COMMON,
            source="First line, PD-L1 TPS >= 50% (first-line pembrolizumab monotherapy; seed review introduction). "
            + _ASSUMED,
        ),
    }
)


@dataclass(frozen=True, kw_only=True)
class CovariateEffects:
    """Covariate effects (natural-log multipliers on typical values) and the TPS -> ``pdl1_tps`` map.

    Reference levels (multiplier 1): first line, adenocarcinoma or unspecified histology. All values are plain
    floats, so a calibration can fit them.

    Parameters
    ----------
    pretreated_log_effect, squamous_log_effect
        Defaults ``{"effector_baseline": -0.3}`` (assumption: weaker pre-existing immunity after chemotherapy)
        and ``{"tumour_doubling_time_day": log(0.0034 / 0.0103)}`` = -1.11 (growth rates 0.0034 adeno vs
        0.0103 /day squamous, VDT 204 vs 67 d; resected NSCLC, PMID 24797504).
    tps_ranges
        ``{TPS category: (low, high)}``; PD-L1 acts through ``pdl1_tps``, uniform on the range: default <1%
        (0, 0.01), 1-49% (0.01, 0.5), >=50% (0.5, 1.0), the category definitions (uniformity is an assumption).
    """

    pretreated_log_effect: Mapping[str, float] = field(default_factory=lambda: {"effector_baseline": -0.3})
    squamous_log_effect: Mapping[str, float] = field(
        default_factory=lambda: {"tumour_doubling_time_day": math.log(0.0034 / 0.0103)}
    )
    tps_ranges: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: {"<1%": (0.0, 0.01), "1-49%": (0.01, 0.5), ">=50%": (0.5, 1.0)}
    )

    def __post_init__(self) -> None:
        for name in ("pretreated_log_effect", "squamous_log_effect"):
            object.__setattr__(self, name, _log_effects(name, getattr(self, name)))
        if not isinstance(self.tps_ranges, Mapping) or set(self.tps_ranges) != set(TPS_CATEGORIES):
            raise ParameterError(
                f"tps_ranges must give (low, high) for each of {TPS_CATEGORIES} and nothing else, "
                f"got {self.tps_ranges!r}"
            )
        object.__setattr__(
            self,
            "tps_ranges",
            FrozenMap({c: _pair(f"tps_ranges[{c!r}]", self.tps_ranges[c], low=0.0, high=1.0) for c in TPS_CATEGORIES}),
        )

    def parameter_names(self) -> set[str]:
        """Every parameter these effects act on."""
        return set(self.pretreated_log_effect) | set(self.squamous_log_effect)

    def tps_score(self, category: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """Continuous ``pdl1_tps`` for TPS categories and uniforms in [0, 1)."""
        low, high = (np.array([self.tps_ranges[c][i] for c in category], dtype=float) for i in (0, 1))
        return low + np.asarray(uniform, dtype=float) * (high - low)

    def multipliers(self, patients: VirtualPatients) -> dict[str, np.ndarray]:
        """``{parameter: factor per patient}`` = exp(sum of the patient's log effects)."""
        log = {name: np.zeros(len(patients.line_of_therapy)) for name in sorted(self.parameter_names())}
        for mask, effects in (
            (patients.line_of_therapy == "pretreated", self.pretreated_log_effect),
            (patients.histology == "squamous", self.squamous_log_effect),
        ):
            for name, beta in effects.items():
                log[name] += beta * mask
        return {name: np.exp(v) for name, v in log.items()}


@dataclass(frozen=True, kw_only=True)
class PlausibilityRules:
    """Rejection rules for variability draws.

    ``vdt_range_day``: allowed untreated doubling time (``vdt_parameter``) after covariates and variability.
    Default (20, 1000) d: untreated NSCLC cohort medians are 124-207 d, 60-140 d in symptomatic stage IV, 67 d
    in squamous, screen-detected tumours often > 400 d (Detterbeck 2008; PMID 24797504; PMC3933267); 20-1000 d
    brackets them (an assumption, equal to the bounds of ``tumour_doubling_time_day`` in the default model).
    ``max_attempts``: draws per patient (<= 10000).
    """

    vdt_range_day: tuple[float, float] = (20.0, 1000.0)
    max_attempts: int = 100
    vdt_parameter: str = "tumour_doubling_time_day"

    def __post_init__(self) -> None:
        object.__setattr__(self, "vdt_range_day", _pair("vdt_range_day", self.vdt_range_day, low=0.0, strict=True))
        object.__setattr__(self, "max_attempts", _whole("max_attempts", self.max_attempts, low=1, high=10000))


_ROWS = (
    "pdl1_category",
    "pdl1_uniform",
    "line_of_therapy",
    "histology",
    "sites",
    "present",
    "baseline_diameter_mm",
    "z",
    "untreated_vdt_day",
    "vdt_rejections",
    "size_rejections",
    "event_draws",
    "control_quantile",
)


@dataclass(frozen=True, kw_only=True, eq=False)
class VirtualPatients:
    """Virtual patients drawn by :func:`draw_patients`; arrays have one row per patient and are read-only.

    Covariates ``pdl1_category``, ``pdl1_uniform`` (``pdl1_tps`` is a property), ``line_of_therapy``, ``histology``;
    ``(n, n_lesions)`` ``sites`` ("" if absent), ``present``, ``baseline_diameter_mm`` (sphere-equivalent, 0 if
    absent); ``variability`` (without per-patient parameters), ``correlation``, accepted draws ``z``, their
    ``untreated_vdt_day``, per-patient counts of rejected draws and size splits; ``event_draws`` ``(n, 4)`` Exp(1),
    columns :data:`EVENT_DRAW_COLUMNS` (an event happens when its cumulative hazard reaches the draw);
    ``(n, n_lesions)`` ``control_quantile`` U(0, 1), each lesion's local-control draw (v2's ``control_quantile_<j>``).
    """

    mix: PatientMix
    seed: int
    n_patients: int
    n_lesions: int
    effects: CovariateEffects
    plausibility: PlausibilityRules
    pdl1_category: np.ndarray
    pdl1_uniform: np.ndarray
    line_of_therapy: np.ndarray
    histology: np.ndarray
    sites: np.ndarray
    present: np.ndarray
    baseline_diameter_mm: np.ndarray
    variability: Mapping[str, Variability]
    correlation: np.ndarray | None
    z: np.ndarray
    untreated_vdt_day: np.ndarray
    vdt_rejections: np.ndarray
    size_rejections: np.ndarray
    event_draws: np.ndarray
    control_quantile: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "variability", FrozenMap(dict(self.variability)))
        wide = {
            "sites": self.n_lesions,
            "present": self.n_lesions,
            "baseline_diameter_mm": self.n_lesions,
            "z": len(self.variability),
            "event_draws": len(EVENT_DRAW_COLUMNS),
            "control_quantile": self.n_lesions,
        }
        for name in _ROWS:
            arr, shape = np.array(getattr(self, name)), (self.n_patients, *([wide[name]] if name in wide else []))
            if arr.shape != shape:
                raise ParameterError(f"{name} must have shape {shape}, got {arr.shape}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def rejected_draws(self) -> int:
        """Variability draws rejected by the plausibility rules (all patients)."""
        return int(self.vdt_rejections.sum())

    @property
    def pdl1_tps(self) -> np.ndarray:
        """Continuous PD-L1 TPS (fraction) under the draw's ``effects.tps_ranges``."""
        return self.effects.tps_score(self.pdl1_category, self.pdl1_uniform)

    @property
    def baseline_sld_mm(self) -> np.ndarray:
        """Sum of the baseline diameters of each patient's lesions."""
        return self.baseline_diameter_mm.sum(axis=1)

    def population(
        self, effects: CovariateEffects | None = None, variability: Mapping[str, Variability] | None = None
    ) -> VirtualPopulation:
        """These patients as a :class:`VirtualPopulation` with the same draws ``z`` (common random numbers).

        Per patient: ``baseline_volume_mm3_{j}`` (sphere of the baseline diameter; 0 if absent) and ``pdl1_tps``;
        multipliers from ``effects`` (default: the draw's). ``variability`` may change the omegas of the same
        parameters, in the same order. Plausibility was checked with the draw's effects and omegas only.
        """
        eff = self.effects if effects is None else effects
        var = self.variability if variability is None else dict(variability)
        if tuple(var) != tuple(self.variability):
            raise ParameterError(
                f"variability must name {list(self.variability)} in this order (the columns of z), "
                f"got {list(var)}; draw new patients to vary other parameters"
            )
        per_patient = {
            f"baseline_volume_mm3_{j}": math.pi / 6.0 * self.baseline_diameter_mm[:, j] ** 3
            for j in range(self.n_lesions)
        }
        per_patient["pdl1_tps"] = eff.tps_score(self.pdl1_category, self.pdl1_uniform)
        return VirtualPopulation(
            n_patients=self.n_patients,
            variability=var,
            seed=self.seed,
            per_patient=per_patient,
            multipliers=eff.multipliers(self),
            draws=self.z,
            optional_per_patient={f"control_quantile_{j}": self.control_quantile[:, j] for j in range(self.n_lesions)},
        )

    def table(self) -> dict[str, np.ndarray]:
        """One row per patient, for provenance (covariates, lesions, draws, rejections)."""
        out = {
            "patient": np.arange(self.n_patients),
            "pdl1_tps": self.pdl1_tps,
            "baseline_sld_mm": self.baseline_sld_mm,
            "n_lesions_present": self.present.sum(axis=1),
        }
        out |= {name: getattr(self, name) for name in _ROWS if getattr(self, name).ndim == 1}
        for j in range(self.n_lesions):
            out[f"site_{j}"], out[f"baseline_diameter_mm_{j}"] = self.sites[:, j], self.baseline_diameter_mm[:, j]
            out[f"control_quantile_{j}"] = self.control_quantile[:, j]
        out |= {f"z_{name}": self.z[:, col] for col, name in enumerate(self.variability)}
        return out | {f"event_draw_{name}": self.event_draws[:, c] for c, name in enumerate(EVENT_DRAW_COLUMNS)}

    def subset(self, n_patients: int) -> VirtualPatients:
        """The first ``n_patients`` patients (identical to drawing ``n_patients`` with the same seed)."""
        n = _whole("n_patients", n_patients, low=1, high=self.n_patients)
        return replace(self, n_patients=n, **{name: getattr(self, name)[:n] for name in _ROWS})


def _lesions(mix: PatientMix, rng: np.random.Generator, n_lesions: int, mu: float) -> tuple[list[str], np.ndarray, int]:
    """Sites and diameters of one patient's lesions (module docstring, steps 2-3), and the split redraws."""
    m = _pick(mix.lesion_count, rng.random())
    sites = ["lung"] + [_pick(mix.metastasis_sites, rng.random()) for _ in range(m - 1)]
    d_min, d_max, omega = mix.min_lesion_diameter_mm, mix.max_lesion_diameter_mm, mix.baseline_sld_omega
    a, b = ndtr((math.log(m * d_min) - mu) / omega), ndtr((math.log(m * d_max) - mu) / omega)
    sld = float(np.clip(math.exp(mu + omega * ndtri(a + rng.random() * (b - a))), m * d_min, m * d_max))
    redraws, d = -1, np.full(m, np.inf)
    while np.any(d > d_max) and redraws < 1000:
        redraws, d = redraws + 1, d_min + (sld - m * d_min) * rng.dirichlet(np.full(m, mix.lesion_size_concentration))
    d = d if np.all(d <= d_max) else np.full(m, sld / m)  # equal lesions are feasible: d_min <= sld / m <= d_max
    return sites + [""] * (n_lesions - m), np.concatenate([d, np.zeros(n_lesions - m)]), redraws


def draw_patients(
    mix: PatientMix,
    n_patients: int,
    *,
    n_lesions: int,
    seed: int,
    variability: Mapping[str, Variability] | None = None,
    correlation: np.ndarray | None = None,
    effects: CovariateEffects | None = None,
    plausibility: PlausibilityRules | None = None,
    typical: Mapping[str, float] | None = None,
) -> VirtualPatients:
    """Draw ``n_patients`` reproducible virtual patients of ``mix`` (steps in the module docstring).

    ``n_lesions``: lesion slots of the model (>= every count of the mix, see :meth:`PatientMix.capped`).
    ``variability``: ``{parameter: LogNormal | LogitNormal}``, default the NSCLC ``default_variability()``
    without ``pdl1_tps`` (set by the covariates); ``correlation`` in its order. ``typical``: values for the
    plausibility check (default: the NSCLC model defaults). ParameterError for invalid input, or for a
    patient without a plausible draw in ``plausibility.max_attempts``.
    """
    if not isinstance(mix, PatientMix):
        raise ParameterError(f"mix must be a PatientMix (e.g. MIXES['pembro_rt']), got {type(mix).__name__}")
    n, L = _whole("n_patients", n_patients, low=1), _whole("n_lesions", n_lesions, low=1)
    seed = _whole("seed", seed, low=0)
    if mix.max_lesions > L:
        raise ParameterError(
            f"mix {mix.name!r} has lesion_count up to {mix.max_lesions}, above n_lesions = {L}; "
            f"use mix.capped({L}) or a model with more lesions"
        )
    effects = CovariateEffects() if effects is None else effects
    plausibility = PlausibilityRules() if plausibility is None else plausibility
    typical = (
        dict(typical)
        if typical is not None
        else {p.name: p.default for p in global_parameters() + tuple(p for j in range(L) for p in lesion_parameters(j))}
    )
    var = (
        dict(variability)
        if variability is not None
        else {k: v for k, v in default_variability().items() if k != "pdl1_tps"}
    )
    vdt_name = plausibility.vdt_parameter
    fixed = {"pdl1_tps"} | {f"baseline_volume_mm3_{j}" for j in range(L)}
    for name in [*var, *sorted(effects.parameter_names()), vdt_name]:
        if name not in typical:
            raise ParameterError(
                unknown_name_message("parameter", str(name), typical) + " (in variability, effects or "
                "plausibility.vdt_parameter); give a parameter of the model"
            )
        if name in fixed:
            raise ParameterError(
                f"{name!r} is set per patient from the covariates and lesions; remove it from the "
                "variability, the covariate effects and the plausibility rules"
            )
    names, corr = list(var), None if correlation is None else np.asarray(correlation, dtype=float)
    # VirtualPopulation validates the correlation (shape, symmetry, positive definiteness)
    chol = None
    if corr is not None:
        checked = VirtualPopulation(n_patients=1, variability=var, correlation=corr).correlation
        chol = np.linalg.cholesky(np.asarray(checked, dtype=float))
    mu = mix.sld_log_location()
    cov = np.empty((n, 4), dtype=object)  # TPS category, line, histology, TPS uniform
    sites, diam, size_rej = np.empty((n, L), dtype=object), np.zeros((n, L)), np.zeros(n, dtype=int)
    events = np.empty((n, len(EVENT_DRAW_COLUMNS)))
    control = np.empty((n, L))  # U(0, 1) local-control quantile per lesion (model v2: control_quantile_<j>)

    def stream(k: int, i: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k, i)))

    for k in range(n):
        rng = stream(k, _BASELINE_KEY)
        cov[k] = (
            _pick(mix.pdl1_tps_mix, rng.random()),
            _pick(mix.line_of_therapy, rng.random()),
            "unspecified" if mix.histology is None else _pick(mix.histology, rng.random()),
            rng.random(),
        )
        sites[k], diam[k], size_rej[k] = _lesions(mix, rng, L, mu)
        events[k] = stream(k, _EVENT_KEY).standard_exponential(len(EVENT_DRAW_COLUMNS))
        control[k] = stream(k, _CONTROL_KEY).random(L)
    category, line, histology = (cov[:, i].astype(str) for i in range(3))
    factor = effects.multipliers(SimpleNamespace(line_of_therapy=line, histology=histology))  # type: ignore[arg-type]
    vdt_typical = typical[vdt_name] * factor.get(vdt_name, np.ones(n))
    (lo, hi), col = plausibility.vdt_range_day, names.index(vdt_name) if vdt_name in var else None
    z, vdt, rejected = np.empty((n, len(names))), np.empty(n), np.zeros(n, dtype=int)
    for k in range(n):
        for attempt in range(plausibility.max_attempts):
            zk = stream(k, attempt).standard_normal(len(names))
            zk = zk if chol is None else chol @ zk
            v = float(vdt_typical[k] if col is None else var[vdt_name].apply(vdt_typical[k], zk[col]))
            if lo <= v <= hi:
                z[k], vdt[k], rejected[k] = zk, v, attempt
                break
        else:
            raise ParameterError(
                f"patient {k}: no {vdt_name} within vdt_range_day = {plausibility.vdt_range_day} in "
                f"{plausibility.max_attempts} draws (typical x covariates = {vdt_typical[k]:.4g}, last draw {v:.4g}); "
                "widen the range, reduce the variability or raise max_attempts"
            )
    return VirtualPatients(
        mix=mix,
        seed=seed,
        n_patients=n,
        n_lesions=L,
        effects=effects,
        plausibility=plausibility,
        pdl1_category=category,
        pdl1_uniform=cov[:, 3].astype(float),
        line_of_therapy=line,
        histology=histology,
        sites=sites.astype(str),
        present=diam > 0,
        baseline_diameter_mm=diam,
        variability=var,
        correlation=corr,
        z=z,
        untreated_vdt_day=vdt,
        vdt_rejections=rejected,
        size_rejections=size_rej,
        event_draws=events,
        control_quantile=control,
    )


def irradiated_lesions(patients: VirtualPatients, rule: RTTargetRule) -> np.ndarray:
    """Which lesion(s) each patient's RT course treats: ``(n_patients, n_lesions)`` bool.

    ``"lung_primary"``: lesion 0. ``"largest"``: the largest present lesion. ``"largest_metastasis"``: the
    largest present lesion other than the lung primary (lesion 0). A site name: the largest lesion
    at that site. A tuple of indices: those lesions in every patient. Ties go to the lower index. Raises
    ScheduleError if the rule is unknown, an index is out of range, or a patient has no matching lesion.
    """
    n, L = patients.n_patients, patients.n_lesions
    out = np.zeros((n, L), dtype=bool)
    if isinstance(rule, str):
        if rule not in RT_TARGET_RULES + SITES:
            raise ScheduleError("RT target rule: " + unknown_name_message("rule", rule, RT_TARGET_RULES + SITES))
        pick = {"lung_primary": np.arange(L) == 0, "largest": True, "largest_metastasis": np.arange(L) != 0}
        match = patients.present & pick.get(rule, patients.sites == rule)
        missing = np.flatnonzero(~match.any(axis=1))
        if missing.size:
            raise ScheduleError(
                f"RT target rule {rule!r}: patient {missing[0]} has no {rule} lesion (sites "
                f"{[str(s) for s in patients.sites[missing[0]] if s]}; {missing.size} such patients); "
                "use 'lung_primary', 'largest' or a mix where every patient has that site"
            )
        out[np.arange(n), np.argmax(np.where(match, patients.baseline_diameter_mm, -np.inf), axis=1)] = True
        return out
    bad = (
        [j for j in rule if isinstance(j, bool) or not isinstance(j, Integral) or not 0 <= j < L]
        if isinstance(rule, tuple | list) and rule
        else [rule]
    )
    if bad:
        raise ScheduleError(
            f"RT target rule {rule!r}: {bad[0]!r} is not a lesion index of {L} lesions; give "
            f"{RT_TARGET_RULES}, a site or a tuple of indices 0 to {L - 1}"
        )
    out[:, list(rule)] = True
    absent = np.flatnonzero(~np.all(patients.present[:, list(rule)], axis=1))
    if absent.size:
        raise ScheduleError(
            f"RT target rule {tuple(rule)!r}: patient {int(absent[0])} lacks lesion(s) "
            f"{[j for j in rule if not patients.present[absent[0], j]]} ({absent.size} such patients); "
            "choose present lesions or a rule such as 'largest'"
        )
    return out
