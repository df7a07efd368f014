"""Sensitivity of a study's conclusions to the parameters that are assumptions (``abscopal sensitivity``).

:func:`run_sensitivity` asks whether the headline conclusions of a study (:mod:`abscopal.studies.design`) survive
the parameters nobody measured. It varies every model parameter that the model card counts as *not sourced* and every
value the fit estimated, samples them with SALib (Morris elementary effects or Sobol' indices), runs only the study
cells the conclusions need on the same virtual patients for every sample, and reports the indices with bootstrap
confidence intervals, a figure and, for each conclusion, the share of samples in which its sign holds.

What is varied (:func:`parameter_ranges`)
    *Not sourced*: the biological parameters whose source category, by the rule behind the model card's
    ``parameters.sourced_fraction`` (:func:`abscopal.diagnose.parameter_sources`), is not ``human`` or ``fit``: an
    assumption (the word in the source), animal data, only the seed review or a project issue, no source, or a value
    the fit held fixed because it could not identify it. Range: ``fold``-fold (default 2) around the value in use
    (the fit's value if it sets one, else the model default), ``[v / 2, 2 v]``, cut to the parameter's bounds
    (whichever is narrower), sampled uniformly in log space. A parameter whose value is 0 (a switched-off term) has no
    fold range and is held fixed (listed as such). Per-lesion copies (``name_0``, ``name_1``, ...) move together as
    one factor. Drug pharmacokinetics and per-patient inputs (lesion sizes, PD-L1 TPS, local-control draws) are
    neither biological parameters nor varied (their between-patient spread is the virtual population's).
    *Fitted*: every free value of the fit (model parameters and ``survival__`` fields), over its 95% profile-likelihood
    interval when the fit stores a closed one, else over ``n_se`` (default 2) standard errors, on the log scale for a
    positive value with a lower bound >= 0 (the rule of the fit's parameter draws,
    :func:`abscopal.fitted.draws.on_log_scale`: ``v exp(+-2 se / v)``), else on its own scale (``v +- 2 se``); cut to
    the fit's bounds. A fitted value without a standard error gets the fold range. The standard errors are used as
    the fit stores them (not rescaled here).
    Human-sourced parameters are held at their values: the question is what the assumptions do. SALib samples the
    unit cube; factor ``i`` at ``u`` takes ``lower (upper / lower) ** u`` (log) or ``lower + u (upper - lower)``
    (linear).

The conclusions (:data:`CONTRASTS`)
    At the *reference timing* (default: the study's first timing level that is not at progression), site and drug
    (the first levels of those axes):

    ``log_hr_os``
        Mean over the SBRT regimens (default 24 Gy/3 and 50 Gy/4) of the log Cox hazard ratio of overall survival
        of the SBRT cell vs the no-RT cell, with follow-up censored at ``horizon_month`` (12) after the study start
        (the "12-month OS hazard ratio"). Negative: SBRT lowers the hazard of death.
    ``abscopal_orr_difference``
        Mean out-of-field ORR (the study's ``abscopal_orr``) of the SBRT regimens minus that of the conventional
        regimens (default 45 Gy/15 and 60 Gy/30). Positive: SBRT gives more abscopal responses.
    ``timing_margin_month``
        *Best RT timing* is categorical. The timing regimen (default SBRT 24 Gy/3) is run at every timing level of
        the study; a timing's score is the 12-month restricted mean overall survival (area under the Kaplan-Meier
        curve from the study start to ``horizon_month``, months; a continuous score, where the 12-month survival
        rate of 100-200 patients moves in steps of one patient and ties). At the reference parameter values the
        timing with the highest score is *best*, the next *second*; the contrast is score(best) - score(second) in
        each sample (positive: the reference's best timing still beats its runner-up). Besides its sign share, the
        report gives the share of samples in which each timing is best (ties: the earliest level).

    The *reference* is one extra run at the centre values (every parameter as in the study); a conclusion's
    statement is its sign there. Its *share* is the fraction of the samples with a finite contrast whose sign equals
    the reference's (a zero contrast does not hold); the verdict is :func:`abscopal.studies.robustness.verdict`
    (robust at >= :data:`~abscopal.studies.robustness.ROBUST_SHARE`). For Sobol' the samples are quasi-random and
    uniform over the ranges, so the share estimates the probability that the sign holds under independent uniform
    (log-uniform) uncertainty on every factor; for Morris they are the points of the trajectories (a coarse grid of
    ``num_levels`` levels per factor), a cruder estimate of the same.

Methods (SALib 1.6)
    ``morris``: ``SALib.sample.morris.sample(problem, N=samples, num_levels, seed)``, ``samples`` trajectories of
    ``k + 1`` points (``samples x (k + 1)`` runs); ``SALib.analyze.morris.analyze`` gives ``mu``, ``mu_star`` (mean
    absolute elementary effect: the change of the contrast per full range of the factor), ``sigma`` (spread:
    interactions or non-linearity) and ``mu_star_conf`` (half-width of the bootstrap ``conf_level`` interval).
    Trajectories with a non-finite contrast are left out of that contrast's analysis (counted in the report).
    ``sobol``: ``SALib.sample.sobol.sample(problem, samples, calc_second_order=False, scramble=True, seed)``
    (``samples x (k + 2)`` runs; ``samples`` a power of 2); ``SALib.analyze.sobol.analyze`` gives first-order ``S1``
    and total ``ST`` indices with bootstrap half-widths ``S1_conf``, ``ST_conf``. A contrast with a non-finite value
    has no Sobol' indices (NaN). The bootstrap uses ``seed + 1`` (SALib's Sobol' analysis ignores a seed of 0).

Runs (:func:`run_sensitivity`)
    Every sample is a parameter draw of a study cell (:class:`~abscopal.studies.cell.CellTask`, run by
    :func:`~abscopal.studies.cell.run_cell` exactly as in a study): the patients are drawn once from the study's
    population seed (common random numbers: the same patients in every cell and sample), the samples are split into
    chunks of ``chunk`` per task, and the tasks run in process or on Dask (``workers`` / ``scheduler``) with identical
    results (each draw is a pure function of its values and the patients). Study parameter draws are not used.

Outputs (``OUT``, written as a study writes its own: a staging folder switched in by one atomic link rename; a
folder that is neither new, empty nor a sensitivity output is refused; inputs may not lie inside it)
    ``indices.csv`` (one row per contrast x factor: range, indices, rank), ``samples.nc`` (the design, the parameter
    values, every contrast and timing score per sample, the indices; provenance in ``attrs``), ``tornado.png``,
    ``report.md`` and ``sensitivity.json`` (verdicts, timing shares, top factors, ranges, provenance; written last).
    Written into ``<study folder>/sensitivity/``, the study report shows the verdicts
    (:mod:`abscopal.studies.robustness`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .._version import __version__
from ..endpoints import DAYS_PER_MONTH
from ..endpoints.survival import hazard_ratio, kaplan_meier
from ..errors import AbscopalError, ParameterError
from ..io import write_atomic, write_netcdf
from ..provenance import environment
from .cell import CellTask
from .design import StudyDesign
from .outputs import _clean_staging, check_output_folder, new_staging, switch_outputs
from .robustness import FORMAT, MANIFEST, ROBUST_SHARE, VERDICTS, study_identity, verdict
from .run import _execute, _fit_path, _progress_printer, check_scheduler, prepare_study

if TYPE_CHECKING:
    from ..fitted.format import Fit
    from ..model.spec import ModelSpec

__all__ = [
    "CONTRASTS",
    "DEFAULT_SAMPLES",
    "METHODS",
    "MIN_SAMPLES",
    "OUTPUT_NAMES",
    "Conclusion",
    "Factor",
    "SensitivityResult",
    "SensitivitySpec",
    "analyze_indices",
    "check_sensitivity_dir",
    "contrast_text",
    "format_verdicts",
    "parameter_ranges",
    "restricted_mean_month",
    "run_sensitivity",
    "sample_unit",
]

METHODS = ("morris", "sobol")
"""The sensitivity methods (SALib)."""
MIN_SAMPLES: Mapping[str, int] = {"morris": 2, "sobol": 4}
"""Fewest ``samples`` per method: Morris needs two trajectories for a spread and a bootstrap; Sobol' a base sample
of 4 (a power of 2)."""
DEFAULT_SAMPLES: Mapping[str, int] = {"morris": 10, "sobol": 64}
"""Default ``samples``: Morris trajectories, Sobol' base sample size."""
INDICES: Mapping[str, tuple[str, ...]] = {
    "morris": ("mu", "mu_star", "mu_star_conf", "sigma"),
    "sobol": ("S1", "S1_conf", "ST", "ST_conf"),
}
"""Indices of each method (``*_conf``: half-width of the bootstrap interval); the ranking index is the second
(``mu_star``) for Morris and the third (``ST``) for Sobol'."""
_RANK_INDEX = {"morris": "mu_star", "sobol": "ST"}
CONTRASTS: Mapping[str, tuple[str, str]] = {
    "log_hr_os": ("1", "mean log Cox hazard ratio of OS (censored at the horizon), SBRT vs no RT"),
    "abscopal_orr_difference": ("1", "out-of-field ORR, mean of the SBRT regimens minus mean of the conventional"),
    "timing_margin_month": (
        "month",
        "12-month restricted mean OS of the timing regimen: the reference's best timing minus its second best",
    ),
}
"""The contrasts (units, description); see the module docstring."""
NOT_SOURCED = ("assumption", "preclinical", "review", "unsourced", "unidentified_fit")
"""Source categories that are varied (every category of :func:`abscopal.diagnose.parameter_sources` outside
:data:`abscopal.diagnose.SOURCED_CATEGORIES`)."""
OUTPUT_NAMES = ("indices.csv", "samples.nc", "tornado.png", "report.md", MANIFEST)
"""The files of a sensitivity output folder (``sensitivity.json`` last)."""


# ---- the specification -------------------------------------------------------------------------------------------
def _integer(name: str, flag: str, value: Any, low: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ParameterError(f"{name} = {value!r} ({flag}): must be an integer >= {low}; {fix}")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class SensitivitySpec:
    """How to run a sensitivity analysis (module docstring); every field is checked on construction.

    Parameters
    ----------
    method
        ``"morris"`` or ``"sobol"``.
    samples
        Morris trajectories or the Sobol' base sample (a power of 2); default :data:`DEFAULT_SAMPLES`.
    seed
        Seed of the SALib design (and, plus one, of its bootstrap). The patients use the study's seed.
    num_levels
        Grid levels of the Morris design (even).
    conf_level, num_resamples
        Level and bootstrap resamples of the confidence intervals of the indices.
    fold
        Range of the not-sourced parameters: ``[v / fold, v * fold]`` cut to the bounds.
    n_se
        Range of the fitted values without a closed profile interval: ``n_se`` standard errors each side.
    horizon_month
        Horizon of the OS hazard ratio (censoring) and of the restricted mean OS of the timing contrast.
    robust_share
        Share of samples in which a conclusion's sign must hold for the verdict "robust".
    reference_timing
        Timing label of the regimen contrasts; None: the first timing level that is not at progression.
    sbrt, conventional, timing_regimen
        Fractionation labels of the study's SBRT and conventional regimens and of the regimen whose timing is judged.
    chunk
        Samples per task (the unit of work sent to Dask); results do not depend on it.
    factors
        Vary only these factors (names as in :func:`parameter_ranges`; e.g. the top of a Morris screening, for a
        Sobol' analysis); the others stay at their reference values. None: every factor the rule selects.
    """

    method: str = "morris"
    samples: int | None = None
    seed: int = 0
    num_levels: int = 4
    conf_level: float = 0.95
    num_resamples: int = 100
    fold: float = 2.0
    n_se: float = 2.0
    horizon_month: float = 12.0
    robust_share: float = ROBUST_SHARE
    reference_timing: str | None = None
    sbrt: tuple[str, ...] = ("sbrt_24gy_3fx", "sbrt_50gy_4fx")
    conventional: tuple[str, ...] = ("conv_45gy_15fx", "conv_60gy_30fx")
    timing_regimen: str = "sbrt_24gy_3fx"
    chunk: int = 8
    factors: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or self.method not in METHODS:
            raise ParameterError(
                f"method = {self.method!r} (--method): unknown sensitivity method; give one of {', '.join(METHODS)}"
            )
        low = MIN_SAMPLES[self.method]
        samples = DEFAULT_SAMPLES[self.method] if self.samples is None else self.samples
        what = "trajectories" if self.method == "morris" else "base samples (a power of 2)"
        samples = _integer("samples", "--samples", samples, low, f"{self.method} needs at least {low} {what}")
        if self.method == "sobol" and samples & (samples - 1):
            up = 1 << samples.bit_length()
            raise ParameterError(
                f"samples = {samples} (--samples): the Sobol' base sample must be a power of 2 (its balance "
                f"properties need it); give {up // 2} or {up}"
            )
        object.__setattr__(self, "samples", samples)
        _integer("seed", "--seed", self.seed, 0, "give a non-negative integer, e.g. --seed 0")
        levels = _integer("num_levels", "num_levels", self.num_levels, 2, "give an even number, e.g. 4")
        if levels % 2:
            raise ParameterError(f"num_levels = {levels}: Morris needs an even number of levels; give {levels + 1}")
        _integer("num_resamples", "num_resamples", self.num_resamples, 10, "give e.g. 100")
        _integer("chunk", "chunk", self.chunk, 1, "give e.g. 8")
        for name, value, lo, hi in (
            ("conf_level", self.conf_level, 0.0, 1.0),
            ("robust_share", self.robust_share, 0.5, 1.0),
        ):
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not lo < value <= hi
                or (name == "conf_level" and value == 1.0)
            ):
                raise ParameterError(
                    f"{name} = {value!r}: must be a number in ({lo:g}, {hi:g}{')' if name == 'conf_level' else ']'}"
                )
        for name, value in (("fold", self.fold), ("n_se", self.n_se), ("horizon_month", self.horizon_month)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ParameterError(f"{name} = {value!r}: must be a finite number > 0")
        if self.fold <= 1:
            raise ParameterError(f"fold = {self.fold!r}: must be > 1 (2 gives [v/2, 2v])")
        for name in ("sbrt", "conventional"):
            labels = getattr(self, name)
            if not isinstance(labels, tuple) or not labels or not all(isinstance(x, str) for x in labels):
                raise ParameterError(f"{name} = {labels!r}: give a non-empty tuple of fractionation labels")
        if self.factors is not None and (
            not isinstance(self.factors, tuple) or not self.factors or not all(isinstance(x, str) for x in self.factors)
        ):
            raise ParameterError(
                f"factors = {self.factors!r} (--factors): give factor names, e.g. --factors dc_rest_signal"
            )

    def n_runs(self, n_factors: int) -> int:
        """Model evaluations of the design: ``samples (k + 1)`` (Morris) or ``samples (k + 2)`` (Sobol')."""
        return int(self.samples or 0) * (n_factors + (1 if self.method == "morris" else 2))


# ---- the parameter ranges ----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Factor:
    """One varied quantity: the parameters it sets, its range and how it is sampled.

    Attributes
    ----------
    name
        The parameter's stem (per-lesion copies share it) or the fitted name (``survival__...``).
    parameters
        The names it sets (all to the same value).
    kind
        ``"not sourced"`` or ``"fitted"``.
    category
        Source category (:func:`abscopal.diagnose.parameter_sources`; ``"fit"`` for a fitted value).
    centre
        The value at the reference (the study's value).
    lower, upper
        The range.
    scale
        ``"log"`` (log-uniform) or ``"linear"`` (uniform).
    rule
        How the range was chosen, in words.
    units
        The parameter's units (``"1"`` if unknown).
    """

    name: str
    parameters: tuple[str, ...]
    kind: str
    category: str
    centre: float
    lower: float
    upper: float
    scale: str
    rule: str
    units: str = "1"

    def value(self, u: np.ndarray | float) -> np.ndarray:
        """The values at unit-cube coordinates ``u`` (0: ``lower``, 1: ``upper``)."""
        u = np.asarray(u, dtype=float)
        if self.scale == "log":
            return np.asarray(self.lower * (self.upper / self.lower) ** u)
        return np.asarray(self.lower + u * (self.upper - self.lower))

    def describe(self) -> dict[str, Any]:
        """Plain record for the manifest and the CSV."""
        return asdict(self) | {"parameters": list(self.parameters)}


def _fold_range(value: float, lower: float, upper: float, fold: float) -> tuple[float, float, str] | str:
    """``[v / fold, v * fold]`` cut to the bounds, or the reason there is none."""
    if value == 0:
        return "value 0 (a switched-off term): no fold range; held at 0"
    if value > 0:
        lo, hi = max(lower, value / fold), min(upper, value * fold)
        scale = "log"
    else:
        lo, hi = max(lower, value * fold), min(upper, value / fold)
        scale = "linear"
    if not lo < hi:
        return f"bounds [{lower:g}, {upper:g}] leave no range around {value:g}; held fixed"
    return lo, hi, scale


def parameter_ranges(
    spec: ModelSpec, fit: Fit | None, values: Mapping[str, float], sens: SensitivitySpec
) -> tuple[tuple[Factor, ...], dict[str, str]]:
    """The factors of a sensitivity analysis and the parameters held fixed (module docstring, "What is varied").

    Parameters
    ----------
    spec
        The study's model.
    fit
        The study's fit (None: model defaults; then only the not-sourced parameters vary).
    values
        The values the study runs with (:meth:`Fit.all_values <abscopal.fitted.format.Fit.all_values>`; ``{}``
        without a fit); parameters not in it take the model default.
    sens
        ``fold`` and ``n_se``.

    Returns
    -------
    factors, fixed
        The factors (fitted first, then the not-sourced parameters in model order) and ``{name: reason}`` of the
        biological parameters that are not varied (human-sourced, or with no range).
    """
    from ..diagnose import parameter_sources
    from ..fitted.draws import on_log_scale

    params = {p.name: p for p in spec.parameters}
    records = {} if fit is None else {r.name: r for r in fit.parameters().values()}
    free = [k for k in ([] if fit is None else fit.values) if k in records and records[k].vary]
    fixed_by_fit = [] if fit is None else list(fit.provenance.get("base_parameters") or {})
    src = parameter_sources(spec, fitted=free, fixed_by_fit=fixed_by_fit)
    factors: list[Factor] = []
    fixed: dict[str, str] = {}
    profiles = (fit.profiles or {}) if fit is not None else {}
    for name in free:
        rec = records[name]
        centre = float(values.get(name, fit.values[name] if fit is not None else rec.value))
        lo_b = -math.inf if rec.min is None else float(rec.min)
        hi_b = math.inf if rec.max is None else float(rec.max)
        if name in params:
            lo_b, hi_b = max(lo_b, params[name].lower), min(hi_b, params[name].upper)
        se = None if fit is None else fit.stderr.get(name)
        prof = profiles.get(name) or {}
        closed = prof.get("closed_95")
        units = params[name].units if name in params else "1"
        if isinstance(closed, list | tuple) and len(closed) == 2 and all(closed):
            lo, hi = (float(x) for x in prof["interval_95"])
            lo, hi = max(lo, lo_b), min(hi, hi_b)
            scale = "log" if bool(on_log_scale(centre, lo_b)) and lo > 0 else "linear"
            rule = "95% profile-likelihood interval of the fit"
        elif se is not None and math.isfinite(se) and se > 0:
            if bool(on_log_scale(centre, lo_b)):
                step = math.exp(sens.n_se * se / centre)
                lo, hi, scale = centre / step, centre * step, "log"
                rule = f"fit value x/÷ exp({sens.n_se:g} SE / value) (log scale)"
            else:
                lo, hi, scale = centre - sens.n_se * se, centre + sens.n_se * se, "linear"
                rule = f"fit value +- {sens.n_se:g} SE"
            lo, hi = max(lo, lo_b), min(hi, hi_b)
        else:
            r = _fold_range(centre, lo_b, hi_b, sens.fold)
            if isinstance(r, str):
                fixed[name] = f"fitted without a standard error; {r}"
                continue
            lo, hi, scale = r
            rule = f"fitted without a standard error: {sens.fold:g}-fold"
        if not lo < hi:
            fixed[name] = f"fitted; its range [{lo:g}, {hi:g}] within the bounds is empty; held fixed"
            continue
        factors.append(
            Factor(
                name=name,
                parameters=(name,),
                kind="fitted",
                category="fit",
                centre=centre,
                lower=lo,
                upper=hi,
                scale=scale,
                rule=rule,
                units=units,
            )
        )
    for stem, category in src["categories"].items():
        if category == "fit":
            continue  # a free fitted value: above
        members = tuple(src["members"][stem])
        if category not in NOT_SOURCED:
            fixed[stem] = f"sourced ({category})"
            continue
        p = params[members[0]]
        centre = float(values.get(p.name, p.default))
        if any(float(values.get(m, params[m].default)) != centre for m in members[1:]):
            fixed[stem] = "per-lesion copies with different values; held fixed"
            continue
        r = _fold_range(centre, p.lower, p.upper, sens.fold)
        if isinstance(r, str):
            fixed[stem] = f"{category}; {r}"
            continue
        lo, hi, scale = r
        cut = lo > centre / sens.fold or hi < centre * sens.fold if centre > 0 else True
        rule = f"{sens.fold:g}-fold" + (" cut to the bounds" if cut else "")
        factors.append(
            Factor(
                name=stem,
                parameters=members,
                kind="not sourced",
                category=category,
                centre=centre,
                lower=lo,
                upper=hi,
                scale=scale,
                rule=rule,
                units=p.units,
            )
        )
    return tuple(factors), fixed


# ---- SALib ---------------------------------------------------------------------------------------------------------
def _salib() -> Any:
    try:
        import SALib  # noqa: F401
        from SALib.analyze import morris as morris_analyze
        from SALib.analyze import sobol as sobol_analyze
        from SALib.sample import morris as morris_sample
        from SALib.sample import sobol as sobol_sample
    except ImportError:  # pragma: no cover - a declared dependency
        raise AbscopalError(
            "abscopal sensitivity needs SALib (a dependency of abscopal): pip install 'SALib>=1.6'"
        ) from None
    return morris_sample, morris_analyze, sobol_sample, sobol_analyze


def _problem(names: Sequence[str]) -> dict[str, Any]:
    """SALib's problem on the unit cube (factor values are mapped by :meth:`Factor.value`)."""
    return {"num_vars": len(names), "names": list(names), "bounds": [[0.0, 1.0]] * len(names)}


def sample_unit(sens: SensitivitySpec, names: Sequence[str]) -> np.ndarray:
    """The SALib design on the unit cube, ``(runs, k)`` (module docstring, "Methods")."""
    morris_sample, _, sobol_sample, _ = _salib()
    problem = _problem(names)
    if sens.method == "morris":
        x = morris_sample.sample(problem, N=sens.samples, num_levels=sens.num_levels, seed=sens.seed)
    else:
        x = sobol_sample.sample(problem, sens.samples, calc_second_order=False, scramble=True, seed=sens.seed)
    return np.asarray(x, dtype=float)


def analyze_indices(sens: SensitivitySpec, names: Sequence[str], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """SALib's indices of one output ``y`` over the design ``x`` (unit cube): ``{index: (k,) array}`` for the
    method's :data:`INDICES`, plus ``n_used`` (runs analysed) and ``note`` (why some were left out, or "")."""
    _, morris_analyze, _, sobol_analyze = _salib()
    k = len(names)
    problem = _problem(names)
    y = np.asarray(y, dtype=float)
    nan = {i: np.full(k, np.nan) for i in INDICES[sens.method]}
    seed = sens.seed + 1
    if sens.method == "morris":
        traj = x.reshape(-1, k + 1, k)
        ok = np.all(np.isfinite(y.reshape(-1, k + 1)), axis=1)
        note = "" if ok.all() else f"{int((~ok).sum())} of {ok.size} trajectories with a non-finite value left out"
        if ok.sum() < 2:
            return nan | {"n_used": int(ok.sum()) * (k + 1), "note": note or "fewer than 2 trajectories"}
        si = morris_analyze.analyze(
            problem,
            traj[ok].reshape(-1, k),
            y.reshape(-1, k + 1)[ok].ravel(),
            num_resamples=sens.num_resamples,
            conf_level=sens.conf_level,
            num_levels=sens.num_levels,
            seed=seed,
        )
        out = {i: np.asarray(si[i], dtype=float) for i in INDICES["morris"]}
        return out | {"n_used": int(ok.sum()) * (k + 1), "note": note}
    if not np.all(np.isfinite(y)):
        return nan | {"n_used": 0, "note": f"{int((~np.isfinite(y)).sum())} non-finite values: no Sobol' indices"}
    if float(np.std(y)) == 0.0:  # a constant output has no variance to apportion
        zero = {i: np.zeros(k) for i in INDICES["sobol"]}
        return zero | {"n_used": int(y.size), "note": "constant output: every index 0"}
    si = sobol_analyze.analyze(
        problem,
        y,
        calc_second_order=False,
        num_resamples=sens.num_resamples,
        conf_level=sens.conf_level,
        seed=seed,
    )
    out = {i: np.asarray(si[i], dtype=float) for i in INDICES["sobol"]}
    return out | {"n_used": int(y.size), "note": ""}


# ---- contrasts from the cells --------------------------------------------------------------------------------------
def restricted_mean_month(time_day: np.ndarray, event: np.ndarray, horizon_day: float) -> float:
    """Restricted mean survival to ``horizon_day``: the area under the Kaplan-Meier curve from 0 to the horizon,
    months (without censoring before the horizon: the mean of ``min(T, horizon)``); NaN for a failed run (NaN
    times)."""
    if not np.all(np.isfinite(np.asarray(time_day, dtype=float))):
        return math.nan
    km = kaplan_meier(time_day, event)
    t = np.asarray(km.time_day, dtype=float)
    inside = t < horizon_day
    edges = np.append(t[inside], horizon_day)
    return float(np.sum(np.asarray(km.survival)[inside] * np.diff(edges)) / DAYS_PER_MONTH)


def _log_hr(t_ref: np.ndarray, e_ref: np.ndarray, t_arm: np.ndarray, e_arm: np.ndarray, horizon_day: float) -> float:
    if not (np.all(np.isfinite(t_ref)) and np.all(np.isfinite(t_arm))):
        return math.nan  # a failed run (CellTask.failed_draws)
    t = np.minimum(np.concatenate([t_ref, t_arm]), horizon_day)
    e = np.concatenate([e_ref, e_arm]).astype(bool) & (np.concatenate([t_ref, t_arm]) <= horizon_day)
    try:
        hr = hazard_ratio(t, e, np.repeat([0, 1], t_ref.size), reference=0).hr
    except (AbscopalError, ValueError):
        return math.nan  # no events in one arm within the horizon: not estimable
    return math.log(hr) if hr > 0 and math.isfinite(hr) else math.nan


@dataclass(frozen=True, kw_only=True, eq=False)
class _Plan:
    """The resolved analysis: study setup, the cell task of each role, the factors and the base values."""

    design: StudyDesign
    setup: Any
    roles: Mapping[str, CellTask]
    reference_timing: str
    timings: tuple[str, ...]
    factors: tuple[Factor, ...]
    fixed: Mapping[str, str]
    base: Mapping[str, float]
    fit_path: Path | None


def _labels(design: StudyDesign, axis: str) -> list[str]:
    return [lv.label for lv in design.axes[axis]]


def _check_levels(design: StudyDesign, sens: SensitivitySpec) -> str:
    """The reference timing; raises naming every missing level before any work."""
    fr = _labels(design, "fractionation")
    if not any(f.course is None for f in design.axes["fractionation"]):
        raise ParameterError(
            f"study {design.source or design.title!r}: axes.fractionation {fr} has no 'none' level; the hazard ratio "
            'of SBRT vs no RT needs one (add "none")'
        )
    missing = [x for x in (*sens.sbrt, *sens.conventional, sens.timing_regimen) if x not in fr]
    if missing:
        raise ParameterError(
            f"study {design.source or design.title!r}: axes.fractionation {fr} lacks {missing}, which the "
            "conclusions compare (SensitivitySpec sbrt, conventional, timing_regimen); add them to the study"
        )
    timings = design.axes["timing"]
    if sens.reference_timing is None:
        fixed_start = [t.label for t in timings if not t.at_progression]
        if not fixed_start:
            raise ParameterError(
                f"study {design.source or design.title!r}: every timing level is at progression; the out-of-field "
                "ORR needs a fixed start (add a day to axes.timing)"
            )
        return fixed_start[0]
    labels = _labels(design, "timing")
    if sens.reference_timing not in labels:
        raise ParameterError(f"reference_timing = {sens.reference_timing!r}: not a timing level of the study {labels}")
    if next(t for t in timings if t.label == sens.reference_timing).at_progression:
        raise ParameterError(
            f"reference_timing = {sens.reference_timing!r}: at progression has no out-of-field ORR; give a day"
        )
    return sens.reference_timing


def _plan(design: StudyDesign, sens: SensitivitySpec, relative_to: str | Path | None) -> _Plan:
    from ..fitted.format import Fit

    reference = _check_levels(design, sens)
    setup = prepare_study(replace(design, n_draws=0), relative_to=relative_to)
    site, drug = _labels(design, "site")[0], _labels(design, "drug")[0]
    cells = {
        (c.timing.label, c.fractionation.label): key
        for c, key in zip(design.cells(), setup.cell_keys, strict=True)
        if c.site.label == site and c.drug.label == drug
    }
    by_key = {t.key: t for t in setup.tasks}
    no_rt = next(f.label for f in design.axes["fractionation"] if f.course is None)
    roles: dict[str, CellTask] = {"no_rt": by_key[cells[(reference, no_rt)]]}
    for label in (*sens.sbrt, *sens.conventional):
        roles[f"regimen:{label}"] = by_key[cells[(reference, label)]]
    timings = tuple(_labels(design, "timing"))
    for t in timings:
        roles[f"timing:{t}"] = by_key[cells[(t, sens.timing_regimen)]]
    fit_path = setup.fit_path
    fit = None if fit_path is None else Fit.load(fit_path)
    base = dict(setup.draws[0])
    factors, fixed = parameter_ranges(setup.model.spec, fit, base, sens)
    if sens.factors is not None:
        known = [f.name for f in factors]
        unknown = [n for n in sens.factors if n not in known]
        if unknown:
            raise ParameterError(
                f"factors {unknown} (--factors): not varied in this study; choose from {', '.join(known)}"
            )
        fixed = fixed | {f.name: "not selected (factors / --factors)" for f in factors if f.name not in sens.factors}
        factors = tuple(f for f in factors if f.name in sens.factors)
    if not factors:
        raise ParameterError(
            f"study {design.source or design.title!r}: no parameter to vary (no not-sourced parameter with a range "
            "and no fitted value); nothing to analyse"
        )
    return _Plan(
        design=design,
        setup=setup,
        roles=roles,
        reference_timing=reference,
        timings=timings,
        factors=factors,
        fixed=fixed,
        base=base,
        fit_path=fit_path,
    )


def _run_values(plan: _Plan, unit: np.ndarray) -> list[dict[str, float]]:
    """Parameter values of each run: the base values with every factor's parameters set from ``unit`` rows."""
    cols = [f.value(unit[:, j]) for j, f in enumerate(plan.factors)]
    rows = []
    for i in range(unit.shape[0]):
        d = dict(plan.base)
        for j, f in enumerate(plan.factors):
            for p in f.parameters:
                d[p] = float(cols[j][i])
        rows.append(d)
    return rows


def _evaluate(
    plan: _Plan,
    rows: Sequence[Mapping[str, float]],
    chunk: int,
    scheduler: str | None,
    workers: int | None,
    progress: Callable[[int, int, int, str], None] | None,
) -> dict[str, dict[str, np.ndarray]]:
    """Run every role's cell for every row; ``{role: {variable: (runs, ...) array}}``."""
    distinct: dict[str, CellTask] = {}
    orr_keys = {t.key for role, t in plan.roles.items() if role.startswith("regimen:")}
    for task in plan.roles.values():  # the out-of-field ORR is scored only where a contrast reads it
        # a run whose simulation fails is NaN and left out of the indices (CellTask.failed_draws), not fatal
        distinct.setdefault(task.key, replace(task, out_of_field=task.key in orr_keys, failed_draws="nan"))
    tasks = []
    draws = tuple(dict(r) for r in rows)
    for key, task in distinct.items():
        for start in range(0, len(draws), chunk):
            tasks.append(replace(task, key=f"{key}-{start:07d}", draws=draws[start : start + chunk]))
    parts: dict[str, dict[int, xr.Dataset]] = {k: {} for k in distinct}
    if progress:
        progress(0, len(tasks), 0, "starting")
    for done, (task, ds) in enumerate(_execute(tasks, scheduler, workers), start=1):
        key, first = task.key.rsplit("-", 1)
        parts[key][int(first)] = ds
        if progress:
            progress(done, len(tasks), 0, f"{task.cell.label} [runs {int(first)}+]")
    names = ("abscopal_orr", "os_day", "os_event")
    stacked = {
        key: {n: np.concatenate([parts[key][s][n].values for s in sorted(parts[key])]) for n in names}
        for key in distinct
    }
    return {role: stacked[task.key] for role, task in plan.roles.items()}


def _contrasts(plan: _Plan, sens: SensitivitySpec, out: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """Per run: ``log_hr_os``, ``abscopal_orr_difference`` and the timing scores ``rmst`` ``(runs, timings)``."""
    h = sens.horizon_month * DAYS_PER_MONTH
    ref = out["no_rt"]
    n = ref["os_day"].shape[0]
    log_hr = np.full(n, np.nan)
    for i in range(n):
        v = [
            _log_hr(ref["os_day"][i], ref["os_event"][i], a["os_day"][i], a["os_event"][i], h)
            for a in (out[f"regimen:{s}"] for s in sens.sbrt)
        ]
        log_hr[i] = float(np.mean(v))
    sbrt = np.mean([out[f"regimen:{s}"]["abscopal_orr"] for s in sens.sbrt], axis=0)
    conv = np.mean([out[f"regimen:{c}"]["abscopal_orr"] for c in sens.conventional], axis=0)
    rmst = np.array(
        [
            [
                restricted_mean_month(out[f"timing:{t}"]["os_day"][i], out[f"timing:{t}"]["os_event"][i], h)
                for t in plan.timings
            ]
            for i in range(n)
        ]
    )
    return {"log_hr_os": log_hr, "abscopal_orr_difference": sbrt - conv, "rmst": rmst}


# ---- results -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Conclusion:
    """One conclusion of the study and how robust it is (module docstring, "The conclusions")."""

    contrast: str
    statement: str
    reference: float
    reference_text: str
    sign: int
    share: float
    n: int
    verdict: str
    median: float
    q05: float
    q95: float

    @property
    def share_text(self) -> str:
        """``"87% of 400"`` (or ``"-"``)."""
        return "-" if not math.isfinite(self.share) else f"{self.share:.0%} of {self.n}"

    def describe(self) -> dict[str, Any]:
        """Plain record for the manifest."""
        return asdict(self) | {"share_text": self.share_text}


def _sign(x: float) -> int:
    return 0 if not math.isfinite(x) or x == 0 else (1 if x > 0 else -1)


def _conclusion(
    contrast: str, statement: str, ref: float, ref_text: str, y: np.ndarray, threshold: float
) -> Conclusion:
    finite = y[np.isfinite(y)]
    s = _sign(ref)
    share = float(np.mean(np.sign(finite) == s)) if s and finite.size else math.nan
    q05, med, q95 = (float(v) for v in np.quantile(finite, (0.05, 0.5, 0.95))) if finite.size else (math.nan,) * 3
    return Conclusion(
        contrast=contrast,
        statement=statement,
        reference=float(ref),
        reference_text=ref_text,
        sign=s,
        share=share,
        n=int(finite.size),
        verdict=verdict(share, int(finite.size), threshold),
        median=med,
        q05=q05,
        q95=q95,
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class SensitivityResult:
    """What :func:`run_sensitivity` returns.

    Attributes
    ----------
    dataset
        ``samples.nc``: dims ``run`` (the SALib design's runs), ``factor``, ``timing``, ``contrast``; the design
        ``unit`` and ``value``, the contrasts and timing scores per run, their reference values (``reference_*``)
        and the indices (``<index>(contrast, factor)``); provenance JSON in ``attrs["provenance"]``.
    conclusions
        One :class:`Conclusion` per contrast, in :data:`CONTRASTS` order.
    timing_shares
        ``{timing label: share of runs in which it is best}`` (runs with finite scores).
    factors, fixed
        The factors and the parameters held fixed with the reason.
    indices
        ``{contrast: {index: (k,) array, "n_used": int, "note": str}}``.
    provenance
        Versions, model and fit hashes, study, seeds, the specification.
    """

    dataset: xr.Dataset
    conclusions: tuple[Conclusion, ...]
    timing_shares: Mapping[str, float]
    factors: tuple[Factor, ...]
    fixed: Mapping[str, str]
    indices: Mapping[str, Mapping[str, Any]]
    provenance: Mapping[str, Any]
    spec: SensitivitySpec = field(default_factory=SensitivitySpec)

    def top(self, contrast: str, n: int = 5) -> list[tuple[str, float, float]]:
        """The ``n`` factors with the largest ranking index of ``contrast``: ``(name, index, conf)``."""
        key = _RANK_INDEX[self.spec.method]
        idx = np.asarray(self.indices[contrast][key], dtype=float)
        conf = np.asarray(self.indices[contrast][f"{key}_conf"], dtype=float)
        order = [i for i in np.argsort(-np.nan_to_num(idx, nan=-np.inf)) if np.isfinite(idx[i])][:n]
        return [(self.factors[i].name, float(idx[i]), float(conf[i])) for i in order]

    def indices_rows(self) -> list[dict[str, Any]]:
        """``indices.csv``: one row per contrast x factor, ranked within each contrast (1: most influential)."""
        key = _RANK_INDEX[self.spec.method]
        rows = []
        for c in CONTRASTS:
            idx = np.asarray(self.indices[c][key], dtype=float)
            order = np.argsort(-np.nan_to_num(idx, nan=-np.inf), kind="stable")
            rank = np.empty(idx.size, dtype=int)
            rank[order] = np.arange(1, idx.size + 1)
            for j, f in enumerate(self.factors):
                row: dict[str, Any] = {
                    "contrast": c,
                    "factor": f.name,
                    "kind": f.kind,
                    "category": f.category,
                    "units": f.units,
                    "scale": f.scale,
                    "lower": f.lower,
                    "centre": f.centre,
                    "upper": f.upper,
                }
                for i in INDICES[self.spec.method]:
                    row[i] = float(self.indices[c][i][j])
                row["rank"] = int(rank[j]) if np.isfinite(idx[j]) else ""
                rows.append(row)
        return rows


def contrast_text(contrast: str, value: float) -> str:
    """A contrast's value as a reader sees it: ``HR 0.95`` (``log_hr_os``), ``+13.5 points`` (ORR difference) or
    ``+0.016 months`` (timing margin); ``-`` if not finite."""
    if not math.isfinite(value):
        return "-"
    if contrast == "log_hr_os":
        return f"HR {math.exp(value):.3f}"
    if contrast == "abscopal_orr_difference":
        return f"{100 * value:+.1f} points"
    return f"{value:+.3f} months"


def _statements(plan: _Plan, sens: SensitivitySpec, ref: Mapping[str, float], best: str, second: str) -> dict[str, str]:
    at = f"RT {plan.reference_timing}"
    lhr, d = float(ref["log_hr_os"]), float(ref["abscopal_orr_difference"])
    sb, cv = " and ".join(sens.sbrt), " and ".join(sens.conventional)
    h = f"{sens.horizon_month:g}"
    return {
        "log_hr_os": f"SBRT ({sb}, {at}) {'lowers' if lhr < 0 else 'raises' if lhr > 0 else 'does not change'} "
        f"the {h}-month hazard of death vs no RT",
        "abscopal_orr_difference": f"SBRT ({sb}) gives a {'higher' if d > 0 else 'lower' if d < 0 else 'equal'} "
        f"out-of-field ORR than conventional RT ({cv}), {at}",
        "timing_margin_month": f"{best} is the best timing of {sens.timing_regimen} ({h}-month restricted mean OS), "
        f"ahead of {second}",
    }


def _analyse(plan: _Plan, sens: SensitivitySpec, unit: np.ndarray, c: Mapping[str, Any]) -> SensitivityResult:
    """Reference (run 0), contrasts, indices and verdicts from the evaluated runs."""
    names = [f.name for f in plan.factors]
    rmst = np.asarray(c["rmst"])
    ref_scores = rmst[0]
    if not np.all(np.isfinite(ref_scores)) or len(plan.timings) < 2:
        best_i, second_i = 0, 0
    else:
        order = np.argsort(-ref_scores, kind="stable")
        best_i, second_i = int(order[0]), int(order[1])
    margin = rmst[:, best_i] - rmst[:, second_i] if best_i != second_i else np.full(rmst.shape[0], np.nan)
    y = {
        "log_hr_os": np.asarray(c["log_hr_os"]),
        "abscopal_orr_difference": np.asarray(c["abscopal_orr_difference"]),
        "timing_margin_month": margin,
    }
    ref: dict[str, float] = {k: float(v[0]) for k, v in y.items()}
    texts = _statements(plan, sens, ref, plan.timings[best_i], plan.timings[second_i])
    conclusions = tuple(
        _conclusion(k, texts[k], ref[k], contrast_text(k, ref[k]), y[k][1:], sens.robust_share) for k in CONTRASTS
    )
    finite = np.all(np.isfinite(rmst[1:]), axis=1)
    best = np.argmax(rmst[1:][finite], axis=1) if finite.any() else np.array([], dtype=int)
    shares = {t: float(np.mean(best == i)) if best.size else math.nan for i, t in enumerate(plan.timings)}
    indices = {k: analyze_indices(sens, names, unit, y[k][1:]) for k in CONTRASTS}
    ds = _dataset(plan, sens, unit, y, rmst, indices)
    return SensitivityResult(
        dataset=ds,
        conclusions=conclusions,
        timing_shares=shares,
        factors=plan.factors,
        fixed=dict(plan.fixed),
        indices=indices,
        provenance={},
        spec=sens,
    )


def _dataset(
    plan: _Plan,
    sens: SensitivitySpec,
    unit: np.ndarray,
    y: Mapping[str, np.ndarray],
    rmst: np.ndarray,
    indices: Mapping[str, Mapping[str, Any]],
) -> xr.Dataset:
    names = [f.name for f in plan.factors]
    values = np.column_stack([f.value(unit[:, j]) for j, f in enumerate(plan.factors)])
    data: dict[str, Any] = {
        "unit": (("run", "factor"), unit, {"units": "1", "long_name": "SALib design on the unit cube"}),
        "value": (("run", "factor"), values, {"units": "1", "long_name": "factor value (units: factor_units)"}),
        "rmst_os_month": (
            ("run", "timing"),
            rmst[1:],
            {"units": "month", "long_name": f"{sens.horizon_month:g}-month restricted mean OS of the timing regimen"},
        ),
        "reference_rmst_os_month": (
            ("timing",),
            rmst[0],
            {"units": "month", "long_name": "restricted mean OS at the reference parameter values"},
        ),
    }
    for k, (units, long) in CONTRASTS.items():
        data[k] = (("run",), y[k][1:], {"units": units, "long_name": long})
        data[f"reference_{k}"] = ((), y[k][0], {"units": units, "long_name": f"{long} (reference values)"})
    for i in INDICES[sens.method]:
        data[i] = (
            ("contrast", "factor"),
            np.array([indices[k][i] for k in CONTRASTS]),
            {"units": "1", "long_name": f"SALib {sens.method} index {i} (*_conf: bootstrap half-width)"},
        )
    coords = {
        "run": ("run", np.arange(unit.shape[0]), {"units": "1", "long_name": "run of the SALib design"}),
        "factor": ("factor", names, {"units": "1", "long_name": "varied parameter"}),
        "factor_kind": ("factor", [f.kind for f in plan.factors], {"units": "1"}),
        "factor_units": ("factor", [f.units for f in plan.factors], {"units": "1"}),
        "factor_lower": ("factor", [f.lower for f in plan.factors], {"units": "1", "long_name": "range lower end"}),
        "factor_centre": ("factor", [f.centre for f in plan.factors], {"units": "1", "long_name": "reference value"}),
        "factor_upper": ("factor", [f.upper for f in plan.factors], {"units": "1", "long_name": "range upper end"}),
        "timing": ("timing", list(plan.timings), {"units": "1", "long_name": "RT timing"}),
        "contrast": ("contrast", list(CONTRASTS), {"units": "1", "long_name": "headline contrast"}),
    }
    return xr.Dataset(data, coords=coords)


# ---- running ---------------------------------------------------------------------------------------------------------
def check_sensitivity_dir(out: Path, *, force: bool, inputs: Sequence[str | Path | None] = ()) -> None:
    """Every check of a sensitivity output folder before any work (the study's rules,
    :func:`abscopal.studies.outputs.check_output_folder`)."""
    check_output_folder(
        Path(out), force=force, inputs=inputs, what="sensitivity output", manifest=MANIFEST, names=OUTPUT_NAMES
    )


def _check_cost(sens: SensitivitySpec, plan: _Plan, n_runs: int, allow_large: bool) -> None:
    from ..limits import MAX_STUDY_SIMULATIONS, check_cost

    n_cells = len({t.key for t in plan.roles.values()})
    n_pat = plan.design.n_patients
    check_cost(
        f"sensitivity analysis of {n_runs} runs x {n_cells} cells x {n_pat} patients",
        n_runs * n_cells * n_pat,
        MAX_STUDY_SIMULATIONS,
        "patient simulations",
        allow_large,
        ParameterError,
    )


def run_sensitivity(
    design: StudyDesign,
    sens: SensitivitySpec,
    out_dir: str | Path | None = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool | Callable[[int, int, int, str], None] = False,
    force: bool = False,
    relative_to: str | Path | None = None,
    allow_large: bool = False,
) -> SensitivityResult:
    """Run the sensitivity analysis of ``design``'s conclusions (module docstring).

    Parameters
    ----------
    design
        The study (:func:`~abscopal.studies.design.load_study`; its ``n_patients`` and population seed give the
        patients; its parameter draws are not used).
    sens
        The method, sample size, seeds and conclusions (:class:`SensitivitySpec`).
    out_dir
        Output folder (module docstring, "Outputs"): new, empty or a sensitivity output's; None: nothing written.
    scheduler, workers
        Dask scheduler address or local worker processes (as :func:`~abscopal.studies.run.run_study`); default in
        process; identical results.
    progress
        True for a progress bar on stderr, or a callable ``(done, total, 0, label)``.
    force
        Rewrite a completed output in ``out_dir``.
    allow_large
        Lift the cost guard (runs x cells x patients above :data:`abscopal.limits.MAX_STUDY_SIMULATIONS`).

    Raises
    ------
    ParameterError
        A study without the levels the conclusions compare, nothing to vary, or above the cost guard; before any run.
    AbscopalError, OutputPathError
        Bad ``scheduler`` / ``workers`` or output folder (the study's rules), before any run.
    """
    if scheduler is not None and workers is not None:
        raise AbscopalError("give --scheduler ADDRESS or --workers N, not both")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise AbscopalError(f"workers = {workers!r} (--workers): give a number of worker processes >= 1")
    if scheduler is not None:
        check_scheduler(scheduler)
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        check_sensitivity_dir(out, force=force, inputs=[design.source, _fit_path(design, relative_to)])
    _check_levels(design, sens)
    _salib()
    plan = _plan(design, sens, relative_to)
    n_runs = sens.n_runs(len(plan.factors))
    _check_cost(sens, plan, n_runs + 1, allow_large)
    unit = sample_unit(sens, [f.name for f in plan.factors])
    rows = [dict(plan.base), *_run_values(plan, unit)]  # run 0: the reference, the study's own values
    show = _progress_printer(unit="tasks") if progress is True else (progress or None)
    t0 = time.perf_counter()
    outputs = _evaluate(plan, rows, sens.chunk, scheduler, workers, show)
    elapsed = time.perf_counter() - t0
    result = _analyse(plan, sens, unit, _contrasts(plan, sens, outputs))
    prov = _provenance(plan, sens, elapsed, n_runs)
    result.dataset.attrs.update(
        {
            "title": f"sensitivity of {design.title}",
            "provenance": json.dumps(prov, sort_keys=True, default=str),
            "abscopal_version": __version__,
            "method": sens.method,
            "seed": sens.seed,
            "model_hash": str(prov["model_hash"]),
        }
    )
    result = replace(result, provenance=prov)
    if out is not None:
        _write(result, out)
    return result


def _provenance(plan: _Plan, sens: SensitivitySpec, elapsed: float, n_runs: int) -> dict[str, Any]:
    sp = plan.setup.provenance
    try:
        salib = metadata.version("SALib")
    except metadata.PackageNotFoundError:  # pragma: no cover - a declared dependency
        salib = None
    design = plan.design.describe()
    return {
        "package": "abscopal",
        "version": __version__,
        "environment": environment() | {"SALib": salib},
        "model": sp["model"],
        "model_hash": sp["model_hash"],
        "fit": sp["fit"],
        "fit_hash": sp["fit_hash"],
        "study": plan.design.source,
        "design": design,
        "design_hash": sp["design_hash"],
        "identity": study_identity(design, sp["model_hash"], sp["fit_hash"]),
        "patients": {"n": plan.design.n_patients, "seed": plan.design.seed, "mix": sp["mix_source"]},
        "spec": asdict(sens),
        "n_runs": n_runs,
        "reference_timing": plan.reference_timing,
        "cells": {role: t.cell.label for role, t in plan.roles.items()},
        "base_values": dict(plan.base),
        "elapsed_s": round(elapsed, 3),
    }


# ---- outputs ---------------------------------------------------------------------------------------------------------
_KIND_COLOURS = {"fitted": "tab:orange", "not sourced": "tab:blue"}
_TOP_FIGURE = 12


def tornado_png(result: SensitivityResult) -> bytes:
    """``tornado.png``: per contrast, the factors with the largest ranking index (Morris ``mu_star`` with its
    bootstrap interval and ``sigma`` as a marker; Sobol' ``ST`` and ``S1`` with their intervals), coloured by kind;
    and the share of runs in which each timing is best."""
    from matplotlib.patches import Patch

    from ..plot import figure_png, new_figure

    method = result.spec.method
    key = _RANK_INDEX[method]
    fig = new_figure(13.0, 9.0)
    axes = fig.subplots(2, 2).ravel()
    for ax, (c, (units, long)) in zip(axes, CONTRASTS.items(), strict=False):
        top = result.top(c, _TOP_FIGURE)
        if not top:
            ax.axis("off")
            ax.text(0.5, 0.5, f"{c}: no finite index ({result.indices[c]['note']})", ha="center", wrap=True)
            continue
        where = {f.name: j for j, f in enumerate(result.factors)}
        names = [n for n, _, _ in top][::-1]
        pos = np.arange(len(names))
        colours = [_KIND_COLOURS[result.factors[where[n]].kind] for n in names]
        idx = np.array([float(result.indices[c][key][where[n]]) for n in names])
        conf = np.array([float(result.indices[c][f"{key}_conf"][where[n]]) for n in names])
        ax.barh(pos, idx, xerr=conf, color=colours, alpha=0.85, capsize=2, label=key)
        if method == "morris":
            sigma = np.array([float(result.indices[c]["sigma"][where[n]]) for n in names])
            ax.plot(sigma, pos, "kx", markersize=6, label="sigma")
            ax.set_xlabel(f"{key} (change of the contrast over a factor's full range) [{units}]")
        else:
            s1 = np.array([float(result.indices[c]["S1"][where[n]]) for n in names])
            s1c = np.array([float(result.indices[c]["S1_conf"][where[n]]) for n in names])
            ax.errorbar(s1, pos, xerr=s1c, fmt="kd", markersize=4, capsize=2, label="S1")
            ax.set_xlabel("Sobol' index (bars: ST; diamonds: S1) [1]")
        ax.set_yticks(pos, names, fontsize=7)
        ax.set_title(f"{c}: {long}", fontsize=8, wrap=True)
        ax.axvline(0.0, color="grey", lw=0.5)
        ax.legend(fontsize=7, loc="lower right")
    ax = axes[3]
    shares = result.timing_shares
    labels = list(shares)
    ax.barh(np.arange(len(labels)), [shares[t] if math.isfinite(shares[t]) else 0.0 for t in labels], color="tab:green")
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of runs in which the timing is best [1]")
    ax.set_title(f"best timing of {result.spec.timing_regimen} (12-month restricted mean OS)", fontsize=9)
    handles = [Patch(color=col, label=k) for k, col in _KIND_COLOURS.items()]
    fig.legend(handles=handles, loc="outside upper center", ncols=2, fontsize=8, title="factor")
    return figure_png(fig, dpi=100)


def format_verdicts(result: SensitivityResult) -> str:
    """Plain-text verdicts, timing shares and top factors (what the CLI prints)."""
    key = _RANK_INDEX[result.spec.method]
    lines = [f"{'conclusion':<90} {'reference':>16} {'sign holds':>14}  verdict"]
    for c in result.conclusions:
        lines.append(f"{c.statement[:90]:<90} {c.reference_text:>16} {c.share_text:>14}  {c.verdict}")
    lines.append("")
    lines.append("best timing (share of runs): " + ", ".join(f"{t} {s:.0%}" for t, s in result.timing_shares.items()))
    for name in CONTRASTS:
        top = ", ".join(f"{n} {v:.3g}" for n, v, _ in result.top(name, 5))
        lines.append(f"top {key} for {name}: {top}")
    return "\n".join(lines)


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _manifest(result: SensitivityResult, outputs: Sequence[str]) -> dict[str, Any]:
    from ..fitted.format import encode_tree

    prov = result.provenance
    return encode_tree(
        {
            "format": FORMAT,
            "outputs": list(outputs),
            "method": result.spec.method,
            "samples": result.spec.samples,
            "n_samples": int(result.dataset.sizes["run"]),
            "n_patients": prov["patients"]["n"],
            "threshold": result.spec.robust_share,
            "verdicts": dict(VERDICTS),
            "identity": prov["identity"],
            "conclusions": [c.describe() for c in result.conclusions],
            "timing_shares": [{"timing": t, "share": s} for t, s in result.timing_shares.items()],
            "top": {c: [{"factor": n, "index": v, "conf": e} for n, v, e in result.top(c, 10)] for c in CONTRASTS},
            "notes": {c: result.indices[c]["note"] for c in CONTRASTS},
            "factors": [f.describe() for f in result.factors],
            "fixed": dict(result.fixed),
            "provenance": prov,
        }
    )


def _report_md(result: SensitivityResult) -> str:
    from ..provenance import format_environment
    from ..templates import render

    key = _RANK_INDEX[result.spec.method]
    prov = result.provenance
    spec = result.spec
    top = {c: [[n, f"{v:.3g}", f"{e:.2g}"] for n, v, e in result.top(c, 10)] for c in CONTRASTS}
    kinds = {k: sum(f.kind == k for f in result.factors) for k in ("fitted", "not sourced")}
    return render(
        "sensitivity_report.md.j2",
        title=f"Sensitivity of the conclusions: {result.provenance['design'].get('title', '')}",
        method=spec.method,
        key=key,
        conf_level=f"{spec.conf_level:.0%}",
        n_runs=int(result.dataset.sizes["run"]),
        samples=spec.samples,
        n_patients=prov["patients"]["n"],
        threshold=f"{spec.robust_share:.0%}",
        verdicts=list(VERDICTS.items()),
        conclusions=[
            [
                c.statement,
                c.reference_text,
                c.share_text,
                f"{contrast_text(c.contrast, c.median)} [{contrast_text(c.contrast, c.q05)}, "
                f"{contrast_text(c.contrast, c.q95)}]",
                c.verdict,
            ]
            for c in result.conclusions
        ],
        timing=[[t, "-" if not math.isfinite(s) else f"{s:.0%}"] for t, s in result.timing_shares.items()],
        contrasts=[[c, units, long, result.indices[c]["note"]] for c, (units, long) in CONTRASTS.items()],
        top=top,
        n_fitted=kinds["fitted"],
        n_not_sourced=kinds["not sourced"],
        fold=f"{spec.fold:g}",
        n_se=f"{spec.n_se:g}",
        factors=[
            [f.name, f.kind, f.category, f"{f.lower:.4g}", f"{f.centre:.4g}", f"{f.upper:.4g}", f.scale, f.rule]
            for f in result.factors
        ],
        fixed=sorted(result.fixed.items()),
        provenance=[
            ("study", prov["study"] or "-"),
            ("model", f"{prov['model']} ({prov['model_hash']})"),
            ("fit", f"{prov['fit'] or 'none'} ({prov['fit_hash'] or '-'})"),
            ("patients", f"{prov['patients']['n']} ({prov['patients']['mix']}), seed {prov['patients']['seed']}"),
            ("design seed", spec.seed),
            ("reference timing", prov["reference_timing"]),
            ("environment", format_environment(prov["environment"])),
            ("SALib", prov["environment"].get("SALib") or "-"),
            ("elapsed", f"{prov['elapsed_s']:.0f} s"),
        ],
    )


def _write(result: SensitivityResult, out: Path) -> None:
    """Write the outputs into a staging folder and switch them in (module docstring, "Outputs")."""
    out.mkdir(parents=True, exist_ok=True)
    _clean_staging(out)
    staging = new_staging(out)
    try:
        text = _csv_text(result.indices_rows())
        write_atomic(staging / "indices.csv", lambda tmp: tmp.write_text(text, encoding="utf-8"), force=True)
        write_netcdf(result.dataset, staging / "samples.nc", force=True)
        png = tornado_png(result)
        write_atomic(staging / "tornado.png", partial(Path.write_bytes, data=png), force=True)
        md = _report_md(result)
        write_atomic(staging / "report.md", lambda tmp: tmp.write_text(md, encoding="utf-8"), force=True)
        outputs = [*OUTPUT_NAMES]
        body = json.dumps(_manifest(result, outputs), indent=1) + "\n"
        write_atomic(staging / MANIFEST, lambda tmp: tmp.write_text(body, encoding="utf-8"), force=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    switch_outputs(out, staging, outputs, OUTPUT_NAMES)
