"""Leave-one-trial-out cross-validation of the calibration.

:func:`cross_validate` takes trial targets; for every trial with an outcome the model can simulate it refits
(:func:`~abscopal.calibrate.fit.calibrate`) a :class:`~abscopal.calibrate.objective.CalibrationProblem` on the
*other* trials, with the same free parameters, starting values, model, seed and virtual patients per arm, and
predicts the held-out trial with :func:`~abscopal.calibrate.validate.validate` (report predictions at the fold's
fitted values; optional population / parameter intervals, off by default because each costs one simulation of
the held-out trial). Per target it reports ``predicted - observed``, the log ratio ``log(predicted / observed)``
for medians and hazard ratios, and the z-score on the objective's scale
(:func:`~abscopal.calibrate.validate.score`); the summary gives the RMS z and the mean absolute error per outcome
kind (:func:`~abscopal.calibrate.validate.summarize`). Each fold fits the fit set of the other trials only
(targets marked ``fit = false`` stay out, :func:`~abscopal.calibrate.objective.target_keys`); the held-out trial's
validate-only targets are predicted and reported too, with ``validate_only`` true.

Every fold's problem and starting parameters are built (and so every argument checked) before the first fit. A
fold whose fit fails is kept with its ``error`` message and no entries; the others still run. The
``abscopal crossval`` command is :mod:`abscopal.cli.validate`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..endpoints.outcomes import DEFAULT_FIT_OUTCOMES, fittable_outcomes
from ..errors import AbscopalError, ParameterError
from ..io import JsonArtefact
from ..provenance import environment
from .fit import calibrate
from .objective import DEFAULT_FREE, CalibrationProblem, default_parameters
from .validate import (
    TargetsLike,
    _as_trials,
    _count,
    _enc_any,
    _fmt,
    format_entries,
    summarize,
    usable_outcomes,
    validate,
)

if TYPE_CHECKING:
    from ..model.compile import CompiledModel
    from ..model.spec import ModelSpec

__all__ = ["FORMAT", "CrossValidation", "cross_validate"]

FORMAT = "abscopal-crossval-v1"
"""Value of the ``format`` key of a cross-validation file."""


@dataclass(frozen=True, kw_only=True)
class CrossValidation(JsonArtefact):
    """Result of :func:`cross_validate`.

    Attributes
    ----------
    folds
        One mapping per held-out trial: ``held_out``, ``training`` (trial ids), ``values`` and ``stderr`` (the
        fold's fit), ``nfev``, ``chisqr``, ``elapsed_s``, ``error`` (None, or why the fold failed) and
        ``entries`` (the held-out targets, fields of :class:`~abscopal.calibrate.validate.ValidationResult`).
    summary
        :func:`~abscopal.calibrate.validate.summarize` over every held-out target.
    provenance
        ``version``, ``model_name``, ``model_hash``, ``targets`` (``{trial: hash}``), ``free``, ``start``,
        ``seed``, ``n_patients_per_arm``, ``base_parameters``, ``outcomes``, ``fit_kwargs``, ``elapsed_s``.
    """

    folds: tuple[Mapping[str, Any], ...]
    summary: Mapping[str, Any] = field(default_factory=dict)
    level: float = 0.95
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @property
    def entries(self) -> list[Mapping[str, Any]]:
        """Every held-out target of every fold."""
        return [e for f in self.folds for e in f["entries"]]

    def to_dict(self) -> dict[str, Any]:
        """Plain, strict-JSON-ready content (non-finite floats as strings)."""
        return {
            "format": FORMAT,
            "level": self.level,
            "folds": [_enc_any(dict(f)) for f in self.folds],
            "summary": _enc_any(dict(self.summary)),
            "provenance": _enc_any(dict(self.provenance)),
        }

    def to_table(self) -> str:
        """Plain text: each fold's fitted values, then every held-out target (``fitted`` is always no)."""
        lines = ["leave-one-trial-out cross-validation"]
        for f in self.folds:
            vals = ", ".join(f"{k} {_fmt(v)}" for k, v in f["values"].items())
            status = f"FAILED: {f['error']}" if f["error"] else f"{f['nfev']} evaluations; {vals}"
            lines.append(f"  held out {f['held_out']} (fit on {', '.join(f['training'])}): {status}")
        lines += ["", format_entries(self.entries, self.level, self.summary)]
        by_kind = self.summary.get("by_kind", {})
        for kind, s in by_kind.items():
            lines.append(
                f"{kind}: n {s['n']}, mean {s['error_scale']} error {_fmt(s['mean_abs_error'])}, "
                f"RMS z {_fmt(s['rms_z'])}, non-finite {s['n_nonfinite']}"
            )
        return "\n".join(lines)


def cross_validate(
    targets: TargetsLike,
    *,
    free: Sequence[str] = DEFAULT_FREE,
    params: Any = None,
    n_patients_per_arm: int = 100,
    seed: int = 0,
    model: ModelSpec | CompiledModel | None = None,
    base_parameters: Mapping[str, float] | None = None,
    outcomes: Sequence[str] | None = None,
    smooth_hr: bool = True,
    fit_kwargs: Mapping[str, Any] | None = None,
    n_population_resamples: int = 0,
    n_parameter_draws: int = 0,
    level: float = 0.95,
    progress: Callable[[str], None] | None = None,
) -> CrossValidation:
    """Leave-one-trial-out cross-validation (module docstring).

    Parameters
    ----------
    targets
        TrialTargets, a mapping or iterable of them, or target file paths/directories; at least two trials with
        an outcome the model can simulate.
    free
        Typical values to fit in every fold (ignored when ``params`` is given).
    params
        lmfit ``Parameters`` to start every fold from (default :func:`default_parameters` of ``free``).
    n_patients_per_arm, seed, base_parameters, outcomes, smooth_hr
        Settings of every fold's :class:`CalibrationProblem` (``outcomes``: fitted outcomes, default all).
    model
        ModelSpec or CompiledModel (default ``nsclc_model(3)``); compiled once and shared by the folds.
    fit_kwargs
        Extra keyword arguments of :func:`calibrate` (e.g. ``method``, ``max_nfev``).
    n_population_resamples, n_parameter_draws, level
        Prediction intervals of the held-out trial (:func:`validate`); 0 disables (default).
    progress
        Called with a short message per fold.

    Returns
    -------
    CrossValidation

    Raises
    ------
    ParameterError, AbscopalError
        Fewer than two usable trials, unknown free parameter or outcome, invalid counts; before any fit.
    """
    from ..model.compile import CompiledModel, compile_model
    from .objective import _default_model

    t0 = time.perf_counter()
    n_pat = _count("n_patients_per_arm", n_patients_per_arm, 1)
    seed = _count("seed", seed, 0)
    _count("n_population_resamples", n_population_resamples, 0)
    _count("n_parameter_draws", n_parameter_draws, 0)
    if not 0.0 < float(level) < 1.0:
        raise ParameterError(f"level: {level!r} is not in (0, 1)")
    outs = tuple(DEFAULT_FIT_OUTCOMES if outcomes is None else outcomes)
    bad = [o for o in outs if o not in fittable_outcomes()]
    if bad:
        raise ParameterError(f"outcomes: {bad} cannot be simulated; choose from {list(fittable_outcomes())}")
    trials = _as_trials(targets)
    used = [t for t in trials if usable_outcomes(t, outs)]
    if len(used) < 2:
        raise AbscopalError(
            f"targets: cross-validation needs at least two trials with an outcome among {list(outs)}"
            f"; usable: {[t.id for t in used]} of {[t.id for t in trials]}"
        )
    if params is None and not free:
        raise ParameterError("free: no parameter to fit; pass e.g. free=('max_kill_per_day',)")
    model = _default_model() if model is None else model
    compiled = model if isinstance(model, CompiledModel) else compile_model(model)
    base = dict(base_parameters or {})
    folds_setup = []
    for held in used:
        training = tuple(t for t in used if t.id != held.id)
        problem = CalibrationProblem(
            targets=training,
            model=compiled,
            n_patients_per_arm=n_pat,
            seed=seed,
            base_parameters=base,
            outcomes=outs,
            smooth_hr=smooth_hr,
        )
        start = default_parameters(problem, names=tuple(free)) if params is None else params.copy()
        folds_setup.append((held, training, problem, start))
    say = progress or (lambda msg: None)
    folds = []
    for i, (held, training, problem, start) in enumerate(folds_setup):
        say(f"fold {i + 1}/{len(folds_setup)}: fit without {held.id}")
        t_fold = time.perf_counter()
        fold: dict[str, Any] = {
            "held_out": held.id,
            "training": [t.id for t in training],
            "values": {},
            "stderr": {},
            "nfev": None,
            "chisqr": None,
            "error": None,
            "entries": [],
        }
        try:
            cal = calibrate(problem, start, **dict(fit_kwargs or {}))
            fold |= {"values": dict(cal.values), "stderr": dict(cal.stderr), "nfev": cal.nfev, "chisqr": cal.chisqr}
            say(f"fold {i + 1}/{len(folds_setup)}: predict {held.id}")
            res = validate(
                cal,
                held,
                n_population_resamples=n_population_resamples,
                n_parameter_draws=n_parameter_draws,
                seed=seed,
                level=level,
                model=compiled,
            )
            fold["entries"] = [dict(e) for e in res.entries]
        except AbscopalError as exc:
            fold["error"] = f"{type(exc).__name__}: {exc}"
        fold["elapsed_s"] = round(time.perf_counter() - t_fold, 3)
        folds.append(fold)
    spec = compiled.spec
    provenance = {
        "version": __version__,
        "environment": environment(),
        "model_name": spec.name,
        "model_hash": spec.content_hash(),
        "targets": {t.id: t.content_hash() for t in used},
        "target_paths": {t.id: t.path for t in used},
        "skipped": [t.id for t in trials if t not in used],
        "free": [k for k, p in folds_setup[0][3].items() if p.vary],
        "start": {k: float(p.value) for k, p in folds_setup[0][3].items()},
        "seed": seed,
        "n_patients_per_arm": n_pat,
        "base_parameters": base,
        "outcomes": list(outs),
        "smooth_hr": bool(smooth_hr),
        "fit_kwargs": {k: v for k, v in dict(fit_kwargs or {}).items() if isinstance(v, str | int | float | bool)},
        "n_population_resamples": int(n_population_resamples),
        "n_parameter_draws": int(n_parameter_draws),
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    return CrossValidation(
        folds=tuple(folds),
        summary=summarize(e for f in folds for e in f["entries"]),
        level=float(level),
        provenance=provenance,
    )
