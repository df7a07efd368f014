"""Validation of a calibration against trial targets, including trials the fit never saw.

:func:`validate` rebuilds a :class:`~abscopal.calibrate.objective.CalibrationProblem` on the given targets with
the calibration's model (the library model of the stored name and lesion count, checked against the stored
hash), virtual patients per arm, master seed, base parameters and HR surrogate. Every outcome the objective can
simulate (``orr``, ``median_pfs_month``, ``median_os_month``, ``hr_pfs``, ``hr_os``) is validated, whether or not
it was fitted, including the validate-only targets (``fit = false`` in their target file; the rule is
:func:`~abscopal.calibrate.objective.target_keys`). The ``fitted`` flag of an entry says whether that trial (same
content hash) and outcome were part of the fit, ``validate_only`` whether the target is marked validate-only (never
fitted). Trials or arms without a usable outcome (e.g. toxicity-only cohorts) are skipped with a note.

For each target (an entry):

* ``predicted``: the plain reported prediction (ORR proportion, KM median in months, ``inf`` if not reached in
  the simulated follow-up; Cox HR) at the fitted values with the calibration's own seed, i.e. the number
  :attr:`Calibration.predictions` holds for fitted targets;
* ``population_interval``: central ``level`` interval over ``n_population_resamples`` re-draws of the virtual
  patients (seeds derived from ``seed``) at the fitted values: the sampling noise of finite virtual cohorts;
* ``parameter_interval``: the same over ``n_parameter_draws`` parameter draws
  (:func:`~abscopal.fitted.draws.parameter_draws`), each simulated with a fresh population seed, so it holds
  parameter *and* population variability;
* ``interval``: central ``level`` interval of the pooled predictions of both components. Interval ends are order
  statistics (``numpy.quantile`` methods ``lower`` / ``higher``, slightly conservative), so ``inf`` medians are
  handled without interpolation; NaN predictions are dropped and counted in the entry's ``note``;
* ``z``: ``(predicted - observed) / SE`` on the scale of the objective's residuals: proportions on the natural
  scale with the binomial SE (``Outcome.standard_error``); medians and HRs as
  ``log(predicted / observed) / SE(log)`` (``log_standard_error``); ``inf`` for a median not reached;
* ``ci``: the reported 95% CI, or (``ci_source`` ``approximate``) ``observed -/+ 1.96 SE`` on that scale for a
  missing bound; ``predicted_in_ci`` and ``observed_in_interval`` are the two coverage flags.

Seeds: population resample ``k`` uses ``derived_seed(seed, "population", k)``; parameter draws use
``derived_seed(seed, "parameters")`` for the draws and ``derived_seed(seed, "draw", j)`` for draw ``j``'s
population (sha256-based, see :func:`derived_seed`). Cost: ``1 + n_population_resamples + n_parameter_draws``
simulations of every arm. The ``abscopal validate`` command is :mod:`abscopal.cli.validate`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..endpoints.outcomes import DEFAULT_FIT_OUTCOMES, ArmOutcome, ComparisonOutcome, outcome
from ..errors import AbscopalError, ParameterError
from ..fitted.format import encode_float
from ..io import JsonArtefact
from ..model.spec import ModelSpec
from ..provenance import environment
from ..trials import OUTCOME_KINDS, ComparisonTarget, Outcome, TrialTargets
from .fit import Calibration
from .objective import CalibrationProblem, target_keys

if TYPE_CHECKING:
    from ..model.compile import CompiledModel

__all__ = ["FORMAT", "ValidationResult", "derived_seed", "validate"]

TargetsLike = TrialTargets | Mapping[str, TrialTargets] | Iterable[TrialTargets] | str | Path | Iterable[str | Path]
"""What :func:`validate` and cross-validation accept as targets: TrialTargets, a mapping or iterable of them, or
target file paths / directories."""

FORMAT = "abscopal-validation-v1"
"""Value of the ``format`` key of a validation file."""
_Z95 = 1.959963984540054


def derived_seed(seed: int, *labels: object) -> int:
    """Stable 32-bit seed from ``seed`` and labels: sha256 of ``"seed/label/..."`` (independent of PYTHONHASHSEED)."""
    text = "/".join([str(int(seed)), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


# ---- argument handling --------------------------------------------------------------------------------------------
def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ParameterError(f"{name}: {value!r} is not an integer >= {minimum}")
    return int(value)


def _as_trials(targets: TargetsLike) -> tuple[TrialTargets, ...]:
    """TrialTargets, a mapping of them, an iterable of them, or target file paths / directories."""
    from ..trials import load_all, target_files

    if isinstance(targets, TrialTargets):
        return (targets,)
    if isinstance(targets, str | Path):
        targets = [targets]
    if isinstance(targets, Mapping):
        items = list(targets.values())
    else:
        items = list(targets)
    if items and all(isinstance(t, str | Path) for t in items):
        files = target_files([str(t) for t in items])
        missing = [str(f) for f in files if not Path(f).is_file()]
        if missing or not files:
            raise AbscopalError(
                f"targets: {missing or [str(t) for t in items]} not found; pass existing target "
                "TOML files or directories holding them"
            )
        items = list(load_all(files).values())
    if not items or not all(isinstance(t, TrialTargets) for t in items):
        raise ParameterError(f"targets: expected TrialTargets, a mapping of them or target file paths, got {targets!r}")
    ids = [t.id for t in items]
    if len(set(ids)) != len(ids):
        raise ParameterError(f"targets: duplicate trial ids {sorted({i for i in ids if ids.count(i) > 1})}")
    return tuple(items)


def usable_outcomes(
    trial: TrialTargets, outcomes: Sequence[str] = DEFAULT_FIT_OUTCOMES, *, include_validate_only: bool = True
) -> list[tuple[str, str]]:
    """``(arm, outcome)`` pairs of ``trial`` a CalibrationProblem can simulate (comparisons as ``("<arm> vs
    <reference>", "hr_<endpoint>")``): :func:`~abscopal.calibrate.objective.target_keys`, validate-only targets
    included unless ``include_validate_only=False``."""
    return [(k.arm, k.outcome) for k in target_keys(trial, outcomes, include_validate_only=include_validate_only)]


def _load(calibration: Calibration | str | Path) -> tuple[Calibration, dict[str, Any]]:
    if isinstance(calibration, str | Path):
        path = Path(calibration)
        cal = Calibration.load(path)  # raises AbscopalError naming the path
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return cal, {"path": str(path), "name": path.name, "sha256": digest}
    if not hasattr(calibration, "values") or not hasattr(calibration, "provenance"):
        raise ParameterError(
            f"calibration: expected a Calibration or the path of its JSON file, got {type(calibration).__name__}"
        )
    content = hashlib.sha256(calibration.to_json().encode()).hexdigest() if hasattr(calibration, "to_json") else None
    return calibration, {"path": None, "name": None, "sha256": content}


def _model(cal: Calibration, model: ModelSpec | CompiledModel | None) -> CompiledModel:
    """The calibrated model, compiled; the library model of the stored name unless ``model`` is given."""
    from ..model.compile import CompiledModel, compile_model

    prov = cal.provenance
    if model is None:
        from ..model.library import model_from_provenance

        model = model_from_provenance(prov)
        if model is None:
            raise AbscopalError(
                f"model {prov.get('model_name')!r} of the calibration is not a library model; pass model="
            )
    spec = model if isinstance(model, ModelSpec) else model.spec
    if spec.content_hash() != prov["model_hash"]:
        raise AbscopalError(
            f"model {spec.name!r} (hash {spec.content_hash()[:12]}...) is not the calibrated model "
            f"{prov.get('model_name')!r} (hash {prov['model_hash'][:12]}...); pass the right model="
        )
    return model if isinstance(model, CompiledModel) else compile_model(model)


# ---- statistics of one entry ---------------------------------------------------------------------------------------
def _interval(x: Sequence[float], level: float) -> tuple[list[float] | None, int]:
    a = np.asarray(x, dtype=float)
    nan = int(np.isnan(a).sum())
    a = a[~np.isnan(a)]
    if a.size == 0:
        return None, nan
    tail = 0.5 * (1.0 - level)
    return [float(np.quantile(a, tail, method="lower")), float(np.quantile(a, 1.0 - tail, method="higher"))], nan


def _observed(target: Outcome | ComparisonTarget, name: str) -> tuple[float, float, str]:
    """Observed value, its SE on the residual scale, and the scale (``linear`` or ``log``)."""
    definition = outcome(name)
    if isinstance(definition, ComparisonOutcome) and isinstance(target, ComparisonTarget):
        return definition.observed(target)
    if isinstance(definition, ArmOutcome) and isinstance(target, Outcome):
        return definition.observed(target)
    raise ParameterError(
        f"outcome {name!r} cannot score a {type(target).__name__}: hazard ratios need a ComparisonTarget, "
        "arm outcomes an Outcome"
    )


def score(target: Outcome | ComparisonTarget, name: str, predicted: float) -> dict[str, Any]:
    """Observed value, CI, SE and the errors of ``predicted`` for one target (``z``, ``error``, ``log_ratio``,
    ``predicted_in_ci``; module docstring). Shared by :func:`validate` and cross-validation."""
    obs, se, scale = _observed(target, name)
    lo, hi = target.ci_lower, target.ci_upper
    source = (
        "reported"
        if lo is not None and hi is not None
        else ("approximate" if lo is None and hi is None else "partly reported")
    )
    if scale == "linear":
        lo = max(0.0, obs - _Z95 * se) if lo is None else float(lo)
        hi = min(1.0, obs + _Z95 * se) if hi is None else float(hi)
    else:
        lo = obs * math.exp(-_Z95 * se) if lo is None else float(lo)
        hi = obs * math.exp(_Z95 * se) if hi is None else float(hi)
    note = ""
    if math.isnan(predicted):
        z = log_ratio = error = None
        note = "no prediction (NaN)"
    elif scale == "linear":
        error, log_ratio = predicted - obs, None
        z = error / se
    else:
        error = predicted - obs
        log_ratio = math.log(predicted / obs) if predicted > 0 else -math.inf
        z = log_ratio / se
        if math.isinf(predicted):
            note = "median not reached in the simulated follow-up"
    return {
        "observed": obs,
        "ci": [lo, hi],
        "ci_source": source,
        "se": se,
        "scale": scale,
        "predicted": predicted,
        "error": error,
        "log_ratio": log_ratio,
        "z": z,
        "predicted_in_ci": None if math.isnan(predicted) else bool(lo <= predicted <= hi),
        "note": note,
    }


# ---- the result ----------------------------------------------------------------------------------------------------
def _enc_any(x: Any) -> Any:
    if isinstance(x, float):
        return encode_float(x)
    if isinstance(x, list | tuple):
        return [_enc_any(v) for v in x]
    if isinstance(x, Mapping):
        return {k: _enc_any(v) for k, v in x.items()}
    return x


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}"


def _span(iv: Sequence[float] | None) -> str:
    return "-" if iv is None else f"[{_fmt(iv[0])}, {_fmt(iv[1])}]"


def summarize(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """RMS of the finite z-scores, counts (``n_validate_only``: targets marked ``fit = false``), and per outcome kind
    the mean absolute error (proportions: absolute difference; medians and HRs: absolute log ratio)."""
    entries = list(entries)
    zs = [e["z"] for e in entries if e.get("z") is not None and math.isfinite(e["z"])]
    out: dict[str, Any] = {
        "n_targets": len(entries),
        "n_validate_only": sum(1 for e in entries if e.get("validate_only")),
        "n_finite_z": len(zs),
        "rms_z": math.sqrt(sum(z * z for z in zs) / len(zs)) if zs else None,
        "n_predicted_in_ci": sum(1 for e in entries if e.get("predicted_in_ci")),
        "n_observed_in_interval": sum(1 for e in entries if e.get("observed_in_interval")),
        "by_kind": {},
    }
    for kind in ("proportion", "median", "hr"):
        sel = [e for e in entries if OUTCOME_KINDS[e["outcome"]] == kind]
        if not sel:
            continue
        errs = [
            abs(e["error"] if kind == "proportion" else e["log_ratio"])
            for e in sel
            if (e["error"] if kind == "proportion" else e["log_ratio"]) is not None
        ]
        finite = [x for x in errs if math.isfinite(x)]
        kz = [e["z"] for e in sel if e.get("z") is not None and math.isfinite(e["z"])]
        out["by_kind"][kind] = {
            "n": len(sel),
            "n_nonfinite": len(sel) - len(finite),
            "mean_abs_error": sum(finite) / len(finite) if finite else None,
            "error_scale": "absolute" if kind == "proportion" else "abs log ratio",
            "rms_z": math.sqrt(sum(z * z for z in kz) / len(kz)) if kz else None,
        }
    return out


@dataclass(frozen=True, kw_only=True)
class ValidationResult(JsonArtefact):
    """Predictions of a calibration next to observed trial outcomes (module docstring).

    Attributes
    ----------
    entries
        One mapping per target: ``trial``, ``arm``, ``outcome``, ``kind``, ``fitted``, ``validate_only``,
        ``observed``, ``ci``,
        ``ci_source``, ``se`` and ``scale`` (of ``z``), ``predicted``, ``smooth``, ``interval``,
        ``population_interval``, ``parameter_interval``, ``error``, ``log_ratio``, ``z``, ``predicted_in_ci``,
        ``observed_in_interval``, ``note``.
    level
        Coverage of the prediction intervals.
    summary
        :func:`summarize` of the entries.
    notes
        Skipped trials and other remarks.
    provenance
        ``version``, ``fit`` (path, name, sha256), ``model_name``, ``model_hash``, ``targets`` (``{trial: hash}``),
        ``target_paths``, ``calibration_seed``, ``n_patients_per_arm``, ``seed``, ``population_seeds``,
        ``draw_seed``, ``draw_source``, ``draw_population_seeds``, ``values``, ``elapsed_s``.
    """

    entries: tuple[Mapping[str, Any], ...]
    level: float
    summary: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain, strict-JSON-ready content (non-finite floats as ``"inf"``, ``"-inf"``, ``"nan"``)."""
        return {
            "format": FORMAT,
            "level": self.level,
            "entries": [_enc_any(dict(e)) for e in self.entries],
            "summary": _enc_any(dict(self.summary)),
            "notes": list(self.notes),
            "provenance": _enc_any(dict(self.provenance)),
        }

    def to_table(self) -> str:
        """Plain aligned text: trial, arm, outcome, observed [CI], predicted [interval], z, coverage flags."""
        return format_entries(self.entries, self.level, self.summary, self.notes)


def format_entries(
    entries: Sequence[Mapping[str, Any]], level: float, summary: Mapping[str, Any], notes: Sequence[str] = ()
) -> str:
    """The table of :meth:`ValidationResult.to_table` (also used by cross-validation)."""
    head = (
        "trial",
        "arm",
        "outcome",
        "observed [95% CI]",
        f"predicted [{level:.0%} interval]",
        "z",
        "in CI",
        "obs in PI",
        "fitted",
    )
    rows = [head]
    for e in entries:
        z = e.get("z")
        rows.append(
            (
                e["trial"],
                e["arm"],
                e["outcome"],
                f"{_fmt(e['observed'])} {_span(e['ci'])}",
                f"{_fmt(e['predicted'])} {_span(e.get('interval'))}".removesuffix(" -"),
                "-" if z is None else (f"{z:+.2f}" if math.isfinite(z) else _fmt(z)),
                {True: "yes", False: "no", None: "-"}[e.get("predicted_in_ci")],
                {True: "yes", False: "no", None: "-"}[e.get("observed_in_interval")],
                "validate-only" if e.get("validate_only") else ("yes" if e.get("fitted") else "no"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    rms = summary.get("rms_z")
    lines += [
        "",
        f"{summary.get('n_targets', len(entries))} target(s); RMS z {_fmt(rms)} over "
        f"{summary.get('n_finite_z')} finite; predicted within the observed CI: "
        f"{summary.get('n_predicted_in_ci')}; observed within the prediction interval: "
        f"{summary.get('n_observed_in_interval')}",
    ]
    if summary.get("n_validate_only"):
        lines.append(
            f"{summary['n_validate_only']} validate-only target(s) (fit = false in their target files: predicted, "
            "never fitted)"
        )
    lines += [f"note: {e['trial']} / {e['arm']} / {e['outcome']}: {e['note']}" for e in entries if e.get("note")]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


# ---- validation ----------------------------------------------------------------------------------------------------
def validate(
    calibration: Calibration | str | Path,
    targets: TargetsLike,
    *,
    n_patients_per_arm: int | None = None,
    n_population_resamples: int = 10,
    n_parameter_draws: int = 20,
    seed: int = 0,
    level: float = 0.95,
    draw_source: str = "auto",
    model: ModelSpec | CompiledModel | None = None,
    progress: Callable[[str], None] | None = None,
) -> ValidationResult:
    """Predict ``targets`` with ``calibration`` and compare with the observed outcomes (module docstring).

    Parameters
    ----------
    calibration
        A :class:`~abscopal.calibrate.fit.Calibration` or the path of its JSON file.
    targets
        TrialTargets (any trials, fitted or not), a mapping or iterable of them, or target file paths/directories.
    n_patients_per_arm
        Virtual patients per arm (default: the calibration's).
    n_population_resamples, n_parameter_draws
        Population re-draws at the fitted values and parameter draws (each with a fresh population); 0 disables.
    seed
        Master seed of the re-draws and the parameter draws (the point prediction uses the calibration's seed).
    level
        Coverage of the central prediction intervals, in (0, 1).
    draw_source
        ``source`` of :func:`~abscopal.fitted.draws.parameter_draws`.
    model
        A ModelSpec or CompiledModel (default: the library model the calibration names; the hash must match).
    progress
        Called with a short message before each simulation.

    Returns
    -------
    ValidationResult

    Raises
    ------
    ParameterError, AbscopalError
        Any invalid argument, unknown model, no usable outcome, or unavailable parameter uncertainty (pass
        ``n_parameter_draws=0``), all before any simulation.
    """
    from ..fitted.draws import SOURCES, parameter_draws

    t0 = time.perf_counter()
    cal, fit_info = _load(calibration)
    n_res = _count("n_population_resamples", n_population_resamples, 0)
    n_dr = _count("n_parameter_draws", n_parameter_draws, 0)
    seed = _count("seed", seed, 0)
    if not isinstance(level, int | float) or not 0.0 < float(level) < 1.0:
        raise ParameterError(f"level: {level!r} is not in (0, 1); pass e.g. level=0.95")
    if draw_source not in SOURCES:
        raise ParameterError(f"draw_source: {draw_source!r} is not one of {list(SOURCES)}")
    prov = cal.provenance
    n_pat = _count(
        "n_patients_per_arm", prov["n_patients_per_arm"] if n_patients_per_arm is None else n_patients_per_arm, 1
    )
    trials = _as_trials(targets)
    notes = [
        f"trial {t.id!r}: no outcome the model can simulate ({list(DEFAULT_FIT_OUTCOMES)} of arms with a "
        "population mix); skipped"
        for t in trials
        if not usable_outcomes(t)
    ]
    used = tuple(t for t in trials if usable_outcomes(t))
    if not used:
        raise AbscopalError(
            f"targets: none of {[t.id for t in trials]} reports an outcome the model can simulate "
            f"({list(DEFAULT_FIT_OUTCOMES)}); nothing to validate"
        )
    draws = parameter_draws(cal, n_dr, seed=derived_seed(seed, "parameters"), source=draw_source) if n_dr else None
    compiled = _model(cal, model)
    stored = prov.get("targets", {})
    fitted_outcomes = set(prov.get("outcomes", ()))
    values = dict(cal.values)

    def problem(s: int) -> CalibrationProblem:
        return CalibrationProblem(
            targets=used,
            model=compiled,
            n_patients_per_arm=n_pat,
            seed=s,
            base_parameters=prov.get("base_parameters", {}),
            outcomes=None,
            smooth_hr=prov.get("smooth_hr", True),
            include_validate_only=True,
        )

    say = progress or (lambda msg: None)
    say(f"point prediction ({len(used)} trial(s), {n_pat} patients per arm)")
    base = problem(int(prov["seed"]))
    report, smooth, _ = base.evaluate(values)
    pop_seeds = [derived_seed(seed, "population", k) for k in range(n_res)]
    draw_seeds = [derived_seed(seed, "draw", j) for j in range(n_dr)]
    pop_preds, par_preds = [], []
    for k, s in enumerate(pop_seeds):
        say(f"population resample {k + 1}/{n_res}")
        pop_preds.append(problem(s).predict_report(values))
    for j, (s, v) in enumerate(zip(draw_seeds, draws.as_dicts() if draws else [], strict=True)):
        say(f"parameter draw {j + 1}/{n_dr}")
        par_preds.append(problem(s).predict_report(v))
    lv = float(level)
    entries = []
    for trial, arm, name, target in base._keys:
        key = (trial, arm, name)
        validate_only = key in base.validate_only
        e: dict[str, Any] = {
            "trial": trial,
            "arm": arm,
            "outcome": name,
            "kind": OUTCOME_KINDS[name],
            "fitted": not validate_only
            and stored.get(trial) == next(t for t in used if t.id == trial).content_hash()
            and name in fitted_outcomes,
            "validate_only": validate_only,
        }
        e |= score(target, name, float(report[key]))
        e["smooth"] = float(smooth[key])
        pop = [p[key] for p in pop_preds]
        par = [p[key] for p in par_preds]
        e["population_interval"], nan_pop = _interval(pop, lv) if pop else (None, 0)
        e["parameter_interval"], nan_par = _interval(par, lv) if par else (None, 0)
        e["interval"], _ = _interval(pop + par, lv) if pop or par else (None, 0)
        iv = e["interval"]
        e["observed_in_interval"] = None if iv is None else bool(iv[0] <= e["observed"] <= iv[1])
        if nan_pop or nan_par:
            e["note"] = "; ".join(filter(None, [e["note"], f"{nan_pop + nan_par} NaN prediction(s) dropped"]))
        entries.append(e)
    provenance = {
        "version": __version__,
        "environment": environment(),
        "fit": fit_info,
        "model_name": prov.get("model_name"),
        "model_hash": prov.get("model_hash"),
        "targets": {t.id: t.content_hash() for t in used},
        "target_paths": {t.id: t.path for t in used},
        "calibration_seed": int(prov["seed"]),
        "n_patients_per_arm": n_pat,
        "seed": seed,
        "n_population_resamples": n_res,
        "n_parameter_draws": n_dr,
        "population_seeds": pop_seeds,
        "draw_seed": derived_seed(seed, "parameters") if n_dr else None,
        "draw_source": draws.source if draws else None,
        "draw_population_seeds": draw_seeds,
        "values": {k: float(v) for k, v in values.items()},
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    return ValidationResult(
        entries=tuple(entries), level=lv, summary=summarize(entries), notes=tuple(notes), provenance=provenance
    )
