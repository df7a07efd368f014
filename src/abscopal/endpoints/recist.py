"""RECIST 1.1 and iRECIST scoring of lesion diameters at scan visits (pure numpy, no model dependency).

The rules are RECIST 1.1 and iRECIST as published; every threshold and its source
(:data:`EISENHAUER_2009` for RECIST 1.1, :data:`SEYMOUR_2017` for iRECIST) is in :class:`RecistRules`.
Choices where the rules are silent:

1. Diameters are sphere-equivalent; a node's short axis is ``node_short_axis_ratio`` (default 1)
   times that. A lesion below ``gone_mm`` (1 mm, about CT's in-plane resolution) is 0 mm; above it
   the exact value is used (RECIST's 5-mm "too small to measure" default is for readers, not models).
2. At baseline, nodes below 10 mm (normal) and other lesions below ``gone_mm`` are not followed.
   Each :data:`SITES` entry is one organ (all lymph nodes one organ); equal sizes: lower index first.
3. New lesions and unequivocal non-target progression are inputs (event days), seen at the first
   scan on or after their day, and persistent.
4. iRECIST: a scan < 28 d after an iUPD neither confirms nor resets it (EORTC iRECIST FAQ); any later
   scan may confirm while the iUPD persists (Seymour 2017 table 3, example 7; a note flags a first
   such scan > 56 d after). A target-driven iUPD resets once the sum is not PD versus the nadir (FAQ
   scenario D); one driven by new lesions or non-target progression only if the sum fell >= 5 mm
   below its iUPD value (FAQ scenarios B, F), never while the targets are PD. After a reset only
   further events trigger an iUPD. The nadir is the running minimum over all earlier scans.
5. iRECIST progression day = day of the confirmed iUPD (recalled from Seymour 2017, not verified
   here); the iCPD day is ``progression_confirmed_day``.
6. Confirmation: CR/PR must hold at every scan up to the first one >= 28 d later (CR by CR, PR by
   PR or CR); unconfirmed, it counts as SD. SD counts for the best response only from ``sd_min_day``.
7. With a counted new lesion (iRECIST, after a reset) a target CR is scored iPR. Baseline is coded
   ``"BL"``, scans after progression ``"NA"``. Thresholds are inclusive, with a 1e-9 mm tolerance.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import AbscopalError, ParameterError, unknown_name_message
from ..sites import NODE_SITES, SITES
from .scans import ExplicitScans, ScanSchedule, as_visit_days, events_seen

__all__ = [
    "EISENHAUER_2009",
    "IRECIST",
    "NODE_SITES",
    "RECIST_1_1",
    "RESPONSE_CODES",
    "SEYMOUR_2017",
    "SITES",
    "RecistAssessment",
    "RecistRules",
    "TargetSelection",
    "Targets",
    "assess",
    "assess_population",
    "assess_targets",
    "diameter_from_volume",
    "events_seen_batch",
    "select_targets",
    "select_targets_batch",
    "tagged",
    "target_sums",
]

EISENHAUER_2009 = (
    "Eisenhauer EA, Therasse P, Bogaerts J, et al. New response evaluation criteria in solid tumours: "
    "revised RECIST guideline (version 1.1). Eur J Cancer 2009;45:228-247"
)
SEYMOUR_2017 = (
    "Seymour L, Bogaerts J, Perrone A, et al. iRECIST: guidelines for response criteria for use in trials "
    "testing immunotherapeutics. Lancet Oncol 2017;18:e143-e152"
)

_TOL_MM = 1e-9  # slack at inclusive thresholds, so that 100 -> 70 mm is exactly -30%
_TOL_DAY = 1e-9
_LEVEL = {"CR": 5, "PR": 4, "SD": 3, "NN": 3, "UPD": 1, "PD": 0, "CPD": 0, "NE": -1, "NA": -1, "BL": -1}
_FloatArray = NDArray[np.float64]


def _number(name: str, value: object, *, low: float, strict: bool = False, high: float = math.inf) -> float:
    """Return ``value`` as a float in ``[low, high]`` (``(low, high]`` if strict), else raise ParameterError."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ParameterError(f"{name} must be a finite number, got {value!r}; give a number")
    x = float(value)
    if x < low or (strict and x == low) or x > high:
        bounds = f"{'>' if strict else '>='} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        raise ParameterError(f"{name} must be {bounds}, got {x!r}; give a value in range")
    return x


def _count(name: str, value: object, fix: str) -> int:
    """Return ``value`` as an int >= 1, else raise ParameterError."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ParameterError(f"{name} must be an integer >= 1, got {value!r}; {fix}")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class RecistRules:
    """Thresholds and options of RECIST 1.1 (Eisenhauer 2009) and iRECIST (Seymour 2017).

    Each field's meaning and source is in the comment above it. Change one with ``dataclasses.replace``.
    """

    # PR: target sum >= 30% below the baseline sum (Eisenhauer 2009, evaluation of target lesions).
    pr_fraction: float = 0.30
    # PD: sum >= 20% and >= 5 mm above the nadir, the smallest sum on study, baseline included (ibid.).
    pd_fraction: float = 0.20
    pd_absolute_mm: float = 5.0
    # Measurable: longest diameter >= 10 mm on CT; nodes >= 15 mm short axis, 10-15 mm non-target, < 10 mm
    # normal; CR needs every node < 10 mm (Eisenhauer 2009, measurability and response criteria).
    measurable_mm: float = 10.0
    node_measurable_short_axis_mm: float = 15.0
    node_normal_mm: float = 10.0
    # At most 5 target lesions, 2 per organ (Eisenhauer 2009; KEYNOTE-010 used a modified 10 and 5).
    max_targets: int = 5
    max_targets_per_organ: int = 2
    # CR/PR confirmed >= 4 weeks later, required only where response is the primary endpoint of a
    # non-randomised trial (Eisenhauer 2009, confirmation).
    confirmation_min_day: float = 28.0
    require_confirmation: bool = False
    # SD counts as best response only from a protocol-defined day (e.g. 42; Eisenhauer 2009); 0 = any scan.
    sd_min_day: float = 0.0
    # Below this diameter a lesion is recorded as 0 mm, i.e. gone. Assumption (module docstring, choice 1).
    gone_mm: float = 1.0
    # iRECIST: the first PD is iUPD; a scan 4-8 weeks later confirms it (iCPD) on a further >= 5 mm rise of the sum,
    # further non-target progression, another new lesion, or PD in a category not yet progressed (Seymour 2017).
    irecist: bool = False
    irecist_window_day: tuple[float, float] = (28.0, 56.0)

    def __post_init__(self) -> None:
        fix = "give a count of lesions (RECIST 1.1: 5 in total, 2 per organ)"
        out: dict[str, object] = {n: _count(n, getattr(self, n), fix) for n in ("max_targets", "max_targets_per_organ")}
        for name in ("pd_fraction", "pd_absolute_mm", "confirmation_min_day", "sd_min_day"):
            out[name] = _number(name, getattr(self, name), low=0.0)
        for name, high in (("pr_fraction", 1.0), ("measurable_mm", math.inf), ("node_normal_mm", math.inf)):
            out[name] = _number(name, getattr(self, name), low=0.0, strict=True, high=high)
        node = "node_measurable_short_axis_mm"
        out[node] = _number(node, self.node_measurable_short_axis_mm, low=self.node_normal_mm)
        out["gone_mm"] = _number("gone_mm", self.gone_mm, low=0.0, high=self.measurable_mm)
        for name in ("require_confirmation", "irecist"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{name} must be True or False, got {getattr(self, name)!r}")
        window = self.irecist_window_day
        if not isinstance(window, Sequence) or len(window) != 2:
            raise ParameterError(f"irecist_window_day must be (min_day, max_day), got {window!r}; e.g. (28, 56)")
        low = _number("irecist_window_day[0]", window[0], low=0.0)
        out["irecist_window_day"] = (low, _number("irecist_window_day[1]", window[1], low=low))
        for name, value in out.items():
            object.__setattr__(self, name, value)

    @property
    def citations(self) -> tuple[str, ...]:
        """The sources of these rules."""
        return (EISENHAUER_2009, SEYMOUR_2017) if self.irecist else (EISENHAUER_2009,)

    def describe(self) -> str:
        """Return e.g. ``"RECIST 1.1 (PR -30%, PD +20% and +5 mm)"``, then any other non-default values."""
        changed = "".join(
            f"; {f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name != "irecist" and getattr(self, f.name) != f.default
        )
        pd = f"PD +{self.pd_fraction:.0%} and +{self.pd_absolute_mm:g} mm"
        return f"{'iRECIST' if self.irecist else 'RECIST 1.1'} (PR -{self.pr_fraction:.0%}, {pd}{changed})"


RECIST_1_1 = RecistRules()
IRECIST = RecistRules(irecist=True)


def _check_sites(sites: Sequence[str]) -> tuple[str, ...]:
    if isinstance(sites, str) or not isinstance(sites, Sequence):
        raise ParameterError(f"sites must be a sequence of site names, got {sites!r}; e.g. ('lung', 'liver')")
    for i, site in enumerate(sites):
        if site not in SITES:
            raise ParameterError(f"sites[{i}]: " + unknown_name_message("lesion site", str(site), SITES))
    return tuple(sites)


def _lesion_array(name: str, values: ArrayLike, ndim: int) -> _FloatArray:
    """Return ``values`` as a finite, non-negative ``ndim``-D float array, else raise ParameterError."""
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be numeric, got {values!r}; give diameters in mm") from exc
    if array.ndim != ndim:
        raise ParameterError(f"{name} must be {ndim}-D, got shape {array.shape}; see the docstring for the layout")
    bad = np.argwhere(~np.isfinite(array) | (array < 0.0))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise ParameterError(f"{name} must be finite and >= 0, got {float(array[index])!r} at {index}")
    return array


def _index(name: str, value: object, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ParameterError(f"{name} contains {value!r}, not a lesion index; give integers 0 to {n - 1}")
    index = int(value)
    if not 0 <= index < n:
        raise ParameterError(
            f"{name} contains lesion index {value!r}, out of range for {n} lesions; give indices 0 to {n - 1}"
        )
    return index


def diameter_from_volume(
    volume_mm3: ArrayLike,
    sites: Sequence[str] | None = None,
    *,
    node_short_axis_ratio: float = 1.0,
    lesion_axis: int | None = None,
) -> _FloatArray:
    """Sphere-equivalent diameter ``(6 V / pi)^(1/3)`` in mm (nodes: short axis), shaped like ``volume_mm3``.

    Parameters
    ----------
    volume_mm3, sites
        Lesion volumes (mm3, >= 0), e.g. ``(lesion, visit)`` or ``(patient, lesion, visit)``; the site
        of each lesion (:data:`SITES`), needed only to scale the nodes.
    node_short_axis_ratio, lesion_axis
        Node short axis over its sphere-equivalent diameter, in (0, 1]; assumption: 1 (spherical
        nodes; a real, ellipsoid node is thinner). The lesion axis: default 0 for 1-D input, else -2.
    """
    volume = np.asarray(volume_mm3, dtype=np.float64)
    if np.any(~np.isfinite(volume) | (volume < 0.0)):
        raise ParameterError(f"volume_mm3 must be finite and >= 0, got {volume!r}; give volumes in mm3")
    ratio = _number("node_short_axis_ratio", node_short_axis_ratio, low=0.0, strict=True, high=1.0)
    diameter = np.cbrt(6.0 * volume / math.pi)
    if sites is None:
        return diameter
    names = _check_sites(sites)
    axis = (0 if diameter.ndim == 1 else -2) if lesion_axis is None else lesion_axis
    if not -diameter.ndim <= axis < diameter.ndim or diameter.shape[axis] != len(names):
        raise ParameterError(
            f"sites has {len(names)} entries but volume_mm3 of shape {volume.shape} has no "
            f"lesion axis {axis} of that length; give one site per lesion or set lesion_axis"
        )
    shape = [1] * diameter.ndim
    shape[axis] = len(names)
    return diameter * np.array([ratio if s in NODE_SITES else 1.0 for s in names]).reshape(shape)


@dataclass(frozen=True, kw_only=True)
class TargetSelection:
    """One patient's lesions; each index is in exactly one of the four groups.

    Attributes
    ----------
    sites, baseline_mm
        Site (:data:`SITES`) and baseline diameter (nodes: short axis, mm) of each lesion.
    targets, nontargets, excluded, not_followed
        Targets (largest first); non-targets, followed qualitatively (CR needs them gone); lesions not
        scored, e.g. irradiated (PEMBRO-RT, MDACC); normal nodes and lesions below ``gone_mm``.
    """

    sites: tuple[str, ...]
    baseline_mm: tuple[float, ...]
    targets: tuple[int, ...]
    nontargets: tuple[int, ...] = ()
    excluded: tuple[int, ...] = ()
    not_followed: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sites", _check_sites(self.sites))
        baseline, n = _lesion_array("baseline_mm", self.baseline_mm, 1), len(self.sites)
        if baseline.size != n:
            raise ParameterError(f"baseline_mm has {baseline.size} entries but sites has {n}; give one per lesion")
        object.__setattr__(self, "baseline_mm", tuple(baseline.tolist()))
        groups = {
            g: tuple(_index(g, i, n) for i in getattr(self, g))
            for g in ("targets", "nontargets", "excluded", "not_followed")
        }
        if sorted(i for g in groups.values() for i in g) != list(range(n)):
            raise ParameterError(
                f"every lesion 0 to {n - 1} must be in exactly one group, got {groups}; move or add "
                "the missing or repeated lesions"
            )
        for group, indices in groups.items():
            object.__setattr__(self, group, indices)

    @property
    def is_node(self) -> tuple[bool, ...]:
        """Whether each lesion is a lymph node (measured by its short axis)."""
        return tuple(s in NODE_SITES for s in self.sites)

    def describe(self) -> str:
        """Return e.g. ``"targets [2, 0]; non-targets [1]; excluded [3]; not followed []"``."""
        return (
            f"targets {list(self.targets)}; non-targets {list(self.nontargets)}; excluded "
            f"{list(self.excluded)}; not followed {list(self.not_followed)}"
        )


def select_targets(
    baseline_mm: ArrayLike,
    sites: Sequence[str],
    *,
    exclude: Sequence[int] = (),
    rules: RecistRules = RECIST_1_1,
    max_targets: int | None = None,
) -> TargetSelection:
    """Choose one patient's target lesions at baseline (RECIST 1.1, Eisenhauer 2009).

    Measurable lesions become targets largest first, at most ``max_targets`` in all and
    ``rules.max_targets_per_organ`` per site. Excluded lesions are in neither set; the rest are
    non-targets, except normal nodes and invisible lesions (module docstring, choice 2).

    Parameters
    ----------
    baseline_mm, sites
        Baseline diameter (nodes: short axis, mm) and site (:data:`SITES`) of each lesion.
    exclude, rules, max_targets
        Indices of lesions not scored (e.g. irradiated); the thresholds; a trial-specific cap on
        targets, 1 to ``rules.max_targets`` (the default). A ParameterError names any bad argument.
    """
    baseline, names = _lesion_array("baseline_mm", baseline_mm, 1), _check_sites(sites)
    if len(names) != baseline.size:
        raise ParameterError(f"sites has {len(names)} entries but baseline_mm has {baseline.size}; give one per lesion")
    fix = f"give 1 to {rules.max_targets} (RECIST 1.1 allows 5; raise RecistRules.max_targets for modified rules)"
    n_max = rules.max_targets if max_targets is None else _count("max_targets", max_targets, fix)
    if n_max > rules.max_targets:
        raise ParameterError(
            f"max_targets = {n_max} requested, more than rules.max_targets = {rules.max_targets}; " + fix
        )
    if isinstance(exclude, str) or not isinstance(exclude, Sequence | np.ndarray):
        raise ParameterError(f"exclude must be a sequence of lesion indices, got {exclude!r}; e.g. exclude=(0,)")
    excluded = {_index("exclude", i, baseline.size) for i in np.asarray(exclude).tolist()}
    node = np.array([s in NODE_SITES for s in names], dtype=bool)
    hidden = baseline < np.where(node, rules.node_normal_mm, rules.gone_mm) - _TOL_MM
    measurable = baseline >= np.where(node, rules.node_measurable_short_axis_mm, rules.measurable_mm) - _TOL_MM
    targets: list[int] = []
    per_organ, organ_max = Counter[str](), rules.max_targets_per_organ
    for i in np.argsort(-baseline, kind="stable").tolist():  # stable: equal sizes keep index order
        if len(targets) < n_max and i not in excluded and measurable[i] and per_organ[names[i]] < organ_max:
            targets.append(i)
            per_organ[names[i]] += 1
    rest = [i for i in range(baseline.size) if i not in excluded and i not in targets]
    return TargetSelection(
        sites=names,
        baseline_mm=tuple(baseline.tolist()),
        targets=tuple(targets),
        excluded=tuple(sorted(excluded)),
        nontargets=tuple(i for i in rest if not hidden[i]),
        not_followed=tuple(i for i in rest if hidden[i]),
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class RecistAssessment:
    """One patient's RECIST (or iRECIST) assessment; per-scan arrays start with the baseline scan.

    Each field is described in the comment above it; days are ``inf`` when there is no such event.
    """

    visit_days: _FloatArray
    # Per scan: "BL" (baseline), "CR", "PR", "SD", "NN" (non-CR/non-PD: no targets), "NE" (nothing to score),
    # "PD", "NA" (after progression); with iRECIST "iCR", "iPR", "iSD", "iNN", "iUPD", "iCPD".
    responses: tuple[str, ...]
    best_overall_response: str  # best code up to progression (CR/PR confirmed, if required); "NE" if none
    progressed: bool  # PD, or iCPD under iRECIST
    progression_day: float  # the PD scan; iRECIST: the iUPD scan that was confirmed (choice 5)
    progression_confirmed_day: float  # the iCPD scan (RECIST: the PD scan)
    unconfirmed_progression_day: float  # iRECIST: an iUPD still unconfirmed at the last scan
    response_day: float  # first scan with a (confirmed, if required) CR or PR
    sums_mm: _FloatArray  # sum of target diameters
    nadir_mm: _FloatArray  # smallest earlier sum (baseline included), the PD reference of each scan
    percent_change_from_baseline: _FloatArray  # 100 (sum - baseline) / baseline; NaN without targets
    best_percent_change: float  # minimum over the scored scans after baseline
    notes: tuple[str, ...] = ()  # e.g. no iRECIST confirmation scan within 4-8 weeks
    rules: RecistRules = RECIST_1_1

    def __post_init__(self) -> None:
        for name in ("visit_days", "sums_mm", "nadir_mm", "percent_change_from_baseline"):
            array = np.array(getattr(self, name), dtype=np.float64)
            if array.shape != (len(self.responses),):
                raise ParameterError(f"{name} must have one value per scan like responses, got shape {array.shape}")
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @property
    def objective_response(self) -> bool:
        """Whether the best overall response is CR or PR (iCR or iPR)."""
        return self.best_overall_response in ("CR", "PR", "iCR", "iPR")


def assess(
    diameters_mm: ArrayLike,
    visit_days: ScanSchedule | ExplicitScans | ArrayLike,
    selection: TargetSelection,
    *,
    new_lesion_day: ArrayLike = math.inf,
    nontarget_progression_day: ArrayLike = math.inf,
    rules: RecistRules = RECIST_1_1,
) -> RecistAssessment:
    """Score one patient at each scan with RECIST 1.1, or iRECIST if ``rules.irecist``.

    Parameters
    ----------
    diameters_mm, visit_days, selection
        Diameter (nodes: short axis, mm) of every lesion at every scan, shape ``(n_lesions, n_visits)``;
        scan days (baseline first) or a schedule; the :func:`select_targets` result.
    new_lesion_day, nontarget_progression_day
        Day of each new lesion / unequivocal non-target progression, after baseline (``inf``: none);
        one value or one per event. Each is seen at the first scan on or after its day.
    rules
        :data:`RECIST_1_1`, :data:`IRECIST` or your own :class:`RecistRules`.
    """
    days = as_visit_days(visit_days)
    d = _lesion_array("diameters_mm", diameters_mm, 2)
    if d.shape != (len(selection.sites), days.size):
        raise ParameterError(
            f"diameters_mm must have shape (n_lesions, n_visits) = ({len(selection.sites)}, "
            f"{days.size}), got {d.shape}; give a row per lesion and a column per scan"
        )
    new = events_seen(new_lesion_day, days, name="new_lesion_day")
    ntp = events_seen(nontarget_progression_day, days, name="nontarget_progression_day")
    measured = np.where(d < rules.gone_mm, 0.0, d)  # choice 1: below gone_mm is 0 mm
    node, tgt, non = np.array(selection.is_node, dtype=bool), list(selection.targets), list(selection.nontargets)
    sums = measured[tgt].sum(axis=0)
    resolved = np.where(node[:, None], measured < rules.node_normal_mm - _TOL_MM, measured == 0.0)  # gone; nodes < 10
    # numpy's stubs type .all(axis=0) as scalar or array; over axis 0 of a 2-D array it is a 1-D array
    target_cr: NDArray[np.bool_] = resolved[tgt].all(axis=0)  # type: ignore[assignment]
    nontarget_cr: NDArray[np.bool_] = resolved[non].all(axis=0)  # type: ignore[assignment]
    pct = 100.0 * (sums - sums[0]) / sums[0] if sums[0] > 0.0 else np.full(days.size, np.nan)

    def base(k: int) -> str:
        """CR, PR, SD, NN or NE at scan k, progression aside (Eisenhauer 2009 table 4; choice 7)."""
        present = bool(new[k] or ntp[k])  # only possible under iRECIST, after a reset
        if not tgt:
            return "NE" if not non else ("CR" if nontarget_cr[k] and not present else "NN")
        if target_cr[k]:
            return "CR" if nontarget_cr[k] and not present else "PR"
        return "PR" if sums[0] - sums[k] >= rules.pr_fraction * sums[0] - _TOL_MM else "SD"

    codes, nadirs, notes = ["BL"] + ["NA"] * (days.size - 1), np.full(days.size, sums[0]), []
    progression = confirmed = math.inf
    (w0, w1), counted = rules.irecist_window_day, (0, 0)  # counted: events scored before the last reset
    episode: tuple[int, bool, bool] | None = None  # iUPD scan; driven by the targets; by new/NT events
    for k in range(1, days.size):
        nadir = nadirs[k] = sums[:k].min()
        rise = sums[k] - nadir
        target_pd = bool(tgt) and rise >= rules.pd_fraction * nadir - _TOL_MM and rise >= rules.pd_absolute_mm - _TOL_MM
        if not rules.irecist:
            if target_pd or new[k] or ntp[k]:
                codes[k], progression, confirmed = "PD", float(days[k]), float(days[k])
                break
            codes[k] = base(k)
        elif episode is None:
            other = bool(new[k] > counted[0] or ntp[k] > counted[1])
            episode = (k, target_pd, other) if target_pd or other else None
            codes[k] = "UPD" if episode else base(k)
        else:
            u, by_target, by_other = episode
            if days[k] - days[u] < w0 - _TOL_DAY:  # too early to confirm or reset (choice 4)
                codes[k] = "UPD"
                continue
            if days[k] - days[u] > w1 + _TOL_DAY and days[k - 1] - days[u] < w0 - _TOL_DAY:
                notes.append(
                    f"iUPD on day {days[u]:g}: first scan >= {w0:g} d later is day {days[k]:g}, beyond the "
                    f"{w0:g}-{w1:g} d window; add a confirmation scan with ExplicitScans"
                )
            further = sums[k] - sums[u] >= rules.pd_absolute_mm - _TOL_MM if by_target else target_pd
            if further or new[k] > new[u] or ntp[k] > ntp[u]:
                codes[k], progression, confirmed = "CPD", float(days[u]), float(days[k])
                break
            if target_pd or (by_other and sums[k] > sums[u] - rules.pd_absolute_mm + _TOL_MM):
                codes[k] = "UPD"  # still progressed, or no decrease since the iUPD (choice 4)
                continue
            episode, counted, codes[k] = None, (int(new[k]), int(ntp[k])), base(k)  # reset
    bor, effective = _best_response(codes, days, rules, has_targets=bool(tgt), progressed=progression < math.inf)
    tag = (lambda c: "i" + c if c not in ("BL", "NA", "NE") else c) if rules.irecist else str
    changes = [pct[k] for k in effective if np.isfinite(pct[k])]
    return RecistAssessment(
        visit_days=days,
        responses=tuple(map(tag, codes)),
        best_overall_response=tag(bor),
        progressed=progression < math.inf,
        progression_day=progression,
        progression_confirmed_day=confirmed,
        unconfirmed_progression_day=float(days[episode[0]]) if episode and progression == math.inf else math.inf,
        response_day=float(min((days[k] for k, lv in effective.items() if lv >= 4), default=math.inf)),
        sums_mm=sums,
        nadir_mm=nadirs,
        percent_change_from_baseline=pct,
        best_percent_change=float(min(changes)) if changes else math.nan,
        notes=tuple(notes),
        rules=rules,
    )


def _best_response(
    codes: list[str], days: _FloatArray, rules: RecistRules, *, has_targets: bool, progressed: bool
) -> tuple[str, dict[int, int]]:
    """Best overall response (bare code) and the level each scored scan counts for (choice 6)."""
    scored = [k for k in range(1, len(codes)) if codes[k] != "NA"]
    level = {k: _LEVEL[codes[k]] for k in scored}
    effective = dict(level)
    for k in scored:
        if rules.require_confirmation and level[k] >= 4:
            effective[k] = 3  # unconfirmed CR/PR counts as SD (Eisenhauer 2009 table 3)
            for j in (j for j in scored if j > k):
                if level[j] < 4:
                    break
                if days[j] - days[k] >= rules.confirmation_min_day - _TOL_DAY:
                    effective[k] = min(level[i] for i in scored if k <= i <= j)
                    break
        if effective[k] == 3 and days[k] - days[0] < rules.sd_min_day - _TOL_DAY:
            effective[k] = -1  # SD before the protocol minimum does not count
    best = max(effective.values(), default=-1)
    if best >= 3:
        return {5: "CR", 4: "PR", 3: "SD" if has_targets else "NN"}[best], effective
    if progressed:
        return ("CPD" if rules.irecist else "PD"), effective
    return ("UPD" if "UPD" in codes else "NE"), effective


def _per_patient(name: str, value: ArrayLike, n: int) -> list[_FloatArray]:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return [array] * n
    if array.ndim > 2 or array.shape[0] != n:
        raise ParameterError(
            f"{name} must have shape (), ({n},) or ({n}, k) for {n} patients, got {array.shape}; "
            "give one value (or a row of event days, padded with inf) per patient"
        )
    return list(array)


def assess_population(
    diameters_mm: ArrayLike,
    visit_days: ScanSchedule | ExplicitScans | ArrayLike,
    selections: TargetSelection | Sequence[TargetSelection],
    *,
    new_lesion_day: ArrayLike = math.inf,
    nontarget_progression_day: ArrayLike = math.inf,
    rules: RecistRules = RECIST_1_1,
) -> dict[str, NDArray]:
    """Score every patient as :func:`assess` does, vectorised across patients.

    ``diameters_mm`` has shape ``(n_patients, n_lesions, n_visits)``; ``selections`` is one
    :class:`TargetSelection` for all or one per patient; event days are a scalar, one per patient
    ``(n_patients,)`` or rows ``(n_patients, k)`` padded with ``inf``. Returns arrays
    ``best_overall_response`` (str), ``objective_response``, ``progressed`` (bool),
    ``progression_day``, ``response_day``, ``best_percent_change``, each ``(n_patients,)``, and
    ``responses`` (str), ``sums_mm``, ``percent_change_from_baseline``, each ``(n_patients, n_visits)``.
    The values are those of :func:`assess` patient by patient (bit for bit; tests/unit/test_recist_batch.py);
    invalid input raises the error :func:`assess` raises, prefixed with the patient.
    """
    days, d = as_visit_days(visit_days), _lesion_array("diameters_mm", diameters_mm, 3)
    n = d.shape[0]
    selections = [selections] * n if isinstance(selections, TargetSelection) else list(selections)
    if len(selections) != n:
        raise ParameterError(f"selections has {len(selections)} entries for {n} patients; give one per patient")
    new = events_seen_batch(new_lesion_day, days, n)
    ntp = events_seen_batch(nontarget_progression_day, days, n)
    shapes_ok = all(len(s.sites) == d.shape[1] for s in selections)
    if (
        n == 0 or days.size < 2 or new is None or ntp is None or not shapes_ok
    ):  # the per-patient path raises the precise error
        return _assess_population_loop(
            d,
            days,
            selections,
            new_lesion_day=new_lesion_day,
            nontarget_progression_day=nontarget_progression_day,
            rules=rules,
        )
    order = np.full(d.shape[:2], -1, dtype=np.intp)
    nontarget = np.zeros(d.shape[:2], dtype=bool)
    node = np.zeros(d.shape[:2], dtype=bool)
    for p, s in enumerate(selections):
        order[p, : len(s.targets)] = s.targets
        nontarget[p, list(s.nontargets)] = True
        node[p] = s.is_node
    return tagged(assess_targets(d, days, Targets(order=order, nontarget=nontarget, node=node), new, ntp, rules), rules)


def _assess_population_loop(
    d: _FloatArray,
    days: _FloatArray,
    selections: Sequence[TargetSelection],
    *,
    new_lesion_day: ArrayLike,
    nontarget_progression_day: ArrayLike,
    rules: RecistRules,
) -> dict[str, NDArray]:
    """:func:`assess` patient by patient (the reference of :func:`assess_population`, and its error messages)."""
    n = d.shape[0]
    new = _per_patient("new_lesion_day", new_lesion_day, n)
    ntp = _per_patient("nontarget_progression_day", nontarget_progression_day, n)
    results = []
    for p in range(n):
        try:
            results.append(
                assess(d[p], days, selections[p], new_lesion_day=new[p], nontarget_progression_day=ntp[p], rules=rules)
            )
        except AbscopalError as exc:
            raise type(exc)(f"patient {p}: {exc}") from exc
    per_patient = (
        "best_overall_response",
        "objective_response",
        "progressed",
        "progression_day",
        "response_day",
        "best_percent_change",
    )
    out = {key: np.array([getattr(r, key) for r in results]).reshape(n) for key in per_patient}
    for key in ("responses", "sums_mm", "percent_change_from_baseline"):
        out[key] = np.array([getattr(r, key) for r in results]).reshape(n, days.size)
    return out


# ---- vectorised scoring (patients along axis 0; a loop over scans only) ----------------------------------------
RESPONSE_CODES = ("BL", "CR", "PR", "SD", "NN", "NE", "PD", "NA", "UPD", "CPD")
"""Bare response codes of :func:`assess_targets` (without the iRECIST ``i``), by index."""
_BL, _CR, _PR, _SD, _NN, _NE, _PD, _NA, _UPD, _CPD = range(len(RESPONSE_CODES))
_CODE_LEVEL = np.array([_LEVEL[c] for c in RESPONSE_CODES], dtype=np.int64)
_RECIST_NAMES = np.array(RESPONSE_CODES)
_IRECIST_NAMES = np.array([c if c in ("BL", "NA", "NE") else "i" + c for c in RESPONSE_CODES])


@dataclass(frozen=True, kw_only=True, eq=False)
class Targets:
    """Target selections of many patients as arrays ``(patient, lesion)``.

    Attributes
    ----------
    order
        Target lesion indices of each patient, largest first (the order of :attr:`TargetSelection.targets`),
        padded with -1.
    nontarget, node
        Whether each lesion is a non-target; whether it is a lymph node.
    """

    order: NDArray[np.intp]
    nontarget: NDArray[np.bool_]
    node: NDArray[np.bool_]


def select_targets_batch(
    baseline_mm: _FloatArray,
    sites: Sequence[Sequence[str]],
    *,
    exclude: Sequence[int] = (),
    rules: RecistRules = RECIST_1_1,
) -> Targets:
    """:func:`select_targets` for every patient at once: ``baseline_mm`` is ``(patient, lesion)``, ``sites`` one
    row of sites per patient; ``exclude`` applies to every patient. Same choices, bit for bit; invalid input
    raises the error of :func:`select_targets` for the first patient that has it."""
    base = np.asarray(baseline_mm, dtype=np.float64)
    names = np.asarray(sites, dtype=object) if len(sites) else np.zeros((0, 0), dtype=object)
    n_les = base.shape[1] if base.ndim == 2 else -1
    valid = (
        base.ndim == 2
        and names.shape == base.shape
        and bool(np.all(np.isfinite(base) & (base >= 0.0)))
        and set(names.ravel().tolist()) <= set(SITES)
        and all(isinstance(i, Integral) and not isinstance(i, bool) and 0 <= int(i) < n_les for i in exclude)
        and not isinstance(exclude, str)
    )
    if not valid or base.shape[0] == 0:  # the per-patient function raises the precise error
        sel = [select_targets(base[p], list(names[p]), exclude=exclude, rules=rules) for p in range(len(base))]
        order = np.full(base.shape, -1, dtype=np.intp)
        for p, s in enumerate(sel):
            order[p, : len(s.targets)] = s.targets
        return Targets(
            order=order,
            nontarget=np.array([[i in s.nontargets for i in range(n_les)] for s in sel], dtype=bool).reshape(
                base.shape
            ),
            node=np.isin(names, list(NODE_SITES)).reshape(base.shape),
        )
    n, n_les = base.shape
    node = np.isin(names, list(NODE_SITES)).astype(bool)
    _, organ = np.unique(names.astype(str), return_inverse=True)
    organ = organ.reshape(n, n_les)
    excluded = np.zeros(n_les, dtype=bool)
    excluded[[int(i) for i in exclude]] = True
    hidden = base < np.where(node, rules.node_normal_mm, rules.gone_mm) - _TOL_MM
    measurable = base >= np.where(node, rules.node_measurable_short_axis_mm, rules.measurable_mm) - _TOL_MM
    ranked = np.argsort(-base, axis=1, kind="stable")  # stable: equal sizes keep index order
    rows = np.arange(n)
    per_organ = np.zeros((n, int(organ.max(initial=0)) + 1), dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    order = np.full((n, n_les), -1, dtype=np.intp)
    target = np.zeros((n, n_les), dtype=bool)
    for r in range(n_les):
        i = ranked[:, r]
        o = organ[rows, i]
        take = (
            (count < rules.max_targets)
            & ~excluded[i]
            & measurable[rows, i]
            & (per_organ[rows, o] < rules.max_targets_per_organ)
        )
        order[rows[take], count[take]] = i[take]
        target[rows[take], i[take]] = True
        per_organ[rows[take], o[take]] += 1
        count += take
    return Targets(order=order, nontarget=~target & ~excluded[None, :] & ~hidden, node=node)


def events_seen_batch(event_day: ArrayLike, days: _FloatArray, n: int) -> NDArray[np.intp] | None:
    """:func:`~abscopal.endpoints.scans.events_seen` of every patient, ``(patient, visit)``; ``event_day`` is a
    scalar, ``(patient,)`` or ``(patient, k)``. ``None`` if the shape or any day is invalid (the per-patient
    functions raise the precise error)."""
    array = np.asarray(event_day, dtype=np.float64)
    if array.ndim == 0:
        array = np.broadcast_to(array, (n, 1))
    elif array.ndim == 1 and array.shape[0] == n:
        array = array[:, None]
    elif not (array.ndim == 2 and array.shape[0] == n):
        return None
    if np.any(np.isnan(array)) or np.any(array <= days[0]):
        return None
    return (array[:, :, None] <= days[None, None, :]).sum(axis=1)


def target_sums(d: _FloatArray, targets: Targets, rules: RecistRules) -> _FloatArray:
    """Sum of the target diameters ``(patient, visit)`` of validated diameters ``d`` ``(patient, lesion, visit)``:
    below ``gone_mm`` a lesion counts 0 mm, and the targets are added in their order (largest first), as
    :func:`assess` adds them, so the sums are bit-identical to its ``sums_mm``."""
    n, n_les, n_vis = d.shape
    rows = np.arange(n)
    measured = np.where(d < rules.gone_mm, 0.0, d)  # choice 1: below gone_mm is 0 mm
    sums = np.zeros((n, n_vis))
    for r in range(n_les):
        i = targets.order[:, r]
        has = i >= 0
        if not has.any():
            break
        lesion = np.where(has[:, None], measured[rows, np.maximum(i, 0)], 0.0)
        sums[has] += lesion[has]
    return sums


def assess_targets(
    d: _FloatArray,
    days: _FloatArray,
    targets: Targets,
    new: NDArray[np.intp],
    ntp: NDArray[np.intp],
    rules: RecistRules,
) -> dict[str, NDArray]:
    """The rules and the arithmetic of :func:`assess`, for all patients at once.

    ``d`` is ``(patient, lesion, visit)``, validated; ``days`` the validated scan days (at least two);
    ``new`` and ``ntp`` the events seen at each scan ``(patient, visit)``. Returns the arrays of
    :func:`assess_population`, with the responses as integer codes (``codes``, ``bor_code``: indices into
    :data:`RESPONSE_CODES`) instead of names.
    """
    n, n_les, n_vis = d.shape
    rows = np.arange(n)
    measured = np.where(d < rules.gone_mm, 0.0, d)  # choice 1: below gone_mm is 0 mm
    node = targets.node
    resolved = np.where(node[:, :, None], measured < rules.node_normal_mm - _TOL_MM, measured == 0.0)
    sums = target_sums(d, targets, rules)
    target_cr = np.ones((n, n_vis), dtype=bool)
    for r in range(n_les):
        i = targets.order[:, r]
        has = i >= 0
        if not has.any():
            break
        target_cr &= ~has[:, None] | resolved[rows, np.maximum(i, 0)]
    has_tgt = targets.order[:, 0] >= 0
    has_non = targets.nontarget.any(axis=1)
    nontarget_cr = np.all(~targets.nontarget[:, :, None] | resolved, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(sums[:, :1] > 0.0, 100.0 * (sums - sums[:, :1]) / sums[:, :1], np.nan)
    codes = np.full((n, n_vis), _NA, dtype=np.int64)
    codes[:, 0] = _BL
    nadirs = np.minimum.accumulate(sums, axis=1)
    progression = np.full(n, math.inf)
    active = np.ones(n, dtype=bool)
    in_episode = np.zeros(n, dtype=bool)
    ep_u = np.zeros(n, dtype=np.intp)
    ep_target = np.zeros(n, dtype=bool)
    ep_other = np.zeros(n, dtype=bool)
    counted_new = np.zeros(n, dtype=np.intp)
    counted_ntp = np.zeros(n, dtype=np.intp)
    w0 = rules.irecist_window_day[0]
    base0 = sums[:, 0]
    for k in range(1, n_vis):
        present = (new[:, k] > 0) | (ntp[:, k] > 0)
        base = np.where(
            has_tgt,
            np.where(
                target_cr[:, k],
                np.where(nontarget_cr[:, k] & ~present, _CR, _PR),
                np.where(base0 - sums[:, k] >= rules.pr_fraction * base0 - _TOL_MM, _PR, _SD),
            ),
            np.where(has_non, np.where(nontarget_cr[:, k] & ~present, _CR, _NN), _NE),
        )
        nadir = nadirs[:, k - 1]
        rise = sums[:, k] - nadir
        target_pd = has_tgt & (rise >= rules.pd_fraction * nadir - _TOL_MM) & (rise >= rules.pd_absolute_mm - _TOL_MM)
        if not rules.irecist:
            pd = active & (target_pd | (new[:, k] > 0) | (ntp[:, k] > 0))
            codes[pd, k] = _PD
            progression[pd] = days[k]
            go_on = active & ~pd
            codes[go_on, k] = base[go_on]
            active = go_on
            continue
        fresh = active & ~in_episode
        follow = active & in_episode
        other = (new[:, k] > counted_new) | (ntp[:, k] > counted_ntp)
        start = fresh & (target_pd | other)
        codes[fresh, k] = np.where(start, _UPD, base)[fresh]
        # an episode running since scan u
        u = ep_u
        early = follow & (days[k] - days[u] < w0 - _TOL_DAY)  # too early to confirm or reset (choice 4)
        codes[early, k] = _UPD
        due = follow & ~early
        sums_u = sums[rows, u]
        further = np.where(ep_target, sums[:, k] - sums_u >= rules.pd_absolute_mm - _TOL_MM, target_pd)
        confirm = due & (further | (new[:, k] > new[rows, u]) | (ntp[:, k] > ntp[rows, u]))
        codes[confirm, k] = _CPD
        progression[confirm] = days[u[confirm]]
        rest = due & ~confirm
        still = target_pd | (ep_other & (sums[:, k] > sums_u - rules.pd_absolute_mm + _TOL_MM))
        codes[rest & still, k] = _UPD
        reset = rest & ~still
        codes[reset, k] = base[reset]
        in_episode[reset] = False
        counted_new[reset] = new[reset, k]
        counted_ntp[reset] = ntp[reset, k]
        in_episode[start] = True
        ep_u[start] = k
        ep_target[start] = target_pd[start]
        ep_other[start] = other[start]
        active &= ~confirm
    progressed = progression < math.inf
    # best overall response (choice 6), as _best_response
    scored = codes != _NA
    scored[:, 0] = False
    level = _CODE_LEVEL[codes]
    effective = level.copy()
    if rules.require_confirmation:
        for k in range(1, n_vis):
            look = scored[:, k] & (level[:, k] >= 4)
            effective[look, k] = 3  # unconfirmed CR/PR counts as SD (Eisenhauer 2009 table 3)
            low = level[:, k].copy()
            for j in range(k + 1, n_vis):
                if not look.any():
                    break
                stop = look & (~scored[:, j] | (level[:, j] < 4))
                look &= ~stop
                low = np.minimum(low, level[:, j])
                ok = look & (days[j] - days[k] >= rules.confirmation_min_day - _TOL_DAY)
                effective[ok, k] = low[ok]
                look &= ~ok
    early_sd = (effective == 3) & (days[None, :] - days[0] < rules.sd_min_day - _TOL_DAY)
    effective[early_sd & scored] = -1  # SD before the protocol minimum does not count
    best = np.where(scored, effective, -1).max(axis=1, initial=-1)
    bor = np.select(
        [best == 5, best == 4, (best == 3) & has_tgt, best == 3, progressed, (codes == _UPD).any(axis=1)],
        [_CR, _PR, _SD, _NN, np.where(rules.irecist, _CPD, _PD), _UPD],
        _NE,
    )
    responding = scored & (effective >= 4)
    response_day = np.where(responding, days[None, :], math.inf).min(axis=1, initial=math.inf)
    counted = scored & np.isfinite(pct)
    best_pct = np.where(counted, pct, math.inf).min(axis=1, initial=math.inf)
    best_pct[~counted.any(axis=1)] = math.nan
    return {
        "codes": codes,
        "bor_code": bor,
        "objective_response": (bor == _CR) | (bor == _PR),
        "progressed": progressed,
        "progression_day": progression,
        "response_day": response_day,
        "best_percent_change": best_pct,
        "sums_mm": sums,
        "percent_change_from_baseline": pct,
    }


def _names(codes: NDArray[np.int64], rules: RecistRules) -> NDArray[np.str_]:
    """Response names of integer codes, as :func:`assess` writes them (``<U`` of the longest name present)."""
    table = _IRECIST_NAMES if rules.irecist else _RECIST_NAMES
    used = np.unique(codes)
    width = max((len(table[c]) for c in used), default=1)
    return table[codes].astype(f"<U{width}")


def tagged(batch: dict[str, NDArray], rules: RecistRules) -> dict[str, NDArray]:
    """The :func:`assess_population` dictionary of an :func:`assess_targets` result (codes become names)."""
    out = {k: v for k, v in batch.items() if k not in ("codes", "bor_code")}
    out["best_overall_response"] = _names(batch["bor_code"], rules)
    out["responses"] = _names(batch["codes"], rules)
    return out
